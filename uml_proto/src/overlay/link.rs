//! One overlay endpoint on the wire: its socket and its header codec, shared by
//! uml_switch's uplinks and uml-kernel's vector transports. UDP for VXLAN and
//! L2TPv3-over-UDP (bound to the local port, sending to the remote); a raw IP socket for
//! GRE (protocol 47) and L2TPv3 (115), connected to the peer so the host kernel drops
//! everyone else's packets; a multicast VXLAN group is joined. Non-blocking, close on
//! exec. Checking who sent a UDP packet is the caller's business.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

use super::gre::{self, GreEndpoint};
use super::l2tpv3::{self, L2tpv3Endpoint};
use super::spec::OverlaySpec;
use super::vxlan::VxlanHeader;
use super::{strip_ipv4_header, OverlayError};

/// Room for the largest header sent (L2TPv3 over UDP, 64-bit cookie, counter).
pub const MAX_HEADER: usize = 24;

/// The header an endpoint puts in front of frames and checks on packets.
#[derive(Debug, Clone)]
pub enum Codec {
    Vxlan { vni: u32 },
    Gre(GreEndpoint),
    L2tpv3(L2tpv3Endpoint),
}

impl Codec {
    /// Writes the header for the next frame; returns its length.
    pub fn encap_header(&mut self, buf: &mut [u8; MAX_HEADER]) -> usize {
        match self {
            Codec::Vxlan { vni } => VxlanHeader { vni: *vni }.emit(buf),
            Codec::Gre(e) => e.encap_header(buf),
            Codec::L2tpv3(e) => e.encap_header(buf),
        }
    }

    /// The inner frame of a packet body (after any IP header) for this endpoint.
    pub fn decap<'a>(&self, body: &'a [u8]) -> Result<&'a [u8], OverlayError> {
        match self {
            Codec::Vxlan { vni } => {
                let (h, inner) = VxlanHeader::parse(body)?;
                if h.vni != *vni {
                    return Err(OverlayError::Mismatch {
                        what: "VXLAN VNI",
                        expected: u64::from(*vni),
                        got: u64::from(h.vni),
                    });
                }
                Ok(inner)
            }
            Codec::Gre(e) => e.decap(body),
            Codec::L2tpv3(e) => e.decap(body),
        }
    }
}

/// A step of opening the socket that failed.
#[derive(Debug)]
pub struct OpenError {
    /// What was being done: `socket`, `bind ADDR`, `join GROUP`, `connect ADDR`.
    pub step: String,
    pub source: io::Error,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.source)
    }
}

impl std::error::Error for OpenError {}

/// An open overlay endpoint.
#[derive(Debug)]
pub struct OverlaySocket {
    pub sock: Socket,
    pub codec: Codec,
    /// Where frames go: the peer (port 0 for raw IP) or a multicast group.
    pub remote: SocketAddr,
    /// A raw IP socket connected to the peer: send without an address.
    pub connected: bool,
    /// Received packets start with an IPv4 header (raw IPv4 sockets).
    pub ipv4_header: bool,
}

fn unspecified(like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

impl OverlaySocket {
    /// Opens the socket `spec` names (bound; connected or joined where that applies).
    pub fn open(spec: &OverlaySpec) -> Result<OverlaySocket, OpenError> {
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
            } => (
                SocketAddr::new(*remote, 0),
                SocketAddr::new(local.unwrap_or(unspecified(*remote)), 0),
                Codec::Gre(endpoint.clone()),
            ),
            OverlaySpec::L2tpv3 {
                remote,
                ports,
                local,
                endpoint,
            } => {
                let (src, dst) = ports.unwrap_or((0, 0));
                (
                    SocketAddr::new(*remote, dst),
                    SocketAddr::new(local.unwrap_or(unspecified(*remote)), src),
                    Codec::L2tpv3(endpoint.clone()),
                )
            }
        };
        let step = |step: String| move |source| OpenError { step, source };
        let udp = match &codec {
            Codec::Vxlan { .. } => true,
            Codec::Gre(_) => false,
            Codec::L2tpv3(e) => e.udp,
        };
        let domain = Domain::for_address(remote);
        let sock = if udp {
            Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
        } else {
            let proto = match codec {
                Codec::Gre(_) => gre::IP_PROTO,
                _ => l2tpv3::IP_PROTO,
            };
            Socket::new(domain, Type::RAW, Some(Protocol::from(proto)))
        }
        .map_err(step("socket".into()))?;
        sock.set_nonblocking(true).map_err(step("socket".into()))?;
        sock.set_cloexec(true).map_err(step("socket".into()))?;
        let group = remote.ip().is_multicast();
        if group {
            sock.set_reuse_address(true)
                .map_err(step("socket".into()))?;
        }
        sock.bind(&local.into())
            .map_err(step(format!("bind {local}")))?;
        if group {
            match remote.ip() {
                IpAddr::V4(g) => sock.join_multicast_v4(&g, &Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(g) => sock.join_multicast_v6(&g, 0),
            }
            .map_err(step(format!("join {}", remote.ip())))?;
            let _ = sock.set_multicast_loop_v4(false);
        }
        // Raw sockets have no ports: connecting makes the kernel drop every packet from
        // anyone but the peer. UDP peers may send from other ports than they listen on
        // (Linux's VXLAN picks one per flow), so there the caller checks the address.
        if !udp {
            sock.connect(&remote.into())
                .map_err(step(format!("connect {}", remote.ip())))?;
        }
        Ok(OverlaySocket {
            sock,
            codec,
            remote,
            connected: !udp,
            ipv4_header: !udp && remote.is_ipv4(),
        })
    }

    /// The inner frame of a received packet (IP header stripped, overlay header
    /// checked).
    pub fn inner<'a>(&self, packet: &'a [u8]) -> Result<&'a [u8], OverlayError> {
        let body = if self.ipv4_header {
            strip_ipv4_header(packet)?
        } else {
            packet
        };
        self.codec.decap(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two L2TPv3-over-UDP endpoints on loopback carry a frame each way.
    #[test]
    fn udp_endpoints_on_loopback_carry_frames() {
        let a = OverlaySpec::parse(
            "l2tpv3:127.0.0.1,udp=1,srcport=0,dstport=0,rx_session=1,tx_session=2",
        )
        .unwrap();
        let mut ea = OverlaySocket::open(&a).unwrap();
        let pa = ea.sock.local_addr().unwrap().as_socket().unwrap().port();
        let b = OverlaySpec::parse(&format!(
            "l2tpv3:127.0.0.1,udp=1,srcport=0,dstport={pa},rx_session=2,tx_session=1"
        ))
        .unwrap();
        let eb = OverlaySocket::open(&b).unwrap();
        assert!(!eb.connected && !eb.ipv4_header);
        let mut h = [0u8; MAX_HEADER];
        let n = ea.codec.encap_header(&mut h);
        let mut packet = h[..n].to_vec();
        packet.extend_from_slice(b"frame");
        assert_eq!(eb.inner(&packet).unwrap(), b"frame");
        // The other direction's session is refused.
        assert!(ea.inner(&packet).is_err());
        assert_eq!(ea.remote.port(), 0);
        let err =
            OverlaySocket::open(&OverlaySpec::parse("gre:127.0.0.1,local=192.0.2.77").unwrap())
                .unwrap_err();
        assert!(
            err.step == "socket" || err.step.starts_with("bind"),
            "{err}"
        );
    }
}
