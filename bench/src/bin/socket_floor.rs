//! socket_floor: the floor for a switch's CPU per forwarded frame. One thread sends a
//! datagram of SIZE bytes on one end of a connected unix datagram socket pair and
//! receives it on the other, over and over, for SECONDS; it prints the CPU time per
//! send + receive in nanoseconds (what a switch must at least spend to take in a frame
//! and hand it on). switch_bench runs it pinned beside the switches in the same run.
//!
//! Usage: socket_floor SIZE SECONDS [CPU]

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(size), Some(secs)) = (
        args.first().and_then(|s| s.parse::<usize>().ok()),
        args.get(1).and_then(|s| s.parse::<f64>().ok()),
    ) else {
        eprintln!("usage: socket_floor SIZE SECONDS [CPU]");
        std::process::exit(2);
    };
    if let Some(cpu) = args.get(2).and_then(|s| s.parse::<usize>().ok()) {
        // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET write inside it only.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_ZERO(&mut set);
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }
    let (a, b) = match UnixDatagram::pair() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("socket_floor: socketpair: {e}");
            std::process::exit(1);
        }
    };
    let frame = vec![0x55u8; size];
    let mut buf = vec![0u8; 2048];
    let limit = Duration::from_secs_f64(secs);
    let (t0, c0) = (Instant::now(), bench::thread_cpu_ns());
    let mut n = 0u64;
    while t0.elapsed() < limit {
        for _ in 0..256 {
            if a.send(&frame).is_err() || b.recv(&mut buf).is_err() {
                eprintln!("socket_floor: send/receive failed");
                std::process::exit(1);
            }
        }
        n += 256;
    }
    println!("{:.1}", (bench::thread_cpu_ns() - c0) as f64 / n as f64);
}
