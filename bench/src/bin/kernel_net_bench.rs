//! Network benchmark: two uml-kernels against two linux.uml guests, each pair on its own
//! instance of our uml_switch, in the same run: ping round trip (average of ping's own
//! figures), TCP throughput (bytes pushed to a sink on the peer, timed from the host
//! around the sending command) and boot-to-ping (exec of the second guest until its
//! first echo reply from the first).
//!
//! Build first: `cargo build --release -p kernel -p uml_switch -p bench`, then run
//! `target/release/kernel_net_bench [MBYTES]` (default 20). It re-runs itself inside a
//! private network namespace (`unshare`), so the switches' abstract sockets stay there.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tests::{linux_uml, scratch, GuestImage, KernelRun, Uml, UmlBoot};

const LIMIT: Duration = Duration::from_secs(120);
const PINGS: u32 = 50;

fn sibling(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let path = exe.parent().expect("target dir").join(name);
    assert!(
        path.exists(),
        "{} is not built: cargo build --release -p kernel -p uml_switch -p bench",
        path.display()
    );
    path
}

/// A uml-kernel with its console on a pipe and a file (the test harness's KernelRun).
struct Kern(KernelRun);

impl Kern {
    fn spawn(dir: &Path, umid: &str, eth0: &str) -> Kern {
        let args = ["con0=fd:0,fd:1".to_owned(), format!("eth0={eth0}")];
        let cmd = KernelRun::command(&sibling("uml-kernel"), umid, &args);
        Kern(KernelRun::start(cmd, dir, umid))
    }

    fn output(&self) -> String {
        self.0.output()
    }

    fn type_line(&mut self, line: &str) {
        self.0.type_line(line);
    }

    /// Waits until the console (after byte `from`) shows `text`.
    fn wait(&self, from: usize, text: &str) -> String {
        self.0
            .wait_from(from, text, LIMIT)
            .unwrap_or_else(|| panic!("no `{text}`:\n{}", self.output()))
    }

    fn sh(&mut self, cmd: &str) -> String {
        self.0.sh(cmd, LIMIT)
    }
}

struct Switch(Child);

impl Switch {
    fn start(ctl: &Path) -> Switch {
        let child = Command::new(sibling("uml_switch"))
            .arg("-unix")
            .arg(ctl)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("uml_switch");
        let start = Instant::now();
        while !ctl.exists() {
            assert!(start.elapsed() < LIMIT, "switch did not start");
            thread::sleep(Duration::from_millis(2));
        }
        Switch(child)
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Figures for one pair of guests.
struct Figures {
    boot_to_ping: Duration,
    rtt_ms: f64,
    mbytes_per_s: f64,
}

/// The average from a `round-trip min/avg/max = a/b/c ms` line.
fn avg_rtt(out: &str) -> f64 {
    out.lines()
        .find_map(|l| {
            let v = l.split(" = ").nth(1)?;
            v.split('/').nth(1)?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no round-trip line:\n{out}"))
}

fn ours(dir: &Path, bytes: u64) -> Figures {
    let ctl = dir.join("ours.ctl");
    let _sw = Switch::start(&ctl);
    let eth0 = format!("daemon,,unix,{}", ctl.display());
    let mut b = Kern::spawn(dir, "kb", &eth0);
    b.sh("ifconfig eth0 10.0.0.2 netmask 255.255.255.0 up");
    b.sh("discard");
    let t0 = Instant::now();
    let mut a = Kern::spawn(dir, "ka", &eth0);
    a.type_line("ifconfig eth0 10.0.0.1 netmask 255.255.255.0 up");
    a.type_line("ping -c 1 -W 10 10.0.0.2");
    a.wait(0, "1 packets received");
    let boot_to_ping = t0.elapsed();
    let rtt_ms = avg_rtt(&a.sh(&format!("ping -c {PINGS} -i 0.02 10.0.0.2")));
    let t = Instant::now();
    let out = a.sh(&format!("tcpsend -n {bytes} 10.0.0.2"));
    let secs = t.elapsed().as_secs_f64();
    assert!(out.contains(&format!("sent {bytes} bytes")), "{out}");
    Figures {
        boot_to_ping,
        rtt_ms,
        mbytes_per_s: bytes as f64 / secs / 1e6,
    }
}

const INIT: &str = "#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
for f in /proc/sys/net/ipv6/conf/*/disable_ipv6; do echo 1 > $f; done 2>/dev/null
ifconfig eth0 $gip netmask 255.255.255.0 up
if [ -n \"$peer\" ]; then ping -c 1 -W 10 $peer >/dev/null && echo PINGED-PEER; fi
echo GUEST-READY
exec sh
";

fn linux(dir: &Path, bytes: u64) -> Option<Figures> {
    linux_uml()?;
    let ctl = dir.join("linux.ctl");
    let _sw = Switch::start(&ctl);
    let img = dir.join("root.img");
    GuestImage::build(&img, INIT);
    let guest = |name: &str, ip: &str, peer: Option<&str>| {
        let mut u = Uml::new(&dir.join(format!("home-{name}")), name)
            .expect("linux.uml")
            .root(&format!(
                "{},{}",
                dir.join(format!("{name}.cow")).display(),
                img.display()
            ))
            .arg(format!("eth0=daemon,,unix,{}", ctl.display()))
            .arg(format!("gip={ip}"));
        if let Some(p) = peer {
            u = u.arg(format!("peer={p}"));
        }
        u
    };
    let mut b: UmlBoot = guest("lb", "10.0.0.2", None).boot_until("GUEST-READY", LIMIT);
    let sh = |g: &mut UmlBoot, cmd: &str| g.shell(cmd, LIMIT).expect("guest command").0;
    // nc quits when its stdin ends: give the listener one that does not.
    sh(&mut b, "(sleep 100000 | nc -l -p 9 | wc -c > /tmp/got &)");
    let t0 = Instant::now();
    let mut a = guest("la", "10.0.0.1", Some("10.0.0.2")).boot_until("PINGED-PEER", LIMIT);
    let boot_to_ping = t0.elapsed();
    a.wait_for_console("GUEST-READY", LIMIT);
    let rtt_ms = avg_rtt(&sh(&mut a, &format!("ping -c {PINGS} -i 0.02 10.0.0.2")));
    let blocks = bytes / 65536;
    let t = Instant::now();
    let (_, status) = a
        .shell(
            &format!("dd if=/dev/zero bs=65536 count={blocks} 2>/dev/null | nc 10.0.0.2 9"),
            LIMIT,
        )
        .expect("nc");
    assert_eq!(status, 0, "nc failed");
    // Done when the sink has counted everything (its nc ends at the sender's FIN).
    let got = sh(
        &mut b,
        "while [ ! -s /tmp/got ]; do usleep 5000; done; cat /tmp/got",
    );
    let secs = t.elapsed().as_secs_f64();
    assert!(
        got.contains(&(blocks * 65536).to_string()),
        "the sink counted {got}"
    );
    Some(Figures {
        boot_to_ping,
        rtt_ms,
        mbytes_per_s: (blocks * 65536) as f64 / secs / 1e6,
    })
}

fn main() {
    if std::env::var_os("KERNEL_NET_BENCH_NS").is_none() {
        let exe = std::env::current_exe().expect("current_exe");
        let status = Command::new("unshare")
            .args(["--net", "--mount", "--pid", "--fork", "--kill-child", "--"])
            .arg(exe)
            .args(std::env::args().skip(1))
            .env("KERNEL_NET_BENCH_NS", "1")
            .status()
            .expect("unshare");
        std::process::exit(status.code().unwrap_or(1));
    }
    let mbytes: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let bytes = mbytes * 1_000_000 / 65536 * 65536;
    let dir = scratch();
    let k = ours(dir.path(), bytes);
    let Some(l) = linux(dir.path(), bytes) else {
        eprintln!("kernel_net_bench: linux.uml is missing; no comparison");
        std::process::exit(1);
    };
    println!("two guests on our uml_switch, {bytes} bytes over TCP, {PINGS} pings:");
    println!(
        "{:<28}{:>16}{:>16}{:>10}",
        "", "uml-kernel", "linux.uml", "ratio"
    );
    let row = |name: &str, ours: f64, theirs: f64, unit: &str| {
        println!(
            "{:<28}{:>11.3} {unit:<4}{:>11.3} {unit:<4}{:>9.4}x",
            name,
            ours,
            theirs,
            ours / theirs
        );
    };
    row("ping round trip (avg)", k.rtt_ms, l.rtt_ms, "ms");
    row("TCP throughput", k.mbytes_per_s, l.mbytes_per_s, "MB/s");
    row(
        "boot to first ping reply",
        k.boot_to_ping.as_secs_f64() * 1000.0,
        l.boot_to_ping.as_secs_f64() * 1000.0,
        "ms",
    );
    println!(
        "(ratio = uml-kernel / linux.uml; TCP in MB/s, higher is better; times lower is better)"
    );
}
