//! What port-helper does: find the socket back to the UML kernel (fd 3 inherited from
//! the port channel, or a named socket for the xterm channel), give up its controlling
//! terminal, and send the terminal on fd 0 with its pid as the payload (SCM_RIGHTS).
//! The kernel then uses that terminal as the console and kills the helper when done.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
use nix::sys::stat::{fstat, SFlag};

/// The descriptor the port channel leaves for the helper (via in.telnetd).
pub const INHERITED_FD: RawFd = 3;

/// Where the terminal goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// fd 3, a connected datagram socket inherited from the kernel (port channel).
    Inherited,
    /// A datagram socket the kernel bound at this path (xterm channel).
    Socket(PathBuf),
}

/// Why the terminal could not be handed over.
#[derive(Debug)]
pub enum HelperError {
    /// fd 3 is closed or not a socket: nobody to send to.
    NoInheritedSocket(String),
    /// Making, binding or connecting the socket for `-uml-socket PATH` failed.
    Socket {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// sendmsg failed.
    Send(io::Error),
}

impl fmt::Display for HelperError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HelperError::NoInheritedSocket(why) => write!(
                f,
                "{why}: port-helper expects the UML kernel's socket on fd 3 (port channel, \
                 through in.telnetd -L) or `-uml-socket PATH` (xterm channel)"
            ),
            HelperError::Socket { op, path, source } => {
                write!(f, "{op} for {}: {source}", path.display())
            }
            HelperError::Send(e) => write!(f, "sending the terminal to the UML kernel: {e}"),
        }
    }
}

impl std::error::Error for HelperError {}

/// The socket for `channel`, ready to send on. For `Inherited` the descriptor is fd 3,
/// which must be a socket.
pub fn open_channel(channel: &Channel) -> Result<OwnedFd, HelperError> {
    match channel {
        Channel::Inherited => take_inherited_socket(),
        Channel::Socket(path) => connect_to_kernel(path),
    }
}

fn take_inherited_socket() -> Result<OwnedFd, HelperError> {
    // SAFETY: only borrowed for the fstat call; if fd 3 is closed fstat says EBADF.
    let fd3 = unsafe { BorrowedFd::borrow_raw(INHERITED_FD) };
    let st = fstat(fd3).map_err(|e| {
        HelperError::NoInheritedSocket(format!("fd {INHERITED_FD}: {}", io::Error::from(e)))
    })?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
        return Err(HelperError::NoInheritedSocket(format!(
            "fd {INHERITED_FD} is not a socket"
        )));
    }
    // SAFETY: fstat just showed fd 3 is open; this process never uses it elsewhere, so
    // the OwnedFd is its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(INHERITED_FD) })
}

/// The abstract name port-helper binds its socket to, as the C tool does: a NUL, the
/// pid right-aligned in five columns, NULs up to the full 108-byte `sun_path`.
pub fn abstract_name(pid: u32) -> Vec<u8> {
    let mut name = format!("{pid:5}").into_bytes();
    name.resize(107, 0);
    name
}

fn connect_to_kernel(path: &Path) -> Result<OwnedFd, HelperError> {
    let fail = |op: &'static str| {
        let path = path.to_owned();
        move |e: nix::Error| HelperError::Socket {
            op,
            path,
            source: e.into(),
        }
    };
    let sock = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(fail("socket"))?;
    let own = UnixAddr::new_abstract(&abstract_name(std::process::id())).map_err(fail("bind"))?;
    bind(sock.as_raw_fd(), &own).map_err(fail("bind"))?;
    let peer = UnixAddr::new(path).map_err(fail("connect"))?;
    connect(sock.as_raw_fd(), &peer).map_err(fail("connect"))?;
    Ok(sock)
}

/// Gives up the controlling terminal on fd 0 (TIOCNOTTY), so that the terminal belongs
/// to the kernel alone once sent.
pub fn detach_terminal(terminal: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCNOTTY takes no argument; the kernel only checks the descriptor.
    let r = unsafe { libc::ioctl(terminal.as_raw_fd(), libc::TIOCNOTTY) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The payload the kernel expects with the terminal: our pid as a native 4-byte int.
pub fn pid_payload(pid: u32) -> [u8; 4] {
    (pid as i32).to_ne_bytes()
}

/// Sends `terminal` and our pid on `sock`.
pub fn send_terminal(sock: BorrowedFd<'_>, terminal: BorrowedFd<'_>) -> Result<(), HelperError> {
    let payload = pid_payload(std::process::id());
    uml_proto::fdpass::send_fd(sock, &payload, terminal).map_err(HelperError::Send)?;
    Ok(())
}

/// The whole hand-over for `channel`, using fd 0 as the terminal. A failed TIOCNOTTY is
/// not fatal (the C tool only warns); it comes back as the `Ok` value for the caller
/// to report.
pub fn hand_over_terminal(channel: &Channel) -> Result<Option<io::Error>, HelperError> {
    let sock = open_channel(channel)?;
    // SAFETY: fd 0 stays open for the life of the process; we only borrow it.
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    let detach_problem = detach_terminal(stdin).err();
    send_terminal(sock.as_fd(), stdin)?;
    // The socket stays open while we wait to be killed, as the C tool's does.
    std::mem::forget(sock);
    Ok(detach_problem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn abstract_name_matches_the_c_layout() {
        let name = abstract_name(42);
        assert_eq!(name.len(), 107);
        assert_eq!(&name[..5], b"   42");
        assert!(name[5..].iter().all(|&b| b == 0));
    }

    #[test]
    fn terminal_and_pid_reach_the_kernel_side() {
        let (ours, kernel) = UnixDatagram::pair().unwrap();
        let file = dev_null();
        send_terminal(ours.as_fd(), file.as_fd()).unwrap();
        let mut buf = [0u8; 8];
        let (n, fd) = uml_proto::fdpass::recv_fd(kernel.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], &pid_payload(std::process::id()));
        assert!(fd.is_some());
    }

    #[test]
    fn a_missing_socket_path_is_reported_with_its_name() {
        let err = open_channel(&Channel::Socket("/nonexistent/xterm-pipe".into())).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("connect") && text.contains("/nonexistent/xterm-pipe"),
            "{text}"
        );
    }

    fn dev_null() -> std::fs::File {
        std::fs::File::open("/dev/null").unwrap()
    }
}
