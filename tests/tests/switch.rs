//! uml_switch acceptance: linux.uml guests on our switch and hub (ping, learning seen
//! through a third guest's RX counter), a -tap port in a namespace of its own, the life
//! cycle (signals, stdin EOF on a terminal, a second switch refused), bad clients and
//! churn with bounded memory, and --pcap read back with tcpdump.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tests::{c_tool, our_bin, run, run_ok, scratch, GuestImage, Uml, UmlBoot};
use uml_proto::ether::{emit_header, MacAddr};
use uml_proto::switch::{attach, send_to, DataAddr, Request, SWITCH_MAGIC};

const BOOT: Duration = Duration::from_secs(30);
const CMD: Duration = Duration::from_secs(20);

/// Our switch running in the background; killed by pid when dropped.
struct SwitchRun {
    child: Child,
    ctl: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl SwitchRun {
    fn start(dir: &Path, name: &str, args: &[&str]) -> SwitchRun {
        Self::start_with(dir, name, args, Stdio::null())
    }

    fn start_with(dir: &Path, name: &str, args: &[&str], stdin: Stdio) -> SwitchRun {
        let ctl = dir.join(format!("{name}.ctl"));
        let stdout = dir.join(format!("{name}.out"));
        let stderr = dir.join(format!("{name}.err"));
        let child = Command::new(our_bin("uml_switch"))
            .arg("-unix")
            .arg(&ctl)
            .args(args)
            .stdin(stdin)
            .stdout(fs::File::create(&stdout).unwrap())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start uml_switch");
        let mut s = SwitchRun {
            child,
            ctl,
            stdout,
            stderr,
        };
        assert!(
            s.wait_until(Duration::from_secs(10), |s| s.ctl.exists()
                && s.out().contains("attached")),
            "switch did not start: {} / {}",
            s.out(),
            s.err()
        );
        s
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn out(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn err(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill on the pid of a child we started and have not reaped.
        unsafe { libc::kill(self.pid(), sig) };
    }

    fn wait_until(
        &mut self,
        limit: Duration,
        mut cond: impl FnMut(&mut SwitchRun) -> bool,
    ) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if cond(self) {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        cond(self)
    }

    /// Waits for exit; returns (exit code, signal).
    fn wait_exit(&mut self, limit: Duration) -> (Option<i32>, Option<i32>) {
        use std::os::unix::process::ExitStatusExt;
        let (status, timed_out) = tests::command::wait_bounded(&mut self.child, limit);
        assert!(!timed_out, "switch did not exit: {}", self.err());
        (status.code(), status.signal())
    }

    /// The switch's RSS as its SIGUSR1 report gives it (its pid may belong to another
    /// pid namespace than /proc shows).
    fn rss_kib(&mut self) -> u64 {
        let reports = self.err().matches(" KiB\n").count();
        self.signal(libc::SIGUSR1);
        let done = self.wait_until(Duration::from_secs(5), |s| {
            s.err().matches(" KiB\n").count() > reports
        });
        assert!(done, "no report (alive: {}):\n{}", self.alive(), self.err());
        let err = self.err();
        err.rsplit(", rss ")
            .next()
            .and_then(|r| r.split(' ').next()?.parse().ok())
            .expect("rss in the report")
    }
}

impl Drop for SwitchRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Guest init: proc, sys, no IPv6 chatter, then a shell on the console.
const INIT: &str = "#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
for f in /proc/sys/net/ipv6/conf/*/disable_ipv6; do echo 1 > $f; done 2>/dev/null
ifconfig lo up
echo GUEST-READY
exec sh
";

fn guest_image(dir: &Path) -> PathBuf {
    let img = dir.join("root.img");
    GuestImage::build(&img, INIT);
    img
}

/// Boots guest `n` with eth0 on the switch at `ctl` and MAC fe:fd:00:00:00:0n, over its
/// own COW file on the shared image.
fn boot_guest(dir: &Path, img: &Path, n: u8, eth0: &str) -> Option<UmlBoot> {
    let home = dir.join(format!("home{n}"));
    let cow = dir.join(format!("g{n}.cow"));
    let uml = Uml::new(&home, &format!("sw{n}-{}", std::process::id()))?
        .root(&format!("{},{}", cow.display(), img.display()))
        .arg(format!("eth0={eth0}"));
    Some(uml.boot_until("GUEST-READY", BOOT))
}

fn sh(g: &mut UmlBoot, cmd: &str) -> String {
    let (out, status) = g
        .shell(cmd, CMD)
        .unwrap_or_else(|| panic!("guest command `{cmd}` timed out:\n{}", g.console()));
    assert_eq!(status, 0, "guest command `{cmd}` failed:\n{out}");
    out
}

/// Pings `ip` `count` times from guest `g`; returns how many replies came.
fn ping(g: &mut UmlBoot, ip: &str, count: u32) -> u32 {
    let (out, _) = g
        .shell(&format!("ping -c {count} -i 0.2 -W 3 {ip}"), CMD)
        .expect("ping timed out");
    out.lines()
        .find_map(|l| {
            let l = l.trim();
            let rest = l.split(" packets received").next()?;
            if !l.contains("packets received") {
                return None;
            }
            rest.rsplit(", ").next()?.trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("no ping summary:\n{out}"))
}

fn rx_packets(g: &mut UmlBoot, dev: &str) -> u64 {
    let out = sh(
        g,
        &format!("echo RX=$(cat /sys/class/net/{dev}/statistics/rx_packets)"),
    );
    out.lines()
        .find_map(|l| l.trim().strip_prefix("RX=")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no counter:\n{out}"))
}

fn frame(dst: MacAddr, src: MacAddr, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(14)];
    emit_header(dst, src, 0x88b5, &mut f).unwrap();
    f.truncate(len);
    f
}

fn v3(local: DataAddr) -> Request {
    Request::V3 { addr: local }
}

/// Misbehaving clients: garbage, refused versions, partial requests, runts, oversized
/// frames, a stranger's datagrams, then `cycles` attach/send/detach rounds.
fn bad_clients(ctl: &Path, cycles: u32, seed: u32) {
    let pid = std::process::id();
    let garbage: Vec<u8> = (0..124u32)
        .map(|i| (i.wrapping_mul(97) ^ seed) as u8 | 1)
        .collect();
    let mut v2 = vec![0u8; 124];
    v2[0..4].copy_from_slice(&SWITCH_MAGIC.to_ne_bytes());
    v2[4..8].copy_from_slice(&2u32.to_ne_bytes());
    let mut v9 = v2.clone();
    v9[4..8].copy_from_slice(&9u32.to_ne_bytes());
    for bytes in [&garbage[..], &v2[..], &v9[..], &garbage[..50], &[][..]] {
        let mut s = UnixStream::connect(ctl).unwrap();
        s.write_all(bytes).unwrap();
        drop(s);
    }
    let c = attach(
        ctl,
        DataAddr::abstract_name(pid, seed),
        v3,
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    let me = MacAddr([2, 0, 0, 0, 0xee, 1]);
    for f in [
        frame(MacAddr::BROADCAST, me, 10),
        frame(MacAddr::BROADCAST, me, 2000),
        frame(me, me, 60),
        frame(MacAddr::BROADCAST, me, 1515),
    ] {
        send_to(c.data.as_fd(), &f, &c.switch).unwrap();
    }
    let stranger = uml_proto::switch::bind_dgram(&DataAddr::abstract_name(pid, seed + 1)).unwrap();
    // The reply names the port's own socket, connected to c's data socket: the kernel
    // refuses a frame from anyone else.
    let e = send_to(
        stranger.as_fd(),
        &frame(MacAddr::BROADCAST, me, 60),
        &c.switch,
    )
    .expect_err("a stranger sent to a port's own socket");
    assert_eq!(e.raw_os_error(), Some(libc::EPERM), "stranger: {e}");
    // A client whose control connection stays but whose data socket is gone.
    let gone = attach(
        ctl,
        DataAddr::abstract_name(pid, seed + 2),
        v3,
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    drop(gone.data);
    send_to(
        c.data.as_fd(),
        &frame(MacAddr::BROADCAST, me, 60),
        &c.switch,
    )
    .unwrap();
    for i in 0..cycles {
        let local = DataAddr::abstract_name(pid, seed + 10 + i);
        let c = attach(ctl, local, v3, None, Duration::from_secs(5)).unwrap();
        let mac = MacAddr([2, 0, 0, 1, (i >> 8) as u8, i as u8]);
        send_to(
            c.data.as_fd(),
            &frame(MacAddr::BROADCAST, mac, 60),
            &c.switch,
        )
        .unwrap();
        drop(c);
    }
    drop(gone.control);
}

/// Tests 1, 2, 5 and 6 on one set of three booted guests: ping on the switch, learning
/// seen through a third guest's counter, bad clients and churn, pcap; then eth1 is
/// hot-added on a hub for ping and the flooding counter.
#[test]
fn guests_on_switch_and_hub() {
    let dir = scratch();
    let d = dir.path();
    let pcap = d.join("sw.pcap");
    let mut sw = SwitchRun::start(d, "sw", &["--pcap", pcap.to_str().unwrap()]);
    let hub = SwitchRun::start(d, "hub", &["-hub"]);
    let img = guest_image(d);
    let eth0 = |n: u8| format!("daemon,fe:fd:00:00:00:0{n},unix,{}", sw.ctl.display());
    let Some(mut a) = boot_guest(d, &img, 1, &eth0(1)) else {
        return;
    };
    let mut b = boot_guest(d, &img, 2, &eth0(2)).unwrap();
    let mut c = boot_guest(d, &img, 3, &eth0(3)).unwrap();
    for (g, n) in [(&mut a, 1), (&mut b, 2), (&mut c, 3)] {
        sh(
            g,
            &format!("ifconfig eth0 10.0.0.{n} netmask 255.255.255.0 up"),
        );
    }

    // 1. Ping on the switch.
    assert_eq!(ping(&mut a, "10.0.0.2", 3), 3, "switch: A -> B");
    assert_eq!(ping(&mut c, "10.0.0.1", 3), 3, "switch: C -> A");

    // 2. Learned: A <-> B unicast does not reach C.
    assert_eq!(ping(&mut a, "10.0.0.2", 1), 1);
    let c_before = rx_packets(&mut c, "eth0");
    assert_eq!(ping(&mut a, "10.0.0.2", 5), 5);
    let c_after = rx_packets(&mut c, "eth0");
    assert_eq!(c_before, c_after, "switch mode: C saw A<->B unicast");

    // SIGUSR1: port and MAC tables with counters.
    sw.signal(libc::SIGUSR1);
    assert!(
        sw.wait_until(Duration::from_secs(5), |s| s
            .err()
            .contains("fe:fd:00:00:00:03")),
        "{}",
        sw.err()
    );
    let table = sw.err();
    assert!(table.contains("3 ports (switch mode)"), "{table}");
    assert!(table.contains("3 MAC entries"), "{table}");

    // 5. Bad clients and churn: the switch stays up, memory stays flat, guests ping.
    bad_clients(&sw.ctl, 100, 1000);
    let rss_before = sw.rss_kib();
    bad_clients(&sw.ctl, 1000, 5000);
    let rss_after = sw.rss_kib();
    assert!(sw.alive(), "switch died: {}", sw.err());
    assert!(
        rss_after < rss_before + 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    let log = sw.err();
    assert!(log.contains("Version 2 is not supported"), "{log}");
    assert!(log.contains("version 9"), "{log}");
    assert!(log.contains("bad request type"), "{log}");
    // Once per misbehaving port (one per bad_clients round), not per frame.
    assert_eq!(log.matches("dropping runt frames").count(), 2, "{log}");
    assert_eq!(
        log.matches("dropping frames over 1514 bytes").count(),
        2,
        "{log}"
    );
    // Strangers never reach the switch (see bad_clients).
    assert!(!log.contains("which is no port"), "{log}");
    assert_eq!(
        ping(&mut a, "10.0.0.2", 3),
        3,
        "switch after bad clients: A -> B"
    );
    sw.signal(libc::SIGUSR1);
    assert!(
        sw.err().matches("3 ports (switch mode)").count() >= 3,
        "{}",
        sw.err()
    );

    // Hub: hot-add eth1 on the hub in every guest.
    let mconsole = c_tool("uml_mconsole").unwrap();
    for (g, n) in [(&mut a, 1u8), (&mut b, 2), (&mut c, 3)] {
        let spec = format!("eth1=daemon,fe:fd:00:00:01:0{n},unix,{}", hub.ctl.display());
        let out = run_ok(
            Command::new(&mconsole)
                .arg(&g.mconsole)
                .arg("config")
                .arg(&spec),
        );
        assert!(out.stdout.contains("OK"), "{spec}: {}", out.stdout);
        sh(
            g,
            &format!("ifconfig eth1 10.0.1.{n} netmask 255.255.255.0 up"),
        );
    }
    assert_eq!(ping(&mut a, "10.0.1.2", 3), 3, "hub: A -> B");
    let c_before = rx_packets(&mut c, "eth1");
    assert_eq!(ping(&mut a, "10.0.1.2", 5), 5);
    let c_after = rx_packets(&mut c, "eth1");
    assert!(
        c_after >= c_before + 10,
        "hub mode: C's eth1 went {c_before} -> {c_after}"
    );

    // The request bytes linux.uml really sends, as a fake switch receives them on a
    // hot-added eth2: uml_proto parses them as v3 and emits the same 122 bytes.
    let fake = d.join("fake.ctl");
    let listener = std::os::unix::net::UnixListener::bind(&fake).unwrap();
    let catcher = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut req = vec![0u8; 124];
        s.read_exact(&mut req).unwrap();
        s.write_all(&DataAddr::abstract_name(4242, 1).bytes)
            .unwrap();
        (req, s)
    });
    let spec = format!("eth2=daemon,fe:fd:00:00:02:01,unix,{}", fake.display());
    let out = run_ok(
        Command::new(&mconsole)
            .arg(&a.mconsole)
            .arg("config")
            .arg(&spec),
    );
    assert!(out.stdout.contains("OK"), "{spec}: {}", out.stdout);
    let (req, _conn) = catcher.join().unwrap();
    let parsed = Request::parse(&req).unwrap();
    let Request::V3 { addr } = parsed else {
        panic!("linux.uml sent {parsed:?}")
    };
    assert_eq!(
        (addr.len, &addr.bytes[..3]),
        (110, &[1u8, 0, 0][..]),
        "{addr:?}"
    );
    let mut again = [0u8; 124];
    assert_eq!(parsed.emit(&mut again), 124);
    assert_eq!(&again[..122], &req[..122]);

    // 6. Pcap: the ICMP echo requests and replies, read back by tcpdump.
    sw.signal(libc::SIGTERM);
    let (code, sig) = sw.wait_exit(Duration::from_secs(5));
    assert_eq!((code, sig), (None, Some(libc::SIGTERM)));
    assert!(!sw.ctl.exists(), "SIGTERM left the control socket");
    let dump = run_ok(Command::new("tcpdump").args(["-n", "-r"]).arg(&pcap));
    let requests = dump
        .stdout
        .lines()
        .filter(|l| l.contains("10.0.0.1 > 10.0.0.2: ICMP echo request"))
        .count();
    let replies = dump
        .stdout
        .lines()
        .filter(|l| l.contains("10.0.0.2 > 10.0.0.1: ICMP echo reply"))
        .count();
    assert!(
        requests >= 12 && replies >= 12,
        "{requests} requests, {replies} replies:\n{}",
        dump.stdout
    );
}

/// Acceptance 3: a guest pings the host end of a tap device attached with -tap, in a
/// network namespace this test makes for itself (the test binary re-runs itself there).
#[test]
fn tap_port_reaches_the_host() {
    if std::env::var_os("UMLSW_IN_NETNS").is_none() {
        if tests::linux_uml().is_none() {
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let out = run(
            Command::new("unshare")
                .args(["--net", "--"])
                .arg(exe)
                .args([
                    "--exact",
                    "tap_port_reaches_the_host",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("UMLSW_IN_NETNS", "1"),
            Duration::from_secs(120),
        );
        assert!(
            out.success() && out.stdout.contains("1 passed"),
            "inner run failed:\n{}\n{}",
            out.stdout,
            out.stderr
        );
        return;
    }
    run_ok(Command::new("ip").args(["link", "set", "lo", "up"]));
    let dir = scratch();
    let d = dir.path();
    let sw = SwitchRun::start(d, "tap", &["-tap", "umlswtap0"]);
    assert!(sw.out().contains("tap device 'umlswtap0'"), "{}", sw.out());
    run_ok(Command::new("ip").args(["addr", "add", "10.0.9.1/24", "dev", "umlswtap0"]));
    run_ok(Command::new("ip").args(["link", "set", "umlswtap0", "up"]));
    let img = guest_image(d);
    let eth0 = format!("daemon,fe:fd:00:00:09:02,unix,{}", sw.ctl.display());
    let mut g = boot_guest(d, &img, 9, &eth0).unwrap();
    sh(&mut g, "ifconfig eth0 10.0.9.2 netmask 255.255.255.0 up");
    assert_eq!(ping(&mut g, "10.0.9.1", 3), 3, "guest -> tap host side");
    let host = run(
        Command::new("/bin/busybox").args(["ping", "-c", "3", "-W", "3", "10.0.9.2"]),
        CMD,
    );
    assert!(
        host.stdout.contains("3 packets received"),
        "host -> guest: {}",
        host.stdout
    );
}

/// Runs `cmd` with the given stdin (5 s limit), capturing stdout and stderr to files
/// (a daemon keeps them open after the command itself exits).
fn run_with_stdin(cmd: &mut Command, stdin: Stdio) -> tests::Output {
    use std::os::unix::process::ExitStatusExt;
    let dir = scratch();
    let (o, e) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = cmd
        .stdin(stdin)
        .stdout(fs::File::create(&o).unwrap())
        .stderr(fs::File::create(&e).unwrap())
        .spawn()
        .expect("spawn");
    let (status, timed_out) = tests::command::wait_bounded(&mut child, Duration::from_secs(5));
    tests::Output {
        code: status.code(),
        signal: status.signal(),
        stdout: fs::read_to_string(&o).unwrap_or_default(),
        stderr: fs::read_to_string(&e).unwrap_or_default(),
        timed_out,
    }
}

fn openpty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors into the ints; the other pointers may be null.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty");
    // SAFETY: fcntl on a descriptor we own; the master must not leak into the switch.
    unsafe { libc::fcntl(master, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: both descriptors were just opened and belong to nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// Acceptance 4: signals clean up (exit as by the signal), stdin EOF on a terminal exits
/// 0 while a /dev/null stdin is ignored, a live switch's socket is refused and a dead
/// one's reused, and a regular file at the control path is left alone.
#[test]
fn life_cycle() {
    let dir = scratch();
    let d = dir.path();
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let mut s = SwitchRun::start(d, "sig", &[]);
        s.signal(sig);
        assert_eq!(s.wait_exit(Duration::from_secs(5)), (None, Some(sig)));
        assert!(!s.ctl.exists(), "signal {sig} left the socket");
        assert!(
            s.err()
                .contains(&format!("Caught signal {sig}, cleaning up and exiting")),
            "{}",
            s.err()
        );
    }

    let (master, slave) = openpty();
    let mut s = SwitchRun::start_with(d, "tty", &[], Stdio::from(slave));
    thread::sleep(Duration::from_millis(200));
    assert!(s.alive());
    drop(master);
    assert_eq!(s.wait_exit(Duration::from_secs(5)), (Some(0), None));
    assert!(
        s.err().contains("EOF on stdin, cleaning up and exiting"),
        "{}",
        s.err()
    );
    assert!(!s.ctl.exists());

    let mut first = SwitchRun::start(d, "one", &[]);
    thread::sleep(Duration::from_millis(200));
    assert!(first.alive(), "stdin /dev/null must not stop the switch");
    let second = run(
        Command::new(our_bin("uml_switch"))
            .arg("-unix")
            .arg(&first.ctl),
        Duration::from_secs(5),
    );
    assert_eq!(second.code, Some(1), "{second:?}");
    let ctl = first.ctl.display().to_string();
    assert!(
        second.stderr.contains(&format!(
            "The control socket '{ctl}' has another server attached to it"
        )) && second.stderr.contains(&format!("\tremove '{ctl}'")),
        "{}",
        second.stderr
    );
    first.signal(libc::SIGKILL);
    first.wait_exit(Duration::from_secs(5));
    assert!(first.ctl.exists(), "SIGKILL leaves the socket behind");
    let again = SwitchRun::start(d, "one", &[]);
    drop(again);

    // -daemon: the command returns once the sockets are bound; the switch serves from
    // the background (cwd /, so the relative path was made absolute) and, its stdin
    // being a terminal, stops and cleans up when that closes.
    let (master, slave) = openpty();
    let out = run_with_stdin(
        Command::new(our_bin("uml_switch"))
            .args(["-unix", "bg.ctl", "-daemon"])
            .current_dir(d),
        Stdio::from(slave),
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        out.stdout,
        format!(
            "{} attached to unix socket 'bg.ctl'\n",
            our_bin("uml_switch").display()
        )
    );
    let bg = d.join("bg.ctl");
    let c = attach(
        &bg,
        DataAddr::abstract_name(std::process::id(), 99),
        v3,
        None,
        Duration::from_secs(5),
    );
    assert!(c.is_ok(), "daemon does not serve: {c:?}");
    drop(master);
    let start = Instant::now();
    while bg.exists() && start.elapsed() < Duration::from_secs(5) {
        thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !bg.exists(),
        "the daemon did not stop and clean up on terminal EOF"
    );

    let file = d.join("precious.ctl");
    fs::write(&file, b"keep me").unwrap();
    let out = run(
        Command::new(our_bin("uml_switch")).arg("-unix").arg(&file),
        Duration::from_secs(5),
    );
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("not a socket"), "{}", out.stderr);
    assert_eq!(fs::read(&file).unwrap(), b"keep me");
}

/// The legacy command line: the C tool's start lines byte for byte, DATA only with
/// -compat-v0, and a v0 client exchanging frames with a v3 client on a -compat-v0
/// switch (the v0 client gets no reply and names the data path itself).
#[test]
fn legacy_command_line_and_v0_clients() {
    let dir = scratch();
    let d = dir.path();
    let bad = run(
        Command::new(our_bin("uml_switch")).args(["-unix", "a.ctl", "a.data"]),
        Duration::from_secs(5),
    );
    assert_eq!(bad.code, Some(2), "{bad:?}");
    let help = run_ok(Command::new(our_bin("uml_switch")).arg("--help"));
    assert!(help
        .stdout
        .contains("/var/run/uml-utilities/uml_switch.ctl"));

    let data = d.join("c.data");
    let ctl = d.join("v0.ctl");
    let child = Command::new(our_bin("uml_switch"))
        .arg("-compat-v0")
        .arg("-hub")
        .arg("-unix")
        .arg(&ctl)
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut sw = SwitchRun {
        child,
        ctl: ctl.clone(),
        stdout: d.join("none"),
        stderr: d.join("none"),
    };
    let mut first = String::new();
    let mut stdout = sw.child.stdout.take().unwrap();
    let mut buf = [0u8; 512];
    let start = Instant::now();
    while !first.contains("' and '") && start.elapsed() < Duration::from_secs(5) {
        let n = stdout.read(&mut buf).unwrap();
        first.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let ours = first.replace(&our_bin("uml_switch").display().to_string(), "uml_switch");
    // The C tool's lines for the same command (it names itself by argv[0]).
    let c = c_tool("uml_switch").unwrap();
    let cctl = d.join("cv0.ctl");
    let cdata = d.join("cv0.data");
    let cout = run(
        Command::new("stdbuf")
            .args(["-o0"])
            .arg(&c)
            .args(["-compat-v0", "-hub", "-unix"])
            .arg(&cctl)
            .arg(&cdata),
        Duration::from_millis(500),
    );
    let cexpect = cout
        .stdout
        .replace(&c.display().to_string(), "uml_switch")
        .replace("cv0.", "v0.")
        .replace("v0.data", "c.data");
    assert_eq!(
        ours.trim_end(),
        cexpect.trim_end(),
        "start lines differ from the C tool's"
    );

    let pid = std::process::id();
    let switch_data = DataAddr::path(&data).unwrap();
    let mac0 = MacAddr([2, 0, 0, 0, 0, 0x10]);
    let mac3 = MacAddr([2, 0, 0, 0, 0, 0x13]);
    let old = attach(
        &ctl,
        DataAddr::abstract_name(pid, 77),
        |addr| Request::V0 { mac: mac0, addr },
        Some(switch_data),
        Duration::from_secs(5),
    )
    .unwrap();
    let new = attach(
        &ctl,
        DataAddr::abstract_name(pid, 78),
        v3,
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(new.switch, switch_data, "v3 reply names the data path");
    thread::sleep(Duration::from_millis(100));
    send_to(old.data.as_fd(), &frame(mac3, mac0, 60), &old.switch).unwrap();
    let mut got = [0u8; 1600];
    let start = Instant::now();
    let n = loop {
        match uml_proto::switch::recv_from(new.data.as_fd(), &mut got) {
            Ok((n, _)) => break n,
            Err(_) if start.elapsed() < Duration::from_secs(5) => {
                thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("v3 client got nothing: {e}"),
        }
    };
    assert_eq!(&got[..n], &frame(mac3, mac0, 60)[..]);
    assert!(sw.alive());
    sw.signal(libc::SIGINT);
    sw.wait_exit(Duration::from_secs(5));
    assert!(
        !ctl.exists() && !data.exists(),
        "compat sockets left behind"
    );
}

/// Receives one datagram on `c` within 5 s.
fn recv_one(c: &uml_proto::switch::Client) -> Vec<u8> {
    let mut got = [0u8; 1600];
    let start = Instant::now();
    loop {
        match uml_proto::switch::recv_from(c.data.as_fd(), &mut got) {
            Ok((n, _)) => return got[..n].to_vec(),
            Err(_) if start.elapsed() < Duration::from_secs(5) => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("nothing received: {e}"),
        }
    }
}

/// A client that bound a short abstract name (and named it, zero-padded, in its v1
/// request) is matched as a sender and reached as a receiver; the switch's reply is the
/// full 110-byte abstract address.
#[test]
fn short_client_names_are_served() {
    let dir = scratch();
    let sw = SwitchRun::start(dir.path(), "short", &[]);
    let pid = std::process::id();
    let mut raw = vec![1u8, 0, 0];
    raw.extend_from_slice(format!("short-{pid}").as_bytes());
    let short_name = DataAddr::from_raw(&raw);
    let (ms, mn) = (MacAddr([2, 0, 0, 5, 0, 1]), MacAddr([2, 0, 0, 5, 0, 2]));
    let short = attach(
        &sw.ctl,
        short_name,
        |addr| Request::V1 {
            mac: ms,
            addr: addr.full_length(),
        },
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(short.switch.len, 110);
    assert!(short.switch.is_abstract());
    let full = attach(
        &sw.ctl,
        DataAddr::abstract_name(pid, 55),
        v3,
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    // Full -> short (broadcast, then unicast once the short client is learned).
    send_to(
        full.data.as_fd(),
        &frame(MacAddr::BROADCAST, mn, 60),
        &full.switch,
    )
    .unwrap();
    assert_eq!(recv_one(&short), frame(MacAddr::BROADCAST, mn, 60));
    send_to(short.data.as_fd(), &frame(mn, ms, 70), &short.switch).unwrap();
    assert_eq!(recv_one(&full), frame(mn, ms, 70));
    send_to(full.data.as_fd(), &frame(ms, mn, 80), &full.switch).unwrap();
    assert_eq!(recv_one(&short), frame(ms, mn, 80));
}

/// `--pcap -` streams a capture on stdout (the start line moves to stderr) that
/// tcpdump reads; `--log-level debug` shows MAC learning, the default does not.
#[test]
fn pcap_on_stdout_and_log_levels() {
    let dir = scratch();
    let d = dir.path();
    let ctl = d.join("p.ctl");
    let (cap, err) = (d.join("p.pcap"), d.join("p.err"));
    let child = Command::new(our_bin("uml_switch"))
        .arg("-unix")
        .arg(&ctl)
        .args(["--pcap", "-", "--log-level", "debug"])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&cap).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let mut sw = SwitchRun {
        child,
        ctl: ctl.clone(),
        stdout: err.clone(),
        stderr: err.clone(),
    };
    assert!(sw.wait_until(Duration::from_secs(5), |s| s.ctl.exists()
        && s.err().contains("attached")));
    let a = tests::attach_v3(&ctl, 201);
    let b = tests::attach_v3(&ctl, 202);
    let (ma, mb) = (MacAddr([2, 0, 0, 7, 0, 1]), MacAddr([2, 0, 0, 7, 0, 2]));
    send_to(
        a.data.as_fd(),
        &frame(MacAddr::BROADCAST, ma, 60),
        &a.switch,
    )
    .unwrap();
    recv_one(&b);
    send_to(b.data.as_fd(), &frame(ma, mb, 100), &b.switch).unwrap();
    recv_one(&a);
    sw.signal(libc::SIGINT);
    sw.wait_exit(Duration::from_secs(5));
    let log = sw.err();
    assert!(log.contains(" Addr: 02:00:00:07:00:01 New port"), "{log}");
    assert!(log.contains(" Addr: 02:00:00:07:00:02 New port"), "{log}");
    let dump = run_ok(Command::new("tcpdump").args(["-n", "-e", "-r"]).arg(&cap));
    // One line per frame (hex dumps of unknown EtherTypes are indented).
    let lines: Vec<&str> = dump
        .stdout
        .lines()
        .filter(|l| !l.starts_with(char::is_whitespace))
        .collect();
    assert_eq!(lines.len(), 2, "{}", dump.stdout);
    assert!(
        lines[0].contains("02:00:00:07:00:01 > ff:ff:ff:ff:ff:ff")
            && lines[0].contains("length 60"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("02:00:00:07:00:02 > 02:00:00:07:00:01")
            && lines[1].contains("length 100"),
        "{}",
        lines[1]
    );

    // At the default level, learning is not logged.
    let quiet = SwitchRun::start(d, "quiet", &[]);
    let a = tests::attach_v3(&quiet.ctl, 203);
    send_to(
        a.data.as_fd(),
        &frame(MacAddr::BROADCAST, ma, 60),
        &a.switch,
    )
    .unwrap();
    thread::sleep(Duration::from_millis(100));
    assert!(!quiet.err().contains("Addr:"), "{}", quiet.err());
}

/// Issue 18, bursts: a burst fifty times the receiver's 10-datagram queue, from a client
/// that waits for room, reaches a receiver that reads only every millisecond, every
/// frame in order: the switch waits for room at the receiver (as the C switch does)
/// instead of dropping what does not fit.
#[test]
fn a_burst_into_a_slow_receiver_loses_nothing() {
    const N: u32 = 500;
    let dir = scratch();
    let sw = SwitchRun::start(dir.path(), "burst", &[]);
    let pid = std::process::id();
    let limit = Duration::from_secs(5);
    let a = attach(&sw.ctl, DataAddr::abstract_name(pid, 901), v3, None, limit).unwrap();
    let b = attach(&sw.ctl, DataAddr::abstract_name(pid, 902), v3, None, limit).unwrap();
    let (ma, mb) = (MacAddr([2, 0, 0, 9, 1, 1]), MacAddr([2, 0, 0, 9, 1, 2]));
    send_to(
        b.data.as_fd(),
        &frame(MacAddr::BROADCAST, mb, 60),
        &b.switch,
    )
    .unwrap();
    assert_eq!(recv_one(&a), frame(MacAddr::BROADCAST, mb, 60));
    let reader = thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 1600];
        let mut quiet = Instant::now();
        while quiet.elapsed() < Duration::from_secs(2) {
            while let Ok((n, _)) = uml_proto::switch::recv_from(b.data.as_fd(), &mut buf) {
                if n >= 18 {
                    got.push(u32::from_be_bytes(buf[14..18].try_into().unwrap()));
                }
                quiet = Instant::now();
            }
            thread::sleep(Duration::from_millis(1));
        }
        got
    });
    let start = Instant::now();
    for i in 0..N {
        let mut f = frame(mb, ma, 64);
        f[14..18].copy_from_slice(&i.to_be_bytes());
        loop {
            match send_to(a.data.as_fd(), &f, &a.switch) {
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(start.elapsed() < Duration::from_secs(30), "switch stuck");
                    thread::sleep(Duration::from_micros(50))
                }
                Err(e) => panic!("send: {e}"),
            }
        }
    }
    let got = reader.join().unwrap();
    let lost = N as usize - got.len().min(N as usize);
    assert_eq!(
        got,
        (0..N).collect::<Vec<_>>(),
        "{lost} of {N} frames lost or reordered"
    );
}
