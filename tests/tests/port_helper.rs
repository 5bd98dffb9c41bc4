//! port-helper and in.telnetd: against the C port-helper (what reaches the kernel's
//! socket) and against linux.uml itself (a telnet client reaches a guest shell through
//! `con1=port:PORT`; a test terminal reaches one through the xterm channel).
//!
//! The linux.uml runs happen inside a private mount namespace where a scratch
//! directory holding our port-helper and our in.telnetd is bind-mounted over
//! /usr/lib/uml: the kernel checks and runs /usr/lib//uml/port-helper, and finds
//! in.telnetd through the `/usr/lib//uml` it appends to PATH. The system's files are
//! never touched. TCP runs only inside the network namespace scripts/test makes.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tests::{c_tool, our_bin, run, scratch, GuestImage, Uml, UmlBoot};

const IAC: u8 = 255;

/// Starts `helper` with `stdin` as fd 0 and `fd3` as fd 3.
fn spawn_with_fd3(helper: &Path, stdin: fs::File, fd3: &OwnedFd) -> Child {
    let raw = fd3.as_raw_fd();
    let mut cmd = Command::new(helper);
    cmd.stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: dup2 is async-signal-safe; it runs in the forked child before exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().expect("spawn helper")
}

/// Waits (bounded) for one message on `sock`: (payload, received fd).
fn receive(sock: &UnixDatagram) -> (Vec<u8>, Option<OwnedFd>) {
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, fd) =
        uml_proto::fdpass::recv_fd(sock.as_fd(), &mut buf).expect("a message from port-helper");
    (buf[..n].to_vec(), fd)
}

fn same_file(fd: &OwnedFd, path: &Path) -> bool {
    let got = fs::File::from(fd.try_clone().unwrap()).metadata().unwrap();
    let want = fs::metadata(path).unwrap();
    (got.dev(), got.ino()) == (want.dev(), want.ino())
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// What a helper sends through an inherited fd 3: its pid and its fd 0.
fn fd3_message(helper: &Path) -> (u32, Vec<u8>, bool) {
    let dir = scratch();
    let terminal = dir.path().join("terminal");
    fs::write(&terminal, b"").unwrap();
    let (kernel, ours) = UnixDatagram::pair().unwrap();
    let ours: OwnedFd = ours.into();
    let mut child = spawn_with_fd3(helper, fs::File::open(&terminal).unwrap(), &ours);
    let (payload, fd) = receive(&kernel);
    let pid = child.id();
    let alive = child.try_wait().unwrap().is_none();
    kill(&mut child);
    let same = fd.is_some_and(|fd| same_file(&fd, &terminal));
    assert!(
        alive,
        "{} exited instead of waiting to be killed",
        helper.display()
    );
    (pid, payload, same)
}

#[test]
fn fd3_mode_sends_pid_and_stdin_like_the_c_tool() {
    let Some(c_helper) = c_tool("port-helper") else {
        return;
    };
    for helper in [c_helper, our_bin("port-helper")] {
        let (pid, payload, same) = fd3_message(&helper);
        assert_eq!(payload, (pid as i32).to_ne_bytes(), "{}", helper.display());
        assert!(same, "{} did not send its fd 0", helper.display());
    }
}

#[test]
fn socket_mode_sends_pid_and_stdin_like_the_c_tool() {
    let Some(c_helper) = c_tool("port-helper") else {
        return;
    };
    for helper in [c_helper, our_bin("port-helper")] {
        let dir = scratch();
        let path = dir.path().join("xterm-pipe");
        let kernel = UnixDatagram::bind(&path).unwrap();
        let terminal = dir.path().join("terminal");
        fs::write(&terminal, b"").unwrap();
        let mut child = Command::new(&helper)
            .args(["-uml-socket"])
            .arg(&path)
            .stdin(fs::File::open(&terminal).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (payload, fd) = receive(&kernel);
        let pid = child.id();
        kill(&mut child);
        assert_eq!(payload, (pid as i32).to_ne_bytes(), "{}", helper.display());
        assert!(
            fd.is_some_and(|fd| same_file(&fd, &terminal)),
            "{}",
            helper.display()
        );
    }
}

#[test]
fn with_nothing_to_send_to_it_fails_at_once() {
    let helper = our_bin("port-helper");
    // No fd 3 at all.
    let out = run(&mut Command::new(&helper), Duration::from_secs(5));
    assert!(!out.timed_out, "port-helper waited without a socket");
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.starts_with("port-helper: fd 3"),
        "{}",
        out.stderr
    );
    // A socket path nobody listens on.
    let dir = scratch();
    let missing = dir.path().join("no-such-socket");
    let out = run(
        Command::new(&helper).arg("-uml-socket").arg(&missing),
        Duration::from_secs(5),
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("connect") && out.stderr.contains("no-such-socket"),
        "{}",
        out.stderr
    );
}

/// Runs our in.telnetd on an accepted connection with `login` as the login program;
/// returns the client side and the server process.
fn telnetd_connection(login: &Path) -> (TcpStream, Child) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind (inside a network namespace)");
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (conn, _) = listener.accept().unwrap();
    let fd: OwnedFd = conn.into();
    let server = Command::new(our_bin("in-telnetd"))
        .arg("-L")
        .arg(login)
        .stdin(fs::File::from(fd.try_clone().unwrap()))
        .stdout(fs::File::from(fd.try_clone().unwrap()))
        .stderr(fs::File::from(fd))
        .spawn()
        .unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    (client, server)
}

/// Reads from `client` until `want` shows up in everything read so far (bounded).
fn read_until(client: &mut TcpStream, want: &[u8], limit: Duration) -> Vec<u8> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        if got.windows(want.len()).any(|w| w == want) {
            return got;
        }
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    panic!(
        "did not see {:?} within {limit:?}; got {:?}",
        String::from_utf8_lossy(want),
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn in_telnetd_negotiates_escapes_iac_and_gives_the_login_program_a_pty() {
    let dir = scratch();
    // A login program that shows its terminal, then echoes one raw line back in hex.
    let login = dir.path().join("login");
    fs::write(
        &login,
        "#!/bin/sh\n[ -t 0 ] && echo TTY-OK\nstty raw -echo\nprintf 'A\\377B\\n'\n\
         head -c 3 | od -An -tx1 | tr -d ' \\n'; echo ' END'\n",
    )
    .unwrap();
    fs::set_permissions(&login, fs::Permissions::from_mode(0o755)).unwrap();
    let (mut client, mut server) = telnetd_connection(&login);
    let greeting = read_until(&mut client, &[IAC, 253, 31], Duration::from_secs(5));
    assert!(
        greeting.starts_with(&[IAC, 251, 1, IAC, 251, 3]),
        "{greeting:?}"
    );
    // Accept ECHO; ask for an unknown option (terminal type) which must be refused.
    client.write_all(&[IAC, 253, 1, IAC, 253, 24]).unwrap();
    let got = read_until(&mut client, b"B", Duration::from_secs(5));
    assert!(
        got.windows(3).any(|w| w == [IAC, 252, 24]),
        "no WONT TTYPE: {got:?}"
    );
    assert!(String::from_utf8_lossy(&got).contains("TTY-OK"), "{got:?}");
    // The 0xff the program printed arrives doubled.
    assert!(
        got.windows(4).any(|w| w == [b'A', IAC, IAC, b'B']),
        "{got:?}"
    );
    // A doubled IAC from the client reaches the program as one 0xff byte.
    client.write_all(&[b'x', IAC, IAC, b'y']).unwrap();
    read_until(&mut client, b"78ff79 END", Duration::from_secs(5));
    kill(&mut server);
}

// ---- against linux.uml ----

const GUEST_INIT: &str = "#!/bin/sh\n\
mount -t proc proc /proc\n\
for t in 1 2; do setsid sh -c \"exec sh </dev/tty$t >/dev/tty$t 2>&1\" & done\n\
echo guest-init-running\n\
while true; do sleep 100; done\n";

/// A terminal emulator for the xterm channel: `testterm -T TITLE -e CMD...` runs CMD
/// on a new pty (script(1)), the pty's input from $TESTTERM_IN, output to $TESTTERM_OUT.
const TEST_TERMINAL: &str = "#!/bin/sh\n\
printf '%s\\n' \"$@\" > \"$TESTTERM_OUT.args\"\n\
while [ $# -gt 0 ] && [ \"$1\" != -e ]; do shift; done\n\
shift\n\
exec script -q -f -c \"$*\" /dev/null <\"$TESTTERM_IN\" >\"$TESTTERM_OUT\" 2>&1\n";

/// /usr/lib/uml as the kernel will see it: our port-helper and in.telnetd.
fn our_lib_uml(dir: &Path) -> PathBuf {
    let lib = dir.join("lib-uml");
    fs::create_dir_all(&lib).unwrap();
    fs::copy(our_bin("port-helper"), lib.join("port-helper")).unwrap();
    fs::copy(our_bin("in-telnetd"), lib.join("in.telnetd")).unwrap();
    lib
}

/// PATH for the kernel: the usual system directories, none holding an in.telnetd (so
/// the kernel can only find ours, through the /usr/lib//uml it appends).
fn system_path_without_telnetd() -> String {
    let path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for d in path.split(':') {
        assert!(
            !Path::new(d).join("in.telnetd").exists(),
            "{d}/in.telnetd exists: this test must prove ours is found in /usr/lib//uml"
        );
    }
    path.to_string()
}

/// Boots linux.uml with `extra` arguments inside a mount namespace where `lib` is
/// /usr/lib/uml; waits until the guest's init runs.
fn boot_with_our_helpers(
    dir: &Path,
    umid: &str,
    extra: &[String],
    env: &[(&str, String)],
) -> Option<UmlBoot> {
    let image = GuestImage::build(&dir.join("root.img"), GUEST_INIT);
    let lib = our_lib_uml(dir);
    let mut uml = Uml::new(&dir.join("home"), umid)?.root(image.path.to_str().unwrap());
    for a in extra {
        uml = uml.arg(a.clone());
    }
    uml = uml.env("PATH", &system_path_without_telnetd());
    for (k, v) in env {
        uml = uml.env(k, v);
    }
    // Run the kernel as: unshare --mount sh -c 'mount --bind LIB /usr/lib/uml; exec KERNEL ARGS'
    // (the shell execs, so the pid the harness kills is the kernel's).
    let kernel = std::mem::replace(&mut uml.kernel, PathBuf::from("unshare"));
    let prefix = [
        "--mount".to_string(),
        "--propagation".into(),
        "private".into(),
        "--".into(),
        "sh".into(),
        "-c".into(),
        "mount --bind \"$0\" /usr/lib/uml && exec \"$@\"".into(),
        lib.display().to_string(),
        kernel.display().to_string(),
    ];
    uml.args.splice(0..0, prefix);
    let mut boot = uml.spawn(Duration::from_secs(30));
    assert!(
        boot.wait_for_console("guest-init-running", Duration::from_secs(30)),
        "guest init did not start:\n{}",
        boot.console()
    );
    Some(boot)
}

/// How many running processes execute `file` (matched by device and inode, which is
/// what /proc/PID/exe resolves to even through a bind mount).
fn processes_running(file: &Path) -> usize {
    let want = fs::metadata(file).unwrap();
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| fs::metadata(e.path().join("exe")).ok())
        .filter(|m| (m.dev(), m.ino()) == (want.dev(), want.ino()))
        .count()
}

fn free_tcp_port() -> u16 {
    let l = TcpListener::bind("0.0.0.0:0").expect("bind (inside a network namespace)");
    l.local_addr().unwrap().port()
}

/// Runs Debian's telnet client against 127.0.0.1:PORT and types `line` once connected,
/// until `want` shows up (bounded); returns everything it printed. Retries while the
/// kernel is not listening yet.
fn telnet_session(port: u16, line: &str, want: &str) -> String {
    let start = Instant::now();
    loop {
        let mut child = Command::new("telnet")
            .args(["127.0.0.1", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run telnet (Debian package telnet)");
        let mut stdin = child.stdin.take().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let readers: Vec<_> = [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ]
        .into_iter()
        .map(|mut r| {
            let seen = Arc::clone(&seen);
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    seen.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            })
        })
        .collect();
        let text = || String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut typed = false;
        while Instant::now() < deadline && !text().contains(want) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            // Type once the guest's shell prompt has arrived.
            if !typed && text().contains("# ") {
                let _ = stdin.write_all(line.as_bytes());
                let _ = stdin.flush();
                typed = true;
            }
            thread::sleep(Duration::from_millis(100));
        }
        drop(stdin);
        kill(&mut child);
        for r in readers {
            let _ = r.join();
        }
        let out = text();
        if out.contains(want) {
            return out;
        }
        if start.elapsed() > Duration::from_secs(20) || !out.contains("Connection refused") {
            panic!("telnet did not show {want:?}:\n{out}");
        }
        thread::sleep(Duration::from_millis(300));
    }
}

/// The telnet session, checking while it runs that the kernel runs our copies.
fn telnet_session_checked(port: u16, dir: &Path) -> String {
    let lib = dir.join("lib-uml");
    let (telnetd, helper) = (lib.join("in.telnetd"), lib.join("port-helper"));
    let checker = thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if processes_running(&telnetd) > 0 && processes_running(&helper) > 0 {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    });
    let out = telnet_session(port, "echo port-$((6*7))\r", "port-42");
    assert!(
        checker.join().unwrap(),
        "our in.telnetd and port-helper were not both running"
    );
    out
}

#[test]
fn telnet_reaches_the_guest_console_through_our_in_telnetd_and_port_helper() {
    let dir = scratch();
    let port = free_tcp_port();
    let extra = [format!("con1=port:{port}")];
    let Some(boot) = boot_with_our_helpers(dir.path(), "ph-port", &extra, &[]) else {
        return;
    };
    let out = telnet_session_checked(port, dir.path());
    assert!(out.contains("Connected to 127.0.0.1"), "{out}");
    drop(boot);
}

#[test]
fn xterm_channel_gives_the_guest_console_to_a_test_terminal() {
    let dir = scratch();
    let terminal = dir.path().join("testterm");
    fs::write(&terminal, TEST_TERMINAL).unwrap();
    fs::set_permissions(&terminal, fs::Permissions::from_mode(0o755)).unwrap();
    let input = dir.path().join("term.in");
    let output = dir.path().join("term.out");
    let mkfifo = run(Command::new("mkfifo").arg(&input), Duration::from_secs(5));
    assert!(mkfifo.success(), "{mkfifo:?}");
    // Opened read-write: never blocks and never reaches end of file.
    let mut feed = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&input)
        .unwrap();
    let extra = [
        format!("xterm={},-T,-e", terminal.display()),
        "con2=xterm".to_string(),
    ];
    let env = [
        ("DISPLAY", ":99".to_string()),
        ("TESTTERM_IN", input.display().to_string()),
        ("TESTTERM_OUT", output.display().to_string()),
    ];
    let Some(mut boot) = boot_with_our_helpers(dir.path(), "ph-xterm", &extra, &env) else {
        return;
    };
    let start = Instant::now();
    let mut args = String::new();
    while start.elapsed() < Duration::from_secs(15) && !args.contains("-uml-socket") {
        thread::sleep(Duration::from_millis(100));
        args = fs::read_to_string(output.with_extension("out.args")).unwrap_or_default();
    }
    assert!(
        args.contains("Virtual Console #2 (ph-xterm)")
            && args.contains("/usr/lib//uml/port-helper"),
        "the kernel did not run the test terminal as expected: {args:?}\n{}",
        boot.console()
    );
    let start = Instant::now();
    let mut seen = String::new();
    while start.elapsed() < Duration::from_secs(15) && !seen.contains("xterm-42") {
        feed.write_all(b"echo xterm-$((6*7))\r").unwrap();
        thread::sleep(Duration::from_millis(700));
        seen = String::from_utf8_lossy(&fs::read(&output).unwrap_or_default()).into_owned();
    }
    assert!(
        seen.contains("xterm-42"),
        "terminal showed: {seen:?}\nconsole:\n{}",
        boot.console()
    );
    assert_eq!(
        processes_running(&dir.path().join("lib-uml/port-helper")),
        1,
        "the xterm channel did not run our port-helper"
    );
    assert!(boot.child.try_wait().unwrap().is_none(), "linux.uml died");
}
