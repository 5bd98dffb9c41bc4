//! The tuntap transport: a host tap device, either preconfigured (`tuntap,DEV`, opened
//! on /dev/net/tun by name) or made on device open by the `uml_net` helper
//! (`tuntap,,MAC,GATE`): the kernel runs `uml_net 4 tuntap up GATE`, receives the tap's
//! fd over SCM_RIGHTS, and runs `uml_net 4 add|del TAP ADDR MASK` as the guest's
//! address comes and goes, as linux.uml does.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use uml_proto::helper::{self, AddrOp, Request};

use super::error::NetError;
use uml_proto::tap::{self, Kind};

/// The clone device.
const CLONE: &str = "/dev/net/tun";
/// How long the helper may take to answer.
const HELPER_LIMIT: Duration = Duration::from_secs(10);

pub struct Tap {
    pub file: File,
    pub name: String,
}

impl Tap {
    /// Attaches to the preconfigured interface `name`.
    pub fn open(name: &str) -> Result<Tap, NetError> {
        let dev =
            tap::attach(Path::new(CLONE), name, Kind::Tap).map_err(|source| NetError::Tap {
                name: name.to_owned(),
                source,
            })?;
        set_nonblocking(dev.file.as_raw_fd())?;
        Ok(Tap {
            file: dev.file,
            name: dev.name,
        })
    }

    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match (&self.file).read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        (&self.file).write(frame).map(drop)
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// The longest text reply accepted from uml_net.
const TEXT_LIMIT: usize = 4096;

/// What a finished uml_net call gave.
pub enum HelperDone {
    /// `tuntap up`: the new tap and the helper's output.
    Tap(Tap, String),
    /// `add`/`del`: the helper's output.
    Text(String),
}

/// The kernel's end of a uml_net call.
enum HelperSock {
    /// `tuntap up` answers with one datagram (and the tap's fd).
    Datagram(UnixDatagram),
    /// `add`/`del` answer with a length-prefixed text, then EOF.
    Stream(UnixStream, Vec<u8>),
}

/// A uml_net call in progress. Nothing waits: the event loop watches `fd()` and
/// calls `poll()`; only `wait()` (used at shutdown) blocks, bounded by the deadline.
pub struct HelperCall {
    child: Child,
    sock: HelperSock,
    deadline: Instant,
}

impl HelperCall {
    /// Starts `uml_net 4 tuntap up GATE`.
    pub fn tuntap_up(gate: &str) -> Result<HelperCall, NetError> {
        let (ours, theirs) = UnixDatagram::pair().map_err(NetError::Io)?;
        ours.set_nonblocking(true).map_err(NetError::Io)?;
        let req = Request::TuntapUp { gate: gate.into() };
        let child = spawn(&req, OwnedFd::from(theirs)).map_err(NetError::HelperRun)?;
        Ok(HelperCall {
            child,
            sock: HelperSock::Datagram(ours),
            deadline: Instant::now() + HELPER_LIMIT,
        })
    }

    /// Starts `uml_net 4 add|del TAP ADDR MASK`.
    pub fn address(op: AddrOp, tap: &str, addr: &str, mask: &str) -> Result<HelperCall, NetError> {
        let (ours, theirs) = UnixStream::pair().map_err(NetError::Io)?;
        ours.set_nonblocking(true).map_err(NetError::Io)?;
        let req = Request::Address {
            op,
            dev: tap.into(),
            addr: addr.into(),
            netmask: mask.into(),
            legacy: false,
        };
        let child = spawn(&req, OwnedFd::from(theirs)).map_err(NetError::AddressHelperRun)?;
        Ok(HelperCall {
            child,
            sock: HelperSock::Stream(ours, Vec::new()),
            deadline: Instant::now() + HELPER_LIMIT,
        })
    }

    /// The descriptor the answer arrives on.
    pub fn fd(&self) -> RawFd {
        match &self.sock {
            HelperSock::Datagram(s) => s.as_raw_fd(),
            HelperSock::Stream(s, _) => s.as_raw_fd(),
        }
    }

    /// When the call is given up.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Takes what has arrived; Some when the call is over.
    pub fn poll(&mut self) -> Option<Result<HelperDone, NetError>> {
        let timed_out = Instant::now() >= self.deadline;
        let result = match &mut self.sock {
            HelperSock::Datagram(sock) => match helper::recv_tuntap_up(sock.as_fd()) {
                Err(helper::ReplyError::Io(e))
                    if e.kind() == io::ErrorKind::WouldBlock && !timed_out =>
                {
                    return None
                }
                Err(e) => Err(NetError::HelperReply(e)),
                Ok((reply, None)) => Err(NetError::HelperNoDescriptor(reply.output)),
                Ok((reply, Some(fd))) => set_nonblocking(fd.as_raw_fd()).map(|()| {
                    let tap = Tap {
                        file: File::from(fd),
                        name: reply.ifname.unwrap_or_default(),
                    };
                    HelperDone::Tap(tap, reply.output)
                }),
            },
            HelperSock::Stream(sock, buf) => {
                let mut chunk = [0u8; 1024];
                let eof = loop {
                    match sock.read(&mut chunk) {
                        Ok(0) => break true,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Some(self.finish(Err(NetError::HelperText(e.into())))),
                    }
                };
                match parse_text(buf) {
                    Ok(text) => Ok(HelperDone::Text(text)),
                    Err(helper::ReplyError::Truncated { .. }) if !eof && !timed_out => return None,
                    Err(helper::ReplyError::Truncated { .. }) if !eof => Err(NetError::HelperText(
                        io::Error::from(io::ErrorKind::TimedOut).into(),
                    )),
                    Err(e) => Err(NetError::HelperText(e)),
                }
            }
        };
        Some(self.finish(result))
    }

    /// Reaps the helper (it exits once it has answered; one that hangs is killed).
    fn finish(&mut self, result: Result<HelperDone, NetError>) -> Result<HelperDone, NetError> {
        self.reap();
        result
    }

    fn reap(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Waits for the answer (at most until the deadline).
    pub fn wait(mut self) -> Result<HelperDone, NetError> {
        loop {
            if let Some(r) = self.poll() {
                return r;
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
            let ready = match &self.sock {
                HelperSock::Datagram(s) => s.as_fd(),
                HelperSock::Stream(s, _) => s.as_fd(),
            };
            let _ = poll(&mut [PollFd::new(ready, PollFlags::POLLIN)], timeout);
        }
    }
}

impl Drop for HelperCall {
    /// A call given up (its job cancelled) leaves no helper running and no zombie.
    fn drop(&mut self) {
        self.reap();
    }
}

fn spawn(req: &Request, stdout: OwnedFd) -> io::Result<Child> {
    Command::new("uml_net")
        .args(req.argv())
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .spawn()
}

/// A whole length-prefixed text reply in `buf`, at most `TEXT_LIMIT` bytes.
fn parse_text(buf: &[u8]) -> Result<String, helper::ReplyError> {
    if let Some(prefix) = buf.get(..4) {
        let n = i32::from_ne_bytes(prefix.try_into().unwrap_or_default());
        if usize::try_from(n).map_or(true, |l| l > TEXT_LIMIT) {
            return Err(helper::ReplyError::BadLength(n));
        }
    }
    helper::parse_text(buf).map(|(text, _)| text)
}

fn set_nonblocking(fd: RawFd) -> Result<(), NetError> {
    // SAFETY: fcntl on an fd we own, with integer arguments only.
    let rc = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(
            fd,
            libc::F_SETFL,
            flags | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if rc < 0 {
        return Err(NetError::Io(io::Error::last_os_error()));
    }
    // SAFETY: as above.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok(())
}
