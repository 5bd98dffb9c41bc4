//! The one raw socket uml_net needs that nix does not wrap: an AF_PACKET datagram
//! socket bound to one interface for ARP, to probe a LAN address before publishing it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const ETH_P_ARP: u16 = 0x0806;

fn sockaddr_ll(index: u32, dest: Option<[u8; 6]>) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ARP.to_be();
    sll.sll_ifindex = index as i32;
    if let Some(mac) = dest {
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&mac);
    }
    sll
}

/// An ARP packet socket bound to interface `index` (needs CAP_NET_RAW).
pub fn arp_socket(index: u32) -> io::Result<OwnedFd> {
    // SAFETY: socket() takes no pointers; a non-negative result is a new descriptor
    // that nothing else owns, so OwnedFd may take it.
    let fd = unsafe {
        let fd = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            i32::from(ETH_P_ARP.to_be()),
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        OwnedFd::from_raw_fd(fd)
    };
    let sll = sockaddr_ll(index, None);
    // SAFETY: bind reads a sockaddr_ll of the size we pass, which `sll` is.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Sends `payload` as an ARP frame to the Ethernet broadcast address on `index`.
pub fn send_broadcast(fd: &OwnedFd, index: u32, payload: &[u8]) -> io::Result<()> {
    let sll = sockaddr_ll(index, Some([0xff; 6]));
    // SAFETY: sendto reads `payload.len()` bytes from the slice and a sockaddr_ll of
    // the size we pass; both live for the whole call.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            payload.as_ptr().cast(),
            payload.len(),
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
