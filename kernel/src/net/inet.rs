//! Guest programs' AF_INET sockets (TCP, UDP, ICMP echo) over the devices' smoltcp
//! stacks. A socket lives on one device (TCP connections, where routing sent them) or
//! on every device (a listener or a UDP socket bound to the wildcard address); each
//! smoltcp socket is named by its device slot, the device's identity (a removed and
//! re-added ethN is another device) and its handle. Nothing here waits: an operation
//! that cannot go on now answers `Err(Wait)` and the sentry tries it again.
//! Closed connections finish their FIN handshake in the background (`Guest::orphans`).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::{icmp, tcp, udp};
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};

use super::services::RX_WINDOW;
use super::{Net, NetDev};

/// Linux errno values the socket calls answer with (positive).
pub mod errno {
    pub const EAGAIN: i64 = 11;
    pub const EINVAL: i64 = 22;
    pub const EPIPE: i64 = 32;
    pub const EMSGSIZE: i64 = 90;
    pub const EOPNOTSUPP: i64 = 95;
    pub const EADDRINUSE: i64 = 98;
    pub const EADDRNOTAVAIL: i64 = 99;
    pub const ENETUNREACH: i64 = 101;
    pub const ECONNRESET: i64 = 104;
    pub const EISCONN: i64 = 106;
    pub const ENOTCONN: i64 = 107;
    pub const ETIMEDOUT: i64 = 110;
    pub const ECONNREFUSED: i64 = 111;
    pub const EALREADY: i64 = 114;
    pub const EINPROGRESS: i64 = 115;
    pub const EDESTADDRREQ: i64 = 89;
}
use errno::*;

/// Why an operation did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockErr {
    /// It would wait (EAGAIN for a non-blocking socket).
    Wait,
    /// Failed with this errno (positive).
    Errno(i64),
}

pub type SockResult<T> = Result<T, SockErr>;

fn fail<T>(e: i64) -> SockResult<T> {
    Err(SockErr::Errno(e))
}

/// TCP send buffer per connection (the receive buffer is the services' window).
const TCP_TX: usize = 64 * 1024;
/// Listening sockets kept ready per device and guest listener.
const LISTENERS: usize = 4;
/// A connection attempt nobody answers gives up after this (ETIMEDOUT).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Datagrams queued per UDP or ICMP socket and device.
const DGRAMS: usize = 32;
/// Most sockets a device's stack holds (guest programs', the services' and the
/// shell's): a guest cannot make the kernel allocate without bound (a TCP socket holds
/// about 72 KiB of buffers, a datagram one about 100 KiB).
pub const MAX_SOCKETS: usize = 512;
const ENOBUFS: i64 = 105;

/// Whether device `d` may hold one more socket.
fn has_room(d: &NetDev) -> bool {
    d.sockets.iter().count() < MAX_SOCKETS
}

static NEXT_PORT: AtomicU32 = AtomicU32::new(0);

/// An ephemeral port (49152..65535, in turn).
pub fn ephemeral_port() -> u16 {
    49152 + (NEXT_PORT.fetch_add(1, Ordering::Relaxed) % 16384) as u16
}

/// One smoltcp socket of a guest socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub dev: usize,
    pub id: u64,
    pub h: SocketHandle,
}

/// Kernel-wide state of the guest sockets: connections closed by the guest that
/// still finish their handshake.
#[derive(Debug, Default)]
pub struct Guest {
    orphans: Vec<Slot>,
    /// The guest's bound UDP ports, for datagrams the guest sends to itself.
    udp_local: HashMap<u16, Weak<RefCell<VecDeque<Local>>>>,
}

/// A datagram the guest sent to one of its own addresses: data, source, destination.
type Local = (Vec<u8>, (Ipv4Address, u16), Ipv4Address);

impl Net {
    fn slot_dev(&mut self, s: Slot) -> Option<&mut NetDev> {
        self.dev_mut(s.dev, s.id)
    }

    fn tcp(&mut self, s: Slot) -> Option<&mut tcp::Socket<'static>> {
        Some(self.slot_dev(s)?.sockets.get_mut::<tcp::Socket>(s.h))
    }

    fn remove_slot(&mut self, s: Slot) {
        if let Some(d) = self.slot_dev(s) {
            d.sockets.remove(s.h);
        }
    }

    /// Drops the orphaned connections that are done.
    pub fn reap_guest_sockets(&mut self) {
        let orphans = std::mem::take(&mut self.guest.orphans);
        for s in orphans {
            match self.tcp(s).map(|t| t.state()) {
                None => {}
                Some(tcp::State::Closed | tcp::State::TimeWait) => self.remove_slot(s),
                Some(_) => self.guest.orphans.push(s),
            }
        }
    }

    /// The devices present: (slot, identity).
    fn present(&self) -> Vec<(usize, u64)> {
        self.devs
            .iter()
            .flatten()
            .map(|d| (d.spec.index, d.id))
            .collect()
    }

    /// Whether any device's stack has `port` bound for TCP (listening or connected)
    /// outside the guest socket `except`.
    fn tcp_port_used(&self, port: u16) -> bool {
        self.devs.iter().flatten().any(|d| {
            d.services.iter().any(|s| s.port == port)
                || d.sockets.iter().any(|(_, s)| match s {
                    smoltcp::socket::Socket::Tcp(t) => {
                        t.state() == tcp::State::Listen && t.listen_endpoint().port == port
                    }
                    _ => false,
                })
        })
    }

    /// Whether `ip` is the guest's own: 127.0.0.0/8 or a device's address (the stacks
    /// do not loop these back; the socket layer delivers them).
    pub fn is_local(&self, ip: Ipv4Address) -> bool {
        ip.octets()[0] == 127
            || self
                .devs
                .iter()
                .flatten()
                .any(|d| d.ipv4().is_some_and(|c| c.address() == ip))
    }

    /// An address of ours on the device that routes to `dst` (getsockname).
    pub fn source_for(&self, dst: Ipv4Address) -> Option<Ipv4Address> {
        let n = self.route_for(dst)?;
        self.devs[n].as_ref()?.ipv4().map(|c| c.address())
    }
}

fn new_tcp() -> tcp::Socket<'static> {
    let mut t = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; RX_WINDOW]),
        tcp::SocketBuffer::new(vec![0; TCP_TX]),
    );
    t.set_ack_delay(None);
    t
}

/// A TCP socket's state.
#[derive(Debug)]
pub enum Tcp {
    /// Not connected; bound to this port if Some.
    Idle(Option<u16>),
    Listening {
        port: u16,
        backlog: usize,
        /// Sockets in LISTEN state per device.
        listeners: Vec<Slot>,
        /// Sockets that left LISTEN (a connection arrived), oldest first.
        arrived: VecDeque<Slot>,
    },
    Connecting {
        slot: Slot,
        since: Instant,
    },
    Connected {
        slot: Slot,
        /// SHUT_RD: reads see end of file.
        rd_shut: bool,
    },
    /// The attempt failed or the connection was reset: reported once by SO_ERROR
    /// or the next call.
    Failed(i64),
}

impl Tcp {
    pub fn bind(&mut self, net: &Net, port: u16) -> SockResult<u16> {
        match self {
            Tcp::Idle(None) => {
                let port = if port == 0 { ephemeral_port() } else { port };
                if net.tcp_port_used(port) {
                    return fail(EADDRINUSE);
                }
                *self = Tcp::Idle(Some(port));
                Ok(port)
            }
            _ => fail(EINVAL),
        }
    }

    pub fn listen(&mut self, net: &mut Net, backlog: usize) -> SockResult<()> {
        let port = match self {
            Tcp::Idle(p) => p.unwrap_or_else(ephemeral_port),
            Tcp::Listening { backlog: b, .. } => {
                *b = backlog.max(1);
                return Ok(());
            }
            _ => return fail(EINVAL),
        };
        if net.tcp_port_used(port) {
            return fail(EADDRINUSE);
        }
        *self = Tcp::Listening {
            port,
            backlog: backlog.max(1),
            listeners: Vec::new(),
            arrived: VecDeque::new(),
        };
        self.refresh(net);
        Ok(())
    }

    /// A listener: moves the sockets a connection reached to `arrived`, drops those
    /// of devices gone, and keeps `LISTENERS` listening on every device.
    pub fn refresh(&mut self, net: &mut Net) {
        let Tcp::Listening {
            port,
            backlog,
            listeners,
            arrived,
        } = self
        else {
            return;
        };
        let mut keep = Vec::new();
        for s in listeners.drain(..) {
            match net.tcp(s).map(|t| t.state()) {
                None => {}
                Some(tcp::State::Listen) => keep.push(s),
                Some(tcp::State::Closed) => net.remove_slot(s),
                Some(_) if arrived.len() < *backlog + LISTENERS => arrived.push_back(s),
                Some(_) => {
                    if let Some(t) = net.tcp(s) {
                        t.abort();
                    }
                    net.guest.orphans.push(s);
                }
            }
        }
        *listeners = keep;
        for (dev, id) in net.present() {
            let have = listeners.iter().filter(|s| s.dev == dev).count();
            for _ in have..LISTENERS {
                let Some(d) = net.dev_mut(dev, id).filter(|d| has_room(d)) else {
                    break;
                };
                let mut t = new_tcp();
                if t.listen(*port).is_err() {
                    break;
                }
                let h = d.sockets.add(t);
                listeners.push(Slot { dev, id, h });
            }
        }
    }

    /// accept: the oldest established connection, with its peer.
    pub fn accept(&mut self, net: &mut Net) -> SockResult<(Tcp, IpEndpoint)> {
        self.refresh(net);
        let Tcp::Listening { arrived, .. } = self else {
            return fail(EINVAL);
        };
        let mut i = 0;
        while i < arrived.len() {
            let s = arrived[i];
            let Some(t) = net.tcp(s) else {
                arrived.remove(i);
                continue;
            };
            match t.state() {
                tcp::State::SynReceived => i += 1,
                tcp::State::Closed => {
                    arrived.remove(i);
                    net.remove_slot(s);
                }
                _ => {
                    let peer = t.remote_endpoint();
                    arrived.remove(i);
                    let peer = peer.unwrap_or(IpEndpoint::new(
                        IpAddress::Ipv4(Ipv4Address::UNSPECIFIED),
                        0,
                    ));
                    return Ok((
                        Tcp::Connected {
                            slot: s,
                            rd_shut: false,
                        },
                        peer,
                    ));
                }
            }
        }
        Err(SockErr::Wait)
    }

    pub fn connect(&mut self, net: &mut Net, dst: Ipv4Address, port: u16) -> SockResult<()> {
        let local = match self {
            Tcp::Idle(p) => p.unwrap_or_else(ephemeral_port),
            Tcp::Connecting { .. } => return fail(EALREADY),
            Tcp::Connected { .. } => return fail(EISCONN),
            Tcp::Failed(e) => {
                let e = *e;
                *self = Tcp::Idle(None);
                return fail(e);
            }
            Tcp::Listening { .. } => return fail(EINVAL),
        };
        let Some(n) = net.route_for(dst) else {
            return fail(ENETUNREACH);
        };
        let Some(d) = net.devs[n].as_mut() else {
            return fail(ENETUNREACH);
        };
        if !has_room(d) {
            return fail(ENOBUFS);
        }
        let mut t = new_tcp();
        t.set_timeout(Some(smoltcp::time::Duration::from_millis(
            CONNECT_TIMEOUT.as_millis() as u64,
        )));
        if t.connect(d.iface.context(), (IpAddress::Ipv4(dst), port), local)
            .is_err()
        {
            return fail(EADDRNOTAVAIL);
        }
        let h = d.sockets.add(t);
        *self = Tcp::Connecting {
            slot: Slot {
                dev: n,
                id: d.id,
                h,
            },
            since: Instant::now(),
        };
        Err(SockErr::Errno(EINPROGRESS))
    }

    /// Where a connection attempt is: Ok once connected, Wait while it goes on.
    pub fn connect_progress(&mut self, net: &mut Net) -> SockResult<()> {
        match self {
            Tcp::Connecting { slot, since } => {
                let (slot, since) = (*slot, *since);
                match net.tcp(slot).map(|t| t.state()) {
                    Some(tcp::State::SynSent) => Err(SockErr::Wait),
                    Some(tcp::State::Closed) | None => {
                        net.remove_slot(slot);
                        let e = if since.elapsed() >= CONNECT_TIMEOUT {
                            ETIMEDOUT
                        } else {
                            ECONNREFUSED
                        };
                        *self = Tcp::Idle(None);
                        fail(e)
                    }
                    Some(_) => {
                        if let Some(t) = net.tcp(slot) {
                            t.set_timeout(None);
                        }
                        *self = Tcp::Connected {
                            slot,
                            rd_shut: false,
                        };
                        Ok(())
                    }
                }
            }
            Tcp::Connected { .. } => Ok(()),
            Tcp::Failed(e) => {
                let e = *e;
                *self = Tcp::Idle(None);
                fail(e)
            }
            _ => fail(ENOTCONN),
        }
    }

    pub fn send(&mut self, net: &mut Net, data: &[u8]) -> SockResult<usize> {
        if let Tcp::Connecting { .. } = self {
            self.connect_progress(net)?;
        }
        let Tcp::Connected { slot, .. } = self else {
            return fail(match self {
                Tcp::Failed(_) => EPIPE,
                _ => ENOTCONN,
            });
        };
        let slot = *slot;
        let Some(t) = net.tcp(slot) else {
            return fail(ECONNRESET);
        };
        if !t.may_send() {
            return fail(if t.state() == tcp::State::Closed {
                ECONNRESET
            } else {
                EPIPE
            });
        }
        match t.send_slice(data) {
            Ok(0) if !data.is_empty() => Err(SockErr::Wait),
            Ok(n) => Ok(n),
            Err(_) => fail(EPIPE),
        }
    }

    pub fn recv(&mut self, net: &mut Net, buf: &mut [u8], peek: bool) -> SockResult<usize> {
        if let Tcp::Connecting { .. } = self {
            self.connect_progress(net)?;
        }
        let Tcp::Connected { slot, rd_shut } = self else {
            return fail(ENOTCONN);
        };
        if *rd_shut {
            return Ok(0);
        }
        let Some(t) = net.tcp(*slot) else {
            return Ok(0);
        };
        if t.can_recv() {
            let n = if peek {
                t.peek_slice(buf)
            } else {
                t.recv_slice(buf)
            };
            return n.map_err(|_| SockErr::Errno(ECONNRESET));
        }
        if t.may_recv() || t.state() == tcp::State::SynReceived {
            return Err(SockErr::Wait);
        }
        Ok(0)
    }

    /// shutdown: SHUT_RD (0), SHUT_WR (1) or both (2).
    pub fn shutdown(&mut self, net: &mut Net, how: u64) -> SockResult<()> {
        let Tcp::Connected { slot, rd_shut } = self else {
            return fail(ENOTCONN);
        };
        if how != 1 {
            *rd_shut = true;
        }
        if how != 0 {
            if let Some(t) = net.tcp(*slot) {
                t.close();
            }
        }
        Ok(())
    }

    /// The socket's descriptor went away: connections close (in the background),
    /// listeners go.
    pub fn release(&mut self, net: &mut Net) {
        match std::mem::replace(self, Tcp::Idle(None)) {
            Tcp::Listening {
                listeners, arrived, ..
            } => {
                for s in listeners {
                    net.remove_slot(s);
                }
                for s in arrived {
                    if let Some(t) = net.tcp(s) {
                        t.abort();
                    }
                    net.guest.orphans.push(s);
                }
            }
            Tcp::Connecting { slot, .. } => net.remove_slot(slot),
            Tcp::Connected { slot, .. } => {
                if let Some(t) = net.tcp(slot) {
                    t.close();
                }
                net.guest.orphans.push(slot);
            }
            Tcp::Idle(_) | Tcp::Failed(_) => {}
        }
        net.reap_guest_sockets();
    }

    /// poll's bits (POLLIN 1, POLLOUT 4, POLLERR 8, POLLHUP 16).
    pub fn readiness(&mut self, net: &mut Net) -> i16 {
        match self {
            Tcp::Idle(_) => 4 | 16,
            Tcp::Failed(_) => 8 | 16,
            Tcp::Listening { .. } => {
                self.refresh(net);
                let Tcp::Listening { arrived, .. } = self else {
                    return 0;
                };
                let ready = arrived.iter().any(|s| {
                    net.tcp(*s)
                        .is_some_and(|t| !matches!(t.state(), tcp::State::SynReceived))
                });
                if ready {
                    1
                } else {
                    0
                }
            }
            Tcp::Connecting { slot, .. } => match net.tcp(*slot).map(|t| t.state()) {
                Some(tcp::State::SynSent) => 0,
                Some(tcp::State::Closed) | None => 4 | 8 | 16,
                Some(_) => 4,
            },
            Tcp::Connected { slot, rd_shut } => {
                let Some(t) = net.tcp(*slot) else {
                    return 1 | 16;
                };
                let mut r = 0;
                if *rd_shut || t.can_recv() || !t.may_recv() {
                    r |= 1;
                }
                if t.can_send() || !t.may_send() {
                    r |= 4;
                }
                if t.state() == tcp::State::Closed {
                    r |= 16;
                }
                r
            }
        }
    }

    /// Bytes waiting to be read (FIONREAD).
    pub fn queued(&self, net: &mut Net) -> usize {
        match self {
            Tcp::Connected { slot, .. } => net.tcp(*slot).map_or(0, |t| t.recv_queue()),
            _ => 0,
        }
    }

    /// getsockname and getpeername.
    pub fn endpoints(&self, net: &mut Net) -> (Option<IpEndpoint>, Option<IpEndpoint>) {
        let any = |p: u16| IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::UNSPECIFIED), p);
        match self {
            Tcp::Idle(p) => (Some(any(p.unwrap_or(0))), None),
            Tcp::Listening { port, .. } => (Some(any(*port)), None),
            Tcp::Connecting { slot, .. } | Tcp::Connected { slot, .. } => match net.tcp(*slot) {
                Some(t) => (t.local_endpoint(), t.remote_endpoint()),
                None => (None, None),
            },
            Tcp::Failed(_) => (None, None),
        }
    }

    /// TCP_NODELAY and SO_KEEPALIVE on a connection.
    pub fn set_option(&mut self, net: &mut Net, nodelay: Option<bool>, keepalive: Option<bool>) {
        let (Tcp::Connected { slot, .. } | Tcp::Connecting { slot, .. }) = self else {
            return;
        };
        if let Some(t) = net.tcp(*slot) {
            if let Some(nd) = nodelay {
                t.set_nagle_enabled(!nd);
            }
            if let Some(k) = keepalive {
                t.set_keep_alive(k.then(|| smoltcp::time::Duration::from_secs(75)));
            }
        }
    }

    /// The local and remote endpoints and state name of a connected socket (netstat).
    pub fn is_listening(&self) -> bool {
        matches!(self, Tcp::Listening { .. })
    }
}

/// A datagram socket: UDP, or ICMP echo (raw or datagram).
#[derive(Debug)]
pub struct Dgram {
    pub kind: DgramKind,
    /// The bound port (UDP) or echo identifier (ICMP).
    pub port: Option<u16>,
    /// connect's peer.
    pub peer: Option<(Ipv4Address, u16)>,
    /// One smoltcp socket per device.
    pub slots: Vec<Slot>,
    /// Datagrams from the guest itself (UDP to a bound port of ours, echo replies to
    /// our own echo requests).
    local: Rc<RefCell<VecDeque<Local>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DgramKind {
    Udp,
    /// SOCK_DGRAM IPPROTO_ICMP: the kernel sets the echo identifier and checksum.
    IcmpDgram,
    /// SOCK_RAW IPPROTO_ICMP: whole ICMP messages out, IPv4 header + ICMP in.
    IcmpRaw,
}

/// A datagram received: payload and source.
pub struct Received {
    pub data: Vec<u8>,
    pub from: (Ipv4Address, u16),
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The IPv4 header a raw ICMP socket's reader sees in front of a message.
fn ipv4_header(src: Ipv4Address, dst: Ipv4Address, len: usize) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + len) as u16).to_be_bytes());
    h[6] = 0x40; // don't fragment
    h[8] = 64;
    h[9] = 1;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

impl Dgram {
    pub fn new(kind: DgramKind) -> Dgram {
        Dgram {
            kind,
            port: None,
            peer: None,
            slots: Vec::new(),
            local: Rc::default(),
        }
    }

    fn icmp(&self) -> bool {
        self.kind != DgramKind::Udp
    }

    /// Binds `port` (0: an ephemeral one) on every device.
    pub fn bind(&mut self, net: &mut Net, port: u16) -> SockResult<u16> {
        if self.port.is_some() {
            return fail(EINVAL);
        }
        let port = if port == 0 { ephemeral_port() } else { port };
        if !self.icmp() {
            let used = net.devs.iter().flatten().any(|d| {
                d.sockets.iter().any(|(_, s)| match s {
                    smoltcp::socket::Socket::Udp(u) => u.endpoint().port == port,
                    _ => false,
                })
            });
            let taken = net
                .guest
                .udp_local
                .get(&port)
                .is_some_and(|w| w.strong_count() > 0);
            if used || taken {
                return fail(EADDRINUSE);
            }
            net.guest.udp_local.insert(port, Rc::downgrade(&self.local));
        }
        self.port = Some(port);
        self.refresh(net);
        Ok(port)
    }

    /// Makes sure every device has this socket's smoltcp socket.
    fn refresh(&mut self, net: &mut Net) {
        let Some(port) = self.port else { return };
        let present = net.present();
        self.slots
            .retain(|s| present.iter().any(|&(d, id)| d == s.dev && id == s.id));
        for (dev, id) in present {
            if self.slots.iter().any(|s| s.dev == dev) {
                continue;
            }
            let Some(d) = net.dev_mut(dev, id).filter(|d| has_room(d)) else {
                continue;
            };
            let h = if self.icmp() {
                let buf = || {
                    icmp::PacketBuffer::new(
                        vec![icmp::PacketMetadata::EMPTY; DGRAMS],
                        vec![0; DGRAMS * 1536],
                    )
                };
                let mut s = icmp::Socket::new(buf(), buf());
                if s.bind(icmp::Endpoint::Ident(port)).is_err() {
                    continue;
                }
                d.sockets.add(s)
            } else {
                let buf = || {
                    udp::PacketBuffer::new(
                        vec![udp::PacketMetadata::EMPTY; DGRAMS],
                        vec![0; DGRAMS * 1536],
                    )
                };
                let mut s = udp::Socket::new(buf(), buf());
                if s.bind(port).is_err() {
                    continue;
                }
                d.sockets.add(s)
            };
            self.slots.push(Slot { dev, id, h });
        }
    }

    /// sendto: one datagram to `to` (or the connected peer).
    pub fn send(
        &mut self,
        net: &mut Net,
        data: &[u8],
        to: Option<(Ipv4Address, u16)>,
    ) -> SockResult<usize> {
        let Some((dst, dport)) = to.or(self.peer) else {
            return fail(EDESTADDRREQ);
        };
        let mut msg = data.to_vec();
        if self.icmp() {
            if msg.len() < 8 {
                return fail(EINVAL);
            }
            if self.port.is_none() {
                let id = match self.kind {
                    DgramKind::IcmpRaw => u16::from_be_bytes([msg[4], msg[5]]),
                    _ => ephemeral_port(),
                };
                self.port = Some(id);
            }
            if self.kind == DgramKind::IcmpDgram {
                let id = self.port.unwrap_or(0);
                msg[4..6].copy_from_slice(&id.to_be_bytes());
                msg[2..4].copy_from_slice(&[0, 0]);
                let c = checksum(&msg);
                msg[2..4].copy_from_slice(&c.to_be_bytes());
            }
        } else if self.port.is_none() {
            self.bind(net, 0)?;
        }
        if msg.len() > 65507 {
            return fail(EMSGSIZE);
        }
        if net.is_local(dst) {
            return self.send_local(net, msg, dst, dport).map(|()| data.len());
        }
        self.refresh(net);
        let dev = if dst.is_broadcast() {
            net.devs
                .iter()
                .flatten()
                .find(|d| d.up)
                .map(|d| d.spec.index)
        } else {
            net.route_for(dst)
        };
        let Some(dev) = dev else {
            return fail(ENETUNREACH);
        };
        let Some(slot) = self.slots.iter().find(|s| s.dev == dev).copied() else {
            return fail(ENOBUFS); // the device's stack has no room for this socket
        };
        let now = net.now();
        let Some(d) = net.slot_dev(slot) else {
            return fail(ENETUNREACH);
        };
        let sent = if self.icmp() {
            d.sockets
                .get_mut::<icmp::Socket>(slot.h)
                .send_slice(&msg, IpAddress::Ipv4(dst))
                .map_err(|e| e.to_string())
        } else {
            d.sockets
                .get_mut::<udp::Socket>(slot.h)
                .send_slice(&msg, (IpAddress::Ipv4(dst), dport))
                .map_err(|e| e.to_string())
        };
        match sent {
            Ok(()) => {
                // Out at once: the socket may be closed before the loop polls again
                // (a datagram still queued would go with it).
                d.poll(now);
                Ok(data.len())
            }
            Err(e) if e.contains("full") => Err(SockErr::Wait),
            Err(_) => fail(EINVAL),
        }
    }

    /// recvfrom: the next datagram from any device (from the peer, when connected).
    pub fn recv(&mut self, net: &mut Net, peek: bool) -> SockResult<Received> {
        if let Some(r) = self.recv_local(peek) {
            return Ok(r);
        }
        self.refresh(net);
        for &slot in &self.slots {
            let Some(d) = net.slot_dev(slot) else {
                continue;
            };
            let ours = d.ipv4().map_or(Ipv4Address::UNSPECIFIED, |c| c.address());
            loop {
                let got = if self.icmp() {
                    // smoltcp cannot peek at an ICMP socket: a peek sees nothing.
                    let s = d.sockets.get_mut::<icmp::Socket>(slot.h);
                    match (peek, s.recv()) {
                        (false, Ok((data, IpAddress::Ipv4(src)))) => {
                            Some((data.to_vec(), (src, 0)))
                        }
                        _ => None,
                    }
                } else {
                    let s = d.sockets.get_mut::<udp::Socket>(slot.h);
                    let r = if peek {
                        s.peek().map(|(d, m)| (d, *m))
                    } else {
                        s.recv()
                    };
                    match r {
                        Ok((data, meta)) => {
                            let IpAddress::Ipv4(src) = meta.endpoint.addr;
                            Some((data.to_vec(), (src, meta.endpoint.port)))
                        }
                        Err(_) => None,
                    }
                };
                let Some((data, from)) = got else { break };
                if let Some(p) = self.peer {
                    if p.0 != from.0 || (!self.icmp() && p.1 != from.1) {
                        if peek {
                            break;
                        }
                        continue; // not from the connected peer
                    }
                }
                let data = match self.kind {
                    DgramKind::IcmpRaw => {
                        let mut v = ipv4_header(from.0, ours, data.len()).to_vec();
                        v.extend_from_slice(&data);
                        v
                    }
                    _ => data,
                };
                return Ok(Received { data, from });
            }
        }
        Err(SockErr::Wait)
    }

    pub fn readiness(&mut self, net: &mut Net) -> i16 {
        self.refresh(net);
        let readable = self.slots.iter().any(|&s| {
            net.slot_dev(s).is_some_and(|d| {
                if self.kind == DgramKind::Udp {
                    d.sockets.get::<udp::Socket>(s.h).can_recv()
                } else {
                    d.sockets.get::<icmp::Socket>(s.h).can_recv()
                }
            })
        });
        if readable || !self.local.borrow().is_empty() {
            1 | 4
        } else {
            4
        }
    }

    /// The size of the next datagram (FIONREAD).
    pub fn queued(&mut self, net: &mut Net) -> usize {
        self.recv(net, true).map_or(0, |r| r.data.len())
    }

    pub fn release(&mut self, net: &mut Net) {
        for s in self.slots.drain(..) {
            net.remove_slot(s);
        }
        if let (Some(port), DgramKind::Udp) = (self.port, self.kind) {
            let mine = Rc::downgrade(&self.local);
            if net
                .guest
                .udp_local
                .get(&port)
                .is_some_and(|w| w.ptr_eq(&mine))
            {
                net.guest.udp_local.remove(&port);
            }
        }
    }

    /// A datagram to one of our own addresses: to the guest socket bound to the port
    /// (none: dropped, as the port-unreachable answer is not modelled), or for ICMP the
    /// echo reply straight back.
    fn send_local(
        &mut self,
        net: &mut Net,
        msg: Vec<u8>,
        dst: Ipv4Address,
        dport: u16,
    ) -> SockResult<()> {
        let (target, msg, from) = if self.icmp() {
            if msg[0] != 8 {
                return Ok(()); // only echo requests are answered
            }
            let mut reply = msg;
            reply[0] = 0;
            reply[2..4].copy_from_slice(&[0, 0]);
            let c = checksum(&reply);
            reply[2..4].copy_from_slice(&c.to_be_bytes());
            (Some(self.local.clone()), reply, (dst, 0))
        } else {
            let target = net.guest.udp_local.get(&dport).and_then(Weak::upgrade);
            (target, msg, (dst, self.port.unwrap_or(0)))
        };
        let Some(target) = target else {
            return Ok(());
        };
        let mut q = target.borrow_mut();
        if q.len() >= DGRAMS {
            return Err(SockErr::Wait);
        }
        q.push_back((msg, from, dst));
        Ok(())
    }

    /// The next datagram the guest sent itself, if any.
    fn recv_local(&mut self, peek: bool) -> Option<Received> {
        let mut q = self.local.borrow_mut();
        loop {
            let (data, from, dst) = if peek {
                q.front().cloned()?
            } else {
                q.pop_front()?
            };
            if let Some(p) = self.peer {
                if p.0 != from.0 || (self.kind == DgramKind::Udp && p.1 != from.1) {
                    if peek {
                        return None;
                    }
                    continue;
                }
            }
            let data = match self.kind {
                DgramKind::IcmpRaw => {
                    let mut v = ipv4_header(from.0, dst, data.len()).to_vec();
                    v.extend_from_slice(&data);
                    v
                }
                _ => data,
            };
            return Some(Received { data, from });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify_to_zero() {
        let h = ipv4_header(
            Ipv4Address::new(10, 0, 0, 3),
            Ipv4Address::new(10, 0, 0, 1),
            64,
        );
        assert_eq!(checksum(&h), 0);
        assert_eq!(h[0], 0x45);
        assert_eq!(u16::from_be_bytes([h[2], h[3]]), 84);
    }

    #[test]
    fn a_device_holds_at_most_max_sockets() {
        use crate::klog::KernelLog;
        use crate::net::ifchange::Change;
        use smoltcp::wire::Ipv4Cidr;
        let mut net = Net::default();
        let mut klog = KernelLog::new(Instant::now(), true);
        let n = net.attach("eth0=tuntap,,,10.0.0.254", &mut klog).unwrap();
        let d = net.devs[n].as_mut().unwrap();
        let mut log = Vec::new();
        let cidr = Ipv4Cidr::new(Ipv4Address::new(10, 0, 0, 1), 24);
        d.apply(&Change::Address(Some(cidr)), &mut log).unwrap();
        d.up = true;
        let peer = Ipv4Address::new(10, 0, 0, 2);
        let mut socks = Vec::new();
        for _ in 0..MAX_SOCKETS {
            let mut s = Dgram::new(DgramKind::Udp);
            s.bind(&mut net, 0).unwrap();
            socks.push(s);
        }
        let mut extra = Dgram::new(DgramKind::Udp);
        extra.bind(&mut net, 0).unwrap();
        assert_eq!(
            extra.send(&mut net, b"x", Some((peer, 9))),
            Err(SockErr::Errno(ENOBUFS))
        );
        let mut t = Tcp::Idle(None);
        assert_eq!(t.connect(&mut net, peer, 80), Err(SockErr::Errno(ENOBUFS)));
        socks.pop().unwrap().release(&mut net);
        assert_eq!(
            t.connect(&mut net, peer, 80),
            Err(SockErr::Errno(EINPROGRESS))
        );
        for mut s in socks {
            s.release(&mut net);
        }
    }

    #[test]
    fn ephemeral_ports_stay_in_range() {
        for _ in 0..20000 {
            let p = ephemeral_port();
            assert!(p >= 49152);
        }
    }
}
