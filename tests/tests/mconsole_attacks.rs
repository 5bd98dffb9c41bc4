//! uml_mconsole run by root against what another local user can do (issue 15, item
//! 13): forge a reply from another socket, plant /tmp/uml/NAME/mconsole, send
//! terminal escape codes in a reply, send a reply that never ends. The "UML" is a
//! fake mconsole server in the test; the attacker runs as uid 65534.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tests::pty::PtySession;
use tests::{our_bin, require_root, run, scratch};
use uml_proto::mconsole::{Reply, Request, MAX_REPLY_LEN};

const LIMIT: Duration = Duration::from_secs(60);

/// The datagram of a one-packet reply.
fn reply_bytes(err: i32, text: &[u8], more: bool) -> Vec<u8> {
    let r = Reply {
        err,
        more,
        text: text.to_vec(),
    };
    let mut out = vec![0u8; MAX_REPLY_LEN];
    let n = r.emit(&mut out).unwrap();
    out.truncate(n);
    out
}

/// What the fake UML saw: the request's command and the client's abstract address.
type Seen = (Vec<u8>, Vec<u8>);

/// A fake UML at `path`: takes one request (reporting its command and the client's
/// abstract address, which anyone can read in /proc/net/unix), waits for `go`, then
/// sends `answer` (a closure given the socket and the client's address).
fn fake_uml(
    path: &Path,
    go: mpsc::Receiver<()>,
    answer: impl FnOnce(&UnixDatagram, &std::os::unix::net::SocketAddr) + Send + 'static,
) -> (mpsc::Receiver<Seen>, std::thread::JoinHandle<()>) {
    let server = UnixDatagram::bind(path).unwrap();
    let (tx, got) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        server
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let Ok((n, from)) = server.recv_from(&mut buf) else {
            return;
        };
        use std::os::linux::net::SocketAddrExt;
        let address = from.as_abstract_name().unwrap_or_default().to_vec();
        let _ = tx.send((Request::parse(&buf[..n]).unwrap().command, address));
        let _ = go.recv_timeout(Duration::from_secs(20));
        answer(&server, &from);
    });
    (got, h)
}

/// The attacker: sends `datagram` (hex) three times to the abstract address `name`.
const FORGER: &str = r#"
use Socket;
my ($name, $hex) = @ARGV;
socket(my $s, PF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
my $to = pack_sockaddr_un("\0" . $name);
for (1 .. 3) { send($s, pack("H*", $hex), 0, $to) or print "refused: $!\n"; }
print "sent\n";
"#;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_reply_forged_from_another_socket_is_not_accepted() {
    require_root("mconsole attack tests");
    let dir = scratch();
    let sock = dir.path().join("mconsole");
    let (go, wait) = mpsc::channel();
    let (got, server) = fake_uml(&sock, wait, |s, to| {
        s.send_to_addr(&reply_bytes(0, b"real answer", false), to)
            .unwrap();
    });
    let client = Command::new(our_bin("uml_mconsole"))
        .arg(&sock)
        .arg("halt")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (command, address) = got.recv_timeout(LIMIT).unwrap();
    assert_eq!(command, b"halt");
    let forged = reply_bytes(0, b"The UML was halted", false);
    let f = run(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["perl", "-e", FORGER])
            .arg(String::from_utf8(address).unwrap())
            .arg(hex(&forged)),
        LIMIT,
    );
    assert!(f.stdout.contains("sent"), "the forger did not run: {f:?}");
    go.send(()).unwrap();
    let out = client.wait_with_output().unwrap();
    server.join().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "OK real answer\n",
        "a reply from another socket was taken for the UML's (forger: {f:?})"
    );
}

#[test]
fn escape_codes_in_a_reply_do_not_reach_the_terminal() {
    require_root("mconsole attack tests");
    let dir = scratch();
    let sock = dir.path().join("mconsole");
    let (go, wait) = mpsc::channel();
    let evil = b"\x1b]0;pwned\x07\x1b[2J\x1b[31mThe UML was halted\r";
    let (got, server) = fake_uml(&sock, wait, move |s, to| {
        s.send_to_addr(&reply_bytes(0, evil, false), to).unwrap();
    });
    go.send(()).unwrap();
    let mut term = PtySession::spawn(
        Command::new(our_bin("uml_mconsole"))
            .arg(&sock)
            .arg("version"),
    );
    let (status, killed) = term.wait(LIMIT);
    server.join().unwrap();
    assert_eq!(got.recv().unwrap().0, b"version");
    assert!(!killed && status.success(), "{status:?}: {}", term.screen());
    assert!(
        !term.seen.contains(&0x1b) && !term.seen.contains(&0x07),
        "control characters reached the terminal: {:?}",
        term.screen()
    );
    assert!(
        term.screen()
            .contains(r"OK \x1b]0;pwned\x07\x1b[2J\x1b[31mThe UML was halted\r"),
        "{:?}",
        term.screen()
    );
    // Not a terminal: the bytes as they came (scripts rely on that).
    let sock2 = dir.path().join("mconsole2");
    let (go, wait) = mpsc::channel();
    let (_, server) = fake_uml(&sock2, wait, move |s, to| {
        s.send_to_addr(&reply_bytes(0, evil, false), to).unwrap();
    });
    go.send(()).unwrap();
    let out = Command::new(our_bin("uml_mconsole"))
        .arg(&sock2)
        .arg("version")
        .output()
        .unwrap();
    server.join().unwrap();
    assert_eq!(out.stdout, [&b"OK "[..], evil, b"\n"].concat());
}

#[test]
fn an_endless_reply_is_cut_off() {
    require_root("mconsole attack tests");
    let dir = scratch();
    let sock = dir.path().join("mconsole");
    let (go, wait) = mpsc::channel();
    let (_, server) = fake_uml(&sock, wait, |s, to| {
        // `more` on every packet, until the client is gone (or two minutes).
        let packet = reply_bytes(0, &[b'y'; 500], true);
        let start = Instant::now();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        while start.elapsed() < Duration::from_secs(120) {
            if s.send_to_addr(&packet, to).is_err() {
                break;
            }
        }
    });
    go.send(()).unwrap();
    let start = Instant::now();
    let out = run(
        Command::new(our_bin("uml_mconsole"))
            .arg(&sock)
            .arg("sysrq t"),
        LIMIT,
    );
    assert!(!out.timed_out, "an endless reply kept the client forever");
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("cut off"), "{}", out.stderr);
    assert!(start.elapsed() < Duration::from_secs(45));
    server.join().unwrap();
}

/// The attacker's planted UML: makes /tmp/uml/NAME/mconsole and prints the command
/// it receives (answering OK, as the real UML would).
const PLANTED: &str = r#"
use Socket;
my $dir = "/tmp/uml/victim-vm";
mkdir "/tmp/uml"; chmod 01777, "/tmp/uml";
mkdir $dir;
socket(my $s, PF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
bind($s, pack_sockaddr_un("$dir/mconsole")) or die "bind: $!";
$| = 1;
print "ready\n";
$SIG{ALRM} = sub { print "received nothing\n"; exit 0 };
alarm 5;
my $from = recv($s, my $buf, 1024, 0);
my $cmd = substr($buf, 12); $cmd =~ s/\0.*//s;
print "received: $cmd\n";
send($s, pack("V V V", 0, 0, 3) . "OK\0", 0, $from);
"#;

#[test]
fn a_socket_planted_in_tmp_uml_by_another_user_gets_nothing() {
    require_root("mconsole attack tests");
    // A private /tmp (so the real /tmp/uml is neither used nor touched).
    let script = r#"
set -e
mount -t tmpfs -o mode=1777 tmpfs /tmp
setpriv --reuid=65534 --regid=65534 --clear-groups perl -e "$1" > /tmp/planted.out &
for i in $(seq 200); do grep -q ready /tmp/planted.out 2>/dev/null && break; sleep 0.05; done
mkdir /tmp/roothome
set +e
HOME=/tmp/roothome "$2" victim-vm halt
echo "status=$?"
wait
cat /tmp/planted.out
"#;
    let out = run(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "bash", "-c"])
            .arg(script)
            .arg("sh")
            .arg(PLANTED)
            .arg(our_bin("uml_mconsole")),
        LIMIT,
    );
    assert!(out.stdout.contains("ready"), "the plant never ran: {out:?}");
    assert!(
        out.stdout.contains("received nothing"),
        "root's command went to another user's socket: {out:?}"
    );
    assert!(out.stdout.contains("status=1"), "{out:?}");
    assert!(
        out.stderr
            .contains("owned by uid 65534, neither you nor root"),
        "{}",
        out.stderr
    );
}
