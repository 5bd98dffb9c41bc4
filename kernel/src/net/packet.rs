//! The raw AF_PACKET socket behind the vector `raw` and `hybrid` transports: every
//! Ethernet frame of one host interface (bound by index, promiscuous while open), with
//! the direction the host kernel saw it go, so a transport can keep only one way. As
//! linux.uml's, it uses virtio-net headers (PACKET_VNET_HDR), so frames the host built
//! with checksum or segmentation offload reach the guest complete (see `vnet`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::vnet;

/// ETH_P_ALL: every protocol.
const ETH_P_ALL: u16 = 0x0003;

pub struct Packet {
    fd: OwnedFd,
    index: i32,
    /// Frames made from one received packet (a GSO packet gives several), with their
    /// direction.
    pending: RefCell<VecDeque<(Vec<u8>, bool)>>,
    /// Room for one received packet, kept between calls.
    packet: RefCell<Vec<u8>>,
}

/// The largest packet the host hands over: a 64 KiB GSO frame and its header.
const PACKET_MAX: usize = vnet::HDR_LEN + 65536 + 14;

fn sockaddr_ll(index: i32) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ALL.to_be();
    sll.sll_ifindex = index;
    sll
}

impl Packet {
    /// Opens a non-blocking packet socket on `ifname` (needs CAP_NET_RAW).
    pub fn open(ifname: &str) -> io::Result<Packet> {
        let index = nix::net::if_::if_nametoindex(ifname).map_err(io::Error::from)? as i32;
        // SAFETY: socket() takes no pointers; a non-negative result is a new descriptor
        // that nothing else owns, so OwnedFd may take it.
        let fd = unsafe {
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_ALL.to_be()),
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            OwnedFd::from_raw_fd(fd)
        };
        let sll = sockaddr_ll(index);
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
        // Frames for the guest's own MAC address must reach us on a real NIC too; the
        // membership ends when the socket closes.
        // SAFETY: packet_mreq is plain old data; all-zero is a valid value.
        let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mreq.mr_ifindex = index;
        mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
        // SAFETY: setsockopt reads a packet_mreq of the size we pass, which `mreq` is.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&mreq as *const libc::packet_mreq).cast(),
                std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let on: libc::c_int = 1;
        // SAFETY: setsockopt reads a c_int of the size we pass.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_VNET_HDR,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Packet {
            fd,
            index,
            pending: RefCell::new(VecDeque::new()),
            packet: RefCell::new(vec![0u8; PACKET_MAX]),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The next frame and whether the host was sending it (PACKET_OUTGOING), or None.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<(usize, bool)>> {
        let mut pending = self.pending.borrow_mut();
        let mut packet = self.packet.borrow_mut();
        loop {
            if let Some((frame, outgoing)) = pending.pop_front() {
                let n = frame.len().min(buf.len());
                buf[..n].copy_from_slice(&frame[..n]);
                return Ok(Some((n, outgoing)));
            }
            let mut sll = sockaddr_ll(0);
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: recvfrom writes at most `packet.len()` bytes into `packet` and at
            // most `len` bytes of address into `sll`, both valid for the call.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    packet.as_mut_ptr().cast(),
                    packet.len(),
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
            let outgoing = sll.sll_pkttype == libc::PACKET_OUTGOING;
            let mut frames = Vec::new();
            vnet::frames(&packet[..n as usize], &mut frames);
            pending.extend(frames.into_iter().map(|f| (f, outgoing)));
        }
    }

    /// Sends one whole Ethernet frame out of the interface (behind an empty virtio-net
    /// header: checksums done, no segmentation).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let mut packet = Vec::with_capacity(vnet::HDR_LEN + frame.len());
        packet.extend_from_slice(&[0u8; vnet::HDR_LEN]);
        packet.extend_from_slice(frame);
        let frame = &packet[..];
        let sll = sockaddr_ll(self.index);
        // SAFETY: sendto reads `frame.len()` bytes from the slice and a sockaddr_ll of
        // the size we pass; both live for the whole call.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
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
}
