//! Uplinks: ports of the switch that reach other hosts through the Linux kernel's own
//! overlays (`--uplink vxlan:...`, `gre:...`, `l2tpv3:...`, read by
//! `uml_proto::overlay::spec`). Each uplink owns one non-blocking socket: UDP for VXLAN
//! and L2TPv3-over-UDP, a raw IP socket for GRE (protocol 47) and L2TPv3 (115). A frame
//! leaves with the overlay header in front of it (one sendmsg, two iovecs); a full
//! socket buffer or an unreachable peer drops the frame and counts it, so a silent peer
//! never stalls the local LAN. What arrives is checked (source, VNI, key, session,
//! cookie), stripped, and handed to the switch; anything else is dropped and counted.

use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::errno::Errno;
use nix::sys::socket::{recvfrom, SockaddrStorage};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use uml_proto::ether::{Frame, MacAddr};
use uml_proto::overlay::gre::{self, GreEndpoint};
use uml_proto::overlay::l2tpv3::{self, L2tpv3Endpoint};
use uml_proto::overlay::spec::OverlaySpec;
use uml_proto::overlay::vxlan::VxlanHeader;
use uml_proto::overlay::{strip_ipv4_header, OverlayError};

use crate::fasthash::FastMap;
use crate::sockets::SetupError;

/// Room for the largest overlay header we send (L2TPv3 over UDP, 64-bit cookie, counter).
const MAX_HEADER: usize = 24;
/// Remote VXLAN endpoints learned from a multicast group, at most this many MACs.
const MAX_LEARNED_ENDPOINTS: usize = 4096;

enum Codec {
    Vxlan { vni: u32 },
    Gre(GreEndpoint),
    L2tpv3(L2tpv3Endpoint),
}

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
    sock: Socket,
    codec: Codec,
    remote: SockAddr,
    /// Received packets start with an IPv4 header (raw IPv4 sockets).
    ipv4_header: bool,
    /// The socket is connected to the peer (raw sockets).
    connected: bool,
    /// Only packets from this address are ours (None: a multicast group, anyone).
    accept_from: Option<IpAddr>,
    /// VXLAN over a group: which endpoint each remote MAC was last seen behind.
    endpoints: FastMap<u64, SockAddr>,
    pub counters: UplinkCounters,
}

fn setup_err(name: &str, what: &str, e: io::Error) -> SetupError {
    let hint = if e.raw_os_error() == Some(libc::EPERM) {
        " (raw IP sockets for gre and l2tpv3 without udp=1 need root or CAP_NET_RAW)"
    } else {
        ""
    };
    SetupError::Other(format!("uplink '{name}': {what}: {e}{hint}"))
}

fn unspecified(like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

impl Uplink {
    /// Opens the uplink's socket (bound, and connected where the peer is fixed).
    pub fn open(name: &str, spec: &OverlaySpec) -> Result<Uplink, SetupError> {
        let err = |what: &str, e: io::Error| setup_err(name, what, e);
        let (remote, local, codec) = match spec {
            OverlaySpec::Vxlan { remote, vni, local } => {
                let local =
                    SocketAddr::new(local.unwrap_or(unspecified(remote.ip())), remote.port());
                (*remote, local, Codec::Vxlan { vni: *vni })
            }
            OverlaySpec::Gre {
                remote,
                local,
                endpoint,
            } => {
                let local = SocketAddr::new(local.unwrap_or(unspecified(*remote)), 0);
                (
                    SocketAddr::new(*remote, 0),
                    local,
                    Codec::Gre(endpoint.clone()),
                )
            }
            OverlaySpec::L2tpv3 {
                remote,
                ports,
                local,
                endpoint,
            } => {
                let (src, dst) = ports.unwrap_or((0, 0));
                let local = SocketAddr::new(local.unwrap_or(unspecified(*remote)), src);
                (
                    SocketAddr::new(*remote, dst),
                    local,
                    Codec::L2tpv3(endpoint.clone()),
                )
            }
        };
        let domain = Domain::for_address(remote);
        let udp = match &codec {
            Codec::Vxlan { .. } => true,
            Codec::Gre(_) => false,
            Codec::L2tpv3(e) => e.udp,
        };
        let sock = if udp {
            Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
        } else {
            let proto = match codec {
                Codec::Gre(_) => gre::IP_PROTO,
                _ => l2tpv3::IP_PROTO,
            };
            Socket::new(domain, Type::RAW, Some(Protocol::from(proto)))
        }
        .map_err(|e| err("socket", e))?;
        sock.set_nonblocking(true).map_err(|e| err("socket", e))?;
        sock.set_cloexec(true).map_err(|e| err("socket", e))?;
        let group = remote.ip().is_multicast();
        if group {
            sock.set_reuse_address(true).map_err(|e| err("socket", e))?;
        }
        sock.bind(&local.into())
            .map_err(|e| err(&format!("bind {local}"), e))?;
        if group {
            match remote.ip() {
                IpAddr::V4(g) => sock.join_multicast_v4(&g, &Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(g) => sock.join_multicast_v6(&g, 0),
            }
            .map_err(|e| err(&format!("join {}", remote.ip()), e))?;
            let _ = sock.set_multicast_loop_v4(false);
        }
        // Raw sockets have no ports: connecting makes the kernel drop every packet from
        // anyone but the peer. UDP peers may send from other ports than they listen on
        // (Linux's VXLAN picks one per flow), so there only the address is checked.
        if !udp {
            sock.connect(&remote.into())
                .map_err(|e| err(&format!("connect {remote}"), e))?;
        }
        Ok(Uplink {
            name: name.to_owned(),
            sock,
            ipv4_header: !udp && remote.is_ipv4(),
            connected: !udp,
            accept_from: (!group).then(|| remote.ip()),
            codec,
            remote: remote.into(),
            endpoints: FastMap::default(),
            counters: UplinkCounters::default(),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Sends one frame through the overlay (never blocks).
    pub fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let mut header = [0u8; MAX_HEADER];
        let n = match &mut self.codec {
            Codec::Vxlan { vni } => VxlanHeader { vni: *vni }.emit(&mut header),
            Codec::Gre(e) => e.encap_header(&mut header),
            Codec::L2tpv3(e) => e.encap_header(&mut header),
        };
        let iov = [IoSlice::new(&header[..n]), IoSlice::new(frame)];
        let to = self.destination(frame);
        let r = match to {
            Some(addr) => self.sock.send_to_vectored(&iov, addr),
            None => self.sock.send_vectored(&iov),
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
        if !matches!(self.codec, Codec::Vxlan { .. }) {
            return (!self.connected).then_some(&self.remote);
        }
        let learned = Frame::parse(frame)
            .ok()
            .filter(|f| !f.dst().is_multicast())
            .and_then(|f| self.endpoints.get(&f.dst().to_u64()));
        Some(learned.unwrap_or(&self.remote))
    }

    /// Receives one packet into `buf`; on success the inner frame is moved to its start.
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<Received> {
        let fd = self.sock.as_raw_fd();
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
        let body = if self.ipv4_header {
            strip_ipv4_header(packet)?
        } else {
            packet
        };
        let inner = match &self.codec {
            Codec::Vxlan { vni } => {
                let (h, inner) = VxlanHeader::parse(body)?;
                if h.vni != *vni {
                    let (expected, got) = (u64::from(*vni), u64::from(h.vni));
                    return Err(OverlayError::Mismatch {
                        what: "VXLAN VNI",
                        expected,
                        got,
                    });
                }
                inner
            }
            Codec::Gre(e) => e.decap(body)?,
            Codec::L2tpv3(e) => e.decap(body)?,
        };
        Ok((packet.len() - inner.len(), inner.len()))
    }

    fn learn_endpoint(&mut self, frame: &[u8], from: Option<SocketAddr>) {
        let Some(from) = from.filter(|_| self.accept_from.is_none()) else {
            return;
        };
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
