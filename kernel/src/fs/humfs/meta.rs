//! humfs metadata: reading and writing a node's metadata file (in the tree's version
//! of the line format, `uml_proto::humfs::Record`) and what the guest sees of a node:
//! the host file's type, size, links and times with the metadata's mode, owner and
//! device kind and numbers.

use std::path::Path;

use nix::sys::stat::{major, minor, FileStat, SFlag};
use uml_proto::humfs::layout;
use uml_proto::humfs::{NodeKind, Record};

use super::host::{kind, under};
use super::{errno, host_kind, HumFs};
use crate::fs::errno::{Errno, FsResult};
use crate::fs::node::{Attr, FileKind, Ino};

impl HumFs {
    /// The metadata of data/`rel`: None when it has no metadata file; EIO when the
    /// file is damaged or unreachable.
    pub(super) fn read_meta(&self, rel: &Path, is_dir: bool) -> FsResult<Option<Record>> {
        let path = layout::metadata_path(self.version(), rel, is_dir);
        match self.top.read_small(&path) {
            Ok(None) => Ok(None),
            Ok(Some(bytes)) => Record::parse(self.version(), &bytes)
                .map(Some)
                .map_err(|_| Errno::EIO),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(_) => Err(Errno::EIO),
        }
    }

    pub(super) fn write_meta(&self, rel: &Path, is_dir: bool, record: &Record) -> FsResult<()> {
        let mut line = Vec::with_capacity(48);
        record.emit(self.version(), &mut line);
        let path = layout::metadata_path(self.version(), rel, is_dir);
        let mut written = self.top.write_small(&path, &line);
        if written
            .as_ref()
            .is_err_and(|e| e.raw_os_error() == Some(libc::ENOENT))
        {
            // A directory made on the host after humfsify has no metadata directory
            // yet: make the missing ones (beneath the tree, as everything) and retry.
            if let Some(parent) = path.parent() {
                self.make_dirs(parent);
            }
            written = self.top.write_small(&path, &line);
        }
        written.map_err(|e| match errno(e) {
            Errno::ENOSPC => Errno::ENOSPC,
            _ => Errno::EIO,
        })
    }

    /// Makes each missing directory of `path` (relative to the top); failures show
    /// when the caller uses it.
    pub(super) fn make_dirs(&self, path: &Path) {
        let mut at = std::path::PathBuf::new();
        for c in path.components() {
            at.push(c);
            let _ = self.top.mkdir(&at);
        }
    }

    /// What the guest sees: the host file's type, size, links and times with the
    /// metadata's mode, owner and device kind and numbers.
    pub(super) fn attr_of(&self, ino: Ino, st: &FileStat, meta: Option<Record>) -> FsResult<Attr> {
        let host = host_kind(st)?;
        let (mut kind, mut rdev) = (host, (major(st.st_rdev) as u32, minor(st.st_rdev) as u32));
        if let Some(m) = meta {
            let special = match m.kind {
                NodeKind::Plain => None,
                NodeKind::Char { major, minor } => Some((FileKind::Char, (major, minor))),
                NodeKind::Block { major, minor } => Some((FileKind::Block, (major, minor))),
                NodeKind::Socket => Some((FileKind::Socket, (0, 0))),
            };
            if let Some((k, r)) = special {
                // A placeholder is a regular file (or the node itself, humfsified
                // from a tree root made).
                if !matches!(host, FileKind::File | FileKind::Char | FileKind::Block) {
                    return Err(Errno::EIO);
                }
                (kind, rdev) = (k, r);
            }
        }
        if !matches!(kind, FileKind::Char | FileKind::Block) {
            rdev = (0, 0);
        }
        let size = if kind == FileKind::File || kind == FileKind::Dir || kind == FileKind::Symlink {
            st.st_size as u64
        } else {
            0
        };
        Ok(Attr {
            ino,
            kind,
            perm: meta.and_then(|m| m.mode).unwrap_or(st.st_mode & 0o7777),
            nlink: st.st_nlink as u32,
            uid: meta.map_or(st.st_uid, |m| m.uid),
            gid: meta.map_or(st.st_gid, |m| m.gid),
            size,
            blocks: st.st_blocks as u64,
            atime: st.st_atime,
            mtime: st.st_mtime,
            ctime: st.st_ctime,
            rdev,
            blksize: 4096,
        })
    }

    /// The host stat and metadata of a node (by name, or by its open file once the
    /// name is gone).
    pub(super) fn state(&mut self, ino: Ino) -> FsResult<(FileStat, Option<Record>)> {
        let node = self.node(ino)?;
        match node.rel.clone() {
            Some(rel) => {
                let st = self.lstat(&rel)?;
                if (st.st_dev, st.st_ino) != node.host {
                    // Replaced from the host behind the guest's back.
                    return Err(Errno::ENOENT);
                }
                let meta = self.read_meta(&rel, kind(&st) == SFlag::S_IFDIR)?;
                if let Some(n) = self.nodes.get_mut(&ino) {
                    n.meta = meta;
                }
                Ok((st, meta))
            }
            None => {
                let file = node.file.as_ref().ok_or(Errno::ENOENT)?;
                let st = nix::sys::stat::fstat(file).map_err(|_| Errno::EIO)?;
                Ok((st, node.meta))
            }
        }
    }

    /// Makes the metadata directories of a new directory and its metadata file.
    pub(super) fn make_dir_meta(&self, rel: &Path, record: &Record) -> FsResult<()> {
        for root in layout::metadata_roots(self.version()) {
            match self.top.mkdir(&under(root, rel)) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(_) => return Err(Errno::EIO),
            }
        }
        self.write_meta(rel, true, record)
    }

    /// Removes a directory's metadata (its file, then its directories); what is not
    /// there is fine.
    pub(super) fn remove_dir_meta(&self, rel: &Path) {
        let _ = self
            .top
            .unlink(&layout::metadata_path(self.version(), rel, true));
        for root in layout::metadata_roots(self.version()) {
            let _ = self.top.rmdir(&under(root, rel));
        }
    }

    pub(super) fn remove_file_meta(&self, rel: &Path) -> FsResult<()> {
        match self
            .top
            .unlink(&layout::metadata_path(self.version(), rel, false))
        {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(Errno::EIO),
            _ => Ok(()),
        }
    }
}

/// How the metadata records a node of `kind` (devices with their numbers; files,
/// directories, symlinks and fifos are what data/ holds).
pub(super) fn node_kind(kind: FileKind, rdev: (u32, u32)) -> NodeKind {
    let (major, minor) = rdev;
    match kind {
        FileKind::Char => NodeKind::Char { major, minor },
        FileKind::Block => NodeKind::Block { major, minor },
        FileKind::Socket => NodeKind::Socket,
        _ => NodeKind::Plain,
    }
}
