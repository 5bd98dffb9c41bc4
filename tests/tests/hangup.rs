//! No program of the suite panics on a failed write of a log line or message (issue 15
//! item 6, issue 18 "hangup"): each is started on a terminal that then goes away (its
//! master closed, as a closed xterm or ssh session does) or with stderr a pipe nobody
//! reads; none exits with Rust's panic status 101, and the switch and the kernel
//! remove their sockets.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tests::pty::PtySession;
use tests::{our_bin, scratch};

const LIMIT: Duration = Duration::from_secs(10);

/// A pipe whose reading end is already closed: every write gives EPIPE.
fn broken_pipe() -> Stdio {
    let (r, w) = UnixStream::pair().unwrap();
    drop(r);
    Stdio::from(OwnedFd::from(w))
}

fn wait_gone(path: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    while path.exists() {
        if start.elapsed() > limit {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
    true
}

fn assert_no_panic(what: &str, status: ExitStatus, timed_out: bool, screen: &str) {
    assert!(
        !timed_out,
        "{what} did not exit after the hangup:\n{screen}"
    );
    assert_ne!(
        status.code(),
        Some(101),
        "{what} panicked on a failed write:\n{screen}"
    );
}

#[test]
fn switch_on_a_terminal_that_goes_away() {
    let dir = scratch();
    let ctl = dir.path().join("hup.ctl");
    let mut s = PtySession::spawn(Command::new(our_bin("uml_switch")).arg("-unix").arg(&ctl));
    assert!(s.expect("attached", LIMIT), "{}", s.screen());
    s.hang_up();
    let (status, timed_out) = s.wait(LIMIT);
    assert_no_panic("uml_switch", status, timed_out, &s.screen());
    assert!(
        status.code() == Some(0) || status.signal() == Some(libc::SIGHUP),
        "{status:?}"
    );
    assert!(!ctl.exists(), "the control socket was left behind");
}

#[test]
fn daemon_switch_outlives_its_login_and_cleans_up() {
    let dir = scratch();
    let ctl = dir.path().join("bg.ctl");
    // A login shell starts it, then waits on the terminal (cat) until it goes away.
    let script = format!(
        "'{}' -unix '{}' -daemon && echo started && exec cat",
        our_bin("uml_switch").display(),
        ctl.display()
    );
    let mut s = PtySession::spawn(Command::new("sh").args(["-c", &script]));
    assert!(s.expect("started", LIMIT), "{}", s.screen());
    thread::sleep(Duration::from_millis(200));
    assert!(ctl.exists(), "the daemon is not serving:\n{}", s.screen());
    // The login goes: the daemon reads EOF/EIO on its terminal stdin, says goodbye to a
    // dead terminal, and must still remove its socket.
    s.hang_up();
    assert!(
        wait_gone(&ctl, LIMIT),
        "the -daemon switch left its socket after the hangup"
    );
}

#[test]
fn switch_with_a_broken_stderr_keeps_switching() {
    let dir = scratch();
    let ctl = dir.path().join("pipe.ctl");
    let mut child = Command::new(our_bin("uml_switch"))
        .arg("-unix")
        .arg(&ctl)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(broken_pipe())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !ctl.exists() {
        assert!(start.elapsed() < LIMIT, "switch did not start");
        thread::sleep(Duration::from_millis(10));
    }
    // A port (logged), the SIGUSR1 report (written to stderr), another port.
    let _a = tests::attach_v3(&ctl, 1);
    // SAFETY: kill on the pid of a child we started and have not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
    thread::sleep(Duration::from_millis(300));
    let _b = tests::attach_v3(&ctl, 2);
    // SIGPIPE (what a write to a pipe nobody reads raises) is ignored, not fatal.
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGPIPE) };
    thread::sleep(Duration::from_millis(100));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the switch died writing to a broken pipe: {:?}",
        child.try_wait()
    );
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let (status, timed_out) = tests::command::wait_bounded(&mut child, LIMIT);
    assert_no_panic("uml_switch", status, timed_out, "");
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert!(!ctl.exists(), "the control socket was left behind");
}

#[test]
fn kernel_on_a_terminal_that_goes_away() {
    let dir = scratch();
    let umid_dir = dir.path().join(".uml").join("hup");
    let mut k = PtySession::spawn(
        Command::new(our_bin("uml-kernel"))
            .arg("umid=hup")
            .env("HOME", dir.path()),
    );
    let start = Instant::now();
    while !umid_dir.join("mconsole").exists() {
        assert!(
            start.elapsed() < LIMIT,
            "no mconsole socket:\n{}",
            k.screen()
        );
        thread::sleep(Duration::from_millis(10));
    }
    assert!(k.expect("# ", LIMIT), "no prompt:\n{}", k.screen());
    k.hang_up();
    let (status, timed_out) = k.wait(LIMIT);
    assert_no_panic("uml-kernel", status, timed_out, &k.screen());
    assert!(
        !umid_dir.exists(),
        "the umid directory (mconsole socket, pid file) was left behind"
    );
}

#[test]
fn kernel_with_a_broken_stdout_and_stderr_boots_and_halts() {
    let dir = scratch();
    let umid_dir = dir.path().join(".uml").join("pipe");
    let mut child = Command::new(our_bin("uml-kernel"))
        .arg("umid=pipe")
        .env("HOME", dir.path())
        .stdin(Stdio::piped())
        .stdout(broken_pipe())
        .stderr(broken_pipe())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !umid_dir.join("mconsole").exists() {
        if let Some(s) = child.try_wait().unwrap() {
            panic!("uml-kernel exited at boot: {s:?}");
        }
        assert!(start.elapsed() < LIMIT, "no mconsole socket");
        thread::sleep(Duration::from_millis(10));
    }
    let out = tests::run(
        Command::new(our_bin("uml_mconsole"))
            .arg(umid_dir.join("mconsole"))
            .arg("halt"),
        LIMIT,
    );
    assert!(out.success(), "{out:?}");
    let (status, timed_out) = tests::command::wait_bounded(&mut child, LIMIT);
    assert_no_panic("uml-kernel", status, timed_out, "");
    assert!(!umid_dir.exists());
}

#[test]
fn port_helper_message_after_the_hand_over_does_not_panic() {
    // stdin is not a terminal, so TIOCNOTTY fails and port-helper says so on stderr,
    // after it has handed stdin over; stderr is a pipe nobody reads.
    let (ours, theirs) = UnixDatagram::pair().unwrap();
    let theirs = OwnedFd::from(theirs);
    let fd = theirs.as_raw_fd();
    let mut cmd = Command::new(our_bin("port-helper"));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(broken_pipe());
    // SAFETY: only dup2 between fork and exec, onto fd 3 (the kernel's socket).
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(theirs);
    ours.set_read_timeout(Some(LIMIT)).unwrap();
    let mut buf = [0u8; 16];
    let (n, fd) = uml_proto::fdpass::recv_fd(std::os::fd::AsFd::as_fd(&ours), &mut buf)
        .expect("port-helper sent nothing");
    assert_eq!(n, 4);
    assert!(fd.is_some(), "no descriptor came with the pid");
    thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "port-helper died after the hand-over: {:?}",
        child.try_wait()
    );
    child.kill().unwrap();
    let (status, _) = tests::command::wait_bounded(&mut child, LIMIT);
    assert_eq!(status.signal(), Some(libc::SIGKILL));
}

#[test]
fn port_helper_on_a_terminal_that_goes_away() {
    // The port channel's case: port-helper's stdio is the telnet session's terminal; it
    // hands it over, then the session ends. It must neither panic nor leave before the
    // kernel kills it (SIGHUP is ignored on purpose).
    let (ours, theirs) = UnixDatagram::pair().unwrap();
    let theirs = OwnedFd::from(theirs);
    let fd = theirs.as_raw_fd();
    let mut cmd = Command::new(our_bin("port-helper"));
    // SAFETY: only dup2 between fork and exec, onto fd 3 (the kernel's socket).
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut p = PtySession::spawn(&mut cmd);
    drop(theirs);
    ours.set_read_timeout(Some(LIMIT)).unwrap();
    let mut buf = [0u8; 16];
    let (n, tty) = uml_proto::fdpass::recv_fd(std::os::fd::AsFd::as_fd(&ours), &mut buf)
        .expect("port-helper sent nothing");
    assert!(n == 4 && tty.is_some());
    drop(tty);
    p.hang_up();
    let (status, timed_out) = p.wait(Duration::from_millis(500));
    assert!(
        timed_out,
        "port-helper left before the kernel killed it: {status:?}\n{}",
        p.screen()
    );
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
}

#[test]
fn telnetd_error_to_a_broken_stderr_does_not_panic() {
    // With no descriptor above 9 allowed, in.telnetd cannot keep its copy of the socket:
    // it fails at once and reports it on stderr, a pipe nobody reads.
    let (sock, _client) = UnixStream::pair().unwrap();
    let mut cmd = Command::new(our_bin("in-telnetd"));
    cmd.args(["-L", "/bin/cat"])
        .stdin(Stdio::from(OwnedFd::from(sock)))
        .stdout(Stdio::null())
        .stderr(broken_pipe());
    // SAFETY: only setrlimit between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 10,
                rlim_max: 10,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let (status, timed_out) = tests::command::wait_bounded(&mut child, LIMIT);
    assert_no_panic("in.telnetd", status, timed_out, "");
    assert_eq!(status.code(), Some(1), "{status:?}");
}

#[test]
fn telnetd_on_a_terminal_that_goes_away() {
    let mut t = PtySession::spawn(Command::new(our_bin("in-telnetd")).args(["-L", "/bin/cat"]));
    // The greeting (telnet option negotiation, IAC = 0xff) shows it is relaying.
    let start = Instant::now();
    while !t.seen.contains(&0xff) {
        assert!(start.elapsed() < LIMIT, "no telnet greeting");
        t.expect("\u{0}", Duration::from_millis(50));
    }
    t.hang_up();
    let (status, timed_out) = t.wait(LIMIT);
    assert_no_panic("in.telnetd", status, timed_out, &t.screen());
}

#[test]
fn no_program_prints_with_panicking_macros() {
    // The rule held by a scan: daemons and messages after a hand-over use
    // uml_proto::logline, never println!/eprintln!/print!/eprint!.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut bad = Vec::new();
    for dir in ["uml_switch/src", "port-helper/src", "kernel/src"] {
        scan(&root.join(dir), &mut bad);
    }
    assert!(
        bad.is_empty(),
        "panicking print macros in:\n{}",
        bad.join("\n")
    );
}

fn scan(dir: &Path, bad: &mut Vec<String>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            scan(&p, bad);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = fs::read_to_string(&p).unwrap();
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                let code = code
                    .replace("quiet_eprintln!(", "")
                    .replace("quiet_print!(", "");
                if ["println!(", "print!("].iter().any(|m| code.contains(m)) {
                    bad.push(format!("{}:{}: {}", p.display(), i + 1, line.trim()));
                }
            }
        }
    }
}
