//! Running a program with a bounded wait: output captured, killed by pid on timeout.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// What a finished (or killed) program produced.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code; None when killed by a signal (including our timeout kill).
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

fn drain(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Waits for `child` at most `limit`, killing it (by its pid) when time runs out.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> (std::process::ExitStatus, bool) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return (status, false);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            return (child.wait().expect("wait after kill"), true);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `cmd` with stdin from /dev/null, capturing stdout and stderr, for at most `limit`.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    run_from(cmd, Stdio::null(), limit)
}

fn run_from(cmd: &mut Command, stdin: Stdio, limit: Duration) -> Output {
    use std::os::unix::process::ExitStatusExt;
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let out = drain(child.stdout.take().expect("stdout"));
    let err = drain(child.stderr.take().expect("stderr"));
    let (status, timed_out) = wait_bounded(&mut child, limit);
    Output {
        code: status.code(),
        signal: status.signal(),
        stdout: String::from_utf8_lossy(&out.join().expect("stdout reader")).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().expect("stderr reader")).into_owned(),
        timed_out,
    }
}

/// Runs `cmd` (60 s limit) and panics with its output unless it exits 0.
pub fn run_ok(cmd: &mut Command) -> Output {
    let desc = format!("{cmd:?}");
    let out = run(cmd, Duration::from_secs(60));
    assert!(
        out.success(),
        "{desc} failed ({:?}{}):\nstdout: {}\nstderr: {}",
        out.code,
        if out.timed_out { ", timed out" } else { "" },
        out.stdout,
        out.stderr
    );
    out
}

/// Runs `cmd` like [`run`] but with `input` on its stdin.
pub fn run_input(cmd: &mut Command, input: &[u8], limit: Duration) -> Output {
    let mut file = tempfile::tempfile().expect("stdin file");
    std::io::Write::write_all(&mut file, input).expect("write stdin file");
    std::io::Seek::rewind(&mut file).expect("rewind stdin file");
    run_from(cmd, Stdio::from(file), limit)
}
