//! uml_switch against another local user (issue 15 items 7-9): a client may name only
//! data addresses it could send to itself (the attacks run as uid 65534 against a
//! switch run by root); the MAC table stays bounded and its hash keyed under floods of
//! made-up source addresses; client-chosen paths reach the log escaped.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tests::{attach_v3, our_bin, scratch};
use uml_proto::ether::{emit_header, MacAddr};
use uml_proto::switch::{bind_dgram, recv_from, send_to, Client, DataAddr};

const LIMIT: Duration = Duration::from_secs(10);
const NOBODY: &str = "65534";

/// Our switch, run by this (root) test; killed by pid when dropped.
struct Switch {
    child: Child,
    ctl: PathBuf,
    stderr: PathBuf,
}

impl Switch {
    fn start(dir: &Path, name: &str) -> Switch {
        let ctl = dir.join(format!("{name}.ctl"));
        let stderr = dir.join(format!("{name}.err"));
        let child = Command::new(our_bin("uml_switch"))
            .arg("-unix")
            .arg(&ctl)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !ctl.exists() {
            assert!(start.elapsed() < LIMIT, "switch did not start");
            thread::sleep(Duration::from_millis(10));
        }
        // As Debian's init script does: any local user may connect.
        fs::set_permissions(&ctl, fs::Permissions::from_mode(0o777)).unwrap();
        Switch { child, ctl, stderr }
    }

    fn err(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The SIGUSR1 report's lines after the last one asked for.
    fn report(&self) -> String {
        let before = self.err().matches(" KiB\n").count();
        // SAFETY: kill on the pid of a child we started and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGUSR1) };
        let start = Instant::now();
        loop {
            // The report is one write: once its first line is there, all of it is.
            let err = self.err();
            if err.matches(" KiB\n").count() > before {
                let at = err.rmatch_indices(" ports (").next().unwrap().0;
                return err[at..].to_string();
            }
            assert!(start.elapsed() < LIMIT, "no report:\n{err}");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it (SIGTERM) and reaps it, so its CPU time counts as our children's.
    fn stop(mut self) {
        // SAFETY: as in `report`.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let (_, timed_out) = tests::command::wait_bounded(&mut self.child, LIMIT);
        assert!(!timed_out);
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_kib(report: &str) -> u64 {
    report
        .split(", rss ")
        .nth(1)
        .and_then(|r| r.split(' ').next()?.parse().ok())
        .expect("rss in the report")
}

/// (entries, not learned) from the report's MAC line.
fn mac_counts(report: &str) -> (u64, u64) {
    let line = report
        .lines()
        .find(|l| l.contains(" MAC entries ("))
        .expect("MAC line");
    let n = line.split(' ').next().unwrap().parse().unwrap();
    let r = line
        .split(" MAC entries (")
        .nth(1)
        .and_then(|r| r.split(' ').next()?.parse().ok())
        .unwrap();
    (n, r)
}

/// `switch-client` run as uid 65534; its stdout is read line by line.
struct Attacker {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Attacker {
    fn start(ctl: &Path, addr: &str, extra: &[&str]) -> Attacker {
        let mut child = Command::new("setpriv")
            .args([
                &format!("--reuid={NOBODY}"),
                &format!("--regid={NOBODY}"),
                "--clear-groups",
            ])
            .arg(env!("CARGO_BIN_EXE_switch-client"))
            .arg(ctl)
            .arg(addr)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("setpriv");
        let out = BufReader::new(child.stdout.take().unwrap());
        Attacker { child, out }
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.out.read_line(&mut l).unwrap();
        l.trim().to_string()
    }

    fn finish(mut self) -> String {
        let l = self.line();
        let _ = tests::command::wait_bounded(&mut self.child, LIMIT);
        l
    }
}

fn broadcast_from(c: &Client, n: u32) {
    let mut f = vec![0u8; 60];
    emit_header(
        MacAddr([0xff; 6]),
        MacAddr([0x02, 0, 0, 0, 0, 0x77]),
        0x0800,
        &mut f,
    )
    .unwrap();
    f[14..20].copy_from_slice(b"ATTACK");
    for _ in 0..n {
        let _ = send_to(c.data.as_fd(), &f, &c.switch);
        thread::sleep(Duration::from_millis(10));
    }
}

fn pending(fd: std::os::fd::BorrowedFd<'_>) -> u32 {
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while recv_from(fd, &mut buf).is_ok() {
        n += 1;
    }
    n
}

/// Item 7: uid 65534 names a root-only socket in a 0700 directory, and a root
/// process's abstract socket, as its data address; neither receives a byte, while
/// its own abstract name and a socket in its own directory are served.
#[test]
fn a_client_names_only_addresses_it_could_send_to() {
    let dir = scratch();
    let d = dir.path();
    let sw = Switch::start(d, "sec");
    let private = d.join("private");
    fs::create_dir(&private).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    let victim_path = private.join("victim.sock");
    let victim = std::os::unix::net::UnixDatagram::bind(&victim_path).unwrap();
    victim.set_nonblocking(true).unwrap();
    // The socket itself is open to all: only the 0700 directory protects it.
    fs::set_permissions(&victim_path, fs::Permissions::from_mode(0o777)).unwrap();
    let victim_abs = bind_dgram(&DataAddr::abstract_name(std::process::id(), 4242)).unwrap();
    let own = d.join("nobody");
    fs::create_dir(&own).unwrap();
    std::os::unix::fs::chown(&own, Some(65534), Some(65534)).unwrap();
    let witness = attach_v3(&sw.ctl, 1);

    let by_path = victim_path.display().to_string();
    let by_abstract = format!("@{}:4242", std::process::id());
    let own_sock = own.join("data.sock").display().to_string();
    let mut clients = vec![
        Attacker::start(&sw.ctl, &by_path, &["--wait-ms", "1500"]),
        Attacker::start(&sw.ctl, &by_abstract, &["--wait-ms", "1500"]),
        Attacker::start(&sw.ctl, "@77", &["--bind", "--wait-ms", "1500"]),
        Attacker::start(&sw.ctl, &own_sock, &["--bind", "--wait-ms", "1500"]),
    ];
    let answers: Vec<String> = clients.iter_mut().map(Attacker::line).collect();
    broadcast_from(&witness, 50);
    let received: Vec<String> = clients.into_iter().map(Attacker::finish).collect();

    assert_eq!(
        pending(victim.as_fd()),
        0,
        "the root-only socket received frames"
    );
    assert_eq!(
        pending(victim_abs.as_fd()),
        0,
        "root's abstract socket received frames"
    );
    assert_eq!(
        answers,
        ["refused", "refused", "attached", "attached"],
        "{}",
        sw.err()
    );
    for (i, r) in received[2..].iter().enumerate() {
        let n: u32 = r.strip_prefix("received ").unwrap().parse().unwrap();
        assert!(n > 0, "legitimate client {i} got no frames:\n{}", sw.err());
    }
    let err = sw.err();
    assert!(
        err.contains("refused a port: data socket")
            && err.contains("may not search")
            && err.contains("does not carry the pid"),
        "{err}"
    );
}

/// Item 7, the peers that must keep working: our uml-kernel run by uid 65534 on a
/// switch run by root (linux.uml names its data socket the same way).
#[test]
fn an_unprivileged_kernel_is_served() {
    let dir = scratch();
    let d = dir.path();
    let sw = Switch::start(d, "k");
    let home = d.join("home");
    fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let mut k = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ])
        .arg(our_bin("uml-kernel"))
        .arg("umid=nobody")
        .arg(format!("eth0=daemon,,unix,{}", sw.ctl.display()))
        .env("HOME", &home)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !sw.err().contains("New connection") && !sw.err().contains("refused") {
        assert!(start.elapsed() < LIMIT, "no request:\n{}", sw.err());
        thread::sleep(Duration::from_millis(20));
    }
    let _ = k.kill();
    let _ = k.wait();
    assert!(
        sw.err().contains("New connection") && !sw.err().contains("refused"),
        "{}",
        sw.err()
    );
}

/// Item 7, with the real peer: linux.uml run by uid 65534 on a switch run by root is
/// served (its data socket's name carries its pid). It has no root disk: it attaches
/// eth0 at boot, then stops.
#[test]
fn linux_uml_run_by_another_user_is_served() {
    let Some(kernel) = tests::peers::linux_uml() else {
        return;
    };
    let dir = scratch();
    let d = dir.path();
    let sw = Switch::start(d, "lu");
    let home = d.join("home");
    fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let mut k = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ])
        .arg(kernel)
        .args(["mem=48M", "umid=nobody", "con0=null", "con=null"])
        .arg(format!("eth0=daemon,,unix,{}", sw.ctl.display()))
        .env("HOME", &home)
        .current_dir(&home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !sw.err().contains("New connection") && !sw.err().contains("refused") {
        if start.elapsed() > Duration::from_secs(30) {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    // linux.uml and its helper processes: the process group it was started in.
    // SAFETY: kill on the process group of a child we started and have not reaped.
    unsafe { libc::kill(-(k.id() as i32), libc::SIGKILL) };
    let _ = k.wait();
    assert!(
        sw.err().contains("New connection") && !sw.err().contains("refused"),
        "{}",
        sw.err()
    );
}

/// Item 9: a path with control characters (a forged log line, a terminal escape)
/// reaches the log escaped.
#[test]
fn client_paths_are_logged_escaped() {
    let dir = scratch();
    let sw = Switch::start(dir.path(), "esc");
    let evil = "/tmp/x\u{1b}[2J\nNew connection: port 99 for /forged";
    let a = Attacker::start(&sw.ctl, evil, &["--wait-ms", "100"]);
    assert_eq!(a.finish(), "refused");
    let start = Instant::now();
    while !sw.err().contains("refused a port") {
        assert!(start.elapsed() < LIMIT, "{}", sw.err());
        thread::sleep(Duration::from_millis(20));
    }
    let err = sw.err();
    assert!(
        !err.contains('\u{1b}'),
        "an escape reached the log: {err:?}"
    );
    assert!(
        !err.lines()
            .any(|l| l.starts_with("New connection: port 99")),
        "a forged line: {err:?}"
    );
    assert!(
        err.contains("/tmp/x\\x1b[2J\\x0aNew connection: port 99 for /forged"),
        "{err:?}"
    );
}

/// Sends `n` broadcast frames whose source MACs `mac(i)` gives, waiting for room.
fn flood(c: &Client, n: u32, mac: impl Fn(u32) -> [u8; 6]) {
    let mut f = vec![0u8; 60];
    emit_header(
        MacAddr([0xff; 6]),
        MacAddr([2, 0, 0, 0, 0, 1]),
        0x0800,
        &mut f,
    )
    .unwrap();
    for i in 0..n {
        f[6..12].copy_from_slice(&mac(i));
        loop {
            match send_to(c.data.as_fd(), &f, &c.switch) {
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_micros(20))
                }
                Err(e) => panic!("send: {e}"),
            }
        }
    }
}

fn random_macs(seed: u64) -> impl Fn(u32) -> [u8; 6] {
    move |i| {
        // splitmix64 of (seed, i): distinct for distinct i.
        let mut z = seed.wrapping_add((i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let b = z.to_le_bytes();
        [b[0] & 0xfe | 0x02, b[1], b[2], b[3], b[4], b[5]]
    }
}

fn children_cpu() -> Duration {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    let t =
        |tv: nix::sys::time::TimeVal| Duration::new(tv.tv_sec() as u64, tv.tv_usec() as u32 * 1000);
    t(u.user_time()) + t(u.system_time())
}

/// Item 8: 400,000 random source MACs leave the table at its per-port limit and the
/// switch's memory where it was; the rest are counted.
#[test]
fn random_source_macs_keep_the_table_and_memory_bounded() {
    const N: u32 = 400_000;
    let dir = scratch();
    let sw = Switch::start(dir.path(), "rss");
    let c = attach_v3(&sw.ctl, 5);
    let before = rss_kib(&sw.report());
    flood(&c, N, random_macs(1));
    let start = Instant::now();
    let report = loop {
        let r = sw.report();
        let (n, refused) = mac_counts(&r);
        if n + refused >= N as u64 || start.elapsed() > Duration::from_secs(60) {
            break r;
        }
        thread::sleep(Duration::from_millis(200));
    };
    let (n, refused) = mac_counts(&report);
    assert_eq!((n, n + refused), (4096, N as u64), "{}", &report[..300]);
    let after = rss_kib(&report);
    assert!(
        after < before + 3 * 1024,
        "rss grew from {before} to {after} KiB"
    );
    assert_eq!(
        sw.err().matches("the most one port may have").count(),
        1,
        "the limit is logged once"
    );
}

/// Item 8: 300,000 MACs sharing their low 24 bits (as the switch keys them) cost about
/// what random ones do (the switch's CPU, measured in the same test), and are capped.
#[test]
fn macs_sharing_their_low_bits_are_not_quadratic() {
    const N: u32 = 300_000;
    let dir = scratch();
    let mut cpu = Vec::new();
    for (name, macs) in [
        (
            "random",
            Box::new(random_macs(2)) as Box<dyn Fn(u32) -> [u8; 6]>,
        ),
        (
            "shared",
            Box::new(|i: u32| {
                let b = (i * 7 + 1).to_le_bytes();
                [0x02, 0x11, 0x22, b[0], b[1], b[2]]
            }),
        ),
    ] {
        let before = children_cpu();
        let sw = Switch::start(dir.path(), name);
        let c = attach_v3(&sw.ctl, 6);
        flood(&c, N, macs);
        let start = Instant::now();
        let report = loop {
            let r = sw.report();
            let (n, refused) = mac_counts(&r);
            if n + refused >= N as u64 || start.elapsed() > Duration::from_secs(120) {
                break r;
            }
            thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(mac_counts(&report).0, 4096, "{name}");
        sw.stop();
        cpu.push(children_cpu() - before);
    }
    assert!(
        cpu[1] < cpu[0] * 3 + Duration::from_secs(1),
        "switch CPU: shared low bits {:?}, random {:?}",
        cpu[1],
        cpu[0]
    );
}
