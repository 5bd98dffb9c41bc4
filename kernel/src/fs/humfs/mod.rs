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
//! EIO. All host access goes through `host` (by descriptor, beneath the tree's top).

mod host;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::{major, minor, FileStat, SFlag};
use uml_proto::humfs::layout::{self, DATA, SUPERBLOCK};
use uml_proto::humfs::{NodeKind, Record, Superblock};

use super::errno::{Errno, FsResult};
use super::node::{Attr, DirEntry, FileKind, FileSystem, Ino, NewNode, SetAttr, StatFs};
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
    pub fn mount(options: Option<&str>, read_only: bool) -> Result<Box<dyn FileSystem>, String> {
        let path = options
            .into_iter()
            .flat_map(|o| o.split(','))
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

    /// The metadata of data/`rel`: None when it has no metadata file; EIO when the
    /// file is damaged or unreachable.
    fn read_meta(&self, rel: &Path, is_dir: bool) -> FsResult<Option<Record>> {
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

    fn write_meta(&self, rel: &Path, is_dir: bool, record: &Record) -> FsResult<()> {
        let mut line = Vec::with_capacity(48);
        record.emit(self.version(), &mut line);
        let path = layout::metadata_path(self.version(), rel, is_dir);
        self.top
            .write_small(&path, &line)
            .map_err(|e| match errno(e) {
                Errno::ENOSPC => Errno::ENOSPC,
                _ => Errno::EIO,
            })
    }

    /// What the guest sees: the host file's type, size, links and times with the
    /// metadata's mode, owner and device kind and numbers.
    fn attr_of(&self, ino: Ino, st: &FileStat, meta: Option<Record>) -> FsResult<Attr> {
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
    fn state(&mut self, ino: Ino) -> FsResult<(FileStat, Option<Record>)> {
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

    fn writable(&self) -> FsResult<()> {
        if self.read_only {
            Err(Errno::EROFS)
        } else {
            Ok(())
        }
    }

    /// Takes `bytes` more of the size; ENOSPC when they do not fit (or when nothing
    /// is left at all, for a node that costs nothing).
    fn charge(&mut self, bytes: u64) -> FsResult<()> {
        let free = self.sb.total.saturating_sub(self.sb.used);
        if bytes > free || free == 0 {
            return Err(Errno::ENOSPC);
        }
        self.sb.used += bytes;
        self.sb_dirty = true;
        Ok(())
    }

    fn refund(&mut self, bytes: u64) {
        self.sb.used = self.sb.used.saturating_sub(bytes);
        self.sb_dirty = true;
    }

    /// What a node's data costs: a file's length, a symlink's target, a directory.
    fn cost(st: &FileStat) -> u64 {
        match kind(st) {
            SFlag::S_IFREG | SFlag::S_IFLNK => st.st_size as u64,
            SFlag::S_IFDIR => DIR_BYTES,
            _ => 0,
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

    /// Makes the metadata directories of a new directory and its metadata file.
    fn make_dir_meta(&self, rel: &Path, record: &Record) -> FsResult<()> {
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
    fn remove_dir_meta(&self, rel: &Path) {
        let _ = self
            .top
            .unlink(&layout::metadata_path(self.version(), rel, true));
        for root in layout::metadata_roots(self.version()) {
            let _ = self.top.rmdir(&under(root, rel));
        }
    }

    fn remove_file_meta(&self, rel: &Path) -> FsResult<()> {
        match self
            .top
            .unlink(&layout::metadata_path(self.version(), rel, false))
        {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(Errno::EIO),
            _ => Ok(()),
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

    fn write_superblock(&mut self) -> FsResult<()> {
        if !self.sb_dirty || self.read_only {
            return Ok(());
        }
        let mut bytes = Vec::new();
        self.sb.emit(&mut bytes);
        self.top
            .write_small(Path::new(SUPERBLOCK), &bytes)
            .map_err(|_| Errno::EIO)?;
        self.sb_dirty = false;
        Ok(())
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

impl FileSystem for HumFs {
    fn fs_type(&self) -> &'static str {
        "humfs"
    }

    fn root(&self) -> Ino {
        ROOT
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn getattr(&mut self, ino: Ino) -> FsResult<Attr> {
        let (st, meta) = self.state(ino)?;
        self.attr_of(ino, &st, meta)
    }

    fn setattr(&mut self, ino: Ino, set: &SetAttr) -> FsResult<Attr> {
        self.writable()?;
        let (st, meta) = self.state(ino)?;
        let rel = self.node(ino)?.rel.clone();
        if let Some(size) = set.size {
            let old = st.st_size as u64;
            if size > old {
                self.charge(size - old)?;
            }
            let file = self.file(ino, true)?;
            let r = file.set_len(size).map_err(errno);
            drop(file);
            if let Err(e) = r {
                if size > old {
                    self.refund(size - old);
                }
                return Err(e);
            }
            if size < old {
                self.refund(old - size);
            }
        }
        if set.perm.is_some() || set.uid.is_some() || set.gid.is_some() {
            let before = self.attr_of(ino, &st, meta)?;
            let kind = match before.kind {
                FileKind::Char => NodeKind::Char {
                    major: before.rdev.0,
                    minor: before.rdev.1,
                },
                FileKind::Block => NodeKind::Block {
                    major: before.rdev.0,
                    minor: before.rdev.1,
                },
                FileKind::Socket => NodeKind::Socket,
                _ => NodeKind::Plain,
            };
            let record = Record {
                mode: Some(set.perm.unwrap_or(before.perm)),
                uid: set.uid.unwrap_or(before.uid),
                gid: set.gid.unwrap_or(before.gid),
                kind,
            };
            let rel = rel.as_ref().ok_or(Errno::ENOENT)?;
            if self.version() == 1 && set.perm.is_some_and(|p| p != before.perm) {
                // Version 1 records no mode: it is the data file's own.
                return Err(Errno::EOPNOTSUPP);
            }
            self.write_meta(rel, before.kind == FileKind::Dir, &record)?;
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.meta = Some(record);
            }
        }
        if set.atime.is_some() || set.mtime.is_some() {
            if let Some(rel) = &rel {
                self.top
                    .set_times(&Self::data(rel), set.atime, set.mtime)
                    .map_err(errno)?;
            }
        }
        self.getattr(ino)
    }

    fn lookup(&mut self, dir: Ino, name: &[u8]) -> FsResult<Ino> {
        let dir_rel = self.rel(dir)?;
        let rel = if name == b".." {
            dir_rel.parent().map(Path::to_owned).unwrap_or_default()
        } else if name == b"." {
            dir_rel
        } else {
            dir_rel.join(name_path(name))
        };
        if rel.as_os_str().is_empty() {
            return Ok(ROOT);
        }
        let st = self.lstat(&rel)?;
        Ok(self.register(&st, rel))
    }

    fn mknod(&mut self, dir: Ino, name: &[u8], node: &NewNode) -> FsResult<Ino> {
        self.writable()?;
        let is_dir = node.kind == FileKind::Dir;
        self.check_name(name, is_dir)?;
        let rel = self.child(dir, name)?;
        let data = Self::data(&rel);
        let cost = if is_dir { DIR_BYTES } else { 0 };
        self.charge(cost)?;
        let made = match node.kind {
            FileKind::Dir => self.top.mkdir(&data),
            FileKind::Fifo => self.top.mkfifo(&data),
            _ => self.top.create_file(&data).map(drop),
        };
        if let Err(e) = made {
            self.refund(cost);
            return Err(errno(e));
        }
        let kind = match node.kind {
            FileKind::Char => NodeKind::Char {
                major: node.rdev.0,
                minor: node.rdev.1,
            },
            FileKind::Block => NodeKind::Block {
                major: node.rdev.0,
                minor: node.rdev.1,
            },
            FileKind::Socket => NodeKind::Socket,
            _ => NodeKind::Plain,
        };
        let record = Record {
            mode: Some(node.perm & 0o7777),
            uid: node.uid,
            gid: node.gid,
            kind,
        };
        let recorded = if is_dir {
            self.make_dir_meta(&rel, &record)
        } else {
            self.write_meta(&rel, false, &record)
        };
        if let Err(e) = recorded {
            if is_dir {
                self.remove_dir_meta(&rel);
                let _ = self.top.rmdir(&data);
            } else {
                let _ = self.top.unlink(&data);
            }
            self.refund(cost);
            return Err(e);
        }
        let st = self.lstat(&rel)?;
        let ino = self.register(&st, rel);
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.meta = Some(record);
        }
        Ok(ino)
    }

    fn symlink(
        &mut self,
        dir: Ino,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> FsResult<Ino> {
        self.writable()?;
        self.check_name(name, false)?;
        let rel = self.child(dir, name)?;
        let cost = target.len() as u64;
        self.charge(cost)?;
        if let Err(e) = self.top.symlink(target, &Self::data(&rel)) {
            self.refund(cost);
            return Err(errno(e));
        }
        let record = Record {
            mode: Some(0o777),
            uid,
            gid,
            kind: NodeKind::Plain,
        };
        if let Err(e) = self.write_meta(&rel, false, &record) {
            let _ = self.top.unlink(&Self::data(&rel));
            self.refund(cost);
            return Err(e);
        }
        let st = self.lstat(&rel)?;
        Ok(self.register(&st, rel))
    }

    fn link(&mut self, ino: Ino, dir: Ino, name: &[u8]) -> FsResult<()> {
        self.writable()?;
        self.check_name(name, false)?;
        let (st, meta) = self.state(ino)?;
        let from = self.rel(ino)?;
        let to = self.child(dir, name)?;
        self.top
            .link(&Self::data(&from), &Self::data(&to))
            .map_err(errno)?;
        let v = self.version();
        let linked = match self.top.link(
            &layout::metadata_path(v, &from, false),
            &layout::metadata_path(v, &to, false),
        ) {
            Ok(()) => Ok(()),
            // No metadata file to share: write one with what the node shows.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let a = self.attr_of(ino, &st, meta)?;
                let record = Record {
                    mode: Some(a.perm),
                    uid: a.uid,
                    gid: a.gid,
                    kind: NodeKind::Plain,
                };
                self.write_meta(&to, false, &record)
            }
            Err(_) => Err(Errno::EIO),
        };
        if let Err(e) = linked {
            let _ = self.top.unlink(&Self::data(&to));
            return Err(e);
        }
        Ok(())
    }

    fn unlink(&mut self, dir: Ino, name: &[u8]) -> FsResult<()> {
        self.writable()?;
        let rel = self.child(dir, name)?;
        let st = self.lstat(&rel)?;
        self.remove_file_meta(&rel)?;
        self.top.unlink(&Self::data(&rel)).map_err(errno)?;
        let last = st.st_nlink <= 1;
        if last {
            self.refund(Self::cost(&st));
        }
        self.forget_name(&rel, last);
        Ok(())
    }

    fn rmdir(&mut self, dir: Ino, name: &[u8]) -> FsResult<()> {
        self.writable()?;
        let rel = self.child(dir, name)?;
        self.top.rmdir(&Self::data(&rel)).map_err(errno)?;
        self.remove_dir_meta(&rel);
        self.refund(DIR_BYTES);
        self.forget_name(&rel, true);
        Ok(())
    }

    fn rename(&mut self, odir: Ino, oname: &[u8], ndir: Ino, nname: &[u8]) -> FsResult<()> {
        self.writable()?;
        let from = self.child(odir, oname)?;
        let to = self.child(ndir, nname)?;
        let st = self.lstat(&from)?;
        let is_dir = kind(&st) == SFlag::S_IFDIR;
        self.check_name(nname, is_dir)?;
        let replaced = match self.lstat(&to) {
            Ok(t) => Some(t),
            Err(Errno::ENOENT) => None,
            Err(e) => return Err(e),
        };
        if replaced.is_some_and(|t| (t.st_dev, t.st_ino) == (st.st_dev, st.st_ino)) {
            return Ok(()); // two names of one file: nothing to do, as rename(2)
        }
        self.top
            .rename(&Self::data(&from), &Self::data(&to))
            .map_err(errno)?;
        let v = self.version();
        let moved = if is_dir {
            // The replaced directory was empty: its metadata goes first.
            if replaced.is_some() {
                self.remove_dir_meta(&to);
            }
            layout::metadata_roots(v).iter().try_for_each(|root| {
                match self.top.rename(&under(root, &from), &under(root, &to)) {
                    Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(e),
                    _ => Ok(()),
                }
            })
        } else {
            match self.top.rename(
                &layout::metadata_path(v, &from, false),
                &layout::metadata_path(v, &to, false),
            ) {
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    // No metadata to carry: the replaced name's must not stay.
                    self.top
                        .unlink(&layout::metadata_path(v, &to, false))
                        .or_else(|e| match e.raw_os_error() {
                            Some(libc::ENOENT) => Ok(()),
                            _ => Err(e),
                        })
                }
                other => other,
            }
        };
        if moved.is_err() {
            // Put the data back where its metadata is.
            let _ = self.top.rename(&Self::data(&to), &Self::data(&from));
            return Err(Errno::EIO);
        }
        if let Some(t) = replaced {
            let last = t.st_nlink <= 1 || kind(&t) == SFlag::S_IFDIR;
            if last {
                self.refund(Self::cost(&t));
            }
            self.forget_name(&to, last);
        }
        self.move_names(&from, &to);
        Ok(())
    }

    fn readlink(&mut self, ino: Ino) -> FsResult<Vec<u8>> {
        let rel = self.rel(ino)?;
        self.top.readlink(&Self::data(&rel)).map_err(errno)
    }

    fn read(&mut self, ino: Ino, offset: u64, buf: &mut [u8]) -> FsResult<usize> {
        let file = self.file(ino, false)?;
        file.read_at(buf, offset).map_err(errno)
    }

    fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> FsResult<usize> {
        self.writable()?;
        let old = self.file(ino, true)?.metadata().map_err(errno)?.len();
        let end = offset.checked_add(data.len() as u64).ok_or(Errno::EFBIG)?;
        let free = self.sb.total.saturating_sub(self.sb.used);
        // A write that would grow the file past the size is cut short; one that can
        // write nothing fails.
        let allowed = if end > old + free {
            (old + free).saturating_sub(offset) as usize
        } else {
            data.len()
        };
        if allowed == 0 && !data.is_empty() {
            return Err(Errno::ENOSPC);
        }
        let file = self.file(ino, true)?;
        let n = file.write_at(&data[..allowed], offset).map_err(errno)?;
        let new = file.metadata().map_err(errno)?.len();
        drop(file);
        if new > old {
            self.sb.used += new - old;
            self.sb_dirty = true;
        }
        Ok(n)
    }

    fn readdir(&mut self, dir: Ino) -> FsResult<Vec<DirEntry>> {
        let rel = self.rel(dir)?;
        let parent = self.lookup(dir, b"..")?;
        let mut out = vec![
            DirEntry {
                ino: dir,
                kind: FileKind::Dir,
                name: b".".to_vec(),
            },
            DirEntry {
                ino: parent,
                kind: FileKind::Dir,
                name: b"..".to_vec(),
            },
        ];
        for name in self.top.list(&Self::data(&rel)).map_err(errno)? {
            let child = rel.join(name_path(&name));
            let Ok(st) = self.lstat(&child) else {
                continue; // gone since the listing
            };
            let ino = self.register(&st, child);
            // A damaged metadata file still lists the name (its stat then fails).
            let kind = match self.getattr(ino) {
                Ok(a) => a.kind,
                Err(_) => host_kind(&st).unwrap_or(FileKind::File),
            };
            out.push(DirEntry { ino, kind, name });
        }
        Ok(out)
    }

    fn statfs(&mut self) -> FsResult<StatFs> {
        let free = self.sb.total.saturating_sub(self.sb.used);
        Ok(StatFs {
            fs_type: HUMFS_MAGIC,
            bsize: BLOCK as u32,
            blocks: self.sb.total / BLOCK,
            bfree: free / BLOCK,
            bavail: free / BLOCK,
            files: 0,
            ffree: 0,
            namelen: 255,
        })
    }

    fn sync(&mut self) -> FsResult<()> {
        for n in self.nodes.values() {
            if let Some(f) = &n.file {
                let _ = f.sync_data();
            }
        }
        self.write_superblock()
    }

    fn hold(&mut self, ino: Ino) {
        let Ok(node) = self.node(ino) else {
            return;
        };
        let Some(rel) = node.rel.clone() else {
            return;
        };
        let data = Self::data(&rel);
        let file = self
            .top
            .open_file(&data, !self.read_only)
            .or_else(|_| self.top.open_file(&data, false));
        if let (Ok(f), Some(n)) = (file, self.nodes.get_mut(&ino)) {
            if host::same_file(&f, n.host) {
                n.file = Some(f);
            }
        }
    }

    fn release(&mut self, ino: Ino) -> FsResult<()> {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.file = None;
            if n.rel.is_none() {
                self.nodes.remove(&ino);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
