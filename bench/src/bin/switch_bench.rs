//! switch_bench: a load generator speaking the daemon transport's protocol, run against
//! our uml_switch, the C uml_switch and vde_switch in the same run. For 64, 512 and
//! 1500-byte frames, 1 and 4 sender/receiver pairs, 0 and 50 idle ports, it measures
//! closed-loop frames per second (a window of frames in flight per pair, below the
//! 10-datagram unix queue so that nothing is lost for lack of room), loss, and the
//! switch's CPU time per forwarded frame (the switch pinned to CPU 0, the generator to
//! CPU 1), beside the floor (socket_floor: one bare send + receive of the same datagram
//! on a connected socket pair, on CPU 0); then the loss under an open-loop flood (one
//! pair, 64-byte frames sent at a paced rate whatever comes back, in 1 ms bursts, the
//! sender blocking when the switch's queue is full, so every loss is the switch's);
//! then the median ping-pong round trip with switch and client on one CPU.
//!
//! Usage: switch_bench [--seconds S] [--only ours|c|vde]... [--size BYTES]... [--rounds N] [--repeat N] [--rtt-only] [--flood-only] [--baseline OTHER_UML_SWITCH]
//! Build first: cargo build --release -p uml_switch -p bench

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use uml_proto::ether::{emit_header, MacAddr};
use uml_proto::switch::{attach, recv_from, send_to, Client, DataAddr, Request};

/// One of our programs, built beside this benchmark binary (same profile).
fn our_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --release -p {name}` first",
        p.display()
    );
    p
}

/// Pins process (or thread) `pid` (0: the caller) to `cpu`.
fn pin(pid: i32, cpu: usize) -> std::io::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(pid), &set)?;
    Ok(())
}

/// CPU time used so far by process `pid`, in nanoseconds: utime + stime from
/// /proc/PID/stat (clock ticks), refined by /proc/PID/schedstat (ns) when present.
fn cpu_time_ns(pid: i32) -> u64 {
    if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/schedstat")) {
        if let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse().ok()) {
            return ns;
        }
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1) as u64;
    ticks * 1_000_000_000 / hz
}

/// Voluntary context switches (sleeps) of process `pid` so far.
fn sleeps(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The median of `v` (sorted in place); 0 for an empty slice.
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// `--baseline`: another uml_switch binary to measure beside ours.
static BASELINE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Frames in flight per pair (the receiving socket queues at most 10).
const WINDOW: u32 = 8;
/// A pair making no progress for this long has lost what it has in flight.
const STALL: Duration = Duration::from_millis(100);
const SWITCH_CPU: usize = 0;
const LOAD_CPU: usize = 1;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Ours,
    /// Another build of ours (`--baseline PATH`), e.g. before a change.
    Base,
    C,
    Vde,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::Base => "baseline",
            Kind::C => "C uml_switch",
            Kind::Vde => "vde_switch",
        }
    }
}

/// A switch under test, killed by pid when dropped.
struct Running {
    child: Child,
    ctl: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(kind: Kind, dir: &Path, ours: &Path) -> io::Result<Running> {
    let (mut cmd, ctl) = match kind {
        Kind::Ours | Kind::C | Kind::Base => {
            let ctl = dir.join(format!("{kind:?}.ctl"));
            let bin = if kind == Kind::Ours {
                ours.to_owned()
            } else if kind == Kind::Base {
                PathBuf::from(BASELINE.get().cloned().unwrap_or_default())
            } else {
                PathBuf::from("/usr/bin/uml_switch")
            };
            let mut c = Command::new(bin);
            c.arg("-unix").arg(&ctl);
            if kind != Kind::C {
                c.args(["--log-level", "warn"]);
            }
            (c, ctl)
        }
        Kind::Vde => {
            let sock = dir.join("vde");
            let mut c = Command::new("/usr/bin/vde_switch");
            c.arg("-s").arg(&sock).args(["-n", "256"]);
            (c, sock.join("ctl"))
        }
    };
    // vde_switch treats EOF on stdin as "quit": give it a pipe we keep open.
    let child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("SWITCH_BENCH_STDERR").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()?;
    let r = Running { child, ctl };
    let t0 = Instant::now();
    while !r.ctl.exists() {
        if t0.elapsed() > Duration::from_secs(5) {
            return Err(io::Error::other(format!(
                "{} made no control socket",
                kind.name()
            )));
        }
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(50));
    Ok(r)
}

struct Names(u32);

impl Names {
    fn client(&mut self, ctl: &Path) -> io::Result<Client> {
        self.0 += 1;
        let local = DataAddr::abstract_name(std::process::id(), 0x4000_0000 + self.0);
        attach(
            ctl,
            local,
            |addr| Request::V3 { addr },
            None,
            Duration::from_secs(5),
        )
    }
}

fn frame(dst: MacAddr, src: MacAddr, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    emit_header(dst, src, 0x88b5, &mut f).expect("header");
    f
}

fn mac(pair: usize, side: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, pair as u8, side])
}

/// Reads everything waiting on `c`; returns how many frames.
fn drain(c: &Client, buf: &mut [u8]) -> u64 {
    let mut n = 0;
    while recv_from(c.data.as_fd(), buf).is_ok() {
        n += 1;
    }
    n
}

struct Throughput {
    fps: f64,
    cpu_ns_per_frame: f64,
    sleeps_per_frame: f64,
    loss: f64,
}

fn throughput(
    sw: &Running,
    names: &mut Names,
    size: usize,
    pairs: usize,
    idle: usize,
    secs: f64,
) -> io::Result<Throughput> {
    let mut idle_ports = Vec::new();
    for _ in 0..idle {
        idle_ports.push(names.client(&sw.ctl)?);
    }
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..pairs {
        senders.push(names.client(&sw.ctl)?);
        receivers.push(names.client(&sw.ctl)?);
    }
    let mut buf = vec![0u8; 2048];
    // Let the switch learn every MAC, then clear the queues.
    for i in 0..pairs {
        send_to(
            receivers[i].data.as_fd(),
            &frame(MacAddr::BROADCAST, mac(i, 2), 60),
            &receivers[i].switch,
        )?;
        send_to(
            senders[i].data.as_fd(),
            &frame(MacAddr::BROADCAST, mac(i, 1), 60),
            &senders[i].switch,
        )?;
    }
    thread::sleep(Duration::from_millis(100));
    for c in senders.iter().chain(&receivers).chain(&idle_ports) {
        drain(c, &mut buf);
    }
    let frames: Vec<Vec<u8>> = (0..pairs)
        .map(|i| frame(mac(i, 2), mac(i, 1), size))
        .collect();
    let mut in_flight = vec![0u32; pairs];
    let mut progress = vec![Instant::now(); pairs];
    let (mut sent, mut received, mut lost) = (0u64, 0u64, 0u64);
    let pid = sw.child.id() as i32;
    let cpu0 = cpu_time_ns(pid);
    let sleeps0 = sleeps(pid);
    let t0 = Instant::now();
    let limit = Duration::from_secs_f64(secs);
    while t0.elapsed() < limit {
        for i in 0..pairs {
            while in_flight[i] < WINDOW
                && send_to(senders[i].data.as_fd(), &frames[i], &senders[i].switch).is_ok()
            {
                in_flight[i] += 1;
                sent += 1;
            }
        }
        let now = Instant::now();
        for i in 0..pairs {
            let got = drain(&receivers[i], &mut buf);
            if got > 0 {
                received += got;
                in_flight[i] = in_flight[i].saturating_sub(got as u32);
                progress[i] = now;
            } else if in_flight[i] > 0 && now.duration_since(progress[i]) > STALL {
                lost += in_flight[i] as u64;
                in_flight[i] = 0;
                progress[i] = now;
            }
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu1 = cpu_time_ns(pid);
    let sleeps1 = sleeps(pid);
    thread::sleep(Duration::from_millis(30));
    for r in &receivers {
        received += drain(r, &mut buf);
    }
    Ok(Throughput {
        fps: received as f64 / elapsed,
        cpu_ns_per_frame: (cpu1 - cpu0) as f64 / received.max(1) as f64,
        sleeps_per_frame: (sleeps1 - sleeps0) as f64 / received.max(1) as f64,
        loss: lost.max(sent.saturating_sub(received)) as f64 / sent.max(1) as f64,
    })
}

/// The median of each figure over repeated runs; None if every run failed.
fn median_of(runs: Vec<Throughput>) -> Option<Throughput> {
    if runs.is_empty() {
        return None;
    }
    let pick = |f: fn(&Throughput) -> f64| median(&mut runs.iter().map(f).collect::<Vec<f64>>());
    Some(Throughput {
        fps: pick(|t| t.fps),
        cpu_ns_per_frame: pick(|t| t.cpu_ns_per_frame),
        sleeps_per_frame: pick(|t| t.sleeps_per_frame),
        loss: pick(|t| t.loss),
    })
}

fn wait_readable(c: &Client, ms: u16) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(c.data.as_fd(), PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::from(ms)).is_ok_and(|n| n > 0)
}

/// Median round trip A -> B -> A in microseconds, switch and generator on one CPU.
fn ping_pong(sw: &Running, names: &mut Names, rounds: usize) -> io::Result<f64> {
    let a = names.client(&sw.ctl)?;
    let b = names.client(&sw.ctl)?;
    let (ma, mb) = (MacAddr([2, 0, 0, 9, 0, 1]), MacAddr([2, 0, 0, 9, 0, 2]));
    let mut buf = vec![0u8; 2048];
    send_to(
        a.data.as_fd(),
        &frame(MacAddr::BROADCAST, ma, 60),
        &a.switch,
    )?;
    send_to(
        b.data.as_fd(),
        &frame(MacAddr::BROADCAST, mb, 60),
        &b.switch,
    )?;
    thread::sleep(Duration::from_millis(50));
    drain(&a, &mut buf);
    drain(&b, &mut buf);
    let to_b = frame(mb, ma, 64);
    let to_a = frame(ma, mb, 64);
    let mut rtts = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        send_to(a.data.as_fd(), &to_b, &a.switch)?;
        if !wait_readable(&b, 1000) {
            continue;
        }
        drain(&b, &mut buf);
        send_to(b.data.as_fd(), &to_a, &b.switch)?;
        if !wait_readable(&a, 1000) {
            continue;
        }
        drain(&a, &mut buf);
        rtts.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(median(&mut rtts))
}

/// The floor: socket_floor's CPU per send + receive of `size` bytes on SWITCH_CPU.
fn floor_ns(size: usize, secs: f64) -> Option<f64> {
    let out = Command::new(our_bin("socket_floor"))
        .args([size.to_string(), secs.to_string(), SWITCH_CPU.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// One open-loop flood run.
struct Flood {
    /// Frames per second the sender managed (it blocks while the switch is full).
    sent_fps: f64,
    loss: f64,
    cpu_ns_per_frame: f64,
    /// Share of the time the switch's CPU was not busy.
    idle: f64,
}

fn set_blocking(fd: i32, recv_timeout_ms: i64) {
    // SAFETY: fcntl and setsockopt on our own descriptor, with a valid timeval.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: recv_timeout_ms * 1000,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
}

/// Floods one pair at `rate` frames/s (None: as fast as the sender can) for `secs`.
fn flood(
    sw: &Running,
    names: &mut Names,
    size: usize,
    rate: Option<f64>,
    secs: f64,
) -> io::Result<Flood> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let s = names.client(&sw.ctl)?;
    let r = names.client(&sw.ctl)?;
    let mut buf = vec![0u8; 2048];
    send_to(
        r.data.as_fd(),
        &frame(MacAddr::BROADCAST, mac(7, 2), 60),
        &r.switch,
    )?;
    send_to(
        s.data.as_fd(),
        &frame(MacAddr::BROADCAST, mac(7, 1), 60),
        &s.switch,
    )?;
    thread::sleep(Duration::from_millis(100));
    drain(&s, &mut buf);
    drain(&r, &mut buf);
    set_blocking(s.data.as_raw_fd(), 0);
    set_blocking(r.data.as_raw_fd(), 200);
    let f = frame(mac(7, 2), mac(7, 1), size);
    let stop = AtomicBool::new(false);
    let received = AtomicU64::new(0);
    let pid = sw.child.id() as i32;
    let rfd = r.data.as_raw_fd();
    let (sent, elapsed, cpu) = thread::scope(|sc| {
        sc.spawn(|| {
            let _ = pin(0, LOAD_CPU);
            let mut b = [0u8; 2048];
            let mut n = 0u64;
            loop {
                // SAFETY: b is a writable buffer of the length passed; rfd stays open.
                let got =
                    unsafe { libc::recv(rfd, b.as_mut_ptr() as *mut libc::c_void, b.len(), 0) };
                if got >= 0 {
                    n += 1;
                } else if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            received.store(n, Ordering::Relaxed);
        });
        let cpu0 = cpu_time_ns(pid);
        let t0 = Instant::now();
        let limit = Duration::from_secs_f64(secs);
        let mut sent = 0u64;
        let sfd = s.data.as_fd();
        while t0.elapsed() < limit {
            let target = match rate {
                Some(r) => (t0.elapsed().as_secs_f64() * r) as u64,
                None => sent + 64,
            };
            while sent < target {
                // SAFETY: f is a valid slice; the address buffer holds len bytes.
                let r = unsafe {
                    libc::sendto(
                        sfd.as_raw_fd(),
                        f.as_ptr() as *const libc::c_void,
                        f.len(),
                        0,
                        s.switch.bytes.as_ptr() as *const libc::sockaddr,
                        s.switch.len as libc::socklen_t,
                    )
                };
                if r >= 0 {
                    sent += 1;
                } else {
                    break;
                }
            }
            if rate.is_some() {
                thread::sleep(Duration::from_millis(1));
            }
        }
        let elapsed = t0.elapsed().as_secs_f64();
        let cpu = cpu_time_ns(pid) - cpu0;
        stop.store(true, Ordering::Relaxed);
        (sent, elapsed, cpu)
    });
    let received = received.load(Ordering::Relaxed);
    Ok(Flood {
        sent_fps: sent as f64 / elapsed,
        loss: sent.saturating_sub(received) as f64 / sent.max(1) as f64,
        cpu_ns_per_frame: cpu as f64 / received.max(1) as f64,
        idle: 1.0 - cpu as f64 / (elapsed * 1e9),
    })
}

/// The open-loop flood at rising loads, every peer interleaved; prints the table.
fn flood_table(
    kinds: &[Kind],
    dir: &Path,
    ours: &Path,
    names: &mut Names,
    secs: f64,
    repeat: usize,
) {
    let loads = [
        Some(25e3),
        Some(50e3),
        Some(100e3),
        Some(150e3),
        Some(200e3),
        Some(300e3),
        None,
    ];
    println!("\nopen-loop flood, one pair, 64-byte frames, switch on CPU {SWITCH_CPU}, sender and receiver on CPU {LOAD_CPU} (median of {repeat}):");
    print!("{:<10}", "offered");
    for k in kinds {
        print!(
            " | {:>36}",
            format!("{}: sent/s loss ns/frame idle", k.name())
        );
    }
    println!();
    for load in loads {
        let mut runs: Vec<Vec<Flood>> = kinds.iter().map(|_| Vec::new()).collect();
        for _ in 0..repeat {
            for (ki, &k) in kinds.iter().enumerate() {
                let r = (|| {
                    let sw = start(k, dir, ours)?;
                    pin(sw.child.id() as i32, SWITCH_CPU)?;
                    pin(0, LOAD_CPU)?;
                    flood(&sw, names, 64, load, secs)
                })();
                match r {
                    Ok(f) => runs[ki].push(f),
                    Err(e) => eprintln!("{} flood: {e}", k.name()),
                }
            }
        }
        let label = load.map_or("max".to_string(), |l| format!("{:.0}k/s", l / 1e3));
        print!("{label:<10}");
        for r in &runs {
            if r.is_empty() {
                print!(" | {:>36}", "failed");
                continue;
            }
            let pick = |f: fn(&Flood) -> f64| median(&mut r.iter().map(f).collect::<Vec<f64>>());
            print!(
                " | {:>9.0} {:>7.3}% {:>7.0} {:>6.1}%",
                pick(|f| f.sent_fps),
                pick(|f| f.loss) * 100.0,
                pick(|f| f.cpu_ns_per_frame),
                pick(|f| f.idle) * 100.0
            );
        }
        println!();
    }
    println!("(sent/s: what the sender got into the switch; loss: sent but never received; idle: the switch's CPU not busy)");
}

/// Runs in a network namespace of its own when allowed (abstract socket names then stay
/// out of the machine's namespace).
fn private_netns() -> bool {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).is_ok()
}

fn main() {
    let mut secs = 1.0;
    let mut only: Vec<String> = Vec::new();
    let mut sizes: Vec<usize> = Vec::new();
    let mut rounds = 2000usize;
    let mut repeat = 3usize;
    let mut rtt_only = false;
    let mut flood_only = false;
    let mut baseline: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => {
                secs = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seconds S")
            }
            "--only" => only.push(args.next().expect("--only NAME")),
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--rounds N")
            }
            "--rtt-only" => rtt_only = true,
            "--flood-only" => flood_only = true,
            "--baseline" => baseline = Some(args.next().expect("--baseline PATH")),
            "--repeat" => {
                repeat = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--repeat N")
            }
            "--size" => sizes.push(
                args.next()
                    .and_then(|s| s.parse().ok())
                    .expect("--size BYTES"),
            ),
            "--help" | "-h" => {
                println!("usage: switch_bench [--seconds S] [--only ours|c|vde]... [--size BYTES]... [--rounds N] [--repeat N] [--rtt-only] [--flood-only] [--baseline OTHER_UML_SWITCH]");
                return;
            }
            other => {
                eprintln!("switch_bench: unknown argument '{other}'");
                std::process::exit(2);
            }
        }
    }
    let netns = private_netns();
    let ours = our_bin("uml_switch");
    let mut all = vec![Kind::Ours, Kind::C, Kind::Vde];
    if let Some(b) = baseline {
        let _ = BASELINE.set(b);
        all.insert(1, Kind::Base);
    }
    let kinds: Vec<Kind> = all
        .into_iter()
        .filter(|k| {
            only.is_empty()
                || only.iter().any(|o| {
                    (o == "ours" && *k == Kind::Ours)
                        || (o == "c" && *k == Kind::C)
                        || (o == "vde" && *k == Kind::Vde)
                        || *k == Kind::Base
                })
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("switch_bench.{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    println!(
        "switch_bench: {secs} s per run, median of {repeat} runs per point, window {WINDOW} frames per pair, switch on CPU {SWITCH_CPU}, load on CPU {LOAD_CPU}{}",
        if netns { ", private network namespace" } else { "" }
    );
    let mut names = Names(0);
    let mut table: Vec<(String, Vec<Option<Throughput>>)> = Vec::new();
    if sizes.is_empty() && !rtt_only && !flood_only {
        sizes = vec![64, 512, 1500];
    }
    if flood_only {
        sizes.clear();
    }
    // The floor for each size, measured in this run on the switches' CPU.
    let floors: Vec<(usize, f64)> = sizes
        .iter()
        .map(|&size| {
            let mut v: Vec<f64> = (0..repeat).filter_map(|_| floor_ns(size, secs)).collect();
            (size, median(&mut v))
        })
        .collect();
    for &size in &sizes {
        for pairs in [1usize, 4] {
            for idle in [0usize, 50] {
                // Each peer `repeat` times, interleaved, so that the machine's changing
                // load falls on all of them alike; each figure is the median.
                let mut runs: Vec<Vec<Throughput>> = kinds.iter().map(|_| Vec::new()).collect();
                for _ in 0..repeat {
                    for (ki, &k) in kinds.iter().enumerate() {
                        let r = (|| {
                            let sw = start(k, &dir, &ours)?;
                            pin(sw.child.id() as i32, SWITCH_CPU)?;
                            pin(0, LOAD_CPU)?;
                            throughput(&sw, &mut names, size, pairs, idle, secs)
                        })();
                        match r {
                            Ok(t) => runs[ki].push(t),
                            Err(e) => eprintln!("{} {size}B {pairs}p {idle}i: {e}", k.name()),
                        }
                    }
                }
                let row: Vec<Option<Throughput>> = runs.into_iter().map(median_of).collect();
                table.push((
                    format!(
                        "{size:>4} B, {pairs} pair{}, {idle:>2} idle",
                        if pairs > 1 { "s" } else { " " }
                    ),
                    row,
                ));
            }
        }
    }
    print!("\n{:<26}", "point");
    for k in &kinds {
        print!(
            " | {:>32}",
            format!("{}: fps ns/frame sleeps loss", k.name())
        );
    }
    let ratio_heads: Vec<Kind> = kinds.iter().copied().filter(|k| *k != Kind::Ours).collect();
    for k in &ratio_heads {
        print!(" | {:>24}", format!("vs {}: fps x, cpu x", k.name()));
    }
    println!();
    for (label, row) in &table {
        print!("{label:<26}");
        for t in row {
            match t {
                Some(t) => print!(
                    " | {:>9.0} {:>8.0} {:>5.2} {:>6.3}%",
                    t.fps,
                    t.cpu_ns_per_frame,
                    t.sleeps_per_frame,
                    t.loss * 100.0
                ),
                None => print!(" | {:>32}", "failed"),
            }
        }
        if let (Some(Kind::Ours), Some(Some(o))) = (kinds.first(), row.first()) {
            for (i, k) in kinds.iter().enumerate().skip(1) {
                let _ = k;
                match &row[i] {
                    Some(p) => print!(
                        " | {:>11.2} {:>11.2}",
                        o.fps / p.fps,
                        p.cpu_ns_per_frame / o.cpu_ns_per_frame
                    ),
                    None => print!(" | {:>24}", "-"),
                }
            }
        }
        println!();
    }
    println!("(ns/frame: switch CPU per forwarded frame; sleeps: the switch's voluntary context switches per frame;\n fps x: our frames/s divided by the peer's; cpu x: the peer's CPU per frame divided by ours; > 1 means ours is better)");
    if !floors.is_empty() {
        println!("\nfloor (socket_floor: one send + receive on a connected socket pair, CPU {SWITCH_CPU}), and each switch's CPU per frame over it:");
        for (size, floor) in &floors {
            print!("  {size:>4} B: floor {floor:>6.0} ns");
            for (label, row) in &table {
                if !label.starts_with(&format!("{size:>4} B,")) {
                    continue;
                }
                for (k, t) in kinds.iter().zip(row) {
                    if let Some(t) = t {
                        print!(
                            " | {} [{}] {:.2}x",
                            k.name(),
                            label[7..].trim(),
                            t.cpu_ns_per_frame / floor
                        );
                    }
                }
            }
            println!();
        }
    }
    if !rtt_only {
        flood_table(&kinds, &dir, &ours, &mut names, secs, repeat);
    }
    if flood_only {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }

    println!(
        "\nping-pong round trip, switch and client both on CPU {SWITCH_CPU} (64-byte frames; median of {rounds} round trips, then of {repeat} runs):"
    );
    let mut rtts: Vec<Vec<f64>> = kinds.iter().map(|_| Vec::new()).collect();
    for _ in 0..repeat {
        for (ki, &k) in kinds.iter().enumerate() {
            let r = (|| {
                let sw = start(k, &dir, &ours)?;
                pin(sw.child.id() as i32, SWITCH_CPU)?;
                pin(0, SWITCH_CPU)?;
                ping_pong(&sw, &mut names, rounds)
            })();
            match r {
                Ok(us) => rtts[ki].push(us),
                Err(e) => eprintln!("{} ping-pong: {e}", k.name()),
            }
        }
    }
    let mut rtt_ours = None;
    for (ki, &k) in kinds.iter().enumerate() {
        if rtts[ki].is_empty() {
            println!("  {:<14} failed", k.name());
            continue;
        }
        let us = median(&mut rtts[ki]);
        let ratio = rtt_ours
            .map(|o: f64| format!("  (ours is {:.2}x of this)", o / us))
            .unwrap_or_default();
        println!("  {:<14} {us:>7.1} us{ratio}", k.name());
        if k == Kind::Ours {
            rtt_ours = Some(us);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
