//! A small rtnetlink (NETLINK_ROUTE) client for IPv4: dumps of links, addresses, routes
//! and neighbour / proxy-neighbour entries, and the few changes uml_net makes — an
//! address and the up flag on a link, a host route, a proxy ARP entry, the proxy_arp
//! switch — each addressed by interface index, never by name, so that a device deleted
//! and re-created under the same name is never the one changed.
//!
//! Messages are built and parsed here by hand (a header, a fixed struct, then
//! type-length-value attributes); replies are accepted only from the kernel (port 0)
//! and only with the sequence number of the request.

use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    bind, recvfrom, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

const NLMSG_HDR: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWNEIGH: u16 = 28;
const RTM_DELNEIGH: u16 = 29;
const RTM_GETNEIGH: u16 = 30;

const AF_INET: u8 = libc::AF_INET as u8;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_AF_SPEC: u16 = 26;
const IFLA_INET_CONF: u16 = 1;
/// IPV4_DEVCONF_PROXY_ARP: the per-device proxy_arp switch.
const DEVCONF_PROXY_ARP: u16 = 3;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NDA_PROTOCOL: u16 = 12;

/// The hardware type of Ethernet links.
pub const ARPHRD_ETHER: u16 = 1;
/// Route tables.
pub const RT_TABLE_MAIN: u32 = 254;
pub const RT_TABLE_LOCAL: u32 = 255;
/// Route types.
pub const RTN_UNICAST: u8 = 1;
pub const RTN_LOCAL: u8 = 2;
pub const RTN_BROADCAST: u8 = 3;
/// Route scopes.
pub const RT_SCOPE_LINK: u8 = 253;
const RT_SCOPE_NOWHERE: u8 = 255;
/// Routes the kernel made itself (an interface address's subnet).
pub const RTPROT_KERNEL: u8 = 2;
/// A neighbour entry that is a published (proxy) one.
pub const NTF_PROXY: u8 = 0x08;
/// Neighbour states in which the neighbour has answered (or is configured).
pub const NUD_ANSWERED: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x80; // REACHABLE STALE DELAY PROBE PERMANENT

/// A failure of the netlink conversation.
#[derive(Debug)]
pub enum NetlinkError {
    /// The socket could not be made or used.
    Io(io::Error),
    /// The kernel refused a request (its errno).
    Kernel { what: &'static str, err: io::Error },
    /// A reply that does not parse.
    Malformed(&'static str),
}

impl fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetlinkError::Io(e) => write!(f, "netlink: {}", crate::tap::strerror(e)),
            NetlinkError::Kernel { what, err } => {
                write!(f, "{what}: {}", crate::tap::strerror(err))
            }
            NetlinkError::Malformed(m) => write!(f, "netlink: malformed reply ({m})"),
        }
    }
}

impl std::error::Error for NetlinkError {}

impl NetlinkError {
    /// The errno the kernel answered with, if it was a kernel refusal.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { err, .. } => err.raw_os_error(),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, NetlinkError>;

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    /// The ARPHRD_* hardware type (ARPHRD_ETHER for Ethernet).
    pub link_type: u16,
    pub name: String,
    /// The rtnl link kind (`tun`, `veth`, `bridge`...), None for plain devices.
    pub kind: Option<String>,
    pub mac: Option<[u8; 6]>,
    /// The interface's IPv4 proxy_arp switch, when the kernel reported it.
    pub proxy_arp: Option<bool>,
}

/// One IPv4 address of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr {
    pub index: u32,
    pub prefix_len: u8,
    pub local: Ipv4Addr,
    pub broadcast: Option<Ipv4Addr>,
}

/// One IPv4 route of any table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub table: u32,
    pub dst: Ipv4Addr,
    pub dst_len: u8,
    pub protocol: u8,
    pub scope: u8,
    pub kind: u8,
    pub oif: Option<u32>,
    /// Every gateway (one, or one per multipath next hop).
    pub gateways: Vec<Ipv4Addr>,
}

impl Route {
    /// Whether `addr` lies in this route's destination prefix.
    pub fn covers(&self, addr: Ipv4Addr) -> bool {
        let mask = prefix_mask(self.dst_len);
        u32::from(addr) & mask == u32::from(self.dst) & mask
    }
}

/// The netmask of a prefix length, as an integer.
pub fn prefix_mask(len: u8) -> u32 {
    match len {
        0 => 0,
        l => u32::MAX << (32 - u32::from(l.min(32))),
    }
}

/// One IPv4 neighbour or proxy-neighbour entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neigh {
    pub index: u32,
    pub dst: Ipv4Addr,
    pub state: u16,
    pub flags: u8,
    pub lladdr: Option<Vec<u8>>,
    /// NDA_PROTOCOL: who made the entry (0 when unset).
    pub protocol: u8,
}

/// A NETLINK_ROUTE socket.
pub struct Rtnl {
    fd: OwnedFd,
    seq: u32,
}

/// A request under construction: header, fixed part, attributes.
struct Msg(Vec<u8>);

impl Msg {
    fn new(kind: u16, flags: u16, fixed: &[u8]) -> Msg {
        let mut b = vec![0u8; NLMSG_HDR];
        b[4..6].copy_from_slice(&kind.to_ne_bytes());
        b[6..8].copy_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(fixed);
        Msg(b)
    }

    fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Msg {
        let len = 4 + data.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(align(self.0.len()), 0);
        self
    }

    /// A nested attribute holding `inner`'s attributes.
    fn nest(&mut self, kind: u16, inner: &Msg) -> &mut Msg {
        self.attr(kind, &inner.0)
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[0..4].copy_from_slice(&len.to_ne_bytes());
        self.0[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.0
    }
}

/// A bare attribute list (for nesting).
fn attrs() -> Msg {
    Msg(Vec::new())
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// Iterates over type-length-value attributes in `b`.
fn parse_attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let kind = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff; // without NESTED/BYTEORDER
        if len < 4 || len > b.len() {
            return None;
        }
        let data = &b[4..len];
        b = &b[align(len).min(b.len())..];
        Some((kind, data))
    })
}

fn ipv4(data: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(data).ok().map(Ipv4Addr::from)
}

fn u32_of(data: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(data).ok().map(u32::from_ne_bytes)
}

fn ifaddrmsg(prefix_len: u8, index: u32) -> [u8; 8] {
    let mut m = [0u8; 8];
    m[0] = AF_INET;
    m[1] = prefix_len;
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m
}

fn ifinfomsg(index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m[8..12].copy_from_slice(&flags.to_ne_bytes());
    m[12..16].copy_from_slice(&change.to_ne_bytes());
    m
}

/// rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
fn rtmsg(dst_len: u8, table: u8, protocol: u8, scope: u8, kind: u8) -> [u8; 12] {
    [
        AF_INET, dst_len, 0, 0, table, protocol, scope, kind, 0, 0, 0, 0,
    ]
}

/// ndmsg: family, pad, pad, ifindex, state, flags, type.
fn ndmsg(index: u32, state: u16, flags: u8) -> [u8; 12] {
    let mut m = [0u8; 12];
    m[0] = AF_INET;
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m[8..10].copy_from_slice(&state.to_ne_bytes());
    m[10] = flags;
    m
}

impl Rtnl {
    /// Opens a NETLINK_ROUTE socket. Changes need CAP_NET_ADMIN both when the socket is
    /// opened and when a request is sent; dumps need nothing.
    pub fn open() -> Result<Rtnl> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(|e| NetlinkError::Io(e.into()))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|e| NetlinkError::Io(e.into()))?;
        // Every wait is bounded: a kernel that never answers is an error, not a hang.
        let limit = nix::sys::time::TimeVal::new(5, 0);
        nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &limit)
            .map_err(|e| NetlinkError::Io(e.into()))?;
        Ok(Rtnl { fd, seq: 0 })
    }

    /// Sends `msg` and collects every reply message's (type, payload) until the dump
    /// ends or the acknowledgement arrives; a kernel error becomes NetlinkError::Kernel.
    fn talk(&mut self, msg: Msg, what: &'static str) -> Result<Vec<(u16, Vec<u8>)>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let bytes = msg.finish(seq);
        sendto(
            self.fd.as_raw_fd(),
            &bytes,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )
        .map_err(|e| NetlinkError::Io(e.into()))?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let (n, from) = recvfrom::<NetlinkAddr>(self.fd.as_raw_fd(), &mut buf)
                .map_err(|e| NetlinkError::Io(e.into()))?;
            if from.map(|a| a.pid()) != Some(0) {
                continue; // only the kernel may answer
            }
            let mut b = &buf[..n];
            while b.len() >= NLMSG_HDR {
                let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                if len < NLMSG_HDR || len > b.len() {
                    return Err(NetlinkError::Malformed("message length"));
                }
                let kind = u16::from_ne_bytes([b[4], b[5]]);
                let rseq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
                let body = &b[NLMSG_HDR..len];
                b = &b[align(len).min(b.len())..];
                if rseq != seq {
                    continue;
                }
                match kind {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let code = body
                            .get(..4)
                            .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                            .ok_or(NetlinkError::Malformed("error message"))?;
                        if code == 0 {
                            return Ok(out);
                        }
                        return Err(NetlinkError::Kernel {
                            what,
                            err: io::Error::from_raw_os_error(-code),
                        });
                    }
                    _ => out.push((kind, body.to_vec())),
                }
            }
        }
    }

    /// Every link with its name, kind, MAC and proxy_arp switch.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let msg = Msg::new(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, &ifinfomsg(0, 0, 0));
        let replies = self.talk(msg, "listing links")?;
        Ok(replies
            .iter()
            .filter(|(k, b)| *k == RTM_NEWLINK && b.len() >= 16)
            .filter_map(|(_, b)| parse_link(b))
            .collect())
    }

    /// One link by index (None if there is no such index).
    pub fn link(&mut self, index: u32) -> Result<Option<Link>> {
        let msg = Msg::new(
            RTM_GETLINK,
            NLM_F_REQUEST | NLM_F_ACK,
            &ifinfomsg(index, 0, 0),
        );
        match self.talk(msg, "reading a link") {
            Ok(r) => Ok(r.iter().find_map(|(_, b)| parse_link(b))),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every IPv4 address of every interface.
    pub fn addresses(&mut self) -> Result<Vec<Addr>> {
        let msg = Msg::new(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, &ifaddrmsg(0, 0));
        let replies = self.talk(msg, "listing addresses")?;
        Ok(replies
            .iter()
            .filter(|(_, b)| b.len() >= 8 && b[0] == AF_INET)
            .filter_map(|(_, b)| {
                let index = u32_of(&b[4..8])?;
                let (mut local, mut address, mut broadcast) = (None, None, None);
                for (k, d) in parse_attrs(&b[8..]) {
                    match k {
                        IFA_LOCAL => local = ipv4(d),
                        IFA_ADDRESS => address = ipv4(d),
                        IFA_BROADCAST => broadcast = ipv4(d),
                        _ => {}
                    }
                }
                Some(Addr {
                    index,
                    prefix_len: b[1],
                    local: local.or(address)?,
                    broadcast,
                })
            })
            .collect())
    }

    /// Every IPv4 route of every table.
    pub fn routes(&mut self) -> Result<Vec<Route>> {
        let msg = Msg::new(
            RTM_GETROUTE,
            NLM_F_REQUEST | NLM_F_DUMP,
            &rtmsg(0, 0, 0, 0, 0),
        );
        let replies = self.talk(msg, "listing routes")?;
        Ok(replies
            .iter()
            .filter(|(_, b)| b.len() >= 12 && b[0] == AF_INET)
            .map(|(_, b)| parse_route(b))
            .collect())
    }

    /// Every IPv4 neighbour entry (`proxy`: the published entries instead).
    pub fn neighbours(&mut self, proxy: bool) -> Result<Vec<Neigh>> {
        let flags = if proxy { NTF_PROXY } else { 0 };
        let msg = Msg::new(
            RTM_GETNEIGH,
            NLM_F_REQUEST | NLM_F_DUMP,
            &ndmsg(0, 0, flags),
        );
        let replies = self.talk(msg, "listing neighbours")?;
        Ok(replies
            .iter()
            .filter(|(_, b)| b.len() >= 12 && b[0] == AF_INET)
            .filter_map(|(_, b)| parse_neigh(b))
            .filter(|n| (n.flags & NTF_PROXY != 0) == proxy)
            .collect())
    }

    /// Gives link `index` the address `addr`/`prefix_len` (fails if it has it already).
    pub fn add_address(&mut self, index: u32, addr: Ipv4Addr, prefix_len: u8) -> Result<()> {
        let mut msg = Msg::new(
            RTM_NEWADDR,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &ifaddrmsg(prefix_len, index),
        );
        msg.attr(IFA_LOCAL, &addr.octets())
            .attr(IFA_ADDRESS, &addr.octets());
        self.talk(msg, "adding the address").map(drop)
    }

    /// Brings link `index` up.
    pub fn set_up(&mut self, index: u32) -> Result<()> {
        let up = libc::IFF_UP as u32;
        let msg = Msg::new(
            RTM_SETLINK,
            NLM_F_REQUEST | NLM_F_ACK,
            &ifinfomsg(index, up, up),
        );
        self.talk(msg, "bringing the link up").map(drop)
    }

    /// Switches IPv4 proxy ARP on link `index` on or off.
    pub fn set_proxy_arp(&mut self, index: u32, on: bool) -> Result<()> {
        let mut conf = attrs();
        conf.attr(DEVCONF_PROXY_ARP, &u32::from(on).to_ne_bytes());
        let mut inet = attrs();
        inet.nest(IFLA_INET_CONF, &conf);
        let mut spec = attrs();
        spec.nest(u16::from(AF_INET), &inet);
        let mut msg = Msg::new(
            RTM_SETLINK,
            NLM_F_REQUEST | NLM_F_ACK,
            &ifinfomsg(index, 0, 0),
        );
        msg.nest(IFLA_AF_SPEC, &spec);
        self.talk(msg, "switching proxy_arp").map(drop)
    }

    /// Adds the main-table route `addr`/32 out of link `index`, tagged with `protocol`
    /// (fails with EEXIST if that route exists).
    pub fn add_host_route(&mut self, index: u32, addr: Ipv4Addr, protocol: u8) -> Result<()> {
        let mut msg = Msg::new(
            RTM_NEWROUTE,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &rtmsg(
                32,
                RT_TABLE_MAIN as u8,
                protocol,
                RT_SCOPE_LINK,
                RTN_UNICAST,
            ),
        );
        msg.attr(RTA_DST, &addr.octets())
            .attr(RTA_OIF, &index.to_ne_bytes())
            .attr(RTA_TABLE, &RT_TABLE_MAIN.to_ne_bytes());
        self.talk(msg, "adding the host route").map(drop)
    }

    /// Removes the main-table route `addr`/32 out of link `index`, but only one tagged
    /// with `protocol` (the kernel matches all three).
    pub fn del_host_route(&mut self, index: u32, addr: Ipv4Addr, protocol: u8) -> Result<()> {
        let mut msg = Msg::new(
            RTM_DELROUTE,
            NLM_F_REQUEST | NLM_F_ACK,
            &rtmsg(
                32,
                RT_TABLE_MAIN as u8,
                protocol,
                RT_SCOPE_NOWHERE,
                RTN_UNICAST,
            ),
        );
        msg.attr(RTA_DST, &addr.octets())
            .attr(RTA_OIF, &index.to_ne_bytes())
            .attr(RTA_TABLE, &RT_TABLE_MAIN.to_ne_bytes());
        self.talk(msg, "removing the host route").map(drop)
    }

    /// Publishes `addr` on link `index` (a proxy ARP entry) tagged with `protocol`. The
    /// kernel does not refuse an existing entry (it would re-tag it): look first.
    pub fn add_proxy(&mut self, index: u32, addr: Ipv4Addr, protocol: u8) -> Result<()> {
        let mut msg = Msg::new(
            RTM_NEWNEIGH,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &ndmsg(index, 0x80, NTF_PROXY),
        );
        msg.attr(NDA_DST, &addr.octets())
            .attr(NDA_PROTOCOL, &[protocol]);
        self.talk(msg, "publishing the proxy ARP entry").map(drop)
    }

    /// Withdraws the proxy ARP entry for `addr` on link `index`.
    pub fn del_proxy(&mut self, index: u32, addr: Ipv4Addr) -> Result<()> {
        let mut msg = Msg::new(
            RTM_DELNEIGH,
            NLM_F_REQUEST | NLM_F_ACK,
            &ndmsg(index, 0, NTF_PROXY),
        );
        msg.attr(NDA_DST, &addr.octets());
        self.talk(msg, "withdrawing the proxy ARP entry").map(drop)
    }
}

fn parse_link(b: &[u8]) -> Option<Link> {
    let index = u32_of(b.get(4..8)?)?;
    let mut link = Link {
        index,
        link_type: u16::from_ne_bytes([*b.get(2)?, *b.get(3)?]),
        name: String::new(),
        kind: None,
        mac: None,
        proxy_arp: None,
    };
    for (k, d) in parse_attrs(b.get(16..)?) {
        match k {
            IFLA_IFNAME => link.name = c_str(d),
            IFLA_ADDRESS => link.mac = <[u8; 6]>::try_from(d).ok(),
            IFLA_LINKINFO => {
                link.kind = parse_attrs(d)
                    .find(|(k, _)| *k == IFLA_INFO_KIND)
                    .map(|(_, v)| c_str(v));
            }
            IFLA_AF_SPEC => {
                let inet = parse_attrs(d).find(|(k, _)| *k == u16::from(AF_INET));
                let conf =
                    inet.and_then(|(_, v)| parse_attrs(v).find(|(k, _)| *k == IFLA_INET_CONF));
                // A plain array of u32, entry i holding devconf i + 1.
                let at = usize::from(DEVCONF_PROXY_ARP - 1) * 4;
                link.proxy_arp = conf
                    .and_then(|(_, v)| u32_of(v.get(at..at + 4)?))
                    .map(|v| v != 0);
            }
            _ => {}
        }
    }
    Some(link)
}

fn parse_route(b: &[u8]) -> Route {
    let mut r = Route {
        table: u32::from(b[4]),
        dst: Ipv4Addr::UNSPECIFIED,
        dst_len: b[1],
        protocol: b[5],
        scope: b[6],
        kind: b[7],
        oif: None,
        gateways: Vec::new(),
    };
    for (k, d) in parse_attrs(&b[12..]) {
        match k {
            RTA_DST => r.dst = ipv4(d).unwrap_or(r.dst),
            RTA_OIF => r.oif = u32_of(d),
            RTA_GATEWAY => r.gateways.extend(ipv4(d)),
            RTA_TABLE => r.table = u32_of(d).unwrap_or(r.table),
            RTA_MULTIPATH => {
                // struct rtnexthop { u16 len; u8 flags; u8 hops; i32 ifindex } + attrs.
                let mut rest = d;
                while rest.len() >= 8 {
                    let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
                    if len < 8 || len > rest.len() {
                        break;
                    }
                    let hop = &rest[8..len];
                    r.gateways.extend(
                        parse_attrs(hop)
                            .filter(|(k, _)| *k == RTA_GATEWAY)
                            .filter_map(|(_, v)| ipv4(v)),
                    );
                    rest = &rest[align(len).min(rest.len())..];
                }
            }
            _ => {}
        }
    }
    r
}

fn parse_neigh(b: &[u8]) -> Option<Neigh> {
    let mut n = Neigh {
        index: u32_of(&b[4..8])?,
        dst: Ipv4Addr::UNSPECIFIED,
        state: u16::from_ne_bytes([b[8], b[9]]),
        flags: b[10],
        lladdr: None,
        protocol: 0,
    };
    let mut dst = None;
    for (k, d) in parse_attrs(&b[12..]) {
        match k {
            NDA_DST => dst = ipv4(d),
            NDA_LLADDR => n.lladdr = Some(d.to_vec()),
            NDA_PROTOCOL => n.protocol = d.first().copied().unwrap_or(0),
            _ => {}
        }
    }
    n.dst = dst?;
    Some(n)
}

fn c_str(d: &[u8]) -> String {
    let end = d.iter().position(|&c| c == 0).unwrap_or(d.len());
    String::from_utf8_lossy(&d[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_laid_out_like_the_kernel_expects() {
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_REQUEST, &rtmsg(32, 254, 77, 253, 1));
        m.attr(RTA_DST, &[10, 0, 0, 1])
            .attr(RTA_OIF, &7u32.to_ne_bytes());
        let b = m.finish(9);
        assert_eq!(b.len(), 16 + 12 + 8 + 8);
        assert_eq!(
            u32::from_ne_bytes(b[0..4].try_into().unwrap()),
            b.len() as u32
        );
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), RTM_NEWROUTE);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 9);
        let r = parse_route(&b[16..]);
        assert_eq!(
            (r.dst, r.dst_len, r.protocol, r.oif, r.table),
            (Ipv4Addr::new(10, 0, 0, 1), 32, 77, Some(7), 254)
        );
        assert!(r.covers(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(!r.covers(Ipv4Addr::new(10, 0, 0, 2)));
    }

    #[test]
    fn attributes_odd_lengths_are_padded_and_truncation_stops_parsing() {
        let mut m = attrs();
        m.attr(NDA_PROTOCOL, &[77]).attr(NDA_DST, &[1, 2, 3, 4]);
        assert_eq!(m.0.len(), 8 + 8);
        let got: Vec<_> = parse_attrs(&m.0).collect();
        assert_eq!(
            got,
            vec![(NDA_PROTOCOL, &[77u8][..]), (NDA_DST, &[1, 2, 3, 4][..])]
        );
        assert_eq!(parse_attrs(&m.0[..4]).count(), 0);
        assert_eq!(parse_attrs(&m.0[..10]).count(), 1);
    }

    #[test]
    fn multipath_gateways_are_all_collected() {
        let mut hop = attrs();
        hop.attr(RTA_GATEWAY, &[192, 168, 1, 1]);
        let mut nh = vec![0u8; 8];
        nh[0..2].copy_from_slice(&((8 + hop.0.len()) as u16).to_ne_bytes());
        nh.extend_from_slice(&hop.0);
        let mut m = Msg(rtmsg(0, 254, 4, 0, 1).to_vec());
        m.attr(RTA_MULTIPATH, &nh).attr(RTA_GATEWAY, &[10, 0, 0, 1]);
        let r = parse_route(&m.0);
        assert_eq!(
            r.gateways,
            [Ipv4Addr::new(192, 168, 1, 1), Ipv4Addr::new(10, 0, 0, 1)]
        );
        assert!(
            r.covers(Ipv4Addr::new(8, 8, 8, 8)),
            "a default route covers all"
        );
    }

    #[test]
    fn masks_of_prefix_lengths() {
        assert_eq!(prefix_mask(0), 0);
        assert_eq!(prefix_mask(24), 0xffff_ff00);
        assert_eq!(prefix_mask(32), u32::MAX);
    }

    #[test]
    fn dumps_of_this_namespace_parse() {
        let mut nl = Rtnl::open().unwrap();
        let links = nl.links().unwrap();
        let lo = links.iter().find(|l| l.name == "lo").expect("lo");
        assert_eq!(nl.link(lo.index).unwrap().unwrap().name, "lo");
        assert!(nl.link(0x7fff_fff0).unwrap().is_none());
        nl.addresses().unwrap();
        nl.routes().unwrap();
        nl.neighbours(false).unwrap();
        nl.neighbours(true).unwrap();
    }
}
