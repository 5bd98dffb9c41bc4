//! The socket syscalls of guest programs: AF_INET TCP, UDP and ICMP echo (datagram and
//! raw, as `ping` opens them) over the kernel's smoltcp stacks (`net::inet`), and
//! AF_UNIX stream and datagram sockets inside the guest (`unix`). A call that cannot
//! finish now waits the sentry's way (`Ret::Block`, tried again when anything changed)
//! or answers EAGAIN on a non-blocking socket; nothing here blocks the loop.
// A handler takes the syscall's own arguments, plus the caller and the machine.
#![allow(clippy::too_many_arguments)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nix::unistd::Pid;
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};

use super::abi::errno::*;
use super::fdtable::{desc, DescRef, Fd, Object};
use super::sentry::{Ret, Sentry};
use super::unix::{self, Unix};
use crate::machine::Machine;
use crate::net::inet::{Dgram, DgramKind, SockErr, Tcp};
use crate::net::Net;

pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
const SOCK_STREAM: u64 = 1;
const SOCK_DGRAM: u64 = 2;
const SOCK_RAW: u64 = 3;
const SOCK_SEQPACKET: u64 = 5;
const SOCK_NONBLOCK: u64 = 0o4000;
const SOCK_CLOEXEC: u64 = 0o2000000;
const MSG_PEEK: u64 = 2;
const MSG_TRUNC: u64 = 0x20;
const MSG_DONTWAIT: u64 = 0x40;
const MSG_NOSIGNAL: u64 = 0x4000;
const SOL_SOCKET: u64 = 1;
const IPPROTO_TCP: u64 = 6;
const SO_TYPE: u64 = 3;
const SO_ERROR: u64 = 4;
const SO_SNDBUF: u64 = 7;
const SO_RCVBUF: u64 = 8;
const SO_KEEPALIVE: u64 = 9;
const SO_ACCEPTCONN: u64 = 30;
const SO_PROTOCOL: u64 = 38;
const SO_DOMAIN: u64 = 39;
const SO_RCVTIMEO: u64 = 20;
const SO_SNDTIMEO: u64 = 21;
const TCP_NODELAY: u64 = 1;
/// Most bytes one send or receive moves.
const MAX_IO: usize = 1 << 20;

const ENOTSOCK: i64 = 88;
const EOPNOTSUPP: i64 = 95;
const EPROTONOSUPPORT: i64 = 93;
const ENOTCONN: i64 = 107;
const EALREADY: i64 = 114;
const EISCONN: i64 = 106;
const ECONNREFUSED: i64 = 111;
const ENOENT: i64 = 2;

/// What a socket is.
#[derive(Debug)]
pub enum Kind {
    Tcp(Tcp),
    Dgram(Dgram),
    Unix(Unix),
}

/// A guest socket: its protocol state and the options set on it.
#[derive(Debug)]
pub struct Socket {
    pub kind: Kind,
    pub domain: u16,
    pub ty: u64,
    pub proto: u64,
    /// (level, option) -> value, as setsockopt left them (getsockopt reads them back).
    opts: HashMap<(u64, u64), i32>,
    /// A TCP listener's twin for connections from the guest itself (to 127.0.0.0/8 or
    /// an address of ours, which the stacks do not loop back): a unix stream listener
    /// under `unix::inet_name(port)`; such connections are unix stream pairs.
    local: Option<Unix>,
    /// SO_RCVTIMEO and SO_SNDTIMEO: a blocking call waits at most this long (EAGAIN).
    timeouts: [Option<Duration>; 2],
}

/// A socket address as the guest gives or gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    Inet(Ipv4Address, u16),
    Unix(Vec<u8>),
    /// AF_UNSPEC (connect's "dissolve the association").
    Unspec,
}

impl Addr {
    /// Parses a sockaddr.
    pub fn parse(raw: &[u8]) -> Result<Addr, i64> {
        if raw.len() < 2 {
            return Err(-EINVAL);
        }
        match u16::from_ne_bytes([raw[0], raw[1]]) {
            0 => Ok(Addr::Unspec),
            AF_INET if raw.len() >= 8 => Ok(Addr::Inet(
                Ipv4Address::new(raw[4], raw[5], raw[6], raw[7]),
                u16::from_be_bytes([raw[2], raw[3]]),
            )),
            AF_UNIX => {
                let path = &raw[2..];
                // A path ends at its NUL; an abstract name (leading NUL) is all its bytes.
                let path = match path.first() {
                    Some(0) => path.to_vec(),
                    _ => path.split(|&b| b == 0).next().unwrap_or(&[]).to_vec(),
                };
                Ok(Addr::Unix(path))
            }
            AF_INET => Err(-EINVAL),
            _ => Err(-EAFNOSUPPORT),
        }
    }

    /// The sockaddr bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Addr::Inet(ip, port) => {
                let mut b = vec![0u8; 16];
                b[..2].copy_from_slice(&AF_INET.to_ne_bytes());
                b[2..4].copy_from_slice(&port.to_be_bytes());
                b[4..8].copy_from_slice(&ip.octets());
                b
            }
            Addr::Unix(path) => {
                let mut b = AF_UNIX.to_ne_bytes().to_vec();
                b.extend_from_slice(path);
                if path.first() != Some(&0) && !path.is_empty() {
                    b.push(0);
                }
                b
            }
            Addr::Unspec => vec![0, 0],
        }
    }
}

fn endpoint(e: Option<IpEndpoint>) -> Addr {
    match e {
        Some(IpEndpoint {
            addr: IpAddress::Ipv4(a),
            port,
        }) => Addr::Inet(a, port),
        None => Addr::Inet(Ipv4Address::UNSPECIFIED, 0),
    }
}

/// A socket call's result inside this module: a value, wait, or -errno.
type R<T> = Result<T, SockErr>;

fn errno(e: i64) -> SockErr {
    SockErr::Errno(e)
}

impl Socket {
    pub fn new(kind: Kind, domain: u16, ty: u64, proto: u64) -> Socket {
        Socket {
            kind,
            domain,
            ty,
            proto,
            opts: HashMap::new(),
            local: None,
            timeouts: [None, None],
        }
    }

    /// Receives at most `max` bytes (one datagram, cut to `max`): data, the sender and
    /// the datagram's full length.
    pub fn recv(
        &mut self,
        net: &mut Net,
        max: usize,
        peek: bool,
    ) -> R<(Vec<u8>, Option<Addr>, usize)> {
        match &mut self.kind {
            Kind::Tcp(t) => {
                let mut buf = vec![0u8; max];
                let n = t.recv(net, &mut buf, peek)?;
                buf.truncate(n);
                Ok((buf, None, n))
            }
            Kind::Dgram(d) => {
                let r = d.recv(net, peek)?;
                let full = r.data.len();
                let mut data = r.data;
                data.truncate(max);
                Ok((data, Some(Addr::Inet(r.from.0, r.from.1)), full))
            }
            Kind::Unix(u) => u.recv(max, peek),
        }
    }

    /// Sends `data` (to `to`, for a datagram socket).
    pub fn send(
        &mut self,
        net: &mut Net,
        reg: &mut unix::Registry,
        data: &[u8],
        to: Option<Addr>,
    ) -> R<usize> {
        match &mut self.kind {
            Kind::Tcp(t) => match to {
                None | Some(Addr::Unspec) => t.send(net, data),
                Some(_) => t.send(net, data).map_err(|e| match e {
                    SockErr::Errno(ENOTCONN) => errno(ENOTCONN),
                    other => other,
                }),
            },
            Kind::Dgram(d) => {
                let to = match to {
                    Some(Addr::Inet(a, p)) => Some((a, p)),
                    None => None,
                    Some(_) => return Err(errno(EAFNOSUPPORT)),
                };
                d.send(net, data, to)
            }
            Kind::Unix(u) => u.send(reg, data, to),
        }
    }

    /// poll's bits for this socket.
    pub fn readiness(&mut self, net: &mut Net) -> i16 {
        let local = self.local.as_ref().map_or(0, Unix::readiness);
        match &mut self.kind {
            Kind::Tcp(t) => t.readiness(net) | local,
            Kind::Dgram(d) => d.readiness(net),
            Kind::Unix(u) => u.readiness(),
        }
    }

    /// The last descriptor went away.
    pub fn release(&mut self, net: &mut Net, reg: &mut unix::Registry) {
        if let Some(mut l) = self.local.take() {
            l.release(reg);
        }
        match &mut self.kind {
            Kind::Tcp(t) => t.release(net),
            Kind::Dgram(d) => d.release(net),
            Kind::Unix(u) => u.release(reg),
        }
    }

    /// Bytes waiting (FIONREAD).
    pub fn queued(&mut self, net: &mut Net) -> usize {
        match &mut self.kind {
            Kind::Tcp(t) => t.queued(net),
            Kind::Dgram(d) => d.queued(net),
            Kind::Unix(u) => u.queued(),
        }
    }
}

impl Sentry {
    /// A blocking socket call that must wait: until its SO_RCVTIMEO / SO_SNDTIMEO
    /// (`which` 0 or 1) runs out, then EAGAIN.
    fn sock_wait(&self, d: &DescRef, which: usize) -> Ret {
        let timeout = match &d.borrow().object {
            Object::Socket(s) => s.timeouts[which],
            _ => None,
        };
        let deadline = match self.call_deadline {
            Some(d) => d,
            None => timeout.map(|t| Instant::now() + t),
        };
        if deadline.is_some_and(|d| Instant::now() >= d) {
            Ret::Val(-EAGAIN)
        } else {
            Ret::Block(deadline)
        }
    }

    /// A socket descriptor's description, or ENOTSOCK / EBADF.
    fn sock_of(&self, pid: u32, fd: i64) -> Result<DescRef, i64> {
        let d = self.desc_of(pid, fd)?;
        if !matches!(d.borrow().object, Object::Socket(_)) {
            return Err(-ENOTSOCK);
        }
        Ok(d)
    }

    /// Runs `f` on socket `fd`'s state.
    fn with_sock<T>(
        &self,
        pid: u32,
        fd: i64,
        f: impl FnOnce(&mut Socket, u32) -> Result<T, i64>,
    ) -> Result<T, i64> {
        let d = self.sock_of(pid, fd)?;
        let mut d = d.borrow_mut();
        let flags = d.flags;
        match &mut d.object {
            Object::Socket(s) => f(s, flags),
            _ => Err(-ENOTSOCK),
        }
    }

    fn new_socket_fd(&mut self, m: &mut Machine, pid: u32, s: Socket, flags: u64) -> i64 {
        let oflags = 2 | if flags & SOCK_NONBLOCK != 0 {
            0o4000
        } else {
            0
        };
        let entry = Fd {
            desc: desc(Object::Socket(Box::new(s)), oflags),
            cloexec: flags & SOCK_CLOEXEC != 0,
        };
        self.install(m, pid, 0, entry).unwrap_or_else(|e| e)
    }

    pub(super) fn sys_socket(
        &mut self,
        m: &mut Machine,
        pid: u32,
        domain: u64,
        ty: u64,
        proto: u64,
    ) -> i64 {
        let base = ty & 0xf;
        let kind = match (domain as u16, base, proto) {
            (AF_INET, SOCK_STREAM, 0 | 6) => Kind::Tcp(Tcp::Idle(None)),
            (AF_INET, SOCK_DGRAM, 0 | 17) => Kind::Dgram(Dgram::new(DgramKind::Udp)),
            (AF_INET, SOCK_DGRAM, 1) => Kind::Dgram(Dgram::new(DgramKind::IcmpDgram)),
            (AF_INET, SOCK_RAW, 1) => Kind::Dgram(Dgram::new(DgramKind::IcmpRaw)),
            (AF_INET, SOCK_STREAM | SOCK_DGRAM | SOCK_RAW, _) => return -EPROTONOSUPPORT,
            (AF_UNIX, SOCK_STREAM | SOCK_SEQPACKET, 0) => Kind::Unix(Unix::stream()),
            (AF_UNIX, SOCK_DGRAM, 0) => Kind::Unix(Unix::dgram()),
            (AF_UNIX, _, _) => return -EPROTONOSUPPORT,
            _ => return -EAFNOSUPPORT,
        };
        let s = Socket::new(kind, domain as u16, base, proto);
        self.new_socket_fd(m, pid, s, ty)
    }

    pub(super) fn sys_socketpair(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        domain: u64,
        ty: u64,
        proto: u64,
        sv: u64,
    ) -> i64 {
        let base = ty & 0xf;
        if domain as u16 != AF_UNIX {
            return -EOPNOTSUPP;
        }
        if proto != 0 {
            return -EPROTONOSUPPORT;
        }
        let (a, b) = match base {
            SOCK_STREAM | SOCK_SEQPACKET => Unix::stream_pair(),
            SOCK_DGRAM => Unix::dgram_pair(),
            _ => return -EPROTONOSUPPORT,
        };
        let a = self.new_socket_fd(m, pid, Socket::new(Kind::Unix(a), AF_UNIX, base, 0), ty);
        if a < 0 {
            return a;
        }
        let b = self.new_socket_fd(m, pid, Socket::new(Kind::Unix(b), AF_UNIX, base, 0), ty);
        if b < 0 {
            self.close(m, pid, a);
            return b;
        }
        self.put_fd_pair(m, pid, host, sv, [a, b])
    }

    fn addr_arg(&self, host: Pid, addr: u64, len: u64) -> Result<Addr, i64> {
        if len > 128 {
            return Err(-EINVAL);
        }
        Addr::parse(&self.get(host, addr, len as usize)?)
    }

    /// Writes `a` to a (sockaddr, socklen_t *) pair; a null pointer is skipped.
    fn put_addr(&self, host: Pid, addr: u64, lenp: u64, a: &Addr) -> Result<(), i64> {
        if addr == 0 || lenp == 0 {
            return Ok(());
        }
        let room = self.get(host, lenp, 4)?;
        let room = u32::from_ne_bytes([room[0], room[1], room[2], room[3]]) as usize;
        let bytes = a.encode();
        let n = bytes.len().min(room);
        self.put(host, addr, &bytes[..n])?;
        self.put(host, lenp, &(bytes.len() as u32).to_ne_bytes())
    }

    pub(super) fn sys_bind(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        fd: i64,
        addr: u64,
        len: u64,
    ) -> i64 {
        let a = match self.addr_arg(host, addr, len) {
            Ok(a) => a,
            Err(e) => return e,
        };
        let cwd = self.procs.get(&pid).map(|p| p.cwd);
        let d = self.sock_of(pid, fd);
        let reg = &mut self.unix;
        let r = (|| {
            let d = d?;
            let mut d = d.borrow_mut();
            let Object::Socket(s) = &mut d.object else {
                return Err(-ENOTSOCK);
            };
            match (&mut s.kind, a) {
                (Kind::Tcp(t), Addr::Inet(_, port)) => t.bind(&m.net, port).map(|_| 0).map_err(neg),
                (Kind::Dgram(dg), Addr::Inet(_, port)) => {
                    dg.bind(&mut m.net, port).map(|_| 0).map_err(neg)
                }
                (Kind::Unix(u), Addr::Unix(path)) => {
                    let path = unix::full_path(m, cwd, &path)?;
                    u.bind(reg, m, path).map(|()| 0)
                }
                _ => Err(-EINVAL),
            }
        })();
        r.unwrap_or_else(|e| e)
    }

    pub(super) fn sys_listen(&mut self, m: &mut Machine, pid: u32, fd: i64, backlog: u64) -> i64 {
        let backlog = (backlog as i32).clamp(1, 128) as usize;
        let d = self.sock_of(pid, fd);
        let reg = &mut self.unix;
        let r = (|| {
            let d = d?;
            let mut d = d.borrow_mut();
            let Object::Socket(s) = &mut d.object else {
                return Err(-ENOTSOCK);
            };
            match &mut s.kind {
                Kind::Tcp(t) => {
                    t.listen(&mut m.net, backlog).map_err(neg)?;
                    if s.local.is_none() {
                        let port = t.endpoints(&mut m.net).0.map_or(0, |e| e.port);
                        let mut twin = Unix::stream();
                        twin.bind(reg, m, unix::inet_name(port))?;
                        twin.listen(reg, backlog)?;
                        s.local = Some(twin);
                    }
                    Ok(0)
                }
                Kind::Unix(u) => u.listen(reg, backlog).map(|()| 0),
                Kind::Dgram(_) => Err(-EOPNOTSUPP),
            }
        })();
        r.unwrap_or_else(|e| e)
    }

    pub(super) fn sys_accept(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        fd: i64,
        addr: u64,
        lenp: u64,
        flags: u64,
    ) -> Ret {
        let d = match self.sock_of(pid, fd) {
            Ok(d) => d,
            Err(e) => return Ret::Val(e),
        };
        let nonblock = Self::nonblocking(&d);
        let got = {
            let mut d = d.borrow_mut();
            let Object::Socket(s) = &mut d.object else {
                return Ret::Val(-ENOTSOCK);
            };
            let (domain, ty) = (s.domain, s.ty);
            let local = s.local.as_mut().map(Unix::accept);
            match &mut s.kind {
                Kind::Tcp(_) if matches!(local, Some(Ok(_))) => match local {
                    Some(Ok(c)) => Ok((
                        Socket::new(Kind::Unix(c), domain, ty, 6),
                        Addr::Inet(Ipv4Address::new(127, 0, 0, 1), 0),
                    )),
                    _ => Err(SockErr::Wait),
                },
                Kind::Tcp(t) => t.accept(&mut m.net).map(|(c, peer)| {
                    (
                        Socket::new(Kind::Tcp(c), domain, ty, 6),
                        endpoint(Some(peer)),
                    )
                }),
                Kind::Unix(u) => u.accept().map(|c| {
                    (
                        Socket::new(Kind::Unix(c), domain, ty, 0),
                        Addr::Unix(Vec::new()),
                    )
                }),
                Kind::Dgram(_) => Err(errno(EOPNOTSUPP)),
            }
        };
        match got {
            Ok((s, peer)) => {
                let nfd = self.new_socket_fd(m, pid, s, flags);
                if nfd >= 0 {
                    if let Err(e) = self.put_addr(host, addr, lenp, &peer) {
                        self.close(m, pid, nfd);
                        return Ret::Val(e);
                    }
                }
                Ret::Val(nfd)
            }
            Err(SockErr::Wait) if nonblock => Ret::Val(-EAGAIN),
            Err(SockErr::Wait) => self.sock_wait(&d, 0),
            Err(SockErr::Errno(e)) => Ret::Val(-e),
        }
    }

    /// connect; `again` is a blocking call tried again while the connection is made.
    pub(super) fn sys_connect(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        fd: i64,
        addr: u64,
        len: u64,
        again: bool,
    ) -> Ret {
        let a = match self.addr_arg(host, addr, len) {
            Ok(a) => a,
            Err(e) => return Ret::Val(e),
        };
        let cwd = self.procs.get(&pid).map(|p| p.cwd);
        let d = match self.sock_of(pid, fd) {
            Ok(d) => d,
            Err(e) => return Ret::Val(e),
        };
        let nonblock = Self::nonblocking(&d);
        let mut d = d.borrow_mut();
        let Object::Socket(s) = &mut d.object else {
            return Ret::Val(-ENOTSOCK);
        };
        match (&mut s.kind, a) {
            (Kind::Tcp(Tcp::Idle(_)), Addr::Inet(ip, port)) if m.net.is_local(ip) => {
                let mut u = Unix::stream();
                match u.connect(&mut self.unix, &unix::inet_name(port)) {
                    Ok(()) => {
                        s.kind = Kind::Unix(u);
                        Ret::Val(0)
                    }
                    Err(SockErr::Wait) if nonblock => Ret::Val(-EAGAIN),
                    Err(SockErr::Wait) => Ret::Block(None),
                    Err(SockErr::Errno(ENOENT)) => Ret::Val(-ECONNREFUSED),
                    Err(SockErr::Errno(e)) => Ret::Val(-e),
                }
            }
            (Kind::Tcp(t), Addr::Inet(ip, port)) => {
                let r = match t {
                    Tcp::Connecting { .. } if again => t.connect_progress(&mut m.net),
                    Tcp::Connecting { .. } => match t.connect_progress(&mut m.net) {
                        Err(SockErr::Wait) => Err(errno(EALREADY)),
                        other => other,
                    },
                    _ => t.connect(&mut m.net, ip, port),
                };
                match r {
                    Ok(()) => Ret::Val(0),
                    Err(SockErr::Errno(EINPROGRESS)) | Err(SockErr::Wait) if !nonblock => {
                        Ret::Block(None)
                    }
                    Err(SockErr::Wait) => Ret::Val(-EALREADY),
                    Err(SockErr::Errno(e)) => Ret::Val(-e),
                }
            }
            (Kind::Dgram(dg), Addr::Inet(ip, port)) => {
                dg.peer = Some((ip, port));
                if dg.port.is_none() && dg.kind == DgramKind::Udp {
                    if let Err(e) = dg.bind(&mut m.net, 0) {
                        return Ret::Val(neg(e));
                    }
                }
                Ret::Val(0)
            }
            (Kind::Dgram(dg), Addr::Unspec) => {
                dg.peer = None;
                Ret::Val(0)
            }
            (Kind::Unix(u), Addr::Unix(path)) => {
                let path = match unix::full_path(m, cwd, &path) {
                    Ok(p) => p,
                    Err(e) => return Ret::Val(e),
                };
                match u.connect(&mut self.unix, &path) {
                    Ok(()) => Ret::Val(0),
                    Err(SockErr::Wait) if nonblock => Ret::Val(-EAGAIN),
                    Err(SockErr::Wait) => Ret::Block(None),
                    Err(SockErr::Errno(e)) => Ret::Val(-e),
                }
            }
            (Kind::Tcp(_), Addr::Unspec) => Ret::Val(0),
            (Kind::Unix(_), Addr::Inet(..)) => Ret::Val(-EISCONN),
            (Kind::Unix(_), Addr::Unspec) => Ret::Val(0),
            _ => Ret::Val(-EAFNOSUPPORT),
        }
    }

    /// One send of `data` on description `d`; EPIPE raises SIGPIPE unless MSG_NOSIGNAL.
    pub(super) fn sock_send(
        &mut self,
        m: &mut Machine,
        pid: u32,
        d: &DescRef,
        data: &[u8],
        to: Option<Addr>,
        flags: u64,
    ) -> Ret {
        let nonblock = Self::nonblocking(d) || flags & MSG_DONTWAIT != 0;
        let r = {
            let mut d = d.borrow_mut();
            let Object::Socket(s) = &mut d.object else {
                return Ret::Val(-ENOTSOCK);
            };
            s.send(&mut m.net, &mut self.unix, data, to)
        };
        match r {
            Ok(n) => Ret::Val(n as i64),
            Err(SockErr::Wait) if nonblock => Ret::Val(-EAGAIN),
            Err(SockErr::Wait) => self.sock_wait(d, 1),
            Err(SockErr::Errno(EPIPE)) => {
                if flags & MSG_NOSIGNAL == 0 {
                    self.send_signal(pid, libc::SIGPIPE);
                }
                Ret::Val(-EPIPE)
            }
            Err(SockErr::Errno(e)) => Ret::Val(-e),
        }
    }

    /// One receive of at most `max` bytes on description `d`: data, sender, full length.
    pub(super) fn sock_recv(
        &mut self,
        m: &mut Machine,
        d: &DescRef,
        max: usize,
        flags: u64,
    ) -> Result<(Vec<u8>, Option<Addr>, usize), Ret> {
        let nonblock = Self::nonblocking(d) || flags & MSG_DONTWAIT != 0;
        let r = {
            let mut d = d.borrow_mut();
            let Object::Socket(s) = &mut d.object else {
                return Err(Ret::Val(-ENOTSOCK));
            };
            s.recv(&mut m.net, max, flags & MSG_PEEK != 0)
        };
        match r {
            Ok(v) => Ok(v),
            Err(SockErr::Wait) if nonblock => Err(Ret::Val(-EAGAIN)),
            Err(SockErr::Wait) => Err(self.sock_wait(d, 0)),
            Err(SockErr::Errno(e)) => Err(Ret::Val(-e)),
        }
    }

    pub(super) fn sys_sendto(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        fd: i64,
        buf: u64,
        len: u64,
        flags: u64,
        addr: u64,
        alen: u64,
    ) -> Ret {
        let d = match self.sock_of(pid, fd) {
            Ok(d) => d,
            Err(e) => return Ret::Val(e),
        };
        let to = if addr == 0 {
            None
        } else {
            match self.addr_arg(host, addr, alen) {
                Ok(a) => Some(self.resolve_unix(m, pid, a)),
                Err(e) => return Ret::Val(e),
            }
        };
        let to = match to.transpose() {
            Ok(t) => t,
            Err(e) => return Ret::Val(e),
        };
        let data = match self.get(host, buf, (len as usize).min(MAX_IO)) {
            Ok(b) => b,
            Err(e) => return Ret::Val(e),
        };
        self.sock_send(m, pid, &d, &data, to, flags)
    }

    /// A unix address made absolute against the caller's cwd.
    fn resolve_unix(&self, m: &mut Machine, pid: u32, a: Addr) -> Result<Addr, i64> {
        match a {
            Addr::Unix(p) => {
                let cwd = self.procs.get(&pid).map(|p| p.cwd);
                Ok(Addr::Unix(unix::full_path(m, cwd, &p)?))
            }
            other => Ok(other),
        }
    }

    pub(super) fn sys_recvfrom(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        fd: i64,
        buf: u64,
        len: u64,
        flags: u64,
        addr: u64,
        lenp: u64,
    ) -> Ret {
        let d = match self.sock_of(pid, fd) {
            Ok(d) => d,
            Err(e) => return Ret::Val(e),
        };
        let (data, from, full) = match self.sock_recv(m, &d, (len as usize).min(MAX_IO), flags) {
            Ok(v) => v,
            Err(r) => return r,
        };
        if let Err(e) = self.put(host, buf, &data) {
            return Ret::Val(e);
        }
        if let Some(from) = from {
            if let Err(e) = self.put_addr(host, addr, lenp, &from) {
                return Ret::Val(e);
            }
        } else if lenp != 0 && addr != 0 {
            let _ = self.put(host, lenp, &0u32.to_ne_bytes());
        }
        let n = if flags & MSG_TRUNC != 0 {
            full
        } else {
            data.len()
        };
        Ret::Val(n as i64)
    }

    /// struct msghdr: (name, namelen, iov, iovlen, control, controllen).
    fn msghdr(&self, host: Pid, msg: u64) -> Result<[u64; 6], i64> {
        let raw = self.get(host, msg, 56)?;
        let w = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw[i..i + 8]);
            u64::from_ne_bytes(b)
        };
        Ok([w(0), w(8) & 0xffff_ffff, w(16), w(24), w(32), w(40)])
    }

    /// A message's iovec array: as readv's, but a count past 1024 is EMSGSIZE.
    fn iov_list(&self, host: Pid, iov: u64, count: u64) -> Result<Vec<(u64, u64)>, i64> {
        if count > 1024 {
            return Err(-EMSGSIZE_NEG);
        }
        self.iovecs(host, iov, count)
    }

    pub(super) fn sys_sendmsg(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        fd: i64,
        msg: u64,
        flags: u64,
    ) -> Ret {
        let d = match self.sock_of(pid, fd) {
            Ok(d) => d,
            Err(e) => return Ret::Val(e),
        };
        let r = (|| {
            let h = self.msghdr(host, msg)?;
            let to = if h[0] == 0 || h[1] == 0 {
                None
            } else {
                Some(self.resolve_unix(m, pid, self.addr_arg(host, h[0], h[1])?)?)
            };
            let data = self.gather(host, &self.iov_list(host, h[2], h[3])?)?;
            Ok((to, data))
        })();
        match r {
            Ok((to, data)) => self.sock_send(m, pid, &d, &data, to, flags),
            Err(e) => Ret::Val(e),
        }
    }

    pub(super) fn sys_recvmsg(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        fd: i64,
        msg: u64,
        flags: u64,
    ) -> Ret {
        let d = match self.sock_of(pid, fd) {
            Ok(d) => d,
            Err(e) => return Ret::Val(e),
        };
        let (h, iov) = match self
            .msghdr(host, msg)
            .and_then(|h| Ok((h, self.iov_list(host, h[2], h[3])?)))
        {
            Ok(v) => v,
            Err(e) => return Ret::Val(e),
        };
        let max: usize = iov
            .iter()
            .map(|&(_, l)| l as usize)
            .sum::<usize>()
            .min(MAX_IO);
        let (data, from, full) = match self.sock_recv(m, &d, max, flags) {
            Ok(v) => v,
            Err(r) => return r,
        };
        if let Err(e) = self.scatter(host, &iov, &data) {
            return Ret::Val(e);
        }
        // msg_namelen, msg_controllen (no ancillary data) and msg_flags.
        let mut out_flags = 0u32;
        if full > data.len() {
            out_flags |= MSG_TRUNC as u32;
        }
        let written = match (&from, h[0]) {
            (Some(a), name) if name != 0 => {
                let bytes = a.encode();
                let n = bytes.len().min(h[1] as usize);
                if let Err(e) = self.put(host, name, &bytes[..n]) {
                    return Ret::Val(e);
                }
                bytes.len() as u32
            }
            _ => 0,
        };
        let _ = self.put(host, msg + 8, &written.to_ne_bytes());
        let _ = self.put(host, msg + 40, &0u64.to_ne_bytes());
        let _ = self.put(host, msg + 48, &out_flags.to_ne_bytes());
        let n = if flags & MSG_TRUNC != 0 {
            full
        } else {
            data.len()
        };
        Ret::Val(n as i64)
    }

    pub(super) fn sys_shutdown(&mut self, m: &mut Machine, pid: u32, fd: i64, how: u64) -> i64 {
        if how > 2 {
            return -EINVAL;
        }
        self.with_sock(pid, fd, |s, _| match &mut s.kind {
            Kind::Tcp(t) => t.shutdown(&mut m.net, how).map_err(neg),
            Kind::Unix(u) => u.shutdown(how),
            Kind::Dgram(_) => Ok(()),
        })
        .map_or_else(|e| e, |()| 0)
    }

    pub(super) fn sys_sockname(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        fd: i64,
        addr: u64,
        lenp: u64,
        peer: bool,
    ) -> i64 {
        let a = self.with_sock(pid, fd, |s, _| match &mut s.kind {
            Kind::Tcp(t) => {
                let (local, remote) = t.endpoints(&mut m.net);
                match (peer, remote) {
                    (true, None) => Err(-ENOTCONN),
                    (true, r) => Ok(endpoint(r)),
                    (false, _) => Ok(endpoint(local)),
                }
            }
            Kind::Dgram(d) => match (peer, d.peer) {
                (true, None) => Err(-ENOTCONN),
                (true, Some((a, p))) => Ok(Addr::Inet(a, p)),
                (false, p) => {
                    let ip = p
                        .and_then(|(a, _)| m.net.source_for(a))
                        .unwrap_or(Ipv4Address::UNSPECIFIED);
                    Ok(Addr::Inet(ip, d.port.unwrap_or(0)))
                }
            },
            Kind::Unix(_) if s.domain == AF_INET => {
                Ok(Addr::Inet(Ipv4Address::new(127, 0, 0, 1), 0))
            }
            Kind::Unix(u) => u.name(peer),
        });
        match a.and_then(|a| self.put_addr(host, addr, lenp, &a)) {
            Ok(()) => 0,
            Err(e) => e,
        }
    }

    pub(super) fn sys_setsockopt(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        fd: i64,
        level: u64,
        name: u64,
        val: u64,
        len: u64,
    ) -> i64 {
        if level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO) {
            let tv = match self.get(host, val, 16) {
                Ok(b) if len >= 16 => b,
                Ok(_) => return -EINVAL,
                Err(e) => return e,
            };
            let w = |i: usize| i64::from_ne_bytes(tv[i..i + 8].try_into().unwrap_or([0; 8]));
            let t = Duration::new(
                w(0).clamp(0, 1 << 40) as u64,
                (w(8).clamp(0, 999_999) * 1000) as u32,
            );
            let which = (name == SO_SNDTIMEO) as usize;
            return self
                .with_sock(pid, fd, |s, _| {
                    s.timeouts[which] = (!t.is_zero()).then_some(t);
                    Ok(0)
                })
                .unwrap_or_else(|e| e);
        }
        let v = match self.get(host, val, (len as usize).min(4)) {
            Ok(b) if b.len() == 4 => i32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            Ok(b) => b.first().copied().unwrap_or(0) as i32,
            Err(e) => return e,
        };
        self.with_sock(pid, fd, |s, _| {
            let stored = match (level, name) {
                (SOL_SOCKET, SO_RCVBUF | SO_SNDBUF) => v.saturating_mul(2).max(2048),
                _ => v,
            };
            s.opts.insert((level, name), stored);
            if let Kind::Tcp(t) = &mut s.kind {
                match (level, name) {
                    (IPPROTO_TCP, TCP_NODELAY) => t.set_option(&mut m.net, Some(v != 0), None),
                    (SOL_SOCKET, SO_KEEPALIVE) => t.set_option(&mut m.net, None, Some(v != 0)),
                    _ => {}
                }
            }
            Ok(0)
        })
        .unwrap_or_else(|e| e)
    }

    pub(super) fn sys_getsockopt(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        fd: i64,
        level: u64,
        name: u64,
        val: u64,
        lenp: u64,
    ) -> i64 {
        if level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO) {
            let which = (name == SO_SNDTIMEO) as usize;
            let t = match self.with_sock(pid, fd, |s, _| Ok(s.timeouts[which])) {
                Ok(t) => t.unwrap_or_default(),
                Err(e) => return e,
            };
            let mut tv = [0u8; 16];
            tv[..8].copy_from_slice(&(t.as_secs() as i64).to_ne_bytes());
            tv[8..].copy_from_slice(&i64::from(t.subsec_micros()).to_ne_bytes());
            return match self
                .put(host, val, &tv)
                .and_then(|()| self.put(host, lenp, &16u32.to_ne_bytes()))
            {
                Ok(()) => 0,
                Err(e) => e,
            };
        }
        let v = self.with_sock(pid, fd, |s, _| {
            let v = match (level, name) {
                (SOL_SOCKET, SO_ERROR) => match &mut s.kind {
                    Kind::Tcp(t) => match t {
                        Tcp::Connecting { .. } | Tcp::Failed(_) => {
                            match t.connect_progress(&mut m.net) {
                                Err(SockErr::Errno(e)) => e as i32,
                                _ => 0,
                            }
                        }
                        _ => 0,
                    },
                    _ => 0,
                },
                (SOL_SOCKET, SO_TYPE) => s.ty as i32,
                (SOL_SOCKET, SO_DOMAIN) => i32::from(s.domain),
                (SOL_SOCKET, SO_PROTOCOL) => s.proto as i32,
                (SOL_SOCKET, SO_ACCEPTCONN) => match &s.kind {
                    Kind::Tcp(t) => t.is_listening() as i32,
                    Kind::Unix(u) => u.is_listening() as i32,
                    Kind::Dgram(_) => 0,
                },
                (SOL_SOCKET, SO_RCVBUF) => *s.opts.get(&(level, name)).unwrap_or(&131_072),
                (SOL_SOCKET, SO_SNDBUF) => *s.opts.get(&(level, name)).unwrap_or(&16_384),
                _ => *s.opts.get(&(level, name)).unwrap_or(&0),
            };
            Ok(v)
        });
        let v = match v {
            Ok(v) => v,
            Err(e) => return e,
        };
        let room = match self.get(host, lenp, 4) {
            Ok(b) => u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize,
            Err(e) => return e,
        };
        let bytes = v.to_ne_bytes();
        let n = room.min(4);
        if self.put(host, val, &bytes[..n]).is_err()
            || self.put(host, lenp, &(n as u32).to_ne_bytes()).is_err()
        {
            return -EFAULT;
        }
        0
    }

    /// FIONREAD on a socket.
    pub(super) fn sock_queued(&mut self, m: &mut Machine, d: &DescRef) -> usize {
        match &mut d.borrow_mut().object {
            Object::Socket(s) => s.queued(&mut m.net),
            _ => 0,
        }
    }

    /// poll's bits for a socket description.
    pub(super) fn sock_readiness(&mut self, m: &mut Machine, d: &DescRef) -> i16 {
        match &mut d.borrow_mut().object {
            Object::Socket(s) => s.readiness(&mut m.net),
            _ => 0,
        }
    }
}

const EMSGSIZE_NEG: i64 = 90;

/// A SockErr as a negated errno (Wait, where it cannot wait, is EAGAIN).
fn neg(e: SockErr) -> i64 {
    match e {
        SockErr::Wait => -EAGAIN,
        SockErr::Errno(e) => -e,
    }
}

const EINPROGRESS: i64 = 115;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_and_unix_addresses_round_trip() {
        let a = Addr::Inet(Ipv4Address::new(10, 0, 0, 1), 8080);
        assert_eq!(Addr::parse(&a.encode()), Ok(a));
        let u = Addr::Unix(b"/dev/log".to_vec());
        let raw = u.encode();
        assert_eq!(raw.len(), 2 + 8 + 1);
        assert_eq!(Addr::parse(&raw), Ok(u));
        let abs = Addr::Unix(b"\0name".to_vec());
        assert_eq!(Addr::parse(&abs.encode()), Ok(abs));
        assert_eq!(Addr::parse(&[10, 0, 0, 0]), Err(-EAFNOSUPPORT));
        assert_eq!(Addr::parse(&[2]), Err(-EINVAL));
    }
}
