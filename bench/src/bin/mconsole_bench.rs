//! mconsole benchmark: requests per second over one client connection, and the
//! whole-process time of `uml_mconsole NAME version`, ours against the C client, in the
//! same run against the same booted linux.uml.
//!
//! Build first: `cargo build --release -p uml_mconsole -p bench`, then run
//! `target/release/mconsole_bench [REQUESTS] [PROCESSES]` (defaults 2000 and 200).

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
    drop(boot);
}
