//! Kernel start-up benchmark: time from exec to the mconsole socket answering `version`,
//! and the peak resident memory of the kernel process (with everything it reaped), for
//! uml-kernel and for linux.uml (mem=48M), both booting a COW over the same guest image,
//! in the same run.
//!
//! Build first: `cargo build --release -p kernel -p bench`, then run
//! `target/release/kernel_bench [OUR_RUNS] [LINUX_RUNS]` (defaults 30 and 3).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tests::{linux_uml, scratch, GuestImage};
use uml_proto::mconsole::{Client, Timeouts};

const INIT: &str = "#!/bin/sh\nwhile true; do sleep 1; done\n";
/// Give up on a kernel that has not answered by then.
const LIMIT: Duration = Duration::from_secs(30);

struct Sample {
    answer: Duration,
    peak_rss_kib: u64,
}

/// Asks `version` until the kernel answers; returns when it did.
fn wait_for_version(socket: &Path, child: &mut Child, poll: Duration) -> Option<Instant> {
    let start = Instant::now();
    while start.elapsed() < LIMIT {
        if socket.exists() {
            if let Ok(mut c) = Client::new(socket, Timeouts::new(Duration::from_millis(500))) {
                if c.request(b"version").is_ok_and(|r| r.ok()) {
                    return Some(Instant::now());
                }
            }
        }
        if child.try_wait().ok().flatten().is_some() {
            return None;
        }
        std::thread::sleep(poll);
    }
    None
}

/// Halts through mconsole and reaps the process; returns its peak RSS in KiB
/// (the kernel reports the largest of the process and the children it reaped).
fn halt_and_reap(socket: &Path, child: &mut Child) -> u64 {
    if let Ok(mut c) = Client::new(socket, Timeouts::new(Duration::from_secs(2))) {
        let _ = c.request(b"halt");
    }
    let pid = child.id() as libc::pid_t;
    let deadline = Instant::now() + LIMIT;
    loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our child; status and usage point at live locals.
        let rc = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if rc == pid {
            return usage.ru_maxrss as u64;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn one_run(
    kernel: &Path,
    home: &Path,
    image: &Path,
    umid: &str,
    extra: &[&str],
    poll: Duration,
) -> Option<Sample> {
    let cow = home.join(format!("{umid}.cow"));
    let _ = std::fs::remove_file(&cow);
    let socket = home.join(".uml").join(umid).join("mconsole");
    let start = Instant::now();
    let mut child = Command::new(kernel)
        .arg(format!("umid={umid}"))
        .arg(format!("ubd0={},{}", cow.display(), image.display()))
        .args(extra)
        .env("HOME", home)
        .current_dir(home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kernel");
    let answered = wait_for_version(&socket, &mut child, poll);
    let peak = halt_and_reap(&socket, &mut child);
    answered.map(|t| Sample {
        answer: t - start,
        peak_rss_kib: peak,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn summarize(name: &str, samples: &[Sample]) -> (f64, f64) {
    let ms = median(
        samples
            .iter()
            .map(|s| s.answer.as_secs_f64() * 1e3)
            .collect(),
    );
    let rss = median(
        samples
            .iter()
            .map(|s| s.peak_rss_kib as f64 / 1024.0)
            .collect(),
    );
    println!(
        "{name:<12} runs {:>3}  exec->version median {ms:>9.2} ms  peak RSS median {rss:>7.2} MiB",
        samples.len()
    );
    (ms, rss)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let ours_n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let linux_n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let dir = scratch();
    let home = dir.path().to_owned();
    let image = GuestImage::build(&home.join("root.img"), INIT).path;
    let kernel = bench::our_bin("uml-kernel");
    let ours: Vec<Sample> = (0..ours_n)
        .filter_map(|i| {
            one_run(
                &kernel,
                &home,
                &image,
                &format!("k{i}"),
                &["con0=null"],
                Duration::from_micros(100),
            )
        })
        .collect();
    let Some(linux) = linux_uml() else { return };
    let theirs: Vec<Sample> = (0..linux_n)
        .filter_map(|i| {
            one_run(
                &linux,
                &home,
                &image,
                &format!("l{i}"),
                &["mem=48M", "root=/dev/ubda", "con0=null", "con=null"],
                Duration::from_millis(5),
            )
        })
        .collect();
    assert!(!ours.is_empty() && !theirs.is_empty(), "no kernel answered");
    let (our_ms, our_rss) = summarize("uml-kernel", &ours);
    let (lx_ms, lx_rss) = summarize("linux.uml", &theirs);
    println!(
        "ratio (linux.uml / uml-kernel): start-up {:.0}x faster, peak RSS {:.1}x smaller",
        lx_ms / our_ms,
        lx_rss / our_rss
    );
    println!(
        "targets: uml-kernel <= 10 ms: {}; <= 4 MiB: {}",
        if our_ms <= 10.0 { "met" } else { "MISSED" },
        if our_rss <= 4.0 { "met" } else { "MISSED" }
    );
}
