//! uml-kernel's host side against another local user (issue 15 items 10-11): a
//! symlink planted at the umid's name in a shared uml_dir does not make the kernel
//! touch what it points to; the daemon transport takes frames only from its switch;
//! the ARP table stays bounded under made-up neighbours.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tests::{fingerprint, our_bin, run, scratch};
use uml_proto::switch::{bind_dgram, emit_reply, recv_from, send_to, DataAddr, Request};

const LIMIT: Duration = Duration::from_secs(10);

fn setpriv_nobody() -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    c
}

/// Item 10: uid 65534 plants `shared/box -> /root-owned victim dir` in a shared
/// uml_dir (mode 1777, like /tmp/uml); root boots `umid=box uml_dir=shared` and halts.
/// The victim's files are untouched.
#[test]
fn a_symlinked_umid_directory_does_not_reach_its_target() {
    let dir = scratch();
    let d = dir.path();
    let shared = d.join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = d.join("victim");
    fs::create_dir(&victim).unwrap();
    for name in ["pid", "mconsole", "notes"] {
        fs::write(victim.join(name), format!("root's {name}\n")).unwrap();
    }
    let before: Vec<_> = ["pid", "mconsole", "notes"]
        .iter()
        .map(|n| fingerprint(&victim.join(n)))
        .collect();
    let link = shared.join("box");
    let planted = tests::run(
        setpriv_nobody().arg("ln").arg("-s").arg(&victim).arg(&link),
        LIMIT,
    );
    assert!(planted.success(), "{planted:?}");

    let mut k = Command::new(our_bin("uml-kernel"))
        .arg("umid=box")
        .arg(format!("uml_dir={}", shared.display()))
        .env("HOME", d)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // If it boots, halt it as the owner would.
    let start = Instant::now();
    while k.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(3) {
        if link.join("mconsole").exists() {
            let _ = run(
                Command::new(our_bin("uml_mconsole"))
                    .arg(link.join("mconsole"))
                    .arg("halt"),
                LIMIT,
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    let (status, timed_out) = tests::command::wait_bounded(&mut k, LIMIT);
    let mut err = String::new();
    k.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let after: Vec<_> = ["pid", "mconsole", "notes"]
        .iter()
        .map(|n| {
            assert!(victim.join(n).exists(), "the kernel removed victim/{n}");
            fingerprint(&victim.join(n))
        })
        .collect();
    assert_eq!(before, after, "the victim directory changed");
    assert_eq!(
        fs::read_dir(&victim).unwrap().count(),
        3,
        "the kernel added files to the victim directory"
    );
    assert!(!timed_out && status.code() == Some(1), "{status:?}: {err}");
    assert!(err.contains("symbolic link: refused"), "{err}");
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
}

/// A fake switch: takes one uml-kernel's v3 request and answers with its own data
/// socket, so the test sees the kernel's data address and what it sends.
struct FakeSwitch {
    _listener: UnixListener,
    _control: UnixStream,
    data: std::os::fd::OwnedFd,
    kernel: DataAddr,
}

impl FakeSwitch {
    fn accept(listener: UnixListener, k: &mut Child) -> FakeSwitch {
        listener.set_nonblocking(true).unwrap();
        let start = Instant::now();
        let mut control = loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(_) => {
                    assert!(k.try_wait().unwrap().is_none(), "uml-kernel exited");
                    assert!(start.elapsed() < LIMIT, "no connection from uml-kernel");
                    thread::sleep(Duration::from_millis(10));
                }
            }
        };
        control.set_nonblocking(false).unwrap();
        control.set_read_timeout(Some(LIMIT)).unwrap();
        let mut req = [0u8; 124];
        control.read_exact(&mut req[..122]).unwrap();
        let kernel = *Request::parse(&req[..122]).unwrap().addr();
        let data_addr = DataAddr::abstract_name(std::process::id(), 31337);
        let data = bind_dgram(&data_addr).unwrap();
        let mut reply = [0u8; 110];
        let n = emit_reply(&data_addr, &mut reply);
        control.write_all(&reply[..n]).unwrap();
        FakeSwitch {
            _listener: listener,
            _control: control,
            data,
            kernel,
        }
    }

    /// ARP replies the kernel sent to `mac`, waiting up to `wait`.
    fn arp_replies_to(&self, mac: [u8; 6], wait: Duration) -> u32 {
        let start = Instant::now();
        let mut n = 0;
        let mut buf = [0u8; 2048];
        while start.elapsed() < wait {
            match recv_from(self.data.as_fd(), &mut buf) {
                Ok((len, _)) if len >= 42 && buf[12..14] == [8, 6] && buf[0..6] == mac => n += 1,
                Ok(_) => {}
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
        n
    }
}

/// An ARP request for 10.0.0.1 from `mac` / `ip`.
fn arp_request(mac: [u8; 6], ip: [u8; 4]) -> Vec<u8> {
    arp_request_for(mac, ip, [10, 0, 0, 1])
}

fn arp_request_for(mac: [u8; 6], ip: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn kernel_on_fake_switch(d: &Path) -> (Child, ChildStdin, FakeSwitch, std::path::PathBuf) {
    let ctl = d.join("fake.ctl");
    let listener = UnixListener::bind(&ctl).unwrap();
    let console = d.join("console");
    let out = fs::File::create(&console).unwrap();
    let mut k = Command::new(our_bin("uml-kernel"))
        .arg("umid=daemon")
        .arg("con0=fd:0,fd:1")
        .arg(format!("eth0=daemon,,unix,{}", ctl.display()))
        .env("HOME", d)
        .stdin(Stdio::piped())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let sw = FakeSwitch::accept(listener, &mut k);
    let mut stdin = k.stdin.take().unwrap();
    writeln!(stdin, "ifconfig eth0 10.0.0.1 netmask 255.255.255.0 up").unwrap();
    // Up once it answers the switch.
    let ours = [2, 0, 0, 0, 0, 0x22];
    let start = Instant::now();
    loop {
        send_to(
            sw.data.as_fd(),
            &arp_request(ours, [10, 0, 0, 2]),
            &sw.kernel,
        )
        .unwrap();
        if sw.arp_replies_to(ours, Duration::from_millis(100)) > 0 {
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "uml-kernel does not answer ARP:\n{}",
            fs::read_to_string(&console).unwrap_or_default()
        );
    }
    (k, stdin, sw, console)
}

/// Item 11: uid 65534 sends an ARP request straight to the kernel's data socket (its
/// abstract name is visible in /proc/net/unix); the kernel does not take it, while the
/// same request from the switch is answered.
#[test]
fn daemon_transport_takes_frames_from_its_switch_only() {
    let dir = scratch();
    let (mut k, _stdin, sw, _console) = kernel_on_fake_switch(dir.path());
    let evil = [2, 0, 0, 0, 0, 0x66];
    let out = run(
        setpriv_nobody()
            .arg(env!("CARGO_BIN_EXE_switch-client"))
            .arg("inject")
            .arg(hex(&sw.kernel.bytes[..sw.kernel.len as usize]))
            .arg(hex(&arp_request(evil, [10, 0, 0, 66]))),
        LIMIT,
    );
    assert!(
        out.stdout.starts_with("sent") || out.stdout.starts_with("error"),
        "{out:?}"
    );
    assert_eq!(
        sw.arp_replies_to(evil, Duration::from_millis(1000)),
        0,
        "the kernel answered a frame from a stranger ({})",
        out.stdout.trim()
    );
    let ours = [2, 0, 0, 0, 0, 0x23];
    send_to(
        sw.data.as_fd(),
        &arp_request(ours, [10, 0, 0, 3]),
        &sw.kernel,
    )
    .unwrap();
    assert!(sw.arp_replies_to(ours, Duration::from_millis(1000)) > 0);
    let _ = k.kill();
    let _ = k.wait();
}

/// Item 11: 5,000 made-up neighbours leave the `arp` table at its bound (256).
#[test]
fn arp_table_is_bounded() {
    let dir = scratch();
    let (mut k, mut stdin, sw, console) = kernel_on_fake_switch(dir.path());
    for i in 0..5000u32 {
        let b = i.to_be_bytes();
        // Asking for someone else: the kernel learns the sender and stays quiet.
        let f = arp_request_for(
            [2, 0, 0, b[1], b[2], b[3]],
            [10, b[1], b[2], b[3]],
            [10, 0, 0, 250],
        );
        while send_to(sw.data.as_fd(), &f, &sw.kernel).is_err() {
            thread::sleep(Duration::from_micros(50));
        }
    }
    thread::sleep(Duration::from_millis(300));
    writeln!(stdin, "arp -n\necho ARP-DONE").unwrap();
    let start = Instant::now();
    let text = loop {
        let t = fs::read_to_string(&console).unwrap_or_default();
        if t.contains("ARP-DONE") {
            break t;
        }
        assert!(start.elapsed() < LIMIT, "no arp listing:\n{t}");
        thread::sleep(Duration::from_millis(20));
    };
    let entries = text.lines().filter(|l| l.contains("02:00:00")).count();
    assert!(
        entries == 256,
        "{entries} ARP entries listed:\n{}",
        &text[text.len().saturating_sub(2000)..]
    );
    let _ = k.kill();
    let _ = k.wait();
}
