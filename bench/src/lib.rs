//! What every benchmark shares: running a program and measuring its wall time and peak
//! memory (from wait4's rusage), finding our release binaries, simple statistics.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// CPU time the calling thread has used, in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec for clock_gettime to fill in.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One measured run of a program.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub wall: Duration,
    /// Peak resident set size in bytes.
    pub max_rss: u64,
    pub user: Duration,
    pub sys: Duration,
}

/// The argument that makes a benchmark binary act as the measuring parent of one command.
const MEASURE_FLAG: &str = "--measure-child";

/// Call first in every benchmark's `main`. Peak memory (ru_maxrss) counts the memory a
/// child shares with its parent until it execs, so the benchmark does not spawn tools
/// itself: it re-executes itself, small and fresh, as the tool's parent, and that
/// process reports the tool's figures on stdout.
pub fn serve_measurement() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_none_or(|a| a != MEASURE_FLAG) {
        return;
    }
    let mut cmd = Command::new(&args[2]);
    cmd.args(&args[3..]);
    let m = measure_here(&mut cmd);
    println!(
        "{} {} {} {}",
        m.wall.as_nanos(),
        m.max_rss,
        m.user.as_nanos(),
        m.sys.as_nanos()
    );
    std::process::exit(0);
}

/// Runs `cmd` to completion (stdout discarded) and measures it, through a fresh copy of
/// this binary (see [`serve_measurement`]); panics if it fails, so that no figure is
/// printed for a run that did not do its work.
pub fn measure(cmd: &mut Command) -> Measured {
    let mut wrapper = Command::new(std::env::current_exe().expect("current_exe"));
    wrapper
        .arg(MEASURE_FLAG)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        wrapper.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapper.env(k, v),
            None => wrapper.env_remove(k),
        };
    }
    let out = wrapper
        .stderr(Stdio::inherit())
        .output()
        .expect("run the measuring child");
    assert!(out.status.success(), "{cmd:?} failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let n: Vec<u128> = text
        .split_whitespace()
        .map(|f| f.parse().expect("measurement figures"))
        .collect();
    let ns = |x: u128| Duration::from_nanos(x as u64);
    Measured {
        wall: ns(n[0]),
        max_rss: n[1] as u64,
        user: ns(n[2]),
        sys: ns(n[3]),
    }
}

/// Spawns `cmd` from this process and measures it with wait4.
fn measure_here(cmd: &mut Command) -> Measured {
    let desc = format!("{cmd:?}");
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for the child we just spawned.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child's pid with valid pointers.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert!(pid > 0, "wait4 failed for {desc}");
    // Reaped by wait4 above; this only lets std know (it returns at once).
    let _ = child.try_wait();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{desc} failed with status {status:#x}"
    );
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Measured {
        wall,
        max_rss: usage.ru_maxrss as u64 * 1024,
        user: tv(usage.ru_utime),
        sys: tv(usage.ru_stime),
    }
}

/// The best (shortest) of `n` runs of `setup` then `cmd`: `setup` prepares each run
/// and is not timed.
pub fn best_of(n: usize, mut setup: impl FnMut(), mut cmd: impl FnMut() -> Command) -> Measured {
    let mut best: Option<Measured> = None;
    for _ in 0..n {
        setup();
        let m = measure(&mut cmd());
        if best.is_none_or(|b| m.wall < b.wall) {
            best = Some(m);
        }
    }
    best.expect("at least one run")
}

/// One of our programs, beside this benchmark binary (build with
/// `cargo build --release --workspace`).
pub fn our_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let path = exe.parent().expect("bin dir").join(name);
    assert!(
        path.exists(),
        "{} missing: run `cargo build --release --workspace` first",
        path.display()
    );
    path
}

/// A peer program that must exist for the comparison.
pub fn peer(path: &str, package: &str) -> PathBuf {
    assert!(
        Path::new(path).exists(),
        "{path} missing: install the Debian package {package} (scripts/setup)"
    );
    PathBuf::from(path)
}

pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}
