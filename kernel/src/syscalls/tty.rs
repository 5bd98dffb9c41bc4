//! The guests' ttys: one per console and serial line (by console slot: con0..con7,
//! then ssl0..ssl7), each a [`Ldisc`] with its session and foreground process group.
//! Typed bytes come in raw from the consoles; echo goes out with what guests write;
//! the signal characters go to the foreground group; reads follow canonical mode or
//! VMIN/VTIME and a background reader gets SIGTTIN. Opening /dev/console, /dev/tty,
//! /dev/ttyN and /dev/ttySN, the controlling-tty rules (a session leader without one
//! gets the first free tty it opens; TIOCSCTTY; TIOCNOTTY; hangup when the leader
//! ends) and the tty ioctls live here.
//!
//! Two choices differ from Linux on purpose: console 0 starts as init's controlling
//! tty (session 1, group 1), so `init=/bin/sh` has job control and ^C, but keyboard
//! signals never go to init itself (busybox init would take ^C for Ctrl-Alt-Del);
//! and VT_GETSTATE / TIOCGSERIAL name a console's / serial line's number, which is
//! how busybox `cttyhack` finds the tty to take without sysfs.

use std::time::Instant;

use nix::unistd::Pid;

use super::abi::errno::*;
use super::fdtable::Object;
use super::ldisc::{Ldisc, Read};
use super::sentry::{Ret, Sentry};
use crate::cmdline::MAX_CON;

const VT_GETSTATE: u64 = 0x5603;
const TIOCGSERIAL: u64 = 0x541e;
const TCFLSH: u64 = 0x540b;
const TIOCOUTQ: u64 = 0x5411;
const TCSBRK: u64 = 0x5409;
const TCXONC: u64 = 0x540a;
const TIOCSBRK: u64 = 0x5427;
const TIOCCBRK: u64 = 0x5428;
const TCSBRKP: u64 = 0x5425;
const SIG_IGN: u64 = 1;

/// A guest tty.
#[derive(Debug, Default)]
pub struct Tty {
    pub ld: Ldisc,
    /// The session it is the controlling tty of (0: none).
    pub sid: u32,
    /// Its foreground process group (0: none).
    pub pgrp: u32,
}

/// The console slot of a character device (major, minor): /dev/ttyN is con N,
/// /dev/ttySN ssl N, /dev/console con 0; /dev/tty (5,0) is None (the caller's own).
pub fn slot_of_dev(major: u32, minor: u32) -> Option<Option<usize>> {
    match (major, minor) {
        (5, 0) => Some(None),
        (5, 1) => Some(Some(0)),
        (4, n) if (n as usize) < MAX_CON => Some(Some(n as usize)),
        (4, n) if (64..64 + crate::cmdline::MAX_SSL as u32).contains(&n) => {
            Some(Some(MAX_CON + (n as usize - 64)))
        }
        _ => None,
    }
}

/// The device number a tty's stat shows.
pub fn dev_of_slot(slot: usize) -> (u32, u32) {
    if slot < MAX_CON {
        (4, slot as u32)
    } else {
        (4, 64 + (slot - MAX_CON) as u32)
    }
}

/// The device a tty's /proc/PID/fd link names: /dev/console for console 0 (what init
/// is given), /dev/ttyN and /dev/ttySN for the others.
pub fn path_of_slot(slot: usize) -> String {
    match dev_of_slot(slot) {
        (_, 0) => "/dev/console".into(),
        (_, n) if n < 64 => format!("/dev/tty{n}"),
        (_, n) => format!("/dev/ttyS{}", n - 64),
    }
}

impl Sentry {
    /// The consoles and serial lines there are (their slots); console 0 starts as
    /// init's controlling tty.
    pub fn set_lines(&mut self, slots: &[usize]) {
        for &s in slots {
            self.ttys.entry(s).or_insert_with(|| {
                let mut t = Tty::default();
                if s == 0 {
                    t.sid = 1;
                    t.pgrp = 1;
                }
                t
            });
        }
    }

    /// Queues output for line `slot`.
    pub(super) fn tty_out(&mut self, slot: usize, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match self.out.last_mut() {
            Some((s, buf)) if *s == slot => buf.extend_from_slice(bytes),
            _ => self.out.push((slot, bytes.to_vec())),
        }
    }

    /// Bytes typed on line `slot`: edited and echoed; signal characters signal the
    /// foreground process group (init aside).
    pub fn tty_input(&mut self, m: &mut crate::machine::Machine, slot: usize, bytes: &[u8]) {
        let Some(t) = self.ttys.get_mut(&slot) else {
            return;
        };
        let typed = t.ld.input(bytes);
        let pgrp = t.pgrp;
        self.tty_out(slot, &typed.echo);
        for sig in typed.signals {
            if pgrp != 0 {
                self.signal_group(pgrp, sig, true);
            }
        }
        self.retry_blocked(m);
    }

    /// The terminal of line `slot` went away (a telnet user left): its session leader
    /// and foreground group get SIGHUP and SIGCONT, the tty is free again.
    pub fn tty_hangup(&mut self, m: &mut crate::machine::Machine, slot: usize) {
        let Some(t) = self.ttys.get_mut(&slot) else {
            return;
        };
        t.ld.flush();
        let (sid, pgrp) = (t.sid, t.pgrp);
        t.sid = 0;
        t.pgrp = 0;
        if sid != 0 {
            self.send_signal(sid, libc::SIGHUP);
            self.send_signal(sid, libc::SIGCONT);
        }
        if pgrp != 0 {
            self.signal_group(pgrp, libc::SIGHUP, false);
            self.signal_group(pgrp, libc::SIGCONT, false);
        }
        self.retry_blocked(m);
    }

    /// A session leader ended: its controlling tty's foreground group gets SIGHUP and
    /// SIGCONT and the tty is free for the next session.
    pub(super) fn session_ended(&mut self, sid: u32) {
        let Some((_, t)) = self.ttys.iter_mut().find(|(_, t)| t.sid == sid) else {
            return;
        };
        let pgrp = t.pgrp;
        t.sid = 0;
        t.pgrp = 0;
        if pgrp != 0 {
            self.signal_group(pgrp, libc::SIGHUP, false);
            self.signal_group(pgrp, libc::SIGCONT, false);
        }
    }

    /// Sends `sig` to every live process of group `pgrp` (from the keyboard: not init).
    pub(super) fn signal_group(&mut self, pgrp: u32, sig: i32, keyboard: bool) {
        let group: Vec<u32> = self
            .procs
            .values()
            .filter(|p| p.pgid == pgrp && p.zombie.is_none() && !(keyboard && p.pid == 1))
            .map(|p| p.pid)
            .collect();
        for pid in group {
            self.send_signal(pid, sig);
        }
    }

    /// The controlling tty of process `pid` (its session's), if any.
    pub(super) fn ctty_of(&self, pid: u32) -> Option<usize> {
        let sid = self.procs.get(&pid)?.sid;
        self.ttys
            .iter()
            .find(|(_, t)| t.sid == sid && sid != 0)
            .map(|(&s, _)| s)
    }

    /// An open of tty device (major, minor): the tty's slot, taken as controlling tty
    /// when the opener is a session leader without one and the tty is free.
    pub(super) fn open_tty(
        &mut self,
        pid: u32,
        dev: (u32, u32),
        noctty: bool,
    ) -> Result<usize, i64> {
        let slot = match slot_of_dev(dev.0, dev.1) {
            Some(Some(s)) => s,
            Some(None) => return self.ctty_of(pid).ok_or(-ENXIO),
            None => return Err(-ENXIO),
        };
        if !self.ttys.contains_key(&slot) {
            return Err(-ENODEV);
        }
        let console = dev == (5, 1);
        let leader = self
            .procs
            .get(&pid)
            .filter(|p| p.sid == p.pid)
            .map(|p| (p.sid, p.pgid));
        if let Some((sid, pgid)) = leader {
            if !noctty && !console && self.ctty_of(pid).is_none() {
                if let Some(t) = self.ttys.get_mut(&slot).filter(|t| t.sid == 0) {
                    t.sid = sid;
                    t.pgrp = pgid;
                }
            }
        }
        Ok(slot)
    }

    /// Whether descriptor `fd` of `pid` is a tty (its slot).
    pub(super) fn tty_fd(&self, pid: u32, fd: i64) -> Option<usize> {
        let d = self.desc_of(pid, fd).ok()?;
        let slot = match d.borrow().object {
            Object::Tty(s) => Some(s),
            _ => None,
        };
        slot
    }

    /// A background process changing its controlling tty (termios, foreground group,
    /// flush): unless it ignores or blocks SIGTTOU, its group gets SIGTTOU and the call
    /// waits (it is tried again once the group is continued), as Linux restarts it.
    pub(super) fn tty_background_change(&mut self, pid: u32, fd: i64, req: u64) -> bool {
        let changes = matches!(
            req as libc::c_ulong,
            libc::TCSETS | libc::TCSETSW | libc::TCSETSF | libc::TIOCSPGRP
        ) || req == TCFLSH;
        if !changes {
            return false;
        }
        let Some(slot) = self.tty_fd(pid, fd) else {
            return false;
        };
        let Some(p) = self.procs.get(&pid) else {
            return false;
        };
        let Some(t) = self.ttys.get(&slot) else {
            return false;
        };
        if t.sid == 0 || t.sid != p.sid || t.pgrp == p.pgid {
            return false;
        }
        let bit = super::abi::sigbit(libc::SIGTTOU);
        if p.actions[libc::SIGTTOU as usize - 1].0 == SIG_IGN || p.mask & bit != 0 {
            return false;
        }
        let pgid = p.pgid;
        if self.orphaned_pgrp(pgid) {
            return false;
        }
        self.signal_group(pgid, libc::SIGTTOU, false);
        true
    }

    /// read(2) of a tty: background readers get SIGTTIN (EIO when they ignore or
    /// block it); a line in canonical mode, else by VMIN/VTIME (`retry`: the deadline
    /// of a read that waited).
    pub(super) fn tty_read(
        &mut self,
        pid: u32,
        host: Pid,
        fd: i64,
        buf: u64,
        len: u64,
        retry: Option<Option<Instant>>,
    ) -> Ret {
        let Ok(d) = self.desc_of(pid, fd) else {
            return Ret::Val(-EBADF);
        };
        let (slot, nonblock) = {
            let d = d.borrow();
            let Object::Tty(slot) = d.object else {
                return Ret::Val(-EBADF);
            };
            (slot, d.flags & libc::O_NONBLOCK as u32 != 0)
        };
        if let Some(p) = self.procs.get(&pid) {
            let t = self.ttys.get(&slot);
            if let Some(t) = t.filter(|t| t.sid == p.sid && t.sid != 0 && t.pgrp != p.pgid) {
                let _ = t;
                let bit = super::abi::sigbit(libc::SIGTTIN);
                let ignored = p.actions[libc::SIGTTIN as usize - 1].0 == SIG_IGN;
                let pgid = p.pgid;
                if ignored || p.mask & bit != 0 || self.orphaned_pgrp(pgid) {
                    return Ret::Val(-EIO);
                }
                self.signal_group(pgid, libc::SIGTTIN, false);
                return Ret::Block(None);
            }
        }
        let Some(t) = self.ttys.get_mut(&slot) else {
            return Ret::Val(-EIO);
        };
        let timed_out = matches!(retry, Some(Some(d)) if Instant::now() >= d);
        let max = (len as usize).min(super::file::MAX_IO);
        match t.ld.read(max, timed_out) {
            Read::Data(data) => match self.platform.write_mem(host, buf, &data) {
                Ok(()) => Ret::Val(data.len() as i64),
                Err(_) => Ret::Val(-EFAULT),
            },
            Read::Wait(_) if nonblock => Ret::Val(-EAGAIN),
            Read::Wait(limit) => {
                let deadline = match retry {
                    Some(d) => d,
                    None => limit.map(|l| Instant::now() + l),
                };
                Ret::Block(deadline)
            }
        }
    }

    /// The tty ioctls.
    pub(super) fn tty_ioctl(
        &mut self,
        pid: u32,
        host: Pid,
        slot: usize,
        req: u64,
        arg: u64,
    ) -> i64 {
        let Some(t) = self.ttys.get(&slot) else {
            return -EIO;
        };
        let (sid, pgrp) = (t.sid, t.pgrp);
        let Some((my_sid, my_pgid, leader)) = self
            .procs
            .get(&pid)
            .map(|p| (p.sid, p.pgid, p.sid == p.pid))
        else {
            return -ESRCH;
        };
        let mine = sid != 0 && sid == my_sid;
        let r: Result<(), i64> = match req as libc::c_ulong {
            libc::TCGETS => {
                let termios = t.ld.termios;
                self.put(host, arg, &termios)
            }
            libc::TCSETS | libc::TCSETSW | libc::TCSETSF => self.get(host, arg, 36).map(|new| {
                if let Some(t) = self.ttys.get_mut(&slot) {
                    t.ld.set_termios(&new, req as libc::c_ulong == libc::TCSETSF);
                }
            }),
            libc::TIOCGWINSZ => {
                let w = t.ld.winsize;
                self.put(host, arg, &w)
            }
            libc::TIOCSWINSZ => self.get(host, arg, 8).map(|w| {
                if let Some(t) = self.ttys.get_mut(&slot) {
                    let changed = t.ld.winsize[..] != w[..];
                    t.ld.winsize.copy_from_slice(&w);
                    if changed && t.pgrp != 0 {
                        let g = t.pgrp;
                        self.signal_group(g, libc::SIGWINCH, false);
                    }
                }
            }),
            libc::TIOCGPGRP if !mine => Err(-ENOTTY),
            libc::TIOCGPGRP => self.put(host, arg, &(pgrp as i32).to_ne_bytes()),
            libc::TIOCSPGRP if !mine => Err(-ENOTTY),
            libc::TIOCSPGRP => self.get(host, arg, 4).and_then(|b| {
                let g = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
                if g <= 0 {
                    return Err(-EINVAL);
                }
                let g = g as u32;
                if !self.procs.values().any(|p| p.pgid == g && p.sid == my_sid) {
                    return Err(-EPERM);
                }
                if let Some(t) = self.ttys.get_mut(&slot) {
                    t.pgrp = g;
                }
                Ok(())
            }),
            libc::TIOCGSID if !mine => Err(-ENOTTY),
            libc::TIOCGSID => self.put(host, arg, &(sid as i32).to_ne_bytes()),
            libc::TIOCSCTTY => {
                if mine {
                    Ok(())
                } else if !leader || self.ctty_of(pid).is_some() || (sid != 0 && arg != 1) {
                    // Only a session leader without one takes a tty; another
                    // session's only by force (arg 1, guest root).
                    Err(-EPERM)
                } else {
                    if let Some(t) = self.ttys.get_mut(&slot) {
                        t.sid = my_sid;
                        t.pgrp = my_pgid;
                    }
                    Ok(())
                }
            }
            libc::TIOCNOTTY if !mine => Err(-ENOTTY),
            libc::TIOCNOTTY => {
                if leader {
                    self.session_ended(my_sid);
                }
                Ok(())
            }
            _ => match req {
                VT_GETSTATE if slot < MAX_CON => {
                    let mut st = [0u8; 6];
                    st[..2].copy_from_slice(&(slot as u16).to_ne_bytes());
                    self.put(host, arg, &st)
                }
                TIOCGSERIAL if slot >= MAX_CON => {
                    let mut sr = [0u8; 72];
                    sr[4..8].copy_from_slice(&((slot - MAX_CON) as i32).to_ne_bytes());
                    self.put(host, arg, &sr)
                }
                TCFLSH => {
                    if let Some(t) = self.ttys.get_mut(&slot) {
                        if arg != 1 {
                            t.ld.flush();
                        }
                    }
                    Ok(())
                }
                TIOCOUTQ => self.put(host, arg, &0i32.to_ne_bytes()),
                TCSBRK | TCSBRKP | TCXONC | TIOCSBRK | TIOCCBRK => Ok(()),
                _ => Err(-ENOTTY),
            },
        };
        r.map_or_else(|e| e, |()| 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_name_console_slots() {
        assert_eq!(slot_of_dev(5, 0), Some(None));
        assert_eq!(slot_of_dev(5, 1), Some(Some(0)));
        assert_eq!(slot_of_dev(4, 0), Some(Some(0)));
        assert_eq!(slot_of_dev(4, 3), Some(Some(3)));
        assert_eq!(slot_of_dev(4, 64), Some(Some(MAX_CON)));
        assert_eq!(slot_of_dev(4, 65), Some(Some(MAX_CON + 1)));
        assert_eq!(slot_of_dev(4, 63), None);
        assert_eq!(slot_of_dev(1, 3), None);
        for slot in [0, 1, MAX_CON, MAX_CON + 2] {
            let (major, minor) = dev_of_slot(slot);
            assert_eq!(slot_of_dev(major, minor), Some(Some(slot)));
        }
    }
}
