//! What filesystems hand the VFS: inode numbers, attributes, directory entries, the
//! attributes to change, and the `FileSystem` trait every filesystem implements. The
//! VFS checks names and the rules that hold for every filesystem (kinds, emptiness,
//! cross-mount) before it calls one, so an implementation only does the mechanics.

use super::errno::FsResult;

/// An inode number inside one filesystem.
pub type Ino = u64;

/// The kind of an inode (the type bits of its mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Char,
    Block,
    Fifo,
    Socket,
}

impl FileKind {
    /// The S_IFMT bits.
    pub fn mode_bits(self) -> u32 {
        match self {
            FileKind::Fifo => 0o010000,
            FileKind::Char => 0o020000,
            FileKind::Dir => 0o040000,
            FileKind::Block => 0o060000,
            FileKind::File => 0o100000,
            FileKind::Symlink => 0o120000,
            FileKind::Socket => 0o140000,
        }
    }

    /// The kind from a full mode; None for an invalid type.
    pub fn from_mode(mode: u32) -> Option<FileKind> {
        Some(match mode & 0o170000 {
            0o010000 => FileKind::Fifo,
            0o020000 => FileKind::Char,
            0o040000 => FileKind::Dir,
            0o060000 => FileKind::Block,
            0o100000 => FileKind::File,
            0o120000 => FileKind::Symlink,
            0o140000 => FileKind::Socket,
            _ => return None,
        })
    }

    /// The letter `ls -l` shows.
    pub fn letter(self) -> char {
        match self {
            FileKind::File => '-',
            FileKind::Dir => 'd',
            FileKind::Symlink => 'l',
            FileKind::Char => 'c',
            FileKind::Block => 'b',
            FileKind::Fifo => 'p',
            FileKind::Socket => 's',
        }
    }
}

/// An inode's attributes (what stat shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: FileKind,
    /// Permission bits (07777).
    pub perm: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// 512-byte sectors allocated.
    pub blocks: u64,
    pub atime: i64,
    pub mtime: i64,
    pub ctime: i64,
    /// Device number (major, minor) of a device inode.
    pub rdev: (u32, u32),
    /// Preferred I/O size.
    pub blksize: u32,
}

impl Attr {
    /// A new, empty inode's attributes: one link, no data, times at the epoch, 4 KiB
    /// I/O size.
    pub fn new(ino: Ino, kind: FileKind, perm: u32, uid: u32, gid: u32) -> Attr {
        Attr {
            ino,
            kind,
            perm,
            nlink: 1,
            uid,
            gid,
            size: 0,
            blocks: 0,
            atime: 0,
            mtime: 0,
            ctime: 0,
            rdev: (0, 0),
            blksize: 4096,
        }
    }

    /// Type and permission bits together.
    pub fn mode(&self) -> u32 {
        self.kind.mode_bits() | self.perm
    }
}

/// Attributes to change; None leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub perm: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<i64>,
    pub mtime: Option<i64>,
}

/// A new inode to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNode {
    pub kind: FileKind,
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: (u32, u32),
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: Ino,
    pub kind: FileKind,
    pub name: Vec<u8>,
}

/// What statfs reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatFs {
    pub fs_type: u64,
    pub bsize: u32,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub namelen: u32,
}

/// A filesystem. Names are single components (no `/`, not `.` or `..`); the VFS has
/// checked that they exist or not as the operation needs, that `rmdir`'s and
/// `rename`'s replaced directories are empty and that kinds match.
pub trait FileSystem {
    /// The type name (`ext2`, `tmpfs`, ...).
    fn fs_type(&self) -> &'static str;
    fn root(&self) -> Ino;
    fn read_only(&self) -> bool;
    fn getattr(&mut self, ino: Ino) -> FsResult<Attr>;
    fn setattr(&mut self, ino: Ino, set: &SetAttr) -> FsResult<Attr>;
    fn lookup(&mut self, dir: Ino, name: &[u8]) -> FsResult<Ino>;
    /// Makes a file, directory, device, fifo or socket.
    fn mknod(&mut self, dir: Ino, name: &[u8], node: &NewNode) -> FsResult<Ino>;
    fn symlink(
        &mut self,
        dir: Ino,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> FsResult<Ino>;
    fn link(&mut self, ino: Ino, dir: Ino, name: &[u8]) -> FsResult<()>;
    /// Removes a non-directory's name.
    fn unlink(&mut self, dir: Ino, name: &[u8]) -> FsResult<()>;
    /// Removes an empty directory.
    fn rmdir(&mut self, dir: Ino, name: &[u8]) -> FsResult<()>;
    /// Moves a name, replacing the target if it exists (checked compatible and empty).
    fn rename(&mut self, odir: Ino, oname: &[u8], ndir: Ino, nname: &[u8]) -> FsResult<()>;
    fn readlink(&mut self, ino: Ino) -> FsResult<Vec<u8>>;
    fn read(&mut self, ino: Ino, offset: u64, buf: &mut [u8]) -> FsResult<usize>;
    fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> FsResult<usize>;
    /// Every entry, `.` and `..` first.
    fn readdir(&mut self, dir: Ino) -> FsResult<Vec<DirEntry>>;
    fn statfs(&mut self) -> FsResult<StatFs>;
    /// Writes everything cached back to the device.
    fn sync(&mut self) -> FsResult<()>;
    /// An open file now refers to `ino`: if its last link goes, the inode stays until
    /// `release` (as an unlinked open file does in Linux).
    fn hold(&mut self, _ino: Ino) {}
    /// The last open file on `ino` is closed: an inode without links is freed now.
    fn release(&mut self, _ino: Ino) -> FsResult<()> {
        Ok(())
    }
    /// Writes back and marks the filesystem clean (umount, halt).
    fn unmount(&mut self) -> FsResult<()> {
        self.sync()
    }
}

/// Seconds since the epoch, for inode times.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
