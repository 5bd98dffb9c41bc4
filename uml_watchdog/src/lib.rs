//! uml_watchdog's logic: acknowledge the start, wait for pings on the pipe from
//! linux.uml's harddog driver, and act on the UML when they stop for the timeout.
//!
//! The protocol (harddog_user.c and the C tool): the kernel starts the helper with the
//! pipe on stdin and its own reading end on stdout and stderr, reads one byte (any)
//! as the start acknowledgement, then writes one byte per ping. It never sets the
//! timeout: the helper's 60 s is the watchdog's period.

pub mod cli;
mod sys;

use std::fmt;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use uml_proto::mconsole::{Notification, NotifyKind};

/// The C tool's period: 60 s without a ping.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a -pid UML gets after each SIGINT before the next step (as the C tool).
pub const GRACE: Duration = Duration::from_secs(1);

/// Why the watchdog could not do its job; each names what failed.
#[derive(Debug)]
pub enum Error {
    /// -pid names no process we may signal.
    Process(i32, io::Error),
    /// The start acknowledgement could not be written.
    Ack(io::Error),
    /// Reading the ping pipe failed.
    Read(io::Error),
    /// A signal could not be sent.
    Signal(i32, io::Error),
    /// The hang notification could not be sent.
    Notify(PathBuf, io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Process(pid, e) if e.raw_os_error() == Some(libc::ESRCH) => {
                write!(f, "-pid {pid}: no such process")
            }
            Error::Process(pid, e) => write!(f, "-pid {pid}: {e}"),
            Error::Ack(e) => write!(f, "cannot acknowledge the start on stdout: {e}"),
            Error::Read(e) => write!(f, "cannot read pings from stdin: {e}"),
            Error::Signal(pid, e) => write!(f, "cannot signal pid {pid}: {e}"),
            Error::Notify(path, e) => write!(
                f,
                "{}: cannot send the hang notification: {e}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {}

/// The UML process, held by a pidfd (a recycled pid is never hit).
pub struct Process {
    pid: i32,
    fd: OwnedFd,
}

impl Process {
    /// Opens `pid` and checks that we may signal it (the C tool's `kill(pid, 0)`).
    pub fn open(pid: i32) -> Result<Process, Error> {
        if pid <= 0 {
            return Err(Error::Process(
                pid,
                io::Error::from_raw_os_error(libc::ESRCH),
            ));
        }
        let fd = sys::pidfd_open(pid).map_err(|e| Error::Process(pid, e))?;
        sys::pidfd_send_signal(fd.as_fd(), 0).map_err(|e| Error::Process(pid, e))?;
        Ok(Process { pid, fd })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Waits at most `limit` for the process to exit; true if it did.
    pub fn wait_exit(&self, limit: Duration) -> bool {
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        let start = Instant::now();
        loop {
            let left = limit.saturating_sub(start.elapsed());
            match poll(&mut fds, timeout_ms(left)) {
                Ok(0) => return false,
                Ok(_) => return true,
                Err(Errno::EINTR) => continue,
                Err(_) => return false,
            }
        }
    }

    fn signal(&self, sig: i32) -> Result<bool, Error> {
        match sys::pidfd_send_signal(self.fd.as_fd(), sig) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
            Err(e) => Err(Error::Signal(self.pid, e)),
        }
    }
}

/// What the watchdog acts on.
pub enum Target {
    Pid(Process),
    Mconsole(PathBuf),
}

/// How the watch ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Watch {
    /// EOF on the pipe: the guest closed /dev/watchdog or the UML is gone.
    Closed,
    /// No ping within the timeout.
    Expired,
}

/// What firing did.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// The process exited after `sigints` SIGINTs (1 or 2).
    Interrupted { pid: i32, sigints: u32 },
    /// The process outlived two SIGINTs and was sent SIGKILL.
    Killed { pid: i32 },
    /// The process was gone before any signal reached it.
    AlreadyGone { pid: i32 },
    /// A hang notification went to the socket.
    Notified(PathBuf),
}

impl Action {
    /// The stderr line for the outcome (without the program name), given the timeout.
    pub fn describe(&self, timeout: Duration) -> String {
        match self {
            Action::Interrupted { pid, sigints: 1 } => format!("pid {pid} exited after SIGINT"),
            Action::Interrupted { pid, sigints } => {
                format!("pid {pid} exited after {sigints} SIGINTs")
            }
            Action::Killed { pid } => format!("pid {pid} survived two SIGINTs; sent SIGKILL"),
            Action::AlreadyGone { pid } => format!("pid {pid} was already gone"),
            Action::Notified(path) => format!(
                "no ping for {} s: sent a hang notification to {}",
                timeout.as_secs(),
                path.display()
            ),
        }
    }
}

impl Target {
    /// The line said before acting on a -pid target (the UML may take our stderr
    /// with it when it goes); None for -mconsole, whose one line follows the sending.
    pub fn announce(&self, timeout: Duration) -> Option<String> {
        match self {
            Target::Pid(p) => Some(format!(
                "no ping for {} s: stopping pid {}",
                timeout.as_secs(),
                p.pid()
            )),
            Target::Mconsole(_) => None,
        }
    }
}

fn timeout_ms(d: Duration) -> PollTimeout {
    PollTimeout::try_from(d.as_millis().min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
}

/// Writes the start acknowledgement (one NUL byte, as the C tool).
pub fn acknowledge(out: &mut impl Write) -> Result<(), Error> {
    out.write_all(b"\0")
        .and_then(|()| out.flush())
        .map_err(Error::Ack)
}

/// Reads pings from `input` until EOF or until `timeout` passes without one. Every
/// byte is a ping; a read of several counts as one (they arrived together).
pub fn watch(input: BorrowedFd<'_>, timeout: Duration) -> Result<Watch, Error> {
    let mut buf = [0u8; 256];
    let mut deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Watch::Expired);
        }
        let mut fds = [PollFd::new(input, PollFlags::POLLIN)];
        match poll(&mut fds, timeout_ms(left)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::Read(e.into())),
        }
        match nix::unistd::read(input, &mut buf) {
            Ok(0) => return Ok(Watch::Closed),
            Ok(_) => deadline = Instant::now() + timeout,
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(e) => return Err(Error::Read(e.into())),
        }
    }
}

/// The hang notification's payload: what happened, NUL-terminated like the kernel's
/// own texts.
pub fn hang_notification(timeout: Duration) -> Notification {
    Notification {
        kind: NotifyKind::Hang,
        data: format!("uml_watchdog: no ping for {} s\0", timeout.as_secs()).into_bytes(),
    }
}

/// Sends the hang notification to `socket`.
pub fn notify_hang(socket: &Path, timeout: Duration) -> Result<(), Error> {
    let err = |e| Error::Notify(socket.to_owned(), e);
    let mut buf = [0u8; 600];
    let n = hang_notification(timeout)
        .emit(&mut buf)
        .map_err(|e| err(io::Error::other(e.to_string())))?;
    let sock = UnixDatagram::unbound().map_err(err)?;
    sock.send_to(&buf[..n], socket).map_err(err)?;
    Ok(())
}

/// Stops the process as the C tool does: SIGINT, then SIGINT again after `grace`,
/// then SIGKILL after `grace` more, each only while it still lives.
pub fn stop_process(process: &Process, grace: Duration) -> Result<Action, Error> {
    let pid = process.pid();
    for sigints in 1..=2 {
        if !process.signal(libc::SIGINT)? {
            return Ok(if sigints == 1 {
                Action::AlreadyGone { pid }
            } else {
                Action::Interrupted { pid, sigints: 1 }
            });
        }
        if process.wait_exit(grace) {
            return Ok(Action::Interrupted { pid, sigints });
        }
    }
    if !process.signal(libc::SIGKILL)? {
        return Ok(Action::Interrupted { pid, sigints: 2 });
    }
    Ok(Action::Killed { pid })
}

/// Acts on `target` after the pings stopped.
pub fn fire(target: &Target, timeout: Duration, grace: Duration) -> Result<Action, Error> {
    match target {
        Target::Pid(process) => stop_process(process, grace),
        Target::Mconsole(path) => {
            notify_hang(path, timeout)?;
            Ok(Action::Notified(path.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::process::Command;

    #[test]
    fn pings_keep_it_alive_and_eof_closes() {
        let (r, mut w) = std::io::pipe().unwrap();
        let t = std::thread::spawn(move || {
            for _ in 0..5 {
                std::thread::sleep(Duration::from_millis(60));
                w.write_all(b"\n").unwrap();
            }
        });
        let start = Instant::now();
        assert_eq!(
            watch(r.as_fd(), Duration::from_millis(150)).unwrap(),
            Watch::Closed
        );
        assert!(start.elapsed() >= Duration::from_millis(300));
        t.join().unwrap();
    }

    #[test]
    fn silence_expires() {
        let (r, _w) = std::io::pipe().unwrap();
        let start = Instant::now();
        assert_eq!(
            watch(r.as_fd(), Duration::from_millis(200)).unwrap(),
            Watch::Expired
        );
        assert!(start.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn sigint_stops_a_process_that_obeys_and_sigkill_one_that_does_not() {
        let mut obeys = Command::new("sleep").arg("30").spawn().unwrap();
        let p = Process::open(obeys.id() as i32).unwrap();
        let action = stop_process(&p, Duration::from_millis(500)).unwrap();
        assert_eq!(
            action,
            Action::Interrupted {
                pid: p.pid(),
                sigints: 1
            }
        );
        obeys.wait().unwrap();
        let mut stubborn = Command::new("sh")
            .args(["-c", "trap '' INT; sleep 30"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let p = Process::open(stubborn.id() as i32).unwrap();
        let action = stop_process(&p, Duration::from_millis(200)).unwrap();
        assert_eq!(action, Action::Killed { pid: p.pid() });
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(stubborn.wait().unwrap().signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn a_missing_pid_is_refused() {
        let e = Process::open(i32::MAX - 1).err().unwrap();
        assert_eq!(
            e.to_string(),
            format!("-pid {}: no such process", i32::MAX - 1)
        );
        assert!(Process::open(0).is_err());
    }

    #[test]
    fn the_hang_notification_parses_as_hang() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        notify_hang(&path, DEFAULT_TIMEOUT).unwrap();
        let mut buf = [0u8; 600];
        let n = rx.recv(&mut buf).unwrap();
        let got = Notification::parse(&buf[..n]).unwrap();
        assert_eq!(got.kind, NotifyKind::Hang);
        assert_eq!(got.text(), "uml_watchdog: no ping for 60 s");
        let missing = notify_hang(&dir.path().join("nope"), DEFAULT_TIMEOUT).unwrap_err();
        assert!(
            missing.to_string().contains("nope: cannot send"),
            "{missing}"
        );
    }
}
