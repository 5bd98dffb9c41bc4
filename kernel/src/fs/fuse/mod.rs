//! umlfs: the guest's filesystem served to the host over FUSE. uml_mount mounts a
//! FUSE connection on the host and hands its /dev/fuse descriptor to the kernel with
//! mconsole `umlfs FD` (SCM_RIGHTS); `Umlfs::accept` takes it, answers the host's INIT
//! at once (so `umlfs` answers OK only for a live connection), and the kernel's loop
//! then calls `service` whenever the descriptor is readable. Requests are answered
//! against the same VFS the guest's shell uses (`session.rs`); nothing here blocks.
//! When the guest halts or reboots the connections are closed: the host's mount then
//! answers ENOTCONN and can be unmounted.
//!
//! Wire format: `uml_proto::fuse`.

pub mod device;
mod files;
pub mod handles;
mod names;
pub mod nodes;
pub mod perm;
pub mod session;
#[cfg(test)]
mod tests;

use std::os::fd::{OwnedFd, RawFd};

use uml_proto::fuse::{InHeader, Operation, Reply, Request};

use crate::fs::Vfs;
use device::{Device, DeviceError};
use session::{Session, REQUEST_BUFFER};

/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 8;
/// Most requests answered per wake-up, so other devices get their turn.
const BATCH: usize = 64;

/// One served connection.
#[derive(Debug)]
struct Connection {
    dev: Device,
    session: Session,
    buf: Vec<u8>,
}

/// Every served connection, by slot.
#[derive(Debug, Default)]
pub struct Umlfs {
    conns: Vec<Option<Connection>>,
}

/// The text of `umlfs`'s answer when no descriptor came with the request.
pub const NO_DESCRIPTOR: &str =
    "umlfs: no file descriptor came with the request (uml_mount sends /dev/fuse with it)";

impl Umlfs {
    /// Takes a descriptor handed over by mconsole `umlfs`: checks it, answers the
    /// host's INIT, and keeps it in a slot. Returns the slot (to register with the
    /// loop) and the OK text, or the ERR text.
    pub fn accept(
        &mut self,
        fd: Option<OwnedFd>,
        vfs: &mut Vfs,
    ) -> Result<(usize, String), String> {
        let fd = fd.ok_or_else(|| NO_DESCRIPTOR.to_string())?;
        let slot = match self.conns.iter().position(Option::is_none) {
            Some(s) => s,
            None if self.conns.len() < MAX_CONNECTIONS => {
                self.conns.push(None);
                self.conns.len() - 1
            }
            None => {
                return Err(format!(
                    "umlfs: already serving {MAX_CONNECTIONS} FUSE connections"
                ))
            }
        };
        let dev = Device::adopt(fd).map_err(|e| format!("umlfs: {e}"))?;
        let mut conn = Connection {
            dev,
            session: Session::new(vfs.root()),
            buf: vec![0u8; REQUEST_BUFFER],
        };
        let n = match conn.dev.read(&mut conn.buf) {
            Ok(Some(n)) => n,
            Ok(None) => {
                return Err(
                    "umlfs: no INIT waiting on the FUSE descriptor (is it served already?)".into(),
                )
            }
            Err(e) => return Err(format!("umlfs: {e}")),
        };
        let req = Request::parse(&conn.buf[..n]).map_err(|e| format!("umlfs: {e}"))?;
        if !matches!(req.op, Operation::Init(_)) {
            return Err("umlfs: the FUSE connection did not start with INIT".into());
        }
        let reply = conn.session.handle(vfs, &req).unwrap_or_default();
        conn.dev.write(&reply).map_err(|e| format!("umlfs: {e}"))?;
        let text = match (conn.session.minor, Reply::parse(&reply)) {
            (Some(minor), _) => format!("umlfs: serving / over FUSE 7.{minor} (connection {slot})"),
            (None, Ok(r)) if r.errno == 0 => format!("umlfs: serving / (connection {slot})"),
            (None, _) => return Err("umlfs: the host's FUSE version is not supported".into()),
        };
        self.conns[slot] = Some(conn);
        Ok((slot, text))
    }

    /// The descriptor of the connection in `slot`, for the event loop.
    pub fn fd(&self, slot: usize) -> Option<RawFd> {
        Some(self.conns.get(slot)?.as_ref()?.dev.raw())
    }

    /// Answers what is waiting on `slot` (a bounded batch). Returns why the
    /// connection ended when it did; the slot is then free and its files closed.
    pub fn service(&mut self, slot: usize, vfs: &mut Vfs) -> Option<String> {
        let conn = self.conns.get_mut(slot)?.as_mut()?;
        let ended = Self::serve_batch(conn, vfs)?;
        conn.session.close(vfs);
        self.conns[slot] = None;
        Some(ended)
    }

    fn serve_batch(conn: &mut Connection, vfs: &mut Vfs) -> Option<String> {
        for _ in 0..BATCH {
            let n = match conn.dev.read(&mut conn.buf) {
                Ok(Some(n)) => n,
                Ok(None) => return None,
                Err(e) => return Some(e.to_string()),
            };
            let reply = match Request::parse(&conn.buf[..n]) {
                Ok(req) => conn.session.handle(vfs, &req),
                // Unreadable: the request still gets its answer if it can be named.
                Err(_) => InHeader::from_bytes(&conn.buf[..n])
                    .ok()
                    .map(|h| Reply::error(h.unique, libc::EIO)),
            };
            if let Some(r) = reply {
                match conn.dev.write(&r) {
                    Ok(()) => {}
                    Err(DeviceError::Ended) => return Some(DeviceError::Ended.to_string()),
                    Err(e) => return Some(e.to_string()),
                }
            }
            if conn.session.destroyed {
                return Some("the host unmounted it".into());
            }
        }
        None
    }

    /// Closes every connection (halt, reboot): their open files are closed in the
    /// guest, and the host's mounts answer ENOTCONN from now on. Returns the slots
    /// that were open.
    pub fn close_all(&mut self, vfs: &mut Vfs) -> Vec<usize> {
        let mut closed = Vec::new();
        for (slot, c) in self.conns.iter_mut().enumerate() {
            if let Some(mut conn) = c.take() {
                conn.session.close(vfs);
                closed.push(slot);
            }
        }
        closed
    }

    /// How many connections are served.
    pub fn count(&self) -> usize {
        self.conns.iter().flatten().count()
    }
}
