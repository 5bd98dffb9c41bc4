//! humfs's size limit: the superblock's `used` and `total`. File contents (their
//! length), symlink targets and [`DIR_BYTES`] per directory are charged; what does not
//! fit fails with ENOSPC; `used` is written back to the superblock on sync and unmount.

use std::path::Path;

use nix::sys::stat::{FileStat, SFlag};
use uml_proto::humfs::layout::SUPERBLOCK;

use super::host::kind;
use super::{HumFs, DIR_BYTES};
use crate::fs::errno::{Errno, FsResult};

impl HumFs {
    /// Takes `bytes` more of the size; ENOSPC when they do not fit (or when nothing
    /// is left at all, for a node that costs nothing).
    pub(super) fn charge(&mut self, bytes: u64) -> FsResult<()> {
        let free = self.sb.total.saturating_sub(self.sb.used);
        if bytes > free || free == 0 {
            return Err(Errno::ENOSPC);
        }
        self.sb.used += bytes;
        self.sb_dirty = true;
        Ok(())
    }

    pub(super) fn refund(&mut self, bytes: u64) {
        self.sb.used = self.sb.used.saturating_sub(bytes);
        self.sb_dirty = true;
    }

    /// What a node's data costs: a file's length, a symlink's target, a directory.
    pub(super) fn cost(st: &FileStat) -> u64 {
        match kind(st) {
            SFlag::S_IFREG | SFlag::S_IFLNK => st.st_size as u64,
            SFlag::S_IFDIR => DIR_BYTES,
            _ => 0,
        }
    }

    pub(super) fn write_superblock(&mut self) -> FsResult<()> {
        if !self.sb_dirty || self.read_only {
            return Ok(());
        }
        let mut bytes = Vec::new();
        self.sb.emit(&mut bytes);
        // Replaced atomically where the tree's top is writable (humfsify run as root
        // leaves it root's, with the superblock the user's): else rewritten in place.
        let path = Path::new(SUPERBLOCK);
        match self.top.replace_small(path, &bytes) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) => {
                self.top.write_small(path, &bytes)
            }
            other => other,
        }
        .map_err(|_| Errno::EIO)?;
        self.sb_dirty = false;
        Ok(())
    }
}
