//! Allocation of blocks and inodes in the bitmaps, keeping the group descriptors' and
//! the superblock's free counts exact. Like ext2: a file's blocks go near the block
//! before them (or at its inode's group), a file's inode in its directory's group, and
//! a new directory in a group with more free inodes than average and the most free
//! blocks.

use uml_proto::ext2::{bit_clear, bit_set, find_zero_from};

use super::Ext2Fs;
use crate::fs::errno::{Errno, FsResult};

impl Ext2Fs {
    fn group_of_block(&self, b: u64) -> u32 {
        let sb = &self.img.sb;
        ((b.saturating_sub(u64::from(sb.first_data_block))) / u64::from(sb.blocks_per_group)) as u32
    }

    /// The group inode `ino` lives in.
    pub(super) fn group_of_inode(&self, ino: u32) -> u32 {
        (ino - 1) / self.img.sb.inodes_per_group
    }

    /// Allocates a block, as near `goal` as the bitmaps allow, and zeroes it.
    pub(super) fn alloc_block(&mut self, goal: u64) -> FsResult<u64> {
        let groups = self.img.groups.len() as u32;
        let goal = goal.clamp(
            u64::from(self.img.sb.first_data_block),
            self.img.sb.blocks_count - 1,
        );
        let g0 = self.group_of_block(goal).min(groups - 1);
        for k in 0..groups {
            let g = (g0 + k) % groups;
            if self.img.groups[g as usize].free_blocks_count == 0 {
                continue;
            }
            let first = self.img.sb.group_first_block(g);
            let start = if k == 0 { (goal - first) as usize } else { 0 };
            let nblocks = self.img.sb.group_blocks(g) as usize;
            let bm_block = self.img.groups[g as usize].block_bitmap;
            let found = self
                .img
                .dev
                .with(bm_block, |bm| find_zero_from(bm, start, nblocks))
                .map_err(|_| Errno::EIO)?;
            let Some(i) = found else {
                continue;
            };
            self.img
                .dev
                .modify(bm_block, |bm| bit_set(bm, i))
                .map_err(|_| Errno::EIO)?;
            self.img.groups[g as usize].free_blocks_count -= 1;
            self.img.sb.free_blocks_count = self.img.sb.free_blocks_count.saturating_sub(1);
            let b = first + i as u64;
            self.img.dev.zero(b).map_err(|_| Errno::EIO)?;
            return Ok(b);
        }
        Err(Errno::ENOSPC)
    }

    /// Frees block `b`.
    pub(super) fn free_block(&mut self, b: u64) -> FsResult<()> {
        if b < u64::from(self.img.sb.first_data_block) || b >= self.img.sb.blocks_count {
            return Err(Errno::EIO);
        }
        let g = self.group_of_block(b);
        let bm_block = self.img.groups[g as usize].block_bitmap;
        let mut bm = self.img.read_bitmap(bm_block).map_err(Self::eio)?;
        let i = (b - self.img.sb.group_first_block(g)) as usize;
        if !bit_clear(&mut bm, i) {
            // Freeing a free block: the image is corrupt; leave the counts alone.
            return Err(Errno::EIO);
        }
        self.cache_write(bm_block, 0, &bm)?;
        self.img.groups[g as usize].free_blocks_count += 1;
        self.img.sb.free_blocks_count += 1;
        Ok(())
    }

    fn pick_group_for_dir(&self) -> Option<u32> {
        let gs = &self.img.groups;
        let avg = u64::from(self.img.sb.free_inodes_count) / gs.len() as u64;
        let best = gs
            .iter()
            .enumerate()
            .filter(|(_, g)| g.free_inodes_count > 0 && u64::from(g.free_inodes_count) >= avg)
            .max_by_key(|(i, g)| (g.free_blocks_count, std::cmp::Reverse(*i)))
            .map(|(i, _)| i as u32);
        best.or_else(|| {
            gs.iter()
                .position(|g| g.free_inodes_count > 0)
                .map(|i| i as u32)
        })
    }

    /// Allocates an inode for a new child of `parent`.
    pub(super) fn alloc_inode(&mut self, parent: u32, dir: bool) -> FsResult<u32> {
        let groups = self.img.groups.len() as u32;
        let ipg = self.img.sb.inodes_per_group;
        let first = if dir {
            self.pick_group_for_dir().ok_or(Errno::ENOSPC)?
        } else {
            self.group_of_inode(parent)
        };
        for k in 0..groups {
            let g = (first + k) % groups;
            if self.img.groups[g as usize].free_inodes_count == 0 {
                continue;
            }
            let bm_block = self.img.groups[g as usize].inode_bitmap;
            let reserved = if g == 0 {
                self.img.sb.first_ino as usize - 1
            } else {
                0
            };
            let found = self
                .img
                .dev
                .with(bm_block, |bm| find_zero_from(bm, reserved, ipg as usize))
                .map_err(|_| Errno::EIO)?;
            let Some(i) = found.filter(|&i| i >= reserved) else {
                continue;
            };
            self.img
                .dev
                .modify(bm_block, |bm| bit_set(bm, i))
                .map_err(|_| Errno::EIO)?;
            let gd = &mut self.img.groups[g as usize];
            gd.free_inodes_count -= 1;
            if dir {
                gd.used_dirs_count += 1;
            }
            self.img.sb.free_inodes_count = self.img.sb.free_inodes_count.saturating_sub(1);
            return Ok(g * ipg + i as u32 + 1);
        }
        Err(Errno::ENOSPC)
    }

    /// Frees inode `ino` in its bitmap.
    pub(super) fn free_inode(&mut self, ino: u32, dir: bool) -> FsResult<()> {
        let g = self.group_of_inode(ino);
        let bm_block = self.img.groups[g as usize].inode_bitmap;
        let mut bm = self.img.read_bitmap(bm_block).map_err(Self::eio)?;
        if !bit_clear(&mut bm, ((ino - 1) % self.img.sb.inodes_per_group) as usize) {
            return Err(Errno::EIO);
        }
        self.cache_write(bm_block, 0, &bm)?;
        let gd = &mut self.img.groups[g as usize];
        gd.free_inodes_count += 1;
        if dir {
            gd.used_dirs_count = gd.used_dirs_count.saturating_sub(1);
        }
        self.img.sb.free_inodes_count += 1;
        Ok(())
    }
}
