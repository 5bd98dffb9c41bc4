//! Passing a file descriptor over a unix socket (SCM_RIGHTS) with a small payload: how
//! uml_net hands the kernel a tap device, port-helper hands it a terminal, and
//! uml_mconsole's `umlfs` hands it a /dev/fuse descriptor (to a datagram address).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Sends `payload` with `fd` attached as one message; returns the bytes sent.
pub fn send_fd(sock: BorrowedFd<'_>, payload: &[u8], fd: BorrowedFd<'_>) -> io::Result<usize> {
    let fds = [fd.as_raw_fd()];
    let cmsgs = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(payload)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::empty(), None).map_err(io::Error::from)
}

/// The descriptor `text` names (a decimal number, as `uml_mconsole umlfs FD` takes it)
/// when it is open in this process: one inherited from the parent, which this process
/// never closes.
pub fn inherited_fd(text: &str) -> Option<BorrowedFd<'static>> {
    let raw: RawFd = text.trim().parse().ok().filter(|&fd: &RawFd| fd >= 0)?;
    nix::fcntl::fcntl(
        // SAFETY: only borrowed for this one fcntl(F_GETFD) call, which the kernel
        // answers with EBADF when `raw` is not open; nothing is read or closed.
        unsafe { BorrowedFd::borrow_raw(raw) },
        nix::fcntl::FcntlArg::F_GETFD,
    )
    .ok()?;
    // SAFETY: `raw` is open (checked just above) and, being inherited for this purpose,
    // is never closed by this process, so the borrow stays valid for its lifetime.
    Some(unsafe { BorrowedFd::borrow_raw(raw) })
}

/// Sends `payload` with `fd` attached as one datagram to the socket at path `to`
/// (for an unconnected datagram socket); returns the bytes sent.
pub fn send_fd_to(
    sock: BorrowedFd<'_>,
    to: &std::path::Path,
    payload: &[u8],
    fd: BorrowedFd<'_>,
) -> io::Result<usize> {
    let addr = nix::sys::socket::UnixAddr::new(to).map_err(io::Error::from)?;
    let fds = [fd.as_raw_fd()];
    let cmsgs = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(payload)];
    sendmsg(
        sock.as_raw_fd(),
        &iov,
        &cmsgs,
        MsgFlags::empty(),
        Some(&addr),
    )
    .map_err(io::Error::from)
}

/// Receives one message into `buf`; returns its length and the descriptor it carried,
/// if any. Descriptors beyond the first are closed. The received fd is close-on-exec.
pub fn recv_fd(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let len = msg.bytes;
    let mut received: Vec<OwnedFd> = Vec::new();
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            // SAFETY: the kernel just installed these descriptors in our table; each is
            // owned by nobody else, so wrapping each once in an OwnedFd is sound.
            received.extend(
                fds.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let first = if received.is_empty() {
        None
    } else {
        Some(received.remove(0))
    };
    Ok((len, first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn a_descriptor_and_its_payload_arrive_together() {
        let (a, b) = UnixDatagram::pair().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"through the socket").unwrap();
        let pid = 4242u32.to_ne_bytes();
        assert_eq!(send_fd(a.as_fd(), &pid, file.as_fd()).unwrap(), 4);
        let mut buf = [0u8; 16];
        let (n, fd) = recv_fd(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], &pid);
        let mut got = std::fs::File::from(fd.expect("a descriptor"));
        got.rewind().unwrap();
        let mut s = String::new();
        got.read_to_string(&mut s).unwrap();
        assert_eq!(s, "through the socket");
    }

    #[test]
    fn a_descriptor_reaches_a_datagram_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server");
        let server = UnixDatagram::bind(&path).unwrap();
        let client = UnixDatagram::unbound().unwrap();
        let file = tempfile::tempfile().unwrap();
        let n = send_fd_to(client.as_fd(), &path, b"umlfs 7", file.as_fd()).unwrap();
        assert_eq!(n, 7);
        let mut buf = [0u8; 16];
        let (n, fd) = recv_fd(server.as_fd(), &mut buf).unwrap();
        assert_eq!((&buf[..n], fd.is_some()), (&b"umlfs 7"[..], true));
        let missing = send_fd_to(client.as_fd(), &dir.path().join("no"), b"x", file.as_fd());
        assert_eq!(missing.unwrap_err().raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn only_open_descriptors_are_inherited() {
        assert!(inherited_fd("2").is_some());
        for bad in ["", "x", "-1", "999999", "2x"] {
            assert!(inherited_fd(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_message_without_descriptor_gives_none() {
        let (a, b) = UnixDatagram::pair().unwrap();
        a.send(b"no fd").unwrap();
        let mut buf = [0u8; 16];
        let (n, fd) = recv_fd(b.as_fd(), &mut buf).unwrap();
        assert_eq!((&buf[..n], fd.is_none()), (&b"no fd"[..], true));
    }
}
