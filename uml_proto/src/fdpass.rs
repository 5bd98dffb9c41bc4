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
    let (len, _from, fd) = recv_fd_from(sock, buf)?;
    Ok((len, fd))
}

/// Receives one datagram into `buf` as `recv_fd` does, with the sender's address
/// (None for an unbound sender, which cannot be answered).
pub fn recv_fd_from(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(
    usize,
    Option<std::os::unix::net::SocketAddr>,
    Option<OwnedFd>,
)> {
    use nix::sys::socket::UnixAddr;
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let len = msg.bytes;
    let from = msg.address.as_ref().and_then(std_addr);
    let mut first = None;
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: the kernel just installed this descriptor in our table and
                // nobody else owns it; wrapping it once in an OwnedFd is sound (the
                // ones beyond the first are closed when dropped).
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                if first.is_none() {
                    first = Some(owned);
                }
            }
        }
    }
    Ok((len, from, first))
}

/// A unix address as std names it (a path or an abstract name).
fn std_addr(a: &nix::sys::socket::UnixAddr) -> Option<std::os::unix::net::SocketAddr> {
    use nix::sys::socket::SockaddrLike;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::SocketAddr;
    // An unbound sender's address is 0 bytes long: nix's path() would panic on it.
    if (a.len() as usize) <= std::mem::size_of::<libc::sa_family_t>() {
        return None;
    }
    if let Some(p) = a.path() {
        return SocketAddr::from_pathname(p).ok();
    }
    SocketAddr::from_abstract_name(a.as_abstract()?).ok()
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
    fn the_senders_address_comes_with_the_descriptor() {
        use std::os::linux::net::SocketAddrExt;
        let dir = tempfile::tempdir().unwrap();
        let server = UnixDatagram::bind(dir.path().join("server")).unwrap();
        let named = UnixDatagram::bind(dir.path().join("client")).unwrap();
        let file = tempfile::tempfile().unwrap();
        send_fd_to(
            named.as_fd(),
            &dir.path().join("server"),
            b"umlfs 7",
            file.as_fd(),
        )
        .unwrap();
        let mut buf = [0u8; 16];
        let (n, from, fd) = recv_fd_from(server.as_fd(), &mut buf).unwrap();
        assert_eq!((&buf[..n], fd.is_some()), (&b"umlfs 7"[..], true));
        let from = from.expect("a named sender");
        assert_eq!(
            from.as_pathname(),
            Some(dir.path().join("client").as_path())
        );
        server.send_to_addr(b"ok", &from).unwrap();
        let abs = std::os::unix::net::SocketAddr::from_abstract_name(b"umltest-fdpass").unwrap();
        let abstract_client = UnixDatagram::bind_addr(&abs).unwrap();
        abstract_client
            .send_to(b"no fd", dir.path().join("server"))
            .unwrap();
        let (_, from, fd) = recv_fd_from(server.as_fd(), &mut buf).unwrap();
        assert!(fd.is_none());
        assert_eq!(
            from.unwrap().as_abstract_name(),
            Some(&b"umltest-fdpass"[..])
        );
        let unbound = UnixDatagram::unbound().unwrap();
        unbound.send_to(b"x", dir.path().join("server")).unwrap();
        assert!(recv_fd_from(server.as_fd(), &mut buf).unwrap().1.is_none());
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
