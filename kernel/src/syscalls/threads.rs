//! Guest threads, the gVisor/ptrace way: a clone with CLONE_THREAD runs on the host (the
//! host makes the thread in the caller's host thread group, traced from its first
//! instruction through PTRACE_O_TRACECLONE), and the sentry gives it a guest tid in the
//! caller's thread group. The group's shared state (descriptors, cwd, umask, signal
//! actions, children, pgid, wait status) stays the group's [`Proc`](super::sentry::Proc),
//! found from any thread's host pid through `by_host`; what is each thread's own (its
//! host thread, guest tid, signal mask and the signals sent to it) is a [`Thread`].
//! The group leader's thread state stays in its `Proc`.
//!
//! Memory is shared on the host, so futex, set_robust_list and CLONE_CHILD_CLEARTID run
//! there; the tids the host writes (CLONE_PARENT_SETTID, CLONE_CHILD_SETTID) and returns
//! (set_tid_address) are replaced by guest tids. exit ends one thread, exit_group all
//! (both run on the host); the group's wait status comes when its leader's host
//! process ends, which the host reports only after every other thread is gone.

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::abi::{self, errno::*};
use super::sentry::{Sentry, SIG_IGN};

/// A guest thread other than its group's leader.
pub struct Thread {
    /// Its thread group (the guest pid of the group's leader).
    pub tgid: u32,
    /// The host thread running it.
    pub host: Pid,
    /// Its blocked signals (bit signal - 1).
    pub mask: u64,
    /// Signals the sentry sent to this thread that the host has not delivered yet.
    pub sent: u64,
    /// Held in a signal-delivery stop while its group is stopped: the signal to resume
    /// it with.
    pub held: Option<Option<Signal>>,
}

/// A clone the host is performing: what the guest asked for.
#[derive(Debug, Clone, Copy)]
pub struct PendingClone {
    pub flags: u64,
    pub ptid: u64,
    pub ctid: u64,
}

/// The flags a guest thread must share with its creator: a thread with its own
/// descriptor table or fs is not modelled.
pub const THREAD_SHARES: u64 =
    (libc::CLONE_VM | libc::CLONE_SIGHAND | libc::CLONE_FILES | libc::CLONE_FS) as u64;

impl Sentry {
    /// The guest tid of host thread `host` of group `pid`.
    pub(super) fn tid_of(&self, pid: u32, host: Pid) -> u32 {
        self.tids.get(&host).copied().unwrap_or(pid)
    }

    /// The signal mask of the calling thread.
    pub(super) fn mask_mut(&mut self, pid: u32, host: Pid) -> Option<&mut u64> {
        match self.tids.get(&host) {
            Some(tid) => self.threads.get_mut(tid).map(|t| &mut t.mask),
            None => self.procs.get_mut(&pid).map(|p| &mut p.mask),
        }
    }

    /// The number of live threads of group `pid` (its leader counted).
    pub(super) fn thread_count(&self, pid: u32) -> usize {
        1 + self.threads.values().filter(|t| t.tgid == pid).count()
    }

    /// The guest tids of group `pid`, leader first.
    pub(super) fn tids_of(&self, pid: u32) -> Vec<u32> {
        let mut v = vec![pid];
        v.extend(
            self.threads
                .iter()
                .filter(|(_, t)| t.tgid == pid)
                .map(|(&tid, _)| tid),
        );
        v
    }

    /// The host made thread `child` for `parent` (a clone with CLONE_THREAD): it gets
    /// a guest tid in the parent's group and the parent's signal mask.
    pub(super) fn thread_created(&mut self, parent: Pid, child: Pid, clone: PendingClone) {
        let Some(&tgid) = self.by_host.get(&parent) else {
            let _ = self.platform.kill(child);
            return;
        };
        let mask = self.mask_mut(tgid, parent).map_or(0, |m| *m);
        let tid = self.alloc_pid();
        self.threads.insert(
            tid,
            Thread {
                tgid,
                host: child,
                mask,
                sent: 0,
                held: None,
            },
        );
        self.tids.insert(child, tid);
        self.by_host.insert(child, tgid);
        self.clone_child.insert(parent, tid);
        self.write_tids(parent, child, clone, tid);
    }

    /// CLONE_PARENT_SETTID and CLONE_CHILD_SETTID: the host wrote its own tid; the
    /// guest reads its guest tid there.
    pub(super) fn write_tids(&mut self, parent: Pid, child: Pid, clone: PendingClone, tid: u32) {
        let bytes = (tid as i32).to_ne_bytes();
        if clone.flags & libc::CLONE_PARENT_SETTID as u64 != 0 {
            let _ = self.platform.write_mem(parent, clone.ptid, &bytes);
        }
        if clone.flags & libc::CLONE_CHILD_SETTID as u64 != 0 {
            let _ = self.platform.write_mem(child, clone.ctid, &bytes);
        }
    }

    /// A thread's host thread ended: the thread is gone (no zombie, no SIGCHLD).
    /// False when `host` is not a non-leader thread.
    pub(super) fn thread_exited(&mut self, host: Pid) -> bool {
        let Some(tid) = self.tids.remove(&host) else {
            return false;
        };
        self.threads.remove(&tid);
        self.by_host.remove(&host);
        self.blocked.retain(|b| b.host != host);
        self.clone_child.remove(&host);
        self.clones.remove(&host);
        self.settid.remove(&host);
        true
    }

    /// Forgets every non-leader thread of group `pid` (its host threads were killed:
    /// execve).
    pub(super) fn drop_threads(&mut self, pid: u32) {
        let hosts: Vec<Pid> = self
            .threads
            .values()
            .filter(|t| t.tgid == pid)
            .map(|t| t.host)
            .collect();
        for h in hosts {
            self.thread_exited(h);
        }
    }

    /// set_tid_address runs on the host (the tid is cleared there at exit); it returns
    /// the caller's guest tid, written back at the call's exit stop.
    pub(super) fn set_tid_address(&mut self, host: Pid) -> super::sentry::Ret {
        if self.platform.pass_to_exit(host).is_ok() {
            self.settid.insert(host);
            return super::sentry::Ret::Resumed;
        }
        let _ = self.platform.pass(host);
        super::sentry::Ret::Resumed
    }

    /// tkill and tgkill: `sig` to guest thread `tid` (of group `tgid` if given).
    pub(super) fn tkill(&mut self, tgid: Option<i32>, tid: i32, sig: i32) -> i64 {
        if !(0..=64).contains(&sig) || tid <= 0 || tgid.is_some_and(|g| g <= 0) {
            return -EINVAL;
        }
        let tid = tid as u32;
        let (group, host) = match self.threads.get(&tid) {
            Some(t) => (t.tgid, Some(t.host)),
            None => match self.procs.get(&tid).filter(|p| p.zombie.is_none()) {
                Some(p) => (p.pid, (self.thread_count(p.pid) > 1).then_some(p.host)),
                None => return -ESRCH,
            },
        };
        if tgid.is_some_and(|g| g as u32 != group) {
            return -ESRCH;
        }
        if sig == 0 {
            return 0;
        }
        match host {
            Some(h) => self.signal_thread(group, h, sig),
            None => self.send_signal(group, sig),
        }
        0
    }

    /// Sends `sig` to host thread `host` of group `pid` (a thread-directed signal; stops,
    /// SIGCONT and SIGKILL act on the whole group as in Linux).
    pub(super) fn signal_thread(&mut self, pid: u32, host: Pid, sig: i32) {
        let Ok(signal) = Signal::try_from(sig) else {
            return;
        };
        let group_wide = matches!(
            signal,
            Signal::SIGKILL
                | Signal::SIGSTOP
                | Signal::SIGTSTP
                | Signal::SIGTTIN
                | Signal::SIGTTOU
                | Signal::SIGCONT
        );
        if group_wide {
            self.send_signal(pid, sig);
            return;
        }
        let Some(p) = self.procs.get(&pid).filter(|p| p.zombie.is_none()) else {
            return;
        };
        let (handler, flags) = p.actions[sig as usize - 1];
        let (host_tgid, stopped) = (p.host, p.stopped);
        let bit = abi::sigbit(sig);
        let masked = self.mask_mut(pid, host).is_some_and(|m| *m & bit != 0);
        let init_default = pid == 1 && handler == 0;
        let dropped =
            handler == SIG_IGN || init_default || (handler == 0 && abi::ignored_by_default(sig));
        if dropped && !masked {
            return;
        }
        match self.tids.get(&host).and_then(|t| self.threads.get_mut(t)) {
            Some(t) => t.sent |= bit,
            None => {
                if let Some(p) = self.procs.get_mut(&pid) {
                    p.sent |= bit;
                }
            }
        }
        // SAFETY: tgkill takes plain integers.
        let r = unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                host_tgid.as_raw(),
                host.as_raw(),
                sig as libc::c_int,
            )
        };
        if r != 0 || masked || stopped {
            return;
        }
        self.interrupt_host(host, handler, flags);
    }

    /// SIGCONT: the threads of group `pid` held in a signal-delivery stop go on.
    pub(super) fn resume_held_threads(&mut self, pid: u32) {
        let held: Vec<(Pid, Option<Signal>)> = self
            .threads
            .values_mut()
            .filter(|t| t.tgid == pid)
            .filter_map(|t| t.held.take().map(|d| (t.host, d)))
            .collect();
        for (host, deliver) in held {
            let _ = self.platform.resume(host, deliver);
        }
    }

    /// For a signal to group `pid` whose leader blocks it: the host thread of another
    /// thread that does not (stops, SIGCONT and SIGKILL excepted: they act on the group).
    pub(super) fn thread_for_group_signal(&self, pid: u32, sig: i32) -> Option<Pid> {
        let group_wide = matches!(
            sig,
            libc::SIGKILL
                | libc::SIGSTOP
                | libc::SIGTSTP
                | libc::SIGTTIN
                | libc::SIGTTOU
                | libc::SIGCONT
        );
        let bit = abi::sigbit(sig);
        let leader = self.procs.get(&pid)?;
        if group_wide || leader.mask & bit == 0 {
            return None;
        }
        self.threads
            .values()
            .find(|t| t.tgid == pid && t.mask & bit == 0)
            .map(|t| t.host)
    }

    /// A signal-delivery stop of host thread `host`: whether the sentry sent this signal
    /// to that very thread (the bit is consumed).
    pub(super) fn thread_sent(&mut self, host: Pid, bit: u64) -> bool {
        match self.tids.get(&host).and_then(|t| self.threads.get_mut(t)) {
            Some(t) if t.sent & bit != 0 => {
                t.sent &= !bit;
                true
            }
            _ => false,
        }
    }
}
