//! The daemon network transport between a UML and a switch (uml_switch, vde_switch):
//! control requests v0, v1 and v3 (v2 is refused, as the C switch does), the 110-byte
//! reply naming the switch's data socket, the abstract data-socket names, and thin
//! socket calls that bind and send with the full 110-byte address as both sides do.
//!
//! Addresses are carried verbatim: linux.uml names its data socket with uninitialised
//! bytes after the pid and time, so an address is 110 raw bytes plus the length it was
//! bound or seen with, never a parsed path.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::ether::MacAddr;
use crate::logline::escape_bytes;

/// `sizeof(struct sockaddr_un)` on Linux: 2-byte family and 108 path bytes.
pub const SOCKADDR_LEN: usize = 110;
/// Bytes of `sun_path`.
pub const PATH_LEN: usize = SOCKADDR_LEN - 2;
/// The magic that starts v1+ requests.
pub const SWITCH_MAGIC: u32 = 0xfeed_face;
/// The only request type there is: attach a new port.
pub const REQ_NEW_CONTROL: u32 = 0;
/// What each request version occupies on the wire (v3 includes its 2 bytes of padding,
/// which linux.uml writes; 122 bytes are enough to accept one).
pub const V0_LEN: usize = 120;
pub const V1_LEN: usize = 124;
pub const V3_LEN: usize = 124;
pub const V3_MIN_LEN: usize = 122;
/// The most a switch reads for one request.
pub const MAX_REQUEST_LEN: usize = 124;
/// VDE 2's clients (libvdeplug: vde_plug, QEMU, linux.uml's `vde` transport) send a v3
/// request packed to 122 bytes followed by a text description of up to this many bytes.
pub const VDE_DESCRIPTION_MAX: usize = 128;

/// A unix socket address as raw `sockaddr_un` bytes and the length that goes with them.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataAddr {
    pub bytes: [u8; SOCKADDR_LEN],
    pub len: u32,
}

impl DataAddr {
    /// An address from raw sockaddr bytes (at most 110; the rest stays zero).
    pub fn from_raw(raw: &[u8]) -> DataAddr {
        let n = raw.len().min(SOCKADDR_LEN);
        let mut bytes = [0u8; SOCKADDR_LEN];
        bytes[..n].copy_from_slice(&raw[..n]);
        DataAddr {
            bytes,
            len: n as u32,
        }
    }

    /// The abstract name both UML and the C switch use: `{0, pad, pid, usec}` then zeros,
    /// bound with the full 110 bytes.
    pub fn abstract_name(pid: u32, usec: u32) -> DataAddr {
        let mut bytes = [0u8; SOCKADDR_LEN];
        bytes[0..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
        bytes[6..10].copy_from_slice(&pid.to_ne_bytes());
        bytes[10..14].copy_from_slice(&usec.to_ne_bytes());
        DataAddr {
            bytes,
            len: SOCKADDR_LEN as u32,
        }
    }

    /// A filesystem path as a full 110-byte sockaddr (what `-compat-v0` data sockets and
    /// vde_switch replies look like). None if the path does not fit.
    pub fn path(path: &Path) -> Option<DataAddr> {
        use std::os::unix::ffi::OsStrExt;
        let p = path.as_os_str().as_bytes();
        if p.is_empty() || p.len() >= PATH_LEN || p.contains(&0) {
            return None;
        }
        let mut bytes = [0u8; SOCKADDR_LEN];
        bytes[0..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
        bytes[2..2 + p.len()].copy_from_slice(p);
        Some(DataAddr {
            bytes,
            len: SOCKADDR_LEN as u32,
        })
    }

    /// The path bytes (`sun_path`), as far as the length reaches.
    pub fn sun_path(&self) -> &[u8] {
        let end = (self.len as usize).clamp(2, SOCKADDR_LEN);
        &self.bytes[2..end]
    }

    pub fn is_abstract(&self) -> bool {
        self.len > 2 && self.bytes[2] == 0
    }

    /// The same address padded with zeros to the full 110 bytes: the form a request
    /// carries, so a datagram from a client that bound a shorter name still matches.
    pub fn full_length(&self) -> DataAddr {
        let mut out = DataAddr {
            bytes: [0u8; SOCKADDR_LEN],
            len: SOCKADDR_LEN as u32,
        };
        let n = (self.len as usize).min(SOCKADDR_LEN);
        out.bytes[..n].copy_from_slice(&self.bytes[..n]);
        out
    }

    /// The length to send with for a short abstract name: the name without its trailing
    /// zero bytes (a client that bound `"\0name"` is only reachable that way).
    pub fn trimmed(&self) -> DataAddr {
        let path = self.sun_path();
        let keep = path.iter().rposition(|&b| b != 0).map_or(1, |i| i + 1);
        DataAddr {
            bytes: self.bytes,
            len: (2 + keep) as u32,
        }
    }
}

impl fmt::Display for DataAddr {
    /// Abstract UML-style names show as `@pid.usec` (plus a digest of the rest), paths
    /// as themselves; control characters and invalid UTF-8 as `\xNN` (a client chose
    /// these bytes, and they go to logs and terminals).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.sun_path();
        if self.is_abstract() {
            if path.len() >= 12 {
                let pid = u32::from_ne_bytes(path[4..8].try_into().expect("4"));
                let usec = u32::from_ne_bytes(path[8..12].try_into().expect("4"));
                let rest: u32 = path[12..]
                    .iter()
                    .fold(0u32, |h, &b| h.wrapping_mul(31).wrapping_add(b as u32));
                write!(f, "@pid{pid}.{usec}/{rest:08x}")
            } else {
                write!(f, "@{}", escape_bytes(&path[1..]))
            }
        } else {
            let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
            write!(f, "{}", escape_bytes(&path[..end]))
        }
    }
}

impl fmt::Debug for DataAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataAddr({self}, len {})", self.len)
    }
}

/// A control request as a client writes it on the switch's stream socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// No magic: type, MAC, sockaddr. Gets no reply.
    V0 { mac: MacAddr, addr: DataAddr },
    /// Magic, type, MAC, sockaddr.
    V1 { mac: MacAddr, addr: DataAddr },
    /// Magic, version 3, type, sockaddr: what linux.uml sends.
    V3 { addr: DataAddr },
}

/// Why a control request cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// Fewer bytes than the version needs (so far).
    Short { have: usize, need: usize },
    /// Version 2, or a version newer than 3.
    Version(u32),
    /// A request type other than REQ_NEW_CONTROL.
    BadType(u32),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Short { have, need } => {
                write!(f, "short request: {have} of {need} bytes")
            }
            RequestError::Version(v) => {
                write!(f, "request for a version {v} port, which is not supported")
            }
            RequestError::BadType(t) => write!(f, "bad request type : {t}"),
        }
    }
}

impl std::error::Error for RequestError {}

fn word(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn mac_at(b: &[u8], at: usize) -> MacAddr {
    MacAddr(b[at..at + 6].try_into().expect("6 bytes"))
}

fn addr_at(b: &[u8], at: usize) -> DataAddr {
    DataAddr::from_raw(&b[at..at + SOCKADDR_LEN])
}

/// The version a request prefix announces and the bytes it needs; None until 8 bytes
/// are there. Classification as the C switch does it: no magic means v0; with the
/// magic, word 1 is the version for 2 and up, else v1's type field.
pub fn request_len(prefix: &[u8]) -> Option<Result<usize, RequestError>> {
    if prefix.len() < 8 {
        return None;
    }
    Some(if word(prefix, 0) != SWITCH_MAGIC {
        Ok(V0_LEN)
    } else {
        match word(prefix, 4) {
            0 | 1 => Ok(V1_LEN),
            3 => Ok(V3_MIN_LEN),
            v => Err(RequestError::Version(v)),
        }
    })
}

impl Request {
    /// Parses one request from the start of `b`.
    pub fn parse(b: &[u8]) -> Result<Request, RequestError> {
        let need = match request_len(b) {
            None => {
                return Err(RequestError::Short {
                    have: b.len(),
                    need: 8,
                })
            }
            Some(r) => r?,
        };
        if b.len() < need {
            return Err(RequestError::Short {
                have: b.len(),
                need,
            });
        }
        let (ty, req) = if word(b, 0) != SWITCH_MAGIC {
            (
                word(b, 0),
                Request::V0 {
                    mac: mac_at(b, 4),
                    addr: addr_at(b, 10),
                },
            )
        } else if word(b, 4) == 3 {
            (
                word(b, 8),
                Request::V3 {
                    addr: addr_at(b, 12),
                },
            )
        } else {
            (
                word(b, 4),
                Request::V1 {
                    mac: mac_at(b, 8),
                    addr: addr_at(b, 14),
                },
            )
        };
        if ty != REQ_NEW_CONTROL {
            return Err(RequestError::BadType(ty));
        }
        Ok(req)
    }

    /// The client's data-socket address.
    pub fn addr(&self) -> &DataAddr {
        match self {
            Request::V0 { addr, .. } | Request::V1 { addr, .. } | Request::V3 { addr } => addr,
        }
    }

    /// The MAC the client announced (v0 and v1 only).
    pub fn mac(&self) -> Option<MacAddr> {
        match self {
            Request::V0 { mac, .. } | Request::V1 { mac, .. } => Some(*mac),
            Request::V3 { .. } => None,
        }
    }

    /// Whether the switch answers with its data-socket address (v1 and v3).
    pub fn wants_reply(&self) -> bool {
        !matches!(self, Request::V0 { .. })
    }

    /// Bytes this request occupies on the wire (v3 with its padding, as linux.uml).
    pub fn wire_len(&self) -> usize {
        match self {
            Request::V0 { .. } => V0_LEN,
            Request::V1 { .. } => V1_LEN,
            Request::V3 { .. } => V3_LEN,
        }
    }

    /// How many more bytes the client may still send on the control connection after the
    /// first `received` ones without that being a bad request: the rest of the request's
    /// padding or, for v3, a VDE description.
    pub fn trailing_allowance(&self, received: usize) -> usize {
        match self {
            Request::V3 { .. } => (V3_MIN_LEN + VDE_DESCRIPTION_MAX).saturating_sub(received),
            _ => self.wire_len().saturating_sub(received),
        }
    }

    /// Writes the request into `buf` (at least `wire_len` bytes); returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let n = self.wire_len();
        let b = &mut buf[..n];
        b.fill(0);
        let put = |b: &mut [u8], at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        match self {
            Request::V0 { mac, addr } => {
                put(b, 0, REQ_NEW_CONTROL);
                b[4..10].copy_from_slice(&mac.0);
                b[10..120].copy_from_slice(&addr.bytes);
            }
            Request::V1 { mac, addr } => {
                put(b, 0, SWITCH_MAGIC);
                put(b, 4, REQ_NEW_CONTROL);
                b[8..14].copy_from_slice(&mac.0);
                b[14..124].copy_from_slice(&addr.bytes);
            }
            Request::V3 { addr } => {
                put(b, 0, SWITCH_MAGIC);
                put(b, 4, 3);
                put(b, 8, REQ_NEW_CONTROL);
                b[12..122].copy_from_slice(&addr.bytes);
            }
        }
        n
    }
}

/// The switch's reply: its data-socket address, exactly 110 bytes.
pub fn parse_reply(b: &[u8]) -> Result<DataAddr, RequestError> {
    if b.len() != SOCKADDR_LEN {
        return Err(RequestError::Short {
            have: b.len(),
            need: SOCKADDR_LEN,
        });
    }
    Ok(DataAddr::from_raw(b))
}

/// Writes the reply for `switch_data` into `buf`; returns 110.
pub fn emit_reply(switch_data: &DataAddr, buf: &mut [u8]) -> usize {
    buf[..SOCKADDR_LEN].copy_from_slice(&switch_data.bytes);
    SOCKADDR_LEN
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// A non-blocking, close-on-exec unix datagram socket bound to `addr` with exactly its
/// length (nix's address types cannot carry linux.uml's uninitialised name bytes).
pub fn bind_dgram(addr: &DataAddr) -> io::Result<OwnedFd> {
    // SAFETY: socket has no memory preconditions; the fd is wrapped at once.
    let fd = unsafe {
        OwnedFd::from_raw_fd(cvt(libc::socket(
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        ))?)
    };
    // SAFETY: addr.bytes is a 110-byte buffer laid out as sockaddr_un; len <= 110.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            addr.bytes.as_ptr() as *const libc::sockaddr,
            addr.len as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

/// Sends one datagram to `to` (without blocking).
pub fn send_to(fd: BorrowedFd<'_>, frame: &[u8], to: &DataAddr) -> io::Result<usize> {
    // SAFETY: frame is a valid slice; to.bytes is a sockaddr_un buffer of >= to.len bytes.
    cvt_size(unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr() as *const libc::c_void,
            frame.len(),
            libc::MSG_DONTWAIT,
            to.bytes.as_ptr() as *const libc::sockaddr,
            to.len as libc::socklen_t,
        )
    })
}

/// Connects a datagram socket to `to`: from then on the kernel delivers to it only what
/// the socket bound at `to` sends (a client takes frames from its switch alone).
pub fn connect_dgram(fd: BorrowedFd<'_>, to: &DataAddr) -> io::Result<()> {
    // SAFETY: to.bytes is a sockaddr_un buffer of >= to.len bytes.
    cvt(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            to.bytes.as_ptr() as *const libc::sockaddr,
            to.len as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Receives one datagram into `buf`; returns its full length (which may exceed the
/// buffer: MSG_TRUNC) and the sender's address.
pub fn recv_from(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, DataAddr)> {
    let mut from = DataAddr {
        bytes: [0u8; SOCKADDR_LEN],
        len: SOCKADDR_LEN as u32,
    };
    let mut len = SOCKADDR_LEN as libc::socklen_t;
    // SAFETY: buf and from.bytes are writable buffers of the lengths passed.
    let n = cvt_size(unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            libc::MSG_TRUNC,
            from.bytes.as_mut_ptr() as *mut libc::sockaddr,
            &mut len,
        )
    })?;
    from.len = len.min(SOCKADDR_LEN as libc::socklen_t);
    Ok((n, from))
}

/// A client attached to a switch: the control connection (the port lives as long as it
/// stays open), the bound data socket and the switch's data address.
#[derive(Debug)]
pub struct Client {
    pub control: UnixStream,
    pub data: OwnedFd,
    pub local: DataAddr,
    pub switch: DataAddr,
}

/// Attaches to the switch at `ctl` as linux.uml does: connect, bind `local`, write the
/// request `make(local)`, read the 110-byte reply (none for v0: then `v0_data` names
/// the switch's data socket). Waits at most `limit` for the reply.
pub fn attach(
    ctl: &Path,
    local: DataAddr,
    make: impl Fn(DataAddr) -> Request,
    v0_data: Option<DataAddr>,
    limit: Duration,
) -> io::Result<Client> {
    let mut control = UnixStream::connect(ctl)?;
    let data = bind_dgram(&local)?;
    let req = make(local);
    let mut buf = [0u8; MAX_REQUEST_LEN];
    let n = req.emit(&mut buf);
    control.write_all(&buf[..n])?;
    let switch = if req.wants_reply() {
        control.set_read_timeout(Some(limit))?;
        let mut reply = [0u8; SOCKADDR_LEN];
        control.read_exact(&mut reply)?;
        parse_reply(&reply).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
    } else {
        v0_data.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a v0 client must know the data socket",
            )
        })?
    };
    Ok(Client {
        control,
        data,
        local,
        switch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// A v3 request laid out as the reference records linux.uml 6.1's: magic, 3, 0,
    /// family 1, {0, 0 0 0, pid, usec}, then non-zero (uninitialised) bytes, 2 pad bytes.
    /// (The interop tests in tests/tests/switch.rs exercise the real kernel's bytes.)
    fn captured_v3() -> Vec<u8> {
        let mut b = vec![0u8; 124];
        b[0..4].copy_from_slice(&[0xce, 0xfa, 0xed, 0xfe]);
        b[4..8].copy_from_slice(&[3, 0, 0, 0]);
        b[12..14].copy_from_slice(&[1, 0]);
        b[18..22].copy_from_slice(&[0xc9, 0xe1, 0x01, 0x00]);
        b[22..26].copy_from_slice(&[0xa5, 0xd5, 0x0b, 0x00]);
        for (i, x) in b[26..122].iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(37) | 1;
        }
        b
    }

    #[test]
    fn a_linux_uml_v3_request_keeps_every_address_byte() {
        let raw = captured_v3();
        let req = Request::parse(&raw).unwrap();
        let Request::V3 { addr } = req else {
            panic!("{req:?}")
        };
        assert_eq!(addr.len, 110);
        assert_eq!(&addr.bytes[..], &raw[12..122]);
        assert!(addr.is_abstract());
        assert!(addr.to_string().starts_with("@pid123337.775589/"));
        let mut out = [0u8; 124];
        assert_eq!(req.emit(&mut out), 124);
        assert_eq!(&out[..], &raw[..]);
        // 122 bytes are enough (vde_switch accepts that too).
        assert_eq!(Request::parse(&raw[..122]).unwrap(), req);
        assert_eq!(
            Request::parse(&raw[..100]),
            Err(RequestError::Short {
                have: 100,
                need: 122
            })
        );
    }

    #[test]
    fn every_version_round_trips() {
        let mac = MacAddr([0xfe, 0xfd, 1, 2, 3, 4]);
        let addr = DataAddr::abstract_name(4242, 99);
        for req in [
            Request::V0 { mac, addr },
            Request::V1 { mac, addr },
            Request::V3 { addr },
        ] {
            let mut buf = [0u8; MAX_REQUEST_LEN];
            let n = req.emit(&mut buf);
            assert!(request_len(&buf[..8]).unwrap().unwrap() <= n);
            assert_eq!(Request::parse(&buf[..n]).unwrap(), req);
        }
    }

    #[test]
    fn versions_and_types_are_classified_as_the_c_switch_does() {
        let mut b = [0u8; 124];
        b[0..4].copy_from_slice(&SWITCH_MAGIC.to_ne_bytes());
        b[4..8].copy_from_slice(&2u32.to_ne_bytes());
        assert_eq!(Request::parse(&b), Err(RequestError::Version(2)));
        b[4..8].copy_from_slice(&7u32.to_ne_bytes());
        assert_eq!(Request::parse(&b), Err(RequestError::Version(7)));
        b[4..8].copy_from_slice(&1u32.to_ne_bytes()); // v1 with type 1
        assert_eq!(Request::parse(&b), Err(RequestError::BadType(1)));
        b[4..8].copy_from_slice(&3u32.to_ne_bytes());
        b[8..12].copy_from_slice(&5u32.to_ne_bytes());
        assert_eq!(Request::parse(&b), Err(RequestError::BadType(5)));
        let mut v0 = [0u8; 120];
        v0[0] = 9;
        assert_eq!(Request::parse(&v0), Err(RequestError::BadType(9)));
        assert!(request_len(&v0[..7]).is_none());
    }

    #[test]
    fn reply_is_exactly_one_sockaddr() {
        let a = DataAddr::abstract_name(1, 2);
        let mut buf = [0u8; 200];
        let n = emit_reply(&a, &mut buf);
        assert_eq!(parse_reply(&buf[..n]).unwrap(), a);
        assert!(parse_reply(&buf[..109]).is_err());
        assert!(parse_reply(&buf[..111]).is_err());
    }

    #[test]
    fn short_and_full_names_relate() {
        let short = DataAddr::from_raw(&[1, 0, 0, b'a', b'b']);
        assert_eq!(short.full_length().len, 110);
        assert_eq!(
            short.full_length().trimmed(),
            DataAddr {
                bytes: short.full_length().bytes,
                len: 5
            }
        );
        let p = DataAddr::path(Path::new("/tmp/x.data")).unwrap();
        assert!(!p.is_abstract());
        assert_eq!(p.to_string(), "/tmp/x.data");
    }

    #[test]
    fn a_full_length_abstract_name_binds_and_receives() {
        let pid = std::process::id();
        let a = DataAddr::abstract_name(pid, 1);
        let b = DataAddr::abstract_name(pid, 2);
        let sa = bind_dgram(&a).unwrap();
        let sb = bind_dgram(&b).unwrap();
        assert_eq!(send_to(sa.as_fd(), b"hello", &b).unwrap(), 5);
        let mut buf = [0u8; 3];
        let (n, from) = recv_from(sb.as_fd(), &mut buf).unwrap();
        assert_eq!(n, 5, "MSG_TRUNC reports the full length");
        assert_eq!(from, a);
    }
}
