//! mconsole benchmark: requests per second over one client connection, the
//! whole-process time of `uml_mconsole NAME version`, and how often a `sysrq m` answer
//! (a dozen reply packets or more, which the kernel drops when the client's queue is
//! full) arrives cut short, quiet and under a CPU hog; ours against the C client, in
//! the same run against the same booted linux.uml.
//!
//! Build first: `cargo build --release -p uml_mconsole -p bench`, then run
//! `target/release/mconsole_bench [REQUESTS] [PROCESSES] [SYSRQ_RUNS]` (defaults 2000,
//! 200 and 30).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::{c_tool, scratch, GuestImage, Uml};
use uml_proto::mconsole::{Client, Timeouts};

const INIT: &str = "#!/bin/sh\nwhile true; do sleep 1; done\n";

/// Our uml_mconsole, built beside this benchmark.
fn our_client() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let path = exe.parent().expect("target dir").join("uml_mconsole");
    assert!(
        path.exists(),
        "{} is not built: cargo build --release -p uml_mconsole -p bench",
        path.display()
    );
    path
}

/// Runs `bin NAME` with `n` lines of `version` on stdin (one connection, one
/// request after another); returns requests per second.
fn script_rate(bin: &Path, home: &Path, n: usize) -> f64 {
    let input = "version\n".repeat(n);
    let mut file = tempfile_with(&input);
    let start = Instant::now();
    let status = Command::new(bin)
        .arg("bench")
        .env("HOME", home)
        .stdin(Stdio::from(file.take().expect("stdin")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run client");
    let took = start.elapsed();
    assert!(status.success(), "{} failed on the script", bin.display());
    n as f64 / took.as_secs_f64()
}

/// An unlinked file holding `text`, positioned at its start.
fn tempfile_with(text: &str) -> Option<std::fs::File> {
    use std::io::{Seek, Write};
    let mut f = tempfile::tempfile().expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f.rewind().expect("rewind");
    Some(f)
}

/// Requests per second through the library (no process, no output).
fn library_rate(socket: &Path, n: usize) -> f64 {
    let mut c = Client::new(socket, Timeouts::new(Duration::from_secs(10))).expect("client");
    let start = Instant::now();
    for _ in 0..n {
        let r = c.request(b"version").expect("version");
        assert!(r.ok());
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// One `bin bench version` run, timed from spawn to exit.
fn one_shot(bin: &Path, home: &Path) -> Duration {
    let start = Instant::now();
    let status = Command::new(bin)
        .args(["bench", "version"])
        .env("HOME", home)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run client");
    let took = start.elapsed();
    assert!(status.success(), "{} bench version failed", bin.display());
    took
}

/// A `sysrq m` answer with every run of digits replaced by `N` (the figures move
/// between runs; the lines do not).
fn masked(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !out.ends_with('N') {
                out.push('N');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What one client printed for `sysrq m`: None unless it exited successfully within
/// 5 s (the C client waits forever for a lost last packet; ours reports a lost
/// tail and fails).
type Answer = Option<String>;

fn sysrq_once(bin: &Path, home: &Path) -> Answer {
    let out = tests::run(
        Command::new(bin)
            .args(["bench", "sysrq", "m"])
            .env("HOME", home),
        Duration::from_secs(5),
    );
    out.success().then(|| masked(&out.stdout))
}

/// `runs` answers from each client, alternating.
fn sysrq_runs(ours: &Path, c: &Path, home: &Path, runs: usize) -> (Vec<Answer>, Vec<Answer>) {
    let (mut o, mut k) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        o.push(sysrq_once(ours, home));
        k.push(sysrq_once(c, home));
    }
    (o, k)
}

/// What a complete answer looks like: its number of lines and its last line (the
/// lines' figures and some flags vary between runs; their number does not).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Shape {
    lines: usize,
    last: String,
}

fn shape(text: &str) -> Shape {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    Shape {
        lines: lines.len(),
        last: lines.last().map_or(String::new(), |l| (*l).to_owned()),
    }
}

/// How many answers were not complete.
fn cut_short(answers: &[Answer], complete: &Shape) -> usize {
    answers
        .iter()
        .filter(|a| a.as_deref().map(shape).as_ref() != Some(complete))
        .count()
}

/// Busy loops on every CPU, twice over; killed (by pid) when dropped.
struct Hog(Vec<std::process::Child>);

impl Hog {
    fn start() -> Hog {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
        Hog((0..n)
            .map(|_| {
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .expect("start a CPU hog")
            })
            .collect())
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The cut-short rates of `sysrq m`, quiet and under a CPU hog.
fn sysrq_figures(ours: &Path, c: &Path, socket: &Path, home: &Path, runs: usize) {
    let packets = Client::new(socket, Timeouts::new(Duration::from_secs(10)))
        .and_then(|mut c| c.request(b"sysrq m"))
        .map_or(0, |r| r.packets);
    let quiet = sysrq_runs(ours, c, home, runs.div_ceil(3));
    // The complete answer: the most common shape of the quiet runs.
    let mut counts = std::collections::HashMap::new();
    for a in quiet.0.iter().chain(&quiet.1).flatten() {
        *counts.entry(shape(a)).or_insert(0usize) += 1;
    }
    let Some((complete, _)) = counts.into_iter().max_by_key(|(_, n)| *n) else {
        println!("sysrq m: no client ever got an answer; nothing to compare");
        return;
    };
    let loaded = {
        let _hog = Hog::start();
        std::thread::sleep(Duration::from_millis(200));
        sysrq_runs(ours, c, home, runs)
    };
    let pct = |n: usize, of: usize| 100.0 * n as f64 / of as f64;
    println!(
        "`sysrq m` answers cut short ({packets} reply packets, {} lines when complete):",
        complete.lines
    );
    for (what, (o, k)) in [("quiet", &quiet), ("CPU hog", &loaded)] {
        let (on, kn) = (cut_short(o, &complete), cut_short(k, &complete));
        println!(
            "  {what:8} ours {on:3}/{:<3} ({:5.1}%)   C {kn:3}/{:<3} ({:5.1}%)   ratio ours/C {}",
            o.len(),
            pct(on, o.len()),
            k.len(),
            pct(kn, k.len()),
            if kn == 0 {
                format!("{on}/0")
            } else {
                format!("{:.2}", on as f64 / kn as f64)
            }
        );
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mean(v: &[Duration]) -> Duration {
    v.iter().sum::<Duration>() / v.len() as u32
}

fn main() {
    let mut args = std::env::args().skip(1);
    let requests: usize = args.next().map_or(2000, |a| a.parse().expect("REQUESTS"));
    let processes: usize = args.next().map_or(200, |a| a.parse().expect("PROCESSES"));
    let sysrq_runs: usize = args.next().map_or(30, |a| a.parse().expect("SYSRQ_RUNS"));
    let ours = our_client();
    let c = c_tool("uml_mconsole").expect("the C uml_mconsole");

    let dir = scratch();
    let image = GuestImage::build(&dir.path().join("root.img"), INIT);
    let home = dir.path().join("home");
    let uml = Uml::new(&home, "bench")
        .expect("linux.uml")
        .root(image.path.to_str().expect("utf-8"));
    let mut boot = uml.spawn(Duration::from_secs(30));
    assert!(boot.wait_for_console("Run /sbin/init", Duration::from_secs(30)));
    let socket = uml.mconsole_path();

    // Warm up both clients and the page cache.
    for _ in 0..5 {
        one_shot(&ours, &home);
        one_shot(&c, &home);
    }

    println!("mconsole benchmark against linux.uml ({requests} requests, {processes} processes)");
    // Each measured twice, the better run kept: the first run warms the kernel's paths.
    let best = |f: &dyn Fn() -> f64| f().max(f());
    let c_rate = best(&|| script_rate(&c, &home, requests));
    let ours_rate = best(&|| script_rate(&ours, &home, requests));
    let lib = best(&|| library_rate(&socket, requests));
    println!("requests/s over one connection (version):");
    println!("  uml_proto::mconsole::Client  {lib:9.0}");
    println!("  ours (stdin script)          {ours_rate:9.0}");
    println!("  C    (stdin script)          {c_rate:9.0}");
    println!("  ratio ours/C                 {:9.2}", ours_rate / c_rate);

    let mut ours_t = Vec::with_capacity(processes);
    let mut c_t = Vec::with_capacity(processes);
    for _ in 0..processes {
        ours_t.push(one_shot(&ours, &home));
        c_t.push(one_shot(&c, &home));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("whole process `uml_mconsole bench version` (ms):");
    println!(
        "  ours  mean {:6.3}  median {:6.3}",
        ms(mean(&ours_t)),
        ms(median(ours_t.clone()))
    );
    println!(
        "  C     mean {:6.3}  median {:6.3}",
        ms(mean(&c_t)),
        ms(median(c_t.clone()))
    );
    println!(
        "  ratio ours/C (median time; < 1 is faster) {:.2}",
        ms(median(ours_t)) / ms(median(c_t))
    );
    sysrq_figures(&ours, &c, &socket, &home, sysrq_runs);
    drop(boot);
}
