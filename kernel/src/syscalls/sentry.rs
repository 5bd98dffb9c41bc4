//! The sentry: guest processes running the root disk's programs. Each guest process is a
//! host process under the [`platform`](super::platform) (seccomp + ptrace); every
//! syscall outside the allow-list stops it, and the sentry performs it against the
//! kernel's own state — the VFS (`fs/`), its pipes and the console tty — and writes the
//! result back. The guest sees its own pids (init is 1), parents, process groups and
//! sessions, exit statuses and wait4, descriptors, cwd, umask and uid 0, none of them
//! the host's.
//!
//! Where it runs: inside the kernel's one event loop, on the loop's thread (the
//! Platform and the VFS are both tied to it: ptrace belongs to the tracing thread, the
//! VFS holds `Rc`s). The host tells the loop that a guest stopped through SIGCHLD, read
//! from a signalfd the loop polls; the sentry then drains the stops with waitpid(WNOHANG),
//! at most [`EVENTS_PER_TURN`] per turn so mconsole and the consoles are served in
//! between. A syscall that has to wait (read of the tty or an empty pipe, wait4,
//! nanosleep, poll) is not answered: the guest stays stopped and the call is kept in a
//! list that is tried again whenever anything changed (and at its deadline), so nothing
//! ever blocks the loop.
//!
//! Process forms: fork, vfork and clone without CLONE_VM (or with CLONE_VFORK) run on
//! the host with CLONE_PARENT added, so every guest process is a host child of the
//! kernel (reaped by the platform, no host zombies under guest parents); the fork's
//! return value is rewritten to the child's guest pid at its exit stop. execve loads the
//! program from the VFS (`#!` scripts too) into a memfd and replaces the host process
//! by a fresh one (the guest pid, descriptors, cwd, signal mask and ignored signals
//! carry over). Signals between guest processes are host signals the sentry sends
//! (handlers, masks and sigreturn run on the host, recorded here); host-made SIGCHLDs
//! are dropped (the sentry sends its own); ITIMER_REAL (alarm, setitimer) is the
//! sentry's own timer. Sockets are the sentry's too (`socket`, `unix`): AF_INET ones
//! sit on the kernel's smoltcp stacks, so the loop tries waiting calls again after the
//! stacks ran. Job control stops are the sentry's (`jobctl`): a stopped guest is held
//! in a ptrace stop. Threads (CLONE_THREAD) are host threads with guest tids
//! (`threads`); a clone with CLONE_VM but neither CLONE_THREAD nor CLONE_VFORK is a
//! process that shares memory on the host.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use super::abi::{self, errno::*};
use super::fdtable::{desc, Fd, FdTable, Object};
use super::platform::{self, Creds, Event, Mode, Platform, Syscall};
use super::tty::Tty;
use crate::fs::vfs::{oflag, Loc};
use crate::machine::{Action, Machine};

/// Guest events handled per loop turn before the loop serves its other devices.
pub const EVENTS_PER_TURN: usize = 256;
/// Most guest processes (zombies included): fork beyond fails with EAGAIN.
pub const MAX_PROCS: usize = 256;
/// How long the sentry keeps looking for the next stop of a guest it just resumed from
/// a syscall before going back to the loop (bench/src/bin/kernel_proc_bench.rs: a
/// trapped getpid costs about 16 µs without it, 5 µs with it, on two shared cores).
const SPIN: Duration = Duration::from_micros(30);
/// Address space of each guest process (RLIMIT_AS on the host).
const ADDRESS_SPACE: u64 = 1 << 30;

pub(super) const SIG_IGN: u64 = 1;
const SA_NOCLDWAIT: u64 = 2;
const SA_RESTART: u64 = 0x1000_0000;

/// Whether `SENTRY_TRACE` asks for every syscall on stderr (read once).
fn tracing() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("SENTRY_TRACE").is_some())
}

/// A guest process.
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub pgid: u32,
    pub sid: u32,
    /// The host process running it now (it changes at execve).
    pub host: Pid,
    /// Its wait status once it ended (a zombie until its parent waits).
    pub zombie: Option<i32>,
    pub fds: FdTable,
    pub cwd: Loc,
    pub umask: u32,
    /// The absolute path of the program it runs (/proc/self/exe).
    pub exe: Vec<u8>,
    pub comm: String,
    /// rt_sigaction's handler and flags per signal (index signal - 1).
    pub actions: [(u64, u64); 64],
    /// The blocked signals (bit signal - 1), as rt_sigprocmask left them.
    pub mask: u64,
    /// Signals the sentry sent that the host has not delivered yet.
    pub sent: u64,
    /// ITIMER_REAL (alarm, setitimer): when SIGALRM is due, and its reload interval.
    pub alarm: Option<(Instant, Duration)>,
    /// Its argv, each ending in NUL (/proc/PID/cmdline).
    pub cmdline: Vec<u8>,
    /// Its nice value (getpriority/setpriority; -20..=19).
    pub nice: i32,
    /// Seconds since boot when it started (/proc/PID/stat's starttime).
    pub started: f64,
    /// Stopped by job control (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU).
    pub stopped: bool,
    /// A stop or continue its parent has not waited for yet (the wait status).
    pub report: Option<i32>,
    /// Held in a signal-delivery stop while stopped: the signal to resume it with.
    pub held: Option<Option<Signal>>,
}

impl Proc {
    /// The signals it ignores (SIG_IGN), as a bit mask (bit N-1 for signal N).
    pub fn ignored_signals(&self) -> u64 {
        self.actions
            .iter()
            .enumerate()
            .filter(|(_, a)| a.0 == SIG_IGN)
            .fold(0u64, |acc, (i, _)| acc | 1 << i)
    }
}

/// A syscall that waits: tried again whenever something changes.
pub(super) struct Blocked {
    pub(super) pid: u32,
    /// The host thread that made the call.
    pub(super) host: Pid,
    pub(super) call: Syscall,
    pub(super) deadline: Option<Instant>,
    /// Not tried yet (it came while the process was stopped).
    pub(super) fresh: bool,
}

/// What handling a syscall gave.
pub enum Ret {
    /// The result (a value or -errno) to write back.
    Val(i64),
    /// It must wait (until the deadline, if any); tried again later.
    Block(Option<Instant>),
    /// The guest was resumed already (passed to the host, or replaced by execve).
    Resumed,
}

pub struct Sentry {
    pub(super) platform: Platform,
    sigchld: SignalFd,
    pub(super) procs: BTreeMap<u32, Proc>,
    /// Every host thread of a guest, to its guest pid (thread group).
    pub(super) by_host: HashMap<Pid, u32>,
    /// Guest threads other than group leaders, by guest tid (`threads`)...
    pub(super) threads: BTreeMap<u32, super::threads::Thread>,
    /// ...and by host thread.
    pub(super) tids: HashMap<Pid, u32>,
    /// Clones the host is performing, by the caller's host thread.
    pub(super) clones: HashMap<Pid, super::threads::PendingClone>,
    /// The guest pid or tid a fork or clone made, returned at its exit stop.
    pub(super) clone_child: HashMap<Pid, u32>,
    /// Host threads whose set_tid_address is running (their guest tid is returned).
    pub(super) settid: HashSet<Pid>,
    next_pid: u32,
    pub(super) blocked: Vec<Blocked>,
    /// The ttys, by console slot.
    pub(super) ttys: BTreeMap<usize, Tty>,
    /// What guests wrote to the ttys (and their echo), by console slot, for the loop to
    /// write out.
    pub(super) out: Vec<(usize, Vec<u8>)>,
    pub(super) next_pipe: u64,
    pub(super) images: HashMap<Loc, super::exec::CachedImage>,
    /// Unknown syscalls already logged.
    logged: HashSet<i64>,
    /// Guests whose fork the host is performing: their children count against
    /// [`MAX_PROCS`] before they are known, so a fork bomb cannot overshoot it.
    forking: HashSet<Pid>,
    /// Events may be waiting (the last turn stopped at its cap).
    more: bool,
    /// The last event resumed a guest from a syscall (its next stop is near).
    resumed: bool,
    pub(super) nodename: String,
    /// UML_SENTRY_TRACE set: every syscall and event is written to stderr.
    trace: bool,
    /// Ctrl-Alt-Del reboots at once (reboot(2) CAD_ON, the default) or signals init.
    pub cad_reboots: bool,
    /// The names unix sockets are bound to.
    pub(super) unix: super::unix::Registry,
    /// While a waiting call is tried again: the deadline it waits for (socket
    /// timeouts read it); None on a call's first try.
    pub(super) call_deadline: Option<Option<Instant>>,
    /// Named pipes opened so far (`fifo`).
    pub(super) fifos: super::fifo::Fifos,
    /// The path each open file description was opened by (/proc/PID/fd), by address.
    pub(super) desc_paths: HashMap<usize, Vec<u8>>,
    /// File mappings the host is making, by host process (`mmap`).
    pub(super) mmap_fills: HashMap<Pid, super::mmap::PendingFill>,
}

/// Whether a failed start of init is worth trying the next candidate.
pub enum StartError {
    /// The file is not there or not executable (Linux tries the next default).
    NotFound(i64),
    /// Anything else (the platform failed).
    Failed(String),
}

fn host_err(e: platform::Error) -> String {
    e.to_string()
}

impl Sentry {
    /// A sentry with no process yet; SIGCHLD is read through a signalfd from now on.
    pub fn new() -> Result<Sentry, String> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.thread_block()
            .map_err(|e| format!("cannot block SIGCHLD: {e}"))?;
        let sigchld = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| format!("signalfd: {e}"))?;
        let mut platform =
            Platform::new(Mode::Seccomp, Creds::default_for_host()).map_err(host_err)?;
        platform.stop_at_fork_exit(true);
        platform.keep_close(true);
        platform.limit_address_space(ADDRESS_SPACE);
        Ok(Sentry {
            platform,
            sigchld,
            procs: BTreeMap::new(),
            by_host: HashMap::new(),
            threads: BTreeMap::new(),
            tids: HashMap::new(),
            clones: HashMap::new(),
            clone_child: HashMap::new(),
            settid: HashSet::new(),
            next_pid: 1,
            blocked: Vec::new(),
            ttys: BTreeMap::new(),
            out: Vec::new(),
            next_pipe: 1,
            images: HashMap::new(),
            logged: HashSet::new(),
            forking: HashSet::new(),
            more: false,
            resumed: false,
            nodename: crate::machine::NODENAME.to_string(),
            trace: std::env::var_os("UML_SENTRY_TRACE").is_some(),
            cad_reboots: true,
            unix: super::unix::Registry::default(),
            call_deadline: None,
            fifos: super::fifo::Fifos::default(),
            desc_paths: HashMap::new(),
            mmap_fills: HashMap::new(),
        })
    }

    /// The descriptor the loop polls: readable when a guest stopped or ended.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.sigchld.as_raw_fd()
    }

    /// Starts init (pid 1) running `path` with `argv` and `envp`, its descriptors 0, 1
    /// and 2 on the console tty.
    pub fn start_init(
        &mut self,
        m: &mut Machine,
        path: &str,
        argv: &[String],
        envp: &[String],
    ) -> Result<(), StartError> {
        let root = m.files.vfs.root();
        let argv: Vec<Vec<u8>> = argv.iter().map(|a| a.as_bytes().to_vec()).collect();
        let envp: Vec<Vec<u8>> = envp.iter().map(|a| a.as_bytes().to_vec()).collect();
        let (image, exe, argv) = self
            .load(m, root, &[], path.as_bytes(), argv)
            .map_err(StartError::NotFound)?;
        let host = self
            .platform
            .spawn(&image, &argv_os(&argv), &argv_os(&envp))
            .map_err(|e| StartError::Failed(host_err(e)))?;
        let tty = desc(Object::Tty(0), oflag::O_RDWR);
        let mut fds = FdTable::default();
        for _ in 0..3 {
            fds.insert(Fd {
                desc: tty.clone(),
                cloexec: false,
            });
        }
        // As Linux: the name exec was given, a script's own name rather than its
        // interpreter's (which /proc/PID/exe shows).
        let comm = basename(path.as_bytes());
        self.procs.insert(
            1,
            Proc {
                pid: 1,
                ppid: 0,
                pgid: 1,
                sid: 1,
                host,
                zombie: None,
                fds,
                cwd: root,
                umask: 0o022,
                exe,
                comm,
                actions: [(0, 0); 64],
                mask: 0,
                sent: 0,
                alarm: None,
                cmdline: super::procpid::cmdline(&argv),
                nice: 0,
                started: m.uptime_secs(),
                stopped: false,
                report: None,
                held: None,
            },
        );
        self.by_host.insert(host, 1);
        self.next_pid = 2;
        Ok(())
    }

    /// How soon the loop must call [`Sentry::service`] even without SIGCHLD.
    pub fn timeout(&self) -> Option<Duration> {
        if self.more {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let alarms = self
            .procs
            .values()
            .filter(|p| p.zombie.is_none())
            .filter_map(|p| p.alarm.map(|a| a.0));
        self.blocked
            .iter()
            .filter(|b| !self.procs.get(&b.pid).is_some_and(|p| p.stopped))
            .filter_map(|b| b.deadline)
            .chain(alarms)
            .min()
            .map(|d| d.saturating_duration_since(now))
    }

    /// Ctrl-Alt-Del with CAD off (mconsole `cad` after init's reboot(CAD_OFF)):
    /// SIGINT to init, as Linux does.
    pub fn cad(&mut self, m: &mut Machine) {
        self.send_signal(1, libc::SIGINT);
        self.retry_blocked(m);
    }

    /// SysRq e and i: `sig` to every guest process but init, as Linux does.
    pub fn signal_all_but_init(&mut self, m: &mut Machine, sig: i32) {
        let victims: Vec<u32> = self
            .procs
            .values()
            .filter(|p| p.pid != 1 && p.zombie.is_none())
            .map(|p| p.pid)
            .collect();
        for pid in victims {
            self.send_signal(pid, sig);
        }
        self.retry_blocked(m);
    }

    /// Takes what guests wrote to the ttys, by console slot.
    pub fn take_output(&mut self) -> Vec<(usize, Vec<u8>)> {
        std::mem::take(&mut self.out)
    }

    /// Whether any guest process is left.
    pub fn alive(&self) -> bool {
        self.procs.values().any(|p| p.zombie.is_none())
    }

    /// Serves the guests: drains SIGCHLD and the stops that are ready (up to
    /// [`EVENTS_PER_TURN`]), then retries the waiting calls.
    pub fn service(&mut self, m: &mut Machine) {
        while let Ok(Some(_)) = self.sigchld.read_signal() {}
        self.more = false;
        self.fire_alarms();
        for _ in 0..EVENTS_PER_TURN {
            let spin = std::mem::take(&mut self.resumed).then(|| Instant::now() + SPIN);
            match self.next_event(spin) {
                Ok(Some(ev)) => self.on_event(m, ev),
                Ok(None) | Err(platform::Error::NoGuests) => {
                    self.retry_blocked(m);
                    return;
                }
                Err(e) => {
                    m.log.err(format!("sentry: {e}"));
                    self.retry_blocked(m);
                    return;
                }
            }
            if m.action.is_some() {
                return;
            }
        }
        self.more = true;
        self.retry_blocked(m);
    }

    /// The next guest event that is ready; with `spin`, keeps looking until then (a
    /// guest just resumed from a syscall usually stops at its next one within
    /// microseconds: catching that stop here saves the loop's poll, the signalfd read
    /// and the wake-up of this thread).
    fn next_event(&mut self, spin: Option<Instant>) -> Result<Option<Event>, platform::Error> {
        loop {
            let ev = self.platform.try_wait()?;
            match spin {
                // Yielding lets the guest run at once: it was pinned to this CPU.
                Some(until) if ev.is_none() && Instant::now() < until => std::thread::yield_now(),
                Some(_) if ev.is_none() => {
                    // It computes: let it run anywhere.
                    self.platform.release_cpus();
                    return Ok(None);
                }
                _ => return Ok(ev),
            }
        }
    }

    fn on_event(&mut self, m: &mut Machine, ev: Event) {
        if self.trace && !matches!(ev, Event::Syscall { .. }) {
            let _ = writeln!(std::io::stderr(), "sentry: {ev:?}");
        }
        let result = match ev {
            Event::Syscall { pid: host, call } => self.on_syscall(m, host, call),
            Event::Forked { parent, child } => {
                self.on_forked(parent, child, m.uptime_secs());
                Ok(())
            }
            Event::ForkReturned { pid: host, ret } if self.mmap_returned(host, ret) => Ok(()),
            Event::ForkReturned { pid: host, ret } if self.settid.remove(&host) => {
                let pid = self.by_host.get(&host).copied().unwrap_or(0);
                let tid = self.tid_of(pid, host);
                self.platform
                    .reply(host, if ret < 0 { ret } else { tid as i64 })
            }
            Event::ForkReturned { pid: host, ret } => {
                self.forking.remove(&host);
                self.clones.remove(&host);
                let child = self.clone_child.remove(&host);
                let v = match (ret, child) {
                    (r, _) if r < 0 => r,
                    (_, Some(c)) => c as i64,
                    (r, None) => r,
                };
                self.resumed = true;
                self.platform.reply(host, v)
            }
            Event::Signal { pid: host, signal } => self.on_host_signal(host, signal),
            Event::Exited { pid: host, code } => {
                self.on_exit(m, host, abi::exited(code));
                Ok(())
            }
            Event::Killed { pid: host, signal } => {
                self.on_exit(m, host, signal as i32);
                Ok(())
            }
        };
        if let Err(e) = result {
            // A guest that died meanwhile: its exit event follows.
            m.log.debug(format!("sentry: {e}"));
        }
    }

    fn on_syscall(
        &mut self,
        m: &mut Machine,
        host: Pid,
        call: Syscall,
    ) -> Result<(), platform::Error> {
        let Some(&pid) = self.by_host.get(&host) else {
            return self.platform.reply(host, -ENOSYS);
        };
        if self.procs.get(&pid).is_some_and(|p| p.stopped) {
            // It stopped before this call came: the call waits for SIGCONT.
            self.blocked.push(Blocked {
                pid,
                host,
                call,
                deadline: None,
                fresh: true,
            });
            return Ok(());
        }
        let ret = self.syscall(m, pid, host, call, None);
        if tracing() {
            let shown = match &ret {
                Ret::Val(v) => v.to_string(),
                Ret::Block(_) => "block".into(),
                Ret::Resumed => "resumed".into(),
            };
            let _ = writeln!(
                std::io::stderr(),
                "[{pid}] {} {:x?} = {shown}",
                call.nr,
                call.args
            );
        }
        self.finish(pid, host, call, ret)
    }

    fn finish(
        &mut self,
        pid: u32,
        host: Pid,
        call: Syscall,
        ret: Ret,
    ) -> Result<(), platform::Error> {
        match ret {
            Ret::Val(v) => {
                self.resumed = true;
                self.platform.reply(host, v)
            }
            Ret::Block(deadline) => {
                self.blocked.push(Blocked {
                    pid,
                    host,
                    call,
                    deadline,
                    fresh: false,
                });
                Ok(())
            }
            Ret::Resumed => {
                self.resumed = true;
                Ok(())
            }
        }
    }

    /// Tries every waiting call again until none completes.
    pub fn retry_blocked(&mut self, m: &mut Machine) {
        loop {
            let mut progressed = false;
            let waiting = std::mem::take(&mut self.blocked);
            let mut still = Vec::new();
            for b in waiting {
                let host = b.host;
                let Some(stopped) = self
                    .procs
                    .get(&b.pid)
                    .filter(|p| p.zombie.is_none())
                    .map(|p| p.stopped)
                else {
                    continue;
                };
                if stopped {
                    still.push(b);
                    continue;
                }
                let retry = (!b.fresh).then_some(b.deadline);
                self.call_deadline = retry;
                let ret = self.syscall(m, b.pid, host, b.call, retry);
                self.call_deadline = None;
                match ret {
                    Ret::Block(deadline) => still.push(Blocked {
                        deadline,
                        fresh: false,
                        ..b
                    }),
                    other => {
                        progressed = true;
                        let _ = self.finish(b.pid, host, b.call, other);
                    }
                }
            }
            still.append(&mut self.blocked);
            self.blocked = still;
            if !progressed {
                return;
            }
        }
    }

    /// Sends SIGALRM to the processes whose ITIMER_REAL expired (reloading it).
    fn fire_alarms(&mut self) {
        let now = Instant::now();
        let due: Vec<u32> = self
            .procs
            .values_mut()
            .filter(|p| p.zombie.is_none())
            .filter_map(|p| match p.alarm {
                Some((at, every)) if at <= now => {
                    p.alarm = (!every.is_zero()).then(|| (now + every, every));
                    Some(p.pid)
                }
                _ => None,
            })
            .collect();
        for pid in due {
            self.send_signal(pid, libc::SIGALRM);
        }
    }

    /// alarm and setitimer(ITIMER_REAL): sets process `pid`'s timer (a zero value
    /// stops it) and gives the time that was left and the old interval.
    pub(super) fn set_alarm(
        &mut self,
        pid: u32,
        value: Duration,
        every: Duration,
    ) -> (Duration, Duration) {
        let Some(p) = self.procs.get_mut(&pid) else {
            return (Duration::ZERO, Duration::ZERO);
        };
        let now = Instant::now();
        let old = p.alarm.map_or((Duration::ZERO, Duration::ZERO), |(at, e)| {
            (at.saturating_duration_since(now), e)
        });
        p.alarm = (!value.is_zero()).then(|| (now + value, every));
        old
    }

    /// Logs an unknown syscall once per number (kernel log only) and answers ENOSYS.
    pub(super) fn unknown(&mut self, m: &mut Machine, pid: u32, nr: i64) -> Ret {
        if self.logged.insert(nr) {
            let comm = self.procs.get(&pid).map_or("?", |p| p.comm.as_str());
            m.log.debug(format!(
                "sentry: {comm}[{pid}]: unknown syscall {nr} (ENOSYS)"
            ));
        }
        Ret::Val(-ENOSYS)
    }

    pub(super) fn alloc_pid(&mut self) -> u32 {
        loop {
            let pid = self.next_pid;
            self.next_pid = if pid >= 32767 { 2 } else { pid + 1 };
            if !self.procs.contains_key(&pid)
                && !self.threads.contains_key(&pid)
                && !self.procs.values().any(|p| p.pgid == pid || p.sid == pid)
            {
                return pid;
            }
        }
    }

    /// fork, vfork, clone: checked, CLONE_PARENT added (every guest is a host child of
    /// the kernel), passed to the host.
    pub(super) fn fork(&mut self, host: Pid, call: Syscall) -> Ret {
        // (A fork the host restarted after a signal is already counted in `forking`.)
        let in_flight = self.forking.len() - usize::from(self.forking.contains(&host));
        if self.procs.len() + self.threads.len() + in_flight >= MAX_PROCS {
            return Ret::Val(-EAGAIN);
        }
        let Ok(mut regs) = self.platform.regs(host) else {
            return Ret::Val(-ESRCH);
        };
        let (rdi, rsi) = (regs.rdi, regs.rsi);
        let sigchld = libc::SIGCHLD as u64;
        let parent = libc::CLONE_PARENT as u64;
        match call.nr {
            libc::SYS_fork => {
                regs.orig_rax = libc::SYS_clone as u64;
                regs.rdi = sigchld | parent;
                regs.rsi = 0;
            }
            libc::SYS_vfork => {
                regs.orig_rax = libc::SYS_clone as u64;
                regs.rdi = (libc::CLONE_VM | libc::CLONE_VFORK) as u64 | sigchld | parent;
                regs.rsi = 0;
            }
            _ => {
                // (A fork the host restarts after a signal comes back as the guest's
                // own call: the platform puts its registers back at the fork's exit.)
                let flags = call.args[0];
                if !platform::filter::clone_is_host_safe(flags) {
                    return Ret::Val(-EPERM);
                }
                let shares = super::threads::THREAD_SHARES;
                if flags & libc::CLONE_THREAD as u64 != 0 {
                    // A thread: it joins the caller's host thread group, so no
                    // CLONE_PARENT; one with its own descriptors or fs is not modelled.
                    if flags & shares != shares {
                        return Ret::Val(-EINVAL);
                    }
                } else {
                    // Sharing the descriptor table, fs or handlers with a child process
                    // is not modelled: refused rather than half done. (CLONE_VM alone is
                    // the host's business: the memory is shared there.)
                    let shared = (libc::CLONE_FILES | libc::CLONE_FS | libc::CLONE_SIGHAND) as u64;
                    if flags & shared != 0 {
                        return Ret::Val(-EINVAL);
                    }
                    regs.rdi = flags | parent;
                }
                self.clones.insert(
                    host,
                    super::threads::PendingClone {
                        flags,
                        ptid: call.args[2],
                        ctid: call.args[3],
                    },
                );
            }
        }
        self.platform.restore_after_fork(host, call.nr, rdi, rsi);
        if self.platform.set_regs(host, regs).is_err() || self.platform.pass(host).is_err() {
            return Ret::Val(-ESRCH);
        }
        self.forking.insert(host);
        Ret::Resumed
    }

    fn on_forked(&mut self, parent_host: Pid, child_host: Pid, started: f64) {
        let clone = self.clones.remove(&parent_host);
        if let Some(c) = clone.filter(|c| c.flags & libc::CLONE_THREAD as u64 != 0) {
            self.thread_created(parent_host, child_host, c);
            return;
        }
        let Some(&ppid) = self.by_host.get(&parent_host) else {
            let _ = self.platform.kill(child_host);
            return;
        };
        let pid = self.alloc_pid();
        let mask = self.mask_mut(ppid, parent_host).map_or(0, |m| *m);
        let Some(parent) = self.procs.get(&ppid) else {
            return;
        };
        let child = Proc {
            pid,
            ppid,
            pgid: parent.pgid,
            sid: parent.sid,
            host: child_host,
            zombie: None,
            fds: parent.fds.clone(),
            cwd: parent.cwd,
            umask: parent.umask,
            exe: parent.exe.clone(),
            comm: parent.comm.clone(),
            actions: parent.actions,
            mask,
            sent: 0,
            alarm: None,
            cmdline: parent.cmdline.clone(),
            nice: parent.nice,
            started,
            stopped: false,
            report: None,
            held: None,
        };
        self.procs.insert(pid, child);
        self.by_host.insert(child_host, pid);
        self.clone_child.insert(parent_host, pid);
        if let Some(c) = clone {
            self.write_tids(parent_host, child_host, c, pid);
        }
    }

    /// A signal-delivery stop: signals the sentry sent, and faults, go through; the
    /// host's own (SIGCHLD of host children, stops) are dropped.
    fn on_host_signal(&mut self, host: Pid, signal: Signal) -> Result<(), platform::Error> {
        let bit = abi::sigbit(signal as i32);
        let ours = self.thread_sent(host, bit)
            || match self.by_host.get(&host).and_then(|g| self.procs.get_mut(g)) {
                Some(p) if p.sent & bit != 0 => {
                    p.sent &= !bit;
                    true
                }
                _ => false,
            };
        let fault = matches!(
            signal,
            Signal::SIGSEGV
                | Signal::SIGBUS
                | Signal::SIGILL
                | Signal::SIGFPE
                | Signal::SIGTRAP
                | Signal::SIGSYS
                | Signal::SIGXCPU
                | Signal::SIGXFSZ
                | Signal::SIGKILL
        );
        let deliver = (ours || fault).then_some(signal);
        if let Some(p) = self
            .by_host
            .get(&host)
            .and_then(|g| self.procs.get_mut(g))
            .filter(|p| p.stopped)
        {
            // Stopped by job control: held here until SIGCONT.
            if let Some(t) = self.tids.get(&host).and_then(|t| self.threads.get_mut(t)) {
                t.held = Some(deliver);
                return Ok(());
            }
            p.held = Some(deliver);
            return Ok(());
        }
        self.platform.resume(host, deliver)
    }

    /// A host process ended: its guest process becomes a zombie (unless execve replaced
    /// it), its descriptors close, its children go to init, its parent hears of it.
    fn on_exit(&mut self, m: &mut Machine, host: Pid, status: i32) {
        self.forking.remove(&host);
        self.clones.remove(&host);
        self.clone_child.remove(&host);
        self.settid.remove(&host);
        if self.thread_exited(host) {
            return;
        }
        let Some(pid) = self.by_host.remove(&host) else {
            return;
        };
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        if p.host != host || p.zombie.is_some() {
            return;
        }
        p.zombie = Some(status);
        p.stopped = false;
        p.report = None;
        let fds = p.fds.take_all();
        let ppid = p.ppid;
        let leader = p.sid == pid;
        for fd in fds {
            self.release(m, fd);
        }
        self.blocked.retain(|b| b.pid != pid);
        if leader {
            self.session_ended(pid);
        }
        if pid == 1 {
            m.log.err(format!(
                "Kernel panic - not syncing: Attempted to kill init! exitcode=0x{status:08x}"
            ));
            m.action = Some(Action::Halt(1));
            return;
        }
        let orphans: Vec<u32> = self
            .procs
            .values()
            .filter(|c| c.ppid == pid)
            .map(|c| c.pid)
            .collect();
        for c in orphans {
            if let Some(c) = self.procs.get_mut(&c) {
                c.ppid = 1;
            }
        }
        let Some(parent) = self.procs.get(&ppid) else {
            self.procs.remove(&pid);
            return;
        };
        let (handler, flags) = parent.actions[libc::SIGCHLD as usize - 1];
        if handler == SIG_IGN || flags & SA_NOCLDWAIT != 0 {
            self.procs.remove(&pid);
        } else if handler > SIG_IGN {
            self.send_signal(ppid, libc::SIGCHLD);
        }
    }

    /// Closes a descriptor: the last one of a description releases it.
    pub(super) fn release(&mut self, m: &mut Machine, fd: Fd) {
        if Rc::strong_count(&fd.desc) != 1 {
            return;
        }
        self.desc_paths.remove(&(Rc::as_ptr(&fd.desc) as usize));
        if let Ok(cell) = Rc::try_unwrap(fd.desc) {
            match cell.into_inner().object {
                Object::File(of) => {
                    let _ = m.files.vfs.close(of);
                }
                Object::Socket(mut s) => s.release(&mut m.net, &mut self.unix),
                _ => {}
            }
        }
    }

    /// Sends `sig` to guest process `pid`; a waiting call it interrupts returns EINTR
    /// (or restarts after the handler with SA_RESTART).
    pub(super) fn send_signal(&mut self, pid: u32, sig: i32) {
        let Some(p) = self.procs.get(&pid).filter(|p| p.zombie.is_none()) else {
            return;
        };
        let host = p.host;
        let Ok(signal) = Signal::try_from(sig) else {
            return;
        };
        if sig == libc::SIGKILL && pid != 1 {
            let _ = self.platform.kill(host);
            return;
        }
        if let Some(thread) = self.thread_for_group_signal(pid, sig) {
            // The leader blocks it and another thread does not: that thread takes it.
            self.signal_thread(pid, thread, sig);
            return;
        }
        let Some(p) = self.procs.get(&pid) else {
            return;
        };
        let (handler, flags) = p.actions[sig as usize - 1];
        let pgid = p.pgid;
        if sig == libc::SIGCONT {
            self.cont(pid);
        }
        let stop = matches!(
            signal,
            Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU
        );
        if stop && (sig == libc::SIGSTOP || handler == 0) {
            // The terminal's stop signals are dropped for an orphaned process group
            // (nobody in the session outside it could continue it), as in Linux.
            let orphaned = sig != libc::SIGSTOP && self.orphaned_pgrp(pgid);
            if pid != 1 && !orphaned {
                self.stop(pid, sig);
            }
            return;
        }
        let Some(p) = self.procs.get(&pid) else {
            return;
        };
        let stopped = p.stopped;
        // init only gets the signals it has a handler for, as in Linux; a blocked
        // signal is kept whatever its action (it may be waited for with
        // sigtimedwait, as busybox init does).
        let masked = p.mask & abi::sigbit(sig) != 0;
        let init_default = pid == 1 && handler == 0;
        let dropped =
            handler == SIG_IGN || init_default || (handler == 0 && abi::ignored_by_default(sig));
        if dropped && !masked {
            return;
        }
        if let Some(p) = self.procs.get_mut(&pid) {
            p.sent |= abi::sigbit(sig);
        }
        if nix::sys::signal::kill(host, signal).is_err() {
            return;
        }
        if masked || stopped {
            return;
        }
        self.interrupt_blocked(pid, handler, flags);
    }

    /// A signal for `pid` (whose action is `handler`, `flags`) ends the call it waits
    /// in: EINTR, or a restart after the handler with SA_RESTART.
    pub(super) fn interrupt_blocked(&mut self, pid: u32, handler: u64, flags: u64) {
        if let Some(i) = self.blocked.iter().position(|b| b.pid == pid && !b.fresh) {
            self.interrupt_at(i, handler, flags);
        }
    }

    /// As [`Sentry::interrupt_blocked`], for the call host thread `host` waits in.
    pub(super) fn interrupt_host(&mut self, host: Pid, handler: u64, flags: u64) {
        if let Some(i) = self.blocked.iter().position(|b| b.host == host && !b.fresh) {
            self.interrupt_at(i, handler, flags);
        }
    }

    fn interrupt_at(&mut self, i: usize, handler: u64, flags: u64) {
        {
            let b = self.blocked.remove(i);
            let host = b.host;
            let restart = handler > SIG_IGN
                && flags & SA_RESTART != 0
                && matches!(
                    b.call.nr,
                    libc::SYS_read
                        | libc::SYS_readv
                        | libc::SYS_write
                        | libc::SYS_writev
                        | libc::SYS_wait4
                        | libc::SYS_recvfrom
                        | libc::SYS_recvmsg
                        | libc::SYS_sendto
                        | libc::SYS_sendmsg
                        | libc::SYS_accept
                        | libc::SYS_accept4
                );
            if restart {
                if let Ok(mut regs) = self.platform.regs(host) {
                    regs.rip -= 2;
                    let _ = self.platform.set_regs(host, regs);
                    let _ = self.platform.reply(host, b.call.nr);
                }
            } else {
                let _ = self.platform.reply(host, -EINTR);
            }
        }
    }

    /// kill(2) and friends: `target` as kill reads it.
    pub(super) fn kill(&mut self, from: u32, target: i32, sig: i32) -> i64 {
        if !(0..=64).contains(&sig) {
            return -EINVAL;
        }
        let my_pgid = self.procs.get(&from).map_or(0, |p| p.pgid);
        // kill of a thread's tid signals its whole group, as in Linux.
        let target = match self.threads.get(&target.unsigned_abs()) {
            Some(t) if target > 0 => t.tgid as i32,
            _ => target,
        };
        let victims: Vec<u32> = self
            .procs
            .values()
            .filter(|p| p.zombie.is_none())
            .filter(|p| match target {
                t if t > 0 => p.pid == t as u32,
                0 => p.pgid == my_pgid,
                -1 => p.pid != 1 && p.pid != from,
                t => p.pgid == t.unsigned_abs(),
            })
            .map(|p| p.pid)
            .collect();
        if victims.is_empty() {
            return -ESRCH;
        }
        if sig != 0 {
            for v in victims {
                self.send_signal(v, sig);
            }
        }
        0
    }

    /// wait4: a zombie child's pid and status (or, with WUNTRACED / WCONTINUED, a
    /// stop or continue), 0 (WNOHANG), or wait.
    pub(super) fn wait4(
        &mut self,
        pid: u32,
        host: Pid,
        target: i32,
        status: u64,
        options: u64,
        rusage: u64,
    ) -> Ret {
        let my_pgid = self.procs.get(&pid).map_or(0, |p| p.pgid);
        let which = match target {
            t if t > 0 => super::jobctl::Which::Pid(t as u32),
            0 => super::jobctl::Which::Pgid(my_pgid),
            -1 => super::jobctl::Which::Any,
            t => super::jobctl::Which::Pgid(t.unsigned_abs()),
        };
        let mut wanted = options | libc::WEXITED as u64;
        if options & libc::WUNTRACED as u64 != 0 {
            wanted |= libc::WSTOPPED as u64;
        }
        let found = match self.waitable(pid, which, wanted) {
            Err(e) => return Ret::Val(e),
            Ok(found) => found,
        };
        if let Some(w) = found {
            if status != 0
                && self
                    .platform
                    .write_mem(host, status, &w.status.to_ne_bytes())
                    .is_err()
            {
                return Ret::Val(-EFAULT);
            }
            if rusage != 0 {
                let _ = self.platform.write_mem(host, rusage, &[0u8; 144]);
            }
            self.consume(&w, wanted);
            return Ret::Val(w.pid as i64);
        }
        if options & libc::WNOHANG as u64 != 0 {
            return Ret::Val(0);
        }
        Ret::Block(None)
    }

    /// reboot(2): power off and halt stop the kernel with 0, restart reboots it.
    pub(super) fn reboot(&mut self, m: &mut Machine, args: [u64; 6]) -> i64 {
        if args[0] as u32 != 0xfee1_dead {
            return -EINVAL;
        }
        match args[2] as u32 {
            0x4321_fedc => {
                m.log.info("reboot: Power down");
                m.action = Some(Action::Halt(0));
            }
            0xcdef_0123 => {
                m.log.info("reboot: System halted");
                m.action = Some(Action::Halt(0));
            }
            0x0123_4567 => {
                m.log.info("reboot: Restarting system");
                m.action = Some(Action::Reboot);
            }
            0x89ab_cdef => self.cad_reboots = true,
            0 => self.cad_reboots = false,
            _ => return -EINVAL,
        }
        0
    }

    /// The processes as `ps` would list them (SysRq t).
    pub fn listing(&self) -> String {
        let mut out = String::from("  PID  PPID COMMAND\n");
        for p in self.procs.values() {
            let state = match (p.zombie.is_some(), p.stopped) {
                (true, _) => " <defunct>",
                (false, true) => " <stopped>",
                (false, false) => "",
            };
            out.push_str(&format!("{:>5} {:>5} {}{}\n", p.pid, p.ppid, p.comm, state));
        }
        out
    }

    /// Replaces process `pid`'s host process by `new` (execve).
    pub(super) fn replace_host(&mut self, pid: u32, new: Pid) {
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        let old = std::mem::replace(&mut p.host, new);
        p.sent = 0;
        self.drop_threads(pid);
        self.by_host.remove(&old);
        self.by_host.insert(new, pid);
        let _ = self.platform.kill(old);
    }
}

/// The last component of a path, as a 15-byte comm.
pub(super) fn basename(path: &[u8]) -> String {
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    String::from_utf8_lossy(&name[..name.len().min(15)]).into_owned()
}

pub(super) fn argv_os(items: &[Vec<u8>]) -> Vec<std::ffi::OsString> {
    use std::os::unix::ffi::OsStringExt;
    items
        .iter()
        .map(|a| std::ffi::OsString::from_vec(a.clone()))
        .collect()
}
