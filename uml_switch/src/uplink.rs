//! Uplinks: ports of the switch that reach other hosts through the Linux kernel's own
//! overlays (`--uplink vxlan:...`, `gre:...`, `l2tpv3:...`, read by
//! `uml_proto::overlay::spec`, opened by `uml_proto::overlay::link`). Each uplink owns one non-blocking socket: UDP for VXLAN
//! and L2TPv3-over-UDP, a raw IP socket for GRE (protocol 47) and L2TPv3 (115). A frame
//! leaves with the overlay header in front of it (one sendmsg, two iovecs); a full
//! socket buffer or an unreachable peer drops the frame and counts it, so a silent peer
//! never stalls the local LAN. What arrives is checked (source, VNI, key, session,
//! cookie), stripped, and handed to the switch; anything else is dropped and counted.

use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::errno::Errno;
use nix::sys::socket::{recvfrom, SockaddrStorage};

use socket2::SockAddr;
use uml_proto::ether::{Frame, MacAddr};
use uml_proto::overlay::link::{Codec, OpenError, OverlaySocket, MAX_HEADER};
use uml_proto::overlay::spec::OverlaySpec;
use uml_proto::overlay::OverlayError;

use crate::fasthash::FastMap;
use crate::sockets::SetupError;

/// Remote VXLAN endpoints learned from a multicast group, at most this many MACs.
const MAX_LEARNED_ENDPOINTS: usize = 4096;

/// Counters of one uplink beyond the port's frame counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct UplinkCounters {
    /// Packets that were not a frame for this uplink (bad header, other VNI, session,
    /// key or cookie, wrong sender).
    pub malformed: u64,
    /// Frames that could not be sent (buffer full, peer unreachable).
    pub send_errors: u64,
}

/// What one receive gave.
pub enum Received {
    /// An inner frame of this length now starts at the buffer's first byte.
    Frame(usize),
    /// A packet that was dropped, and why.
    Dropped(OverlayError),
    /// Nothing more is waiting.
    Empty,
}

/// One overlay endpoint as a port of the switch.
pub struct Uplink {
    /// The text it was configured with (for messages and the report).
    pub name: String,
    link: OverlaySocket,
    remote: SockAddr,
    /// Only packets from this address are ours (None: a multicast group, anyone).
    accept_from: Option<IpAddr>,
    /// VXLAN over a group: which endpoint each remote MAC was last seen behind.
    endpoints: FastMap<u64, SockAddr>,
    pub counters: UplinkCounters,
}

fn setup_err(name: &str, e: OpenError) -> SetupError {
    let hint = if e.source.raw_os_error() == Some(libc::EPERM) {
        " (raw IP sockets for gre and l2tpv3 without udp=1 need root or CAP_NET_RAW)"
    } else {
        ""
    };
    SetupError::Other(format!("uplink '{name}': {e}{hint}"))
}

impl Uplink {
    /// Opens the uplink's socket (bound, and connected where the peer is fixed).
    pub fn open(name: &str, spec: &OverlaySpec) -> Result<Uplink, SetupError> {
        let link = OverlaySocket::open(spec).map_err(|e| setup_err(name, e))?;
        let remote = link.remote;
        Ok(Uplink {
            name: name.to_owned(),
            accept_from: (!remote.ip().is_multicast()).then(|| remote.ip()),
            remote: remote.into(),
            link,
            endpoints: FastMap::default(),
            counters: UplinkCounters::default(),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.link.sock.as_fd()
    }

    /// Sends one frame through the overlay (never blocks).
    pub fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let mut header = [0u8; MAX_HEADER];
        let n = self.link.codec.encap_header(&mut header);
        let iov = [IoSlice::new(&header[..n]), IoSlice::new(frame)];
        let to = self.destination(frame);
        let r = match to {
            Some(addr) => self.link.sock.send_to_vectored(&iov, addr),
            None => self.link.sock.send_vectored(&iov),
        };
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                self.counters.send_errors += 1;
                Err(e)
            }
        }
    }

    /// Where a frame goes: connected (raw) sockets need no address; VXLAN sends to the
    /// endpoint its destination was learned behind, else to the remote (or group).
    fn destination(&self, frame: &[u8]) -> Option<&SockAddr> {
        if !matches!(self.link.codec, Codec::Vxlan { .. }) {
            return (!self.link.connected).then_some(&self.remote);
        }
        let learned = Frame::parse(frame)
            .ok()
            .filter(|f| !f.dst().is_multicast())
            .and_then(|f| self.endpoints.get(&f.dst().to_u64()));
        Some(learned.unwrap_or(&self.remote))
    }

    /// Receives one packet into `buf`; on success the inner frame is moved to its start.
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<Received> {
        let fd = self.link.sock.as_raw_fd();
        let (n, from) = match recvfrom::<SockaddrStorage>(fd, buf) {
            Ok((n, from)) => (n, from.and_then(|a| socket_addr(&a))),
            Err(Errno::EAGAIN) => return Ok(Received::Empty),
            Err(e) => return Err(e.into()),
        };
        match self.decap(&buf[..n], from) {
            Ok((start, len)) => {
                buf.copy_within(start..start + len, 0);
                self.learn_endpoint(&buf[..len], from);
                Ok(Received::Frame(len))
            }
            Err(e) => {
                self.counters.malformed += 1;
                Ok(Received::Dropped(e))
            }
        }
    }

    /// Checks one packet; returns where its inner frame lies in it.
    fn decap(
        &self,
        packet: &[u8],
        from: Option<SocketAddr>,
    ) -> Result<(usize, usize), OverlayError> {
        if let (Some(want), Some(got)) = (self.accept_from, from) {
            if got.ip() != want {
                return Err(OverlayError::Spec(format!(
                    "packet from {}, not the peer",
                    got.ip()
                )));
            }
        }
        let inner = self.link.inner(packet)?;
        Ok((packet.len() - inner.len(), inner.len()))
    }

    /// Notes which endpoint (its address, at the overlay's port: Linux sends from a
    /// per-flow source port but listens on the VXLAN port) a source MAC lives behind.
    fn learn_endpoint(&mut self, frame: &[u8], from: Option<SocketAddr>) {
        let Some(from) = from.filter(|_| self.accept_from.is_none()) else {
            return;
        };
        let port = self.remote.as_socket().map_or(from.port(), |r| r.port());
        let from = SocketAddr::new(from.ip(), port);
        if let Ok(f) = Frame::parse(frame) {
            let mac: MacAddr = f.src();
            if self.endpoints.len() < MAX_LEARNED_ENDPOINTS
                || self.endpoints.contains_key(&mac.to_u64())
            {
                self.endpoints.insert(mac.to_u64(), from.into());
            }
        }
    }
}

fn socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    a.as_sockaddr_in6()
        .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
}
