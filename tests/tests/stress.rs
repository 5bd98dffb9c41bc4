//! Robustness under hostile traffic (issue 10), bounded in time: uml_switch with many
//! clients sending random valid and invalid frames while others connect and disconnect,
//! uml-kernel's mconsole under random requests, and uml_mconsole against a peer that
//! answers with random datagrams. Nothing may crash, memory must stay flat, and valid
//! traffic must keep flowing. Sizes are scaled down for the test suite; `scripts/stress`
//! runs the full size (200 clients for 60 s, 10,000 requests).
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tests::{our_bin, scratch};
use uml_proto::ether::{emit_header, MacAddr};
use uml_proto::mconsole::{Reply, Request, MAX_REPLY_LEN, REQUEST_LEN};
use uml_proto::switch::{attach, recv_from, send_to, DataAddr, Request as SwitchRequest};

/// A small deterministic generator (xorshift64*), seeded per test so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// Random bytes of a random length below `max`.
    fn noise(&mut self, max: u64) -> Vec<u8> {
        let len = self.below(max) as usize;
        self.bytes(len)
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A child we started, killed by pid when dropped.
struct Daemon {
    child: Child,
    name: &'static str,
}

impl Daemon {
    fn alive(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Resident memory in KiB, from /proc. The tests run in a pid namespace whose /proc
    /// may be the parent's: then the process is found by its name, its parent (us) and
    /// its innermost NSpid.
    fn rss_kib(&self) -> u64 {
        let pid = self.child.id().to_string();
        let status_of = |dir: &Path| fs::read_to_string(dir.join("status")).ok();
        let field = |s: &str, key: &str| -> Option<String> {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().to_owned())
        };
        // Our own pid as this /proc numbers it: the child's parent there.
        let me = fs::read_link("/proc/self")
            .expect("/proc/self")
            .to_string_lossy()
            .into_owned();
        let matches = |s: &str| {
            field(s, "Name:").is_some_and(|n| self.name.starts_with(&n))
                && field(s, "PPid:").as_deref() == Some(me.as_str())
                && field(s, "NSpid:").is_some_and(|ns| ns.split_whitespace().last() == Some(&pid))
        };
        let direct = status_of(&Path::new("/proc").join(&pid)).filter(|s| matches(s));
        let status = direct
            .or_else(|| {
                fs::read_dir("/proc")
                    .ok()?
                    .flatten()
                    .filter_map(|e| status_of(&e.path()))
                    .find(|s| matches(s))
            })
            .unwrap_or_else(|| panic!("{} (pid {pid}) not found in /proc", self.name));
        field(&status, "VmRSS:")
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(path: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if path.exists() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Growth allowed between the warmed-up and the final RSS (allocator slack, not leaks).
const RSS_SLACK_KIB: u64 = 4096;

fn frame(dst: MacAddr, src: MacAddr, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(14)];
    emit_header(dst, src, 0x88b5, &mut f).unwrap();
    f.truncate(len);
    f
}

fn v3(addr: DataAddr) -> SwitchRequest {
    SwitchRequest::V3 { addr }
}

/// One noisy client: attaches, sends random frames (valid ones, runts, oversized ones,
/// garbage), sometimes writes garbage on a fresh control connection, and detaches and
/// reattaches now and then, until `stop`.
fn noisy_client(ctl: PathBuf, id: u32, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(id) << 20);
    let pid = std::process::id();
    let mut round = 0u32;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        if rng.below(4) == 0 {
            if let Ok(mut s) = UnixStream::connect(&ctl) {
                let n = rng.below(130) as usize;
                let _ = s.write_all(&rng.bytes(n));
            }
        }
        let local = DataAddr::abstract_name(pid, 0x4000_0000 | id << 12 | (round & 0xfff));
        let Ok(c) = attach(&ctl, local, v3, None, Duration::from_secs(5)) else {
            thread::sleep(Duration::from_millis(5));
            continue;
        };
        let me = MacAddr([2, 0x5e, 0, (id >> 8) as u8, id as u8, round as u8]);
        for _ in 0..rng.below(200) {
            let f = match rng.below(5) {
                0 => rng.noise(2000),
                1 => frame(MacAddr::BROADCAST, me, 14 + rng.below(1500) as usize),
                2 => {
                    let dst = MacAddr([2, 0x5e, 0, 0, rng.below(256) as u8, 1]);
                    frame(dst, me, 60 + rng.below(1454) as usize)
                }
                3 => frame(MacAddr::BROADCAST, me, rng.below(14) as usize),
                _ => frame(me, me, 3000),
            };
            if send_to(c.data.as_fd(), &f, &c.switch).is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        drop(c);
    }
}

/// Two quiet clients exchange a unicast frame; true when it arrives.
fn valid_traffic_flows(a: &uml_proto::switch::Client, b: &uml_proto::switch::Client) -> bool {
    let (ma, mb) = (
        MacAddr([2, 0, 0, 0xaa, 0, 1]),
        MacAddr([2, 0, 0, 0xbb, 0, 1]),
    );
    // Teach the switch where both are, then a unicast from a to b.
    let _ = send_to(
        b.data.as_fd(),
        &frame(MacAddr::BROADCAST, mb, 60),
        &b.switch,
    );
    let mut payload = frame(mb, ma, 100);
    payload[20..28].copy_from_slice(b"witness!");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 2048];
    // The switch's queue may be full under the storm (EAGAIN): the loop sends again.
    let _ = send_to(a.data.as_fd(), &payload, &a.switch);
    while Instant::now() < deadline {
        match recv_from(b.data.as_fd(), &mut buf) {
            Ok((n, _)) if buf[..n] == payload[..] => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(2));
                let _ = send_to(a.data.as_fd(), &payload, &a.switch);
            }
            Err(e) => panic!("witness receive: {e}"),
        }
    }
    false
}

#[test]
fn switch_survives_random_frames_and_churn() {
    let clients = env_number("UML_STRESS_CLIENTS", 24) as u32;
    let seconds = env_number("UML_STRESS_SECONDS", 4);
    let dir = scratch();
    let ctl = dir.path().join("stress.ctl");
    let mut switch = Daemon {
        child: Command::new(our_bin("uml_switch"))
            .arg("-unix")
            .arg(&ctl)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start uml_switch"),
        name: "uml_switch",
    };
    assert!(wait_for(&ctl, Duration::from_secs(10)), "no control socket");
    let a = tests::attach_v3(&ctl, 1);
    let b = tests::attach_v3(&ctl, 2);
    assert!(valid_traffic_flows(&a, &b), "no traffic before the storm");

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..clients)
        .map(|id| {
            let (ctl, stop, sent) = (ctl.clone(), stop.clone(), sent.clone());
            thread::spawn(move || noisy_client(ctl, id, stop, sent))
        })
        .collect();
    let start = Instant::now();
    let mut warm_rss = None;
    let mut witnessed = 0;
    while start.elapsed() < Duration::from_secs(seconds) {
        thread::sleep(Duration::from_millis(500));
        assert!(switch.alive(), "uml_switch died under the storm");
        assert!(
            valid_traffic_flows(&a, &b),
            "valid traffic stopped under the storm"
        );
        witnessed += 1;
        if warm_rss.is_none() && start.elapsed() >= Duration::from_secs(1) {
            warm_rss = Some(switch.rss_kib());
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("client thread");
    }
    assert!(switch.alive(), "uml_switch died");
    assert!(
        valid_traffic_flows(&a, &b),
        "valid traffic stopped after the storm"
    );
    let (warm, end) = (warm_rss.expect("a warm RSS"), switch.rss_kib());
    eprintln!(
        "switch stress: {clients} clients, {seconds} s, {} frames, {witnessed} witness exchanges, rss {warm} -> {end} KiB",
        sent.load(Ordering::Relaxed)
    );
    assert!(
        sent.load(Ordering::Relaxed) > 1000,
        "the storm hardly sent anything"
    );
    assert!(
        end <= warm + RSS_SLACK_KIB,
        "uml_switch grew from {warm} to {end} KiB"
    );
}

fn request(cmd: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; REQUEST_LEN];
    let n = Request::new(cmd).unwrap().emit(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// Commands that end or freeze the machine are left out; everything else is fair.
fn stops_the_machine(datagram: &[u8]) -> bool {
    let Ok(r) = Request::parse(datagram) else {
        return false;
    };
    ["halt", "reboot", "cad", "sysrq", "stop"]
        .iter()
        .any(|c| r.command.starts_with(c.as_bytes()))
}

fn random_request(rng: &mut Rng) -> Vec<u8> {
    const VALID: [&str; 16] = [
        "version",
        "help",
        "proc meminfo",
        "proc cmdline",
        "proc ../../etc",
        "config ubd0",
        "config ubd9",
        "config con0",
        "config ssl7",
        "config mem=+1M",
        "config eth0=x",
        "remove ubd9",
        "remove con7",
        "stack 1",
        "stack 99999",
        "go",
    ];
    match rng.below(4) {
        0 => request(VALID[rng.below(VALID.len() as u64) as usize].as_bytes()),
        1 => {
            let n = rng.below(300) as usize;
            let mut cmd = b"log ".to_vec();
            cmd.extend(rng.bytes(n));
            request(&cmd)
        }
        2 => {
            let n = rng.below(600) as usize;
            rng.bytes(n)
        }
        _ => {
            let mut d = request(VALID[rng.below(VALID.len() as u64) as usize].as_bytes());
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(d.len() as u64) as usize;
                d[at] = rng.next() as u8;
            }
            d.truncate(rng.below(d.len() as u64 + 1) as usize);
            d
        }
    }
}

/// Sends `version` and waits for its answer, skipping stale replies.
fn version_answers(me: &UnixDatagram, sock: &Path) -> bool {
    let mut buf = [0u8; MAX_REPLY_LEN + 64];
    while me.recv(&mut buf).is_ok() {}
    me.send_to(&request(b"version"), sock)
        .expect("send version");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(n) = me.recv(&mut buf) {
            if let Ok(r) = Reply::parse(&buf[..n]) {
                if r.err == 0 && r.text.starts_with(b"Linux") {
                    return true;
                }
            }
        }
    }
    false
}

#[test]
fn kernel_mconsole_survives_random_requests() {
    let total = env_number("UML_STRESS_REQUESTS", 10_000);
    let dir = scratch();
    let home = dir.path();
    let console = fs::File::create(home.join("console")).unwrap();
    let mut kernel = Daemon {
        child: Command::new(our_bin("uml-kernel"))
            .args(["umid=stress", "con0=null,fd:1", "con=null", "quiet"])
            .env("HOME", home)
            .current_dir(home)
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .expect("start uml-kernel"),
        name: "uml-kernel",
    };
    let sock = home.join(".uml/stress/mconsole");
    assert!(
        wait_for(&sock, Duration::from_secs(10)),
        "no mconsole socket"
    );
    let me = UnixDatagram::bind(home.join("client")).unwrap();
    me.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    assert!(version_answers(&me, &sock), "no answer before the storm");
    let mut rng = Rng(0x5eed_0010);
    let mut buf = [0u8; MAX_REPLY_LEN + 64];
    let mut warm_rss = None;
    for i in 0..total {
        let mut d = random_request(&mut rng);
        if stops_the_machine(&d) {
            d = request(b"help");
        }
        me.send_to(&d, &sock).expect("send a request");
        me.set_nonblocking(true).unwrap();
        while me.recv(&mut buf).is_ok() {}
        me.set_nonblocking(false).unwrap();
        if i % 1000 == 999 {
            assert!(kernel.alive(), "uml-kernel died after {i} requests");
            assert!(version_answers(&me, &sock), "no answer after {i} requests");
            if warm_rss.is_none() {
                warm_rss = Some(kernel.rss_kib());
            }
        }
    }
    assert!(kernel.alive(), "uml-kernel died");
    assert!(version_answers(&me, &sock), "no answer after the storm");
    if let Some(warm) = warm_rss {
        let end = kernel.rss_kib();
        eprintln!("kernel mconsole stress: {total} requests, rss {warm} -> {end} KiB");
        assert!(
            end <= warm + RSS_SLACK_KIB,
            "uml-kernel grew from {warm} to {end} KiB"
        );
    }
}

/// One answer of a hostile peer: garbage, truncated or lying reply headers, endless
/// `more` pieces, or nothing.
fn random_answer(rng: &mut Rng) -> Vec<Vec<u8>> {
    let reply = |err: i32, more: bool, text: &[u8]| {
        let mut b = [0u8; MAX_REPLY_LEN];
        let n = Reply {
            err,
            more,
            text: text.to_vec(),
        }
        .emit(&mut b)
        .unwrap();
        b[..n].to_vec()
    };
    let text = rng.noise(511);
    match rng.below(7) {
        0 => vec![rng.noise(1000)],
        1 => vec![reply(rng.next() as i32, false, &text)],
        2 => (0..rng.below(20)).map(|_| reply(0, true, &text)).collect(),
        3 => {
            let mut r = reply(0, false, &text);
            let at = 8 + rng.below(4) as usize;
            r[at] = rng.next() as u8;
            vec![r]
        }
        4 => vec![reply(0, true, &text), rng.bytes(12)],
        5 => vec![],
        _ => vec![reply(0, false, b"ok")],
    }
}

#[test]
fn mconsole_client_survives_a_hostile_peer() {
    let rounds = env_number("UML_STRESS_CLIENT_ROUNDS", 60);
    let dir = scratch();
    let sock = dir.path().join("hostile");
    let peer = UnixDatagram::bind(&sock).unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut rng = Rng(0xbad_9ee5);
            let mut buf = [0u8; 1024];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((_, from)) = peer.recv_from(&mut buf) {
                    for d in random_answer(&mut rng) {
                        let _ = peer.send_to_addr(&d, &from);
                    }
                }
            }
        })
    };
    let mut outcomes = [0u32; 3];
    for i in 0..rounds {
        let out = tests::run(
            Command::new(our_bin("uml_mconsole"))
                .args(["--timeout", "0.3"])
                .arg(&sock)
                .arg("version")
                .env("HOME", dir.path()),
            Duration::from_secs(10),
        );
        assert!(!out.timed_out, "uml_mconsole hung in round {i}");
        let code = out.code;
        assert!(
            matches!(code, Some(0..=2)),
            "uml_mconsole round {i}: exit {code:?}, signal {:?}\n{}",
            out.signal,
            out.stderr
        );
        outcomes[code.unwrap() as usize] += 1;
    }
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
    eprintln!("hostile peer: {rounds} rounds, exit 0/1/2: {outcomes:?}");
    assert!(
        outcomes[0] > 0 && outcomes[1] > 0,
        "the peer never varied: {outcomes:?}"
    );
}

#[test]
fn mconsole_notify_listener_survives_random_datagrams() {
    use std::io::{BufRead, BufReader};
    use uml_proto::mconsole::{Notification, NotifyKind, MAX_NOTIFY_LEN};
    let count = env_number("UML_STRESS_NOTIFY", 3000);
    let dir = scratch();
    let sock = dir.path().join("notify");
    let mut listener = Daemon {
        child: Command::new(our_bin("uml_mconsole"))
            .arg("--notify")
            .arg(&sock)
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start uml_mconsole --notify"),
        name: "uml_mconsole",
    };
    let lines = {
        let out = listener.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        rx
    };
    assert!(wait_for(&sock, Duration::from_secs(10)), "no notify socket");
    let me = UnixDatagram::unbound().unwrap();
    let mut rng = Rng(0x0071_f1e5);
    let mut buf = [0u8; MAX_NOTIFY_LEN];
    for i in 0..count {
        let d = if rng.below(2) == 0 {
            rng.noise(700)
        } else {
            let kind = [
                NotifyKind::Socket,
                NotifyKind::Panic,
                NotifyKind::Hang,
                NotifyKind::User,
            ][rng.below(4) as usize];
            let n = Notification {
                kind,
                data: rng.noise(600),
            }
            .emit(&mut buf)
            .unwrap();
            let mut d = buf[..n].to_vec();
            let at = rng.below(n as u64) as usize;
            d[at] = rng.next() as u8;
            d
        };
        // The listener's queue may be full for a moment: wait a little and go on.
        if me.send_to(&d, &sock).is_err() {
            thread::sleep(Duration::from_millis(1));
        }
        if i % 500 == 0 {
            assert!(listener.alive(), "the listener died after {i} datagrams");
        }
    }
    let n = Notification {
        kind: NotifyKind::User,
        data: b"still-listening".to_vec(),
    }
    .emit(&mut buf)
    .unwrap();
    me.send_to(&buf[..n], &sock).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) if l == "user still-listening" => break,
            Ok(_) => seen += 1,
            Err(_) => panic!("the listener stopped printing after {seen} lines"),
        }
    }
    assert!(listener.alive(), "the listener died");
    eprintln!("notify listener: {count} random datagrams, {seen} lines printed before the marker");
    assert!(seen > 0, "no random notification got through");
}
