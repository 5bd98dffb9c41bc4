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
    pub fn open(name: &str) -> Result<Tap, String> {
        let dev = tap::attach(Path::new(CLONE), name, Kind::Tap).map_err(|e| e.to_string())?;
        set_nonblocking(dev.file.as_raw_fd())?;
        Ok(Tap {
            file: dev.file,
            name: dev.name,
        })
    }

    /// Runs `uml_net 4 tuntap up GATE`; returns the tap and the helper's output.
    pub fn from_helper(gate: &str) -> Result<(Tap, String), String> {
        let (ours, theirs) = UnixDatagram::pair().map_err(|e| e.to_string())?;
        let req = Request::TuntapUp { gate: gate.into() };
        let mut child = Command::new("uml_net")
            .args(req.argv())
            .stdin(Stdio::null())
            .stdout(Stdio::from(OwnedFd::from(theirs)))
            .spawn()
            .map_err(|e| format!("tuntap_open : failed to run uml_net: {e}"))?;
        ours.set_read_timeout(Some(HELPER_LIMIT))
            .map_err(|e| e.to_string())?;
        let got = helper::recv_tuntap_up(ours.as_fd());
        let _ = child.wait();
        let (reply, fd) =
            got.map_err(|e| format!("tuntap_open_tramp : didn't receive a message: {e}"))?;
        let fd = fd.ok_or_else(|| {
            format!(
                "tuntap_open_tramp : didn't receive a descriptor\n{}",
                reply.output
            )
        })?;
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
pub fn change_address(op: AddrOp, tap: &str, addr: &str, mask: &str) -> Result<String, String> {
    let (mut ours, theirs) = UnixStream::pair().map_err(|e| e.to_string())?;
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
        .map_err(|e| format!("failed to run uml_net: {e}"))?;
    ours.set_read_timeout(Some(HELPER_LIMIT))
        .map_err(|e| e.to_string())?;
    let text = helper::read_text(&mut ours, 4096).map_err(|e| format!("uml_net: {e}"));
    let _ = child.wait();
    text
}

fn set_nonblocking(fd: RawFd) -> Result<(), String> {
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
        return Err(io::Error::last_os_error().to_string());
    }
    // SAFETY: as above.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok(())
}
