//! The superblock: 1024 bytes at byte 1024 of the device, little-endian. Parsing checks
//! the geometry; the feature rules say whether the filesystem may be written.

use byteorder::{ByteOrder, LittleEndian as LE};

use super::Ext2Error;

/// Where the primary superblock starts.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// Its length.
pub const SUPERBLOCK_SIZE: usize = 1024;
/// `s_magic`.
pub const EXT2_MAGIC: u16 = 0xEF53;

/// Feature bits (compat, ro_compat, incompat) and which ones this driver handles.
pub mod features {
    pub const COMPAT_DIR_PREALLOC: u32 = 0x1;
    pub const COMPAT_HAS_JOURNAL: u32 = 0x4;
    pub const COMPAT_EXT_ATTR: u32 = 0x8;
    pub const COMPAT_RESIZE_INODE: u32 = 0x10;
    pub const COMPAT_DIR_INDEX: u32 = 0x20;

    pub const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
    pub const RO_COMPAT_LARGE_FILE: u32 = 0x2;
    pub const RO_COMPAT_BTREE_DIR: u32 = 0x4;
    pub const RO_COMPAT_HUGE_FILE: u32 = 0x8;
    pub const RO_COMPAT_GDT_CSUM: u32 = 0x10;
    pub const RO_COMPAT_DIR_NLINK: u32 = 0x20;
    pub const RO_COMPAT_EXTRA_ISIZE: u32 = 0x40;
    pub const RO_COMPAT_METADATA_CSUM: u32 = 0x400;

    pub const INCOMPAT_COMPRESSION: u32 = 0x1;
    pub const INCOMPAT_FILETYPE: u32 = 0x2;
    pub const INCOMPAT_RECOVER: u32 = 0x4;
    pub const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
    pub const INCOMPAT_META_BG: u32 = 0x10;
    pub const INCOMPAT_EXTENTS: u32 = 0x40;
    pub const INCOMPAT_64BIT: u32 = 0x80;
    pub const INCOMPAT_FLEX_BG: u32 = 0x200;
    pub const INCOMPAT_CSUM_SEED: u32 = 0x2000;

    /// ro_compat features Linux's ext2 writes.
    pub const RO_COMPAT_RW: u32 =
        RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE | RO_COMPAT_BTREE_DIR;
    /// incompat features Linux's ext2 writes.
    pub const INCOMPAT_RW: u32 = INCOMPAT_FILETYPE | INCOMPAT_META_BG;
    /// incompat features of ext4 that we can read (extent trees, flexible groups, 64-bit
    /// descriptors, the checksum seed): the filesystem is then read-only.
    pub const INCOMPAT_READ: u32 =
        INCOMPAT_RW | INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG | INCOMPAT_CSUM_SEED;
}

/// Whether a filesystem may be mounted read-write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    /// Read-only because of these ro_compat bits (unknown to ext2) or incompat bits
    /// (ext4 features we can read but not write).
    ReadOnly {
        ro_compat: u32,
        incompat: u32,
    },
}

/// A parsed superblock. Fields we use are typed; `emit` writes them over the bytes it
/// was parsed from, so unknown fields survive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    pub inodes_count: u32,
    pub blocks_count: u64,
    pub r_blocks_count: u64,
    pub free_blocks_count: u64,
    pub free_inodes_count: u32,
    pub first_data_block: u32,
    pub log_block_size: u32,
    pub blocks_per_group: u32,
    pub inodes_per_group: u32,
    pub mtime: u32,
    pub wtime: u32,
    pub mnt_count: u16,
    pub max_mnt_count: i16,
    pub magic: u16,
    pub state: u16,
    pub errors: u16,
    pub rev_level: u32,
    pub first_ino: u32,
    pub inode_size: u16,
    pub feature_compat: u32,
    pub feature_incompat: u32,
    pub feature_ro_compat: u32,
    pub desc_size: u16,
    pub first_meta_bg: u32,
    pub raw: Vec<u8>,
}

/// `s_state`: cleanly unmounted.
pub const STATE_VALID: u16 = 1;
/// `s_state`: errors detected.
pub const STATE_ERROR: u16 = 2;

impl Superblock {
    /// Parses and checks a superblock (the 1024 bytes at [`SUPERBLOCK_OFFSET`]).
    pub fn parse(buf: &[u8]) -> Result<Superblock, Ext2Error> {
        if buf.len() < SUPERBLOCK_SIZE {
            return Err(Ext2Error::Short("superblock", SUPERBLOCK_SIZE));
        }
        let b = &buf[..SUPERBLOCK_SIZE];
        let u32_at = |o: usize| LE::read_u32(&b[o..]);
        let u16_at = |o: usize| LE::read_u16(&b[o..]);
        let magic = u16_at(56);
        if magic != EXT2_MAGIC {
            return Err(Ext2Error::BadMagic(magic));
        }
        let rev_level = u32_at(76);
        let dynamic = rev_level >= 1;
        let incompat = if dynamic { u32_at(96) } else { 0 };
        let is64 = incompat & features::INCOMPAT_64BIT != 0;
        let hi = |o: usize| if is64 { u64::from(u32_at(o)) << 32 } else { 0 };
        let sb = Superblock {
            inodes_count: u32_at(0),
            blocks_count: u64::from(u32_at(4)) | hi(336),
            r_blocks_count: u64::from(u32_at(8)) | hi(340),
            free_blocks_count: u64::from(u32_at(12)) | hi(344),
            free_inodes_count: u32_at(16),
            first_data_block: u32_at(20),
            log_block_size: u32_at(24),
            blocks_per_group: u32_at(32),
            inodes_per_group: u32_at(40),
            mtime: u32_at(44),
            wtime: u32_at(48),
            mnt_count: u16_at(52),
            max_mnt_count: u16_at(54) as i16,
            magic,
            state: u16_at(58),
            errors: u16_at(60),
            rev_level,
            first_ino: if dynamic {
                u32_at(84)
            } else {
                super::REV0_FIRST_INO
            },
            inode_size: if dynamic { u16_at(88) } else { 128 },
            feature_compat: if dynamic { u32_at(92) } else { 0 },
            feature_incompat: incompat,
            feature_ro_compat: if dynamic { u32_at(100) } else { 0 },
            desc_size: if is64 { u16_at(254) } else { 32 },
            first_meta_bg: u32_at(260),
            raw: b.to_vec(),
        };
        sb.check()?;
        Ok(sb)
    }

    fn check(&self) -> Result<(), Ext2Error> {
        let bad = |what| Err(Ext2Error::BadSuperblock(what));
        if self.log_block_size > 6 {
            return bad("block size");
        }
        let bs = self.block_size() as u64;
        if self.blocks_per_group == 0 || u64::from(self.blocks_per_group) > bs * 8 {
            return bad("blocks per group");
        }
        if self.inodes_per_group == 0 || u64::from(self.inodes_per_group) > bs * 8 {
            return bad("inodes per group");
        }
        let want_first = u32::from(bs == 1024);
        if self.first_data_block != want_first {
            return bad("first data block");
        }
        if self.blocks_count <= u64::from(self.first_data_block) {
            return bad("block count");
        }
        let isz = u64::from(self.inode_size);
        if isz < 128 || isz > bs || !isz.is_power_of_two() {
            return bad("inode size");
        }
        if self.rev_level >= 1 && self.first_ino < super::REV0_FIRST_INO {
            return bad("first inode");
        }
        if self.first_ino > self.inodes_count {
            return bad("first inode");
        }
        if self.feature_incompat & features::INCOMPAT_64BIT != 0
            && (self.desc_size < 32
                || !self.desc_size.is_power_of_two()
                || u64::from(self.desc_size) > bs)
        {
            return bad("descriptor size");
        }
        if u64::from(self.inodes_per_group) * u64::from(self.groups_count())
            != u64::from(self.inodes_count)
        {
            return bad("inode count");
        }
        Ok(())
    }

    /// Writes the superblock into `buf` (at least [`SUPERBLOCK_SIZE`] bytes).
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..SUPERBLOCK_SIZE];
        b.copy_from_slice(&self.raw[..SUPERBLOCK_SIZE]);
        LE::write_u32(&mut b[0..], self.inodes_count);
        LE::write_u32(&mut b[4..], self.blocks_count as u32);
        LE::write_u32(&mut b[8..], self.r_blocks_count as u32);
        LE::write_u32(&mut b[12..], self.free_blocks_count as u32);
        LE::write_u32(&mut b[16..], self.free_inodes_count);
        LE::write_u32(&mut b[20..], self.first_data_block);
        LE::write_u32(&mut b[24..], self.log_block_size);
        LE::write_u32(&mut b[32..], self.blocks_per_group);
        LE::write_u32(&mut b[40..], self.inodes_per_group);
        LE::write_u32(&mut b[44..], self.mtime);
        LE::write_u32(&mut b[48..], self.wtime);
        LE::write_u16(&mut b[52..], self.mnt_count);
        LE::write_u16(&mut b[54..], self.max_mnt_count as u16);
        LE::write_u16(&mut b[56..], self.magic);
        LE::write_u16(&mut b[58..], self.state);
        LE::write_u16(&mut b[60..], self.errors);
        LE::write_u32(&mut b[76..], self.rev_level);
        if self.rev_level >= 1 {
            LE::write_u32(&mut b[84..], self.first_ino);
            LE::write_u16(&mut b[88..], self.inode_size);
            LE::write_u32(&mut b[92..], self.feature_compat);
            LE::write_u32(&mut b[96..], self.feature_incompat);
            LE::write_u32(&mut b[100..], self.feature_ro_compat);
        }
        if self.is_64bit() {
            LE::write_u16(&mut b[254..], self.desc_size);
            LE::write_u32(&mut b[336..], (self.blocks_count >> 32) as u32);
            LE::write_u32(&mut b[340..], (self.r_blocks_count >> 32) as u32);
            LE::write_u32(&mut b[344..], (self.free_blocks_count >> 32) as u32);
        }
        LE::write_u32(&mut b[260..], self.first_meta_bg);
    }

    /// The superblock as 1024 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![0; SUPERBLOCK_SIZE];
        self.emit(&mut v);
        v
    }

    /// Block size in bytes (1024 << s_log_block_size).
    pub fn block_size(&self) -> u32 {
        1024 << self.log_block_size
    }

    /// Number of block groups.
    pub fn groups_count(&self) -> u32 {
        let data = self.blocks_count - u64::from(self.first_data_block);
        data.div_ceil(u64::from(self.blocks_per_group)) as u32
    }

    pub fn is_64bit(&self) -> bool {
        self.feature_incompat & features::INCOMPAT_64BIT != 0
    }

    pub fn has_filetype(&self) -> bool {
        self.feature_incompat & features::INCOMPAT_FILETYPE != 0
    }

    pub fn has_large_file(&self) -> bool {
        self.feature_ro_compat & features::RO_COMPAT_LARGE_FILE != 0
    }

    /// Bytes of one group descriptor.
    pub fn desc_len(&self) -> usize {
        if self.is_64bit() {
            usize::from(self.desc_size)
        } else {
            32
        }
    }

    /// Whether group `g` holds a copy of the superblock (every group, or with
    /// sparse_super groups 0, 1 and powers of 3, 5 and 7).
    pub fn group_has_super(&self, g: u32) -> bool {
        if self.feature_ro_compat & features::RO_COMPAT_SPARSE_SUPER == 0 || g <= 1 {
            return true;
        }
        [3u32, 5, 7].iter().any(|&p| {
            let mut x = p;
            while x < g {
                match x.checked_mul(p) {
                    Some(n) => x = n,
                    None => return false,
                }
            }
            x == g
        })
    }

    /// First block of group `g`.
    pub fn group_first_block(&self, g: u32) -> u64 {
        u64::from(self.first_data_block) + u64::from(g) * u64::from(self.blocks_per_group)
    }

    /// Number of blocks in group `g` (the last may be short).
    pub fn group_blocks(&self, g: u32) -> u32 {
        let end =
            (self.group_first_block(g) + u64::from(self.blocks_per_group)).min(self.blocks_count);
        (end - self.group_first_block(g)) as u32
    }

    /// The block holding group descriptor block `i` (0-based) of the table.
    pub fn desc_block(&self, i: u32) -> u64 {
        let meta_bg = self.feature_incompat & features::INCOMPAT_META_BG != 0;
        if !meta_bg || i < self.first_meta_bg {
            return u64::from(self.first_data_block) + 1 + u64::from(i);
        }
        let per = self.block_size() / self.desc_len() as u32;
        let g = i * per;
        self.group_first_block(g) + u64::from(self.group_has_super(g))
    }

    /// The feature rules of Linux's ext2 driver (see the module comment).
    pub fn access(&self) -> Result<Access, Ext2Error> {
        let inc = self.feature_incompat;
        if inc & features::INCOMPAT_RECOVER != 0 {
            return Err(Ext2Error::NeedsRecovery);
        }
        let unknown = inc & !features::INCOMPAT_READ;
        if unknown != 0 {
            return Err(Ext2Error::UnsupportedIncompat(unknown));
        }
        let ro = self.feature_ro_compat & !features::RO_COMPAT_RW;
        let ro_inc = inc & !features::INCOMPAT_RW;
        if ro != 0 || ro_inc != 0 {
            return Ok(Access::ReadOnly {
                ro_compat: ro,
                incompat: ro_inc,
            });
        }
        Ok(Access::ReadWrite)
    }
}
