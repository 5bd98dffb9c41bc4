//! The uml_net helper protocol, both sides: the argument list the kernel runs
//! `uml_net` with (version 4), and the two reply formats on the helper's fd 1 — the
//! `tuntap up` datagram (IFNAMSIZ interface name, output text, the tap fd over
//! SCM_RIGHTS) and the length-prefixed text that answers `add`/`del`/`slip`.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{BorrowedFd, OwnedFd};

use crate::fdpass;

/// The newest protocol version (the one linux.uml 6.1 speaks).
pub const VERSION: u32 = 4;
/// Size of the interface-name field of the `tuntap up` datagram.
pub const IFNAMSIZ: usize = 16;
/// The kernel reads the `tuntap up` datagram into a buffer this large.
pub const DATAGRAM_MAX: usize = 4095;

/// Add or remove an address route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrOp {
    Add,
    Del,
}

impl AddrOp {
    fn word(self) -> &'static str {
        match self {
            AddrOp::Add => "add",
            AddrOp::Del => "del",
        }
    }
}

/// One helper invocation (after the version number). Arguments are kept as the text
/// the kernel sent; checking them is the helper's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `tuntap up <gate>`: make a tap, give it the gate address, send its fd back.
    TuntapUp { gate: String },
    /// `add|del <dev> <addr> <netmask>`, or with `legacy` `tuntap add|del ...`.
    Address {
        op: AddrOp,
        dev: String,
        addr: String,
        netmask: String,
        legacy: bool,
    },
    /// `ethertap <dev> <data fd> [<gate>]` (2.4 hosts only).
    Ethertap {
        dev: String,
        data_fd: String,
        gate: Option<String>,
    },
    /// `slip up <gate>` (fd 0 is the pty slave).
    SlipUp { gate: String },
    /// `slip down <name>`.
    SlipDown { name: String },
}

/// How the helper answers on its fd 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// One datagram, maybe with an fd (`tuntap up`).
    Datagram,
    /// Length-prefixed text on a stream (`add`, `del`, `slip`).
    Stream,
    /// Status byte, then length-prefixed text (ethertap control stream).
    EthertapStatus,
}

impl Request {
    /// The full argument list after the program name, version first.
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec![VERSION.to_string()];
        let words: Vec<&str> = match self {
            Request::TuntapUp { gate } => vec!["tuntap", "up", gate],
            Request::Address {
                op,
                dev,
                addr,
                netmask,
                legacy,
            } => {
                let mut w = if *legacy { vec!["tuntap"] } else { vec![] };
                w.extend([op.word(), dev, addr, netmask]);
                w
            }
            Request::Ethertap { dev, data_fd, gate } => {
                let mut w = vec!["ethertap", dev.as_str(), data_fd.as_str()];
                w.extend(gate.as_deref());
                w
            }
            Request::SlipUp { gate } => vec!["slip", "up", gate],
            Request::SlipDown { name } => vec!["slip", "down", name],
        };
        v.extend(words.into_iter().map(str::to_owned));
        v
    }

    /// The channel this request is answered on.
    pub fn reply_kind(&self) -> ReplyKind {
        match self {
            Request::TuntapUp { .. } => ReplyKind::Datagram,
            Request::Ethertap { .. } => ReplyKind::EthertapStatus,
            _ => ReplyKind::Stream,
        }
    }
}

/// Why an argument list is not a request this helper handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgvError {
    /// Fewer than two arguments (someone ran the helper by hand).
    TooFew,
    /// A version newer than ours.
    VersionMismatch(String),
    /// An older version we do not speak.
    NoHandler { version: u32, transport: String },
    /// Not tuntap, add, del, ethertap or slip.
    UnknownTransport(String),
    /// Known transport, wrong arguments; answered on that transport's channel.
    Transport { reply: ReplyKind, message: String },
}

impl fmt::Display for ArgvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgvError::TooFew => f.write_str(
                "uml_net : bad argument list - if you're running uml_net by\n\
                 hand, don't bother.  uml_net is run automatically by UML when\n\
                 necessary.",
            ),
            ArgvError::VersionMismatch(v) => write!(
                f,
                "Version mismatch - requested version {v}, uml_net supports up to version {VERSION}"
            ),
            ArgvError::NoHandler { version, transport } => {
                write!(f, "No version #{version} handler for '{transport}'")
            }
            ArgvError::UnknownTransport(t) => write!(f, "Unknown transport : '{t}'"),
            ArgvError::Transport { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for ArgvError {}

/// Parses the arguments after the program name.
pub fn parse_argv<S: AsRef<str>>(args: &[S]) -> Result<Request, ArgvError> {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    if args.len() < 2 {
        return Err(ArgvError::TooFew);
    }
    let version = parse_version(args[0])?;
    let transport = args[1];
    let known = ["tuntap", "add", "del", "ethertap", "slip"];
    if !known.contains(&transport) {
        return Err(ArgvError::UnknownTransport(transport.to_owned()));
    }
    if version != VERSION {
        return Err(ArgvError::NoHandler {
            version,
            transport: transport.to_owned(),
        });
    }
    let rest = &args[2..];
    match transport {
        "tuntap" => parse_tuntap(rest),
        "add" => parse_address(AddrOp::Add, rest, false),
        "del" => parse_address(AddrOp::Del, rest, false),
        "ethertap" => parse_ethertap(rest),
        _ => parse_slip(rest),
    }
}

fn parse_version(s: &str) -> Result<u32, ArgvError> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        // The version-0 form (transport first) is long gone.
        return Err(ArgvError::TooFew);
    }
    match s.parse::<u32>() {
        Ok(v) if v <= VERSION => Ok(v),
        _ => Err(ArgvError::VersionMismatch(s.to_owned())),
    }
}

fn transport_error(reply: ReplyKind, message: String) -> ArgvError {
    ArgvError::Transport { reply, message }
}

fn parse_tuntap(rest: &[&str]) -> Result<Request, ArgvError> {
    match rest {
        ["up", gate] => Ok(Request::TuntapUp {
            gate: (*gate).to_owned(),
        }),
        ["up"] => Err(transport_error(
            ReplyKind::Datagram,
            "Too few arguments to tuntap_up".into(),
        )),
        ["up", ..] => Err(transport_error(
            ReplyKind::Datagram,
            "Too many arguments to tuntap_up".into(),
        )),
        ["add", r @ ..] => parse_address(AddrOp::Add, r, true),
        ["del", r @ ..] => parse_address(AddrOp::Del, r, true),
        [] => Err(transport_error(
            ReplyKind::Stream,
            "uml_net : too few arguments to tuntap_v4".into(),
        )),
        [op, ..] => Err(transport_error(
            ReplyKind::Stream,
            format!("Bad tuntap op : '{op}'"),
        )),
    }
}

fn parse_address(op: AddrOp, rest: &[&str], legacy: bool) -> Result<Request, ArgvError> {
    match rest {
        [dev, addr, netmask] => Ok(Request::Address {
            op,
            dev: (*dev).to_owned(),
            addr: (*addr).to_owned(),
            netmask: (*netmask).to_owned(),
            legacy,
        }),
        _ => Err(transport_error(
            ReplyKind::Stream,
            format!(
                "uml_net : {} needs a device, an address and a netmask",
                op.word()
            ),
        )),
    }
}

fn parse_ethertap(rest: &[&str]) -> Result<Request, ArgvError> {
    match rest {
        [dev, fd] | [dev, fd, ""] => Ok(Request::Ethertap {
            dev: (*dev).to_owned(),
            data_fd: (*fd).to_owned(),
            gate: None,
        }),
        [dev, fd, gate] => Ok(Request::Ethertap {
            dev: (*dev).to_owned(),
            data_fd: (*fd).to_owned(),
            gate: Some((*gate).to_owned()),
        }),
        _ => Err(transport_error(
            ReplyKind::EthertapStatus,
            "uml_net : too few arguments to ethertap_v4".into(),
        )),
    }
}

fn parse_slip(rest: &[&str]) -> Result<Request, ArgvError> {
    match rest {
        ["up", gate] => Ok(Request::SlipUp {
            gate: (*gate).to_owned(),
        }),
        ["down", name] => Ok(Request::SlipDown {
            name: (*name).to_owned(),
        }),
        _ => Err(transport_error(
            ReplyKind::Stream,
            "uml_net : too few arguments to slip_v4".into(),
        )),
    }
}

/// A malformed reply.
#[derive(Debug)]
pub enum ReplyError {
    Io(io::Error),
    /// The length prefix is negative or larger than the reader allows.
    BadLength(i32),
    /// Fewer bytes than the length prefix announced.
    Truncated {
        wanted: usize,
        got: usize,
    },
    /// A datagram with an fd but too short to hold the interface name.
    NoName(usize),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Io(e) => write!(f, "helper reply: {e}"),
            ReplyError::BadLength(n) => write!(f, "helper reply: bad length prefix {n}"),
            ReplyError::Truncated { wanted, got } => {
                write!(f, "helper reply: {got} of {wanted} bytes")
            }
            ReplyError::NoName(n) => {
                write!(f, "helper reply: {n} bytes cannot hold an interface name")
            }
        }
    }
}

impl std::error::Error for ReplyError {}

impl From<io::Error> for ReplyError {
    fn from(e: io::Error) -> Self {
        ReplyError::Io(e)
    }
}

/// The `tuntap up` datagram: the interface name (only when a tap fd goes with it) and
/// what the helper has to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TuntapUpReply {
    pub ifname: Option<String>,
    pub output: String,
}

impl TuntapUpReply {
    /// Appends the datagram bytes: name NUL-padded to 16 (if any), output, NUL.
    pub fn emit(&self, out: &mut Vec<u8>) {
        if let Some(name) = &self.ifname {
            let mut field = [0u8; IFNAMSIZ];
            let n = name.len().min(IFNAMSIZ - 1);
            field[..n].copy_from_slice(&name.as_bytes()[..n]);
            out.extend_from_slice(&field);
        }
        out.extend_from_slice(self.output.as_bytes());
        out.push(0);
    }

    /// Reads a datagram; `with_fd` says whether an fd came with it (then the first 16
    /// bytes are the name).
    pub fn parse(bytes: &[u8], with_fd: bool) -> Result<TuntapUpReply, ReplyError> {
        let (ifname, text) = if with_fd {
            if bytes.len() < IFNAMSIZ {
                return Err(ReplyError::NoName(bytes.len()));
            }
            (Some(c_string(&bytes[..IFNAMSIZ])), &bytes[IFNAMSIZ..])
        } else {
            (None, bytes)
        };
        Ok(TuntapUpReply {
            ifname,
            output: c_string(text),
        })
    }
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Sends the `tuntap up` datagram on `sock`, with `tap` attached when there is one.
pub fn send_tuntap_up(
    sock: BorrowedFd<'_>,
    reply: &TuntapUpReply,
    tap: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let mut buf = Vec::new();
    reply.emit(&mut buf);
    buf.truncate(DATAGRAM_MAX);
    match tap {
        Some(fd) => fdpass::send_fd(sock, &buf, fd).map(drop),
        None => nix::sys::socket::send(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            &buf,
            nix::sys::socket::MsgFlags::empty(),
        )
        .map(drop)
        .map_err(io::Error::from),
    }
}

/// Receives the `tuntap up` datagram (the kernel's side).
pub fn recv_tuntap_up(
    sock: BorrowedFd<'_>,
) -> Result<(TuntapUpReply, Option<OwnedFd>), ReplyError> {
    let mut buf = vec![0u8; DATAGRAM_MAX];
    let (n, fd) = fdpass::recv_fd(sock, &mut buf)?;
    let reply = TuntapUpReply::parse(&buf[..n], fd.is_some())?;
    Ok((reply, fd))
}

/// Appends a length-prefixed text reply: host-order i32 N, then N bytes (the text and
/// its NUL); empty text is just N = 0.
pub fn emit_text(text: &str, out: &mut Vec<u8>) {
    if text.is_empty() {
        out.extend_from_slice(&0i32.to_ne_bytes());
        return;
    }
    out.extend_from_slice(&(text.len() as i32 + 1).to_ne_bytes());
    out.extend_from_slice(text.as_bytes());
    out.push(0);
}

/// Writes a length-prefixed text reply to `w`.
pub fn write_text(w: &mut impl Write, text: &str) -> io::Result<()> {
    let mut buf = Vec::new();
    emit_text(text, &mut buf);
    w.write_all(&buf)
}

/// Parses a length-prefixed text reply at the start of `bytes`; returns the text and
/// how many bytes it took.
pub fn parse_text(bytes: &[u8]) -> Result<(String, usize), ReplyError> {
    let Some(prefix) = bytes.get(..4) else {
        return Err(ReplyError::Truncated {
            wanted: 4,
            got: bytes.len(),
        });
    };
    let n = i32::from_ne_bytes(prefix.try_into().expect("4 bytes"));
    let len = usize::try_from(n).map_err(|_| ReplyError::BadLength(n))?;
    let body = bytes.get(4..4 + len).ok_or(ReplyError::Truncated {
        wanted: 4 + len,
        got: bytes.len(),
    })?;
    Ok((c_string(body), 4 + len))
}

/// Reads one length-prefixed text reply from `r` (the kernel's side); at most `limit`
/// bytes of text are accepted.
pub fn read_text(r: &mut impl Read, limit: usize) -> Result<String, ReplyError> {
    let mut prefix = [0u8; 4];
    r.read_exact(&mut prefix)?;
    let n = i32::from_ne_bytes(prefix);
    let len = usize::try_from(n)
        .ok()
        .filter(|&l| l <= limit)
        .ok_or(ReplyError::BadLength(n))?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(c_string(&body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn every_request_round_trips_through_its_argv() {
        let reqs = [
            Request::TuntapUp {
                gate: "10.0.0.254".into(),
            },
            Request::Address {
                op: AddrOp::Add,
                dev: "tap0".into(),
                addr: "10.0.0.1".into(),
                netmask: "255.255.255.0".into(),
                legacy: false,
            },
            Request::Address {
                op: AddrOp::Del,
                dev: "tap0".into(),
                addr: "10.0.0.1".into(),
                netmask: "255.255.255.0".into(),
                legacy: true,
            },
            Request::Ethertap {
                dev: "tap0".into(),
                data_fd: "5".into(),
                gate: Some("1.2.3.4".into()),
            },
            Request::SlipUp {
                gate: "1.2.3.4".into(),
            },
            Request::SlipDown { name: "sl0".into() },
        ];
        for r in reqs {
            assert_eq!(parse_argv(&r.argv()).unwrap(), r);
        }
    }

    #[test]
    fn the_kernels_argv_is_exact() {
        let r = Request::TuntapUp {
            gate: "10.0.0.254".into(),
        };
        assert_eq!(r.argv(), ["4", "tuntap", "up", "10.0.0.254"]);
    }

    #[test]
    fn bad_argument_lists_give_the_c_tools_messages() {
        assert_eq!(parse_argv::<&str>(&[]), Err(ArgvError::TooFew));
        assert_eq!(parse_argv(&["4"]), Err(ArgvError::TooFew));
        assert_eq!(
            parse_argv(&["9", "tuntap", "up", "1.2.3.4"])
                .unwrap_err()
                .to_string(),
            "Version mismatch - requested version 9, uml_net supports up to version 4"
        );
        assert_eq!(
            parse_argv(&["4", "foo"]).unwrap_err().to_string(),
            "Unknown transport : 'foo'"
        );
        assert_eq!(
            parse_argv(&["1", "tuntap", "up"]).unwrap_err().to_string(),
            "No version #1 handler for 'tuntap'"
        );
        assert_eq!(
            parse_argv(&["4", "tuntap", "up"]),
            Err(ArgvError::Transport {
                reply: ReplyKind::Datagram,
                message: "Too few arguments to tuntap_up".into()
            })
        );
        assert!(parse_argv(&["4", "add", "tap0"]).is_err());
    }

    #[test]
    fn tuntap_datagram_matches_the_observed_layout() {
        let r = TuntapUpReply {
            ifname: Some("tap0".into()),
            output: "* ifconfig tap0\n".into(),
        };
        let mut b = Vec::new();
        r.emit(&mut b);
        assert_eq!(&b[..5], b"tap0\0");
        assert_eq!(b.len(), 16 + 16 + 1);
        assert_eq!(TuntapUpReply::parse(&b, true).unwrap(), r);
        let fail = TuntapUpReply {
            ifname: None,
            output: "Too few arguments to tuntap_up\n".into(),
        };
        let mut b = Vec::new();
        fail.emit(&mut b);
        assert!(b.starts_with(b"Too few"));
        assert_eq!(TuntapUpReply::parse(&b, false).unwrap(), fail);
        assert!(TuntapUpReply::parse(b"short", true).is_err());
    }

    #[test]
    fn tuntap_reply_carries_the_fd() {
        let (a, b) = UnixDatagram::pair().unwrap();
        let file = tempfile::tempfile().unwrap();
        let r = TuntapUpReply {
            ifname: Some("tap3".into()),
            output: "ok\n".into(),
        };
        send_tuntap_up(a.as_fd(), &r, Some(file.as_fd())).unwrap();
        let (got, fd) = recv_tuntap_up(b.as_fd()).unwrap();
        assert_eq!((got, fd.is_some()), (r, true));
        let fail = TuntapUpReply {
            ifname: None,
            output: "no\n".into(),
        };
        send_tuntap_up(a.as_fd(), &fail, None).unwrap();
        let (got, fd) = recv_tuntap_up(b.as_fd()).unwrap();
        assert_eq!((got, fd.is_none()), (fail, true));
    }

    #[test]
    fn text_reply_matches_the_observed_bytes() {
        // Observed from the C uml_net: N = 95 for these two lines plus the NUL.
        let text = "* route add -host 10.0.0.1 dev tap0\n* bash -c echo 1 > /proc/sys/net/ipv4/conf/tap0/proxy_arp\n";
        let mut b = Vec::new();
        emit_text(text, &mut b);
        assert_eq!(&b[..4], &95i32.to_ne_bytes());
        assert_eq!(*b.last().unwrap(), 0);
        assert_eq!(parse_text(&b).unwrap(), (text.to_string(), 99));
        assert_eq!(read_text(&mut Cursor::new(&b), 4096).unwrap(), text);
        let mut e = Vec::new();
        emit_text("", &mut e);
        assert_eq!(e, 0i32.to_ne_bytes());
        assert_eq!(parse_text(&e).unwrap(), (String::new(), 4));
        assert!(parse_text(&(-1i32).to_ne_bytes()).is_err());
        assert!(read_text(&mut Cursor::new(&b[..20]), 4096).is_err());
    }
}
