//! A whole ext2 filesystem read over a [`BlockDevice`]: the superblock and group
//! descriptors checked at open, then inodes, block maps (and extent trees), file data,
//! directories and symlinks on demand. Nothing is cached; writers build on these reads.

use byteorder::{ByteOrder, LittleEndian as LE};

use super::extent::MAX_DEPTH;
use super::{
    Access, BlockDevice, BlockPath, DirEntry, Ext2Error, Extent, ExtentHeader, ExtentIndex,
    GroupDesc, Inode, InodeKind, Superblock, EXTENTS_FL, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE,
};

/// An opened filesystem: its device, superblock, descriptors and what it allows.
#[derive(Debug)]
pub struct Image<D> {
    pub dev: D,
    pub sb: Superblock,
    pub groups: Vec<GroupDesc>,
    pub access: Access,
}

fn io(off: u64) -> impl Fn(std::io::Error) -> Ext2Error {
    move |e| Ext2Error::Io(off, e.kind())
}

impl<D: BlockDevice> Image<D> {
    /// Reads and checks the superblock and group descriptors; refuses what the feature
    /// rules refuse.
    pub fn open(mut dev: D) -> Result<Image<D>, Ext2Error> {
        let sb = Self::read_superblock(&mut dev)?;
        let access = sb.access()?;
        let size = dev.size().map_err(io(0))?;
        if sb.blocks_count.saturating_mul(u64::from(sb.block_size())) > size {
            return Err(Ext2Error::BadSuperblock(
                "block count exceeds size of device",
            ));
        }
        let groups = Self::read_groups(&mut dev, &sb)?;
        Ok(Image {
            dev,
            sb,
            groups,
            access,
        })
    }

    /// The primary superblock.
    pub fn read_superblock(dev: &mut D) -> Result<Superblock, Ext2Error> {
        let mut buf = vec![0; SUPERBLOCK_SIZE];
        dev.read_at(SUPERBLOCK_OFFSET, &mut buf)
            .map_err(io(SUPERBLOCK_OFFSET))?;
        Superblock::parse(&buf)
    }

    /// Every group descriptor, checked.
    pub fn read_groups(dev: &mut D, sb: &Superblock) -> Result<Vec<GroupDesc>, Ext2Error> {
        let bs = sb.block_size() as usize;
        let len = sb.desc_len();
        let per = bs / len;
        let n = sb.groups_count() as usize;
        let mut groups = Vec::with_capacity(n);
        let mut block = vec![0; bs];
        for g in 0..n {
            if g % per == 0 {
                let b = sb.desc_block((g / per) as u32);
                if b >= sb.blocks_count {
                    return Err(Ext2Error::BadGroup(g as u32, "descriptor block outside"));
                }
                let off = b * bs as u64;
                dev.read_at(off, &mut block).map_err(io(off))?;
            }
            let at = (g % per) * len;
            let gd = GroupDesc::parse(&block[at..], len)?;
            gd.check(sb, g as u32)?;
            groups.push(gd);
        }
        Ok(groups)
    }

    pub fn block_size(&self) -> u32 {
        self.sb.block_size()
    }

    /// Reads block `n` into `buf` (one block long).
    pub fn read_block(&mut self, n: u64, buf: &mut [u8]) -> Result<(), Ext2Error> {
        if n >= self.sb.blocks_count {
            return Err(Ext2Error::BlockOutOfRange(0, n));
        }
        let off = n * u64::from(self.block_size());
        self.dev.read_at(off, buf).map_err(io(off))
    }

    /// Byte offset of inode `ino` on the device.
    pub fn inode_offset(&self, ino: u32) -> Result<u64, Ext2Error> {
        if ino == 0 || ino > self.sb.inodes_count {
            return Err(Ext2Error::BadInodeNumber(ino));
        }
        let ipg = self.sb.inodes_per_group;
        let g = ((ino - 1) / ipg) as usize;
        let idx = u64::from((ino - 1) % ipg);
        let gd = self.groups.get(g).ok_or(Ext2Error::BadInodeNumber(ino))?;
        Ok(gd.inode_table * u64::from(self.block_size()) + idx * u64::from(self.sb.inode_size))
    }

    /// Reads inode `ino`.
    pub fn read_inode(&mut self, ino: u32) -> Result<Inode, Ext2Error> {
        let off = self.inode_offset(ino)?;
        let len = usize::from(self.sb.inode_size);
        let mut buf = vec![0; len];
        self.dev.read_at(off, &mut buf).map_err(io(off))?;
        Inode::parse(&buf, len)
    }

    /// Writes inode `ino` back.
    pub fn write_inode(&mut self, ino: u32, inode: &Inode) -> Result<(), Ext2Error> {
        let off = self.inode_offset(ino)?;
        let mut buf = vec![0; inode.raw.len()];
        inode.emit(&mut buf);
        self.dev.write_at(off, &buf).map_err(io(off))
    }

    fn check_block(&self, ino: u32, b: u64) -> Result<u64, Ext2Error> {
        if b < u64::from(self.sb.first_data_block) || b >= self.sb.blocks_count {
            return Err(Ext2Error::BlockOutOfRange(ino, b));
        }
        Ok(b)
    }

    /// Reads the 32-bit block number at `index` of indirect block `b`.
    pub fn read_addr(&mut self, b: u64, index: usize) -> Result<u32, Ext2Error> {
        let off = b * u64::from(self.block_size()) + 4 * index as u64;
        let mut v = [0u8; 4];
        self.dev.read_at(off, &mut v).map_err(io(off))?;
        Ok(LE::read_u32(&v))
    }

    /// The physical block holding logical block `lblk` of inode `ino`; None for a hole.
    pub fn map_block(
        &mut self,
        ino: u32,
        inode: &Inode,
        lblk: u64,
    ) -> Result<Option<u64>, Ext2Error> {
        if inode.flags & EXTENTS_FL != 0 {
            return self.map_extent(ino, inode, lblk);
        }
        let per = u64::from(self.block_size() / 4);
        let Some(path) = BlockPath::of(lblk, per) else {
            return Ok(None);
        };
        let mut b = u64::from(inode.block[path.slot]);
        for &i in &path.indices {
            if b == 0 {
                return Ok(None);
            }
            self.check_block(ino, b)?;
            b = u64::from(self.read_addr(b, i)?);
        }
        if b == 0 {
            return Ok(None);
        }
        self.check_block(ino, b).map(Some)
    }

    fn map_extent(&mut self, ino: u32, inode: &Inode, lblk: u64) -> Result<Option<u64>, Ext2Error> {
        let Ok(lblk) = u32::try_from(lblk) else {
            return Ok(None);
        };
        let mut node = inode.block_bytes().to_vec();
        let mut level_depth = None;
        loop {
            let h = ExtentHeader::parse(&node, ino)?;
            if let Some(d) = level_depth {
                if h.depth + 1 != d {
                    return Err(Ext2Error::BadExtent(ino, "depth does not decrease"));
                }
            }
            level_depth = Some(h.depth);
            let n = usize::from(h.entries);
            if h.depth == 0 {
                for i in 0..n {
                    let e = Extent::parse(&node, i);
                    if lblk >= e.block && u64::from(lblk) < u64::from(e.block) + u64::from(e.len) {
                        if e.uninit {
                            return Ok(None);
                        }
                        let b = e.start + u64::from(lblk - e.block);
                        return self.check_block(ino, b).map(Some);
                    }
                }
                return Ok(None);
            }
            // The last index whose first block is <= lblk.
            let mut next = None;
            for i in 0..n {
                let ix = ExtentIndex::parse(&node, i);
                if ix.block <= lblk {
                    next = Some(ix.leaf);
                } else {
                    break;
                }
            }
            let Some(leaf) = next else {
                return Ok(None);
            };
            self.check_block(ino, leaf)?;
            if h.depth > MAX_DEPTH {
                return Err(Ext2Error::BadExtent(ino, "too deep"));
            }
            node = vec![0; self.block_size() as usize];
            self.read_block(leaf, &mut node)?;
        }
    }

    /// Reads file data at `offset` into `buf`, up to the file's size; holes read as
    /// zeros. Returns the bytes read.
    pub fn read_data(
        &mut self,
        ino: u32,
        inode: &Inode,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, Ext2Error> {
        if offset >= inode.size {
            return Ok(0);
        }
        let bs = u64::from(self.block_size());
        let n = (buf.len() as u64).min(inode.size - offset) as usize;
        let mut done = 0;
        let mut block = vec![0; bs as usize];
        while done < n {
            let pos = offset + done as u64;
            let in_block = (pos % bs) as usize;
            let take = (bs as usize - in_block).min(n - done);
            match self.map_block(ino, inode, pos / bs)? {
                // A whole block goes straight into the caller's buffer.
                Some(b) if take == bs as usize => {
                    self.read_block(b, &mut buf[done..done + take])?
                }
                Some(b) => {
                    self.read_block(b, &mut block)?;
                    buf[done..done + take].copy_from_slice(&block[in_block..in_block + take]);
                }
                None => buf[done..done + take].fill(0),
            }
            done += take;
        }
        Ok(n)
    }

    /// The used entries of directory `ino`, in on-disk order.
    pub fn read_dir(&mut self, ino: u32, inode: &Inode) -> Result<Vec<DirEntry>, Ext2Error> {
        if inode.kind() != InodeKind::Dir {
            return Err(Ext2Error::BadInode(ino, "not a directory"));
        }
        let bs = u64::from(self.block_size());
        if !inode.size.is_multiple_of(bs) {
            return Err(Ext2Error::BadInode(
                ino,
                "directory size is not whole blocks",
            ));
        }
        let filetype = self.sb.has_filetype();
        let mut out = Vec::new();
        let mut block = vec![0; bs as usize];
        for lblk in 0..inode.size / bs {
            match self.map_block(ino, inode, lblk)? {
                Some(b) => self.read_block(b, &mut block)?,
                None => return Err(Ext2Error::BadInode(ino, "hole in a directory")),
            }
            for (_, e) in DirEntry::parse_block(&block, filetype, ino, lblk * bs)? {
                if e.inode != 0 {
                    out.push(e);
                }
            }
        }
        Ok(out)
    }

    /// The inode named `name` in directory `dir`.
    pub fn lookup(&mut self, dir: u32, name: &[u8]) -> Result<Option<u32>, Ext2Error> {
        let inode = self.read_inode(dir)?;
        Ok(self
            .read_dir(dir, &inode)?
            .into_iter()
            .find(|e| e.name == name)
            .map(|e| e.inode))
    }

    /// A symlink's target.
    pub fn read_link(&mut self, ino: u32, inode: &Inode) -> Result<Vec<u8>, Ext2Error> {
        if inode.kind() != InodeKind::Symlink {
            return Err(Ext2Error::BadInode(ino, "not a symlink"));
        }
        if inode.is_fast_symlink(self.block_size()) {
            if inode.size >= 60 {
                return Err(Ext2Error::BadInode(ino, "fast symlink too long"));
            }
            return Ok(inode.block_bytes()[..inode.size as usize].to_vec());
        }
        if inode.size > u64::from(self.block_size()) || inode.size > 4096 {
            return Err(Ext2Error::BadInode(ino, "symlink too long"));
        }
        let mut buf = vec![0; inode.size as usize];
        self.read_data(ino, inode, 0, &mut buf)?;
        Ok(buf)
    }

    /// Reads the bitmap block `b` (one block).
    pub fn read_bitmap(&mut self, b: u64) -> Result<Vec<u8>, Ext2Error> {
        let mut buf = vec![0; self.block_size() as usize];
        self.read_block(b, &mut buf)?;
        Ok(buf)
    }
}
