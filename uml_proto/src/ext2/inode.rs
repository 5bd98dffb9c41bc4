//! Inodes: 128 bytes (rev 0) or `s_inode_size` (256 by default); mode, owners, sizes,
//! times, link count, the block array (block map, extent tree, fast symlink target or
//! device number) and, in large inodes, the extra fields kept as they are.

use byteorder::{ByteOrder, LittleEndian as LE};

use super::Ext2Error;

/// Slots in `i_block`.
pub const N_BLOCKS: usize = 15;
/// `i_flags`: hashed directory index (Linux's ext2 clears it when it changes the dir).
pub const INDEX_FL: u32 = 0x1000;
/// `i_flags`: `i_block` holds an extent tree.
pub const EXTENTS_FL: u32 = 0x80000;
/// `i_flags`: `i_blocks` counts filesystem blocks, not sectors.
pub const HUGE_FILE_FL: u32 = 0x40000;
/// `i_flags`: data inline in the inode (ext4; we refuse to read it).
pub const INLINE_DATA_FL: u32 = 0x1000_0000;

/// What an inode is, from the type bits of its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InodeKind {
    Fifo,
    Char,
    Dir,
    Block,
    File,
    Symlink,
    Socket,
    Unknown,
}

impl InodeKind {
    pub fn from_mode(mode: u16) -> InodeKind {
        match mode & 0o170000 {
            0o010000 => InodeKind::Fifo,
            0o020000 => InodeKind::Char,
            0o040000 => InodeKind::Dir,
            0o060000 => InodeKind::Block,
            0o100000 => InodeKind::File,
            0o120000 => InodeKind::Symlink,
            0o140000 => InodeKind::Socket,
            _ => InodeKind::Unknown,
        }
    }
}

/// A parsed inode. `raw` keeps every byte of the on-disk inode (its full size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime: u32,
    pub ctime: u32,
    pub mtime: u32,
    pub dtime: u32,
    pub links_count: u16,
    /// `i_blocks` (with the high 16 bits), in 512-byte sectors unless HUGE_FILE_FL.
    pub blocks: u64,
    pub flags: u32,
    pub block: [u32; N_BLOCKS],
    pub generation: u32,
    pub file_acl: u64,
    /// `i_extra_isize` for inodes larger than 128 bytes (0 otherwise).
    pub extra_isize: u16,
    pub raw: Vec<u8>,
}

impl Inode {
    /// An all-zero inode of `len` bytes (a fresh one; the caller fills it).
    pub fn zeroed(len: usize) -> Inode {
        let raw = vec![0; len.max(128)];
        // Parsing zeros cannot fail: the length is at least 128.
        Inode::parse(&raw, raw.len()).unwrap_or_else(|_| unreachable!())
    }

    /// Parses an on-disk inode of `len` bytes.
    pub fn parse(buf: &[u8], len: usize) -> Result<Inode, Ext2Error> {
        if len < 128 || buf.len() < len {
            return Err(Ext2Error::Short("inode", len.max(128)));
        }
        let b = &buf[..len];
        let u32_at = |o: usize| LE::read_u32(&b[o..]);
        let u16_at = |o: usize| LE::read_u16(&b[o..]);
        let mut block = [0u32; N_BLOCKS];
        for (i, slot) in block.iter_mut().enumerate() {
            *slot = u32_at(40 + 4 * i);
        }
        Ok(Inode {
            mode: u16_at(0),
            uid: u32::from(u16_at(2)) | (u32::from(u16_at(120)) << 16),
            size: u64::from(u32_at(4)) | (u64::from(u32_at(108)) << 32),
            atime: u32_at(8),
            ctime: u32_at(12),
            mtime: u32_at(16),
            dtime: u32_at(20),
            gid: u32::from(u16_at(24)) | (u32::from(u16_at(122)) << 16),
            links_count: u16_at(26),
            blocks: u64::from(u32_at(28)) | (u64::from(u16_at(116)) << 32),
            flags: u32_at(32),
            block,
            generation: u32_at(100),
            file_acl: u64::from(u32_at(104)) | (u64::from(u16_at(118)) << 32),
            extra_isize: if len > 128 { u16_at(128) } else { 0 },
            raw: b.to_vec(),
        })
    }

    /// Writes the inode into `buf` (its parsed length).
    pub fn emit(&self, buf: &mut [u8]) {
        let len = self.raw.len();
        let b = &mut buf[..len];
        b.copy_from_slice(&self.raw);
        LE::write_u16(&mut b[0..], self.mode);
        LE::write_u16(&mut b[2..], self.uid as u16);
        LE::write_u32(&mut b[4..], self.size as u32);
        LE::write_u32(&mut b[8..], self.atime);
        LE::write_u32(&mut b[12..], self.ctime);
        LE::write_u32(&mut b[16..], self.mtime);
        LE::write_u32(&mut b[20..], self.dtime);
        LE::write_u16(&mut b[24..], self.gid as u16);
        LE::write_u16(&mut b[26..], self.links_count);
        LE::write_u32(&mut b[28..], self.blocks as u32);
        LE::write_u32(&mut b[32..], self.flags);
        for (i, v) in self.block.iter().enumerate() {
            LE::write_u32(&mut b[40 + 4 * i..], *v);
        }
        LE::write_u32(&mut b[100..], self.generation);
        LE::write_u32(&mut b[104..], self.file_acl as u32);
        LE::write_u32(&mut b[108..], (self.size >> 32) as u32);
        LE::write_u16(&mut b[116..], (self.blocks >> 32) as u16);
        LE::write_u16(&mut b[118..], (self.file_acl >> 32) as u16);
        LE::write_u16(&mut b[120..], (self.uid >> 16) as u16);
        LE::write_u16(&mut b[122..], (self.gid >> 16) as u16);
        if len > 128 {
            LE::write_u16(&mut b[128..], self.extra_isize);
        }
    }

    /// The inode's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![0; self.raw.len()];
        self.emit(&mut v);
        v
    }

    pub fn kind(&self) -> InodeKind {
        InodeKind::from_mode(self.mode)
    }

    /// The block array as the 60 bytes it occupies (a fast symlink's target, an extent
    /// tree's root).
    pub fn block_bytes(&self) -> [u8; 60] {
        let mut out = [0u8; 60];
        for (i, v) in self.block.iter().enumerate() {
            LE::write_u32(&mut out[4 * i..], *v);
        }
        out
    }

    /// Stores 60 bytes into the block array.
    pub fn set_block_bytes(&mut self, bytes: &[u8; 60]) {
        for (i, slot) in self.block.iter_mut().enumerate() {
            *slot = LE::read_u32(&bytes[4 * i..]);
        }
    }

    /// Whether a symlink keeps its target in the block array: no data blocks (an
    /// extended-attribute block does not count, as in Linux).
    pub fn is_fast_symlink(&self, block_size: u32) -> bool {
        if self.kind() != InodeKind::Symlink {
            return false;
        }
        let acl_sectors = if self.file_acl != 0 {
            u64::from(block_size / 512)
        } else {
            0
        };
        self.blocks.saturating_sub(acl_sectors) == 0
    }

    /// The device number of a character or block device inode, as (major, minor):
    /// the old 16-bit encoding in slot 0, or the new 32-bit one in slot 1.
    pub fn device(&self) -> (u32, u32) {
        if self.block[0] != 0 {
            let d = self.block[0];
            ((d >> 8) & 0xff, d & 0xff)
        } else {
            let d = self.block[1];
            ((d & 0xfff00) >> 8, (d & 0xff) | ((d >> 12) & 0xfff00))
        }
    }

    /// Stores a device number the way Linux does (old encoding when it fits).
    pub fn set_device(&mut self, major: u32, minor: u32) {
        self.block = [0; N_BLOCKS];
        if major < 256 && minor < 256 {
            self.block[0] = (major << 8) | minor;
        } else {
            self.block[1] = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
        }
    }
}
