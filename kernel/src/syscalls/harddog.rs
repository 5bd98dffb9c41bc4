//! /dev/watchdog (character device 10:130) for guest programs, as linux.uml's harddog
//! driver does it: the open runs the host helper `uml_watchdog` (`-mconsole SOCKET` when
//! the kernel was given `mconsole=notify:SOCKET`, else `-pid KERNEL-PID`) with a pipe on
//! its stdin and another on its stdout, where it acknowledges its start; each write (and
//! WDIOC_KEEPALIVE) sends it one byte; the last close of the descriptor closes the pipe,
//! which stops it. When the pings stop for its period the helper acts on the kernel:
//! SIGINT (uml-kernel shuts down, logging the signal) or a hang notification on the
//! notify socket. One opener at a time (EBUSY), as harddog. Nothing here waits: the ack
//! is left in its pipe, pings are non-blocking writes, and the helper is reaped by a
//! thread after the close.
//!
//! The helper is `$UML_WATCHDOG` when set, else `uml_watchdog` from PATH (linux.uml runs
//! it by name through PATH too).

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

/// The watchdog's device number (misc major 10, WATCHDOG_MINOR).
pub const RDEV: (u32, u32) = (10, 130);

/// WDIOC_GETSUPPORT: `struct watchdog_info` (options, firmware version, identity[32]).
pub const WDIOC_GETSUPPORT: u32 = 0x8028_5700;
/// WDIOC_GETSTATUS and WDIOC_GETBOOTSTATUS: an int, 0 here.
pub const WDIOC_GETSTATUS: u32 = 0x8004_5701;
pub const WDIOC_GETBOOTSTATUS: u32 = 0x8004_5702;
/// WDIOC_KEEPALIVE: a ping.
pub const WDIOC_KEEPALIVE: u32 = 0x8004_5705;

/// The errnos its failures give the guest (kept here, next to their only use).
pub const EIO: i64 = 5;
pub const EBUSY: i64 = 16;

/// The identity WDIOC_GETSUPPORT reports (harddog's).
pub const IDENTITY: &[u8] = b"UML Hardware Watchdog";

/// Set while a descriptor of /dev/watchdog is open in this kernel.
static IN_USE: AtomicBool = AtomicBool::new(false);

/// Why /dev/watchdog could not be opened or pinged.
#[derive(Debug)]
pub enum Error {
    /// Another descriptor has it open.
    Busy,
    /// The helper could not be started.
    Spawn(OsString, io::Error),
    /// The helper is gone (a ping found its pipe closed).
    Gone(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Busy => write!(f, "/dev/watchdog is open already"),
            Error::Spawn(prog, e) => {
                write!(f, "cannot run {}: {e}", Path::new(prog).display())
            }
            Error::Gone(e) => write!(f, "uml_watchdog is gone: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// The program to run: `$UML_WATCHDOG` or `uml_watchdog` (looked up in PATH).
pub fn helper_path(env: Option<OsString>) -> OsString {
    env.filter(|v| !v.is_empty())
        .unwrap_or_else(|| OsString::from("uml_watchdog"))
}

/// An open /dev/watchdog: the running helper and its ping pipe.
#[derive(Debug)]
pub struct Harddog {
    child: Option<Child>,
    pings: Option<ChildStdin>,
    /// The helper's stdout (its start acknowledgement lands here, unread).
    _ack: Option<ChildStdout>,
}

impl Harddog {
    /// Starts the helper for a kernel whose notify socket is `notify` (else the kernel's
    /// own pid is watched).
    pub fn open(notify: Option<&Path>) -> Result<Harddog, Error> {
        if IN_USE.swap(true, Ordering::SeqCst) {
            return Err(Error::Busy);
        }
        let prog = helper_path(std::env::var_os("UML_WATCHDOG"));
        let mut cmd = Command::new(&prog);
        match notify {
            Some(sock) => cmd.arg("-mconsole").arg(sock),
            None => cmd.arg("-pid").arg(std::process::id().to_string()),
        };
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| {
                IN_USE.store(false, Ordering::SeqCst);
                Error::Spawn(prog, e)
            })?;
        let mut dog = Harddog {
            child: Some(child),
            pings: None,
            _ack: None,
        };
        if let Some(c) = dog.child.as_mut() {
            dog.pings = c.stdin.take();
            dog._ack = c.stdout.take();
        }
        if let Some(p) = &dog.pings {
            set_nonblocking(p);
        }
        Ok(dog)
    }

    /// One ping. A full pipe (a helper that stopped reading) is not an error: the
    /// helper acts on its own clock.
    pub fn ping(&mut self) -> Result<(), Error> {
        let Some(p) = self.pings.as_mut() else {
            return Err(Error::Gone(io::ErrorKind::BrokenPipe.into()));
        };
        match p.write(b"\n") {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(Error::Gone(e)),
        }
    }
}

impl Drop for Harddog {
    fn drop(&mut self) {
        // EOF on its stdin: the helper exits without acting.
        self.pings = None;
        if let Some(mut child) = self.child.take() {
            if !matches!(child.try_wait(), Ok(Some(_))) {
                // It exits at the EOF; reaped off the loop.
                let _ = std::thread::Builder::new()
                    .name("harddog-reap".into())
                    .spawn(move || child.wait());
            }
        }
        IN_USE.store(false, Ordering::SeqCst);
    }
}

fn set_nonblocking(fd: &ChildStdin) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) {
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        let _ = fcntl(fd, FcntlArg::F_SETFL(flags));
    }
}

/// `struct watchdog_info` for WDIOC_GETSUPPORT: no options, version 0, the identity.
pub fn info() -> [u8; 40] {
    let mut b = [0u8; 40];
    b[8..8 + IDENTITY.len()].copy_from_slice(IDENTITY);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helper_is_the_env_override_or_uml_watchdog() {
        assert_eq!(helper_path(None), "uml_watchdog");
        assert_eq!(helper_path(Some("".into())), "uml_watchdog");
        assert_eq!(helper_path(Some("/x/dog".into())), "/x/dog");
    }

    #[test]
    fn the_info_names_harddog() {
        let i = info();
        assert_eq!(&i[8..8 + IDENTITY.len()], IDENTITY);
        assert_eq!(&i[..8], &[0; 8]);
    }
}
