//! Guest processes, uml-kernel's sentry against linux.uml, same image, same run: the
//! time from starting the kernel to init's first console line, and 1,000
//! fork+exec+wait of `/bin/true` from the init shell (a path, so busybox sh really
//! forks and execs). Both kernels boot the busybox image with `init=/sbin/init`; the
//! times are read from the console as it fills (polled every 200 µs).
//!
//! Build first: `cargo build --release -p bench --bin kernel_proc_bench -p kernel`, then
//! run `target/release/kernel_proc_bench [RUNS]` (default 3).

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use bench::our_bin;
use tests::{scratch, GuestImage, KernelRun, Uml};

const LOOPS: u32 = 1000;
const LIMIT: Duration = Duration::from_secs(300);

fn script() -> String {
    format!(
        "#!/bin/sh\necho first-line\ni=0\necho loop-start\n\
         while [ $i -lt {LOOPS} ]; do /bin/true; i=$((i+1)); done\n\
         echo loop-end\npoweroff -f\n"
    )
}

/// When each marker first showed in the console file, measured from `start`.
fn watch(console: &Path, start: Instant, markers: &[&str]) -> Vec<Duration> {
    let mut seen = Vec::new();
    while seen.len() < markers.len() {
        assert!(
            start.elapsed() < LIMIT,
            "no {:?} on the console within {LIMIT:?}:\n{}",
            markers[seen.len()],
            fs::read_to_string(console).unwrap_or_default()
        );
        let text = fs::read_to_string(console).unwrap_or_default();
        let now = start.elapsed();
        while seen.len() < markers.len() && text.contains(markers[seen.len()]) {
            seen.push(now);
        }
        thread::sleep(Duration::from_micros(200));
    }
    seen
}

/// (boot to first line, fork+exec+wait loop) for one boot of uml-kernel.
fn ours(dir: &Path, image: &Path, run: usize) -> (Duration, Duration) {
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
    let t = watch(&k.console, start, &["first-line", "loop-start", "loop-end"]);
    let _ = k.wait_exit(LIMIT);
    (t[0], t[2] - t[1])
}

/// The same for linux.uml; None when interop is skipped.
fn theirs(dir: &Path, image: &Path, run: usize) -> Option<(Duration, Duration)> {
    let img = dir.join(format!("theirs{run}.img"));
    fs::copy(image, &img).expect("copy image");
    let uml = Uml::new(&dir.join("uml-home"), &format!("procbench-uml{run}"))?
        .root(&img.display().to_string());
    let start = Instant::now();
    let mut boot = uml.spawn(LIMIT);
    let t = watch(
        &boot.console_log,
        start,
        &["first-line", "loop-start", "loop-end"],
    );
    let _ = boot.wait_exit(LIMIT);
    Some((t[0], t[2] - t[1]))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let dir = scratch();
    let image = GuestImage::build(&dir.path().join("base.img"), &script());
    let (mut ob, mut ol, mut tb, mut tl) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let (b, l) = ours(dir.path(), &image.path, run);
        ob.push(b);
        ol.push(l);
        if let Some((b, l)) = theirs(dir.path(), &image.path, run) {
            tb.push(b);
            tl.push(l);
        }
    }
    let (ob, ol) = (median(ob), median(ol));
    let per = |d: Duration| d.as_secs_f64() * 1e6 / LOOPS as f64;
    println!("guest processes, median of {runs} boots each (busybox image, init=/sbin/init)");
    println!(
        "  boot to init's first line: uml-kernel {:8.1} ms",
        ob.as_secs_f64() * 1e3
    );
    println!(
        "  {LOOPS} fork+exec+wait of /bin/true: uml-kernel {:8.1} ms ({:.0} µs each)",
        ol.as_secs_f64() * 1e3,
        per(ol)
    );
    if tb.is_empty() {
        println!("  linux.uml: skipped (UML_SKIP_INTEROP)");
        return;
    }
    let (tb, tl) = (median(tb), median(tl));
    println!(
        "  boot to init's first line: linux.uml  {:8.1} ms   ratio uml-kernel/linux.uml {:.3}",
        tb.as_secs_f64() * 1e3,
        ob.as_secs_f64() / tb.as_secs_f64()
    );
    println!(
        "  {LOOPS} fork+exec+wait of /bin/true: linux.uml  {:8.1} ms ({:.0} µs each)   ratio {:.2}",
        tl.as_secs_f64() * 1e3,
        per(tl),
        ol.as_secs_f64() / tl.as_secs_f64()
    );
}
