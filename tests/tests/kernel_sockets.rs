//! Networking for guest programs (issue 14): uml-kernel runs the busybox image's sh as
//! init, and its programs use sockets on the kernel's stack. On our uml_switch with a
//! peer (a linux.uml guest, and a second uml-kernel): busybox `ifconfig` and `route`
//! inside uml-kernel (checked against /proc/net/route), `ping` both ways, `httpd` in
//! one kernel serving a file `wget` in the other fetches (both ways), `nc` both ways
//! with the data checked; and unix sockets inside the guest (busybox syslogd and
//! logger). Unix sockets only on the host side: it runs in the namespace scripts/test
//! makes. Each peer boots once.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tests::{linux_uml, our_bin, scratch, GuestImage, KernelRun, Uml, UmlBoot};

const LIMIT: Duration = Duration::from_secs(20);
const BOOT: Duration = Duration::from_secs(40);

/// Our uml_switch on `dir/sw.ctl`; killed by pid when dropped.
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

fn switch(dir: &Path) -> Switch {
    let ctl = dir.join("sw.ctl");
    let child = Command::new(our_bin("uml_switch"))
        .arg("-unix")
        .arg(&ctl)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start uml_switch");
    let start = Instant::now();
    while std::os::unix::net::UnixStream::connect(&ctl).is_err() {
        assert!(start.elapsed() < LIMIT, "uml_switch did not start");
        thread::sleep(Duration::from_millis(5));
    }
    Switch { child, ctl }
}

const KERNEL_INIT: &str = "#!/bin/sh
mount -t proc proc /proc
mkdir -p /www
echo served-by-uml-kernel > /www/index.html
echo GUEST-READY
exec sh
";

/// The peer's init (linux.uml or a second uml-kernel).
const PEER_INIT: &str = "#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys 2>/dev/null
for f in /proc/sys/net/ipv6/conf/*/disable_ipv6; do echo 1 > $f; done 2>/dev/null
ifconfig lo up 2>/dev/null
mkdir -p /www
echo served-by-peer > /www/index.html
echo GUEST-READY
exec sh
";

/// uml-kernel running the image's busybox as init, eth0 on the switch.
fn uml_kernel(dir: &Path, ctl: &Path) -> KernelRun {
    uml_kernel_with(dir, ctl, "sockets", KERNEL_INIT, 1)
}

fn uml_kernel_with(dir: &Path, ctl: &Path, umid: &str, init: &str, mac: u8) -> KernelRun {
    let img = GuestImage::build(&dir.join(format!("{umid}.img")), init);
    let args = [
        format!("ubd0={}", img.path.display()),
        "root=/dev/ubda".into(),
        "rw".into(),
        "init=/sbin/init".into(),
        "con0=fd:0,fd:1".into(),
        "con=null".into(),
        format!(
            "eth0=daemon,fe:fd:00:00:00:{mac:02x},unix,{}",
            ctl.display()
        ),
    ];
    let k = KernelRun::start(
        KernelRun::command(&our_bin("uml-kernel"), umid, &args),
        &dir.join(format!("{umid}-home")),
        umid,
    );
    assert!(
        k.wait_from(0, "GUEST-READY", BOOT).is_some(),
        "uml-kernel's init did not start:\n{}",
        k.output()
    );
    k
}

fn linux_guest(dir: &Path, ctl: &Path) -> Option<UmlBoot> {
    linux_uml()?;
    let img = GuestImage::build(&dir.join("l.img"), PEER_INIT);
    let cow = dir.join("l.cow");
    let uml = Uml::new(&dir.join("lhome"), &format!("lxs-{}", std::process::id()))?
        .root(&format!("{},{}", cow.display(), img.path.display()))
        .arg(format!(
            "eth0=daemon,fe:fd:00:00:00:03,unix,{}",
            ctl.display()
        ));
    Some(uml.boot_until("GUEST-READY", BOOT))
}

/// The other end of the LAN.
enum Peer {
    Linux(UmlBoot),
    Kernel(KernelRun),
}

impl Peer {
    fn sh(&mut self, cmd: &str) -> String {
        match self {
            Peer::Linux(g) => {
                g.shell(cmd, LIMIT)
                    .unwrap_or_else(|| panic!("linux.uml: `{cmd}` timed out:\n{}", g.console()))
                    .0
            }
            Peer::Kernel(k) => k.sh(cmd, LIMIT),
        }
    }
}

fn received(out: &str) -> u32 {
    out.lines()
        .find_map(|l| {
            let (head, _) = l.split_once(" packets received")?;
            head.rsplit(", ").next()?.trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("no ping summary:\n{out}"))
}

#[test]
fn guest_programs_talk_to_linux_uml_over_the_switch() {
    let dir = scratch();
    let d = dir.path();
    let sw = switch(d);
    let k = uml_kernel(d, &sw.ctl);
    let Some(l) = linux_guest(d, &sw.ctl) else {
        return;
    };
    lan(k, Peer::Linux(l));
}

#[test]
fn guest_programs_talk_to_another_uml_kernel_over_the_switch() {
    let dir = scratch();
    let d = dir.path();
    let sw = switch(d);
    let k = uml_kernel(d, &sw.ctl);
    let p = uml_kernel_with(d, &sw.ctl, "peer", PEER_INIT, 3);
    lan(k, Peer::Kernel(p));
}

/// uml-kernel `k` (10.0.0.1) and `peer` (10.0.0.3) on one switch.
fn lan(mut k: KernelRun, mut peer: Peer) {
    let l = &mut peer;

    // busybox ifconfig and route inside uml-kernel, through the ioctls.
    let out = k.sh(
        "ifconfig eth0 10.0.0.1 netmask 255.255.255.0 up && route add default gw 10.0.0.3 && echo CONFIGURED",
        LIMIT,
    );
    assert!(out.contains("\nCONFIGURED"), "{out}");
    let out = k.sh("ifconfig eth0", LIMIT);
    assert!(out.contains("HWaddr FE:FD:00:00:00:01"), "{out}");
    assert!(
        out.contains("inet addr:10.0.0.1  Bcast:10.0.0.255  Mask:255.255.255.0"),
        "{out}"
    );
    assert!(out.contains("UP BROADCAST RUNNING MULTICAST"), "{out}");
    let route = k.sh("cat /proc/net/route", LIMIT);
    assert!(
        route.contains("eth0\t00000000\t0300000A\t0003\t0\t0\t0\t00000000"),
        "default route missing:\n{route}"
    );
    assert!(
        route.contains("eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF"),
        "subnet route missing:\n{route}"
    );
    let table = k.sh("route -n", LIMIT);
    assert!(
        table.contains("0.0.0.0         10.0.0.3        0.0.0.0         UG"),
        "{table}"
    );
    l.sh("ifconfig eth0 10.0.0.3 netmask 255.255.255.0 up");

    // ping both ways (busybox ping: a raw ICMP socket and SIGALRM between echoes).
    let out = k.sh("ping -c 2 10.0.0.3", LIMIT);
    assert_eq!(received(&out), 2, "uml-kernel -> peer:\n{out}");
    let out = l.sh("ping -c 2 -W 3 10.0.0.1");
    assert_eq!(received(&out), 2, "peer -> uml-kernel:\n{out}");

    // httpd in uml-kernel, wget in linux.uml; then the reverse.
    k.sh("httpd -p 80 -h /www && echo HTTPD-UP", LIMIT);
    let out = l.sh("wget -q -O - http://10.0.0.1/index.html");
    assert!(
        out.contains("served-by-uml-kernel"),
        "wget from uml-kernel:\n{out}"
    );
    l.sh("httpd -p 8080 -h /www");
    let out = k.sh("wget -q -O - http://10.0.0.3:8080/index.html", LIMIT);
    assert!(
        out.contains("\nserved-by-peer"),
        "wget from the peer:\n{out}"
    );

    // nc both ways: a listener in one, the connecting side in the other.
    k.sh("nc -l -p 5000 > /tmp/from-linux &", LIMIT);
    thread::sleep(Duration::from_millis(300));
    l.sh("seq 1 3000 > /tmp/data; nc 10.0.0.1 5000 < /tmp/data");
    let out = k.sh(
        "sleep 0.5; seq 1 3000 > /tmp/want; cmp /tmp/want /tmp/from-linux && echo SAME-$(wc -c < /tmp/from-linux)",
        LIMIT,
    );
    assert!(
        out.contains("\nSAME-13893"),
        "nc peer -> uml-kernel:\n{out}"
    );
    l.sh("nc -l -p 5001 > /tmp/from-kernel &");
    thread::sleep(Duration::from_millis(300));
    k.sh("echo hello-from-uml-kernel | nc 10.0.0.3 5001", LIMIT);
    let out = l.sh("sleep 0.5; cat /tmp/from-kernel");
    assert!(
        out.contains("hello-from-uml-kernel"),
        "nc uml-kernel -> peer:\n{out}"
    );

    // The guest's sockets show in /proc/net/tcp: httpd listening on port 80 (0050).
    let tcp = k.sh("cat /proc/net/tcp", LIMIT);
    assert!(tcp.contains("00000000:0050 00000000:0000 0A"), "{tcp}");
}

#[test]
fn unix_sockets_inside_the_guest() {
    let dir = scratch();
    let d = dir.path();
    let sw = switch(d);
    let mut k = uml_kernel(d, &sw.ctl);
    // syslogd binds /dev/log (a datagram socket); logger sends to it.
    let out = k.sh(
        "syslogd -n -O /tmp/messages & sleep 0.3; logger -t probe hello-syslog; sleep 0.3; cat /tmp/messages",
        LIMIT,
    );
    assert!(out.contains("probe: hello-syslog"), "{out}");
}
