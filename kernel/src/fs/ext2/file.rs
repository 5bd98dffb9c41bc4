//! File data through the block map: mapping with allocation (indirect blocks made as
//! needed, each counted in i_blocks), freeing everything past a new end (indirect
//! blocks that become empty go too), and the read and write paths.

use uml_proto::ext2::{BlockPath, Inode, N_DIRECT};

use super::Ext2Fs;
use crate::fs::errno::{Errno, FsResult};

impl Ext2Fs {
    fn per_block(&self) -> u64 {
        u64::from(self.img.block_size() / 4)
    }

    fn sectors_per_block(&self) -> u64 {
        u64::from(self.img.block_size() / 512)
    }

    /// Largest file size the block map allows.
    pub(super) fn max_file_size(&self) -> u64 {
        let bs = u64::from(self.img.block_size());
        let by_map = BlockPath::max_blocks(self.per_block()).saturating_mul(bs);
        // i_blocks is 32 bits of sectors without huge_file.
        let by_count = (u64::from(u32::MAX) * 512).saturating_sub(bs * 1024);
        by_map.min(by_count)
    }

    fn write_addr(&mut self, b: u64, index: usize, value: u32) -> FsResult<()> {
        self.cache_write(b, 4 * index, &value.to_le_bytes())
    }

    fn alloc_counted(&mut self, inode: &mut Inode, goal: u64) -> FsResult<u64> {
        let b = self.alloc_block(goal)?;
        inode.blocks += self.sectors_per_block();
        Ok(b)
    }

    /// Where a new block of `ino` should go: after the file's previous block, or at the
    /// start of the inode's group.
    fn goal(&mut self, ino: u32, inode: &Inode, lblk: u64) -> u64 {
        if lblk > 0 {
            if let Ok(Some(prev)) = self.img.map_block(ino, inode, lblk - 1) {
                return prev + 1;
            }
        }
        let g = self.group_of_inode(ino);
        self.img.sb.group_first_block(g)
    }

    /// The physical block for logical block `lblk`, allocating it (and the indirect
    /// blocks on the way) if it is a hole. The caller writes `inode` back.
    pub(super) fn map_alloc(&mut self, ino: u32, inode: &mut Inode, lblk: u64) -> FsResult<u64> {
        if let Some(b) = self.img.map_block(ino, inode, lblk).map_err(Self::eio)? {
            return Ok(b);
        }
        if inode.flags & uml_proto::ext2::EXTENTS_FL != 0 {
            // Extent trees are read-only here (ext4 mounts read-only; a stray flag on
            // an ext2 inode must not turn its extent tree into a block map).
            return Err(Errno::EROFS);
        }
        let path = BlockPath::of(lblk, self.per_block()).ok_or(Errno::EFBIG)?;
        let goal = self.goal(ino, inode, lblk);
        let mut b = u64::from(inode.block[path.slot]);
        if b == 0 {
            b = self.alloc_counted(inode, goal)?;
            inode.block[path.slot] = b as u32;
        }
        for &i in &path.indices {
            let next = self.img.read_addr(b, i).map_err(Self::eio)?;
            if next != 0 {
                b = u64::from(next);
                continue;
            }
            let nb = self.alloc_counted(inode, goal)?;
            self.write_addr(b, i, nb as u32)?;
            b = nb;
        }
        Ok(b)
    }

    /// Frees every block at logical index `keep` and beyond, and indirect blocks left
    /// empty. The caller writes `inode` back.
    pub(super) fn free_blocks_from(&mut self, inode: &mut Inode, keep: u64) -> FsResult<()> {
        let spb = self.sectors_per_block();
        for slot in 0..N_DIRECT {
            if slot as u64 >= keep && inode.block[slot] != 0 {
                self.free_block(u64::from(inode.block[slot]))?;
                inode.block[slot] = 0;
                inode.blocks = inode.blocks.saturating_sub(spb);
            }
        }
        let per = self.per_block();
        let mut base = N_DIRECT as u64;
        let mut span = per;
        for level in 1..=3u32 {
            let slot = N_DIRECT - 1 + level as usize;
            let b = u64::from(inode.block[slot]);
            if b != 0 && base + span > keep && self.free_indirect(inode, b, level, base, keep)? {
                self.free_block(b)?;
                inode.block[slot] = 0;
                inode.blocks = inode.blocks.saturating_sub(spb);
            }
            base += span;
            span = span.saturating_mul(per);
        }
        Ok(())
    }

    /// Frees what indirect block `b` (at `level`, mapping from logical `base`) holds at
    /// `keep` and beyond; true when `b` is left all zeros.
    fn free_indirect(
        &mut self,
        inode: &mut Inode,
        b: u64,
        level: u32,
        base: u64,
        keep: u64,
    ) -> FsResult<bool> {
        let per = self.per_block();
        let child_span = per.pow(level - 1);
        let spb = self.sectors_per_block();
        let mut raw = vec![0u8; self.img.block_size() as usize];
        self.img.read_block(b, &mut raw).map_err(Self::eio)?;
        let mut changed = false;
        for i in 0..per as usize {
            let a =
                u32::from_le_bytes([raw[4 * i], raw[4 * i + 1], raw[4 * i + 2], raw[4 * i + 3]]);
            if a == 0 {
                continue;
            }
            let start = base + i as u64 * child_span;
            if start + child_span <= keep {
                continue;
            }
            let a = u64::from(a);
            let gone = level == 1 || self.free_indirect(inode, a, level - 1, start, keep)?;
            if gone {
                self.free_block(a)?;
                inode.blocks = inode.blocks.saturating_sub(spb);
                raw[4 * i..4 * i + 4].fill(0);
                changed = true;
            }
        }
        if changed {
            self.cache_write(b, 0, &raw)?;
        }
        Ok(raw.iter().all(|&x| x == 0))
    }

    /// Sets a regular file's size: frees blocks past a smaller end and zeroes the rest
    /// of its last block, so a later extension reads zeros.
    pub(super) fn set_size(&mut self, ino: u32, inode: &mut Inode, size: u64) -> FsResult<()> {
        if size > self.max_file_size() {
            return Err(Errno::EFBIG);
        }
        self.need_large_file(size)?;
        if size < inode.size {
            let bs = u64::from(self.img.block_size());
            self.free_blocks_from(inode, size.div_ceil(bs))?;
            let tail = (size % bs) as usize;
            if tail != 0 {
                if let Some(b) = self
                    .img
                    .map_block(ino, inode, size / bs)
                    .map_err(Self::eio)?
                {
                    let zeros = vec![0u8; bs as usize - tail];
                    self.cache_write(b, tail, &zeros)?;
                }
            }
        }
        inode.size = size;
        Ok(())
    }

    /// Sizes of 2 GiB and more need the large_file feature (set on revision 1
    /// filesystems, as Linux does; revision 0 cannot have it).
    fn need_large_file(&mut self, size: u64) -> FsResult<()> {
        if size < 1 << 31 || self.img.sb.has_large_file() {
            return Ok(());
        }
        if self.img.sb.rev_level == 0 {
            return Err(Errno::EFBIG);
        }
        self.img.sb.feature_ro_compat |= uml_proto::ext2::features::RO_COMPAT_LARGE_FILE;
        Ok(())
    }

    /// Writes `data` at `offset` of a regular file; a short count if space ran out.
    pub(super) fn write_data(&mut self, ino: u32, offset: u64, data: &[u8]) -> FsResult<usize> {
        let mut inode = self.inode(ino)?;
        let end = offset.checked_add(data.len() as u64).ok_or(Errno::EFBIG)?;
        if end > self.max_file_size() {
            return Err(Errno::EFBIG);
        }
        self.need_large_file(end)?;
        let bs = u64::from(self.img.block_size());
        let mut done = 0usize;
        let mut failure = None;
        while done < data.len() {
            let pos = offset + done as u64;
            let off = (pos % bs) as usize;
            let n = (bs as usize - off).min(data.len() - done);
            match self.map_alloc(ino, &mut inode, pos / bs) {
                Ok(b) => self.cache_write(b, off, &data[done..done + n])?,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            done += n;
        }
        let end = offset + done as u64;
        if end > inode.size {
            inode.size = end;
        }
        if done > 0 {
            let t = Self::now32();
            inode.mtime = t;
            inode.ctime = t;
        }
        self.put_inode(ino, &inode)?;
        match failure {
            Some(e) if done == 0 => Err(e),
            _ => Ok(done),
        }
    }
}
