//! The platform under the sentry, as in gVisor: how a guest process is started, stopped
//! at a syscall and resumed. Each guest process is a host process that this kernel traces
//! (ptrace), with no_new_privs, no capabilities (an unprivileged uid when the kernel runs
//! as root), no host descriptors, and a death signal tied to the kernel. A seccomp filter
//! ([`filter`]) lets the pure memory and thread-local syscalls run on the host and stops
//! the guest at every other one; the sentry reads the syscall from the [`Event`], answers
//! it with [`Platform::reply`] (the host never executes it) or, rarely, lets the host run
//! it with [`Platform::pass`].
//!
//! Two ways to stop at a syscall are built in ([`Mode`]): seccomp SECCOMP_RET_TRACE stops
//! (the default: allowed syscalls never stop) and PTRACE_SYSEMU (every syscall stops;
//! allowed ones are replayed on the host by the platform), kept for comparison.
//!
//! Why seccomp stops by default: on this machine a stop costs the same either way (about
//! 13 µs of host CPU per trapped getpid, mostly the two context switches; see
//! bench/src/bin/platform_bench.rs), but with seccomp the allow-listed syscalls (brk,
//! anonymous mmap, futex, clock_gettime...) never stop at all (0.4 µs of CPU for a raw
//! clock_gettime), where SYSEMU stops at each and needs three more stops to replay it
//! (44 µs); and the filter is a second wall: a syscall the tracer forgets to catch still
//! cannot run on the host.
//!
//! fork, vfork and clone: the sentry decides ([`filter::clone_is_host_safe`]) and passes
//! the call to the host; PTRACE_O_TRACEFORK/VFORK/CLONE attach the child before its first
//! instruction, under the inherited filter, and [`Event::Forked`] reaches the sentry
//! before any event of the child, so it can give the child its guest pid and task state.
//!
//! ptrace ties a tracee to the host *thread* that traces it: a [`Platform`] must stay on
//! the thread that made it (it is not `Send`). Guests share one host process group and
//! [`Platform::wait`] waits on that group only: nothing else in the kernel may reap with
//! waitpid(-1).

mod affinity;
pub mod demo;
pub mod filter;
mod memory;
mod spawn;
mod sys;

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use seccompiler::BpfProgram;

pub use spawn::{Image, SignalState};

/// The guest's registers at a stop (x86_64).
pub type Regs = libc::user_regs_struct;

/// How a guest is stopped at its syscalls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// seccomp SECCOMP_RET_TRACE: only the syscalls outside the allow-list stop.
    Seccomp,
    /// PTRACE_SYSEMU: every syscall stops; the platform replays allowed ones on the host.
    Sysemu,
}

/// Host credentials of the guest processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Creds {
    /// Keep the kernel's uid and gid (the kernel is not root).
    Keep,
    /// Switch to this uid and gid before exec (the kernel is root).
    Drop { uid: u32, gid: u32 },
}

impl Creds {
    /// nobody/nogroup (65534) when the kernel runs as root, else the kernel's own.
    pub fn default_for_host() -> Creds {
        if nix::unistd::geteuid().is_root() {
            Creds::Drop {
                uid: 65534,
                gid: 65534,
            }
        } else {
            Creds::Keep
        }
    }
}

/// A syscall a guest stopped at: number and the six arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syscall {
    pub nr: i64,
    pub args: [u64; 6],
}

impl Syscall {
    fn from_regs(regs: &Regs) -> Syscall {
        Syscall {
            nr: regs.orig_rax as i64,
            args: [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9],
        }
    }
}

/// What a guest process did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Stopped at a syscall outside the allow-list; answer with reply or pass.
    Syscall { pid: Pid, call: Syscall },
    /// A guest's fork, vfork or clone (passed to the host by the sentry) made `child`,
    /// traced from its first instruction, under the same filter; both run on.
    Forked { parent: Pid, child: Pid },
    /// Stopped before a signal is delivered to it; resume with or without it.
    Signal { pid: Pid, signal: Signal },
    /// With fork exit stops on ([`Platform::stop_at_fork_exit`]): the guest that forked
    /// is stopped at the exit of its fork, vfork or clone, which returned `ret` (the
    /// child's host pid, or -errno); answer with reply (e.g. the child's guest pid).
    ForkReturned { pid: Pid, ret: i64 },
    /// Exited with this status; it is gone.
    Exited { pid: Pid, code: i32 },
    /// Killed by this signal; it is gone.
    Killed { pid: Pid, signal: Signal },
}

/// The platform's errors; each names the call and the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The seccomp filter did not compile.
    Filter(String),
    /// An argument or environment string holds a NUL byte.
    BadString(String),
    /// Making the memfd for the guest image.
    Image(Errno),
    /// A step of the guest's start failed (the step's name, its errno).
    Spawn { step: &'static str, errno: Errno },
    /// The guest stopped or ended in a way its start does not expect.
    Start { pid: Pid, what: String },
    /// A ptrace or wait call failed.
    Trace {
        op: &'static str,
        pid: Pid,
        errno: Errno,
    },
    /// Reading or writing guest memory failed.
    Memory {
        pid: Pid,
        addr: u64,
        len: usize,
        errno: Errno,
    },
    /// The pid is not a guest of this platform.
    NoSuchGuest(Pid),
    /// The guest is not stopped where this call needs it (reply/pass at a syscall).
    NotAtSyscall(Pid),
    /// There is no guest left to wait for.
    NoGuests,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Filter(e) => write!(f, "seccomp filter: {e}"),
            Error::BadString(s) => write!(f, "guest argument holds a NUL byte: {s:?}"),
            Error::Image(e) => write!(f, "guest image memfd: {e}"),
            Error::Spawn { step, errno } => write!(f, "starting a guest: {step}: {errno}"),
            Error::Start { pid, what } => write!(f, "starting guest {pid}: {what}"),
            Error::Trace { op, pid, errno } => write!(f, "{op} on guest {pid}: {errno}"),
            Error::Memory {
                pid,
                addr,
                len,
                errno,
            } => write!(f, "guest {pid} memory {addr:#x}+{len}: {errno}"),
            Error::NoSuchGuest(pid) => write!(f, "{pid} is not a guest process"),
            Error::NotAtSyscall(pid) => write!(f, "guest {pid} is not stopped at a syscall"),
            Error::NoGuests => write!(f, "no guest process to wait for"),
        }
    }
}

impl std::error::Error for Error {}

fn trace_err(op: &'static str, pid: Pid) -> impl Fn(Errno) -> Error {
    move |errno| Error::Trace { op, pid, errno }
}

/// Where a guest is, as far as the platform knows.
// The registers are kept inline: boxing them would allocate at every stop.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy)]
enum State {
    /// Running (or stopped in a way not yet reported).
    Running,
    /// At a syscall stop; the registers as read there.
    AtSyscall(Regs),
    /// At a signal-delivery stop.
    AtSignal,
    /// SYSEMU mode, replaying an allowed syscall: waiting for its entry stop.
    ReplayEntry,
    /// SYSEMU mode, replaying an allowed syscall: waiting for its exit stop.
    ReplayExit,
    /// A new child whose first stop came before its parent's fork event.
    Newborn,
    /// A new child reported to the sentry, its first stop still to come.
    Expected,
    /// Its fork was reported; resumed to stop at the fork's exit.
    ForkExit,
}

/// The guest processes of one kernel and the calls that stop and resume them.
pub struct Platform {
    mode: Mode,
    creds: Creds,
    /// RLIMIT_AS of every guest process (bytes), when set.
    address_space: Option<u64>,
    filter: BpfProgram,
    guests: HashMap<Pid, State>,
    /// The host process group every guest joins (the first guest's pid).
    pgid: Option<Pid>,
    /// Stop a forking guest at its fork's exit (seccomp mode).
    fork_exit_stops: bool,
    /// The syscall number, rdi and rsi to put back after a fork the sentry rewrote,
    /// per forking guest...
    fork_regs: HashMap<Pid, SavedFork>,
    /// ...and per child, before its first instruction.
    child_regs: HashMap<Pid, (u64, u64)>,
    /// Pin resumed guests to this thread's CPU ([`Platform::keep_close`]).
    keep_close: bool,
    affinity: affinity::Affinity,
    /// ptrace belongs to the tracing thread.
    _not_send: PhantomData<*const ()>,
}

/// What a fork the sentry rewrote looked like before.
#[derive(Debug, Clone, Copy)]
struct SavedFork {
    nr: i64,
    rdi: u64,
    rsi: u64,
}

/// The kernel-internal results that make the host restart an interrupted syscall
/// (ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK).
fn is_restart(ret: i64) -> bool {
    (-516..=-512).contains(&ret) && ret != -515
}

impl Platform {
    pub fn new(mode: Mode, creds: Creds) -> Result<Platform, Error> {
        Ok(Platform {
            mode,
            creds,
            address_space: None,
            filter: filter::compile()?,
            guests: HashMap::new(),
            pgid: None,
            fork_exit_stops: false,
            fork_regs: HashMap::new(),
            child_regs: HashMap::new(),
            keep_close: false,
            affinity: affinity::Affinity::new(),
            _not_send: PhantomData,
        })
    }

    /// Caps the address space of guests started from now on (RLIMIT_AS, which the
    /// guest cannot raise: setrlimit and prlimit64 stop at the sentry), so anonymous
    /// mmap and brk, which run on the host, cannot take the host's memory.
    pub fn limit_address_space(&mut self, bytes: u64) {
        self.address_space = Some(bytes);
    }

    /// From now on, a guest resumed from a syscall is pinned to the CPU of the tracing
    /// thread until [`Platform::release_cpus`] (see `affinity`).
    pub fn keep_close(&mut self, on: bool) {
        self.keep_close = on;
    }

    /// Lets every pinned guest run on any of the kernel's CPUs again.
    pub fn release_cpus(&mut self) {
        self.affinity.release_all();
    }

    /// Stops a guest that forked at the exit of its fork (seccomp mode only), reported
    /// as [`Event::ForkReturned`], so the sentry can return the child's guest pid.
    pub fn stop_at_fork_exit(&mut self, on: bool) {
        self.fork_exit_stops = on && self.mode == Mode::Seccomp;
    }

    /// The sentry rewrote the arguments of the fork `pid` is stopped at (vfork and fork
    /// become clone): rdi and rsi get these values back in the parent at the fork's
    /// exit and in the child before its first instruction (glibc's vfork keeps its
    /// return address in rdi across the syscall).
    /// `nr` is the syscall the guest made: a fork the host interrupts for a signal
    /// restarts as that, not as the rewritten clone.
    pub fn restore_after_fork(&mut self, pid: Pid, nr: i64, rdi: u64, rsi: u64) {
        self.fork_regs.insert(pid, SavedFork { nr, rdi, rsi });
    }

    /// Resumes a new child from its first stop, with its registers put back.
    fn release_child(&mut self, child: Pid) -> Result<(), Error> {
        if let Some((rdi, rsi)) = self.child_regs.remove(&child) {
            let mut regs = ptrace::getregs(child).map_err(trace_err("PTRACE_GETREGS", child))?;
            regs.rdi = rdi;
            regs.rsi = rsi;
            ptrace::setregs(child, regs).map_err(trace_err("PTRACE_SETREGS", child))?;
        }
        self.resume_raw(child, None)
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The host pids of the live guest processes.
    pub fn guests(&self) -> impl Iterator<Item = Pid> + '_ {
        self.guests.keys().copied()
    }

    /// Waits for the next event of any guest process (blocking). Stops the sentry need
    /// not see (SYSEMU replays) are handled here.
    pub fn wait(&mut self) -> Result<Event, Error> {
        loop {
            let pgid = self.pgid.ok_or(Error::NoGuests)?;
            let status = waitpid(Pid::from_raw(-pgid.as_raw()), Some(WaitPidFlag::__WALL))
                .map_err(trace_err("waitpid", pgid))?;
            if let Some(event) = self.on_status(status)? {
                return Ok(event);
            }
        }
    }

    /// The next event if one is ready, without blocking (for an event loop woken by
    /// SIGCHLD, e.g. through a signalfd).
    pub fn try_wait(&mut self) -> Result<Option<Event>, Error> {
        loop {
            let pgid = self.pgid.ok_or(Error::NoGuests)?;
            let flags = WaitPidFlag::__WALL | WaitPidFlag::WNOHANG;
            let status = waitpid(Pid::from_raw(-pgid.as_raw()), Some(flags))
                .map_err(trace_err("waitpid", pgid))?;
            if status == WaitStatus::StillAlive {
                return Ok(None);
            }
            if let Some(event) = self.on_status(status)? {
                return Ok(Some(event));
            }
        }
    }

    fn on_status(&mut self, status: WaitStatus) -> Result<Option<Event>, Error> {
        match status {
            WaitStatus::PtraceEvent(pid, _, ev) if ev == libc::PTRACE_EVENT_SECCOMP => {
                if let Some(State::ReplayExit) = self.guests.get(&pid) {
                    // SYSEMU mode: the sentry passed this syscall; its replay met the
                    // filter. Let it run and stop at its exit.
                    ptrace::syscall(pid, None).map_err(trace_err("PTRACE_SYSCALL", pid))?;
                    return Ok(None);
                }
                let regs = ptrace::getregs(pid).map_err(trace_err("PTRACE_GETREGS", pid))?;
                self.guests.insert(pid, State::AtSyscall(regs));
                Ok(Some(Event::Syscall {
                    pid,
                    call: Syscall::from_regs(&regs),
                }))
            }
            WaitStatus::PtraceSyscall(pid)
                if matches!(self.guests.get(&pid), Some(State::ForkExit)) =>
            {
                let mut regs = ptrace::getregs(pid).map_err(trace_err("PTRACE_GETREGS", pid))?;
                if let Some(saved) = self.fork_regs.remove(&pid) {
                    regs.rdi = saved.rdi;
                    regs.rsi = saved.rsi;
                    regs.orig_rax = saved.nr as u64;
                    ptrace::setregs(pid, regs).map_err(trace_err("PTRACE_SETREGS", pid))?;
                }
                if is_restart(regs.rax as i64) {
                    // A signal came first: the host restarts the guest's own call
                    // (orig_rax, put back above), which stops here afresh.
                    self.resume_raw(pid, None)?;
                    return Ok(None);
                }
                self.guests.insert(pid, State::AtSyscall(regs));
                Ok(Some(Event::ForkReturned {
                    pid,
                    ret: regs.rax as i64,
                }))
            }
            WaitStatus::PtraceSyscall(pid) => self.on_sysemu_stop(pid),
            WaitStatus::PtraceEvent(pid, _, ev)
                if ev == libc::PTRACE_EVENT_FORK
                    || ev == libc::PTRACE_EVENT_VFORK
                    || ev == libc::PTRACE_EVENT_CLONE =>
            {
                self.on_fork(pid).map(Some)
            }
            WaitStatus::PtraceEvent(pid, _, _) => {
                // Other events (exec of a passed execve): carry on.
                self.continue_after_event(pid)?;
                Ok(None)
            }
            WaitStatus::Stopped(pid, Signal::SIGSTOP)
                if matches!(self.guests.get(&pid), None | Some(State::Expected)) =>
            {
                // A new child's first stop (auto-attached by PTRACE_O_TRACEFORK/CLONE).
                let reported = matches!(self.guests.get(&pid), Some(State::Expected));
                if reported {
                    self.release_child(pid)?;
                } else {
                    self.guests.insert(pid, State::Newborn);
                }
                Ok(None)
            }
            WaitStatus::Stopped(pid, signal) => {
                self.guests.insert(pid, State::AtSignal);
                Ok(Some(Event::Signal { pid, signal }))
            }
            WaitStatus::Exited(pid, code) => {
                self.forget(pid);
                Ok(Some(Event::Exited { pid, code }))
            }
            WaitStatus::Signaled(pid, signal, _) => {
                self.forget(pid);
                Ok(Some(Event::Killed { pid, signal }))
            }
            WaitStatus::Continued(_) | WaitStatus::StillAlive => Ok(None),
        }
    }

    /// A guest's fork/vfork/clone made a child, traced from its first instruction. The
    /// event is reported before anything the child does: a child whose first stop came
    /// first waits for it.
    fn on_fork(&mut self, parent: Pid) -> Result<Event, Error> {
        let raw = ptrace::getevent(parent).map_err(trace_err("PTRACE_GETEVENTMSG", parent))?;
        let child = Pid::from_raw(raw as libc::pid_t);
        self.affinity.inherit(parent, child);
        if let Some(saved) = self.fork_regs.get(&parent) {
            self.child_regs.insert(child, (saved.rdi, saved.rsi));
        }
        if self.fork_exit_stops {
            ptrace::syscall(parent, None).map_err(trace_err("PTRACE_SYSCALL", parent))?;
            self.guests.insert(parent, State::ForkExit);
        } else {
            self.continue_after_event(parent)?;
        }
        match self.guests.get(&child) {
            Some(State::Newborn) => self.release_child(child)?,
            _ => {
                self.guests.insert(child, State::Expected);
            }
        }
        Ok(Event::Forked { parent, child })
    }

    /// Resumes a guest from a ptrace event stop, keeping a SYSEMU replay going.
    fn continue_after_event(&mut self, pid: Pid) -> Result<(), Error> {
        match self.guests.get(&pid) {
            Some(State::ReplayExit) => {
                ptrace::syscall(pid, None).map_err(trace_err("PTRACE_SYSCALL", pid))
            }
            _ => self.resume_raw(pid, None),
        }
    }

    fn forget(&mut self, pid: Pid) {
        self.guests.remove(&pid);
        self.affinity.forget(pid);
        self.fork_regs.remove(&pid);
        self.child_regs.remove(&pid);
        if self.guests.is_empty() {
            self.pgid = None;
        }
    }

    /// A PTRACE_SYSEMU stop (or a replay's entry/exit stop).
    fn on_sysemu_stop(&mut self, pid: Pid) -> Result<Option<Event>, Error> {
        match self.guests.get(&pid).copied() {
            Some(State::ReplayEntry) => {
                // Resuming a SYSEMU stop with PTRACE_SYSCALL first reports the exit of
                // the skipped syscall; the replay's entry stop comes after it.
                let info =
                    ptrace::syscall_info(pid).map_err(trace_err("PTRACE_GET_SYSCALL_INFO", pid))?;
                ptrace::syscall(pid, None).map_err(trace_err("PTRACE_SYSCALL", pid))?;
                if info.op == libc::PTRACE_SYSCALL_INFO_ENTRY {
                    self.guests.insert(pid, State::ReplayExit);
                }
                Ok(None)
            }
            Some(State::ReplayExit) => {
                self.guests.insert(pid, State::Running);
                ptrace::sysemu(pid, None).map_err(trace_err("PTRACE_SYSEMU", pid))?;
                Ok(None)
            }
            _ => {
                let regs = ptrace::getregs(pid).map_err(trace_err("PTRACE_GETREGS", pid))?;
                let call = Syscall::from_regs(&regs);
                if filter::host_may_run(call.nr, &call.args) {
                    self.replay(pid, regs)?;
                    return Ok(None);
                }
                self.guests.insert(pid, State::AtSyscall(regs));
                Ok(Some(Event::Syscall { pid, call }))
            }
        }
    }

    /// SYSEMU mode: the stopped syscall was skipped; run it again on the host by stepping
    /// back over the syscall instruction and resuming with PTRACE_SYSCALL.
    fn replay(&mut self, pid: Pid, mut regs: Regs) -> Result<(), Error> {
        regs.rip -= 2; // `syscall` is two bytes: 0f 05
        regs.rax = regs.orig_rax;
        ptrace::setregs(pid, regs).map_err(trace_err("PTRACE_SETREGS", pid))?;
        ptrace::syscall(pid, None).map_err(trace_err("PTRACE_SYSCALL", pid))?;
        self.guests.insert(pid, State::ReplayEntry);
        Ok(())
    }

    fn at_syscall(&self, pid: Pid) -> Result<Regs, Error> {
        match self.guests.get(&pid) {
            Some(State::AtSyscall(regs)) => Ok(*regs),
            Some(_) => Err(Error::NotAtSyscall(pid)),
            None => Err(Error::NoSuchGuest(pid)),
        }
    }

    /// Answers the syscall the guest is stopped at with `ret` (a value, or -errno): the
    /// host does not execute it. Resumes the guest.
    pub fn reply(&mut self, pid: Pid, ret: i64) -> Result<(), Error> {
        let mut regs = self.at_syscall(pid)?;
        regs.rax = ret as u64;
        if self.mode == Mode::Seccomp {
            regs.orig_rax = u64::MAX; // syscall -1: skipped, rax is the result
        }
        ptrace::setregs(pid, regs).map_err(trace_err("PTRACE_SETREGS", pid))?;
        if self.keep_close {
            self.affinity.pin_here(pid);
        }
        self.resume_raw(pid, None)
    }

    /// Lets the host execute the syscall the guest is stopped at (as its registers now
    /// say). Only for syscalls that touch no host resource. Resumes the guest.
    pub fn pass(&mut self, pid: Pid) -> Result<(), Error> {
        let regs = self.at_syscall(pid)?;
        match self.mode {
            // A rewritten fork always stops at its exit, also when it fails before
            // making a child (no fork event): its registers go back there.
            Mode::Seccomp if self.fork_exit_stops && self.fork_regs.contains_key(&pid) => {
                self.guests.insert(pid, State::ForkExit);
                ptrace::syscall(pid, None).map_err(trace_err("PTRACE_SYSCALL", pid))
            }
            Mode::Seccomp => self.resume_raw(pid, None),
            Mode::Sysemu => self.replay(pid, regs),
        }
    }

    /// Lets the host execute the syscall the guest is stopped at and stops the guest at
    /// the syscall's exit, reported as [`Event::ForkReturned`] with the result, so the
    /// sentry can finish what the call made before answering (seccomp mode only).
    pub fn pass_to_exit(&mut self, pid: Pid) -> Result<(), Error> {
        self.at_syscall(pid)?;
        if self.mode != Mode::Seccomp {
            return Err(Error::NotAtSyscall(pid));
        }
        ptrace::syscall(pid, None).map_err(trace_err("PTRACE_SYSCALL", pid))?;
        self.guests.insert(pid, State::ForkExit);
        Ok(())
    }

    /// Resumes a guest stopped at a signal, delivering `signal` (or not).
    pub fn resume(&mut self, pid: Pid, signal: Option<Signal>) -> Result<(), Error> {
        match self.guests.get(&pid) {
            None => Err(Error::NoSuchGuest(pid)),
            Some(_) => self.resume_raw(pid, signal),
        }
    }

    fn resume_raw(&mut self, pid: Pid, signal: Option<Signal>) -> Result<(), Error> {
        self.guests.insert(pid, State::Running);
        match self.mode {
            Mode::Seccomp => ptrace::cont(pid, signal).map_err(trace_err("PTRACE_CONT", pid)),
            Mode::Sysemu => ptrace::sysemu(pid, signal).map_err(trace_err("PTRACE_SYSEMU", pid)),
        }
    }

    /// The registers of a stopped guest (at a syscall stop, as read there, with any
    /// change made by [`Platform::set_regs`]).
    pub fn regs(&self, pid: Pid) -> Result<Regs, Error> {
        match self.guests.get(&pid) {
            Some(State::AtSyscall(regs)) => Ok(*regs),
            Some(_) => ptrace::getregs(pid).map_err(trace_err("PTRACE_GETREGS", pid)),
            None => Err(Error::NoSuchGuest(pid)),
        }
    }

    /// Sets the registers of a stopped guest.
    pub fn set_regs(&mut self, pid: Pid, regs: Regs) -> Result<(), Error> {
        let state = self.guests.get_mut(&pid).ok_or(Error::NoSuchGuest(pid))?;
        ptrace::setregs(pid, regs).map_err(trace_err("PTRACE_SETREGS", pid))?;
        if let State::AtSyscall(r) = state {
            *r = regs;
        }
        Ok(())
    }

    /// Kills a guest process (host SIGKILL to its pid); its end comes as an event.
    pub fn kill(&mut self, pid: Pid) -> Result<(), Error> {
        if !self.guests.contains_key(&pid) {
            return Err(Error::NoSuchGuest(pid));
        }
        nix::sys::signal::kill(pid, Signal::SIGKILL).map_err(trace_err("kill", pid))
    }
}

impl Drop for Platform {
    /// Guests die with their platform (PTRACE_O_EXITKILL does it when the thread exits;
    /// this also covers a platform dropped on a thread that lives on). They are reaped.
    fn drop(&mut self) {
        for (&pid, _) in self.guests.iter() {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        }
        for (&pid, _) in self.guests.iter() {
            let _ = waitpid(pid, Some(WaitPidFlag::__WALL));
        }
    }
}

/// The /proc directory of host process `pid` in the /proc the kernel sees (which may
/// belong to an outer pid namespace, where its number differs): found through a pidfd,
/// whose fdinfo gives the pid as that /proc counts it.
pub fn host_proc_dir(pid: Pid) -> Option<std::path::PathBuf> {
    use std::os::fd::AsRawFd;
    let fd = sys::pidfd_open(pid).ok()?;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
    let n: i32 = info
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))?
        .trim()
        .parse()
        .ok()?;
    (n > 0).then(|| std::path::PathBuf::from(format!("/proc/{n}")))
}
