//! AF_PACKET sockets, the one socket family nix does not wrap that two programs need:
//! uml_net's ARP probe (datagrams of one protocol) and uml-kernel's raw and hybrid vector
//! transports (every frame of an interface). Opening one bound to an interface index,
//! the packet-level options those users set, sending to and receiving from it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// ETH_P_ALL: every protocol.
pub const ETH_P_ALL: u16 = 0x0003;
/// ETH_P_ARP.
pub const ETH_P_ARP: u16 = 0x0806;

/// Whole frames (link header included) or payloads of one protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Raw,
    Datagram,
}

fn sockaddr_ll(index: u32, protocol: u16, dest: Option<[u8; 6]>) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = index as i32;
    if let Some(mac) = dest {
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&mac);
    }
    sll
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A packet socket for `protocol` bound to interface `index` (needs CAP_NET_RAW).
pub fn open(index: u32, protocol: u16, kind: Kind, nonblocking: bool) -> io::Result<OwnedFd> {
    let mut ty = match kind {
        Kind::Raw => libc::SOCK_RAW,
        Kind::Datagram => libc::SOCK_DGRAM,
    } | libc::SOCK_CLOEXEC;
    if nonblocking {
        ty |= libc::SOCK_NONBLOCK;
    }
    // SAFETY: socket() takes no pointers; a non-negative result is a new descriptor
    // that nothing else owns, so OwnedFd may take it.
    let fd = unsafe {
        let fd = libc::socket(libc::AF_PACKET, ty, i32::from(protocol.to_be()));
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        OwnedFd::from_raw_fd(fd)
    };
    let sll = sockaddr_ll(index, protocol, None);
    // SAFETY: bind reads a sockaddr_ll of the size we pass, which `sll` is.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

/// Makes interface `index` promiscuous for as long as `fd` is open (PACKET_MR_PROMISC).
pub fn add_promiscuous_membership(fd: BorrowedFd<'_>, index: u32) -> io::Result<()> {
    // SAFETY: packet_mreq is plain old data; all-zero is a valid value.
    let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
    mreq.mr_ifindex = index as i32;
    mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
    // SAFETY: setsockopt reads a packet_mreq of the size we pass, which `mreq` is.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            (&mreq as *const libc::packet_mreq).cast(),
            std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
        )
    })
}

/// Puts a virtio-net header before every packet sent and received (PACKET_VNET_HDR).
pub fn enable_vnet_header(fd: BorrowedFd<'_>) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads a c_int of the size we pass.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_VNET_HDR,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
}

/// Sends `bytes` out of interface `index` (to `dest` on a datagram socket).
pub fn send_to(
    fd: BorrowedFd<'_>,
    index: u32,
    protocol: u16,
    dest: Option<[u8; 6]>,
    bytes: &[u8],
) -> io::Result<()> {
    let sll = sockaddr_ll(index, protocol, dest);
    // SAFETY: sendto reads `bytes.len()` bytes from the slice and a sockaddr_ll of the
    // size we pass; both live for the whole call.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            0,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receives one packet into `buf`: its length and whether the host was sending it
/// (PACKET_OUTGOING), or None when a non-blocking socket has nothing.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<(usize, bool)>> {
    let mut sll = sockaddr_ll(0, 0, None);
    let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: recvfrom writes at most `buf.len()` bytes into `buf` and at most `len`
    // bytes of address into `sll`, both valid for the call.
    let n = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            (&mut sll as *mut libc::sockaddr_ll).cast(),
            &mut len,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some((n as usize, sll.sll_pkttype == libc::PACKET_OUTGOING)))
}
