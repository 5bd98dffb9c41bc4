//! The platform's only unsafe code: forking a guest and the child's road from fork to
//! exec. Between fork and exec the child may only make async-signal-safe calls (the
//! kernel can have threads), so everything it needs (filter, argv, envp pointer arrays)
//! is prepared by the parent in a [`ChildPlan`], and the child uses raw syscalls only:
//! no allocation, no lock, no Rust I/O.

use std::ffi::{c_char, CString};
use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::unistd::Pid;
use seccompiler::BpfProgram;

/// The steps of the child's set-up; a failed one is reported to the parent by number.
#[derive(Clone, Copy)]
pub enum Step {
    Setpgid,
    CloseRange,
    RlimitCore,
    RlimitAs,
    CapBset,
    Setgroups,
    Setresgid,
    Setresuid,
    NoNewPrivs,
    Pdeathsig,
    ParentDied,
    Traceme,
    Sigstop,
    Signals,
    Seccomp,
    Execveat,
}

/// The steps' names, in [`Step`]'s order.
const STEP_NAMES: &[&str] = &[
    "setpgid",
    "close_range",
    "setrlimit(RLIMIT_CORE)",
    "setrlimit(RLIMIT_AS)",
    "prctl(PR_CAPBSET_DROP)",
    "setgroups",
    "setresgid",
    "setresuid",
    "prctl(PR_SET_NO_NEW_PRIVS)",
    "prctl(PR_SET_PDEATHSIG)",
    "parent died",
    "ptrace(PTRACE_TRACEME)",
    "raise(SIGSTOP)",
    "signal mask and dispositions",
    "seccomp(SECCOMP_SET_MODE_FILTER)",
    "execveat",
];

/// The name of the step a child reported by number.
pub fn step_name(number: u32) -> &'static str {
    STEP_NAMES
        .get(number as usize)
        .copied()
        .unwrap_or("unknown step")
}

/// Everything the child needs, built before fork.
pub struct ChildPlan {
    /// The guest ELF, a memfd (close-on-exec).
    pub image: RawFd,
    /// Write end of the report pipe (close-on-exec): a failed step writes its number and
    /// errno there.
    pub report: RawFd,
    /// Host process group to join; 0 makes a new one.
    pub pgid: libc::pid_t,
    /// Host uid and gid to run as (root only).
    pub creds: Option<(libc::uid_t, libc::gid_t)>,
    /// RLIMIT_AS (soft and hard), RLIM_INFINITY for none.
    pub address_space: libc::rlim_t,
    /// The process that forks (the kernel), checked after PR_SET_PDEATHSIG.
    pub parent: libc::pid_t,
    pub filter: BpfProgram,
    /// The guest's signal mask (bit N-1 for signal N), kept across exec as Linux does.
    pub sigmask: u64,
    /// Signals the guest ignores (bit N-1 for signal N), kept ignored across exec.
    pub ignored: u64,
    /// Keep the strings alive: the pointer arrays below point into them.
    pub _strings: Vec<CString>,
    /// NULL-terminated.
    pub argv: Vec<*const c_char>,
    /// NULL-terminated.
    pub envp: Vec<*const c_char>,
}

/// Forks the guest; the child runs [`ChildPlan`]'s steps and execs the image, the parent
/// gets the child's pid.
pub fn fork_guest(plan: &ChildPlan) -> Result<Pid, Errno> {
    // SAFETY: fork has no memory-safety preconditions; the child below runs only
    // async-signal-safe raw syscalls on data prepared before the fork, then execs or
    // _exits, so the state of other threads (locks, allocator) is never touched.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(Errno::last()),
        0 => child(plan),
        pid => Ok(Pid::from_raw(pid)),
    }
}

/// Reports the failed step and errno on the pipe, then exits.
fn fail(plan: &ChildPlan, step: Step) -> ! {
    let errno = Errno::last_raw();
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&(step as u32).to_ne_bytes());
    msg[4..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: write from a valid 8-byte stack buffer; _exit never returns. Both are
    // async-signal-safe.
    unsafe {
        libc::write(plan.report, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

/// The child's side: never returns.
fn child(plan: &ChildPlan) -> ! {
    let check = |rc: libc::c_long, step: Step| {
        if rc < 0 {
            fail(plan, step)
        }
    };
    // SAFETY: (the whole block) each call is a raw syscall with scalar arguments or pointers
    // into `plan`, which lives in this (copied) address space until exec; no call
    // allocates or takes a lock.
    unsafe {
        check(libc::setpgid(0, plan.pgid) as libc::c_long, Step::Setpgid);
        let (lo, hi) = if plan.image < plan.report {
            (plan.image as u32, plan.report as u32)
        } else {
            (plan.report as u32, plan.image as u32)
        };
        let close = |first: u32, last: u32| {
            if first <= last {
                check(
                    libc::syscall(libc::SYS_close_range, first, last, 0),
                    Step::CloseRange,
                );
            }
        };
        if lo > 0 {
            close(0, lo - 1);
        }
        if hi > lo + 1 {
            close(lo + 1, hi - 1);
        }
        close(hi + 1, u32::MAX);
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        check(
            libc::setrlimit(libc::RLIMIT_CORE, &no_core) as libc::c_long,
            Step::RlimitCore,
        );
        let address_space = libc::rlimit {
            rlim_cur: plan.address_space,
            rlim_max: plan.address_space,
        };
        check(
            libc::setrlimit(libc::RLIMIT_AS, &address_space) as libc::c_long,
            Step::RlimitAs,
        );
        if let Some((uid, gid)) = plan.creds {
            // Empty the capability bounding set while still root: no file capability
            // and no later exec can give one back. EINVAL past the last capability.
            for cap in 0..64 {
                if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 {
                    if Errno::last() == Errno::EINVAL {
                        break;
                    }
                    fail(plan, Step::CapBset);
                }
            }
            check(
                libc::setgroups(0, std::ptr::null()) as libc::c_long,
                Step::Setgroups,
            );
            check(
                libc::setresgid(gid, gid, gid) as libc::c_long,
                Step::Setresgid,
            );
            check(
                libc::setresuid(uid, uid, uid) as libc::c_long,
                Step::Setresuid,
            );
        }
        check(
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as libc::c_long,
            Step::NoNewPrivs,
        );
        // After the credential change: changing uids clears the death signal.
        check(
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) as libc::c_long,
            Step::Pdeathsig,
        );
        if libc::getppid() != plan.parent {
            fail(plan, Step::ParentDied);
        }
        check(
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) as libc::c_long,
            Step::Traceme,
        );
        check(libc::raise(libc::SIGSTOP) as libc::c_long, Step::Sigstop);
        // The kernel blocks signals it reads through signalfd: the guest starts with its
        // own mask instead (the kernel's sigset is one 64-bit word).
        check(
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                &plan.sigmask as *const u64,
                std::ptr::null_mut::<u64>(),
                8usize,
            ),
            Step::Signals,
        );
        for sig in 1..=64 {
            if plan.ignored & (1u64 << (sig - 1)) != 0
                && sig != libc::SIGKILL
                && sig != libc::SIGSTOP
            {
                check(
                    libc::signal(sig, libc::SIG_IGN) as libc::c_long,
                    Step::Signals,
                );
            } else if sig == libc::SIGPIPE {
                // The kernel itself ignores SIGPIPE (as Rust programs do): a guest
                // starts with the default action unless it asked otherwise.
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let prog = libc::sock_fprog {
            len: plan.filter.len() as u16,
            filter: plan.filter.as_ptr().cast::<libc::sock_filter>().cast_mut(),
        };
        check(
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            ),
            Step::Seccomp,
        );
        libc::syscall(
            libc::SYS_execveat,
            plan.image,
            c"".as_ptr(),
            plan.argv.as_ptr(),
            plan.envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
        fail(plan, Step::Execveat)
    }
}

/// pidfd_open(2), which nix does not wrap: a descriptor naming host process `pid`.
pub fn pidfd_open(pid: Pid) -> Result<std::os::fd::OwnedFd, Errno> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes two integers and returns a new descriptor or -1; no
    // memory of ours is read or written.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `fd` is a descriptor the call just made, owned by nothing else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as RawFd) })
}
