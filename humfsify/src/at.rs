//! File operations by descriptor, for a root-run program on a tree another user can
//! change while it runs.
//!
//! Every directory is opened from its parent's descriptor with O_NOFOLLOW|O_DIRECTORY,
//! so a symlink anywhere in a path stops the walk instead of leading out of the tree;
//! every node is changed through a descriptor of that very node (O_PATH|O_NOFOLLOW),
//! after checking that it is the (device, inode) seen when the tree was read. Nothing
//! is ever looked up again by a path that someone else can change.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::dir::Dir;
use nix::fcntl::{openat, AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::{fchmod, fchmodat, fstat, fstatat, FchmodatFlags, FileStat, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Uid};

/// What identifies a node: hard links share it, a swapped-in node does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Id {
    pub dev: u64,
    pub ino: u64,
}

impl Id {
    pub fn of(st: &FileStat) -> Id {
        Id {
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }
}

/// The file-type bits of a mode.
pub fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

pub fn is_dir(st: &FileStat) -> bool {
    kind(st) == SFlag::S_IFDIR
}

pub fn is_symlink(st: &FileStat) -> bool {
    kind(st) == SFlag::S_IFLNK
}

fn io_err(e: nix::Error) -> io::Error {
    io::Error::from(e)
}

/// Opens the directory `path` (the tree's root, chosen by the caller: symlinks in it
/// are followed).
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    openat(
        AT_FDCWD,
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err)
}

/// Opens the directory `name` in `parent`; a symlink (or anything but a directory)
/// fails with ELOOP or ENOTDIR.
pub fn open_dir(parent: impl AsFd, name: &OsStr) -> io::Result<OwnedFd> {
    openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err)
}

/// A descriptor of the node `name` in `parent` itself (a symlink is not followed),
/// good for fstat, fchownat and [`chmod`] but not for reading.
pub fn open_node(parent: impl AsFd, name: &OsStr) -> io::Result<OwnedFd> {
    openat(
        parent,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err)
}

/// Reads the regular file `name` in `parent`: not through a symlink, and never
/// opening a fifo or device for reading (the node is looked at through an O_PATH
/// descriptor first, then reopened through /proc/self/fd, which is that very inode).
pub fn read_file(parent: impl AsFd, name: &OsStr) -> io::Result<(Vec<u8>, FileStat)> {
    use std::io::Read;
    let node = open_node(parent, name)?;
    let st = stat(&node)?;
    if kind(&st) != SFlag::S_IFREG {
        return Err(io::Error::other("not a regular file"));
    }
    let link = format!("/proc/self/fd/{}", node.as_fd().as_raw_fd());
    let fd = openat(
        AT_FDCWD,
        link.as_str(),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err)?;
    let st = check_same(&fd, Id::of(&st))?;
    let mut bytes = Vec::new();
    std::fs::File::from(fd).read_to_end(&mut bytes)?;
    Ok((bytes, st))
}

pub fn stat(fd: impl AsFd) -> io::Result<FileStat> {
    fstat(fd).map_err(io_err)
}

/// The names in a directory (without . and ..), sorted.
pub fn list(dir: impl AsFd) -> io::Result<Vec<OsString>> {
    let d = Dir::openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err)?;
    let mut names = Vec::new();
    for e in d {
        let e = e.map_err(io_err)?;
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        names.push(OsStr::from_bytes(name).to_owned());
    }
    names.sort();
    Ok(names)
}

/// Fails unless `fd` is the node `want` (it was swapped since the tree was read).
pub fn check_same(fd: impl AsFd, want: Id) -> io::Result<FileStat> {
    let st = stat(fd)?;
    if Id::of(&st) != want {
        return Err(io::Error::other(
            "replaced while humfsify ran (not the node it read); left alone",
        ));
    }
    Ok(st)
}

/// Changes the owner of the node `fd` refers to (a symlink itself, not its target).
pub fn chown(fd: impl AsFd, uid: u32, gid: u32) -> io::Result<()> {
    fchownat(
        fd,
        "",
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_EMPTY_PATH,
    )
    .map_err(io_err)
}

/// Changes the mode of the node `fd` refers to, which must not be a symlink. A
/// directory descriptor gets fchmod; an O_PATH descriptor (which fchmod refuses) is
/// changed through /proc/self/fd/N, a link to that very inode, so nothing is looked
/// up by name.
pub fn chmod(fd: impl AsFd, mode: u32) -> io::Result<()> {
    let mode = Mode::from_bits_truncate(mode & 0o7777);
    match fchmod(fd.as_fd(), mode) {
        Err(nix::Error::EBADF) => {
            let link = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
            fchmodat(AT_FDCWD, link.as_str(), mode, FchmodatFlags::FollowSymlink).map_err(|e| {
                if e == nix::Error::ENOENT {
                    io::Error::other("chmod by descriptor needs /proc mounted")
                } else {
                    io_err(e)
                }
            })
        }
        r => r.map_err(io_err),
    }
}

/// Removes the tree `name` in `parent` (a directory and everything in it, or one
/// node), by descriptor: a symlink is removed, never followed.
pub fn remove_tree(parent: impl AsFd, name: &OsStr) -> io::Result<()> {
    use nix::unistd::{unlinkat, UnlinkatFlags};
    let parent = parent.as_fd();
    match open_dir(parent, name) {
        Ok(dir) => {
            for child in list(&dir)? {
                remove_tree(&dir, &child)?;
            }
            unlinkat(parent, name, UnlinkatFlags::RemoveDir).map_err(io_err)
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)) => {
            unlinkat(parent, name, UnlinkatFlags::NoRemoveDir).map_err(io_err)
        }
        Err(e) => Err(e),
    }
}

/// The names of a relative path, refusing `..`, `.` and absolute parts.
pub fn names(rel: &Path) -> io::Result<Vec<&OsStr>> {
    rel.components()
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(io::Error::other("not a plain relative path")),
        })
        .collect()
}

/// The open directories along the path last asked for, so that a walk in tree order
/// opens each directory once. Each is opened from its parent with O_NOFOLLOW.
pub struct DirChain {
    root: OwnedFd,
    /// (path relative to the root, its descriptor), outermost first.
    open: Vec<(PathBuf, OwnedFd)>,
}

impl DirChain {
    pub fn new(root: OwnedFd) -> DirChain {
        DirChain {
            root,
            open: Vec::new(),
        }
    }

    pub fn root(&self) -> &OwnedFd {
        &self.root
    }

    /// The directory `rel` (relative to the root; empty for the root itself).
    pub fn dir(&mut self, rel: &Path) -> io::Result<&OwnedFd> {
        while let Some((p, _)) = self.open.last() {
            if rel.starts_with(p) {
                break;
            }
            self.open.pop();
        }
        let have = self.open.last().map_or(0, |(p, _)| p.components().count());
        let parts = names(rel)?;
        for i in have..parts.len() {
            let parent = match self.open.last() {
                Some((_, fd)) => fd.as_fd(),
                None => self.root.as_fd(),
            };
            let fd = open_dir(parent, parts[i])?;
            let path: PathBuf = parts[..=i].iter().collect();
            self.open.push((path, fd));
        }
        Ok(match self.open.last() {
            Some((_, fd)) => fd,
            None => &self.root,
        })
    }

    /// The parent directory of `rel` and `rel`'s last name.
    pub fn parent_of<'a>(&mut self, rel: &'a Path) -> io::Result<(&OwnedFd, &'a OsStr)> {
        let name = rel
            .file_name()
            .ok_or_else(|| io::Error::other("no file name"))?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        Ok((self.dir(parent)?, name))
    }
}

/// A directory (`name` in `top`) and the nodes under it, reached by descriptor.
pub struct Tree<'a> {
    top: &'a OwnedFd,
    name: &'a OsStr,
    chain: DirChain,
}

impl<'a> Tree<'a> {
    pub fn new(top: &'a OwnedFd, name: &'a OsStr) -> io::Result<Tree<'a>> {
        let root = open_dir(top, name)?;
        Ok(Tree {
            top,
            name,
            chain: DirChain::new(root),
        })
    }

    /// The tree's directory itself.
    pub fn root(&self) -> &OwnedFd {
        self.chain.root()
    }

    /// The parent directory of the node `rel` (not empty) and its last name.
    pub fn parent_of<'r>(&mut self, rel: &'r Path) -> io::Result<(&OwnedFd, &'r OsStr)> {
        self.chain.parent_of(rel)
    }

    /// The directory `rel`, opened afresh (without disturbing the cached chain).
    pub fn dir_fresh(&self, rel: &Path) -> io::Result<OwnedFd> {
        let mut fd = open_dir(self.root(), OsStr::new("."))?;
        for name in names(rel)? {
            fd = open_dir(&fd, name)?;
        }
        Ok(fd)
    }

    /// lstat of the node `rel` (the root itself when empty).
    pub fn lstat(&mut self, rel: &Path) -> io::Result<FileStat> {
        if rel.as_os_str().is_empty() {
            return stat(self.root());
        }
        let (parent, name) = self.parent_of(rel)?;
        fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(io_err)
    }

    /// A descriptor of the node `rel` (the root itself when empty): a directory opened
    /// as one (so fchmod works), anything else, symlinks included, as O_PATH.
    pub fn open(&mut self, rel: &Path) -> io::Result<OwnedFd> {
        if rel.as_os_str().is_empty() {
            return open_dir(self.top, self.name);
        }
        let (parent, name) = self.chain.parent_of(rel)?;
        match open_dir(parent.as_fd(), name) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)) => {
                open_node(parent, name)
            }
            r => r,
        }
    }
}

/// Gives the node `fd` the owner and, unless it is a symlink, the mode.
pub fn set_owner_mode(fd: &OwnedFd, uid: u32, gid: u32, mode: Option<u32>) -> io::Result<()> {
    chown(fd, uid, gid)?;
    if let Some(mode) = mode {
        if !is_symlink(&stat(fd)?) {
            chmod(fd, mode)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_symlink_anywhere_in_the_path_stops_the_walk() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("a/b")).unwrap();
        fs::create_dir_all(outside.path().join("b")).unwrap();
        symlink(outside.path(), d.path().join("evil")).unwrap();
        let mut chain = DirChain::new(open_root(d.path()).unwrap());
        assert!(chain.dir(Path::new("a/b")).is_ok());
        let e = chain.dir(Path::new("evil/b")).unwrap_err();
        assert!(
            matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)),
            "{e}"
        );
        assert!(chain.parent_of(Path::new("evil/b/x")).is_err());
        assert!(chain.dir(Path::new("a/../evil")).is_err());
    }

    #[test]
    fn chmod_and_identity_through_descriptors() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("f"), b"x").unwrap();
        fs::write(d.path().join("g"), b"y").unwrap();
        symlink("f", d.path().join("link")).unwrap();
        let root = open_root(d.path()).unwrap();
        let f = open_node(&root, OsStr::new("f")).unwrap();
        let id = Id::of(&stat(&f).unwrap());
        chmod(&f, 0o4711).unwrap();
        assert_eq!(stat(&f).unwrap().st_mode & 0o7777, 0o4711);
        let g = open_node(&root, OsStr::new("g")).unwrap();
        assert!(check_same(&g, id).is_err());
        let l = open_node(&root, OsStr::new("link")).unwrap();
        assert!(is_symlink(&stat(&l).unwrap()));
        assert!(read_file(&root, OsStr::new("link")).is_err());
        assert_eq!(list(&root).unwrap(), vec!["f", "g", "link"]);
    }
}
