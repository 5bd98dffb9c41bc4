//! Cost of a trapped syscall under the kernel's platform: a static getpid loop (the
//! guest times itself with the vDSO clock) run natively, under the platform with seccomp
//! SECCOMP_RET_TRACE stops and with PTRACE_SYSEMU stops (getpid answered by the
//! demonstration sentry), and as a linux.uml guest, in the same run.
//!
//! Two figures per case: wall time per call as the guest sees it (sensitive to the load
//! of a shared machine: each trap is two context switches), and host CPU time per call
//! (tracer thread + guest, or linux.uml and its helpers, from getrusage), which load
//! changes much less.
//!
//! Build first: `cargo build --release -p bench --bin platform_bench`, then run
//! `target/release/platform_bench [CALLS] [LINUX_CALLS]` (defaults 200000 and 100000).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kernel::syscalls::platform::demo::{DemoSentry, Outcome};
use kernel::syscalls::platform::{Creds, Image, Mode, Platform};
use nix::sys::resource::{getrusage, UsageWho};
use tests::{scratch, GuestImage, Uml};

const RUNS: usize = 5;
/// gVisor's published figures (2023 systrap announcement), µs per getpid.
const GVISOR_SYSTRAP_US: f64 = 2.4;
const GVISOR_PTRACE_US: f64 = 15.4;
const TARGET_US: f64 = 5.0;

fn build_loop(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/getpid_loop.c");
    let out = dir.join("getpid_loop");
    tests::gcc_static(&src, &out, &[]);
    out
}

/// Parses the guest's `getpid N NS_PER_CALL PID` line; returns µs per call and the pid
/// the guest saw.
fn parse(out: &str) -> (f64, i64) {
    let line = out
        .lines()
        .find(|l| l.starts_with("getpid "))
        .unwrap_or_else(|| panic!("no result line in {out:?}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    let ns: f64 = f[2].parse().expect("ns per call");
    (ns / 1e3, f[3].parse().expect("pid"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

/// CPU seconds (user + system) of `who` so far.
fn cpu(who: UsageWho) -> f64 {
    let u = getrusage(who).expect("getrusage");
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    secs(u.user_time()) + secs(u.system_time())
}

/// Wall and CPU µs per call.
#[derive(Clone, Copy)]
struct Cost {
    wall: f64,
    cpu: f64,
}

fn medians(v: Vec<Cost>) -> Cost {
    Cost {
        wall: median(v.iter().map(|c| c.wall).collect()),
        cpu: median(v.iter().map(|c| c.cpu).collect()),
    }
}

/// The floor of any design where another process answers: µs per one-byte round trip
/// through `cat` over pipes (two context switches and four syscalls, as a ptrace stop).
fn pipe_round_trip(rounds: u32) -> Cost {
    use std::io::{Read, Write};
    let (thread0, children0) = (cpu(UsageWho::RUSAGE_THREAD), cpu(UsageWho::RUSAGE_CHILDREN));
    let mut cat = Command::new("cat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn cat");
    let (mut to, mut from) = (
        cat.stdin.take().expect("stdin"),
        cat.stdout.take().expect("stdout"),
    );
    let mut byte = [0u8; 1];
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        to.write_all(b"x").expect("write to cat");
        from.read_exact(&mut byte).expect("read from cat");
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    drop(to);
    let _ = cat.wait();
    let spent = cpu(UsageWho::RUSAGE_THREAD) - thread0 + cpu(UsageWho::RUSAGE_CHILDREN) - children0;
    Cost {
        wall: us,
        cpu: spent * 1e6 / rounds as f64,
    }
}

fn native(bin: &Path, calls: u64, which: &str) -> f64 {
    let out = Command::new(bin)
        .arg(calls.to_string())
        .arg(which)
        .output()
        .expect("run loop");
    parse(&String::from_utf8_lossy(&out.stdout)).0
}

fn under_platform(image: &Image, mode: Mode, calls: u64, which: &str) -> Cost {
    let (thread0, children0) = (cpu(UsageWho::RUSAGE_THREAD), cpu(UsageWho::RUSAGE_CHILDREN));
    let mut platform = Platform::new(mode, Creds::default_for_host()).expect("platform");
    let argv = [
        "getpid_loop".to_string(),
        calls.to_string(),
        which.to_string(),
    ];
    let pid = platform
        .spawn(image, &argv, &[] as &[&str])
        .expect("spawn guest");
    let mut sentry = DemoSentry::default();
    let outcome = sentry.run(&mut platform, pid).expect("serve guest");
    let out = String::from_utf8_lossy(&sentry.output).into_owned();
    assert_eq!(outcome, Outcome::Exited(0), "guest output: {out}");
    let (us, seen) = parse(&out);
    if which == "getpid" {
        assert_eq!(seen, 1, "getpid was not answered by the sentry");
    }
    let spent = cpu(UsageWho::RUSAGE_THREAD) - thread0 + cpu(UsageWho::RUSAGE_CHILDREN) - children0;
    Cost {
        wall: us,
        cpu: spent * 1e6 / calls as f64,
    }
}

/// One linux.uml boot whose init runs the loop with `calls`; the guest's µs per call
/// and the CPU seconds linux.uml (and everything it reaped) used.
fn linux_uml_boot(bin: &Path, calls: u64) -> Option<(f64, f64)> {
    let dir = scratch();
    let loop_bytes = std::fs::read(bin).expect("read loop");
    let init = format!("#!/bin/sh\n/bin/getpid_loop {calls} getpid\npoweroff -f\n");
    let image = GuestImage::build_with(
        &dir.path().join("root.img"),
        &init,
        32,
        &[("bin/getpid_loop", &loop_bytes, 0o755)],
    );
    let uml = Uml::new(dir.path(), "platbench")?.root(&image.path.display().to_string());
    let children0 = cpu(UsageWho::RUSAGE_CHILDREN);
    let out = uml.boot_to_poweroff(Duration::from_secs(300));
    let spent = cpu(UsageWho::RUSAGE_CHILDREN) - children0;
    Some((parse(&out.stdout).0, spent))
}

/// linux.uml: wall µs per call from the guest; CPU per call from a boot with `calls`
/// minus a boot with none.
fn under_linux_uml(bin: &Path, calls: u64) -> Option<Cost> {
    let (wall, busy) = linux_uml_boot(bin, calls)?;
    let (_, idle) = linux_uml_boot(bin, 0)?;
    Some(Cost {
        wall,
        cpu: (busy - idle).max(0.0) * 1e6 / calls as f64,
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let calls: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let linux_calls: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let dir = scratch();
    let bin = build_loop(dir.path());
    let image = Image::from_host_file(&bin).expect("guest image");

    let native_us = median(
        (0..RUNS)
            .map(|_| native(&bin, calls * 5, "getpid"))
            .collect(),
    );
    let seccomp = medians(
        (0..RUNS)
            .map(|_| under_platform(&image, Mode::Seccomp, calls, "getpid"))
            .collect(),
    );
    let sysemu = medians(
        (0..RUNS)
            .map(|_| under_platform(&image, Mode::Sysemu, calls, "getpid"))
            .collect(),
    );
    // An allow-listed syscall: runs on the host under seccomp, replayed under SYSEMU.
    let clock_native = median(
        (0..RUNS)
            .map(|_| native(&bin, calls * 5, "clock"))
            .collect(),
    );
    let clock_seccomp = medians(
        (0..RUNS)
            .map(|_| under_platform(&image, Mode::Seccomp, calls * 5, "clock"))
            .collect(),
    );
    let clock_sysemu = medians(
        (0..RUNS)
            .map(|_| under_platform(&image, Mode::Sysemu, calls / 2, "clock"))
            .collect(),
    );
    let round_trip = medians((0..RUNS).map(|_| pipe_round_trip(20_000)).collect());
    let linux = if linux_calls > 0 {
        under_linux_uml(&bin, linux_calls)
    } else {
        None
    };

    println!("getpid loop, µs per call (median of {RUNS} runs; {calls} trapped calls a run)");
    println!("                               wall     host CPU");
    println!("native                     {native_us:>8.3}");
    println!(
        "pipe round trip to `cat`   {:>8.3}  {:>8.3}   (floor: 2 context switches)",
        round_trip.wall, round_trip.cpu
    );
    let row = |name: &str, c: Cost, native: f64| {
        println!(
            "{name:<26} {:>8.3}  {:>8.3}   ({:.0}x native wall)",
            c.wall,
            c.cpu,
            c.wall / native
        )
    };
    row("platform, seccomp stops", seccomp, native_us);
    row("platform, PTRACE_SYSEMU", sysemu, native_us);
    match linux {
        Some(l) => row(&format!("linux.uml guest ({linux_calls})"), l, native_us),
        None => println!("linux.uml guest            skipped (UML_SKIP_INTEROP or 0 calls)"),
    }
    println!("allow-listed clock_gettime (raw syscall), µs per call:");
    println!("native                     {clock_native:>8.3}");
    row("platform, seccomp (host)", clock_seccomp, clock_native);
    row("platform, SYSEMU (replay)", clock_sysemu, clock_native);
    println!(
        "seccomp vs SYSEMU, host CPU: trapped {:.2} vs {:.2} µs ({:.2}x); allow-listed {:.2} vs {:.2} µs ({:.0}x)",
        seccomp.cpu,
        sysemu.cpu,
        sysemu.cpu / seccomp.cpu,
        clock_seccomp.cpu,
        clock_sysemu.cpu,
        clock_sysemu.cpu / clock_seccomp.cpu
    );
    if let Some(l) = linux {
        println!(
            "linux.uml / platform (seccomp): wall {:.2}x, CPU {:.2}x",
            l.wall / seccomp.wall,
            l.cpu / seccomp.cpu
        );
    }
    println!(
        "published (gVisor): systrap {GVISOR_SYSTRAP_US} µs, ptrace platform {GVISOR_PTRACE_US} µs, native 0.24 µs"
    );
    println!(
        "target: trapped syscall <= {TARGET_US} µs: wall {}, CPU {}",
        if seccomp.wall <= TARGET_US {
            "met"
        } else {
            "MISSED"
        },
        if seccomp.cpu <= TARGET_US {
            "met"
        } else {
            "MISSED"
        }
    );
}
