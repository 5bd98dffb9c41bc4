//! The mconsole protocol: request, reply and notification datagrams (both sides, so the
//! guest kernel can serve what the host client sends) and a client round trip that
//! never hangs.
//!
//! All integers are host byte order. A request is a 12-byte header and up to 511 bytes
//! of command; a reply is a 12-byte header and a NUL-terminated piece of at most 511
//! bytes of text, with `more` set while further pieces follow; a notification is a
//! 16-byte header and a payload. See `reference/mconsole.md`.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use byteorder::{ByteOrder, NativeEndian};

/// First word of every request and notification.
pub const MAGIC: u32 = 0xCAFE_BABE;
/// The only protocol version linux.uml accepts.
pub const VERSION: u32 = 2;
/// Size of a request's data field; a command must be shorter (room for its NUL).
pub const MAX_DATA: usize = 512;
/// Longest command a request can carry.
pub const MAX_COMMAND: usize = MAX_DATA - 1;
/// Size of a request header.
pub const REQUEST_HEADER: usize = 12;
/// Size of a full request datagram (what the C client always sends).
pub const REQUEST_LEN: usize = REQUEST_HEADER + MAX_DATA;
/// Size of a reply header.
pub const REPLY_HEADER: usize = 12;
/// Most text bytes one reply packet carries (plus its NUL).
pub const MAX_REPLY_PIECE: usize = MAX_DATA - 1;
/// Largest reply datagram.
pub const MAX_REPLY_LEN: usize = REPLY_HEADER + MAX_DATA;
/// Size of a notification header.
pub const NOTIFY_HEADER: usize = 16;
/// Largest notification payload (longer ones are clamped by the kernel).
pub const MAX_NOTIFY_DATA: usize = 512;
/// Largest notification datagram.
pub const MAX_NOTIFY_LEN: usize = NOTIFY_HEADER + MAX_NOTIFY_DATA;
/// The raw, headerless answer the kernel gives a request without the magic number.
pub const VERSION0_REPLY: &[u8] =
    b"ERR Version 0 mconsole clients are not supported by this driver";

/// Why a datagram is not a valid request, reply or notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the header (and the length it announces) need.
    Short { need: usize, got: usize },
    /// The magic number is missing: a "version 0" client (requests) or garbage.
    BadMagic(u32),
    /// The command does not fit a request (len must be < 512).
    TooLarge(usize),
    /// A reply's length field is 0 or larger than a packet can be.
    BadLength(u32),
    /// A reply's datagram size disagrees with its length field.
    SizeMismatch { len: usize, got: usize },
    /// A reply's text does not end with the NUL its length field counts.
    NoNul,
    /// A notification type this protocol does not define.
    UnknownType(u32),
    /// The output buffer is too small.
    BufferTooSmall { need: usize, got: usize },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Short { need, got } => {
                write!(f, "datagram too short ({got} bytes, need {need})")
            }
            WireError::BadMagic(m) => write!(f, "bad magic number {m:#010x}"),
            WireError::TooLarge(n) => {
                write!(f, "command too long ({n} bytes; at most {MAX_COMMAND})")
            }
            WireError::BadLength(n) => write!(f, "bad reply length field {n}"),
            WireError::SizeMismatch { len, got } => write!(
                f,
                "reply length field says {len} bytes of text but the datagram holds {got}"
            ),
            WireError::NoNul => write!(f, "reply text is not NUL-terminated"),
            WireError::UnknownType(t) => write!(f, "unknown notification type {t}"),
            WireError::BufferTooSmall { need, got } => {
                write!(f, "buffer too small ({got} bytes, need {need})")
            }
        }
    }
}

impl std::error::Error for WireError {}

fn need(buf: &[u8], n: usize) -> Result<(), WireError> {
    if buf.len() < n {
        Err(WireError::Short {
            need: n,
            got: buf.len(),
        })
    } else {
        Ok(())
    }
}

fn room(buf: &[u8], n: usize) -> Result<(), WireError> {
    if buf.len() < n {
        Err(WireError::BufferTooSmall {
            need: n,
            got: buf.len(),
        })
    } else {
        Ok(())
    }
}

/// Bytes up to the first NUL (the whole slice if there is none).
fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(i) => &bytes[..i],
        None => bytes,
    }
}

/// A command sent to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Protocol version the client claims (the kernel answers an error unless 2, then
    /// still runs the command).
    pub version: u32,
    /// The command text, without NUL.
    pub command: Vec<u8>,
}

impl Request {
    /// A version-2 request; the command must be at most 511 bytes.
    pub fn new(command: &[u8]) -> Result<Request, WireError> {
        if command.len() > MAX_COMMAND {
            return Err(WireError::TooLarge(command.len()));
        }
        Ok(Request {
            version: VERSION,
            command: command.to_vec(),
        })
    }

    /// Reads a request as the kernel does: the magic first (its absence means a
    /// version 0 client), then a length below 512; the command ends at `len` or at
    /// the first NUL.
    pub fn parse(buf: &[u8]) -> Result<Request, WireError> {
        need(buf, 4)?;
        let magic = NativeEndian::read_u32(&buf[0..4]);
        if magic != MAGIC {
            return Err(WireError::BadMagic(magic));
        }
        need(buf, REQUEST_HEADER)?;
        let version = NativeEndian::read_u32(&buf[4..8]);
        let len = NativeEndian::read_u32(&buf[8..12]) as usize;
        if len >= MAX_DATA {
            return Err(WireError::TooLarge(len));
        }
        need(buf, REQUEST_HEADER + len)?;
        let command = until_nul(&buf[REQUEST_HEADER..REQUEST_HEADER + len]).to_vec();
        Ok(Request { version, command })
    }

    /// Writes the full 524-byte, zero-padded datagram (as the C client sends it);
    /// returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        if self.command.len() > MAX_COMMAND {
            return Err(WireError::TooLarge(self.command.len()));
        }
        room(buf, REQUEST_LEN)?;
        let buf = &mut buf[..REQUEST_LEN];
        buf.fill(0);
        NativeEndian::write_u32(&mut buf[0..4], MAGIC);
        NativeEndian::write_u32(&mut buf[4..8], self.version);
        NativeEndian::write_u32(&mut buf[8..12], self.command.len() as u32);
        buf[REQUEST_HEADER..REQUEST_HEADER + self.command.len()].copy_from_slice(&self.command);
        Ok(REQUEST_LEN)
    }
}

/// Texts linux.uml answers malformed or unknown requests with.
pub const ERR_TOO_LARGE: &str = "Request too large";
pub const ERR_VERSION: &str = "This driver only supports version 2 clients";
pub const ERR_UNKNOWN: &str = "Unknown command";

/// What a server (the guest kernel) does with a received datagram, as linux.uml does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Run the command.
    Command(Request),
    /// Send `reply` (the version is not 2), then still run the command.
    CommandAfter { reply: Reply, request: Request },
    /// Send these raw bytes and drop the request (a version 0 client gets a headerless
    /// text; an oversized command an error reply).
    Refused(Vec<u8>),
    /// Too short to answer: ignore.
    Ignored,
}

/// Sorts a received datagram the way linux.uml does.
pub fn receive_request(buf: &[u8]) -> Received {
    match Request::parse(buf) {
        Ok(request) if request.version == VERSION => Received::Command(request),
        Ok(request) => Received::CommandAfter {
            reply: Reply::error(ERR_VERSION),
            request,
        },
        Err(WireError::BadMagic(_)) => Received::Refused(VERSION0_REPLY.to_vec()),
        Err(WireError::TooLarge(_)) => {
            let mut out = vec![0u8; MAX_REPLY_LEN];
            let n = Reply::error(ERR_TOO_LARGE)
                .emit(&mut out)
                .expect("a short reply fits");
            out.truncate(n);
            Received::Refused(out)
        }
        Err(_) => Received::Ignored,
    }
}

/// One reply packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// 0 for success; 1 or a negative errno for an error (set on the first piece only).
    pub err: i32,
    /// Further packets follow for the same request.
    pub more: bool,
    /// This piece's text, without its NUL (at most 511 bytes).
    pub text: Vec<u8>,
}

impl Reply {
    /// A one-packet error reply (err = 1) with `text`.
    pub fn error(text: &str) -> Reply {
        Reply {
            err: 1,
            more: false,
            text: text.as_bytes().to_vec(),
        }
    }

    /// Reads a reply packet by its length field: the datagram must hold exactly
    /// 12 + len bytes, len counts the text and its terminating NUL.
    pub fn parse(buf: &[u8]) -> Result<Reply, WireError> {
        need(buf, REPLY_HEADER)?;
        let err = NativeEndian::read_i32(&buf[0..4]);
        let more = NativeEndian::read_u32(&buf[4..8]) != 0;
        let raw_len = NativeEndian::read_u32(&buf[8..12]);
        let len = raw_len as usize;
        if len == 0 || len > MAX_DATA {
            return Err(WireError::BadLength(raw_len));
        }
        let got = buf.len() - REPLY_HEADER;
        if got != len {
            return Err(WireError::SizeMismatch { len, got });
        }
        let data = &buf[REPLY_HEADER..REPLY_HEADER + len];
        if data[len - 1] != 0 {
            return Err(WireError::NoNul);
        }
        Ok(Reply {
            err,
            more,
            text: data[..len - 1].to_vec(),
        })
    }

    /// Writes the packet (12 + text + NUL bytes, as the kernel sends it); returns its
    /// length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        if self.text.len() > MAX_REPLY_PIECE {
            return Err(WireError::TooLarge(self.text.len()));
        }
        let len = self.text.len() + 1;
        room(buf, REPLY_HEADER + len)?;
        NativeEndian::write_i32(&mut buf[0..4], self.err);
        NativeEndian::write_u32(&mut buf[4..8], self.more as u32);
        NativeEndian::write_u32(&mut buf[8..12], len as u32);
        buf[REPLY_HEADER..REPLY_HEADER + self.text.len()].copy_from_slice(&self.text);
        buf[REPLY_HEADER + self.text.len()] = 0;
        Ok(REPLY_HEADER + len)
    }

    /// The packet's bytes (what `emit` writes), for a sender without a buffer of its own.
    pub fn to_vec(&self) -> Result<Vec<u8>, WireError> {
        let mut buf = vec![0u8; REPLY_HEADER + self.text.len() + 1];
        let n = self.emit(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Cuts a reply text into packets as the kernel does: pieces of at most 511
    /// bytes, `err` on the first only, `more` on all but the last, whose `more` is
    /// `more_after` (true while a streamed reply continues). An empty text is one
    /// empty packet.
    pub fn pieces(err: i32, text: &[u8], more_after: bool) -> Vec<Reply> {
        let mut out: Vec<Reply> = text
            .chunks(MAX_REPLY_PIECE)
            .map(|c| Reply {
                err: 0,
                more: true,
                text: c.to_vec(),
            })
            .collect();
        if out.is_empty() {
            out.push(Reply {
                err: 0,
                more: true,
                text: Vec::new(),
            });
        }
        out[0].err = err;
        if let Some(last) = out.last_mut() {
            last.more = more_after;
        }
        out
    }
}

/// What a notification reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyKind {
    /// The mconsole socket is ready; payload = its path + NUL. Sent at every boot.
    Socket,
    /// The kernel panicked; payload = the message + NUL.
    Panic,
    /// The guest hung (defined, never sent by linux 6.1).
    Hang,
    /// A guest process wrote to /proc/mconsole; payload = the bytes written.
    User,
}

impl NotifyKind {
    pub fn code(self) -> u32 {
        match self {
            NotifyKind::Socket => 0,
            NotifyKind::Panic => 1,
            NotifyKind::Hang => 2,
            NotifyKind::User => 3,
        }
    }

    pub fn from_code(code: u32) -> Result<NotifyKind, WireError> {
        match code {
            0 => Ok(NotifyKind::Socket),
            1 => Ok(NotifyKind::Panic),
            2 => Ok(NotifyKind::Hang),
            3 => Ok(NotifyKind::User),
            t => Err(WireError::UnknownType(t)),
        }
    }

    /// Lower-case name: `socket`, `panic`, `hang`, `user`.
    pub fn name(self) -> &'static str {
        match self {
            NotifyKind::Socket => "socket",
            NotifyKind::Panic => "panic",
            NotifyKind::Hang => "hang",
            NotifyKind::User => "user",
        }
    }
}

/// A message the kernel sends to the notify socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub kind: NotifyKind,
    /// The payload as sent (socket and panic payloads end with a NUL, user ones not).
    pub data: Vec<u8>,
}

impl Notification {
    pub fn parse(buf: &[u8]) -> Result<Notification, WireError> {
        need(buf, NOTIFY_HEADER)?;
        let magic = NativeEndian::read_u32(&buf[0..4]);
        if magic != MAGIC {
            return Err(WireError::BadMagic(magic));
        }
        let kind = NotifyKind::from_code(NativeEndian::read_u32(&buf[8..12]))?;
        let len = NativeEndian::read_u32(&buf[12..16]) as usize;
        if len > MAX_NOTIFY_DATA {
            return Err(WireError::BadLength(len as u32));
        }
        need(buf, NOTIFY_HEADER + len)?;
        Ok(Notification {
            kind,
            data: buf[NOTIFY_HEADER..NOTIFY_HEADER + len].to_vec(),
        })
    }

    /// Writes the datagram (payload clamped to 512 bytes as the kernel does); returns
    /// its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.data.len().min(MAX_NOTIFY_DATA);
        room(buf, NOTIFY_HEADER + len)?;
        NativeEndian::write_u32(&mut buf[0..4], MAGIC);
        NativeEndian::write_u32(&mut buf[4..8], VERSION);
        NativeEndian::write_u32(&mut buf[8..12], self.kind.code());
        NativeEndian::write_u32(&mut buf[12..16], len as u32);
        buf[NOTIFY_HEADER..NOTIFY_HEADER + len].copy_from_slice(&self.data[..len]);
        Ok(NOTIFY_HEADER + len)
    }

    /// The payload as text: up to its NUL, without a trailing newline.
    pub fn text(&self) -> String {
        let t = String::from_utf8_lossy(until_nul(&self.data)).into_owned();
        t.strip_suffix('\n').map(str::to_owned).unwrap_or(t)
    }
}

/// A whole answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// The first packet's error field (where the kernel sets it): 0 means OK.
    pub err: i32,
    /// All pieces' text, concatenated.
    pub text: Vec<u8>,
    /// How many packets arrived.
    pub packets: usize,
}

impl Response {
    pub fn ok(&self) -> bool {
        self.err == 0
    }
}

/// Why a round trip failed; each names the socket.
#[derive(Debug)]
pub enum ClientError {
    /// Our own socket could not be made.
    Socket(io::Error),
    /// The command does not fit a request.
    TooLong(usize),
    /// No socket file at the path.
    Missing(PathBuf),
    /// A socket file with nobody listening: the UML is gone and left it behind.
    NotListening(PathBuf),
    /// Sending failed otherwise.
    Send(PathBuf, io::Error),
    /// Receiving failed otherwise.
    Recv(PathBuf, io::Error),
    /// No (first) reply within the timeout.
    Timeout(PathBuf, Duration),
    /// A packet that is not a valid reply.
    Malformed(PathBuf, WireError),
    /// A streamed reply stopped before its last packet (the kernel drops packets when
    /// our queue is full); what arrived is kept.
    CutShort(PathBuf, Response),
    /// An answer longer than [`MAX_RESPONSE`] or still coming after the whole
    /// timeout: cut off there; what arrived is kept.
    Overlong(PathBuf, Response),
}

fn secs(d: &Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s} s")
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Socket(e) => write!(f, "cannot create a client socket: {e}"),
            ClientError::TooLong(n) => write!(
                f,
                "command too long ({n} bytes; a request holds at most {MAX_COMMAND})"
            ),
            ClientError::Missing(p) => write!(f, "{}: no such socket", p.display()),
            ClientError::NotListening(p) => write!(
                f,
                "{}: nobody is listening (stale socket: the UML is gone)",
                p.display()
            ),
            ClientError::Send(p, e) => write!(f, "{}: send failed: {e}", p.display()),
            ClientError::Recv(p, e) => write!(f, "{}: receive failed: {e}", p.display()),
            ClientError::Timeout(p, d) => {
                write!(f, "{}: no reply within {}", p.display(), secs(d))
            }
            ClientError::Malformed(p, e) => {
                write!(f, "{}: malformed reply: {e}", p.display())
            }
            ClientError::CutShort(p, r) => write!(
                f,
                "{}: reply cut short after {} packets (the kernel dropped the rest)",
                p.display(),
                r.packets
            ),
            ClientError::Overlong(p, r) => write!(
                f,
                "{}: reply cut off after {} bytes in {} packets (longer than {MAX_RESPONSE} \
                 bytes or than the whole timeout allows)",
                p.display(),
                r.text.len(),
                r.packets
            ),
        }
    }
}

impl std::error::Error for ClientError {}

/// How long a round trip may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For the first packet of a reply (and for sending).
    pub reply: Duration,
    /// Between packets of a multi-packet reply: the kernel sends all of them at once,
    /// so a longer silence means the rest was dropped.
    pub gap: Duration,
    /// For the whole answer: a kernel that keeps sending is cut off.
    pub whole: Duration,
}

impl Timeouts {
    /// `reply` for the first packet, the smaller of `reply` and 2 s between packets,
    /// and 30 s or three times `reply` (the longer) for the whole answer.
    pub fn new(reply: Duration) -> Timeouts {
        Timeouts {
            reply,
            gap: reply.min(Duration::from_secs(2)),
            whole: (reply * 3).max(Duration::from_secs(30)),
        }
    }
}

/// The most text one answer may carry (`sysrq t` of a busy guest is a few hundred
/// KiB); a longer one is cut off with [`ClientError::Overlong`].
pub const MAX_RESPONSE: usize = 4 << 20;

/// The receive buffer the client asks for: room for a burst of reply packets (the
/// kernel caps it at net.core.rmem_max). What matters more for `sysrq m` (15 packets
/// sent at once): a unix datagram socket's queue is limited to net.unix.max_dgram_qlen
/// (10) packets, and the kernel drops the rest a non-blocking sender like the UML
/// sends, except when the receiving socket is connected to the sender, as the
/// client's is. The sender's own buffer is then the only bound.
pub const RECEIVE_BUFFER: usize = 1 << 20;

/// A client bound to a kernel-chosen abstract address (unique, nothing to clean up)
/// and connected to one mconsole socket: the kernel then delivers to it only what
/// that socket sends, so nobody else can answer in the UML's name.
pub struct Client {
    sock: UnixDatagram,
    path: PathBuf,
    timeouts: Timeouts,
    /// Twice the largest reply: a longer datagram arrives cut and fails to parse.
    buf: Vec<u8>,
}

/// A datagram socket autobound by the kernel to a fresh abstract address, with a
/// large receive buffer where the kernel allows it.
fn autobound_socket() -> io::Result<UnixDatagram> {
    use nix::sys::socket::{
        bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, UnixAddr,
    };
    let fd: OwnedFd = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(fd.as_raw_fd(), &UnixAddr::new_unnamed())?;
    // Best effort: a smaller buffer still works, only less slack.
    let _ = setsockopt(&fd, sockopt::RcvBuf, &RECEIVE_BUFFER);
    Ok(UnixDatagram::from(fd))
}

fn classify_send_error(path: &Path, e: io::Error, timeout: Duration) -> ClientError {
    match e.raw_os_error() {
        Some(libc::ENOENT) => ClientError::Missing(path.to_owned()),
        Some(libc::ECONNREFUSED) => ClientError::NotListening(path.to_owned()),
        Some(libc::EAGAIN) => ClientError::Timeout(path.to_owned(), timeout),
        _ => ClientError::Send(path.to_owned(), e),
    }
}

/// Waits until `sock` has a datagram, at most `wait`; false on timeout.
fn readable(sock: &UnixDatagram, wait: Duration) -> io::Result<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let ms = wait.as_millis().clamp(1, i32::MAX as u128) as i32;
    let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
    loop {
        match poll(&mut fds, timeout) {
            Ok(n) => return Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

impl Client {
    /// A client for the mconsole socket at `path`.
    pub fn new(path: &Path, timeouts: Timeouts) -> Result<Client, ClientError> {
        let sock = autobound_socket().map_err(ClientError::Socket)?;
        sock.set_write_timeout(Some(timeouts.reply.max(Duration::from_millis(1))))
            .map_err(ClientError::Socket)?;
        Ok(Client {
            sock,
            path: path.to_owned(),
            timeouts,
            buf: vec![0u8; 2 * MAX_REPLY_LEN],
        })
    }

    /// The socket this client talks to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Connects to the UML's socket (again: a rebooted UML made a new one), then
    /// throws away whatever was queued before: an earlier, abandoned answer, or
    /// anything someone sent before the connection shut everyone else out.
    fn connect(&mut self) -> Result<(), ClientError> {
        use nix::sys::socket::{recv, MsgFlags};
        self.sock
            .connect(&self.path)
            .map_err(|e| classify_send_error(&self.path, e, self.timeouts.reply))?;
        let most = MAX_RESPONSE / MAX_REPLY_PIECE + 16;
        for _ in 0..most {
            if recv(self.sock.as_raw_fd(), &mut self.buf, MsgFlags::MSG_DONTWAIT).is_err() {
                break;
            }
        }
        Ok(())
    }

    /// Connects and sends `command` without waiting for the answer.
    pub fn send(&mut self, command: &[u8]) -> Result<(), ClientError> {
        let req = Request::new(command).map_err(|_| ClientError::TooLong(command.len()))?;
        let mut out = [0u8; REQUEST_LEN];
        let n = req.emit(&mut out).expect("a request fits its buffer");
        self.connect()?;
        self.sock
            .send(&out[..n])
            .map_err(|e| classify_send_error(&self.path, e, self.timeouts.reply))?;
        Ok(())
    }

    /// Sends `command` with `fd` attached (SCM_RIGHTS), as the C client's `umlfs`
    /// sends a /dev/fuse descriptor, without waiting for the answer.
    pub fn send_with_fd(&mut self, command: &[u8], fd: BorrowedFd<'_>) -> Result<(), ClientError> {
        let req = Request::new(command).map_err(|_| ClientError::TooLong(command.len()))?;
        let mut out = [0u8; REQUEST_LEN];
        let n = req.emit(&mut out).expect("a request fits its buffer");
        self.connect()?;
        crate::fdpass::send_fd_to(self.sock.as_fd(), &self.path, &out[..n], fd)
            .map_err(|e| classify_send_error(&self.path, e, self.timeouts.reply))?;
        Ok(())
    }

    /// Sends `command` with `fd` attached and returns the whole answer.
    pub fn request_with_fd(
        &mut self,
        command: &[u8],
        fd: BorrowedFd<'_>,
    ) -> Result<Response, ClientError> {
        self.send_with_fd(command, fd)?;
        self.receive()
    }

    /// Receives every packet of one answer: until a packet without `more`. The first
    /// packet may take the reply timeout; each further one at most the gap timeout;
    /// the whole answer at most [`MAX_RESPONSE`] bytes and the whole timeout.
    ///
    /// The kernel drops reply packets that do not fit our queue, so queued packets
    /// are taken one after another with a non-blocking receive and nothing else in
    /// between; only an empty queue costs a poll.
    pub fn receive(&mut self) -> Result<Response, ClientError> {
        use nix::errno::Errno;
        use nix::sys::socket::{recv, MsgFlags};
        let start = std::time::Instant::now();
        let mut resp = Response::default();
        loop {
            match recv(self.sock.as_raw_fd(), &mut self.buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => {
                    let packet = Reply::parse(&self.buf[..n])
                        .map_err(|e| ClientError::Malformed(self.path.clone(), e))?;
                    if resp.packets == 0 {
                        resp.err = packet.err;
                    }
                    resp.packets += 1;
                    resp.text.extend_from_slice(&packet.text);
                    if !packet.more {
                        return Ok(resp);
                    }
                    if resp.text.len() > MAX_RESPONSE {
                        return Err(ClientError::Overlong(self.path.clone(), resp));
                    }
                    continue;
                }
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                Err(e) => return Err(ClientError::Recv(self.path.clone(), e.into())),
            }
            let elapsed = start.elapsed();
            if elapsed >= self.timeouts.whole {
                return Err(ClientError::Overlong(self.path.clone(), resp));
            }
            let wait = if resp.packets == 0 {
                self.timeouts.reply
            } else {
                self.timeouts.gap
            };
            let wait = wait.min(self.timeouts.whole - elapsed);
            let ready =
                readable(&self.sock, wait).map_err(|e| ClientError::Recv(self.path.clone(), e))?;
            if !ready && start.elapsed() < self.timeouts.whole {
                return Err(if resp.packets == 0 {
                    ClientError::Timeout(self.path.clone(), self.timeouts.reply)
                } else {
                    ClientError::CutShort(self.path.clone(), resp)
                });
            }
        }
    }

    /// Sends `command` and returns the whole answer.
    pub fn request(&mut self, command: &[u8]) -> Result<Response, ClientError> {
        self.send(command)?;
        self.receive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// `version` as the C client sends it (first 20 bytes; the rest are zeros).
    const C_VERSION_REQUEST_HEAD: [u8; 19] = [
        0xbe, 0xba, 0xfe, 0xca, 2, 0, 0, 0, 7, 0, 0, 0, b'v', b'e', b'r', b's', b'i', b'o', b'n',
    ];

    #[test]
    fn request_matches_the_c_client_bytes_and_round_trips() {
        let req = Request::new(b"version").unwrap();
        let mut buf = [0xffu8; 600];
        assert_eq!(req.emit(&mut buf).unwrap(), 524);
        assert_eq!(&buf[..19], &C_VERSION_REQUEST_HEAD);
        assert!(buf[19..524].iter().all(|&b| b == 0));
        assert_eq!(Request::parse(&buf[..524]).unwrap(), req);
    }

    #[test]
    fn a_short_request_with_just_text_is_accepted() {
        let mut d = C_VERSION_REQUEST_HEAD.to_vec();
        d.push(0);
        assert_eq!(Request::parse(&d).unwrap().command, b"version");
    }

    #[test]
    fn request_errors_as_the_kernel_sees_them() {
        assert_eq!(
            Request::parse(b"version\0\0\0\0\0\0"),
            Err(WireError::BadMagic(u32::from_ne_bytes(*b"vers")))
        );
        let mut big = [0u8; 524];
        big[..12].copy_from_slice(&C_VERSION_REQUEST_HEAD[..12]);
        big[8..12].copy_from_slice(&512u32.to_ne_bytes());
        assert_eq!(Request::parse(&big), Err(WireError::TooLarge(512)));
        assert_eq!(Request::new(&[b'x'; 512]), Err(WireError::TooLarge(512)));
        assert!(Request::new(&[b'x'; 511]).is_ok());
        let mut v1 = big;
        v1[4] = 1;
        v1[8..12].copy_from_slice(&2u32.to_ne_bytes());
        v1[12..14].copy_from_slice(b"go");
        assert_eq!(Request::parse(&v1).unwrap().version, 1);
    }

    #[test]
    fn a_server_sorts_requests_like_linux_uml() {
        let mut buf = [0u8; REQUEST_LEN];
        let n = Request::new(b"version").unwrap().emit(&mut buf).unwrap();
        assert!(
            matches!(receive_request(&buf[..n]), Received::Command(r) if r.command == b"version")
        );
        buf[4] = 1;
        match receive_request(&buf[..n]) {
            Received::CommandAfter { reply, request } => {
                assert_eq!(
                    (reply.err, reply.text.as_slice()),
                    (1, ERR_VERSION.as_bytes())
                );
                assert_eq!(request.command, b"version");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            receive_request(b"version\0\0\0\0\0\0\0\0\0\0"),
            Received::Refused(VERSION0_REPLY.to_vec())
        );
        assert_eq!(VERSION0_REPLY.len(), 63);
        buf[4] = 2;
        buf[8..12].copy_from_slice(&600u32.to_ne_bytes());
        match receive_request(&buf) {
            Received::Refused(bytes) => {
                let r = Reply::parse(&bytes).unwrap();
                assert_eq!((r.err, r.text.as_slice()), (1, ERR_TOO_LARGE.as_bytes()));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(receive_request(&buf[..3]), Received::Ignored);
    }

    #[test]
    fn empty_ok_reply_is_thirteen_bytes_as_the_kernel_sends() {
        let r = Reply {
            err: 0,
            more: false,
            text: vec![],
        };
        let mut buf = [0u8; 64];
        assert_eq!(r.emit(&mut buf).unwrap(), 13);
        assert_eq!(&buf[..13], &[0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(Reply::parse(&buf[..13]).unwrap(), r);
        assert_eq!(r.to_vec().unwrap(), &buf[..13]);
        let long = Reply {
            text: vec![b'x'; 512],
            ..r
        };
        assert!(long.to_vec().is_err(), "a piece over 511 bytes");
    }

    #[test]
    fn kernel_error_reply_bytes_parse() {
        // `remove ubd5` as captured: err = -19, more = 0, "Device doesn't exist".
        let text = b"Device doesn't exist";
        let mut d = Vec::new();
        d.extend_from_slice(&(-19i32).to_ne_bytes());
        d.extend_from_slice(&0u32.to_ne_bytes());
        d.extend_from_slice(&(text.len() as u32 + 1).to_ne_bytes());
        d.extend_from_slice(text);
        d.push(0);
        assert_eq!(&d[..4], &[0xed, 0xff, 0xff, 0xff]);
        let r = Reply::parse(&d).unwrap();
        assert_eq!((r.err, r.more, r.text.as_slice()), (-19, false, &text[..]));
    }

    #[test]
    fn malformed_replies_are_errors() {
        assert!(matches!(
            Reply::parse(&[0; 11]),
            Err(WireError::Short { .. })
        ));
        let zero_len = [0u8; 12];
        assert_eq!(Reply::parse(&zero_len), Err(WireError::BadLength(0)));
        let mut cut = vec![0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0];
        cut.extend_from_slice(b"abc\0");
        assert_eq!(
            Reply::parse(&cut),
            Err(WireError::SizeMismatch { len: 10, got: 4 })
        );
        let mut nonul = vec![0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0];
        nonul.extend_from_slice(b"abc");
        assert_eq!(Reply::parse(&nonul), Err(WireError::NoNul));
        let mut big = vec![0u8; 12 + 600];
        big[8..12].copy_from_slice(&600u32.to_ne_bytes());
        assert_eq!(Reply::parse(&big), Err(WireError::BadLength(600)));
    }

    #[test]
    fn help_is_cut_like_the_kernel_cuts_it() {
        // 722 bytes -> 524-byte packet (len 512, more) then 224-byte packet (len 212).
        let text = vec![b'h'; 722];
        let p = Reply::pieces(0, &text, false);
        let mut buf = [0u8; MAX_REPLY_LEN];
        let sizes: Vec<(usize, bool)> = p
            .iter()
            .map(|r| (r.emit(&mut buf).unwrap(), r.more))
            .collect();
        assert_eq!(sizes, vec![(524, true), (224, false)]);
        let err = Reply::pieces(-16, &text, true);
        assert_eq!((err[0].err, err[1].err, err[1].more), (-16, 0, true));
        let empty = Reply::pieces(1, b"", false);
        assert_eq!(empty.len(), 1);
        assert_eq!((empty[0].err, empty[0].more), (1, false));
    }

    #[test]
    fn notifications_round_trip_and_match_captured_bytes() {
        let path = b"/root/.uml/x/mconsole\0";
        let mut d = Vec::new();
        for w in [MAGIC, 2, 0, path.len() as u32] {
            d.extend_from_slice(&w.to_ne_bytes());
        }
        d.extend_from_slice(path);
        let n = Notification::parse(&d).unwrap();
        assert_eq!(n.kind, NotifyKind::Socket);
        assert_eq!(n.text(), "/root/.uml/x/mconsole");
        let mut out = [0u8; MAX_NOTIFY_LEN];
        let len = n.emit(&mut out).unwrap();
        assert_eq!(&out[..len], d.as_slice());
        let user = Notification {
            kind: NotifyKind::User,
            data: b"hello\n".to_vec(),
        };
        let len = user.emit(&mut out).unwrap();
        assert_eq!(len, 22);
        assert_eq!(Notification::parse(&out[..len]).unwrap(), user);
        assert_eq!(user.text(), "hello");
        out[8] = 9;
        assert_eq!(
            Notification::parse(&out[..len]),
            Err(WireError::UnknownType(9))
        );
    }

    /// A fake kernel on a socket path: answers each request with `replies`.
    fn fake_kernel(
        dir: &Path,
        replies: Vec<Vec<Reply>>,
    ) -> (PathBuf, std::thread::JoinHandle<Vec<Request>>) {
        use std::os::linux::net::SocketAddrExt;
        let path = dir.join("mconsole");
        let server = UnixDatagram::bind(&path).unwrap();
        let h = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            for answer in replies {
                let (n, from) = server.recv_from(&mut buf).unwrap();
                seen.push(Request::parse(&buf[..n]).unwrap());
                let to = from.as_abstract_name().map(|a| a.to_vec());
                for r in answer {
                    let mut out = [0u8; MAX_REPLY_LEN];
                    let len = r.emit(&mut out).unwrap();
                    let addr =
                        std::os::unix::net::SocketAddr::from_abstract_name(to.as_ref().unwrap())
                            .unwrap();
                    server.send_to_addr(&out[..len], &addr).unwrap();
                }
            }
            seen
        });
        (path, h)
    }

    #[test]
    fn client_round_trip_joins_pieces_and_keeps_the_first_error() {
        let dir = tempfile::tempdir().unwrap();
        let long = vec![b'a'; 600];
        let (path, h) = fake_kernel(
            dir.path(),
            vec![
                Reply::pieces(0, &long, false),
                Reply::pieces(-19, b"Device doesn't exist", false),
            ],
        );
        let mut c = Client::new(&path, Timeouts::new(Duration::from_secs(5))).unwrap();
        let r = c.request(b"help").unwrap();
        assert_eq!((r.err, r.packets, r.text.len()), (0, 2, 600));
        let r = c.request(b"remove ubd5").unwrap();
        assert_eq!(
            (r.err, r.text.as_slice()),
            (-19, &b"Device doesn't exist"[..])
        );
        let seen = h.join().unwrap();
        assert_eq!(seen[1].command, b"remove ubd5");
    }

    #[test]
    fn a_lost_last_packet_is_reported_with_what_arrived() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = Reply::pieces(0, b"stack line\n", true);
        first.truncate(1);
        let (path, h) = fake_kernel(dir.path(), vec![first]);
        let t = Timeouts {
            reply: Duration::from_secs(5),
            gap: Duration::from_millis(200),
            whole: Duration::from_secs(30),
        };
        let mut c = Client::new(&path, t).unwrap();
        match c.request(b"stack 1") {
            Err(ClientError::CutShort(_, r)) => assert_eq!(r.text, b"stack line\n"),
            other => panic!("expected CutShort, got {other:?}"),
        }
        h.join().unwrap();
    }

    #[test]
    fn silent_missing_and_stale_sockets_fail_fast() {
        let dir = tempfile::tempdir().unwrap();
        let t = Timeouts::new(Duration::from_millis(300));
        let silent_path = dir.path().join("silent");
        let _silent = UnixDatagram::bind(&silent_path).unwrap();
        let start = Instant::now();
        assert!(matches!(
            Client::new(&silent_path, t).unwrap().request(b"version"),
            Err(ClientError::Timeout(..))
        ));
        assert!(start.elapsed() < Duration::from_secs(2));
        let missing = dir.path().join("missing");
        assert!(matches!(
            Client::new(&missing, t).unwrap().request(b"version"),
            Err(ClientError::Missing(_))
        ));
        let stale = dir.path().join("stale");
        drop(UnixDatagram::bind(&stale).unwrap());
        let e = Client::new(&stale, t)
            .unwrap()
            .request(b"version")
            .unwrap_err();
        assert!(matches!(e, ClientError::NotListening(_)), "{e}");
        assert!(e.to_string().contains("stale"));
    }

    #[test]
    fn a_request_with_a_descriptor_carries_both() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mconsole");
        let server = UnixDatagram::bind(&path).unwrap();
        let file = tempfile::tempfile().unwrap();
        let mut client = Client::new(&path, Timeouts::new(Duration::from_secs(2))).unwrap();
        client.send_with_fd(b"umlfs 7", file.as_fd()).unwrap();
        let mut buf = [0u8; REQUEST_LEN];
        let (n, fd) = crate::fdpass::recv_fd(server.as_fd(), &mut buf).unwrap();
        assert_eq!(Request::parse(&buf[..n]).unwrap().command, b"umlfs 7");
        assert!(fd.is_some());
    }
}
