//! hostfs: a directory of the host mounted in the guest (`mount none /mnt -t hostfs
//! [-o /host/dir]`, `rootfstype=hostfs rootflags=/host/dir`), confined by the
//! `hostfs=DIR[,append]` switch (docs-2006/hostfs.txt).
//!
//! Every host access starts from a directory descriptor held for the mount and resolves
//! beneath it by descriptor (`sys::open_beneath`: openat2 with RESOLVE_BENEATH,
//! RESOLVE_NO_SYMLINKS and RESOLVE_NO_MAGICLINKS) or acts on one name in a directory so
//! opened (mkdirat, unlinkat, renameat2, fchownat with AT_SYMLINK_NOFOLLOW ...); no host
//! path string is ever joined and opened. A host symlink is handed to the VFS as a
//! symlink, which follows it in guest terms: an absolute target is a guest path.
//!
//! Ownership: files the guest makes belong to the user running the kernel (the guest's
//! uid and gid are not applied). A guest chown reaches the host only when the kernel runs
//! as root; otherwise a chown to other ids fails with EPERM. Device nodes cannot be made
//! (EPERM), and a kernel running as root never sets the set-user/group-ID bits, so a
//! guest cannot leave privileged programs on the host.
//!
//! `append` (the switch's option): writes only at the end of a file, no truncation, no
//! unlink, rmdir or rename over an existing name (EPERM); new files may be made.

mod nodes;
mod sys;

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{renameat2, AtFlags, OFlag, RenameFlags};
use nix::sys::stat::{
    fchmod, fstat, fstatat, mkdirat, mknodat, utimensat, FileStat, Mode, SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

pub use crate::cmdline::HostfsSwitch;

use super::errno::{Errno, FsResult};
use super::node::{Attr, DirEntry, FileKind, FileSystem, Ino, NewNode, SetAttr, StatFs};
use nodes::{check_name, Nodes};
use sys::{errno, io_errno};

/// statfs's f_type for hostfs (Linux's HOSTFS_SUPER_MAGIC).
pub const HOSTFS_SUPER_MAGIC: u64 = 0x00c0_ffee;

/// Why a hostfs mount failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostfsError {
    /// The `hostfs=` directory cannot be opened.
    Confinement { dir: PathBuf, errno: Errno },
    /// The requested directory cannot be opened.
    Open { path: String, errno: Errno },
    /// The requested directory is outside the `hostfs=` directory.
    Outside { path: String, dir: PathBuf },
}

impl HostfsError {
    /// The errno a mount syscall would fail with.
    pub fn errno(&self) -> Errno {
        match self {
            HostfsError::Confinement { errno, .. } | HostfsError::Open { errno, .. } => *errno,
            HostfsError::Outside { .. } => Errno::EPERM,
        }
    }
}

impl fmt::Display for HostfsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostfsError::Confinement { dir, errno } => {
                write!(f, "hostfs: cannot open hostfs={}: {errno}", dir.display())
            }
            HostfsError::Open { path, errno } => {
                write!(f, "hostfs: cannot open host directory '{path}': {errno}")
            }
            HostfsError::Outside { path, dir } => write!(
                f,
                "hostfs: '{path}' is outside the hostfs={} directory",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for HostfsError {}

/// What mount options (`-o`, `rootflags=`) say: the host directory and `ro`/`rw`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountData {
    pub path: String,
    pub read_only: bool,
}

impl MountData {
    /// `ro` and `rw` among the comma-separated options are flags; the rest, joined
    /// again, is the host directory (empty: the default).
    pub fn parse(options: &str) -> MountData {
        let mut data = MountData::default();
        let mut path = Vec::new();
        for o in options.split(',') {
            match o {
                "ro" => data.read_only = true,
                "rw" => data.read_only = false,
                _ => path.push(o),
            }
        }
        data.path = path.join(",");
        data
    }
}

/// An open host file kept while the guest has it open.
struct Held {
    file: File,
    writable: bool,
}

/// A mounted host directory.
pub struct HostFs {
    /// The mount's directory (O_PATH): every access resolves beneath it.
    root: OwnedFd,
    dev: u64,
    root_ino: Ino,
    nodes: Nodes,
    held: HashMap<Ino, Held>,
    read_only: bool,
    append: bool,
    /// The kernel runs as root: guest chowns reach the host.
    privileged: bool,
}

impl HostFs {
    /// Mounts the host directory that `options` name (relative to the `hostfs=`
    /// directory, or to `/` without one; the default is that directory itself).
    pub fn mount(
        switch: &HostfsSwitch,
        options: &str,
        read_only: bool,
    ) -> Result<HostFs, HostfsError> {
        let data = MountData::parse(options);
        let base_path = switch.dir.as_deref().unwrap_or(Path::new("/"));
        let base = nix::fcntl::open(
            base_path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| HostfsError::Confinement {
            dir: base_path.to_owned(),
            errno: errno(e),
        })?;
        let rel = data.path.trim_start_matches('/');
        let rel = if rel.is_empty() { "." } else { rel };
        let shown = if data.path.is_empty() {
            base_path.display().to_string()
        } else {
            data.path.clone()
        };
        let root = match sys::open_mount_dir(&base, rel.as_bytes(), switch.dir.is_some()) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::EXDEV) if switch.dir.is_some() => {
                return Err(HostfsError::Outside {
                    path: shown,
                    dir: base_path.to_owned(),
                })
            }
            Err(e) => {
                return Err(HostfsError::Open {
                    path: shown,
                    errno: errno(e),
                })
            }
        };
        let st = fstat(&root).map_err(|e| HostfsError::Open {
            path: shown,
            errno: errno(e),
        })?;
        Ok(HostFs {
            root,
            dev: st.st_dev,
            root_ino: st.st_ino,
            nodes: Nodes::new(st.st_ino),
            held: HashMap::new(),
            read_only: read_only || data.read_only,
            append: switch.append,
            privileged: nix::unistd::geteuid().is_root(),
        })
    }

    /// The inode number of a host file: its own on the mount's host filesystem, a
    /// number of its own (top bit set) on another one mounted below.
    fn ino_of(&self, st: &FileStat) -> Ino {
        if st.st_dev == self.dev {
            return st.st_ino;
        }
        let mut h = DefaultHasher::new();
        (st.st_dev, st.st_ino).hash(&mut h);
        h.finish() | 1 << 63
    }

    fn writable(&self) -> FsResult<()> {
        if self.read_only {
            return Err(Errno::EROFS);
        }
        Ok(())
    }

    /// Opens the node `ino` beneath the mount with `flags`.
    fn open_node(&self, ino: Ino, flags: OFlag) -> FsResult<OwnedFd> {
        let path = self.nodes.path(ino)?;
        sys::open_beneath(&self.root, &path, flags)
    }

    fn dir_fd(&self, dir: Ino) -> FsResult<OwnedFd> {
        self.open_node(dir, OFlag::O_PATH | OFlag::O_DIRECTORY)
    }

    fn stat(&self, ino: Ino) -> FsResult<FileStat> {
        match self.held.get(&ino) {
            Some(h) => fstat(&h.file).map_err(errno),
            None => fstat(self.open_node(ino, OFlag::O_PATH)?).map_err(errno),
        }
    }

    /// The directory holding `ino` and its name there (the root: itself and `.`).
    fn at(&self, ino: Ino) -> FsResult<(OwnedFd, Vec<u8>)> {
        if ino == self.root_ino {
            return Ok((self.dir_fd(ino)?, b".".to_vec()));
        }
        let (parent, name) = self.nodes.entry(ino)?;
        Ok((self.dir_fd(parent)?, name.to_vec()))
    }

    /// Opens the regular file `ino` for reading (and writing; appending only in append
    /// mode). Its type is checked on an O_PATH descriptor first, so a fifo or device
    /// planted on the host is not opened, and again once open (one swapped in between
    /// is closed unread).
    fn open_file(&self, ino: Ino, write: bool) -> FsResult<File> {
        let probe = fstat(self.open_node(ino, OFlag::O_PATH)?).map_err(errno)?;
        match sys::kind(&probe) {
            Some(FileKind::File) => {}
            Some(FileKind::Dir) => return Err(Errno::EISDIR),
            _ => return Err(Errno::EINVAL),
        }
        let mut flags = OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
        flags |= if write {
            OFlag::O_RDWR
        } else {
            OFlag::O_RDONLY
        };
        if write && self.append {
            flags |= OFlag::O_APPEND;
        }
        let fd = self.open_node(ino, flags)?;
        let st = fstat(&fd).map_err(errno)?;
        if sys::kind(&st) != Some(FileKind::File) {
            return Err(Errno::EINVAL);
        }
        Ok(File::from(fd))
    }

    /// Runs `f` on the file `ino`: the one kept open for the guest when it fits,
    /// otherwise one opened for this call.
    fn with_file<R>(
        &self,
        ino: Ino,
        write: bool,
        f: impl FnOnce(&File) -> std::io::Result<R>,
    ) -> FsResult<R> {
        if let Some(h) = self.held.get(&ino) {
            if h.writable || !write {
                return f(&h.file).map_err(|e| io_errno(&e));
            }
        }
        let file = self.open_file(ino, write)?;
        f(&file).map_err(|e| io_errno(&e))
    }

    /// Permission bits the host gets: a kernel running as root never sets set-ID bits.
    fn host_perm(&self, perm: u32) -> Mode {
        let perm = if self.privileged {
            perm & 0o1777
        } else {
            perm & 0o7777
        };
        Mode::from_bits_truncate(perm)
    }

    /// Records the node just made as `name` in `dir`.
    fn made(&mut self, dfd: &OwnedFd, dir: Ino, name: &[u8]) -> FsResult<Ino> {
        let st = fstatat(dfd, osname(name), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(errno)?;
        let ino = self.ino_of(&st);
        self.nodes.record(ino, dir, name);
        Ok(ino)
    }

    fn chown(&self, ino: Ino, set: &SetAttr) -> FsResult<()> {
        if set.uid.is_none() && set.gid.is_none() {
            return Ok(());
        }
        if !self.privileged {
            let st = self.stat(ino)?;
            let same =
                set.uid.is_none_or(|u| u == st.st_uid) && set.gid.is_none_or(|g| g == st.st_gid);
            return if same { Ok(()) } else { Err(Errno::EPERM) };
        }
        let uid = set.uid.map(Uid::from_raw);
        let gid = set.gid.map(Gid::from_raw);
        if let Some(h) = self.held.get(&ino) {
            return nix::unistd::fchown(&h.file, uid, gid).map_err(errno);
        }
        let (dfd, name) = self.at(ino)?;
        fchownat(&dfd, osname(&name), uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(errno)
    }

    fn chmod(&self, ino: Ino, perm: u32) -> FsResult<()> {
        let mode = self.host_perm(perm);
        if let Some(h) = self.held.get(&ino) {
            return fchmod(&h.file, mode).map_err(errno);
        }
        let (dfd, name) = self.at(ino)?;
        sys::chmod_nofollow(&dfd, &name, mode)
    }

    fn utimes(&self, ino: Ino, atime: Option<i64>, mtime: Option<i64>) -> FsResult<()> {
        if atime.is_none() && mtime.is_none() {
            return Ok(());
        }
        let t = |s: Option<i64>| s.map_or(TimeSpec::UTIME_OMIT, |s| TimeSpec::new(s, 0));
        let (dfd, name) = self.at(ino)?;
        utimensat(
            &dfd,
            osname(&name),
            &t(atime),
            &t(mtime),
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(errno)
    }
}

fn osname(name: &[u8]) -> &std::ffi::OsStr {
    std::ffi::OsStr::from_bytes(name)
}

impl FileSystem for HostFs {
    fn fs_type(&self) -> &'static str {
        "hostfs"
    }

    fn root(&self) -> Ino {
        self.root_ino
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn getattr(&mut self, ino: Ino) -> FsResult<Attr> {
        let st = self.stat(ino)?;
        sys::attr(&st, self.ino_of(&st))
    }

    fn setattr(&mut self, ino: Ino, set: &SetAttr) -> FsResult<Attr> {
        self.writable()?;
        if let Some(size) = set.size {
            if self.append && self.stat(ino)?.st_size as u64 != size {
                return Err(Errno::EPERM);
            }
            self.with_file(ino, true, |f| f.set_len(size))?;
        }
        self.chown(ino, set)?;
        if let Some(perm) = set.perm {
            self.chmod(ino, perm)?;
        }
        self.utimes(ino, set.atime, set.mtime)?;
        self.getattr(ino)
    }

    fn lookup(&mut self, dir: Ino, name: &[u8]) -> FsResult<Ino> {
        match name {
            b"." => return Ok(dir),
            b".." => return self.nodes.parent(dir),
            _ => {}
        }
        let path = self.nodes.child_path(dir, name)?;
        let fd = sys::open_beneath(&self.root, &path, OFlag::O_PATH)?;
        let st = fstat(&fd).map_err(errno)?;
        let ino = self.ino_of(&st);
        if ino == self.root_ino {
            // The mount's own directory seen again below itself (a bind mount).
            return Err(Errno::ELOOP);
        }
        self.nodes.record(ino, dir, name);
        Ok(ino)
    }

    fn mknod(&mut self, dir: Ino, name: &[u8], node: &NewNode) -> FsResult<Ino> {
        self.writable()?;
        check_name(name)?;
        let dfd = self.dir_fd(dir)?;
        let mode = self.host_perm(node.perm);
        let n = osname(name);
        match node.kind {
            FileKind::File => {
                let fd = sys::create_in(&dfd, name, node.perm)?;
                // The host's umask does not apply: the guest gets the mode it asked.
                fchmod(&fd, mode).map_err(errno)?;
            }
            FileKind::Dir => {
                mkdirat(&dfd, n, mode).map_err(errno)?;
                sys::chmod_nofollow(&dfd, name, mode)?;
            }
            FileKind::Fifo | FileKind::Socket => {
                let kind = if node.kind == FileKind::Fifo {
                    SFlag::S_IFIFO
                } else {
                    SFlag::S_IFSOCK
                };
                mknodat(&dfd, n, kind, mode, 0).map_err(errno)?;
                sys::chmod_nofollow(&dfd, name, mode)?;
            }
            FileKind::Char | FileKind::Block => return Err(Errno::EPERM),
            FileKind::Symlink => return Err(Errno::EINVAL),
        }
        self.made(&dfd, dir, name)
    }

    fn symlink(&mut self, dir: Ino, name: &[u8], target: &[u8], _: u32, _: u32) -> FsResult<Ino> {
        self.writable()?;
        check_name(name)?;
        let dfd = self.dir_fd(dir)?;
        symlinkat(osname(target), &dfd, osname(name)).map_err(errno)?;
        self.made(&dfd, dir, name)
    }

    fn link(&mut self, ino: Ino, dir: Ino, name: &[u8]) -> FsResult<()> {
        self.writable()?;
        check_name(name)?;
        let (sfd, sname) = self.at(ino)?;
        let dfd = self.dir_fd(dir)?;
        linkat(&sfd, osname(&sname), &dfd, osname(name), AtFlags::empty()).map_err(errno)?;
        self.made(&dfd, dir, name).map(|_| ())
    }

    fn unlink(&mut self, dir: Ino, name: &[u8]) -> FsResult<()> {
        self.writable()?;
        check_name(name)?;
        if self.append {
            return Err(Errno::EPERM);
        }
        let dfd = self.dir_fd(dir)?;
        unlinkat(&dfd, osname(name), UnlinkatFlags::NoRemoveDir).map_err(errno)?;
        self.nodes.forget(dir, name);
        Ok(())
    }

    fn rmdir(&mut self, dir: Ino, name: &[u8]) -> FsResult<()> {
        self.writable()?;
        check_name(name)?;
        if self.append {
            return Err(Errno::EPERM);
        }
        let dfd = self.dir_fd(dir)?;
        unlinkat(&dfd, osname(name), UnlinkatFlags::RemoveDir).map_err(errno)?;
        self.nodes.forget(dir, name);
        Ok(())
    }

    fn rename(&mut self, odir: Ino, oname: &[u8], ndir: Ino, nname: &[u8]) -> FsResult<()> {
        self.writable()?;
        check_name(oname)?;
        check_name(nname)?;
        let ofd = self.dir_fd(odir)?;
        let nfd = self.dir_fd(ndir)?;
        let flags = if self.append {
            RenameFlags::RENAME_NOREPLACE
        } else {
            RenameFlags::empty()
        };
        match renameat2(&ofd, osname(oname), &nfd, osname(nname), flags) {
            Ok(()) => {}
            Err(nix::errno::Errno::EEXIST) if self.append => return Err(Errno::EPERM),
            Err(e) => return Err(errno(e)),
        }
        self.nodes.forget(ndir, nname);
        self.nodes.forget(odir, oname);
        self.made(&nfd, ndir, nname).map(|_| ())
    }

    fn readlink(&mut self, ino: Ino) -> FsResult<Vec<u8>> {
        let fd = self.open_node(ino, OFlag::O_PATH)?;
        let target = nix::fcntl::readlinkat(&fd, "").map_err(errno)?;
        Ok(target.as_bytes().to_vec())
    }

    fn read(&mut self, ino: Ino, offset: u64, buf: &mut [u8]) -> FsResult<usize> {
        self.with_file(ino, false, |f| f.read_at(buf, offset))
    }

    fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> FsResult<usize> {
        self.writable()?;
        if self.append && self.stat(ino)?.st_size as u64 != offset {
            return Err(Errno::EPERM);
        }
        self.with_file(ino, true, |f| f.write_at(data, offset))
    }

    fn readdir(&mut self, dir: Ino) -> FsResult<Vec<DirEntry>> {
        let fd = self.open_node(dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
        let mut d = nix::dir::Dir::from_fd(fd).map_err(errno)?;
        let names: Vec<Vec<u8>> = d
            .iter()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_bytes().to_vec())
            .filter(|n| n != b"." && n != b"..")
            .collect();
        let parent = self.nodes.parent(dir)?;
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
        for name in names {
            // An entry removed on the host meanwhile is left out.
            let Ok(st) = fstatat(&d, osname(&name), AtFlags::AT_SYMLINK_NOFOLLOW) else {
                continue;
            };
            let Some(kind) = sys::kind(&st) else {
                continue;
            };
            out.push(DirEntry {
                ino: self.ino_of(&st),
                kind,
                name,
            });
        }
        Ok(out)
    }

    fn statfs(&mut self) -> FsResult<StatFs> {
        let s = nix::sys::statfs::fstatfs(&self.root).map_err(errno)?;
        Ok(StatFs {
            fs_type: HOSTFS_SUPER_MAGIC,
            bsize: u32::try_from(s.block_size()).unwrap_or(4096),
            blocks: s.blocks(),
            bfree: s.blocks_free(),
            bavail: s.blocks_available(),
            files: s.files(),
            ffree: s.files_free(),
            namelen: u32::try_from(s.maximum_name_length()).unwrap_or(255),
        })
    }

    fn sync(&mut self) -> FsResult<()> {
        let mut result = Ok(());
        for h in self.held.values().filter(|h| h.writable) {
            if let Err(e) = h.file.sync_data() {
                result = Err(io_errno(&e));
            }
        }
        result
    }

    fn hold(&mut self, ino: Ino) {
        self.nodes.pin(ino);
        if self.held.contains_key(&ino) {
            return;
        }
        let writable = !self.read_only;
        let opened = if writable {
            self.open_file(ino, true)
                .map(|f| (f, true))
                .or_else(|_| self.open_file(ino, false).map(|f| (f, false)))
        } else {
            self.open_file(ino, false).map(|f| (f, false))
        };
        if let Ok((file, writable)) = opened {
            self.held.insert(ino, Held { file, writable });
        }
    }

    fn release(&mut self, ino: Ino) -> FsResult<()> {
        self.held.remove(&ino);
        self.nodes.unpin(ino);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
