//! Opening the backing file a COW header names, with the rights of the COW file's owner.
//!
//! The backing path in a COW header is whatever the COW's owner wrote there. When root
//! (or anyone else) merges another user's COW file, a header naming `/root/secret` with
//! its size and mtime would make `uml_moo -d` overwrite that file and a plain merge copy
//! it into a new image. So when the COW's owner is not the caller, the backing file is
//! opened as that owner would open it: by a child process that takes the owner's uid,
//! gid and groups, opens the file (read-only, or read-write for `-d`) and passes the
//! descriptor back, so the file checked is the file used. A caller without the privilege
//! to change uid gets the check from the opened file's permission bits instead.
//! Naming the backing file with `-b` skips all this: the caller chose it.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::unistd::{Gid, Uid};

use crate::sys;

/// Who owns a COW file, with the groups they would have on login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Owner {
    /// The owner of a file whose metadata is `meta`, unless it is the caller (then the
    /// caller's own rights apply and no check is needed).
    pub fn of_other(meta: &std::fs::Metadata) -> Option<Owner> {
        let uid = meta.uid();
        if uid == Uid::effective().as_raw() {
            return None;
        }
        // A uid without a passwd entry gets the file's group and no others.
        let (gid, groups) = match uml_proto::ids::account_of(uid) {
            Some(a) => (a.gid, a.groups),
            None => (meta.gid(), vec![meta.gid()]),
        };
        Some(Owner { uid, gid, groups })
    }
}

/// Why the owner may not use the backing file.
#[derive(Debug)]
pub enum OwnerOpenError {
    /// The owner's own open failed (EACCES, ENOENT, ...).
    Denied(io::Error),
    /// The check itself could not run.
    Check(io::Error),
    /// The caller's own open failed (a caller who cannot become the owner).
    Caller(io::Error),
}

/// Opens `path` for reading (and for writing with `write`) as `owner` would.
pub fn open_as(owner: &Owner, path: &Path, write: bool) -> Result<File, OwnerOpenError> {
    if Uid::effective().is_root() {
        return open_in_child(owner, path, write);
    }
    // No privilege to become the owner: open it ourselves and check the permission bits
    // of what we opened against the owner's ids.
    let file = open(path, write).map_err(OwnerOpenError::Caller)?;
    let meta = file.metadata().map_err(OwnerOpenError::Check)?;
    if owner.uid == 0 {
        // The owner is root, who may read and write any file.
        return Ok(file);
    }
    let want = if write { 0o6 } else { 0o4 };
    let bits = if meta.uid() == owner.uid {
        meta.mode() >> 6
    } else if owner.groups.contains(&meta.gid()) || meta.gid() == owner.gid {
        meta.mode() >> 3
    } else {
        meta.mode()
    };
    if bits & want == want {
        Ok(file)
    } else {
        Err(OwnerOpenError::Denied(io::Error::from_raw_os_error(
            libc::EACCES,
        )))
    }
}

fn open(path: &Path, write: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
}

/// Forks a child that becomes `owner`, opens `path` and sends the descriptor back.
fn open_in_child(owner: &Owner, path: &Path, write: bool) -> Result<File, OwnerOpenError> {
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| OwnerOpenError::Check(io::Error::other(e)))?;
    let flags = OFlag::O_CLOEXEC
        | OFlag::O_NOCTTY
        | if write {
            OFlag::O_RDWR
        } else {
            OFlag::O_RDONLY
        };
    let (ours, theirs) = UnixStream::pair().map_err(OwnerOpenError::Check)?;
    let job = sys::OpenAs {
        uid: Uid::from_raw(owner.uid),
        gid: Gid::from_raw(owner.gid),
        groups: owner.groups.iter().map(|&g| Gid::from_raw(g)).collect(),
        path: cpath,
        flags,
    };
    let child = sys::fork_open_as(&job, theirs.as_fd()).map_err(OwnerOpenError::Check)?;
    drop(theirs);
    let mut buf = [0u8; 4];
    let got = uml_proto::fdpass::recv_fd(ours.as_fd(), &mut buf);
    let status = nix::sys::wait::waitpid(child, None);
    let (n, fd) = got.map_err(OwnerOpenError::Check)?;
    match (fd, n) {
        (Some(fd), _) => Ok(File::from(fd)),
        (None, 4) => Err(OwnerOpenError::Denied(io::Error::from_raw_os_error(
            i32::from_ne_bytes(buf),
        ))),
        _ => Err(OwnerOpenError::Check(io::Error::other(format!(
            "the check as the COW file's owner failed ({status:?})"
        )))),
    }
}
