//! Guest processes, uml-kernel's sentry against linux.uml, same image, same run. Both
//! kernels boot one busybox image with `init=/sbin/init`, whose init script runs, in
//! order:
//! - its first line (boot time: from starting the kernel to that line on the console);
//! - a trapped syscall: `/bin/getpid_loop` (static C, raw `syscall` instructions) makes
//!   100,000 getpid calls and prints its own µs per call (the same binary runs natively);
//! - 1,000 fork+exec+wait of `/bin/true` from the shell (a path, so busybox sh really
//!   forks and execs);
//! - `tar cf` of 2,000 files (1 KiB each, in 20 directories) into /tmp;
//! - a busybox shell loop of 100,000 iterations (`[`, `$((...))`: no syscall), also run
//!   natively by the host's busybox.
//!
//! Phases are timed from the console as it fills (polled every 200 µs): the time between
//! a phase's start and end markers. The targets of issue 14 are printed beside the
//! figures: first init line <= 20 ms; trapped syscall <= 5 µs; fork+exec and tar at least
//! as fast as linux.uml; shell loop within 1.5x native.
//!
//! Build first: `cargo build --release -p bench -p kernel`, then run
//! `target/release/kernel_proc_bench [RUNS]` (default 3; the median is shown).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use bench::our_bin;
use tests::{scratch, GuestImage, KernelRun, Uml};

const FORKS: u32 = 1000;
const GETPIDS: u32 = 100_000;
const FILES: u32 = 2000;
const DIRS: u32 = 20;
const SHELL_LOOPS: u32 = 100_000;
const LIMIT: Duration = Duration::from_secs(300);
const SHELL_LOOP: &str = "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done";

/// Console markers, in the order the init script prints them.
const MARKS: [&str; 9] = [
    "first-line",
    "getpid ",
    "fork-start",
    "fork-end",
    "tar-start",
    "tar-end",
    "shell-start",
    "shell-end",
    "all-done",
];

fn script() -> String {
    format!(
        "#!/bin/sh\necho first-line\n/bin/getpid_loop {GETPIDS} getpid\n\
         i=0\necho fork-start\n\
         while [ $i -lt {FORKS} ]; do /bin/true; i=$((i+1)); done\necho fork-end\n\
         mount -t proc proc /proc\n\
         echo tar-start\ntar cf /tmp/data.tar /data\necho tar-end\n\
         echo shell-start\n{SHELL_LOOP}\necho shell-end\n\
         echo all-done\npoweroff -f\n"
    )
}

fn build_getpid_loop(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/getpid_loop.c");
    let out = dir.join("getpid_loop");
    tests::gcc_static(&src, &out, &[]);
    out
}

/// The image: busybox, the init script, the getpid loop and 2,000 files under /data.
fn image(dir: &Path, getpid_loop: &Path) -> GuestImage {
    let loop_bytes = fs::read(getpid_loop).expect("read getpid_loop");
    let names: Vec<String> = (0..FILES)
        .map(|i| format!("data/d{:02}/f{i:04}", i % DIRS))
        .collect();
    let content: Vec<Vec<u8>> = (0..FILES)
        .map(|i| format!("{i:1023}\n").into_bytes())
        .collect();
    let mut files: Vec<(&str, &[u8], u32)> = vec![("bin/getpid_loop", &loop_bytes, 0o755)];
    for (n, c) in names.iter().zip(&content) {
        files.push((n, c, 0o644));
    }
    GuestImage::build_with(&dir.join("base.img"), &script(), 64, &files)
}

/// When each marker first showed in the console file, measured from `start`; and the
/// console text at the end.
fn watch(console: &Path, start: Instant) -> (Vec<Duration>, String) {
    let mut seen = Vec::new();
    loop {
        let text = fs::read_to_string(console).unwrap_or_default();
        let now = start.elapsed();
        while seen.len() < MARKS.len() && text.contains(MARKS[seen.len()]) {
            seen.push(now);
        }
        if seen.len() == MARKS.len() {
            return (seen, text);
        }
        assert!(
            start.elapsed() < LIMIT,
            "no {:?} on the console within {LIMIT:?}:\n{text}",
            MARKS[seen.len()],
        );
        thread::sleep(Duration::from_micros(200));
    }
}

/// The figures of one boot.
#[derive(Clone, Copy, Default)]
struct Figures {
    boot: Duration,
    /// µs per getpid as the guest timed it.
    getpid_us: f64,
    forks: Duration,
    tar: Duration,
    shell: Duration,
}

/// Parses the guest's `getpid N NS_PER_CALL PID` line: µs per call.
fn getpid_us(out: &str) -> f64 {
    let line = out
        .lines()
        .find_map(|l| l.find("getpid ").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("no getpid line in {out:?}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    f.get(2)
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("bad getpid line {line:?}"))
        / 1e3
}

fn figures(t: &[Duration], console: &str) -> Figures {
    Figures {
        boot: t[0],
        getpid_us: getpid_us(console),
        forks: t[3] - t[2],
        tar: t[5] - t[4],
        shell: t[7] - t[6],
    }
}

/// One boot of uml-kernel.
fn ours(dir: &Path, image: &Path, run: usize) -> Figures {
    let img = dir.join(format!("ours{run}.img"));
    fs::copy(image, &img).expect("copy image");
    let umid = format!("procbench{run}");
    let args = [
        format!("ubd0={}", img.display()),
        "root=/dev/ubda".into(),
        "rw".into(),
        "init=/sbin/init".into(),
        "con0=fd:0,fd:1".into(),
        "con=null".into(),
    ];
    let start = Instant::now();
    let mut k = KernelRun::start(
        KernelRun::command(&our_bin("uml-kernel"), &umid, &args),
        &dir.join("home"),
        &umid,
    );
    let (t, text) = watch(&k.console, start);
    let _ = k.wait_exit(LIMIT);
    figures(&t, &text)
}

/// One boot of linux.uml; None when interop is skipped.
fn theirs(dir: &Path, image: &Path, run: usize) -> Option<Figures> {
    let img = dir.join(format!("theirs{run}.img"));
    fs::copy(image, &img).expect("copy image");
    let uml = Uml::new(&dir.join("uml-home"), &format!("procbench-uml{run}"))?
        .root(&img.display().to_string());
    let start = Instant::now();
    let mut boot = uml.spawn(LIMIT);
    let (t, text) = watch(&boot.console_log, start);
    let _ = boot.wait_exit(LIMIT);
    Some(figures(&t, &text))
}

/// The host: µs per getpid, and busybox's shell loop, natively (wall time, and the CPU
/// time it used: on a loaded machine the wall time of a 100 ms loop swings).
fn native(getpid_loop: &Path) -> (f64, Duration, Duration) {
    let out = Command::new(getpid_loop)
        .args([(GETPIDS * 10).to_string(), "getpid".into()])
        .output()
        .expect("run getpid_loop");
    let us = getpid_us(&String::from_utf8_lossy(&out.stdout));
    let m = bench::measure(Command::new("/bin/busybox").args(["sh", "-c", SHELL_LOOP]));
    (us, m.wall, m.user + m.sys)
}

fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn medians(v: &[Figures]) -> Figures {
    Figures {
        boot: median(v.iter().map(|f| f.boot).collect()),
        getpid_us: median(v.iter().map(|f| f.getpid_us).collect()),
        forks: median(v.iter().map(|f| f.forks).collect()),
        tar: median(v.iter().map(|f| f.tar).collect()),
        shell: median(v.iter().map(|f| f.shell).collect()),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

fn main() {
    bench::serve_measurement();
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let dir = scratch();
    let getpid_loop = build_getpid_loop(dir.path());
    let image = image(dir.path(), &getpid_loop);
    let (mut o, mut t, mut n) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        o.push(ours(dir.path(), &image.path, run));
        if let Some(f) = theirs(dir.path(), &image.path, run) {
            t.push(f);
        }
        n.push(native(&getpid_loop));
    }
    let o = medians(&o);
    let (native_us, native_shell, native_cpu) = (
        median(n.iter().map(|x| x.0).collect()),
        median(n.iter().map(|x| x.1).collect()),
        median(n.iter().map(|x| x.2).collect()),
    );
    let t = (!t.is_empty()).then(|| medians(&t));
    println!("guest processes, median of {runs} boots each (busybox image, init=/sbin/init)");
    println!("                                   uml-kernel    linux.uml   ours/theirs   native");
    let row = |name: &str, ours: f64, theirs: Option<f64>, unit: &str, native: Option<f64>| {
        let th = theirs.map_or("     skipped".into(), |v| format!("{v:>10.2} {unit}"));
        let ratio = theirs.map_or("".into(), |v| format!("{:>10.2}", ours / v));
        let nat = native.map_or("".into(), |v| format!("   {v:>8.2} {unit}"));
        println!("  {name:<30} {ours:>10.2} {unit} {th} {ratio:>12}{nat}");
    };
    row(
        "boot to init's first line",
        ms(o.boot),
        t.map(|t| ms(t.boot)),
        "ms",
        None,
    );
    row(
        "getpid (trapped), per call",
        o.getpid_us,
        t.map(|t| t.getpid_us),
        "µs",
        Some(native_us),
    );
    row(
        &format!("{FORKS} fork+exec+wait /bin/true"),
        ms(o.forks),
        t.map(|t| ms(t.forks)),
        "ms",
        None,
    );
    row(
        &format!("tar cf of {FILES} files"),
        ms(o.tar),
        t.map(|t| ms(t.tar)),
        "ms",
        None,
    );
    row(
        &format!("sh loop, {SHELL_LOOPS} iterations"),
        ms(o.shell),
        t.map(|t| ms(t.shell)),
        "ms",
        Some(ms(native_shell)),
    );
    println!(
        "  native sh loop: {:.2} ms wall, {:.2} ms CPU",
        ms(native_shell),
        ms(native_cpu)
    );
    println!(
        "  per fork+exec+wait: uml-kernel {:.0} µs{}",
        o.forks.as_secs_f64() * 1e6 / FORKS as f64,
        t.map_or(String::new(), |t| format!(
            ", linux.uml {:.0} µs",
            t.forks.as_secs_f64() * 1e6 / FORKS as f64
        ))
    );
    println!("targets:");
    println!(
        "  first init line <= 20 ms: {} ({:.1} ms)",
        verdict(ms(o.boot) <= 20.0),
        ms(o.boot)
    );
    println!(
        "  trapped syscall <= 5 µs: {} ({:.2} µs; {:.0}x native)",
        verdict(o.getpid_us <= 5.0),
        o.getpid_us,
        o.getpid_us / native_us
    );
    if let Some(t) = t {
        println!(
            "  fork+exec at least as fast as linux.uml: {} (ratio {:.2})",
            verdict(o.forks <= t.forks),
            o.forks.as_secs_f64() / t.forks.as_secs_f64()
        );
        println!(
            "  tar at least as fast as linux.uml: {} (ratio {:.2})",
            verdict(o.tar <= t.tar),
            o.tar.as_secs_f64() / t.tar.as_secs_f64()
        );
    }
    println!(
        "  shell loop within 1.5x native: {} ({:.2}x native wall, {:.2}x native CPU)",
        verdict(o.shell.as_secs_f64() <= 1.5 * native_shell.as_secs_f64()),
        o.shell.as_secs_f64() / native_shell.as_secs_f64(),
        o.shell.as_secs_f64() / native_cpu.as_secs_f64()
    );
}
