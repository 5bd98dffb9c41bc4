//! linux.uml 6.1's vector transports, `vec<N>:transport=NAME,option=value,...`:
//! - `tap`: the host tap `ifname`;
//! - `raw`: every frame of the host interface `ifname` (an AF_PACKET socket);
//! - `hybrid`: the tap `ifname` for what the guest sends, a packet socket on it for what
//!   it receives;
//! - `l2tpv3` and `gre`: an Ethernet pseudowire to `dst` (from `src`) over UDP or raw IP,
//!   with the headers of `uml_proto::overlay` and its option reader (linux.uml's names:
//!   `rx_session`, `tx_cookie`, `cookie64`, `counter`, `srcport`, `rx_key`, ...).
//!
//! linux.uml's tuning options (`depth`, `gro`, `mtu`, `headroom`, `vec`, `v6`) are
//! accepted and need nothing here: frames go one per system call. The tap carries plain
//! Ethernet frames (no IFF_VNET_HDR: the host offloads nothing to it, so it hands over
//! finished frames); the packet socket uses virtio-net headers (`vnet`).

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};

use socket2::SockAddr;
use uml_proto::ether::MacAddr;
use uml_proto::overlay::link::{OverlaySocket, MAX_HEADER};
use uml_proto::overlay::spec::{kernel_number, OverlaySpec};

use super::packet::Packet;
use super::spec::parse_mac;
use super::tuntap::Tap;

/// The transport of a `vec<N>:` device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VecTransport {
    Tap {
        ifname: String,
    },
    Raw {
        ifname: String,
    },
    Hybrid {
        ifname: String,
    },
    /// `l2tpv3` or `gre`, as an overlay endpoint.
    Overlay(OverlaySpec),
}

impl VecTransport {
    pub fn name(&self) -> &'static str {
        match self {
            VecTransport::Tap { .. } => "tap",
            VecTransport::Raw { .. } => "raw",
            VecTransport::Hybrid { .. } => "hybrid",
            VecTransport::Overlay(o) => o.kind(),
        }
    }
}

/// linux.uml's options that tune its ring buffers and offloads: numbers, no effect here.
const TUNING: &[&str] = &["depth", "gro", "mtu", "headroom", "vec", "v6"];

/// Reads the part after `vec<N>:`; returns the transport and the `mac=` option.
pub fn parse(value: &str) -> Result<(VecTransport, Option<MacAddr>), String> {
    let mut opts: Vec<(&str, &str)> = Vec::new();
    for part in value.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("option '{part}' is not NAME=VALUE"))?;
        if opts.iter().any(|(seen, _)| *seen == k) {
            return Err(format!("option '{k}' given twice"));
        }
        opts.push((k, v));
    }
    let mut take = |name: &str| {
        let at = opts.iter().position(|(k, _)| *k == name)?;
        Some(opts.remove(at).1)
    };
    let transport = take("transport").ok_or("no transport= given")?;
    let mac = take("mac")
        .map(parse_mac)
        .transpose()
        .map_err(|e| e.to_string())?;
    for t in TUNING {
        if let Some(v) = take(t) {
            kernel_number(v).ok_or_else(|| format!("{t}={v} is not a number"))?;
        }
    }
    let ifname = take("ifname");
    let (src, dst) = (take("src"), take("dst"));
    let need_ifname = || {
        ifname
            .map(str::to_owned)
            .ok_or_else(|| format!("transport={transport} needs ifname="))
    };
    let t = match transport {
        "tap" => VecTransport::Tap {
            ifname: need_ifname()?,
        },
        "raw" => VecTransport::Raw {
            ifname: need_ifname()?,
        },
        "hybrid" => VecTransport::Hybrid {
            ifname: need_ifname()?,
        },
        kind @ ("l2tpv3" | "gre") => {
            let dst = dst.ok_or_else(|| format!("transport={kind} needs dst="))?;
            let mut text = format!("{kind}:[{dst}]");
            if let Some(src) = src {
                text.push_str(&format!(",local={src}"));
            }
            for (k, v) in opts.drain(..) {
                if k == "local" || k == "key" {
                    return Err(format!("option '{k}' does not apply to {kind}"));
                }
                text.push_str(&format!(",{k}={v}"));
            }
            VecTransport::Overlay(OverlaySpec::parse(&text).map_err(|e| {
                // The overlay reader names its own text; name the user's options instead.
                let e = e.to_string();
                e.split_once("': ")
                    .map_or(e.clone(), |(_, why)| why.to_owned())
            })?)
        }
        other => {
            return Err(format!(
                "unknown transport '{other}' (tap, raw, hybrid, l2tpv3 or gre)"
            ))
        }
    };
    if let Some((k, _)) = opts.first() {
        return Err(format!(
            "option '{k}' does not apply to transport={transport}"
        ));
    }
    Ok((t, mac))
}

/// The host side of an open vector device.
pub enum Vector {
    Tap(Tap),
    Raw(Packet),
    Hybrid {
        tap: Tap,
        raw: Packet,
    },
    Overlay {
        /// Mutable for the header's sequence number or counter.
        link: Box<RefCell<OverlaySocket>>,
        /// Where frames go (UDP); raw IP sockets are connected instead.
        remote: Option<SockAddr>,
        /// Only packets from this address are the peer's.
        peer: IpAddr,
    },
}

/// Room for an IPv4 header with options, the largest overlay header and a frame.
const PACKET_MAX: usize = 60 + MAX_HEADER + super::phy::MAX_FRAME + 64;

impl Vector {
    /// Opens the host side; the error names the step that failed.
    pub fn open(t: &VecTransport) -> Result<Vector, String> {
        match t {
            VecTransport::Tap { ifname } => {
                Ok(Vector::Tap(Tap::open(ifname).map_err(|e| e.to_string())?))
            }
            VecTransport::Raw { ifname } => Ok(Vector::Raw(
                Packet::open(ifname).map_err(|e| format!("raw socket on {ifname}: {e}"))?,
            )),
            VecTransport::Hybrid { ifname } => Ok(Vector::Hybrid {
                tap: Tap::open(ifname).map_err(|e| e.to_string())?,
                raw: Packet::open(ifname).map_err(|e| format!("raw socket on {ifname}: {e}"))?,
            }),
            VecTransport::Overlay(spec) => open_overlay(spec),
        }
    }

    /// The descriptor frames arrive on.
    pub fn fd(&self) -> RawFd {
        match self {
            Vector::Tap(t) => t.fd(),
            Vector::Raw(p) | Vector::Hybrid { raw: p, .. } => p.fd(),
            Vector::Overlay { link, .. } => link.borrow().sock.as_raw_fd(),
        }
    }

    /// The next frame for the guest, or None when nothing (more) is waiting; packets
    /// that are not for this device are dropped on the way.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self {
            Vector::Tap(t) => t.recv(buf),
            // On a packet socket, what the host itself sends out of the interface shows
            // up too: raw keeps what arrives, hybrid (whose own frames enter the tap)
            // keeps what the host sends into its tap.
            Vector::Raw(p) => loop {
                match p.recv(buf)? {
                    Some((_, true)) => continue,
                    Some((n, false)) => return Ok(Some(n)),
                    None => return Ok(None),
                }
            },
            Vector::Hybrid { raw, .. } => loop {
                match raw.recv(buf)? {
                    Some((n, true)) => return Ok(Some(n)),
                    Some((_, false)) => continue,
                    None => return Ok(None),
                }
            },
            Vector::Overlay { link, peer, .. } => loop {
                let link = link.borrow();
                let mut packet = [MaybeUninit::<u8>::uninit(); PACKET_MAX];
                let (n, from) = match link.sock.recv_from(&mut packet) {
                    Ok(r) => r,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                    Err(e) => return Err(e),
                };
                if from.as_socket().map(|a| a.ip()) != Some(*peer) {
                    continue;
                }
                // SAFETY: recv_from initialised the first `n` bytes.
                let packet = unsafe { std::slice::from_raw_parts(packet.as_ptr().cast::<u8>(), n) };
                // Not this session's, key's or cookie's: dropped, as linux.uml does.
                if let Ok(frame) = link.inner(packet) {
                    let len = frame.len().min(buf.len());
                    buf[..len].copy_from_slice(&frame[..len]);
                    return Ok(Some(len));
                }
            },
        }
    }

    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        match self {
            Vector::Tap(t) | Vector::Hybrid { tap: t, .. } => t.send(frame),
            Vector::Raw(p) => p.send(frame),
            Vector::Overlay { link, remote, .. } => {
                let mut link = link.borrow_mut();
                let mut header = [0u8; MAX_HEADER];
                let n = link.codec.encap_header(&mut header);
                let iov = [IoSlice::new(&header[..n]), IoSlice::new(frame)];
                match remote {
                    Some(to) => link.sock.send_to_vectored(&iov, to),
                    None => link.sock.send_vectored(&iov),
                }
                .map(drop)
            }
        }
    }
}

/// The overlay's socket (`uml_proto::overlay::link`): UDP bound to src:srcport sending
/// to dst:dstport, or raw IP bound to src and connected to dst.
fn open_overlay(spec: &OverlaySpec) -> Result<Vector, String> {
    if let OverlaySpec::Vxlan { .. } = spec {
        return Err("vxlan is not a vector transport".into());
    }
    let link = OverlaySocket::open(spec).map_err(|e| {
        let hint = if e.source.raw_os_error() == Some(libc::EPERM) {
            " (raw IP sockets need root or CAP_NET_RAW; l2tpv3 can use udp=1)"
        } else {
            ""
        };
        format!("{e}{hint}")
    })?;
    Ok(Vector::Overlay {
        remote: (!link.connected).then(|| link.remote.into()),
        peer: link.remote.ip(),
        link: Box::new(RefCell::new(link)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l2tpv3_with_linux_uml_names() {
        let (t, mac) = parse(
            "transport=l2tpv3,udp=1,src=10.9.0.2,dst=10.9.0.1,srcport=1706,dstport=1707,\
             rx_session=5,tx_session=6,rx_cookie=0x1122334455667788,tx_cookie=0x99,\
             cookie64=1,counter=1,depth=128,mac=fe:fd:0:0:0:7",
        )
        .unwrap();
        assert_eq!(mac, Some(MacAddr([0xfe, 0xfd, 0, 0, 0, 7])));
        let VecTransport::Overlay(OverlaySpec::L2tpv3 {
            remote,
            ports,
            local,
            endpoint,
        }) = t
        else {
            panic!("{t:?}")
        };
        assert_eq!(remote.to_string(), "10.9.0.1");
        assert_eq!(local.unwrap().to_string(), "10.9.0.2");
        assert_eq!(ports, Some((1706, 1707)));
        assert!(endpoint.udp && endpoint.counter);
        assert_eq!((endpoint.rx_session, endpoint.tx_session), (5, 6));
    }

    #[test]
    fn gre_tap_raw_hybrid() {
        let (t, _) = parse("transport=gre,src=10.0.0.1,dst=10.0.0.2,rx_key=5,tx_key=6").unwrap();
        assert_eq!(t.name(), "gre");
        assert_eq!(
            parse("transport=tap,ifname=tap0").unwrap().0,
            VecTransport::Tap {
                ifname: "tap0".into()
            }
        );
        assert_eq!(parse("transport=raw,ifname=veth0").unwrap().0.name(), "raw");
        assert_eq!(
            parse("transport=hybrid,ifname=t").unwrap().0.name(),
            "hybrid"
        );
    }

    #[test]
    fn bad_options_say_why() {
        let e = |s: &str| parse(s).unwrap_err();
        assert!(
            e("ifname=tap0").contains("no transport"),
            "{}",
            e("ifname=tap0")
        );
        assert!(e("transport=tap").contains("needs ifname"));
        assert!(e("transport=gre,src=10.0.0.1").contains("needs dst"));
        assert!(e("transport=l2tpv3,dst=10.0.0.1").contains("rx_session"));
        assert!(e("transport=tap,ifname=t,rx_key=1").contains("does not apply"));
        assert!(e("transport=pipe,ifname=t").contains("unknown transport"));
        assert!(e("transport=tap,ifname=t,depth=x").contains("not a number"));
        assert!(e("transport=gre,dst=10.0.0.1,key=1").contains("does not apply"));
        assert!(e("transport=gre,dst=10.0.0.1,rx_key=1,rx_key=2").contains("twice"));
    }
}
