//! The platform under the demonstration sentry: static busybox runs as a guest process
//! (`echo`, `true`, `false`) in both stop modes; a guest is confined (no_new_privs,
//! seccomp, no capabilities, no host descriptors, an unprivileged uid under root); a
//! hostile static guest reaches nothing of the host; guests die with the kernel.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kernel::syscalls::platform::demo::{DemoSentry, Outcome, RELEASE};
use kernel::syscalls::platform::{Creds, Error, Event, Image, Mode, Platform};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

const BUSYBOX: &str = "/bin/busybox";
const LIMIT: Duration = Duration::from_secs(20);

fn busybox() -> Image {
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing: install busybox-static (scripts/setup)"
    );
    Image::from_host_file(Path::new(BUSYBOX)).unwrap()
}

/// Kills `pid` (a guest this test started) if the test has not finished within LIMIT;
/// drop the returned sender to disarm.
fn watchdog(pid: Pid) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(LIMIT) {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        }
    });
    tx
}

fn run_busybox(mode: Mode, args: &[&str]) -> (Outcome, String, DemoSentry) {
    let mut platform = Platform::new(mode, Creds::default_for_host()).unwrap();
    let pid = platform.spawn(&busybox(), args, &["PATH=/bin"]).unwrap();
    let _dog = watchdog(pid);
    let mut sentry = DemoSentry::default();
    let outcome = sentry.run(&mut platform, pid).unwrap();
    let out = String::from_utf8_lossy(&sentry.output).into_owned();
    (outcome, out, sentry)
}

#[test]
fn busybox_echo_under_seccomp_stops() {
    let (outcome, out, sentry) = run_busybox(Mode::Seccomp, &["busybox", "echo", "hello"]);
    assert_eq!(outcome, Outcome::Exited(0), "output: {out:?}");
    assert_eq!(out, "hello\n");
    let nrs: Vec<i64> = sentry.trapped.iter().map(|c| c.nr).collect();
    assert!(nrs.contains(&libc::SYS_write), "trapped: {nrs:?}");
    // The allow-list ran on the host: none of these reached the sentry.
    for allowed in [libc::SYS_brk, libc::SYS_arch_prctl] {
        assert!(!nrs.contains(&allowed), "{allowed} was trapped: {nrs:?}");
    }
    // set_tid_address returns a tid: it stops, so a sentry can answer the guest's.
    assert!(nrs.contains(&libc::SYS_set_tid_address), "trapped: {nrs:?}");
}

#[test]
fn busybox_echo_under_sysemu() {
    let (outcome, out, _) = run_busybox(Mode::Sysemu, &["busybox", "echo", "hello", "world"]);
    assert_eq!(outcome, Outcome::Exited(0), "output: {out:?}");
    assert_eq!(out, "hello world\n");
}

#[test]
fn busybox_true_and_false_exit_statuses() {
    let (outcome, out, _) = run_busybox(Mode::Seccomp, &["busybox", "true"]);
    assert_eq!((outcome, out.as_str()), (Outcome::Exited(0), ""));
    let (outcome, out, _) = run_busybox(Mode::Seccomp, &["busybox", "false"]);
    assert_eq!((outcome, out.as_str()), (Outcome::Exited(1), ""));
}

#[test]
fn busybox_uname_sees_the_sentry() {
    let (outcome, out, _) = run_busybox(Mode::Seccomp, &["busybox", "uname", "-r"]);
    assert_eq!(outcome, Outcome::Exited(0), "output: {out:?}");
    assert_eq!(out, format!("{RELEASE}\n"));
}

#[test]
fn try_wait_polls_without_blocking() {
    let mut platform = Platform::new(Mode::Seccomp, Creds::default_for_host()).unwrap();
    assert_eq!(platform.try_wait(), Err(Error::NoGuests));
    let pid = platform
        .spawn(&busybox(), &["busybox", "echo", "polled"], &[] as &[&str])
        .unwrap();
    let _dog = watchdog(pid);
    let mut sentry = DemoSentry::default();
    let start = Instant::now();
    let outcome = loop {
        assert!(start.elapsed() < LIMIT, "the guest never finished");
        match platform.try_wait().unwrap() {
            None => std::thread::sleep(Duration::from_micros(100)),
            Some(event) => {
                if let Some(outcome) = sentry.serve(&mut platform, pid, event).unwrap() {
                    break outcome;
                }
            }
        }
    };
    assert_eq!(outcome, Outcome::Exited(0));
    assert_eq!(sentry.output, b"polled\n");
    assert_eq!(platform.try_wait(), Err(Error::NoGuests));
}

#[test]
fn a_bad_image_is_a_clear_spawn_error() {
    let mut platform = Platform::new(Mode::Seccomp, Creds::default_for_host()).unwrap();
    let image = Image::from_bytes("junk", b"not an ELF at all").unwrap();
    let err = platform
        .spawn(&image, &["junk"], &[] as &[&str])
        .unwrap_err();
    assert_eq!(
        err,
        Error::Spawn {
            step: "execveat",
            errno: Errno::ENOEXEC
        },
        "{err}"
    );
    assert_eq!(platform.guests().count(), 0);
}

/// The /proc directory of `pid` (a pid of this process's namespace). Under a pid
/// namespace whose /proc is the parent's (as scripts/test runs), the numbers differ: the
/// process is found by the last field of its NSpid line and its parent.
fn proc_dir(pid: u32) -> PathBuf {
    let me = std::process::id();
    let self_in_proc: u32 = std::fs::read_link("/proc/self")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    if self_in_proc == me {
        return PathBuf::from(format!("/proc/{pid}"));
    }
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
        };
        let ns_pid = field("NSpid:").and_then(|v| v.split_whitespace().last()?.parse().ok());
        let ppid = field("PPid:").and_then(|v| v.parse().ok());
        if ns_pid == Some(pid) && ppid == Some(self_in_proc) {
            return entry.path();
        }
    }
    panic!("pid {pid} not found in /proc");
}

fn status_field(pid: Pid, key: &str) -> String {
    let dir = proc_dir(pid.as_raw() as u32);
    let status = std::fs::read_to_string(dir.join("status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {key} in {}/status", dir.display()))
}

#[test]
fn a_guest_is_confined_on_the_host() {
    let mut platform = Platform::new(Mode::Seccomp, Creds::default_for_host()).unwrap();
    let pid = platform
        .spawn(&busybox(), &["busybox", "echo", "x"], &[] as &[&str])
        .unwrap();
    let _dog = watchdog(pid);
    // Stopped at its first trapped syscall: look at it from the host.
    let Event::Syscall { pid: at, .. } = platform.wait().unwrap() else {
        panic!("expected a syscall stop");
    };
    assert_eq!(at, pid);
    assert_eq!(status_field(pid, "NoNewPrivs:"), "1");
    assert_eq!(status_field(pid, "Seccomp:"), "2");
    assert_eq!(status_field(pid, "CapEff:"), "0000000000000000");
    assert_eq!(status_field(pid, "CapPrm:"), "0000000000000000");
    if nix::unistd::geteuid().is_root() {
        assert!(status_field(pid, "Uid:").starts_with("65534\t65534\t65534\t65534"));
        assert!(status_field(pid, "Gid:").starts_with("65534\t65534\t65534\t65534"));
        assert_eq!(status_field(pid, "Groups:"), "");
    }
    let fds: Vec<_> = std::fs::read_dir(proc_dir(pid.as_raw() as u32).join("fd"))
        .unwrap()
        .collect();
    assert!(fds.is_empty(), "the guest holds host descriptors: {fds:?}");
    // Its own host process group, apart from the kernel's (no terminal signals).
    assert_eq!(nix::unistd::getpgid(Some(pid)).unwrap(), pid);
    platform.kill(pid).unwrap();
    assert_eq!(
        platform.wait().unwrap(),
        Event::Killed {
            pid,
            signal: Signal::SIGKILL
        }
    );
}

#[test]
fn the_sentry_reads_and_writes_guest_memory() {
    let mut platform = Platform::new(Mode::Seccomp, Creds::default_for_host()).unwrap();
    let pid = platform
        .spawn(&busybox(), &["busybox", "echo", "hello"], &[] as &[&str])
        .unwrap();
    let _dog = watchdog(pid);
    let mut sentry = DemoSentry::default();
    loop {
        let event = platform.wait().unwrap();
        if let Event::Syscall { pid: at, call } = event {
            if call.nr == libc::SYS_write && call.args[0] == 1 {
                let (buf, len) = (call.args[1], call.args[2] as usize);
                assert_eq!(len, 6);
                let (mut direct, mut word) = (vec![0u8; len], vec![0u8; len]);
                platform.read_mem(at, buf, &mut direct).unwrap();
                platform.read_mem_ptrace(at, buf, &mut word).unwrap();
                assert_eq!((&direct[..], &word[..]), (&b"hello\n"[..], &b"hello\n"[..]));
                // Unaligned partial words through ptrace, the rest directly.
                platform.write_mem_ptrace(at, buf + 1, b"EL").unwrap();
                platform.write_mem(at, buf + 3, b"LO").unwrap();
                let mut back = vec![0u8; len];
                platform.read_mem(at, buf, &mut back).unwrap();
                assert_eq!(back, b"hELLO\n");
                assert_eq!(platform.read_cstr(at, buf, 5).unwrap(), b"hELLO");
            }
        }
        if let Some(outcome) = sentry.serve(&mut platform, pid, event).unwrap() {
            assert_eq!(outcome, Outcome::Exited(0));
            break;
        }
    }
    assert_eq!(sentry.output, b"hELLO\n");
}

fn build_hostile(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests/hostile.c");
    let out = dir.join("hostile");
    let status = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("gcc is missing: install gcc and libc6-dev (scripts/setup)");
    assert!(status.success(), "gcc -static {} failed", src.display());
    out
}

/// Memory of the "kernel" a guest must not reach with process_vm_writev.
static KERNEL_SECRET: AtomicU64 = AtomicU64::new(0x5ec2e7);

struct Victim(Child);

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_hostile_guest_reaches_nothing_of_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = build_hostile(dir.path());
    let victim = Victim(Command::new("sleep").arg("30").spawn().unwrap());
    let victim_pid = victim.0.id();
    let target = dir.path().join("created-by-guest");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let secret_addr = &KERNEL_SECRET as *const AtomicU64 as u64;

    let image = Image::from_host_file(&hostile).unwrap();
    let args = [
        "hostile".to_string(),
        std::process::id().to_string(),
        format!("{secret_addr:x}"),
        target.display().to_string(),
        port.to_string(),
    ];
    // process_vm_writev aims at this process; kill and ptrace at the victim.
    let args_victim = {
        let mut a = args.clone();
        a[1] = victim_pid.to_string();
        a
    };
    // SYSEMU mode too: there the platform replays the allowed syscalls itself.
    let runs = [Mode::Seccomp, Mode::Sysemu]
        .into_iter()
        .flat_map(|mode| [(mode, &args), (mode, &args_victim)]);
    for (mode, argv) in runs {
        let mut platform = Platform::new(mode, Creds::default_for_host()).unwrap();
        let pid = platform.spawn(&image, argv, &[] as &[&str]).unwrap();
        let _dog = watchdog(pid);
        let mut sentry = DemoSentry::default();
        let outcome = sentry.run(&mut platform, pid).unwrap();
        let out = String::from_utf8_lossy(&sentry.output).into_owned();
        assert_eq!(outcome, Outcome::Exited(0), "{mode:?}: {out}");
        let results: Vec<(&str, i64)> = out
            .lines()
            .map(|l| {
                let (name, ret) = l.split_once(' ').unwrap();
                (name, ret.parse().unwrap())
            })
            .collect();
        assert_eq!(results.last(), Some(&("done", 0)), "output: {out}");
        let enosys = -(libc::ENOSYS as i64);
        for (name, ret) in &results[..results.len() - 1] {
            match *name {
                // Allowed on the host: an anonymous mapping works.
                "mmap_anon" => assert_eq!(*ret, 0, "{mode:?}: anonymous mmap failed: {out}"),
                // Everything else was stopped and answered by the sentry (a host
                // failure would be another errno: EBADF, EPERM, ESRCH...).
                _ => assert_eq!(*ret, enosys, "{mode:?}: {name} was not trapped: {out}"),
            }
        }
        let trapped_mmaps: Vec<_> = sentry
            .trapped
            .iter()
            .filter(|c| c.nr == libc::SYS_mmap)
            .collect();
        assert_eq!(
            trapped_mmaps.len(),
            2,
            "file mmaps trapped: {trapped_mmaps:?}"
        );
        assert!(trapped_mmaps
            .iter()
            .all(|c| c.args[3] & libc::MAP_ANONYMOUS as u64 == 0));
    }
    // The host is unchanged.
    assert!(!target.exists(), "the guest created {}", target.display());
    assert_eq!(KERNEL_SECRET.load(Ordering::SeqCst), 0x5ec2e7);
    let victim_status = std::fs::read_to_string(proc_dir(victim_pid).join("status")).unwrap();
    assert!(victim_status.contains("TracerPid:\t0\n"), "{victim_status}");
    assert!(
        !victim_status.contains("State:\tZ"),
        "the victim was killed"
    );
    assert!(
        listener.accept().is_err(),
        "the guest connected to the host"
    );
}

#[test]
fn a_foreign_abi_syscall_kills_the_guest() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = build_hostile(dir.path());
    let mut platform = Platform::new(Mode::Seccomp, Creds::default_for_host()).unwrap();
    let image = Image::from_host_file(&hostile).unwrap();
    let pid = platform
        .spawn(&image, &["hostile", "int80"], &[] as &[&str])
        .unwrap();
    let _dog = watchdog(pid);
    let mut sentry = DemoSentry::default();
    let outcome = sentry.run(&mut platform, pid).unwrap();
    assert_eq!(outcome, Outcome::Killed(Signal::SIGSYS));
    assert!(sentry.output.is_empty());
}

#[test]
fn a_guest_cannot_take_the_hosts_memory() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = build_hostile(dir.path());
    let image = Image::from_host_file(&hostile).unwrap();
    let mut platform = Platform::new(Mode::Seccomp, Creds::default_for_host()).unwrap();
    platform.limit_address_space(1 << 30);
    let pid = platform
        .spawn(&image, &["hostile", "bigmap"], &[] as &[&str])
        .unwrap();
    let _dog = watchdog(pid);
    let mut sentry = DemoSentry::default();
    let outcome = sentry.run(&mut platform, pid).unwrap();
    let out = String::from_utf8_lossy(&sentry.output).into_owned();
    assert_eq!(outcome, Outcome::Exited(0), "{out}");
    // The host refused the memory (ENOMEM: the mapping ran on the host, under the
    // limit); raising the limit stopped at the sentry (ENOSYS).
    assert_eq!(out, "mmap_64g -12\nbrk_64g -12\nsetrlimit -38\n");
}

#[test]
fn forked_guests_stay_traced_and_escaping_clones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = build_hostile(dir.path());
    let image = Image::from_host_file(&hostile).unwrap();
    for mode in [Mode::Seccomp, Mode::Sysemu] {
        let mut platform = Platform::new(mode, Creds::default_for_host()).unwrap();
        let pid = platform
            .spawn(&image, &["hostile", "fork"], &[] as &[&str])
            .unwrap();
        let _dog = watchdog(pid);
        let mut sentry = DemoSentry::default();
        let outcome = sentry.run(&mut platform, pid).unwrap();
        let out = String::from_utf8_lossy(&sentry.output).into_owned();
        assert_eq!(outcome, Outcome::Exited(0), "{mode:?}: {out}");
        let mut lines: Vec<&str> = out.lines().collect();
        lines.sort();
        // The children's getpid reached the sentry (pid 1), not the host: traced.
        assert_eq!(
            lines,
            [
                "child 1",
                "clone_newuser -1",
                "clone_untraced -1",
                "glibc_child 1",
                "glibc_fork 0",
                "parent 0"
            ],
            "{mode:?}: {out}"
        );
        assert_eq!(platform.guests().count(), 0);
    }
}

#[test]
fn guest_threads_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = build_hostile(dir.path());
    let image = Image::from_host_file(&hostile).unwrap();
    for mode in [Mode::Seccomp, Mode::Sysemu] {
        let mut platform = Platform::new(mode, Creds::default_for_host()).unwrap();
        let pid = platform
            .spawn(&image, &["hostile", "thread"], &[] as &[&str])
            .unwrap();
        let _dog = watchdog(pid);
        let mut sentry = DemoSentry::default();
        let mut threads = Vec::new();
        let outcome = loop {
            let event = platform.wait().unwrap();
            if let Event::Forked { parent, child } = event {
                threads.push((parent, child));
            }
            if let Some(o) = sentry.serve(&mut platform, pid, event).unwrap() {
                break o;
            }
        };
        let out = String::from_utf8_lossy(&sentry.output).into_owned();
        assert_eq!(outcome, Outcome::Exited(0), "{mode:?}: {out}");
        // The thread's getpid reached the sentry: it was traced (it may print before
        // or after pthread_create returns).
        let mut lines: Vec<&str> = out.lines().collect();
        lines.sort();
        assert_eq!(
            lines,
            ["pthread_create 0", "pthread_join 0", "thread 1"],
            "{mode:?}: {out}"
        );
        assert_eq!(threads.len(), 1, "{mode:?}: {threads:?}");
        assert_eq!(threads[0].0, pid);
    }
}

#[test]
fn guests_die_with_the_kernel_thread() {
    let (tx, rx) = mpsc::channel();
    let kernel = std::thread::spawn(move || {
        let mut platform = Platform::new(Mode::Seccomp, Creds::default_for_host()).unwrap();
        let pid = platform
            .spawn(&busybox(), &["busybox", "echo", "x"], &[] as &[&str])
            .unwrap();
        assert!(matches!(platform.wait().unwrap(), Event::Syscall { .. }));
        tx.send(pid).unwrap();
        // The kernel goes away without cleaning up (as kill -9 would).
        std::mem::forget(platform);
    });
    let pid = rx.recv_timeout(LIMIT).unwrap();
    kernel.join().unwrap();
    let start = Instant::now();
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Signaled(_, Signal::SIGKILL, _)) => break,
            Ok(WaitStatus::StillAlive) if start.elapsed() < LIMIT => {
                std::thread::sleep(Duration::from_millis(10))
            }
            other => panic!("guest {pid} outlived its kernel: {other:?}"),
        }
    }
}
