//! The mcast transport: frames as UDP datagrams to a multicast group that every guest
//! of the virtual LAN joins (UML's defaults 239.192.168.1:1102, TTL 1, loopback on).

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

pub struct Mcast {
    sock: Socket,
    group: SockAddr,
}

impl Mcast {
    pub fn open(addr: Ipv4Addr, port: u16, ttl: u32) -> io::Result<Mcast> {
        let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        sock.set_reuse_address(true)?;
        sock.bind(&SockAddr::from(SocketAddrV4::new(addr, port)))?;
        sock.set_multicast_loop_v4(true)?;
        sock.set_multicast_ttl_v4(ttl)?;
        sock.join_multicast_v4(&addr, &Ipv4Addr::UNSPECIFIED)?;
        sock.set_nonblocking(true)?;
        sock.set_cloexec(true)?;
        Ok(Mcast {
            sock,
            group: SockAddr::from(SocketAddrV4::new(addr, port)),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: a `[u8]` viewed as `[MaybeUninit<u8>]` of the same length; recv only
        // writes initialised bytes into it.
        let uninit = unsafe {
            std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut MaybeUninit<u8>, buf.len())
        };
        match self.sock.recv(uninit) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.sock.send_to(frame, &self.group).map(drop)
    }
}
