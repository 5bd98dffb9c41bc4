//! The ext2 driver: `uml_proto::ext2`'s on-disk structures over a bounded write-back
//! block cache, with allocation (`alloc`), file data (`file`) and directories (`dir`).
//! Revision 0 and 1, 1/2/4 KiB blocks, 128- and 256-byte inodes; ext3 without a
//! pending recovery is written as ext2 (its journal untouched); ext4 is read-only.
//! Mounting read-write clears the superblock's clean flag and counts the mount; sync
//! writes the descriptors, superblock and cached blocks back; unmount sets it clean.

mod alloc;
pub mod cache;
mod dir;
mod file;

use std::collections::{HashMap, HashSet};
use std::fmt;

use uml_proto::ext2::{
    Access, BlockDevice, Ext2Error, FileType, Image, Inode, InodeKind, Superblock, EXTENTS_FL,
    FAST_SYMLINK_MAX, HUGE_FILE_FL, ROOT_INO, STATE_VALID, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE,
};

use super::errno::{Errno, FsResult};
use super::node::{now, Attr, DirEntry, FileKind, FileSystem, Ino, NewNode, SetAttr, StatFs};
pub use cache::{BlockCache, CacheBudget};

/// statfs's f_type for ext2.
pub const EXT2_SUPER_MAGIC: u64 = 0xEF53;
/// Most links an inode may have (ext2's EXT2_LINK_MAX).
pub const LINK_MAX: u16 = 32000;

/// Why a mount failed, in the words the kernel logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountError {
    /// The image is not a filesystem we can mount.
    Format(Ext2Error),
    /// A read-write mount of a filesystem we may only read.
    ReadOnly(Access),
    /// The device failed while writing the superblock.
    Io(std::io::ErrorKind),
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountError::Format(e) => write!(f, "error: {e}"),
            MountError::ReadOnly(Access::ReadOnly {
                ro_compat,
                incompat,
            }) => write!(
                f,
                "error: couldn't mount RDWR because of unsupported optional features \
                 (ro_compat {ro_compat:x}, incompat {incompat:x})"
            ),
            MountError::ReadOnly(Access::ReadWrite) => write!(f, "error: read-only"),
            MountError::Io(k) => write!(f, "error: writing the superblock: {k}"),
        }
    }
}

impl std::error::Error for MountError {}

/// A mounted ext2 filesystem.
pub struct Ext2Fs {
    img: Image<BlockCache>,
    read_only: bool,
    /// s_state as found at mount, restored at unmount.
    mount_state: u16,
    generation: u32,
    /// Inodes open files refer to, and those of them with no links left (freed when
    /// the last file closes, or at unmount).
    held: HashSet<u32>,
    orphans: HashSet<u32>,
    /// Per directory: the block its last new entry went in, and that entry's size
    /// (earlier blocks had no room for one that size; forgotten when an entry goes).
    dir_room: HashMap<u32, (u64, usize)>,
}

fn kind_of(k: InodeKind) -> FileKind {
    match k {
        InodeKind::Fifo => FileKind::Fifo,
        InodeKind::Char => FileKind::Char,
        InodeKind::Dir => FileKind::Dir,
        InodeKind::Block => FileKind::Block,
        InodeKind::Symlink => FileKind::Symlink,
        InodeKind::Socket => FileKind::Socket,
        InodeKind::File | InodeKind::Unknown => FileKind::File,
    }
}

fn ft_of(k: FileKind) -> FileType {
    match k {
        FileKind::File => FileType::File,
        FileKind::Dir => FileType::Dir,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Char => FileType::Char,
        FileKind::Block => FileType::Block,
        FileKind::Fifo => FileType::Fifo,
        FileKind::Socket => FileType::Socket,
    }
}

impl Ext2Fs {
    /// Mounts the filesystem on `dev` with a cache of `cache_bytes`. `read_only` asks
    /// for a read-only mount; a filesystem with features we cannot write refuses a
    /// read-write one (the caller may retry read-only, as Linux's mount does).
    pub fn mount(
        dev: Box<dyn BlockDevice>,
        read_only: bool,
        cache_bytes: usize,
    ) -> Result<Ext2Fs, MountError> {
        Self::mount_with(dev, read_only, CacheBudget::new(cache_bytes))
    }

    /// Mounts as [`Ext2Fs::mount`] with a block cache drawing on `budget`, which other
    /// mounts may share (the machine's whole cache allowance).
    pub fn mount_with(
        mut dev: Box<dyn BlockDevice>,
        read_only: bool,
        budget: CacheBudget,
    ) -> Result<Ext2Fs, MountError> {
        let mut raw = vec![0u8; SUPERBLOCK_SIZE];
        dev.read_at(SUPERBLOCK_OFFSET, &mut raw)
            .map_err(|e| MountError::Format(Ext2Error::Io(SUPERBLOCK_OFFSET, e.kind())))?;
        let sb = Superblock::parse(&raw).map_err(MountError::Format)?;
        let cache = BlockCache::with_budget(dev, sb.block_size() as usize, budget);
        let img = Image::open(cache).map_err(MountError::Format)?;
        if !read_only && img.access != Access::ReadWrite {
            return Err(MountError::ReadOnly(img.access));
        }
        let mut fs = Ext2Fs {
            mount_state: img.sb.state,
            img,
            read_only,
            generation: now() as u32,
            held: HashSet::new(),
            orphans: HashSet::new(),
            dir_room: HashMap::new(),
        };
        if !read_only {
            fs.img.sb.state &= !STATE_VALID;
            fs.img.sb.mnt_count = fs.img.sb.mnt_count.wrapping_add(1);
            fs.img.sb.mtime = Self::now32();
            fs.write_super()
                .map_err(|_| MountError::Io(std::io::ErrorKind::Other))?;
            // Written through to the image, as Linux's ext2 does at mount, but not
            // synced: nothing else has changed yet (one fdatasync less at boot).
            fs.img
                .dev
                .write_dirty()
                .map_err(|e| MountError::Io(e.kind()))?;
        }
        Ok(fs)
    }

    /// Whether this mount is read-only.
    pub fn read_only_mount(&self) -> bool {
        self.read_only
    }

    /// The superblock as it is now.
    pub fn superblock(&self) -> &Superblock {
        &self.img.sb
    }

    /// Blocks held in the cache now.
    pub fn cached_blocks(&self) -> usize {
        self.img.dev.len()
    }

    fn eio(_: Ext2Error) -> Errno {
        Errno::EIO
    }

    fn now32() -> u32 {
        now() as u32
    }

    fn ino32(ino: Ino) -> FsResult<u32> {
        u32::try_from(ino).map_err(|_| Errno::ENOENT)
    }

    fn inode(&mut self, ino: u32) -> FsResult<Inode> {
        self.img.read_inode(ino).map_err(Self::eio)
    }

    fn put_inode(&mut self, ino: u32, inode: &Inode) -> FsResult<()> {
        self.img.write_inode(ino, inode).map_err(Self::eio)
    }

    fn cache_write(&mut self, b: u64, off: usize, data: &[u8]) -> FsResult<()> {
        self.img.dev.write(b, off, data).map_err(|_| Errno::EIO)
    }

    fn check_writable(&self) -> FsResult<()> {
        if self.read_only {
            return Err(Errno::EROFS);
        }
        Ok(())
    }

    /// Whether the inode's i_block is a block map we may free (not a device number,
    /// a fast symlink or an extent tree).
    fn has_block_map(&self, inode: &Inode) -> bool {
        match inode.kind() {
            InodeKind::File | InodeKind::Dir => inode.flags & EXTENTS_FL == 0,
            InodeKind::Symlink => !inode.is_fast_symlink(self.img.block_size()),
            _ => false,
        }
    }

    /// Frees an inode whose last link is gone: its blocks, its xattr block, its bit.
    fn delete_inode(&mut self, ino: u32, mut inode: Inode) -> FsResult<()> {
        if self.has_block_map(&inode) {
            self.free_blocks_from(&mut inode, 0)?;
        }
        if inode.file_acl != 0 {
            self.release_xattr_block(inode.file_acl)?;
            inode.file_acl = 0;
        }
        let dir = inode.kind() == InodeKind::Dir;
        self.dir_room.remove(&ino);
        inode.links_count = 0;
        inode.size = 0;
        inode.blocks = 0;
        inode.dtime = Self::now32();
        self.put_inode(ino, &inode)?;
        self.free_inode(ino, dir)
    }

    /// Frees an inode without links, or keeps it (links 0) while a file is open on it.
    fn delete_or_orphan(&mut self, ino: u32, mut inode: Inode) -> FsResult<()> {
        if self.held.contains(&ino) {
            inode.links_count = 0;
            inode.ctime = Self::now32();
            self.orphans.insert(ino);
            return self.put_inode(ino, &inode);
        }
        self.delete_inode(ino, inode)
    }

    /// Drops one reference to an extended-attribute block, freeing it at zero.
    fn release_xattr_block(&mut self, b: u64) -> FsResult<()> {
        let mut refs = [0u8; 4];
        self.img.dev.read(b, 4, &mut refs).map_err(|_| Errno::EIO)?;
        let n = u32::from_le_bytes(refs);
        if n <= 1 {
            self.free_block(b)
        } else {
            self.cache_write(b, 4, &(n - 1).to_le_bytes())
        }
    }

    fn new_inode(&mut self, ino: u32, kind: FileKind, perm: u32, uid: u32, gid: u32) -> Inode {
        let mut i = Inode::zeroed(usize::from(self.img.sb.inode_size));
        if i.raw.len() > 128 {
            i.extra_isize = 32;
        }
        i.mode = (kind.mode_bits() | (perm & 0o7777)) as u16;
        i.uid = uid;
        i.gid = gid;
        let t = Self::now32();
        i.atime = t;
        i.mtime = t;
        i.ctime = t;
        i.links_count = 1;
        self.generation = self.generation.wrapping_add(1);
        i.generation = self.generation;
        let _ = ino;
        i
    }

    fn write_super(&mut self) -> FsResult<()> {
        self.img.sb.wtime = Self::now32();
        let bytes = self.img.sb.to_bytes();
        self.img
            .dev
            .write_at(SUPERBLOCK_OFFSET, &bytes)
            .map_err(|_| Errno::EIO)
    }

    fn write_groups(&mut self) -> FsResult<()> {
        let bs = self.img.block_size() as usize;
        let len = self.img.sb.desc_len();
        let per = bs / len;
        let n = self.img.groups.len();
        for first in (0..n).step_by(per) {
            let b = self.img.sb.desc_block((first / per) as u32);
            let mut raw = vec![0u8; bs];
            self.img.read_block(b, &mut raw).map_err(Self::eio)?;
            for g in first..(first + per).min(n) {
                self.img.groups[g].emit(&mut raw[(g - first) * len..]);
            }
            self.cache_write(b, 0, &raw)?;
        }
        Ok(())
    }

    /// Creates an inode for a new child of `dir` (named by `name_it`).
    fn create(
        &mut self,
        dir: u32,
        kind: FileKind,
        perm: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<(u32, Inode)> {
        self.check_writable()?;
        if kind == FileKind::Dir && self.inode(dir)?.links_count >= LINK_MAX {
            return Err(Errno::EMLINK);
        }
        let ino = self.alloc_inode(dir, kind == FileKind::Dir)?;
        self.dir_room.remove(&ino);
        let inode = self.new_inode(ino, kind, perm, uid, gid);
        self.put_inode(ino, &inode)?;
        Ok((ino, inode))
    }

    fn name_it(
        &mut self,
        dir: u32,
        name: &[u8],
        ino: u32,
        inode: Inode,
        kind: FileKind,
    ) -> FsResult<Ino> {
        if let Err(e) = self.add_entry(dir, name, ino, ft_of(kind)) {
            let _ = self.delete_inode(ino, inode);
            return Err(e);
        }
        if kind == FileKind::Dir {
            let mut parent = self.inode(dir)?;
            parent.links_count += 1;
            self.put_inode(dir, &parent)?;
        }
        Ok(Ino::from(ino))
    }

    fn drop_link(&mut self, ino: u32) -> FsResult<()> {
        let mut inode = self.inode(ino)?;
        inode.links_count = inode.links_count.saturating_sub(1);
        inode.ctime = Self::now32();
        let dead =
            inode.links_count == 0 || (inode.kind() == InodeKind::Dir && inode.links_count <= 1);
        if dead {
            self.delete_or_orphan(ino, inode)
        } else {
            self.put_inode(ino, &inode)
        }
    }
}

impl FileSystem for Ext2Fs {
    fn fs_type(&self) -> &'static str {
        "ext2"
    }

    fn root(&self) -> Ino {
        Ino::from(ROOT_INO)
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn getattr(&mut self, ino: Ino) -> FsResult<Attr> {
        let i = self.inode(Self::ino32(ino)?)?;
        let kind = kind_of(i.kind());
        let blocks = if i.flags & HUGE_FILE_FL != 0 {
            i.blocks * u64::from(self.img.block_size() / 512)
        } else {
            i.blocks
        };
        Ok(Attr {
            ino,
            kind,
            perm: u32::from(i.mode) & 0o7777,
            nlink: u32::from(i.links_count),
            uid: i.uid,
            gid: i.gid,
            size: i.size,
            blocks,
            atime: i64::from(i.atime),
            mtime: i64::from(i.mtime),
            ctime: i64::from(i.ctime),
            rdev: if matches!(kind, FileKind::Char | FileKind::Block) {
                i.device()
            } else {
                (0, 0)
            },
            blksize: self.img.block_size(),
        })
    }

    fn setattr(&mut self, ino: Ino, set: &SetAttr) -> FsResult<Attr> {
        self.check_writable()?;
        let n = Self::ino32(ino)?;
        let mut i = self.inode(n)?;
        if let Some(size) = set.size {
            if i.kind() != InodeKind::File || i.flags & EXTENTS_FL != 0 {
                return Err(Errno::EINVAL);
            }
            self.set_size(n, &mut i, size)?;
            i.mtime = Self::now32();
        }
        if let Some(p) = set.perm {
            i.mode = (i.mode & 0o170000) | (p & 0o7777) as u16;
        }
        if let Some(u) = set.uid {
            i.uid = u;
        }
        if let Some(g) = set.gid {
            i.gid = g;
        }
        if let Some(t) = set.atime {
            i.atime = t as u32;
        }
        if let Some(t) = set.mtime {
            i.mtime = t as u32;
        }
        i.ctime = Self::now32();
        self.put_inode(n, &i)?;
        self.getattr(ino)
    }

    fn lookup(&mut self, dir: Ino, name: &[u8]) -> FsResult<Ino> {
        let d = Self::ino32(dir)?;
        match self.find_entry(d, name)? {
            Some(f) => Ok(Ino::from(f.entry.inode)),
            None => Err(Errno::ENOENT),
        }
    }

    fn mknod(&mut self, dir: Ino, name: &[u8], node: &NewNode) -> FsResult<Ino> {
        let d = Self::ino32(dir)?;
        if node.kind == FileKind::Symlink {
            return Err(Errno::EINVAL);
        }
        let (ino, mut inode) = self.create(d, node.kind, node.perm, node.uid, node.gid)?;
        match node.kind {
            FileKind::Dir => {
                let b = match self.map_alloc(ino, &mut inode, 0) {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = self.delete_inode(ino, inode);
                        return Err(e);
                    }
                };
                let raw = self.empty_dir_block(ino, d);
                self.cache_write(b, 0, &raw)?;
                inode.size = u64::from(self.img.block_size());
                inode.links_count = 2;
            }
            FileKind::Char | FileKind::Block => inode.set_device(node.rdev.0, node.rdev.1),
            _ => {}
        }
        self.put_inode(ino, &inode)?;
        self.name_it(d, name, ino, inode, node.kind)
    }

    fn symlink(
        &mut self,
        dir: Ino,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> FsResult<Ino> {
        let d = Self::ino32(dir)?;
        if target.len() >= self.img.block_size() as usize {
            return Err(Errno::ENAMETOOLONG);
        }
        let (ino, mut inode) = self.create(d, FileKind::Symlink, 0o777, uid, gid)?;
        if target.len() < FAST_SYMLINK_MAX {
            let mut bytes = [0u8; 60];
            bytes[..target.len()].copy_from_slice(target);
            inode.set_block_bytes(&bytes);
        } else {
            match self.map_alloc(ino, &mut inode, 0) {
                Ok(b) => self.cache_write(b, 0, target)?,
                Err(e) => {
                    let _ = self.delete_inode(ino, inode);
                    return Err(e);
                }
            }
        }
        inode.size = target.len() as u64;
        self.put_inode(ino, &inode)?;
        self.name_it(d, name, ino, inode, FileKind::Symlink)
    }

    fn link(&mut self, ino: Ino, dir: Ino, name: &[u8]) -> FsResult<()> {
        self.check_writable()?;
        let n = Self::ino32(ino)?;
        let mut inode = self.inode(n)?;
        if inode.links_count >= LINK_MAX {
            return Err(Errno::EMLINK);
        }
        self.add_entry(Self::ino32(dir)?, name, n, ft_of(kind_of(inode.kind())))?;
        inode.links_count += 1;
        inode.ctime = Self::now32();
        self.put_inode(n, &inode)
    }

    fn unlink(&mut self, dir: Ino, name: &[u8]) -> FsResult<()> {
        self.check_writable()?;
        let ino = self.remove_entry(Self::ino32(dir)?, name)?;
        self.drop_link(ino)
    }

    fn rmdir(&mut self, dir: Ino, name: &[u8]) -> FsResult<()> {
        self.check_writable()?;
        let d = Self::ino32(dir)?;
        let ino = self.remove_entry(d, name)?;
        let victim = self.inode(ino)?;
        self.delete_or_orphan(ino, victim)?;
        let mut parent = self.inode(d)?;
        parent.links_count = parent.links_count.saturating_sub(1);
        self.put_inode(d, &parent)
    }

    fn rename(&mut self, odir: Ino, oname: &[u8], ndir: Ino, nname: &[u8]) -> FsResult<()> {
        self.check_writable()?;
        let (od, nd) = (Self::ino32(odir)?, Self::ino32(ndir)?);
        let src = self
            .find_entry(od, oname)?
            .ok_or(Errno::ENOENT)?
            .entry
            .inode;
        let src_inode = self.inode(src)?;
        let kind = kind_of(src_inode.kind());
        let is_dir = kind == FileKind::Dir;
        if is_dir && od != nd && self.inode(nd)?.links_count >= LINK_MAX {
            return Err(Errno::EMLINK);
        }
        match self.find_entry(nd, nname)? {
            Some(f) => {
                let old = self.set_entry(nd, nname, src, ft_of(kind))?;
                let _ = f;
                if kind_of(self.inode(old)?.kind()) == FileKind::Dir {
                    let victim = self.inode(old)?;
                    self.delete_or_orphan(old, victim)?;
                    let mut p = self.inode(nd)?;
                    p.links_count = p.links_count.saturating_sub(1);
                    self.put_inode(nd, &p)?;
                } else {
                    self.drop_link(old)?;
                }
            }
            None => self.add_entry(nd, nname, src, ft_of(kind))?,
        }
        self.remove_entry(od, oname)?;
        if is_dir && od != nd {
            self.set_entry(src, b"..", nd, FileType::Dir)?;
            let mut o = self.inode(od)?;
            o.links_count = o.links_count.saturating_sub(1);
            self.put_inode(od, &o)?;
            let mut n = self.inode(nd)?;
            n.links_count += 1;
            self.put_inode(nd, &n)?;
        }
        let mut s = self.inode(src)?;
        s.ctime = Self::now32();
        self.put_inode(src, &s)
    }

    fn readlink(&mut self, ino: Ino) -> FsResult<Vec<u8>> {
        let n = Self::ino32(ino)?;
        let i = self.inode(n)?;
        if i.kind() != InodeKind::Symlink {
            return Err(Errno::EINVAL);
        }
        self.img.read_link(n, &i).map_err(Self::eio)
    }

    fn read(&mut self, ino: Ino, offset: u64, buf: &mut [u8]) -> FsResult<usize> {
        let n = Self::ino32(ino)?;
        let i = self.inode(n)?;
        self.img.read_data(n, &i, offset, buf).map_err(Self::eio)
    }

    fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> FsResult<usize> {
        self.check_writable()?;
        let n = Self::ino32(ino)?;
        if self.inode(n)?.flags & EXTENTS_FL != 0 {
            return Err(Errno::EROFS);
        }
        self.write_data(n, offset, data)
    }

    fn readdir(&mut self, dir: Ino) -> FsResult<Vec<DirEntry>> {
        let d = Self::ino32(dir)?;
        let inode = self.inode(d)?;
        let entries = self.img.read_dir(d, &inode).map_err(Self::eio)?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let kind = match e.file_type {
                FileType::Unknown => kind_of(self.inode(e.inode)?.kind()),
                FileType::File => FileKind::File,
                FileType::Dir => FileKind::Dir,
                FileType::Char => FileKind::Char,
                FileType::Block => FileKind::Block,
                FileType::Fifo => FileKind::Fifo,
                FileType::Socket => FileKind::Socket,
                FileType::Symlink => FileKind::Symlink,
            };
            out.push(DirEntry {
                ino: Ino::from(e.inode),
                kind,
                name: e.name,
            });
        }
        Ok(out)
    }

    fn statfs(&mut self) -> FsResult<StatFs> {
        let sb = &self.img.sb;
        Ok(StatFs {
            fs_type: EXT2_SUPER_MAGIC,
            bsize: sb.block_size(),
            blocks: sb.blocks_count,
            bfree: sb.free_blocks_count,
            bavail: sb.free_blocks_count.saturating_sub(sb.r_blocks_count),
            files: u64::from(sb.inodes_count),
            ffree: u64::from(sb.free_inodes_count),
            namelen: 255,
        })
    }

    fn sync(&mut self) -> FsResult<()> {
        if self.read_only {
            return Ok(());
        }
        self.write_groups()?;
        self.write_super()?;
        self.img.dev.flush().map_err(|_| Errno::EIO)
    }

    fn hold(&mut self, ino: Ino) {
        if let Ok(n) = u32::try_from(ino) {
            self.held.insert(n);
        }
    }

    fn release(&mut self, ino: Ino) -> FsResult<()> {
        let n = Self::ino32(ino)?;
        self.held.remove(&n);
        if self.orphans.remove(&n) {
            let inode = self.inode(n)?;
            self.delete_inode(n, inode)?;
        }
        Ok(())
    }

    fn unmount(&mut self) -> FsResult<()> {
        if self.read_only {
            return Ok(());
        }
        self.held.clear();
        let orphans: Vec<u32> = self.orphans.drain().collect();
        for n in orphans {
            let inode = self.inode(n)?;
            self.delete_inode(n, inode)?;
        }
        self.img.sb.state = self.mount_state;
        self.sync()
    }
}
