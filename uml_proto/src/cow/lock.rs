//! Whole-file fcntl locks, as linux.uml takes them on its disk images: a write lock on a
//! file it may write, a read lock on a backing file. Tools that modify or read an image
//! take the same locks so they never race a running UML.

use std::fs::File;
use std::io;

use nix::fcntl::{fcntl, FcntlArg};

/// Who holds a conflicting lock.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds a conflicting lock.
    Held {
        pid: i32,
    },
    Io(io::Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held { pid } => write!(f, "file already locked by pid {pid}"),
            LockError::Io(e) => write!(f, "cannot lock: {e}"),
        }
    }
}

impl std::error::Error for LockError {}

fn whole_file(kind: libc::c_short) -> libc::flock {
    // SAFETY: flock is plain data; all-zero is a valid value that we then fill in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl
}

/// Takes a whole-file lock without waiting: a write lock if `write`, else a read lock.
/// The lock lasts as long as the process keeps any descriptor of the file open.
pub fn lock_whole_file(file: &File, write: bool) -> Result<(), LockError> {
    let kind = if write { libc::F_WRLCK } else { libc::F_RDLCK } as libc::c_short;
    let fl = whole_file(kind);
    let err = match fcntl(file, FcntlArg::F_SETLK(&fl)) {
        Ok(_) => return Ok(()),
        Err(e) => io::Error::from(e),
    };
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => {
            let mut probe = whole_file(kind);
            match fcntl(file, FcntlArg::F_GETLK(&mut probe)) {
                Ok(_) if probe.l_type != libc::F_UNLCK as libc::c_short => {
                    Err(LockError::Held { pid: probe.l_pid })
                }
                _ => Err(LockError::Io(err)),
            }
        }
        _ => Err(LockError::Io(err)),
    }
}
