//! uml-kernel in the background, as the tests and the benchmarks run it: console on a
//! pipe (stdin) and a file (stdout and stderr), HOME set so its umid directory lands in
//! a scratch directory, killed by pid when dropped. One spawn for all of them.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A running uml-kernel.
pub struct KernelRun {
    pub child: Child,
    /// The console's input; None once closed.
    pub stdin: Option<ChildStdin>,
    /// The file holding everything the console printed.
    pub console: PathBuf,
    pub home: PathBuf,
    pub umid: String,
    marks: u32,
}

impl KernelRun {
    /// Boots our uml-kernel on the ext2 `image` as linux.uml boots a disk (`ubd0=IMAGE
    /// root=/dev/ubda rw init=/sbin/init con0=fd:0,fd:1 con=null`, then `extra`).
    pub fn boot_disk(home: &Path, umid: &str, image: &Path, extra: &[&str]) -> KernelRun {
        let mut args = vec![
            format!("ubd0={}", image.display()),
            "root=/dev/ubda".to_string(),
            "rw".into(),
            "init=/sbin/init".into(),
            "con0=fd:0,fd:1".into(),
            "con=null".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        KernelRun::start(
            KernelRun::command(&crate::peers::our_bin("uml-kernel"), umid, &args),
            home,
            umid,
        )
    }

    /// Runs our `uml_mconsole UMID CMD...` against this kernel (at most 10 s).
    pub fn mconsole(&self, cmd: &str) -> crate::command::Output {
        crate::command::run(
            Command::new(crate::peers::our_bin("uml_mconsole"))
                .arg(&self.umid)
                .args(cmd.split(' '))
                .env("HOME", &self.home),
            Duration::from_secs(10),
        )
    }

    /// Starts `cmd` (a uml-kernel command line with `umid=UMID`, see [`Self::command`];
    /// maybe behind `nsenter`) with HOME=`home`, its console on a pipe and
    /// `home/UMID.console`.
    /// Panics (saying why) when it cannot be started.
    pub fn start(mut cmd: Command, home: &Path, umid: &str) -> KernelRun {
        fs::create_dir_all(home).expect("kernel home");
        let console = home.join(format!("{umid}.console"));
        let out = fs::File::create(&console).expect("console file");
        let mut child = cmd
            .env("HOME", home)
            .stdin(Stdio::piped())
            .stdout(out.try_clone().expect("console file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn uml-kernel ({:?}): {e}", cmd.get_program()));
        let stdin = child.stdin.take();
        KernelRun {
            child,
            stdin,
            console,
            home: home.to_owned(),
            umid: umid.to_owned(),
            marks: 0,
        }
    }

    /// The command line `kernel umid=UMID ARGS...`.
    pub fn command<S: AsRef<OsStr>>(kernel: &Path, umid: &str, args: &[S]) -> Command {
        let mut cmd = Command::new(kernel);
        cmd.arg(format!("umid={umid}")).args(args);
        cmd
    }

    /// Its mconsole socket (`HOME/.uml/UMID/mconsole`).
    pub fn socket(&self) -> PathBuf {
        self.home.join(".uml").join(&self.umid).join("mconsole")
    }

    /// Waits (at most `limit`) for its mconsole socket; panics with the console if none.
    pub fn wait_socket(&self, limit: Duration) {
        let start = Instant::now();
        while !self.socket().exists() {
            assert!(
                start.elapsed() < limit,
                "no mconsole socket:\n{}",
                self.output()
            );
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Everything the console printed so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.console).unwrap_or_default()
    }

    /// Types `line` and Enter on the console.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("console input already closed");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .expect("write to the guest console");
    }

    /// Waits at most `limit` for `text` after byte `from` of the console; returns the
    /// console from `from` on, or None on timeout.
    pub fn wait_from(&self, from: usize, text: &str, limit: Duration) -> Option<String> {
        let start = Instant::now();
        loop {
            let out = self.output();
            if out.get(from..).is_some_and(|o| o.contains(text)) {
                return Some(out[from..].to_string());
            }
            if start.elapsed() > limit {
                return None;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Runs `cmd` in the guest shell and returns only what it printed: the console
    /// between the typed line and an end mark echoed after it, without the shell's
    /// prompts; panics with the console after `limit`.
    pub fn sh(&mut self, cmd: &str, limit: Duration) -> String {
        self.marks += 1;
        let mark = format!("END-OF-{}", self.marks);
        let from = self.output().len();
        self.type_line(&format!("{cmd}\necho {mark}"));
        let start = Instant::now();
        loop {
            let out = self.output();
            if let Some(end) = out.get(from..).and_then(|o| mark_line(o, &mark)) {
                return strip_prompts(&out[from..from + end]);
            }
            assert!(
                start.elapsed() < limit,
                "`{cmd}` did not finish on {}:\n{out}",
                self.umid
            );
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits at most `limit` for it to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            thread::sleep(Duration::from_millis(1));
        }
        None
    }
}

impl Drop for KernelRun {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Where the line that is exactly `mark` (after any prompts) starts in `out`, if the
/// shell printed it yet; the typed command line that contains the mark does not count.
/// A guest tty ends lines with CR LF (ONLCR), the built-in shell with LF.
fn mark_line(out: &str, mark: &str) -> Option<usize> {
    let mut at = 0;
    while let Some(i) = out[at..].find(mark) {
        let pos = at + i;
        let rest = &out[pos + mark.len()..];
        let line_start = out[..pos].rfind('\n').map_or(0, |n| n + 1);
        let whole = rest.starts_with('\n') || rest.starts_with("\r\n");
        if whole && strip_prompts(&out[line_start..pos]).is_empty() {
            return Some(pos);
        }
        at = pos + mark.len();
    }
    None
}

/// `text` without the shell prompts ("# ") that start its lines.
fn strip_prompts(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            let mut line = line;
            while let Some(rest) = line.strip_prefix("# ") {
                line = rest;
            }
            line
        })
        .collect()
}

/// The console lines between a guest script's `=== begin` and `=== end` markers,
/// without carriage returns; panics (naming `who`, with the console) when they are
/// missing.
pub fn between_markers(console: &str, who: &str) -> Vec<String> {
    let lines: Vec<String> = console
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    let start = lines.iter().position(|l| l == "=== begin");
    let end = lines.iter().position(|l| l == "=== end");
    match (start, end) {
        (Some(s), Some(e)) if s < e => lines[s + 1..e].to_vec(),
        _ => panic!("{who}: the markers are missing from the console:\n{console}"),
    }
}

/// Whether the process (or thread) whose /proc directory is `dir` still runs: it is
/// there and not a zombie (pid reuse aside, within a test's bound).
pub fn alive(dir: &Path) -> bool {
    let stat = fs::read_to_string(dir.join("stat")).unwrap_or_default();
    !stat.is_empty()
        && !stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
}

/// Waits (at most `limit`) until none of the processes behind `dirs` runs; panics with
/// `what` when one outlives the bound.
pub fn wait_all_gone(dirs: &[PathBuf], limit: Duration, what: &str) {
    let start = Instant::now();
    while dirs.iter().any(|d| alive(d)) {
        assert!(start.elapsed() < limit, "{what}");
        thread::sleep(Duration::from_millis(20));
    }
}
