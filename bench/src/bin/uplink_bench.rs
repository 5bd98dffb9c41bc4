//! uplink_bench: our uml_switch across a VXLAN uplink against the Linux kernel's own
//! path (a bridge with a tap and a vxlan device) over the same veth, in the same run.
//! Two "hosts" are network namespaces this program makes (never the machine's own),
//! joined by a veth pair; host b ends the overlay in a Linux vxlan device.
//! - Frames/s, CPU per frame and loss, 64-byte frames offered at 25k, 50k, 100k/s (in
//!   1 ms bursts) and as fast as the sender can, counted arriving at b's vxlan device:
//!   ours is the switch's CPU (a client on CPU 1 floods it with frames for a MAC it has
//!   not seen, so they go out of the uplink); the kernel's is the CPU of the thread
//!   writing the same frames into the tap (bridge, vxlan, UDP and veth all run in its
//!   write), on the same CPU 0 as the switch.
//! - Ping-pong round trip a -> b -> a: two of our switches joined by VXLAN with a
//!   client each, against two bridges joined by vxlan devices with a tap each.
//!
//! Usage: uplink_bench [--seconds S] [--repeat N] [--rounds N]
//! Build first: cargo build --release -p uml_switch -p bench

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tests::NetNs;
use uml_proto::ether::{emit_header, MacAddr};
use uml_proto::switch::{attach, recv_from, send_to, Client, DataAddr, Request};

const SWITCH_CPU: usize = 0;
const LOAD_CPU: usize = 1;
const VNI: u32 = 42;

fn our_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let p = exe.parent().expect("target dir").join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --release -p {name}` first",
        p.display()
    );
    p
}

fn pin(pid: i32, cpu: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET only write inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn cpu_time_ns(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Moves the calling thread into `ns`'s network namespace.
fn enter(ns: &NetNs) {
    let f = File::open(format!("/proc/{}/ns/net", ns.pid())).expect("netns file");
    // SAFETY: setns on an open namespace file; it changes only this thread.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns: {}", io::Error::last_os_error());
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn frame(dst: MacAddr, src: MacAddr, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    emit_header(dst, src, 0x88b5, &mut f).expect("header");
    f
}

/// Packets that arrived at interface `dev` in `ns`.
fn rx_packets(ns: &NetNs, dev: &str) -> u64 {
    ns.sh(&format!("cat /sys/class/net/{dev}/statistics/rx_packets"))
        .stdout
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Two hosts joined by a veth pair (a: 10.9.0.1 on va, b: 10.9.0.2 on vb), IPv6 off
/// so that nothing but the benchmark's frames crosses.
fn two_hosts() -> (NetNs, NetNs) {
    let (a, b) = (NetNs::new(), NetNs::new());
    for ns in [&a, &b] {
        ns.sh_ok(
            "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
        );
    }
    a.sh_ok(&format!(
        "ip link add va type veth peer name vb && ip link set vb netns /proc/{}/ns/net && \
         ip addr add 10.9.0.1/24 dev va && ip link set va up",
        b.pid()
    ));
    b.sh_ok("ip addr add 10.9.0.2/24 dev vb && ip link set vb up");
    (a, b)
}

/// A Linux vxlan device `dev` (VNI 42, port 4789) towards `remote`; with `tap`, in a
/// bridge with a tap device of that name.
fn linux_vxlan(ns: &NetNs, dev: &str, remote: &str, under: &str, tap: Option<&str>) {
    ns.sh_ok(&format!(
        "ip link add {dev} type vxlan id {VNI} remote {remote} dstport 4789 dev {under} && \
         ip link set {dev} up"
    ));
    if let Some(t) = tap {
        ns.sh_ok(&format!(
            "ip link add br0 type bridge && ip tuntap add {t} mode tap && \
             ip link set {dev} master br0 && ip link set {t} master br0 && \
             ip link set {t} up && ip link set br0 up"
        ));
    }
}

fn unlink_vxlan(ns: &NetNs, dev: &str, tap: Option<&str>) {
    let extra = tap.map_or(String::new(), |t| {
        format!("; ip link del br0; ip link del {t}")
    });
    ns.sh(&format!("ip link del {dev}{extra}"));
}

/// Our switch in `ns`, killed by pid when dropped.
struct Switch {
    child: Child,
    ctl: PathBuf,
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn our_switch(ns: &NetNs, dir: &Path, name: &str, uplink: &str) -> Switch {
    let ctl = dir.join(format!("{name}.ctl"));
    let child = ns
        .command(our_bin("uml_switch"))
        .arg("-unix")
        .arg(&ctl)
        .args(["--uplink", uplink, "--log-level", "warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start uml_switch");
    let t0 = Instant::now();
    while !ctl.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "uml_switch did not start"
        );
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(50));
    Switch { child, ctl }
}

/// A client of the switch at `ctl`, its data socket made in `ns` (abstract names are
/// per network namespace).
fn client_in(ns: &NetNs, ctl: &Path, tag: u32) -> Client {
    thread::scope(|s| {
        s.spawn(|| {
            enter(ns);
            attach(
                ctl,
                DataAddr::abstract_name(std::process::id(), tag),
                |addr| Request::V3 { addr },
                None,
                Duration::from_secs(5),
            )
            .expect("attach")
        })
        .join()
        .expect("attach thread")
    })
}

/// A tap device in `ns`, opened there.
fn tap_in(ns: &NetNs, name: &str) -> File {
    thread::scope(|s| {
        s.spawn(|| {
            enter(ns);
            uml_proto::tap::attach(Path::new("/dev/net/tun"), name, uml_proto::tap::Kind::Tap)
                .expect("tap")
                .file
        })
        .join()
        .expect("tap thread")
    })
}

fn set_blocking(fd: i32) {
    // SAFETY: fcntl on our own descriptor.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
    }
}

const SRC: MacAddr = MacAddr([2, 0, 0, 0x11, 0, 1]);
const UNKNOWN: MacAddr = MacAddr([2, 0, 0, 0x11, 0, 0x99]);

struct Rate {
    fps: f64,
    cpu_ns: f64,
    /// Sent but not arrived.
    loss: f64,
}

/// How many frames should have gone by now at `rate` (None: 64 more than `sent`).
fn due(t0: Instant, rate: Option<f64>, sent: u64) -> u64 {
    rate.map_or(sent + 64, |r| (t0.elapsed().as_secs_f64() * r) as u64)
}

/// Between bursts of a paced run: 1 ms.
fn tick(rate: Option<f64>) {
    if rate.is_some() {
        thread::sleep(Duration::from_millis(1));
    }
}

/// Ours: a client floods the switch (at `rate` frames/s, in 1 ms bursts, or as fast as
/// it can); what reaches b's ov0 counts.
fn ours_rate(a: &NetNs, b: &NetNs, dir: &Path, secs: f64, rate: Option<f64>) -> Rate {
    let sw = our_switch(a, dir, "rate", "vxlan:10.9.0.2,vni=42");
    pin(sw.child.id() as i32, SWITCH_CPU);
    let c = client_in(a, &sw.ctl, 1);
    set_blocking(c.data.as_raw_fd());
    let f = frame(UNKNOWN, SRC, 64);
    let rx0 = rx_packets(b, "ov0");
    let pid = sw.child.id() as i32;
    let (elapsed, cpu, sent) = thread::scope(|s| {
        s.spawn(|| {
            pin(0, LOAD_CPU);
            let cpu0 = cpu_time_ns(pid);
            let t0 = Instant::now();
            let limit = Duration::from_secs_f64(secs);
            let mut sent = 0u64;
            while t0.elapsed() < limit {
                let target = due(t0, rate, sent);
                while sent < target {
                    // SAFETY: f is a valid slice; the address buffer holds len bytes.
                    let r = unsafe {
                        libc::sendto(
                            c.data.as_raw_fd(),
                            f.as_ptr() as *const libc::c_void,
                            f.len(),
                            0,
                            c.switch.bytes.as_ptr() as *const libc::sockaddr,
                            c.switch.len as libc::socklen_t,
                        )
                    };
                    if r <= 0 {
                        break;
                    }
                    sent += 1;
                }
                tick(rate);
            }
            let e = t0.elapsed().as_secs_f64();
            thread::sleep(Duration::from_millis(100));
            (e, cpu_time_ns(pid) - cpu0, sent)
        })
        .join()
        .expect("load thread")
    });
    let got = rx_packets(b, "ov0") - rx0;
    Rate {
        fps: got as f64 / elapsed,
        cpu_ns: cpu as f64 / got.max(1) as f64,
        loss: sent.saturating_sub(got) as f64 / sent.max(1) as f64,
    }
}

/// The kernel: a thread writes the frames into a's tap, bridged to a's vxlan device.
fn kernel_rate(a: &NetNs, b: &NetNs, secs: f64, rate: Option<f64>) -> Rate {
    linux_vxlan(a, "vx0", "10.9.0.2", "va", Some("tp0"));
    let mut tap = tap_in(a, "tp0");
    let f = frame(UNKNOWN, SRC, 64);
    let rx0 = rx_packets(b, "ov0");
    let (elapsed, cpu, sent) = thread::scope(|s| {
        s.spawn(|| {
            pin(0, SWITCH_CPU);
            let c0 = bench::thread_cpu_ns();
            let t0 = Instant::now();
            let limit = Duration::from_secs_f64(secs);
            let mut sent = 0u64;
            while t0.elapsed() < limit {
                let target = due(t0, rate, sent);
                while sent < target && tap.write_all(&f).is_ok() {
                    sent += 1;
                }
                tick(rate);
            }
            (
                t0.elapsed().as_secs_f64(),
                bench::thread_cpu_ns() - c0,
                sent,
            )
        })
        .join()
        .expect("tap thread")
    });
    thread::sleep(Duration::from_millis(100));
    let got = rx_packets(b, "ov0") - rx0;
    drop(tap);
    unlink_vxlan(a, "vx0", Some("tp0"));
    Rate {
        fps: got as f64 / elapsed,
        cpu_ns: cpu as f64 / got.max(1) as f64,
        loss: sent.saturating_sub(got) as f64 / sent.max(1) as f64,
    }
}

/// Ping-pong through two of our switches joined by VXLAN: median round trip in us.
fn ours_rtt(a: &NetNs, b: &NetNs, dir: &Path, rounds: usize) -> f64 {
    let swa = our_switch(a, dir, "pa", "vxlan:10.9.0.2,vni=42");
    let swb = our_switch(b, dir, "pb", "vxlan:10.9.0.1,vni=42");
    let ca = client_in(a, &swa.ctl, 2);
    let cb = client_in(b, &swb.ctl, 3);
    let (ma, mb) = (
        MacAddr([2, 0, 0, 0x12, 0, 1]),
        MacAddr([2, 0, 0, 0x12, 0, 2]),
    );
    let mut buf = [0u8; 2048];
    let recv = |c: &Client, buf: &mut [u8]| -> bool {
        let mut p = libc::pollfd {
            fd: c.data.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the call.
        if unsafe { libc::poll(&mut p, 1, 1000) } <= 0 {
            return false;
        }
        recv_from(c.data.as_fd(), buf).is_ok()
    };
    // Learn both MACs on both switches.
    for _ in 0..3 {
        let _ = send_to(
            ca.data.as_fd(),
            &frame(MacAddr::BROADCAST, ma, 60),
            &ca.switch,
        );
        let _ = send_to(
            cb.data.as_fd(),
            &frame(MacAddr::BROADCAST, mb, 60),
            &cb.switch,
        );
        thread::sleep(Duration::from_millis(50));
        while recv_from(ca.data.as_fd(), &mut buf).is_ok() {}
        while recv_from(cb.data.as_fd(), &mut buf).is_ok() {}
    }
    let (to_b, to_a) = (frame(mb, ma, 64), frame(ma, mb, 64));
    let mut rtts = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let _ = send_to(ca.data.as_fd(), &to_b, &ca.switch);
        if !recv(&cb, &mut buf) {
            continue;
        }
        let _ = send_to(cb.data.as_fd(), &to_a, &cb.switch);
        if !recv(&ca, &mut buf) {
            continue;
        }
        rtts.push(t.elapsed().as_secs_f64() * 1e6);
    }
    median(&mut rtts)
}

/// Ping-pong through two Linux bridges joined by vxlan devices, a tap on each.
fn kernel_rtt(a: &NetNs, b: &NetNs, rounds: usize) -> f64 {
    linux_vxlan(a, "vx0", "10.9.0.2", "va", Some("tpa"));
    linux_vxlan(b, "vx1", "10.9.0.1", "vb", Some("tpb"));
    let mut ta = tap_in(a, "tpa");
    let mut tb = tap_in(b, "tpb");
    let (ma, mb) = (
        MacAddr([2, 0, 0, 0x13, 0, 1]),
        MacAddr([2, 0, 0, 0x13, 0, 2]),
    );
    let mut buf = [0u8; 2048];
    let wait = |t: &File| -> bool {
        let mut p = libc::pollfd {
            fd: t.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the call.
        unsafe { libc::poll(&mut p, 1, 1000) > 0 }
    };
    let drain = |t: &mut File, buf: &mut [u8]| {
        while wait_nonblocking(t) {
            let _ = t.read(buf);
        }
    };
    for _ in 0..3 {
        let _ = ta.write_all(&frame(MacAddr::BROADCAST, ma, 60));
        let _ = tb.write_all(&frame(MacAddr::BROADCAST, mb, 60));
        thread::sleep(Duration::from_millis(50));
        drain(&mut ta, &mut buf);
        drain(&mut tb, &mut buf);
    }
    let (to_b, to_a) = (frame(mb, ma, 64), frame(ma, mb, 64));
    let mut rtts = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let _ = ta.write_all(&to_b);
        if !wait(&tb) || tb.read(&mut buf).is_err() {
            continue;
        }
        let _ = tb.write_all(&to_a);
        if !wait(&ta) || ta.read(&mut buf).is_err() {
            continue;
        }
        rtts.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop((ta, tb));
    unlink_vxlan(a, "vx0", Some("tpa"));
    unlink_vxlan(b, "vx1", Some("tpb"));
    median(&mut rtts)
}

fn wait_nonblocking(t: &File) -> bool {
    let mut p = libc::pollfd {
        fd: t.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the call.
    unsafe { libc::poll(&mut p, 1, 0) > 0 }
}

fn main() {
    let mut secs = 1.0;
    let mut repeat = 3usize;
    let mut rounds = 2000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> f64 {
            args.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
                eprintln!("uplink_bench: {what} needs a number");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--seconds" => secs = num("--seconds"),
            "--repeat" => repeat = num("--repeat") as usize,
            "--rounds" => rounds = num("--rounds") as usize,
            "--help" | "-h" => {
                println!("usage: uplink_bench [--seconds S] [--repeat N] [--rounds N]");
                return;
            }
            other => {
                eprintln!("uplink_bench: unknown argument '{other}'");
                std::process::exit(2);
            }
        }
    }
    let dir = tempfile::tempdir().expect("scratch dir");
    let (a, b) = two_hosts();
    println!(
        "uplink_bench: two network namespaces joined by a veth pair, VXLAN VNI {VNI} on port 4789; \
         {secs} s per run, median of {repeat}; switch / tap writer on CPU {SWITCH_CPU}, load on CPU {LOAD_CPU}"
    );
    // b ends the overlay for the rate runs.
    linux_vxlan(&b, "ov0", "10.9.0.1", "vb", None);
    println!("\n64-byte frames a -> b across VXLAN, counted arriving at b's vxlan device; offered in 1 ms bursts, then as fast as the sender can:");
    println!(
        "{:<10} | {:>34} | {:>34} | {:>8}",
        "offered", "ours: frames/s ns/frame loss", "kernel: frames/s ns/frame loss", "cpu x"
    );
    let mut max_ratio = f64::NAN;
    for rate in [Some(25e3), Some(50e3), Some(100e3), None] {
        let (mut o, mut k) = (vec![], vec![]);
        for _ in 0..repeat {
            o.push(ours_rate(&a, &b, dir.path(), secs, rate));
            k.push(kernel_rate(&a, &b, secs, rate));
        }
        let pick =
            |v: &[Rate], f: fn(&Rate) -> f64| median(&mut v.iter().map(f).collect::<Vec<f64>>());
        let (of, oc, ol) = (
            pick(&o, |r| r.fps),
            pick(&o, |r| r.cpu_ns),
            pick(&o, |r| r.loss),
        );
        let (kf, kc, kl) = (
            pick(&k, |r| r.fps),
            pick(&k, |r| r.cpu_ns),
            pick(&k, |r| r.loss),
        );
        let label = rate.map_or("max".to_string(), |r| format!("{:.0}k/s", r / 1e3));
        println!(
            "{label:<10} | {of:>12.0} {oc:>11.0} {:>8.3}% | {kf:>12.0} {kc:>11.0} {:>8.3}% | {:>7.2}x",
            ol * 100.0,
            kl * 100.0,
            oc / kc
        );
        if rate.is_none() {
            max_ratio = oc / kc;
        }
    }
    unlink_vxlan(&b, "ov0", None);
    println!(
        "(ns/frame: ours is the switch's CPU, the kernel's the tap writer's, both on CPU {SWITCH_CPU}; cpu x: ours over the kernel's; target within 2x; at full speed {max_ratio:.2}x)"
    );
    let (mut ort, mut krt) = (vec![], vec![]);
    for _ in 0..repeat {
        ort.push(ours_rtt(&a, &b, dir.path(), rounds));
        krt.push(kernel_rtt(&a, &b, rounds));
    }
    let (ort, krt) = (median(&mut ort), median(&mut krt));
    println!("\nping-pong round trip a -> b -> a, 64-byte frames (median of {rounds}, then of {repeat} runs):");
    println!("  {:<34} {:>7.1} us", "ours (two switches, VXLAN)", ort);
    println!(
        "  {:<34} {:>7.1} us",
        "kernel (two bridges, vxlan, taps)", krt
    );
    println!("  ours/kernel: {:.2}x", ort / krt);
    println!(
        "\n(loss under flood, ours against the C switch: switch_bench's open-loop flood table)"
    );
}
