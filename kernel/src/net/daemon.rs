//! The daemon transport: a port on uml_switch or vde_switch, attached as linux.uml
//! attaches (v3 request, abstract data socket named by pid and microseconds). The data
//! socket is connected to the switch's data address, so frames from any other local
//! sender are refused by the host kernel and never reach the guest.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uml_proto::switch::{attach, connect_dgram, recv_from, send_to, Client, DataAddr, Request};

/// How long the switch may take to answer the request.
const REPLY_LIMIT: Duration = Duration::from_secs(5);

pub struct Daemon {
    client: Client,
}

impl Daemon {
    /// Connects to the switch at `ctl`; `salt` keeps the data-socket names of one
    /// kernel's devices apart.
    pub fn open(ctl: &Path, salt: u32) -> io::Result<Daemon> {
        let usec = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_micros())
            .unwrap_or(0);
        let local = DataAddr::abstract_name(std::process::id(), usec.wrapping_add(salt));
        let client = attach(ctl, local, |addr| Request::V3 { addr }, None, REPLY_LIMIT)?;
        client.control.set_nonblocking(true)?;
        connect_dgram(client.data.as_fd(), &client.switch)?;
        Ok(Daemon { client })
    }

    pub fn data_fd(&self) -> RawFd {
        self.client.data.as_raw_fd()
    }

    /// The next frame, or None when nothing is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match recv_from(self.client.data.as_fd(), buf) {
            Ok((n, _)) => Ok(Some(n.min(buf.len()))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        send_to(self.client.data.as_fd(), frame, &self.client.switch).map(|_| ())
    }
}
