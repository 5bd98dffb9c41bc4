//! A demonstration sentry over the platform, for its tests and benchmark (not the real
//! sentry): it serves write/writev to descriptors 1 and 2 into a buffer, exit and
//! exit_group, getpid (every guest is pid 1), uname, lets fork, vfork and clone (with
//! safe flags) through, and answers ENOSYS to everything else (clone3 too, so libc falls
//! back to clone). It records every syscall that reached it.

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::{filter, Error, Event, Platform, Syscall};

/// The release uname reports.
pub const RELEASE: &str = "6.1.0-uml-kernel";

/// How the guest ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    Killed(Signal),
}

/// The most a single write may copy (the rest is a short write, as Linux allows).
const MAX_WRITE: usize = 1 << 20;

#[derive(Default)]
pub struct DemoSentry {
    /// What the guest wrote to descriptors 1 and 2.
    pub output: Vec<u8>,
    /// Every syscall the sentry was asked, in order.
    pub trapped: Vec<Syscall>,
}

impl DemoSentry {
    /// Serves the guest until it and every child it forked are gone; returns how the
    /// guest ended.
    pub fn run(&mut self, platform: &mut Platform, pid: Pid) -> Result<Outcome, Error> {
        let mut outcome = None;
        loop {
            if let (Some(o), 0) = (outcome, platform.guests().count()) {
                return Ok(o);
            }
            let event = platform.wait()?;
            if let Some(o) = self.serve(platform, pid, event)? {
                outcome = Some(o);
            }
        }
    }

    /// Handles one event; the outcome when `pid` ended.
    pub fn serve(
        &mut self,
        platform: &mut Platform,
        pid: Pid,
        event: Event,
    ) -> Result<Option<Outcome>, Error> {
        match event {
            Event::Syscall { pid: at, call } => {
                self.trapped.push(call);
                self.syscall(platform, at, call)?;
                Ok(None)
            }
            Event::Forked { .. } => Ok(None),
            Event::ForkReturned { pid: at, ret } => {
                platform.reply(at, ret)?;
                Ok(None)
            }
            Event::Signal { pid: at, signal } => {
                platform.resume(at, Some(signal))?;
                Ok(None)
            }
            Event::Exited { pid: at, code } if at == pid => Ok(Some(Outcome::Exited(code))),
            Event::Killed { pid: at, signal } if at == pid => Ok(Some(Outcome::Killed(signal))),
            Event::Exited { .. } | Event::Killed { .. } => Ok(None),
        }
    }

    fn syscall(&mut self, platform: &mut Platform, pid: Pid, call: Syscall) -> Result<(), Error> {
        let [a0, a1, a2, ..] = call.args;
        let ret = match call.nr {
            libc::SYS_exit
            | libc::SYS_exit_group
            | libc::SYS_fork
            | libc::SYS_vfork
            | libc::SYS_set_tid_address => return platform.pass(pid),
            libc::SYS_clone if filter::clone_is_host_safe(a0) => return platform.pass(pid),
            libc::SYS_clone => -(libc::EPERM as i64),
            libc::SYS_getpid => 1,
            libc::SYS_write if a0 == 1 || a0 == 2 => self.write(platform, pid, a1, a2),
            libc::SYS_writev if a0 == 1 || a0 == 2 => self.writev(platform, pid, a1, a2),
            libc::SYS_write | libc::SYS_writev => -(libc::EBADF as i64),
            libc::SYS_uname => uname(platform, pid, a0),
            _ => -(libc::ENOSYS as i64),
        };
        platform.reply(pid, ret)
    }

    fn write(&mut self, platform: &Platform, pid: Pid, buf: u64, len: u64) -> i64 {
        let len = (len as usize).min(MAX_WRITE);
        let mut data = vec![0u8; len];
        match platform.read_mem(pid, buf, &mut data) {
            Ok(()) => {
                self.output.extend_from_slice(&data);
                len as i64
            }
            Err(_) => -(libc::EFAULT as i64),
        }
    }

    fn writev(&mut self, platform: &Platform, pid: Pid, iov: u64, count: u64) -> i64 {
        if count > 1024 {
            return -(libc::EINVAL as i64);
        }
        let mut raw = vec![0u8; count as usize * 16];
        if platform.read_mem(pid, iov, &mut raw).is_err() {
            return -(libc::EFAULT as i64);
        }
        let mut total = 0i64;
        for entry in raw.chunks_exact(16) {
            let base = u64::from_ne_bytes(entry[..8].try_into().unwrap_or_default());
            let len = u64::from_ne_bytes(entry[8..].try_into().unwrap_or_default());
            let n = self.write(platform, pid, base, len);
            if n < 0 {
                return if total > 0 { total } else { n };
            }
            total += n;
        }
        total
    }
}

/// Fills the guest's `struct utsname` (six 65-byte fields).
fn uname(platform: &Platform, pid: Pid, addr: u64) -> i64 {
    let fields = ["Linux", "(none)", RELEASE, "#1", "x86_64", "(none)"];
    let mut buf = [0u8; 6 * 65];
    for (slot, value) in buf.chunks_exact_mut(65).zip(fields) {
        slot[..value.len()].copy_from_slice(value.as_bytes());
    }
    match platform.write_mem(pid, addr, &buf) {
        Ok(()) => 0,
        Err(_) => -(libc::EFAULT as i64),
    }
}
