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
use std::process::{Command, Stdio};
use std::time::Duration;

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

    /// Runs `uml_net 4 tuntap up GATE`; returns the tap and the helper's output.
    pub fn from_helper(gate: &str) -> Result<(Tap, String), NetError> {
        let (ours, theirs) = UnixDatagram::pair().map_err(NetError::Io)?;
        let req = Request::TuntapUp { gate: gate.into() };
        let mut child = Command::new("uml_net")
            .args(req.argv())
            .stdin(Stdio::null())
            .stdout(Stdio::from(OwnedFd::from(theirs)))
            .spawn()
            .map_err(NetError::HelperRun)?;
        ours.set_read_timeout(Some(HELPER_LIMIT))
            .map_err(NetError::Io)?;
        let got = helper::recv_tuntap_up(ours.as_fd());
        let _ = child.wait();
        let (reply, fd) = got.map_err(NetError::HelperReply)?;
        let fd = fd.ok_or_else(|| NetError::HelperNoDescriptor(reply.output.clone()))?;
        set_nonblocking(fd.as_raw_fd())?;
        let name = reply.ifname.unwrap_or_default();
        Ok((
            Tap {
                file: File::from(fd),
                name,
            },
            reply.output,
        ))
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

/// Runs `uml_net 4 add|del TAP ADDR MASK` and returns its output text.
pub fn change_address(op: AddrOp, tap: &str, addr: &str, mask: &str) -> Result<String, NetError> {
    let (mut ours, theirs) = UnixStream::pair().map_err(NetError::Io)?;
    let req = Request::Address {
        op,
        dev: tap.into(),
        addr: addr.into(),
        netmask: mask.into(),
        legacy: false,
    };
    let mut child = Command::new("uml_net")
        .args(req.argv())
        .stdin(Stdio::null())
        .stdout(Stdio::from(OwnedFd::from(theirs)))
        .spawn()
        .map_err(NetError::AddressHelperRun)?;
    ours.set_read_timeout(Some(HELPER_LIMIT))
        .map_err(NetError::Io)?;
    let text = helper::read_text(&mut ours, 4096).map_err(NetError::HelperText);
    let _ = child.wait();
    text
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
