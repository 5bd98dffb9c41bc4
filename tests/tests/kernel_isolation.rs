//! Isolation of uml-kernel's guests (issue 14, acceptance 5): a static C program
//! (tests/guests/kernel_hostile.c, built with `gcc -static` here) runs as a guest process
//! and tries some seventy ways out — host paths, raw syscalls by number, ptrace,
//! process_vm_*, /proc/PID/mem, signals to the kernel and to host processes, kill(-1), a
//! fork bomb, huge mmaps, symlinks out of hostfs, chroot, namespaces, io_uring, bpf,
//! sockets to the host... Each row's result is checked against the table below, the host
//! side is checked too (marker file unchanged, no host program run, no connection
//! accepted, victim processes alive), the kernel answers mconsole after each program, its
//! guest processes run unprivileged (as uid 65534 when the kernel is root), with
//! no_new_privs, no capabilities, seccomp and no host descriptor, and kill -9 of the
//! kernel leaves no guest process behind.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use tests::{descendants, our_bin, proc_dir, GuestImage, KernelRun};

const LIMIT: Duration = Duration::from_secs(60);

const ENOENT: i64 = -2;
const EPERM: i64 = -1;
const ESRCH: i64 = -3;
const EBADF: i64 = -9;
const EAGAIN: i64 = -11;
const ENOMEM: i64 = -12;
const EACCES: i64 = -13;
const EFAULT: i64 = -14;
const ENODEV: i64 = -19;
const EINVAL: i64 = -22;
const ENOTTY: i64 = -25;
const ENOSYS: i64 = -38;
const EAFNOSUPPORT: i64 = -97;
const ECONNREFUSED: i64 = -111;

/// Each row of `hostile all`: what a contained attempt returns. Several errnos are
/// accepted where either says "refused" (e.g. ENOSYS for a call the sentry does not
/// know, EPERM for one it refuses); no row accepts success.
const ROWS: &[(&str, &[i64])] = &[
    // Host paths do not exist in the guest's VFS.
    ("open_host_path", &[ENOENT]),
    ("creat_host_path", &[ENOENT]),
    ("proc_1_root", &[ENOENT]),
    ("proc_self_root", &[ENOENT]),
    ("proc_self_cwd", &[ENOENT]),
    ("dotdot_above_root", &[ENOENT]),
    ("execve_host_binary", &[ENOENT]),
    ("chroot_escape", &[ENOENT, ENOSYS, EPERM]),
    ("pivot_root", &[ENOSYS, EPERM, EINVAL]),
    // hostfs is confined to hostfs=DIR: links and .. stay inside it.
    ("hostfs_symlink_abs", &[ENOENT, EACCES, EPERM]),
    ("hostfs_symlink_rel", &[ENOENT, EACCES, EPERM]),
    ("hostfs_dotdot", &[ENOENT]),
    ("hostfs_mount_outside", &[ENOENT, EINVAL, EACCES, EPERM]),
    // A host FIFO made through hostfs (the share is the guest's): opened (O_NONBLOCK) without
    // blocking the kernel, its read is EOF, EAGAIN or ENXIO (no FIFO I/O through hostfs
    // yet), never a wait; the table's time bound below catches a blocked loop.
    ("hostfs_fifo_read", &[0, EAGAIN, -6 /* ENXIO */]),
    ("hostfs_fifo_open_write", &[0, EAGAIN, -6]),
    // Memory of the kernel and of other processes.
    ("proc_1_mem", &[ENOENT]),
    ("proc_self_mem", &[ENOENT]),
    ("proc_kernel_mem", &[ENOENT]),
    ("dev_mem", &[ENOENT]),
    ("dev_kmem", &[ENOENT]),
    (
        "mknod_dev_mem",
        &[ENOENT, ENODEV, EPERM, ENOSYS, EINVAL, -6 /* ENXIO */],
    ),
    ("ptrace_attach_kernel", &[ENOSYS, EPERM, ESRCH]),
    ("ptrace_seize_victim", &[ENOSYS, EPERM, ESRCH]),
    ("ptrace_attach_init", &[ENOSYS, EPERM, ESRCH]),
    ("ptrace_traceme", &[ENOSYS, EPERM]),
    ("process_vm_writev_kernel", &[ENOSYS, EPERM, ESRCH]),
    ("process_vm_readv_kernel", &[ENOSYS, EPERM, ESRCH]),
    ("process_vm_writev_init", &[ENOSYS, EPERM, ESRCH]),
    ("kcmp_kernel", &[ENOSYS, EPERM, ESRCH]),
    // Signals reach guest processes only (the kernel's pid is no guest pid).
    ("kill_kernel", &[ESRCH]),
    ("tgkill_kernel", &[ESRCH]),
    ("kill_victim", &[ESRCH]),
    ("sigqueue_kernel", &[ENOSYS, EPERM, ESRCH]),
    ("pidfd_open_kernel", &[ENOSYS, EPERM, ESRCH]),
    ("setpriority_kernel", &[0, ESRCH, EPERM]), // answered by the sentry, never the host
    ("prlimit_kernel", &[0, ESRCH, EPERM]),     // likewise: limits are the kernel's
    // Kernel interfaces a guest never reaches.
    ("io_uring_setup", &[ENOSYS, EPERM]),
    ("bpf", &[ENOSYS, EPERM]),
    ("perf_event_open", &[ENOSYS, EPERM]),
    ("userfaultfd", &[ENOSYS, EPERM]),
    ("open_by_handle_at", &[ENOSYS, EPERM]),
    ("keyctl", &[ENOSYS, EPERM]),
    ("init_module", &[ENOSYS, EPERM]),
    ("iopl", &[ENOSYS, EPERM]),
    ("modify_ldt", &[ENOSYS, EPERM]),
    // Namespaces, odd clones, bind mounts.
    ("unshare_newuser_newns", &[ENOSYS, EPERM, EINVAL]),
    ("setns", &[ENOSYS, EPERM, EBADF]),
    ("clone_newuser", &[EPERM, EINVAL]),
    ("clone_newpid_newnet", &[EPERM, EINVAL]),
    // The sentry makes every guest a host child of the kernel (it adds CLONE_PARENT
    // itself): a guest's CLONE_PARENT may be refused or run as an ordinary child (1).
    ("clone_parent", &[EPERM, EINVAL, 1]),
    ("clone_untraced", &[EPERM, EINVAL]),
    ("clone3", &[ENOSYS]),
    ("mount_bind_root", &[EINVAL, EPERM, ENOSYS]),
    // Programs from outside the guest's filesystem.
    ("memfd_create", &[ENOSYS, EPERM]),
    ("execveat_fd", &[ENOSYS, EPERM, EINVAL]),
    // Process attributes that would loosen the jail.
    // The guest's own execution domain at most (0 where a sentry implements it).
    ("personality", &[ENOSYS, EPERM, EINVAL, 0]),
    ("seccomp_strict", &[ENOSYS, EPERM, EINVAL]),
    ("prctl_set_seccomp", &[ENOSYS, EPERM, EINVAL]),
    ("prctl_set_ptracer_any", &[ENOSYS, EPERM, EINVAL]),
    ("prctl_cap_ambient_raise", &[ENOSYS, EPERM, EINVAL]),
    // fd 0 is the guest's console, a tty of the kernel: at most a character typed into
    // the guest's own input (0), never into a host terminal.
    ("ioctl_tiocsti", &[ENOTTY, EPERM, EINVAL, EBADF, 0]),
    // Sockets to the host: none (AF_UNIX and AF_INET are the guest's own, or refused).
    (
        "connect_host_unix_path",
        &[ENOSYS, EAFNOSUPPORT, ENOENT, ECONNREFUSED, EBADF],
    ),
    (
        "connect_host_abstract",
        &[ENOSYS, EAFNOSUPPORT, ECONNREFUSED, ENOENT, EBADF],
    ),
    (
        "connect_host_tcp",
        &[
            ENOSYS,
            EAFNOSUPPORT,
            ECONNREFUSED,
            EBADF,
            -101, /* ENETUNREACH */
        ],
    ),
    // Memory: RLIMIT_AS on the host, which the guest cannot raise.
    ("mmap_64g", &[ENOMEM]),
    ("brk_64g", &[ENOMEM]),
    ("rlimit_raise_then_mmap_16g", &[ENOMEM]),
    // openat2, /proc/self/fd, descriptors the guest never opened.
    ("openat2_host_path", &[ENOSYS, ENOENT]),
    ("openat2_proc_root", &[ENOSYS, ENOENT]),
    ("execve_proc_kernel_exe", &[ENOENT]),
    ("execve_proc_self_fd_999", &[ENOENT, EBADF]),
    ("write_fd_1000", &[EBADF]),
    ("fstat_fd_200", &[EBADF]),
    // A read-only shared map of a guest file is a private copy of the VFS's bytes (0:
    // mapped); the host file behind it is never mapped.
    ("mmap_file_shared", &[0, ENODEV, EACCES, EINVAL]),
    ("socket_netlink", &[EAFNOSUPPORT, EPERM, ENOSYS]),
    ("socket_packet", &[EAFNOSUPPORT, EPERM, ENOSYS]),
    ("mount_sysfs", &[ENODEV]),
    ("mount_cgroup2", &[ENODEV]),
    (
        "mount_ext4_host_disk",
        &[EINVAL, ENOENT, ENODEV, -6 /* ENXIO */],
    ),
    ("proc_guest_victim_mem", &[ENOENT, EACCES]),
    ("ptrace_attach_guest_host_pid", &[ENOSYS, EPERM, ESRCH]),
    ("process_vm_readv_guest_host_pid", &[ENOSYS, EPERM, ESRCH]),
    ("kill_guest_host_pid", &[ESRCH]),
    ("rt_tgsigqueueinfo_kernel", &[ENOSYS, EPERM, ESRCH]),
    ("prctl_set_mm", &[EINVAL, EPERM]),
    ("process_madvise", &[ENOSYS, EPERM, EBADF]),
    ("name_to_handle_at", &[ENOSYS, EPERM]),
    ("fanotify_init", &[ENOSYS, EPERM]),
    ("kexec_load", &[ENOSYS, EPERM]),
    ("swapon", &[ENOSYS, EPERM]),
    // A sparse 8 GiB ELF on the root disk: refused, not read into the kernel.
    ("huge_sparse_ftruncate", &[0]),
    ("execve_huge_sparse", &[ENOMEM]),
    // Syscall numbers outside the table.
    ("nr_unused_1000", &[ENOSYS]),
    ("nr_huge", &[ENOSYS]),
    ("nr_x32_getpid", &[ENOSYS]),
    ("done", &[0]),
];

/// Builds tests/guests/`name`.c with `gcc -static` into `dir`; returns the ELF.
fn gcc_static(dir: &Path, name: &str) -> Vec<u8> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("guests")
        .join(format!("{name}.c"));
    let bin = dir.join(name);
    tests::gcc_static(&src, &bin, &[]);
    fs::read(&bin).unwrap()
}

/// The `ROW NAME VALUE` lines of `console` (the last value of each name).
fn rows(console: &str) -> BTreeMap<String, i64> {
    console
        .lines()
        .filter_map(|l| {
            let mut w = l.trim_end_matches('\r').split(' ');
            match (w.next(), w.next(), w.next().and_then(|v| v.parse().ok())) {
                (Some("ROW"), Some(name), Some(v)) => Some((name.to_string(), v)),
                _ => None,
            }
        })
        .collect()
}

fn assert_mconsole_answers(k: &KernelRun, after: &str) {
    let v = k.mconsole("version");
    assert!(
        v.success() && v.stdout.contains("OK"),
        "mconsole did not answer after {after}: {v:?}\n{}",
        k.output()
    );
}

/// A line of /proc/PID/status (the value after the tab).
fn status_field(dir: &Path, field: &str) -> String {
    let status = fs::read_to_string(dir.join("status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {field} in {}:\n{status}", dir.display()))
}

const INIT: &str = r#"#!/bin/sh
mkdir -p /mnt/host
mount -t hostfs none /mnt/host || echo "no hostfs"
/bin/hostile sleeper &
echo "guest-victim $!"
while [ ! -f /mnt/host/facts ]; do sleep 0.05; done
set -a; . /mnt/host/facts; set +a
echo "=== all"; /bin/hostile all; echo "=== status $?"
read step; echo "=== kill_all"; /bin/hostile kill_all; echo "=== status $?"
read step; echo "=== uretprobe"; /bin/hostile uretprobe; echo "=== status $?"
read step; echo "=== int80"; /bin/hostile int80; echo "=== status $?"
read step; echo "=== memhog"; /bin/hostile memhog; echo "=== status $?"
read step; echo "=== tmpfs_fill"; /bin/hostile tmpfs_fill; echo "=== status $?"
read step; echo "=== pipe_fill"; /bin/hostile pipe_fill; echo "=== status $?"
read step; echo "=== flood"; /bin/hostile flood 300; echo "=== status $?"
echo "logged $(dmesg | grep -c 'unknown syscall 100007 (')"
read step; echo "=== forkbomb"; /bin/hostile forkbomb 3; echo "=== status $?"
read step; echo "=== sleeping"; /bin/hostile sleeper
"#;

/// Waits for `text` on the console after `from`; panics with the console on timeout.
fn wait_for(k: &KernelRun, from: usize, text: &str) -> String {
    k.wait_from(from, text, LIMIT)
        .unwrap_or_else(|| panic!("no {text:?} on the console:\n{}", k.output()))
}

/// Runs the next step: Enter on the console, then waits for the step's status line;
/// returns the console from the step's start and the exit status it printed.
fn step(k: &mut KernelRun, name: &str) -> (String, i32) {
    let from = k.output().len();
    k.type_line("");
    // (A guest tty may end lines with \r\n.)
    wait_for(k, from, &format!("=== {name}"));
    let (text, code) = wait_status(k, from);
    (text, code)
}

/// Waits for the next complete `=== status N` line after `from`; returns the console
/// from `from` to it and N.
fn wait_status(k: &KernelRun, from: usize) -> (String, i32) {
    let start = Instant::now();
    loop {
        let out = k.output();
        let text = &out[from..];
        if let Some(i) = text.find("=== status ") {
            let rest = &text[i + 11..];
            if let Some(end) = rest.find('\n') {
                let code = rest[..end].trim().parse().unwrap_or(-1);
                return (text[..i].to_string(), code);
            }
        }
        assert!(start.elapsed() < LIMIT, "no status line:\n{out}");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn hostile_guest_programs_are_contained_and_mconsole_answers() {
    let dir = tests::scratch();
    let d = dir.path();
    let elf = gcc_static(d, "kernel_hostile");
    let marker = d.join("host-secret");
    fs::write(&marker, "host data\n").unwrap();
    let share = d.join("share");
    fs::create_dir(&share).unwrap();
    std::os::unix::fs::symlink(&marker, share.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("../host-secret", share.join("rel-link")).unwrap();
    let pwned = d.join("pwned");
    let hostbin = d.join("hostbin");
    fs::write(&hostbin, format!("#!/bin/sh\ntouch {}\n", pwned.display())).unwrap();
    fs::set_permissions(
        &hostbin,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let abstract_name = format!("uml-isolation-{}", std::process::id());
    let abs =
        UnixListener::bind_addr(&SocketAddr::from_abstract_name(&abstract_name).unwrap()).unwrap();
    abs.set_nonblocking(true).unwrap();
    let mut victim = Command::new("sleep").arg("120").spawn().unwrap();

    let img = GuestImage::build_with(
        &d.join("hostile.img"),
        INIT,
        48,
        &[("bin/hostile", &elf, 0o755)],
    );
    let args = [
        format!("ubd0={}", img.path.display()),
        "root=/dev/ubda".into(),
        "rw".into(),
        "init=/sbin/init".into(),
        "con0=fd:0,fd:1".into(),
        "con=null".into(),
        "mem=64M".into(),
        format!("hostfs={}", share.display()),
    ];
    let mut k = KernelRun::start(
        KernelRun::command(&our_bin("uml-kernel"), "isolation", &args),
        &d.join("home"),
        "isolation",
    );
    k.wait_socket(LIMIT);
    let out = wait_for(&k, 0, "ROW sleeping 0");
    let guest_victim: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("guest-victim "))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no guest-victim line:\n{out}"));

    // The guest processes on the host: unprivileged, no_new_privs, seccomp, no
    // descriptors; root asked for uid 0 and every capability inside, which the host
    // never saw.
    let kpid = k.child.id() as i32;
    let guests = descendants(kpid);
    assert!(guests.len() >= 2, "guests: {guests:?}");
    let mut sleeper_host = None;
    for &g in &guests {
        let Some(pd) = proc_dir(g) else { continue };
        let cmdline = fs::read(pd.join("cmdline")).unwrap_or_default();
        if cmdline.starts_with(b"/bin/hostile\0sleeper") {
            sleeper_host = Some(g);
        }
        let uid = status_field(&pd, "Uid");
        if nix::unistd::geteuid().is_root() {
            assert_eq!(
                uid, "65534\t65534\t65534\t65534",
                "guest {g} as root's guest"
            );
            assert_eq!(status_field(&pd, "Groups"), "", "guest {g} groups");
        } else {
            let me = nix::unistd::getuid().as_raw();
            assert_eq!(uid, format!("{me}\t{me}\t{me}\t{me}"), "guest {g}");
        }
        assert_eq!(status_field(&pd, "NoNewPrivs"), "1", "guest {g}");
        assert_eq!(status_field(&pd, "Seccomp"), "2", "guest {g}");
        let root = nix::unistd::geteuid().is_root();
        let caps: &[&str] = if root {
            &["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
        } else {
            &["CapInh", "CapPrm", "CapEff", "CapAmb"]
        };
        for cap in caps {
            assert_eq!(
                status_field(&pd, cap),
                "0000000000000000",
                "guest {g} {cap}"
            );
        }
        let fds: Vec<_> = fs::read_dir(pd.join("fd")).unwrap().flatten().collect();
        assert!(fds.is_empty(), "guest {g} holds host descriptors: {fds:?}");
    }
    let sleeper_host = sleeper_host.unwrap_or_else(|| panic!("no sleeper among {guests:?}"));
    let rows_seen = rows(&k.output());
    for (name, want) in [("setuid_0", 0), ("setresuid_0", 0), ("capset_all", 0)] {
        assert_eq!(rows_seen.get(name), Some(&want), "guest root's {name}");
    }

    let facts = format!(
        "KPID={kpid}\nVICTIM={}\nMARKER={}\nHOSTBIN={}\nPORT={}\nABSTRACT={abstract_name}\n\
         MCONSOLE={}\nGUEST_VICTIM={guest_victim}\nGUEST_VICTIM_HOST={sleeper_host}\n",
        victim.id(),
        marker.display(),
        hostbin.display(),
        tcp.local_addr().unwrap().port(),
        k.socket().display(),
    );
    fs::write(share.join("facts.tmp"), facts).unwrap();
    fs::rename(share.join("facts.tmp"), share.join("facts")).unwrap();

    // The table.
    let began = Instant::now();
    let from = k.output().len();
    let (text, code) = wait_status(&k, from);
    assert_eq!(code, 0, "{text}");
    // About a second here: a row that blocked the kernel's loop (reading a sparse 8 GiB
    // program took 40 s before the image size was capped) shows as a slow table.
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "the table took {:?}: a row blocked the kernel\n{text}",
        began.elapsed()
    );
    let got = rows(&text);
    let mut bad = Vec::new();
    for (name, want) in ROWS {
        match got.get(*name) {
            Some(v) if want.contains(v) => {}
            other => bad.push(format!("{name}: got {other:?}, want one of {want:?}")),
        }
    }
    assert!(
        bad.is_empty(),
        "rows not contained as expected:\n{}\n{text}",
        bad.join("\n")
    );
    assert!(ROWS.len() >= 30);
    assert_mconsole_answers(&k, "hostile all");

    // kill(-1, SIGKILL): every guest process but init and the caller; the kernel lives.
    let (out, code) = step(&mut k, "kill_all");
    assert_eq!(rows(&out).get("kill_all"), Some(&0), "{out}");
    assert_eq!(code, 0, "{out}");
    assert_mconsole_answers(&k, "kill(-1)");
    // Syscall 335, uretprobe on Linux >= 6.11, bypasses seccomp (6.12): the host kills
    // the caller with SIGILL (128 + 4); older hosts give ENOSYS through the sentry.
    let (out, code) = step(&mut k, "uretprobe");
    let r = rows(&out).get("uretprobe_335").copied();
    assert!(
        (code == 132 && r.is_none()) || (code == 0 && r == Some(ENOSYS)),
        "{code} {out}"
    );
    assert_mconsole_answers(&k, "syscall 335");
    // int 0x80 (the i386 ABI): the filter kills the process (SIGSYS, 128 + 31).
    let (out, code) = step(&mut k, "int80");
    assert!(!out.contains("int80_survived"), "{out}");
    assert_eq!(code, 159, "{out}");
    assert_mconsole_answers(&k, "int 0x80");
    // 128 MiB mmaps until refused: RLIMIT_AS (1 GiB) stops them.
    let (out, code) = step(&mut k, "memhog");
    let chunks = rows(&out).get("memhog_chunks_of_128m").copied();
    assert!(matches!(chunks, Some(1..=8)), "{out}");
    assert_eq!(code, 0, "{out}");
    assert_mconsole_answers(&k, "memhog");
    // A tmpfs filled with 1 MiB writes: ENOSPC at half of mem= (64 MiB), as Linux's
    // default tmpfs size; the kernel's memory does not grow without bound.
    let (out, code) = step(&mut k, "tmpfs_fill");
    let r = rows(&out);
    assert_eq!(r.get("tmpfs_fill_error"), Some(&-28), "{out}");
    assert!(matches!(r.get("tmpfs_fill_mib"), Some(28..=32)), "{out}");
    assert_eq!(code, 0, "{out}");
    assert_mconsole_answers(&k, "a tmpfs filled");
    // 500 pipes filled without blocking: past a quarter of mem= (16 MiB) each pipe holds
    // one page more at most (at 64 KiB each they would hold 31 MiB).
    let (out, code) = step(&mut k, "pipe_fill");
    let kib = rows(&out).get("pipe_fill_kib").copied();
    assert!(matches!(kib, Some(12_000..=18_500)), "{kib:?} {out}");
    assert_eq!(code, 0, "{out}");
    assert_mconsole_answers(&k, "500 full pipes");
    // 300 unknown syscall numbers, each twice: ENOSYS, logged once each.
    let (out, code) = step(&mut k, "flood");
    assert_eq!(rows(&out).get("flood_not_enosys"), Some(&0), "{out}");
    assert_eq!(code, 0, "{out}");
    let logged = wait_for(&k, 0, "logged ").replace('\r', "");
    assert!(logged.contains("logged 1\n"), "{logged}");
    assert_mconsole_answers(&k, "the flood");
    // A fork bomb: refused at MAX_PROCS; mconsole answers while it runs.
    let from = k.output().len();
    k.type_line("");
    wait_for(&k, from, "=== forkbomb");
    thread::sleep(Duration::from_millis(1500));
    assert_mconsole_answers(&k, "a fork bomb (during)");
    let under = descendants(kpid).len();
    assert!(
        under <= kernel::syscalls::sentry::MAX_PROCS + 4,
        "{under} host processes under the kernel"
    );
    let (text, _) = wait_status(&k, from);
    assert_eq!(rows(&text).get("forkbomb_refused"), Some(&EAGAIN), "{text}");
    assert_mconsole_answers(&k, "a fork bomb");

    // The host is untouched.
    assert_eq!(fs::read_to_string(&marker).unwrap(), "host data\n");
    assert!(!pwned.exists(), "the host program ran");
    assert!(!d.join("host-secret.created").exists());
    assert_eq!(
        tcp.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(ErrorKind::WouldBlock),
        "the guest reached a host TCP port"
    );
    assert_eq!(
        abs.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(ErrorKind::WouldBlock),
        "the guest reached a host abstract socket"
    );
    assert!(victim.try_wait().unwrap().is_none(), "the host victim died");
    let _ = (EFAULT, ENOTTY);

    // kill -9 of the kernel: no guest process outlives it.
    let from = k.output().len();
    k.type_line("");
    wait_for(&k, from, "ROW sleeping 0");
    let guest_dirs: Vec<PathBuf> = descendants(kpid).into_iter().filter_map(proc_dir).collect();
    assert!(!guest_dirs.is_empty(), "no guest process left to check");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(kpid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = k.wait_exit(LIMIT);
    tests::kernel::wait_all_gone(
        &guest_dirs,
        Duration::from_secs(10),
        "guest processes outlived kill -9 of the kernel",
    );
    let _ = victim.kill();
    let _ = victim.wait();
}
