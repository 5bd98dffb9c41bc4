//! uml_mconsole against a booted linux.uml, compared with the C client: every command
//! of the acceptance list, the interactive session on a terminal, stale and missing
//! UMLs, and the notify socket.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::pty::PtySession;
use tests::{c_tool, our_bin, run, run_input, scratch, GuestImage, Output, Uml, UmlBoot};
use uml_proto::mconsole::{
    receive_request, Received, Reply, Request, ERR_UNKNOWN, MAX_REPLY_LEN, REQUEST_LEN,
};

/// Keeps running (so the guest answers for as long as the test needs) and writes to
/// /proc/mconsole every second when the kernel offers it (with a notify socket).
const INIT: &str = "#!/bin/sh
mount -t proc proc /proc
while true; do
  [ -e /proc/mconsole ] && echo tick > /proc/mconsole
  sleep 1
done
";

const LIMIT: Duration = Duration::from_secs(20);

/// A booted guest with its own HOME (hence its own ~/.uml).
struct Guest {
    uml: Uml,
    boot: UmlBoot,
}

/// Builds one image per guest (ubd locks its file), boots them all at once and waits
/// until each runs init.
fn boot_guests(dir: &Path, umids: &[&str], extra: &[String]) -> Option<Vec<Guest>> {
    let home = dir.join("home");
    let image = GuestImage::build(&dir.join("root.img"), INIT);
    let mut umls = Vec::new();
    for umid in umids {
        let disk = dir.join(format!("{umid}.img"));
        std::fs::copy(&image.path, &disk).expect("copy image");
        let mut uml = Uml::new(&home, umid)?.root(disk.to_str().expect("utf-8 path"));
        for a in extra {
            uml = uml.arg(a.clone());
        }
        umls.push(uml);
    }
    // The socket comes early in boot; devices (con, ssl...) register with mconsole
    // later. Answers settle once init runs.
    let boots: Vec<UmlBoot> = umls
        .iter()
        .map(|u| u.spawn_until("Run /sbin/init as init process", LIMIT))
        .collect();
    Some(
        umls.into_iter()
            .zip(boots)
            .map(|(uml, boot)| Guest { uml, boot })
            .collect(),
    )
}

/// Runs a client (ours or the C one) with the guest's HOME, from `cwd`.
fn client(bin: &Path, home: &Path, cwd: &Path, args: &[&str]) -> Output {
    run(
        Command::new(bin)
            .args(args)
            .env("HOME", home)
            .current_dir(cwd),
        LIMIT,
    )
}

fn ours() -> PathBuf {
    our_bin("uml_mconsole")
}

/// Asserts both clients printed the same and agreed on success.
fn same(what: &str, c: &Output, r: &Output) {
    assert!(!c.timed_out && !r.timed_out, "{what}: a client hung");
    assert_eq!(r.stdout, c.stdout, "{what}: stdout differs (ours, C)");
    assert_eq!(
        r.success(),
        c.success(),
        "{what}: exit status differs: ours {:?}, C {:?}",
        r.code,
        c.code
    );
}

/// `proc uptime` with its two numbers replaced (they move between the two runs).
fn mask_uptime(s: &str) -> String {
    s.split('\n')
        .map(|line| {
            if line.split(' ').all(|w| w.parse::<f64>().is_ok()) && line.contains('.') {
                "N N".to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn commands_give_the_same_text_and_status_as_the_c_client() {
    let Some(c) = c_tool("uml_mconsole") else {
        return;
    };
    let dir = scratch();
    let Some(guests) = boot_guests(dir.path(), &["mc-a", "mc-b"], &[]) else {
        return;
    };
    let [a, b] = <[Guest; 2]>::try_from(guests).ok().expect("two guests");
    let home = a.uml.home.clone();
    let cwd = dir.path().join("client");
    std::fs::create_dir_all(&cwd).unwrap();
    let r = ours();
    let sock = a.uml.mconsole_path();
    let sock = sock.to_str().unwrap();

    // One command each, by umid and by full path, both clients, in turn.
    for cmd in [
        "version",
        "help",
        "config ubd0",
        "config con0",
        "log hello from the test",
        "sysrq h",
        "no-such-command",
        "config ubd1",
        "remove ubd5",
    ] {
        let words: Vec<&str> = cmd.split(' ').collect();
        for name in ["mc-a", sock] {
            let args: Vec<&str> = [name].into_iter().chain(words.iter().copied()).collect();
            let co = client(&c, &home, &cwd, &args);
            let ro = client(&r, &home, &cwd, &args);
            same(&format!("{name} {cmd}"), &co, &ro);
        }
    }
    let unknown = client(&r, &home, &cwd, &["mc-a", "no-such-command"]);
    assert_eq!(
        (unknown.stdout.as_str(), unknown.code),
        ("ERR Unknown command\n", Some(1))
    );
    assert!(a.boot.console().contains("hello from the test"));

    let co = client(&c, &home, &cwd, &["mc-a", "proc", "uptime"]);
    let ro = client(&r, &home, &cwd, &["mc-a", "proc", "uptime"]);
    assert_eq!(mask_uptime(&ro.stdout), mask_uptime(&co.stdout));
    assert!(ro.stdout.starts_with("OK \n") && ro.success() && co.success());

    // stop then go, each client in turn; while stopped the kernel still answers.
    let c_stop = client(&c, &home, &cwd, &["mc-a", "stop"]);
    let c_go = client(&c, &home, &cwd, &["mc-a", "go"]);
    let r_stop = client(&r, &home, &cwd, &["mc-a", "stop"]);
    let r_version = client(&r, &home, &cwd, &["mc-a", "version"]);
    let r_go = client(&r, &home, &cwd, &["mc-a", "go"]);
    same("stop", &c_stop, &r_stop);
    same("go", &c_go, &r_go);
    assert_eq!(c_stop.stdout, "OK stopped\n");
    assert!(r_version.success() && r_version.stdout.starts_with("OK Linux"));

    // log -f: a file longer than one request.
    let text: String = (0..40)
        .map(|i| format!("log line {i} from a file\n"))
        .collect();
    std::fs::write(cwd.join("log.txt"), &text).unwrap();
    let co = client(&c, &home, &cwd, &["mc-a", "log", "-f", "log.txt"]);
    let ro = client(&r, &home, &cwd, &["mc-a", "log", "-f", "log.txt"]);
    same("log -f", &co, &ro);
    assert_eq!(ro.stdout.matches("OK \n").count(), text.len().div_ceil(506));

    // Hot-plug with a relative file name: both clients make it absolute.
    let disk = cwd.join("disk1.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let mut outs = Vec::new();
    for bin in [&c, &r] {
        let plug = client(bin, &home, &cwd, &["mc-a", "config", "ubd1=disk1.img"]);
        let query = client(bin, &home, &cwd, &["mc-a", "config", "ubd1"]);
        let unplug = client(bin, &home, &cwd, &["mc-a", "remove", "ubd1"]);
        outs.push([plug, query, unplug]);
    }
    for (i, what) in ["config ubd1=", "config ubd1 (query)", "remove ubd1"]
        .iter()
        .enumerate()
    {
        same(what, &outs[0][i], &outs[1][i]);
    }
    assert_eq!(outs[1][1].stdout, format!("OK {}\n", disk.display()));

    // --json and commands from stdin.
    let version = client(&c, &home, &cwd, &["mc-a", "version"]).stdout;
    let json = client(&r, &home, &cwd, &["--json", "mc-a", "version"]);
    let text_part = version.strip_prefix("OK ").unwrap().trim_end();
    assert_eq!(
        json.stdout,
        format!("{{\"ok\":true,\"output\":{text_part:?}}}\n")
    );
    let script = run_input(
        Command::new(&r)
            .arg("mc-a")
            .env("HOME", &home)
            .current_dir(&cwd),
        b"version\n\nconfig con0\n",
        LIMIT,
    );
    let con0 = client(&c, &home, &cwd, &["mc-a", "config", "con0"]).stdout;
    assert_eq!(script.stdout, format!("{version}{con0}"));
    assert!(script.success());

    // stack 1: a streamed reply longer than the client's socket queue. The kernel
    // drops what does not fit, often the last packet: the C client then waits forever;
    // ours prints what arrived and says so. (The stack itself changes between runs.)
    let start = Instant::now();
    let ro = client(&r, &home, &cwd, &["--timeout", "3", "mc-a", "stack", "1"]);
    assert!(!ro.timed_out && start.elapsed() < Duration::from_secs(8));
    assert!(stack_reply(&ro.stdout), "stack: {ro:?}");
    if ro.success() {
        assert!(
            ro.stderr.is_empty() && ro.stdout.ends_with("\n\n"),
            "stack: {ro:?}"
        );
    } else {
        assert_eq!(ro.code, Some(1));
        assert!(ro.stderr.contains("cut short"), "stack: {ro:?}");
    }
    let co = run(
        Command::new(&c)
            .args(["mc-a", "stack", "1"])
            .env("HOME", &home),
        Duration::from_secs(3),
    );
    if !co.timed_out {
        assert!(stack_reply(&co.stdout) && co.success(), "C stack: {co:?}");
    }

    server_model_matches_linux_uml(&a.uml.mconsole_path());

    // Local commands match whole words: `interrupt` goes to the kernel (the C client
    // would take it for `int` and SIGINT the UML).
    let ro = client(&r, &home, &cwd, &["mc-a", "interrupt"]);
    assert_eq!(
        (ro.stdout.as_str(), ro.code),
        ("ERR Unknown command\n", Some(1))
    );
    assert!(client(&r, &home, &cwd, &["mc-a", "version"]).success());

    // halt: the C client halts one guest, ours the other.
    let co = client(&c, &home, &cwd, &["mc-b", "halt"]);
    let ro = client(&r, &home, &cwd, &["mc-a", "halt"]);
    same("halt", &co, &ro);
    for mut g in [a, b] {
        assert!(
            g.boot.wait_exit(LIMIT).is_some(),
            "{} did not halt",
            g.uml.umid
        );
        assert!(!g.uml.mconsole_path().exists());
    }

    // Now the umid is gone: both fail, ours with one line naming what it tried.
    let co = client(&c, &home, &cwd, &["mc-a", "version"]);
    let ro = client(&r, &home, &cwd, &["mc-a", "version"]);
    assert_eq!((co.success(), ro.code), (false, Some(1)));
    assert_eq!(ro.stderr.lines().count(), 1);
    assert!(ro.stderr.contains("no UML named 'mc-a'"), "{ro:?}");
}

/// Sends one raw datagram from a fresh abstract address and collects `count` answers.
fn raw_exchange(sock: &Path, datagram: &[u8], count: usize) -> Vec<Vec<u8>> {
    use std::os::linux::net::SocketAddrExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "mconsole-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let me = UnixDatagram::bind_addr(&addr).unwrap();
    me.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    me.send_to(datagram, sock).unwrap();
    (0..count)
        .map(|_| {
            let mut buf = [0u8; 2048];
            let n = me.recv(&mut buf).expect("an answer from linux.uml");
            buf[..n].to_vec()
        })
        .collect()
}

fn emitted(replies: &[Reply]) -> Vec<Vec<u8>> {
    replies
        .iter()
        .map(|r| {
            let mut b = [0u8; MAX_REPLY_LEN];
            let n = r.emit(&mut b).unwrap();
            b[..n].to_vec()
        })
        .collect()
}

/// uml_proto::mconsole's server side (which the guest kernel serves with) against
/// what linux.uml really sends, byte for byte.
fn server_model_matches_linux_uml(sock: &Path) {
    let request = |version: u32, cmd: &[u8]| {
        let mut r = Request::new(cmd).unwrap();
        r.version = version;
        let mut b = [0u8; REQUEST_LEN];
        let n = r.emit(&mut b).unwrap();
        b[..n].to_vec()
    };
    // A version 0 client (no magic) and an oversized command: refused.
    let mut v0 = vec![0u8; REQUEST_LEN];
    v0[..7].copy_from_slice(b"version");
    let Received::Refused(expected) = receive_request(&v0) else {
        panic!("v0")
    };
    assert_eq!(raw_exchange(sock, &v0, 1), vec![expected]);
    let mut big = request(2, b"version");
    big[8..12].copy_from_slice(&600u32.to_ne_bytes());
    let Received::Refused(expected) = receive_request(&big) else {
        panic!("big")
    };
    assert_eq!(raw_exchange(sock, &big, 1), vec![expected]);
    // Version 1: an error reply, then the command runs anyway.
    let v1 = request(1, b"version");
    let Received::CommandAfter { reply, .. } = receive_request(&v1) else {
        panic!("v1")
    };
    let got = raw_exchange(sock, &v1, 2);
    assert_eq!(got[0], emitted(&[reply])[0]);
    let answer = Reply::parse(&got[1]).unwrap();
    assert!(
        answer.err == 0 && answer.text.starts_with(b"Linux"),
        "{answer:?}"
    );
    // Unknown commands, and a 722-byte answer cut in two.
    let got = raw_exchange(sock, &request(2, b"no-such"), 1);
    assert_eq!(got, emitted(&[Reply::error(ERR_UNKNOWN)]));
    let got = raw_exchange(sock, &request(2, b"help"), 2);
    let text: Vec<u8> = got
        .iter()
        .flat_map(|d| Reply::parse(d).unwrap().text)
        .collect();
    assert_eq!(text.len(), 722);
    assert_eq!(got, emitted(&Reply::pieces(0, &text, false)));
}

#[test]
fn interactive_session_on_a_terminal() {
    let Some(c) = c_tool("uml_mconsole") else {
        return;
    };
    let dir = scratch();
    let Some(guests) = boot_guests(dir.path(), &["mc-i"], &[]) else {
        return;
    };
    let home = guests[0].uml.home.clone();
    let expected = client(&c, &home, &home, &["mc-i", "version"]).stdout;
    let version_line = expected.trim_end();
    let con0 = client(&c, &home, &home, &["mc-i", "config", "con0"]).stdout;
    let con0_line = con0.trim_end();

    let mut term = PtySession::spawn(
        Command::new(ours())
            .arg("mc-i")
            .env("HOME", &home)
            .env("TERM", "xterm")
            .current_dir(&home),
    );
    let t = Duration::from_secs(10);
    assert!(term.expect("(mc-i) ", t), "no prompt: {}", term.screen());
    term.send(b"version\r");
    assert!(term.expect(version_line, t), "no answer: {}", term.screen());
    assert!(term.expect("(mc-i) ", t));
    term.send(b"\x1b[A\r"); // up arrow: the last command again
    assert!(term.expect(version_line, t), "no recall: {}", term.screen());
    term.send(b"confi\t"); // tab completes the command name
    assert!(
        term.expect("config ", t),
        "no completion: {}",
        term.screen()
    );
    term.send(b"con0\r");
    assert!(
        term.expect(con0_line, t),
        "completed line: {}",
        term.screen()
    );
    term.send(b"mconsole-version\r");
    assert!(term.expect("uml_mconsole client version 2", t));
    term.send(b"quit\r");
    let (status, killed) = term.wait(t);
    assert!(
        !killed && status.success(),
        "quit: {status:?}\n{}",
        term.screen()
    );
    let history = std::fs::read_to_string(home.join(".uml_mconsole_history")).unwrap();
    assert!(
        history.contains("version\n") && history.contains("config con0\n"),
        "{history}"
    );

    // End of input (Ctrl-D) ends a session with status 0 too.
    let mut term = PtySession::spawn(
        Command::new(ours())
            .arg("mc-i")
            .env("HOME", &home)
            .env("TERM", "xterm"),
    );
    assert!(term.expect("(mc-i) ", t));
    term.send(b"\x04");
    let (status, killed) = term.wait(t);
    assert!(!killed && status.success(), "EOF: {status:?}");

    // `int` sends SIGINT to the pid in the pid file: linux.uml cleans up and exits.
    let mut guests = guests;
    let g = &mut guests[0];
    let ro = client(&ours(), &home, &home, &["mc-i", "int"]);
    assert!(ro.success() && ro.stdout.is_empty(), "{ro:?}");
    assert!(
        g.boot.wait_exit(LIMIT).is_some(),
        "int did not stop linux.uml"
    );
    assert!(!g.uml.mconsole_path().exists());
}

/// Tab completion as bash does it (a second Tab lists the candidates, the line stays),
/// and `halt` in an interactive session ends it with a clear word instead of a
/// `no such socket` on the next command.
#[test]
fn interactive_completion_lists_and_halt_ends_the_session() {
    let dir = scratch();
    let Some(mut guests) = boot_guests(dir.path(), &["mc-h"], &[]) else {
        return;
    };
    let home = guests[0].uml.home.clone();
    let mut term = PtySession::spawn(
        Command::new(ours())
            .arg("mc-h")
            .env("HOME", &home)
            .env("TERM", "xterm")
            .current_dir(&home),
    );
    let t = Duration::from_secs(10);
    assert!(term.expect("(mc-h) ", t), "no prompt: {}", term.screen());
    term.send(b"s\t");
    std::thread::sleep(Duration::from_millis(300));
    term.send(b"\t");
    for candidate in ["stack", "stop", "switch", "sysrq"] {
        assert!(
            term.screen().contains(candidate) || term.expect(candidate, t),
            "second Tab did not list '{candidate}': {:?}",
            term.screen()
        );
    }
    // The line is still "s": completing on from there works.
    term.send(b"ta\t");
    assert!(term.expect("stack ", t), "line lost: {:?}", term.screen());
    term.send(b"\x15halt\r"); // Ctrl-U clears the line
    assert!(
        term.expect("has halted; leaving the session", Duration::from_secs(20)),
        "no word about the halted UML: {:?}",
        term.screen()
    );
    let (status, killed) = term.wait(t);
    assert!(
        !killed && status.success(),
        "after halt: {status:?}\n{}",
        term.screen()
    );
    assert!(
        !term.screen().contains("no such socket"),
        "{}",
        term.screen()
    );
    assert!(
        guests[0].boot.wait_exit(LIMIT).is_some(),
        "halt did not stop linux.uml"
    );
}

#[test]
fn stale_socket_silent_peer_and_missing_umid_fail_within_the_timeout() {
    let Some(c) = c_tool("uml_mconsole") else {
        return;
    };
    let dir = scratch();
    let Some(mut guests) = boot_guests(dir.path(), &["mc-s"], &[]) else {
        return;
    };
    let home = guests[0].uml.home.clone();
    let sock = guests[0].uml.mconsole_path();
    assert!(client(&ours(), &home, &home, &["mc-s", "version"]).success());
    let boot = &mut guests[0].boot;
    // Stopped, the kernel starts no new process (it makes one per guest program)
    // while its helpers are listed.
    // SAFETY: kill on the pid of the linux.uml this test started and has not reaped.
    unsafe { libc::kill(boot.child.id() as i32, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_millis(50));
    let helpers = boot.helpers();
    assert!(!helpers.is_empty(), "linux.uml runs helper processes");
    boot.child.kill().expect("SIGKILL linux.uml");
    boot.child.wait().expect("reap linux.uml");
    assert!(sock.exists(), "SIGKILL leaves the socket behind");

    // The kernel process is gone but its helpers still hold the socket: nobody
    // answers. Ours gives up at the timeout and says the UML is gone.
    let start = Instant::now();
    let ro = client(
        &ours(),
        &home,
        &home,
        &["--timeout", "1", "mc-s", "version"],
    );
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!((ro.code, ro.stdout.as_str()), (Some(1), ""));
    assert!(
        ro.stderr.contains("no reply within 1 s") && ro.stderr.contains("is gone"),
        "{ro:?}"
    );

    // With the helpers gone too, the socket is stale: an immediate, clear error.
    for pid in helpers {
        // SAFETY: kill on pids of processes this test's linux.uml started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let start = Instant::now();
    let mut ro = client(
        &ours(),
        &home,
        &home,
        &["--timeout", "2", "mc-s", "version"],
    );
    while !ro.stderr.contains("stale") && start.elapsed() < Duration::from_secs(5) {
        // The helpers take a moment to die and release the socket.
        std::thread::sleep(Duration::from_millis(50));
        ro = client(
            &ours(),
            &home,
            &home,
            &["--timeout", "2", "mc-s", "version"],
        );
    }
    assert_eq!((ro.code, ro.stdout.as_str()), (Some(1), ""));
    assert!(
        ro.stderr.contains(sock.to_str().unwrap()) && ro.stderr.contains("stale"),
        "{ro:?}"
    );
    assert_eq!(ro.stderr.lines().count(), 1);
    let start = Instant::now();
    let again = client(
        &ours(),
        &home,
        &home,
        &["--timeout", "2", "mc-s", "version"],
    );
    assert!(start.elapsed() < Duration::from_secs(1) && again.stderr.contains("stale"));
    let co = client(&c, &home, &home, &["mc-s", "version"]);
    assert_eq!(co.success(), ro.success());

    // A socket whose owner never answers: the C client would wait forever.
    let silent = dir.path().join("silent");
    let _peer = UnixDatagram::bind(&silent).unwrap();
    let start = Instant::now();
    let ro = client(
        &ours(),
        &home,
        &home,
        &["--timeout", "1", silent.to_str().unwrap(), "version"],
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(ro.code, Some(1));
    assert!(ro.stderr.contains("no reply within 1 s"), "{ro:?}");

    let ro = client(&ours(), &home, &home, &["no-such-umid", "version"]);
    assert_eq!(ro.code, Some(1));
    assert!(ro.stderr.contains("no UML named 'no-such-umid'"), "{ro:?}");
}

/// Waits (bounded) for a listener and returns its status and output.
fn finish(mut child: std::process::Child) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let (status, killed) = tests::command::wait_bounded(&mut child, Duration::from_secs(25));
    assert!(!killed, "the listener hung");
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    (status, out)
}

#[test]
fn notify_socket_reports_boot_and_proc_mconsole_writes() {
    if tests::linux_uml().is_none() {
        return;
    }
    let dir = scratch();
    let notify = dir.path().join("notify.sock");
    let listen = |extra: &[&str]| {
        Command::new(ours())
            .arg("--notify")
            .arg(&notify)
            .args(["--once", "--timeout", "20"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start listener")
    };
    let first = listen(&[]);
    let start = Instant::now();
    while !notify.exists() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let arg = format!("mconsole=notify:{}", notify.display());
    let guests = boot_guests(dir.path(), &["mc-n"], &[arg]).expect("linux.uml is there");
    let g = &guests[0];
    let (status, stdout) = finish(first);
    assert!(status.success(), "{status:?} {stdout}");
    assert_eq!(
        stdout,
        format!("socket {}\n", g.uml.mconsole_path().display())
    );
    assert!(!notify.exists(), "--once removes its socket");
    let home = g.uml.home.clone();
    assert!(client(&ours(), &home, &home, &["mc-n", "version"]).success());

    // The guest writes "tick" to /proc/mconsole every second.
    let second = listen(&["--json"]);
    let (status, stdout) = finish(second);
    assert!(status.success(), "{status:?} {stdout}");
    assert_eq!(stdout, "{\"type\":\"user\",\"text\":\"tick\"}\n");

    // A crash (sysrq c) arrives as a panic notification, among the ticks.
    let mut third = Command::new(ours())
        .arg("--notify")
        .arg(&notify)
        .args(["--timeout", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start listener");
    let lines = line_reader(third.stdout.take().unwrap());
    let start = Instant::now();
    while !notify.exists() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let crash = client(&ours(), &home, &home, &["mc-n", "sysrq", "c"]);
    assert!(
        crash.stdout.starts_with("OK sysrq: Trigger a crash"),
        "{crash:?}"
    );
    let mut seen = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(10)) {
        let done = line.starts_with("panic ");
        seen.push(line);
        if done {
            break;
        }
    }
    third.kill().expect("stop listener");
    third.wait().expect("reap listener");
    assert_eq!(
        seen.last().map(String::as_str),
        Some("panic sysrq triggered crash"),
        "{seen:?}"
    );
    assert!(
        seen[..seen.len() - 1].iter().all(|l| l == "user tick"),
        "{seen:?}"
    );
}

/// The lines a child prints, as they come.
fn line_reader(out: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// What linux.uml answers to `stack 1`: the stack, or (now and then, its own fault) the
/// note that its stack dumper faulted.
fn stack_reply(out: &str) -> bool {
    out.starts_with("OK Stack:\n")
        || out.starts_with("OK Received SIGSEGV in SIGSEGV handler, aborting stack trace!")
}
