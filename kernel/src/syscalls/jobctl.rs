//! Job control: stopping and continuing guest processes, and what wait4/waitid tell
//! parents about it. A stop is the sentry's own state: a stopped process is not
//! resumed — a call it waits in stays waiting, a syscall it makes waits, and a process
//! running on the host gets a host SIGSTOP whose signal-delivery stop is held (never
//! a host group stop). SIGCONT lets it go on. Parents hear of both (SIGCHLD unless
//! SA_NOCLDSTOP, wait statuses with WUNTRACED / WCONTINUED).

use nix::unistd::Pid;

use super::abi::errno::*;
use super::sentry::Sentry;

const SIG_IGN: u64 = 1;
const SA_NOCLDSTOP: u64 = 1;
/// waitid: leave the child waitable.
const WNOWAIT: u64 = 0x0100_0000;
const CLD_EXITED: i32 = 1;
const CLD_KILLED: i32 = 2;
const CLD_STOPPED: i32 = 5;
const CLD_CONTINUED: i32 = 6;

/// Which children a wait is for.
#[derive(Debug, Clone, Copy)]
pub enum Which {
    Any,
    Pid(u32),
    Pgid(u32),
}

/// A child a wait found.
#[derive(Debug)]
pub struct Waited {
    pub pid: u32,
    /// The wait status (as wait4 writes it).
    pub status: i32,
    /// It ended (a zombie to reap), rather than stopped or continued.
    pub ended: bool,
}

impl Sentry {
    /// Stops `pid` by job control signal `sig`.
    pub(super) fn stop(&mut self, pid: u32, sig: i32) {
        let waiting = self.blocked.iter().any(|b| b.pid == pid);
        let Some(p) = self.procs.get_mut(&pid).filter(|p| p.zombie.is_none()) else {
            return;
        };
        if p.stopped {
            return;
        }
        p.stopped = true;
        p.report = Some((sig << 8) | 0x7f);
        let (host, ppid) = (p.host, p.ppid);
        if !waiting {
            let _ = nix::sys::signal::kill(host, nix::sys::signal::Signal::SIGSTOP);
        }
        self.tell_parent(ppid);
    }

    /// SIGCONT: `pid` goes on (a held signal stop resumes; a waiting call is tried
    /// again, or ends with EINTR if a signal came meanwhile).
    pub(super) fn cont(&mut self, pid: u32) {
        let Some(p) = self.procs.get_mut(&pid).filter(|p| p.zombie.is_none()) else {
            return;
        };
        if !p.stopped {
            return;
        }
        p.stopped = false;
        p.report = Some(0xffff);
        let (host, ppid, pending) = (p.host, p.ppid, p.sent & !p.mask);
        if let Some(deliver) = p.held.take() {
            let _ = self.platform.resume(host, deliver);
        }
        self.resume_held_threads(pid);
        if pending != 0 {
            let sig = pending.trailing_zeros() as usize + 1;
            let (handler, flags) = self.procs.get(&pid).map_or((0, 0), |p| p.actions[sig - 1]);
            self.interrupt_blocked(pid, handler, flags);
        }
        self.tell_parent(ppid);
    }

    /// Whether process group `pgid` is orphaned: no member has a parent in another
    /// group of the same session.
    pub(super) fn orphaned_pgrp(&self, pgid: u32) -> bool {
        !self
            .procs
            .values()
            .filter(|p| p.pgid == pgid && p.zombie.is_none())
            .any(|p| {
                self.procs
                    .get(&p.ppid)
                    .is_some_and(|q| q.pgid != pgid && q.sid == p.sid)
            })
    }

    /// SIGCHLD to `ppid` for a child's stop or continue, unless it asked not to.
    fn tell_parent(&mut self, ppid: u32) {
        let Some(parent) = self.procs.get(&ppid) else {
            return;
        };
        let (handler, flags) = parent.actions[libc::SIGCHLD as usize - 1];
        if handler > SIG_IGN && flags & SA_NOCLDSTOP == 0 {
            self.send_signal(ppid, libc::SIGCHLD);
        }
    }

    /// The first child of `pid` in `which` with something `options` (WEXITED,
    /// WSTOPPED, WCONTINUED) asks for; ECHILD when `which` holds no child.
    pub(super) fn waitable(
        &self,
        pid: u32,
        which: Which,
        options: u64,
    ) -> Result<Option<Waited>, i64> {
        let mut any = false;
        for c in self.procs.values().filter(|c| c.ppid == pid) {
            let ok = match which {
                Which::Any => true,
                Which::Pid(p) => c.pid == p,
                Which::Pgid(g) => c.pgid == g,
            };
            if !ok {
                continue;
            }
            any = true;
            if let Some(st) = c.zombie {
                if options & libc::WEXITED as u64 != 0 {
                    return Ok(Some(Waited {
                        pid: c.pid,
                        status: st,
                        ended: true,
                    }));
                }
                continue;
            }
            let Some(r) = c.report else { continue };
            let want = match r {
                0xffff => libc::WCONTINUED as u64,
                _ => libc::WSTOPPED as u64,
            };
            if options & want != 0 {
                return Ok(Some(Waited {
                    pid: c.pid,
                    status: r,
                    ended: false,
                }));
            }
        }
        if any {
            Ok(None)
        } else {
            Err(-ECHILD)
        }
    }

    /// A wait took `w`: a zombie is reaped, a report is used up (unless WNOWAIT).
    pub(super) fn consume(&mut self, w: &Waited, options: u64) {
        if options & WNOWAIT != 0 {
            return;
        }
        if w.ended {
            self.procs.remove(&w.pid);
        } else if let Some(c) = self.procs.get_mut(&w.pid) {
            c.report = None;
        }
    }

    /// waitid(2): P_ALL, P_PID, P_PGID with WEXITED, WSTOPPED, WCONTINUED, WNOHANG,
    /// WNOWAIT; the child's siginfo.
    pub(super) fn waitid(&mut self, pid: u32, host: Pid, a: [u64; 6]) -> super::sentry::Ret {
        use super::sentry::Ret;
        let which = match a[0] {
            0 => Which::Any,
            1 => Which::Pid(a[1] as u32),
            2 if a[1] == 0 => Which::Pgid(self.procs.get(&pid).map_or(0, |p| p.pgid)),
            2 => Which::Pgid(a[1] as u32),
            _ => return Ret::Val(-EINVAL),
        };
        let options = a[3];
        let kinds = (libc::WEXITED | libc::WSTOPPED | libc::WCONTINUED) as u64;
        if options & kinds == 0 {
            return Ret::Val(-EINVAL);
        }
        let found = match self.waitable(pid, which, options) {
            Err(e) => return Ret::Val(e),
            Ok(f) => f,
        };
        let Some(w) = found else {
            if options & libc::WNOHANG as u64 != 0 {
                if a[2] != 0 && self.platform.write_mem(host, a[2], &[0u8; 128]).is_err() {
                    return Ret::Val(-EFAULT);
                }
                return Ret::Val(0);
            }
            return Ret::Block(None);
        };
        let (code, value) = match w.status {
            0xffff => (CLD_CONTINUED, libc::SIGCONT),
            s if s & 0xff == 0x7f => (CLD_STOPPED, (s >> 8) & 0xff),
            s if s & 0x7f == 0 => (CLD_EXITED, (s >> 8) & 0xff),
            s => (CLD_KILLED, s & 0x7f),
        };
        let mut info = [0u8; 128];
        info[0..4].copy_from_slice(&libc::SIGCHLD.to_ne_bytes());
        info[8..12].copy_from_slice(&code.to_ne_bytes());
        info[16..20].copy_from_slice(&(w.pid as i32).to_ne_bytes());
        info[24..28].copy_from_slice(&value.to_ne_bytes());
        if a[2] != 0 && self.platform.write_mem(host, a[2], &info).is_err() {
            return Ret::Val(-EFAULT);
        }
        if a[4] != 0 {
            let _ = self.platform.write_mem(host, a[4], &[0u8; 144]);
        }
        self.consume(&w, options);
        Ret::Val(0)
    }
}
