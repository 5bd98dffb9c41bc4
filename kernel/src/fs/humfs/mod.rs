//! humfs: a host directory tree made by `humfsify` (`data/`, the metadata trees and
//! `superblock`, laid out as `uml_proto::humfs::layout` says) mounted with
//! `mount none DIR -t humfs -o /host/tree`. The files' contents live under data/ and
//! belong to the user running the kernel; their real modes, owners and device numbers
//! come from the metadata files, and everything the guest makes or changes is written
//! back in the same format, so `humfsify -r` on the host restores what the guest did:
//! device nodes are empty placeholder files with their kind and numbers in the
//! metadata, fifos are real fifos (as humfsify leaves them), chmod and chown touch only
//! the metadata. The superblock's `total` bounds the bytes in use (ENOSPC past it), and
//! `used` is written back on sync and unmount.
//!
//! What is charged against the size: file contents (their length), symlink targets and
//! [`DIR_BYTES`] per directory. A data file without a metadata file shows the host's
//! own mode and owner; a metadata file that does not parse makes its node fail with
//! EIO. Version 1 trees (one `metadata/` tree, no modes) mount too; their modes are
//! the data files' own, and the guest cannot change them (EOPNOTSUPP).
//!
//! `host` does all host access (by descriptor, beneath the tree's top), `meta` reads
//! and writes metadata and builds attributes, `quota` keeps the size, `ops` is the
//! `FileSystem` itself.

mod host;
mod meta;
mod ops;
mod quota;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use nix::sys::stat::{FileStat, SFlag};
use uml_proto::humfs::layout::{self, DATA, SUPERBLOCK};
use uml_proto::humfs::{Record, Superblock};

use super::errno::{Errno, FsResult};
use super::node::{FileKind, FileSystem, Ino};
use host::{kind, under, Top};

/// statfs's f_type (the hostfs magic; Linux's humfs had none of its own).
pub const HUMFS_MAGIC: u64 = 0x00c0_ffee;
/// What a directory costs against the superblock's size (what `du` counts for one,
/// as humfsify's `used` does).
pub const DIR_BYTES: u64 = 4096;
/// The block size statfs reports.
const BLOCK: u64 = 1024;
const ROOT: Ino = 1;

/// One inode the guest has seen.
struct Node {
    /// Its path under data/ (empty for the root); None once its last known name is
    /// gone (an unlinked file still open).
    rel: Option<PathBuf>,
    /// The host file's (device, inode).
    host: (u64, u64),
    /// The data file, while the guest has it open.
    file: Option<File>,
    /// The metadata last read or written (for an open file that lost its name).
    meta: Option<Record>,
}

/// A mounted humfs tree.
pub struct HumFs {
    top: Top,
    sb: Superblock,
    sb_dirty: bool,
    read_only: bool,
    nodes: HashMap<Ino, Node>,
    by_host: HashMap<(u64, u64), Ino>,
    next: Ino,
}

/// A host error as the guest sees it: a path that runs into a symlink or out of the
/// tree is damage (EIO), as is anything unexpected.
fn errno(e: io::Error) -> Errno {
    match e.raw_os_error() {
        Some(libc::ENOENT) => Errno::ENOENT,
        Some(libc::EEXIST) => Errno::EEXIST,
        Some(libc::ENOTEMPTY) => Errno::ENOTEMPTY,
        Some(libc::ENOTDIR) => Errno::ENOTDIR,
        Some(libc::EISDIR) => Errno::EISDIR,
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => Errno::ENOSPC,
        Some(libc::EACCES) => Errno::EACCES,
        Some(libc::EPERM) => Errno::EPERM,
        Some(libc::EROFS) => Errno::EROFS,
        Some(libc::ENAMETOOLONG) => Errno::ENAMETOOLONG,
        Some(libc::EMLINK) => Errno::EMLINK,
        _ => Errno::EIO,
    }
}

fn name_path(name: &[u8]) -> &Path {
    Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name))
}

fn host_kind(st: &FileStat) -> FsResult<FileKind> {
    FileKind::from_mode(kind(st).bits()).ok_or(Errno::EIO)
}

impl HumFs {
    /// Mounts the tree named by the mount's options (`-o /host/tree[,ro]`).
    pub fn mount(options: &str, read_only: bool) -> Result<Box<dyn FileSystem>, String> {
        let path = options
            .split(',')
            .find(|o| !matches!(*o, "ro" | "rw" | ""))
            .ok_or("humfs: no host directory given (-o /host/tree)")?;
        Ok(Box::new(HumFs::open(Path::new(path), read_only)?))
    }

    /// Opens the humfs tree at `path`; the message names what is wrong with it.
    pub fn open(path: &Path, read_only: bool) -> Result<HumFs, String> {
        let shown = |rel: &str| format!("humfs: {}", path.join(rel).display());
        let top = Top::open(path).map_err(|e| format!("humfs: {}: {e}", path.display()))?;
        let bytes = top
            .read_small(Path::new(SUPERBLOCK))
            .map_err(|e| format!("{}: {e}", shown(SUPERBLOCK)))?
            .ok_or_else(|| format!("{}: no superblock (not a humfs tree?)", shown(SUPERBLOCK)))?;
        let sb = Superblock::parse(&bytes).map_err(|e| format!("{}: {e}", shown(SUPERBLOCK)))?;
        for dir in std::iter::once(DATA).chain(layout::metadata_roots(sb.version).iter().copied()) {
            match top.lstat(Path::new(dir)) {
                Ok(st) if kind(&st) == SFlag::S_IFDIR => {}
                Ok(_) => return Err(format!("{}: not a directory", shown(dir))),
                Err(e) => return Err(format!("{}: {e}", shown(dir))),
            }
        }
        let root = top
            .lstat(Path::new(DATA))
            .map_err(|e| format!("{}: {e}", shown(DATA)))?;
        let mut fs = HumFs {
            top,
            sb,
            sb_dirty: false,
            read_only,
            nodes: HashMap::new(),
            by_host: HashMap::new(),
            next: ROOT + 1,
        };
        fs.nodes.insert(
            ROOT,
            Node {
                rel: Some(PathBuf::new()),
                host: (root.st_dev, root.st_ino),
                file: None,
                meta: None,
            },
        );
        fs.by_host.insert((root.st_dev, root.st_ino), ROOT);
        Ok(fs)
    }

    fn version(&self) -> u64 {
        self.sb.version
    }

    fn node(&self, ino: Ino) -> FsResult<&Node> {
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    /// The path under data/ of a node that still has a name.
    fn rel(&self, ino: Ino) -> FsResult<PathBuf> {
        self.node(ino)?.rel.clone().ok_or(Errno::ENOENT)
    }

    fn data(rel: &Path) -> PathBuf {
        under(DATA, rel)
    }

    fn lstat(&self, rel: &Path) -> FsResult<FileStat> {
        self.top.lstat(&Self::data(rel)).map_err(errno)
    }

    /// The inode for host file `st` now named `rel`.
    fn register(&mut self, st: &FileStat, rel: PathBuf) -> Ino {
        let key = (st.st_dev, st.st_ino);
        if let Some(&ino) = self.by_host.get(&key) {
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.rel = Some(rel);
                return ino;
            }
        }
        let ino = self.next;
        self.next += 1;
        self.nodes.insert(
            ino,
            Node {
                rel: Some(rel),
                host: key,
                file: None,
                meta: None,
            },
        );
        self.by_host.insert(key, ino);
        ino
    }

    fn writable(&self) -> FsResult<()> {
        if self.read_only {
            Err(Errno::EROFS)
        } else {
            Ok(())
        }
    }

    /// The data file of a regular-file node: the open one, or opened now.
    fn file(&self, ino: Ino, write: bool) -> FsResult<FileRef<'_>> {
        let node = self.node(ino)?;
        if let Some(f) = &node.file {
            return Ok(FileRef::Held(f));
        }
        let rel = node.rel.as_ref().ok_or(Errno::ENOENT)?;
        let f = self.top.open_file(&Self::data(rel), write).map_err(errno)?;
        if !host::same_file(&f, node.host) {
            return Err(Errno::ENOENT);
        }
        Ok(FileRef::Owned(f))
    }

    /// Forgets that `rel` names a node (after it was removed or replaced); a node
    /// whose last link went is dropped unless it is open.
    fn forget_name(&mut self, rel: &Path, last_link: bool) {
        let Some((&ino, _)) = self
            .nodes
            .iter()
            .find(|(_, n)| n.rel.as_deref() == Some(rel))
        else {
            return;
        };
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.rel = None;
            if last_link {
                let key = n.host;
                self.by_host.remove(&key);
                if n.file.is_none() {
                    self.nodes.remove(&ino);
                }
            }
        }
    }

    /// Renames every known path at or under `from` to be under `to`.
    fn move_names(&mut self, from: &Path, to: &Path) {
        for n in self.nodes.values_mut() {
            if let Some(rel) = &n.rel {
                if let Ok(rest) = rel.strip_prefix(from) {
                    n.rel = Some(if rest.as_os_str().is_empty() {
                        to.to_owned()
                    } else {
                        to.join(rest)
                    });
                }
            }
        }
    }

    fn child(&self, dir: Ino, name: &[u8]) -> FsResult<PathBuf> {
        Ok(self.rel(dir)?.join(name_path(name)))
    }

    fn check_name(&self, name: &[u8], is_dir: bool) -> FsResult<()> {
        if layout::representable(self.version(), name, is_dir) {
            Ok(())
        } else {
            Err(Errno::EINVAL)
        }
    }
}

/// A data file: held open by the node, or opened for one call.
enum FileRef<'a> {
    Held(&'a File),
    Owned(File),
}

impl std::ops::Deref for FileRef<'_> {
    type Target = File;
    fn deref(&self) -> &File {
        match self {
            FileRef::Held(f) => f,
            FileRef::Owned(f) => f,
        }
    }
}

#[cfg(test)]
mod tests;
