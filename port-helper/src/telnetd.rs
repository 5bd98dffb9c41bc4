//! The small telnet server the UML port channel runs as `in.telnetd -L port-helper`:
//! the client's socket is on fds 0-2; the login program gets a new pseudo-terminal as
//! its fds 0-2 and controlling terminal (and keeps every other inherited descriptor,
//! notably fd 3, the kernel's socket); we relay between the socket and the pty master,
//! speaking telnet on the socket side.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::openpty;
use nix::unistd::{execv, fork, read, setsid, write, ForkResult, Pid};

use crate::telnet::{escape_into, Event, Telnet};

/// Why the server stopped with an error.
#[derive(Debug)]
pub enum TelnetdError {
    Setup { op: &'static str, source: io::Error },
    BadLoginProgram(String),
}

impl fmt::Display for TelnetdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TelnetdError::Setup { op, source } => write!(f, "{op}: {source}"),
            TelnetdError::BadLoginProgram(p) => {
                write!(f, "login program '{p}' contains a NUL byte")
            }
        }
    }
}

impl std::error::Error for TelnetdError {}

fn setup(op: &'static str) -> impl Fn(nix::Error) -> TelnetdError {
    move |e| TelnetdError::Setup {
        op,
        source: e.into(),
    }
}

/// Serves the telnet connection on fd 0 with `login` running on a new pty; returns when
/// the client disconnects or the terminal is hung up.
pub fn serve(login: &Path) -> Result<(), TelnetdError> {
    let program = CString::new(login.as_os_str().as_bytes())
        .map_err(|_| TelnetdError::BadLoginProgram(login.display().to_string()))?;
    // Our own copy of the socket, so that fds 0-2 can be given to the child.
    let socket = duplicate_cloexec(0).map_err(setup("dup of the socket on fd 0"))?;
    let pty = openpty(None, None).map_err(setup("openpty"))?;
    set_cloexec(pty.master.as_fd()).map_err(setup("fcntl on the pty master"))?;
    set_cloexec(pty.slave.as_fd()).map_err(setup("fcntl on the pty slave"))?;
    // SAFETY: in.telnetd is single-threaded, so the child may do anything before exec.
    match unsafe { fork() }.map_err(setup("fork"))? {
        ForkResult::Child => run_login(&program, pty.slave.as_fd()),
        ForkResult::Parent { child } => {
            drop(pty.slave);
            let result = relay(socket.as_fd(), pty.master.as_fd());
            reap_if_done(child);
            result
        }
    }
}

fn duplicate_cloexec(fd: RawFd) -> nix::Result<OwnedFd> {
    // SAFETY: only borrowed for the fcntl call; fd 0 is the socket we were given.
    let new = fcntl(
        unsafe { BorrowedFd::borrow_raw(fd) },
        FcntlArg::F_DUPFD_CLOEXEC(10),
    )?;
    // SAFETY: F_DUPFD_CLOEXEC just made this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

fn set_cloexec(fd: BorrowedFd<'_>) -> nix::Result<()> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map(|_| ())
}

/// In the child: new session, the pty slave as controlling terminal and fds 0-2, then
/// exec the login program with no arguments. Never returns.
fn run_login(program: &CString, slave: BorrowedFd<'_>) -> ! {
    let _ = setsid();
    // SAFETY: TIOCSCTTY with argument 0 on a descriptor we own; no memory is passed.
    unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) };
    for target in 0..3 {
        // SAFETY: dup2 onto 0-2 in the child, which owns nothing else there.
        unsafe { libc::dup2(slave.as_raw_fd(), target) };
    }
    let err = execv(program, &[program.as_c_str()]).unwrap_err();
    let msg = format!(
        "in.telnetd: cannot run login program {}: {}\r\n",
        program.to_string_lossy(),
        io::Error::from(err)
    );
    // SAFETY: fd 2 is the pty slave we just installed.
    let _ = write(unsafe { BorrowedFd::borrow_raw(2) }, msg.as_bytes());
    // SAFETY: _exit is always safe; no destructors must run in a forked child.
    unsafe { libc::_exit(1) }
}

fn reap_if_done(child: Pid) {
    let _ = nix::sys::wait::waitpid(child, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
}

/// Moves bytes both ways until either side ends.
fn relay(socket: BorrowedFd<'_>, master: BorrowedFd<'_>) -> Result<(), TelnetdError> {
    let mut telnet = Telnet::new();
    if write_all(socket, &telnet.greeting()).is_err() {
        return Ok(());
    }
    let mut buf = vec![0u8; 8192];
    let mut escaped = Vec::with_capacity(2 * buf.len());
    loop {
        let mut fds = [
            PollFd::new(socket, PollFlags::POLLIN),
            PollFd::new(master, PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(setup("poll")(e)),
            Ok(_) => {}
        }
        let ready = |fd: &PollFd| {
            fd.revents().is_some_and(|r| {
                r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            })
        };
        let (client_ready, terminal_ready) = (ready(&fds[0]), ready(&fds[1]));
        if client_ready && !from_client(socket, master, &mut telnet, &mut buf) {
            return Ok(());
        }
        if terminal_ready && !from_terminal(socket, master, &mut buf, &mut escaped) {
            return Ok(());
        }
    }
}

/// One read from the client; false when the connection is over.
fn from_client(
    socket: BorrowedFd<'_>,
    master: BorrowedFd<'_>,
    telnet: &mut Telnet,
    buf: &mut [u8],
) -> bool {
    let n = match read(socket, buf) {
        Ok(0) => return false,
        Ok(n) => n,
        Err(nix::Error::EINTR | nix::Error::EAGAIN) => return true,
        Err(_) => return false,
    };
    let got = telnet.receive(&buf[..n]);
    for event in &got.events {
        match *event {
            Event::WindowSize { cols, rows } => set_window_size(master, cols, rows),
        }
    }
    write_all(socket, &got.to_client).is_ok() && write_all(master, &got.to_terminal).is_ok()
}

/// One read from the terminal; false when it is hung up (every slave closed).
fn from_terminal(
    socket: BorrowedFd<'_>,
    master: BorrowedFd<'_>,
    buf: &mut [u8],
    escaped: &mut Vec<u8>,
) -> bool {
    let n = match read(master, buf) {
        Ok(0) => return false,
        Ok(n) => n,
        Err(nix::Error::EINTR | nix::Error::EAGAIN) => return true,
        Err(_) => return false,
    };
    escaped.clear();
    escape_into(&buf[..n], escaped);
    write_all(socket, escaped).is_ok()
}

fn set_window_size(master: BorrowedFd<'_>, cols: u16, rows: u16) {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize struct, which lives for the whole call.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::Error::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
