//! Block group descriptors: where a group's bitmaps and inode table are, and its free
//! counts. 32 bytes each, or `s_desc_size` (64) with ext4's 64bit feature.

use byteorder::{ByteOrder, LittleEndian as LE};

use super::{Ext2Error, Superblock};

/// One parsed group descriptor; `raw` keeps the bytes we do not interpret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDesc {
    pub block_bitmap: u64,
    pub inode_bitmap: u64,
    pub inode_table: u64,
    pub free_blocks_count: u32,
    pub free_inodes_count: u32,
    pub used_dirs_count: u32,
    pub flags: u16,
    pub raw: Vec<u8>,
}

impl GroupDesc {
    /// Parses descriptor bytes (`len` = 32 or the 64bit descriptor size).
    pub fn parse(buf: &[u8], len: usize) -> Result<GroupDesc, Ext2Error> {
        if buf.len() < len || len < 32 {
            return Err(Ext2Error::Short("group descriptor", len.max(32)));
        }
        let b = &buf[..len];
        let wide = len >= 64;
        let lo32 = |o: usize| u64::from(LE::read_u32(&b[o..]));
        let hi32 = |o: usize| if wide { lo32(o) << 32 } else { 0 };
        let lo16 = |o: usize| u32::from(LE::read_u16(&b[o..]));
        let hi16 = |o: usize| if wide { lo16(o) << 16 } else { 0 };
        Ok(GroupDesc {
            block_bitmap: lo32(0) | hi32(32),
            inode_bitmap: lo32(4) | hi32(36),
            inode_table: lo32(8) | hi32(40),
            free_blocks_count: lo16(12) | hi16(44),
            free_inodes_count: lo16(14) | hi16(46),
            used_dirs_count: lo16(16) | hi16(48),
            flags: LE::read_u16(&b[18..]),
            raw: b.to_vec(),
        })
    }

    /// Writes the descriptor into `buf` (its parsed length).
    pub fn emit(&self, buf: &mut [u8]) {
        let len = self.raw.len();
        let b = &mut buf[..len];
        b.copy_from_slice(&self.raw);
        LE::write_u32(&mut b[0..], self.block_bitmap as u32);
        LE::write_u32(&mut b[4..], self.inode_bitmap as u32);
        LE::write_u32(&mut b[8..], self.inode_table as u32);
        LE::write_u16(&mut b[12..], self.free_blocks_count as u16);
        LE::write_u16(&mut b[14..], self.free_inodes_count as u16);
        LE::write_u16(&mut b[16..], self.used_dirs_count as u16);
        LE::write_u16(&mut b[18..], self.flags);
        if len >= 64 {
            LE::write_u32(&mut b[32..], (self.block_bitmap >> 32) as u32);
            LE::write_u32(&mut b[36..], (self.inode_bitmap >> 32) as u32);
            LE::write_u32(&mut b[40..], (self.inode_table >> 32) as u32);
            LE::write_u16(&mut b[44..], (self.free_blocks_count >> 16) as u16);
            LE::write_u16(&mut b[46..], (self.free_inodes_count >> 16) as u16);
            LE::write_u16(&mut b[48..], (self.used_dirs_count >> 16) as u16);
        }
    }

    /// Checks that the bitmaps and the inode table of group `g` lie inside the
    /// filesystem (Linux's ext2 only requires them inside their own group; flex_bg
    /// places them elsewhere, so the whole device is the bound).
    pub fn check(&self, sb: &Superblock, g: u32) -> Result<(), Ext2Error> {
        let first = u64::from(sb.first_data_block);
        let end = sb.blocks_count;
        let itable_blocks = (u64::from(sb.inodes_per_group) * u64::from(sb.inode_size))
            .div_ceil(u64::from(sb.block_size()));
        let inside = |b: u64, n: u64| b >= first && b.checked_add(n).is_some_and(|e| e <= end);
        if !inside(self.block_bitmap, 1) {
            return Err(Ext2Error::BadGroup(g, "block bitmap not in the filesystem"));
        }
        if !inside(self.inode_bitmap, 1) {
            return Err(Ext2Error::BadGroup(g, "inode bitmap not in the filesystem"));
        }
        if !inside(self.inode_table, itable_blocks) {
            return Err(Ext2Error::BadGroup(g, "inode table not in the filesystem"));
        }
        if self.free_blocks_count > sb.blocks_per_group
            || self.free_inodes_count > sb.inodes_per_group
        {
            return Err(Ext2Error::BadGroup(g, "free counts exceed the group"));
        }
        Ok(())
    }
}
