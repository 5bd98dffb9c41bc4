//! The VFS: a mount table, path walks (`.`, `..`, symlinks up to 40 of them, crossing
//! mount points both ways), open files with offsets and flags, and the path operations
//! with the checks every filesystem shares (existence, kinds, empty directories, mount
//! points, cross-device moves, read-only mounts) before it calls the filesystem.

use std::collections::HashMap;

use super::errno::{Errno, FsResult};
use super::node::{Attr, DirEntry, FileKind, FileSystem, Ino, NewNode, SetAttr, StatFs};

/// Most symlinks one walk follows (Linux's MAXSYMLINKS).
pub const MAX_SYMLINKS: u32 = 40;
/// Longest name.
pub const NAME_MAX: usize = 255;
/// Longest path.
pub const PATH_MAX: usize = 4096;

/// Open flags, with Linux's values.
pub mod oflag {
    pub const O_ACCMODE: u32 = 0o3;
    pub const O_RDONLY: u32 = 0;
    pub const O_WRONLY: u32 = 0o1;
    pub const O_RDWR: u32 = 0o2;
    pub const O_CREAT: u32 = 0o100;
    pub const O_EXCL: u32 = 0o200;
    pub const O_TRUNC: u32 = 0o1000;
    pub const O_APPEND: u32 = 0o2000;
    pub const O_DIRECTORY: u32 = 0o200000;
    pub const O_NOFOLLOW: u32 = 0o400000;
}
use oflag::*;

/// A node somewhere in the mounted tree: which mount, which inode in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Loc {
    pub mount: usize,
    pub ino: Ino,
}

/// An open file: where it is, its offset and its flags. The syscall layer keeps these
/// in per-process descriptor tables (shared between descriptors after dup/fork).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFile {
    pub loc: Loc,
    pub offset: u64,
    pub flags: u32,
}

impl OpenFile {
    pub fn readable(&self) -> bool {
        self.flags & O_ACCMODE != O_WRONLY
    }
    pub fn writable(&self) -> bool {
        self.flags & O_ACCMODE != O_RDONLY
    }
}

struct Mount {
    fs: Box<dyn FileSystem>,
    source: String,
    /// Where it is mounted; None for the root filesystem.
    point: Option<Loc>,
    /// The path it was mounted on, for /proc/mounts.
    path: String,
    open_files: usize,
}

/// One line of /proc/mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub source: String,
    pub path: String,
    pub fs_type: &'static str,
    pub read_only: bool,
}

/// The mounted tree.
pub struct Vfs {
    mounts: Vec<Option<Mount>>,
    /// Open files per node (an unlinked node lives while it is open).
    open: HashMap<Loc, usize>,
}

fn components(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn check_path(path: &[u8]) -> FsResult<()> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    if path.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    if path.contains(&0) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

impl Vfs {
    /// A tree with `root` mounted at `/`.
    pub fn new(root: Box<dyn FileSystem>, source: &str) -> Vfs {
        Vfs {
            mounts: vec![Some(Mount {
                fs: root,
                source: source.to_string(),
                point: None,
                path: "/".to_string(),
                open_files: 0,
            })],
            open: HashMap::new(),
        }
    }

    /// The root directory.
    pub fn root(&self) -> Loc {
        let ino = self.mounts[0].as_ref().map_or(0, |m| m.fs.root());
        Loc { mount: 0, ino }
    }

    fn mount_ref(&self, m: usize) -> FsResult<&Mount> {
        self.mounts
            .get(m)
            .and_then(Option::as_ref)
            .ok_or(Errno::ENOENT)
    }

    fn mount_mut(&mut self, m: usize) -> FsResult<&mut Mount> {
        self.mounts
            .get_mut(m)
            .and_then(Option::as_mut)
            .ok_or(Errno::ENOENT)
    }

    /// The filesystem holding `loc`.
    pub fn fs(&mut self, loc: Loc) -> FsResult<&mut dyn FileSystem> {
        Ok(self.mount_mut(loc.mount)?.fs.as_mut())
    }

    fn writable_fs(&mut self, loc: Loc) -> FsResult<&mut dyn FileSystem> {
        let fs = self.fs(loc)?;
        if fs.read_only() {
            return Err(Errno::EROFS);
        }
        Ok(fs)
    }

    pub fn getattr(&mut self, loc: Loc) -> FsResult<Attr> {
        self.fs(loc)?.getattr(loc.ino)
    }

    /// The mount whose root is `loc`, if any.
    fn mount_rooted_at(&self, loc: Loc) -> Option<usize> {
        let m = self.mounts.get(loc.mount)?.as_ref()?;
        (m.fs.root() == loc.ino).then_some(loc.mount)
    }

    /// The topmost mount on `loc`, if any.
    fn mounted_on(&self, loc: Loc) -> Option<usize> {
        self.mounts
            .iter()
            .enumerate()
            .rev()
            .find(|(_, m)| m.as_ref().is_some_and(|m| m.point == Some(loc)))
            .map(|(i, _)| i)
    }

    fn is_mount_point(&self, loc: Loc) -> bool {
        self.mounted_on(loc).is_some()
    }

    /// Follows mounts stacked on `loc` down to the visible directory.
    fn cross_down(&self, mut loc: Loc) -> Loc {
        let mut guard = 0;
        while let Some(m) = self.mounted_on(loc) {
            let root = self.mounts[m].as_ref().map_or(loc.ino, |mm| mm.fs.root());
            loc = Loc {
                mount: m,
                ino: root,
            };
            guard += 1;
            if guard > self.mounts.len() {
                break;
            }
        }
        loc
    }

    /// The parent of directory `loc`, leaving mounts upward; `/` is its own parent.
    pub fn parent(&mut self, mut loc: Loc) -> FsResult<Loc> {
        while let Some(m) = self.mount_rooted_at(loc) {
            match self.mount_ref(m)?.point {
                Some(p) => loc = p,
                None => return Ok(loc),
            }
        }
        let ino = self.fs(loc)?.lookup(loc.ino, b"..")?;
        Ok(Loc {
            mount: loc.mount,
            ino,
        })
    }

    /// Walks `path` from `cwd` (or `/`). `follow` says whether a final symlink is
    /// followed; a trailing slash always follows and requires a directory.
    pub fn resolve(&mut self, cwd: Loc, path: &[u8], follow: bool) -> FsResult<Loc> {
        check_path(path)?;
        let mut links = 0;
        let trailing = path.ends_with(b"/");
        let start = if path.starts_with(b"/") {
            self.root()
        } else {
            cwd
        };
        let loc = self.walk(start, path, follow || trailing, &mut links)?;
        if trailing && self.getattr(loc)?.kind != FileKind::Dir {
            return Err(Errno::ENOTDIR);
        }
        Ok(loc)
    }

    fn walk(
        &mut self,
        start: Loc,
        path: &[u8],
        follow_last: bool,
        links: &mut u32,
    ) -> FsResult<Loc> {
        let mut cur = start;
        let mut stack: Vec<Vec<u8>> = components(path);
        stack.reverse();
        while let Some(c) = stack.pop() {
            let last = stack.is_empty();
            if self.getattr(cur)?.kind != FileKind::Dir {
                return Err(Errno::ENOTDIR);
            }
            if c == b"." {
                continue;
            }
            if c == b".." {
                cur = self.parent(cur)?;
                continue;
            }
            if c.len() > NAME_MAX {
                return Err(Errno::ENAMETOOLONG);
            }
            let ino = self.fs(cur)?.lookup(cur.ino, &c)?;
            let next = self.cross_down(Loc {
                mount: cur.mount,
                ino,
            });
            if (!last || follow_last) && self.getattr(next)?.kind == FileKind::Symlink {
                *links += 1;
                if *links > MAX_SYMLINKS {
                    return Err(Errno::ELOOP);
                }
                let target = self.fs(next)?.readlink(next.ino)?;
                if target.is_empty() {
                    return Err(Errno::ENOENT);
                }
                if target.starts_with(b"/") {
                    cur = self.root();
                }
                let mut more = components(&target);
                if target.ends_with(b"/") {
                    more.push(b".".to_vec());
                }
                stack.extend(more.into_iter().rev());
                continue;
            }
            cur = next;
        }
        Ok(cur)
    }

    /// The directory holding the last component of `path`, and that component (empty
    /// for `/`). Trailing slashes are dropped.
    pub fn resolve_parent(&mut self, cwd: Loc, path: &[u8]) -> FsResult<(Loc, Vec<u8>)> {
        check_path(path)?;
        let trimmed = {
            let mut p = path;
            while p.len() > 1 && p.ends_with(b"/") {
                p = &p[..p.len() - 1];
            }
            p
        };
        let (dir_part, name) = match trimmed.iter().rposition(|&b| b == b'/') {
            Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
            None => (&b""[..], trimmed),
        };
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let start = if trimmed.starts_with(b"/") {
            self.root()
        } else {
            cwd
        };
        let mut links = 0;
        let dir = self.walk(start, dir_part, true, &mut links)?;
        if self.getattr(dir)?.kind != FileKind::Dir {
            return Err(Errno::ENOTDIR);
        }
        Ok((dir, name.to_vec()))
    }

    fn lookup_in(&mut self, dir: Loc, name: &[u8]) -> FsResult<Option<Loc>> {
        match self.fs(dir)?.lookup(dir.ino, name) {
            Ok(ino) => Ok(Some(Loc {
                mount: dir.mount,
                ino,
            })),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens (and with O_CREAT makes) a file.
    pub fn open(
        &mut self,
        cwd: Loc,
        path: &[u8],
        flags: u32,
        perm: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<OpenFile> {
        let loc = if flags & O_CREAT != 0 {
            let (dir, name) = self.resolve_parent(cwd, path)?;
            if name.is_empty() || name == b"." || name == b".." || path.ends_with(b"/") {
                return Err(Errno::EISDIR);
            }
            match self.lookup_in(dir, &name)? {
                Some(_) if flags & O_EXCL != 0 => return Err(Errno::EEXIST),
                Some(_) => self.resolve(cwd, path, flags & O_NOFOLLOW == 0)?,
                None => {
                    let node = NewNode {
                        kind: FileKind::File,
                        perm: perm & 0o7777,
                        uid,
                        gid,
                        rdev: (0, 0),
                    };
                    let ino = self.writable_fs(dir)?.mknod(dir.ino, &name, &node)?;
                    Loc {
                        mount: dir.mount,
                        ino,
                    }
                }
            }
        } else {
            self.resolve(cwd, path, flags & O_NOFOLLOW == 0)?
        };
        let attr = self.getattr(loc)?;
        let file = OpenFile {
            loc,
            offset: 0,
            flags,
        };
        match attr.kind {
            FileKind::Symlink => return Err(Errno::ELOOP),
            FileKind::Dir if file.writable() => return Err(Errno::EISDIR),
            k if k != FileKind::Dir && flags & O_DIRECTORY != 0 => return Err(Errno::ENOTDIR),
            _ => {}
        }
        if file.writable() && attr.kind != FileKind::Char && self.fs(loc)?.read_only() {
            return Err(Errno::EROFS);
        }
        if flags & O_TRUNC != 0 && file.writable() && attr.kind == FileKind::File && attr.size != 0
        {
            let set = SetAttr {
                size: Some(0),
                ..SetAttr::default()
            };
            self.fs(loc)?.setattr(loc.ino, &set)?;
        }
        self.mount_mut(loc.mount)?.open_files += 1;
        let count = self.open.entry(loc).or_insert(0);
        *count += 1;
        if *count == 1 {
            self.fs(loc)?.hold(loc.ino);
        }
        Ok(file)
    }

    /// Closes an open file; the last close of an unlinked node frees it.
    pub fn close(&mut self, file: OpenFile) -> FsResult<()> {
        if let Ok(m) = self.mount_mut(file.loc.mount) {
            m.open_files = m.open_files.saturating_sub(1);
        }
        let last = match self.open.get_mut(&file.loc) {
            Some(n) => {
                *n -= 1;
                *n == 0
            }
            None => false,
        };
        if last {
            self.open.remove(&file.loc);
            self.fs(file.loc)?.release(file.loc.ino)?;
        }
        Ok(())
    }

    /// Reads at the file's offset and advances it.
    pub fn read(&mut self, file: &mut OpenFile, buf: &mut [u8]) -> FsResult<usize> {
        let n = self.pread(file, file.offset, buf)?;
        file.offset += n as u64;
        Ok(n)
    }

    /// Reads at `offset` without moving the file's offset.
    pub fn pread(&mut self, file: &OpenFile, offset: u64, buf: &mut [u8]) -> FsResult<usize> {
        if !file.readable() {
            return Err(Errno::EBADF);
        }
        let attr = self.getattr(file.loc)?;
        match attr.kind {
            FileKind::File => self.fs(file.loc)?.read(file.loc.ino, offset, buf),
            FileKind::Dir => Err(Errno::EISDIR),
            FileKind::Char => super::chardev::read(attr.rdev, buf),
            _ => Err(Errno::ENXIO),
        }
    }

    /// Writes at the file's offset (at the end with O_APPEND) and advances it.
    pub fn write(&mut self, file: &mut OpenFile, data: &[u8]) -> FsResult<usize> {
        if !file.writable() {
            return Err(Errno::EBADF);
        }
        let attr = self.getattr(file.loc)?;
        if attr.kind == FileKind::Char {
            return super::chardev::write(attr.rdev, data);
        }
        if attr.kind != FileKind::File {
            return Err(if attr.kind == FileKind::Dir {
                Errno::EISDIR
            } else {
                Errno::ENXIO
            });
        }
        if file.flags & O_APPEND != 0 {
            file.offset = attr.size;
        }
        let n = self
            .writable_fs(file.loc)?
            .write(file.loc.ino, file.offset, data)?;
        file.offset += n as u64;
        Ok(n)
    }

    /// Makes a directory.
    pub fn mkdir(&mut self, cwd: Loc, path: &[u8], perm: u32, uid: u32, gid: u32) -> FsResult<Loc> {
        self.make(
            cwd,
            path,
            &NewNode {
                kind: FileKind::Dir,
                perm,
                uid,
                gid,
                rdev: (0, 0),
            },
        )
    }

    /// Makes a file, device, fifo or socket (or a directory).
    pub fn mknod(&mut self, cwd: Loc, path: &[u8], node: &NewNode) -> FsResult<Loc> {
        self.make(cwd, path, node)
    }

    fn make(&mut self, cwd: Loc, path: &[u8], node: &NewNode) -> FsResult<Loc> {
        let (dir, name) = self.resolve_parent(cwd, path)?;
        if name.is_empty() || name == b"." || name == b".." || self.lookup_in(dir, &name)?.is_some()
        {
            return Err(Errno::EEXIST);
        }
        if node.kind != FileKind::Dir && path.ends_with(b"/") {
            return Err(Errno::ENOENT);
        }
        let node = NewNode {
            perm: node.perm & 0o7777,
            ..node.clone()
        };
        let ino = self.writable_fs(dir)?.mknod(dir.ino, &name, &node)?;
        Ok(Loc {
            mount: dir.mount,
            ino,
        })
    }

    /// Makes a symlink at `path` pointing to `target`.
    pub fn symlink(
        &mut self,
        cwd: Loc,
        target: &[u8],
        path: &[u8],
        uid: u32,
        gid: u32,
    ) -> FsResult<Loc> {
        check_path(target)?;
        let (dir, name) = self.resolve_parent(cwd, path)?;
        if name.is_empty() || name == b"." || name == b".." || self.lookup_in(dir, &name)?.is_some()
        {
            return Err(Errno::EEXIST);
        }
        let ino = self
            .writable_fs(dir)?
            .symlink(dir.ino, &name, target, uid, gid)?;
        Ok(Loc {
            mount: dir.mount,
            ino,
        })
    }

    /// Makes a hard link `new` to `old` (not followed if a symlink, as linkat without
    /// AT_SYMLINK_FOLLOW).
    pub fn link(&mut self, cwd: Loc, old: &[u8], new: &[u8]) -> FsResult<()> {
        let src = self.resolve(cwd, old, false)?;
        let (dir, name) = self.resolve_parent(cwd, new)?;
        if self.getattr(src)?.kind == FileKind::Dir {
            return Err(Errno::EPERM);
        }
        if name.is_empty() || name == b"." || name == b".." || self.lookup_in(dir, &name)?.is_some()
        {
            return Err(Errno::EEXIST);
        }
        if src.mount != dir.mount {
            return Err(Errno::EXDEV);
        }
        self.writable_fs(dir)?.link(src.ino, dir.ino, &name)
    }

    /// Removes a non-directory.
    pub fn unlink(&mut self, cwd: Loc, path: &[u8]) -> FsResult<()> {
        let (dir, name) = self.resolve_parent(cwd, path)?;
        if name.is_empty() || name == b"." || name == b".." {
            return Err(Errno::EISDIR);
        }
        let victim = self.lookup_in(dir, &name)?.ok_or(Errno::ENOENT)?;
        if self.getattr(victim)?.kind == FileKind::Dir {
            return Err(Errno::EISDIR);
        }
        if path.ends_with(b"/") {
            return Err(Errno::ENOTDIR);
        }
        if self.is_mount_point(victim) {
            return Err(Errno::EBUSY);
        }
        self.writable_fs(dir)?.unlink(dir.ino, &name)
    }

    fn is_empty_dir(&mut self, loc: Loc) -> FsResult<bool> {
        Ok(self
            .fs(loc)?
            .readdir(loc.ino)?
            .iter()
            .all(|e| e.name == b"." || e.name == b".."))
    }

    /// Removes an empty directory.
    pub fn rmdir(&mut self, cwd: Loc, path: &[u8]) -> FsResult<()> {
        let (dir, name) = self.resolve_parent(cwd, path)?;
        if name == b"." {
            return Err(Errno::EINVAL);
        }
        if name.is_empty() || name == b".." {
            return Err(Errno::ENOTEMPTY);
        }
        let victim = self.lookup_in(dir, &name)?.ok_or(Errno::ENOENT)?;
        if self.getattr(victim)?.kind != FileKind::Dir {
            return Err(Errno::ENOTDIR);
        }
        if self.is_mount_point(victim) {
            return Err(Errno::EBUSY);
        }
        if !self.is_empty_dir(victim)? {
            return Err(Errno::ENOTEMPTY);
        }
        self.writable_fs(dir)?.rmdir(dir.ino, &name)
    }

    /// Whether `loc` is `ancestor` or below it.
    fn is_below(&mut self, mut loc: Loc, ancestor: Loc) -> FsResult<bool> {
        for _ in 0..4096 {
            if loc == ancestor {
                return Ok(true);
            }
            let up = self.parent(loc)?;
            if up == loc {
                return Ok(false);
            }
            loc = up;
        }
        Err(Errno::ELOOP)
    }

    /// Moves `old` to `new`, replacing a compatible `new`.
    pub fn rename(&mut self, cwd: Loc, old: &[u8], new: &[u8]) -> FsResult<()> {
        let (odir, oname) = self.resolve_parent(cwd, old)?;
        let (ndir, nname) = self.resolve_parent(cwd, new)?;
        for n in [&oname, &nname] {
            if n.is_empty() || n.as_slice() == b"." || n.as_slice() == b".." {
                return Err(Errno::EBUSY);
            }
        }
        let src = self.lookup_in(odir, &oname)?.ok_or(Errno::ENOENT)?;
        if odir.mount != ndir.mount {
            return Err(Errno::EXDEV);
        }
        let src_dir = self.getattr(src)?.kind == FileKind::Dir;
        if !src_dir && (old.ends_with(b"/") || new.ends_with(b"/")) {
            return Err(Errno::ENOTDIR);
        }
        if self.is_mount_point(src) {
            return Err(Errno::EBUSY);
        }
        if src_dir && self.is_below(ndir, src)? {
            return Err(Errno::EINVAL);
        }
        if let Some(dst) = self.lookup_in(ndir, &nname)? {
            if dst == src {
                return Ok(());
            }
            let dst_dir = self.getattr(dst)?.kind == FileKind::Dir;
            match (src_dir, dst_dir) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                _ => {}
            }
            if self.is_mount_point(dst) {
                return Err(Errno::EBUSY);
            }
            if dst_dir && !self.is_empty_dir(dst)? {
                return Err(Errno::ENOTEMPTY);
            }
        }
        self.writable_fs(odir)?
            .rename(odir.ino, &oname, ndir.ino, &nname)
    }

    /// A symlink's target.
    pub fn readlink(&mut self, cwd: Loc, path: &[u8]) -> FsResult<Vec<u8>> {
        let loc = self.resolve(cwd, path, false)?;
        if self.getattr(loc)?.kind != FileKind::Symlink {
            return Err(Errno::EINVAL);
        }
        self.fs(loc)?.readlink(loc.ino)
    }

    /// stat (follow) or lstat.
    pub fn stat(&mut self, cwd: Loc, path: &[u8], follow: bool) -> FsResult<Attr> {
        let loc = self.resolve(cwd, path, follow)?;
        self.getattr(loc)
    }

    /// Changes attributes (chmod, chown, truncate, utimes).
    pub fn setattr(
        &mut self,
        cwd: Loc,
        path: &[u8],
        follow: bool,
        set: &SetAttr,
    ) -> FsResult<Attr> {
        let loc = self.resolve(cwd, path, follow)?;
        self.setattr_at(loc, set)
    }

    /// Changes attributes of a node already found (fchmod, ftruncate).
    pub fn setattr_at(&mut self, loc: Loc, set: &SetAttr) -> FsResult<Attr> {
        if set.size.is_some() {
            match self.getattr(loc)?.kind {
                FileKind::File => {}
                FileKind::Dir => return Err(Errno::EISDIR),
                _ => return Err(Errno::EINVAL),
            }
        }
        let mut set = set.clone();
        set.perm = set.perm.map(|p| p & 0o7777);
        self.writable_fs(loc)?.setattr(loc.ino, &set)
    }

    /// A directory's entries (`.` and `..` included).
    pub fn readdir(&mut self, cwd: Loc, path: &[u8]) -> FsResult<Vec<DirEntry>> {
        let loc = self.resolve(cwd, path, true)?;
        self.readdir_at(loc)
    }

    pub fn readdir_at(&mut self, loc: Loc) -> FsResult<Vec<DirEntry>> {
        if self.getattr(loc)?.kind != FileKind::Dir {
            return Err(Errno::ENOTDIR);
        }
        self.fs(loc)?.readdir(loc.ino)
    }

    /// statfs of the filesystem holding `path`.
    pub fn statfs(&mut self, cwd: Loc, path: &[u8]) -> FsResult<StatFs> {
        let loc = self.resolve(cwd, path, true)?;
        self.fs(loc)?.statfs()
    }

    /// Mounts `fs` on directory `path`.
    pub fn mount(
        &mut self,
        cwd: Loc,
        path: &[u8],
        fs: Box<dyn FileSystem>,
        source: &str,
    ) -> FsResult<()> {
        let point = self.resolve(cwd, path, true)?;
        if self.getattr(point)?.kind != FileKind::Dir {
            return Err(Errno::ENOTDIR);
        }
        let shown = self.path_of(point)?;
        let m = Mount {
            fs,
            source: source.to_string(),
            point: Some(point),
            path: String::from_utf8_lossy(&shown).into_owned(),
            open_files: 0,
        };
        match self.mounts.iter().position(Option::is_none) {
            Some(i) => self.mounts[i] = Some(m),
            None => self.mounts.push(Some(m)),
        }
        Ok(())
    }

    /// Unmounts the filesystem mounted at `path`, writing it back first.
    pub fn umount(&mut self, cwd: Loc, path: &[u8]) -> FsResult<()> {
        let loc = self.resolve(cwd, path, true)?;
        let m = self.mount_rooted_at(loc).ok_or(Errno::EINVAL)?;
        if m == 0 {
            return Err(Errno::EBUSY);
        }
        let busy = self.mount_ref(m)?.open_files > 0
            || self
                .mounts
                .iter()
                .flatten()
                .any(|x| x.point.is_some_and(|p| p.mount == m));
        if busy {
            return Err(Errno::EBUSY);
        }
        self.mount_mut(m)?.fs.unmount()?;
        self.mounts[m] = None;
        Ok(())
    }

    /// The mounted filesystems, in mount order.
    pub fn mounts(&self) -> Vec<MountInfo> {
        self.mounts
            .iter()
            .flatten()
            .map(|m| MountInfo {
                source: m.source.clone(),
                path: m.path.clone(),
                fs_type: m.fs.fs_type(),
                read_only: m.fs.read_only(),
            })
            .collect()
    }

    /// Writes every filesystem back (sync).
    pub fn sync_all(&mut self) -> FsResult<()> {
        let mut result = Ok(());
        for m in self.mounts.iter_mut().flatten() {
            if let Err(e) = m.fs.sync() {
                result = Err(e);
            }
        }
        result
    }

    /// Writes back and marks clean every filesystem, innermost first (halt, reboot).
    pub fn unmount_all(&mut self) -> FsResult<()> {
        let mut result = Ok(());
        for m in self.mounts.iter_mut().rev().flatten() {
            if let Err(e) = m.fs.unmount() {
                result = Err(e);
            }
        }
        result
    }

    /// The absolute path of directory `loc` (getcwd).
    pub fn path_of(&mut self, loc: Loc) -> FsResult<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = Vec::new();
        let mut cur = loc;
        for _ in 0..PATH_MAX {
            let up = self.parent(cur)?;
            if up == cur {
                break;
            }
            // The name of `cur` in `up` (a mount root is named by its mount point).
            let mut target = cur;
            while let Some(m) = self.mount_rooted_at(target) {
                match self.mount_ref(m)?.point {
                    Some(p) => target = p,
                    None => break,
                }
            }
            let entries = self.fs(up)?.readdir(up.ino)?;
            let name = entries
                .into_iter()
                .find(|e| e.ino == target.ino && e.name != b"." && e.name != b"..")
                .ok_or(Errno::ENOENT)?
                .name;
            names.push(name);
            cur = up;
        }
        let mut out = Vec::new();
        for n in names.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(n);
        }
        if out.is_empty() {
            out.push(b'/');
        }
        Ok(out)
    }
}
