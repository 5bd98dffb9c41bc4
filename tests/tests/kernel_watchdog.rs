//! /dev/watchdog in uml-kernel guests (issue 17), with our uml_watchdog as the helper
//! (`UML_WATCHDOG` names a wrapper that runs it with `--timeout 2`, its stderr in a log):
//! busybox `watchdog` keeps the kernel alive well past the period; `uml_mconsole NAME
//! stop` freezes the guests, the pings stop and the helper fires — with `-pid` the kernel
//! gets SIGINT and shuts down, with `-mconsole` (`mconsole=notify:SOCKET`) a hang
//! notification arrives and the kernel runs on. A guest that opens the device and stops
//! writing makes it fire too; closing the device stops the helper without firing.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use tests::{descendants, our_bin, proc_dir, scratch, GuestImage, KernelRun};
use uml_proto::mconsole::{Notification, NotifyKind};

const LIMIT: Duration = Duration::from_secs(30);
/// The helper's period in these tests.
const PERIOD: Duration = Duration::from_secs(2);

/// A wrapper that runs our uml_watchdog with `--timeout`, its stderr appended to `log`.
fn wrapper(dir: &Path, log: &Path) -> PathBuf {
    let path = dir.join("uml_watchdog");
    fs::write(
        &path,
        format!(
            "#!/bin/sh\nexec {} --timeout {} \"$@\" 2>>{}\n",
            our_bin("uml_watchdog").display(),
            PERIOD.as_secs(),
            log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn boot(dir: &Path, umid: &str, init: &str, extra: &[String]) -> (KernelRun, PathBuf) {
    let log = dir.join("watchdog.log");
    let dog = wrapper(dir, &log);
    let img = GuestImage::build(&dir.join(format!("{umid}.img")), init);
    let mut args = vec![
        format!("ubd0={}", img.path.display()),
        "root=/dev/ubda".into(),
        "rw".into(),
        "init=/sbin/init".into(),
        "con0=fd:0,fd:1".into(),
        "con=null".into(),
    ];
    args.extend(extra.iter().cloned());
    let mut cmd = KernelRun::command(&our_bin("uml-kernel"), umid, &args);
    cmd.env("UML_WATCHDOG", dog);
    let k = KernelRun::start(cmd, &dir.join("home"), umid);
    (k, log)
}

/// The helper's command line, once the kernel runs it.
fn helper_cmdline(k: &KernelRun) -> String {
    let start = Instant::now();
    loop {
        for p in descendants(k.child.id() as i32) {
            let Some(dir) = proc_dir(p) else { continue };
            let cmd = fs::read(dir.join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains("uml_watchdog") && cmd.contains("--timeout") {
                return cmd;
            }
        }
        assert!(
            start.elapsed() < LIMIT,
            "uml_watchdog never ran:\n{}",
            k.output()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

const BUSYBOX_WATCHDOG: &str = "#!/bin/sh
watchdog -F -t 1 /dev/watchdog &
echo \"WDPID $!\"
while true; do sleep 1; done
";

#[test]
fn busybox_watchdog_keeps_it_alive_and_mconsole_stop_makes_it_fire_pid_mode() {
    let dir = scratch();
    let (mut k, log) = boot(dir.path(), "kwd-pid", BUSYBOX_WATCHDOG, &[]);
    let cmd = helper_cmdline(&k);
    let kpid = k.child.id();
    assert!(cmd.ends_with(&format!("-pid {kpid} ")), "{cmd}");
    // Three periods of pings: still running.
    thread::sleep(PERIOD * 3);
    assert!(
        k.child.try_wait().unwrap().is_none(),
        "the kernel died while pinged:\n{}\n{}",
        k.output(),
        fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(k.mconsole("version").success());
    // Frozen: the helper stops the kernel with SIGINT.
    let stop = k.mconsole("stop");
    assert!(stop.success(), "{stop:?}");
    let stopped = Instant::now();
    let status = k.wait_exit(PERIOD + Duration::from_secs(10));
    let console = k.output();
    let said = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.is_some(),
        "still running after stop:\n{console}\n{said}"
    );
    // The helper fires PERIOD after the last ping, which busybox (-t 1) sent at most a
    // second before the stop: not at once, and not before PERIOD minus that second.
    let waited = stopped.elapsed();
    assert!(
        waited >= PERIOD - Duration::from_millis(1200),
        "fired {waited:?} after stop"
    );
    assert!(
        said.contains(&format!("no ping for 2 s: stopping pid {kpid}")),
        "{said}"
    );
    assert!(console.contains("Received signal 2"), "{console}");
}

#[test]
fn mconsole_mode_sends_a_hang_notification_for_a_silent_guest_and_a_close_stops_it() {
    let dir = scratch();
    let notify = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // A guest that opens the device, pings once and falls silent with it open; then
    // one that opens it, pings and closes it.
    let init = "#!/bin/sh
exec 3>/dev/watchdog && echo ping >&3 && echo opened
read go
exec 3>&-
echo closed
sh -c 'echo once > /dev/watchdog' && echo pinged-and-closed
while true; do sleep 1; done
";
    let (mut k, log) = boot(
        dir.path(),
        "kwd-mc",
        init,
        &[format!("mconsole=notify:{}", notify.display())],
    );
    let cmd = helper_cmdline(&k);
    assert!(
        cmd.ends_with(&format!("-mconsole {} ", notify.display())),
        "{cmd}"
    );
    assert!(k.wait_from(0, "opened", LIMIT).is_some(), "{}", k.output());
    let opened = Instant::now();
    let mut buf = [0u8; 1024];
    let hang = loop {
        if let Ok(n) = sock.recv(&mut buf) {
            let n = Notification::parse(&buf[..n]).unwrap();
            if n.kind == NotifyKind::Hang {
                break opened.elapsed();
            }
        }
        assert!(
            opened.elapsed() < PERIOD + Duration::from_secs(10),
            "no hang notification:\n{}\n{}",
            k.output(),
            fs::read_to_string(&log).unwrap_or_default()
        );
    };
    assert!(hang >= PERIOD - Duration::from_millis(500), "{hang:?}");
    // The kernel runs on: whoever listens decides.
    assert!(k.child.try_wait().unwrap().is_none());
    assert!(k.mconsole("version").success());
    // The helper that fired is gone; closing and reopening works (one helper at a
    // time) and a closed device does not fire.
    k.type_line("");
    assert!(
        k.wait_from(0, "pinged-and-closed", LIMIT).is_some(),
        "{}",
        k.output()
    );
    let closed = Instant::now();
    while closed.elapsed() < PERIOD * 2 {
        if let Ok(n) = sock.recv(&mut buf) {
            let n = Notification::parse(&buf[..n]).unwrap();
            assert_ne!(n.kind, NotifyKind::Hang, "fired after the close");
        }
    }
    let halt = k.mconsole("halt");
    assert!(halt.success(), "{halt:?}");
    assert!(k.wait_exit(LIMIT).is_some());
}
