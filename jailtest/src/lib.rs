//! jailtest's probes. Each returns one line in the C jailtest's form ("Trying to
//! ...RESULT - GOOD" or "- BAD!") and whether it was good; risky ones run in a forked
//! child so that a fault or a dropped privilege stays there.

pub mod cli;
mod sys;

use std::collections::BTreeSet;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::uio::RemoteIoVec;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Pid, Uid};

/// One probe's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub line: String,
    pub good: bool,
}

fn good(what: String, result: &str) -> Probe {
    Probe {
        line: format!("{what}...{result} - GOOD"),
        good: true,
    }
}

fn bad(what: String, result: &str) -> Probe {
    Probe {
        line: format!("{what}...{result} - BAD!"),
        good: false,
    }
}

/// Runs `f` in a forked child and returns how the child ended.
fn in_child(f: impl FnOnce() -> i32) -> Result<WaitStatus, Errno> {
    match sys::fork()? {
        ForkResult::Child => {
            let code = f();
            // Exit here: the child must not return into the caller.
            std::process::exit(code);
        }
        ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Err(Errno::EINTR) => continue,
                other => return other,
            }
        },
    }
}

/// A direct write to `addr` must kill the writer with SIGSEGV.
pub fn direct_write(addr: usize) -> Probe {
    let what = format!("Trying to directly write {addr:#x}");
    match in_child(|| {
        sys::poke(addr);
        0
    }) {
        Ok(WaitStatus::Signaled(_, Signal::SIGSEGV, _)) => good(what, "Segv"),
        Ok(WaitStatus::Signaled(_, Signal::SIGBUS, _)) => good(what, "Bus error"),
        Ok(status) => bad(what, &format!("No segv ({status:?})")),
        Err(e) => bad(what, &format!("fork failed ({e})")),
    }
}

/// read(2) into `addr` must fail with EFAULT.
pub fn write_via_read(addr: usize) -> Probe {
    let what = format!("Trying to write {addr:#x} via read");
    let (r, w) = match nix::unistd::pipe() {
        Ok(p) => p,
        Err(e) => return bad(what, &format!("pipe failed ({e})")),
    };
    let _ = nix::unistd::write(&w, b"jailtest");
    match sys::read_into(r.as_raw_fd(), addr, 8) {
        Err(Errno::EFAULT) => good(what, "Returned EFAULT"),
        Err(e) => bad(what, &format!("Didn't return EFAULT ({})", e.desc())),
        Ok(n) => bad(what, &format!("Didn't return EFAULT (read {n} bytes)")),
    }
}

/// Opening a memory device read-write must fail.
pub fn open_device(path: &Path) -> Probe {
    let what = format!("Trying to open {}", path.display());
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Err(e) => {
            let errno = Errno::from_raw(e.raw_os_error().unwrap_or(0));
            good(what, &format!("Failed with {errno:?}"))
        }
        Ok(f) => bad(what, &format!("Didn't fail (fd = {})", f.as_raw_fd())),
    }
}

/// The pids /proc lists, without ours.
pub fn guest_pids() -> BTreeSet<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&p| p != me)
        .collect()
}

/// What an attempt on another process gave.
fn attempt_on(pid: i32) -> Vec<(&'static str, Result<(), Errno>)> {
    let target = Pid::from_raw(pid);
    let mem = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{pid}/mem"))
        .map(drop)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)));
    let traced = nix::sys::ptrace::attach(target);
    if traced.is_ok() {
        let _ = nix::sys::ptrace::detach(target, None);
    }
    let mut buf = [0u8; 16];
    let remote = [RemoteIoVec {
        base: 0x40_0000,
        len: 16,
    }];
    let read = nix::sys::uio::process_vm_readv(target, &mut [IoSliceMut::new(&mut buf)], &remote)
        .map(drop);
    let written =
        nix::sys::uio::process_vm_writev(target, &[IoSlice::new(&buf)], &remote).map(drop);
    vec![
        ("/proc/PID/mem", mem),
        ("ptrace", traced),
        ("process_vm_readv", read),
        ("process_vm_writev", written),
    ]
}

/// A refusal of an attempt on another process: no permission, or (for process_vm_*
/// on an address the target has not mapped) no such memory, which still needed the
/// permission check to pass first — so EPERM, EACCES and ESRCH count as refused, and
/// so do the answers of a kernel without the interface (no /proc/PID/mem: ENOENT; no
/// such syscall: ENOSYS), which reach nothing either.
fn refused(e: Errno) -> bool {
    matches!(
        e,
        Errno::EPERM | Errno::EACCES | Errno::ESRCH | Errno::ENOENT | Errno::ENOSYS
    )
}

/// As an unprivileged user (`uid` when we are root), every other guest process must
/// refuse /proc/PID/mem, ptrace and process_vm_*.
pub fn other_processes(uid: u32) -> Vec<Probe> {
    let pids = guest_pids();
    let me_root = Uid::effective().is_root();
    let who = if me_root {
        format!("uid {uid}")
    } else {
        format!("uid {}", Uid::effective())
    };
    // The child reports the first success through its exit code: 0 all refused,
    // 10 + index of the kind that worked, the pid on stderr is not needed.
    let kinds = [
        "/proc/PID/mem",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
    ];
    let status = in_child(|| {
        if me_root {
            let id = Uid::from_raw(uid);
            let gid = nix::unistd::Gid::from_raw(uid);
            if nix::unistd::setgroups(&[]).is_err()
                || nix::unistd::setresgid(gid, gid, gid).is_err()
                || nix::unistd::setresuid(id, id, id).is_err()
            {
                return 2;
            }
        }
        for &pid in &pids {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            for (i, (_, r)) in attempt_on(pid).into_iter().enumerate() {
                if let Err(e) = r {
                    if refused(e) {
                        continue;
                    }
                    // EIO/EFAULT after a passed permission check: reached.
                }
                // Our own forked parent is ours to reach: skip it.
                if pid == nix::unistd::getppid().as_raw() {
                    continue;
                }
                return 10 + i as i32;
            }
        }
        0
    });
    let what = |k: &str| format!("Trying {k} on {} other processes as {who}", pids.len());
    match status {
        Ok(WaitStatus::Exited(_, 0)) => {
            kinds.iter().map(|k| good(what(k), "All refused")).collect()
        }
        Ok(WaitStatus::Exited(_, code)) if code >= 10 && (code - 10) < kinds.len() as i32 => kinds
            .iter()
            .enumerate()
            .map(|(i, k)| {
                if i as i32 == code - 10 {
                    bad(what(k), "One succeeded")
                } else {
                    good(what(k), "Not reached")
                }
            })
            .collect(),
        other => vec![bad(
            format!("Trying other processes as {who}"),
            &format!("Could not run the probe ({other:?})"),
        )],
    }
}

/// Pids 2..=max that the guest does not list must not exist for kill, ptrace or
/// process_vm_readv (ESRCH): otherwise a guest process names something outside it.
pub fn outside_pids(max: i32) -> Probe {
    let listed = guest_pids();
    let me = std::process::id() as i32;
    let what =
        format!("Trying signals and process_vm_readv on pids 2..={max} the guest does not have");
    let mut checked = 0;
    for pid in 2..=max {
        if pid == me || listed.contains(&pid) {
            continue;
        }
        checked += 1;
        let target = Pid::from_raw(pid);
        let signal = nix::sys::signal::kill(target, None);
        let mut buf = [0u8; 1];
        let remote = [RemoteIoVec {
            base: 0x40_0000,
            len: 1,
        }];
        let read =
            nix::sys::uio::process_vm_readv(target, &mut [IoSliceMut::new(&mut buf)], &remote)
                .map(drop);
        for (kind, r) in [("kill", signal), ("process_vm_readv", read)] {
            if r != Err(Errno::ESRCH) && !Path::new(&format!("/proc/{pid}")).exists() {
                return bad(what, &format!("{kind} on pid {pid} gave {r:?}"));
            }
        }
    }
    good(what, &format!("All {checked} ESRCH"))
}

/// A host path must not exist in the guest.
pub fn host_path(path: &Path) -> Probe {
    let what = format!("Trying to reach host path {}", path.display());
    match std::fs::symlink_metadata(path) {
        Err(_) => good(what, "Not there"),
        Ok(_) => bad(what, "Found"),
    }
}

/// Every probe the arguments ask for, in the C tool's order first.
pub fn all(args: &cli::Args) -> Vec<Probe> {
    let addresses: Vec<usize> = if args.addresses.is_empty() {
        cli::DEFAULT_ADDRESSES.to_vec()
    } else {
        args.addresses.clone()
    };
    let mut out = Vec::new();
    for &a in &addresses {
        out.push(direct_write(a));
        out.push(write_via_read(a));
    }
    for dev in ["/dev/mem", "/dev/kmem"] {
        out.push(open_device(Path::new(dev)));
    }
    out.extend(other_processes(args.probe_uid));
    out.push(outside_pids(args.max_pid));
    let paths: &[PathBuf] = &args.host_paths;
    out.extend(paths.iter().map(|p| host_path(p)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_addresses_fault_on_the_host_too() {
        for a in cli::DEFAULT_ADDRESSES {
            let p = direct_write(a);
            assert!(p.good, "{p:?}");
            assert_eq!(
                p.line,
                format!("Trying to directly write {a:#x}...Segv - GOOD")
            );
            let p = write_via_read(a);
            assert!(p.good, "{p:?}");
        }
    }

    #[test]
    fn a_writable_address_is_bad() {
        let mut mine = [0u8; 8];
        let p = write_via_read(mine.as_mut_ptr() as usize);
        assert!(!p.good, "{p:?}");
        assert!(
            p.line
                .ends_with("Didn't return EFAULT (read 8 bytes) - BAD!"),
            "{p:?}"
        );
        assert_eq!(&mine, b"jailtest");
        let p = direct_write(mine.as_mut_ptr() as usize);
        assert!(!p.good && p.line.contains("No segv"), "{p:?}");
    }

    #[test]
    fn devices_and_paths() {
        assert!(open_device(Path::new("/nonexistent/mem")).good);
        let p = open_device(Path::new("/dev/null"));
        assert!(
            !p.good && p.line.starts_with("Trying to open /dev/null...Didn't fail"),
            "{p:?}"
        );
        assert!(!host_path(Path::new("/")).good);
        assert!(host_path(Path::new("/no/such/host/path")).good);
    }
}
