//! ext2 on disk: the superblock, group descriptors, inodes, block maps (direct and
//! indirect, and ext4's extent trees for reading), directory entries and bitmaps.
//!
//! Each structure is a typed view parsed from bytes (`parse` checks lengths and values
//! and returns an [`Ext2Error`]) and emitted back (`emit` rewrites the bytes it knows and
//! keeps every other byte it was parsed from). [`Image`] reads a whole filesystem over a
//! [`BlockDevice`]; it has no cache and no allocation policy: the kernel's driver
//! (`kernel/src/fs/ext2/`) adds those. The feature rules follow Linux's ext2 driver:
//! unknown compat features are ignored, unknown ro_compat features make the filesystem
//! read-only, unknown incompat features refuse it; ext4 images without the features we
//! cannot read are read-only. Layouts: Documentation/filesystems/ext2 and ext4 (facts).

mod bitmap;
mod blockmap;
mod device;
mod dir;
mod error;
mod extent;
mod group;
mod image;
mod inode;
mod superblock;

pub use bitmap::{bit_clear, bit_set, bit_test, find_zero_from};
pub use blockmap::{BlockPath, ADDR_LEN, N_DIRECT};
pub use device::BlockDevice;
pub use dir::{dir_rec_len, BlockEntries, DirEntry, DirEntryRef, FileType, DIRENT_HEADER_LEN};
pub use error::Ext2Error;
pub use extent::{Extent, ExtentHeader, ExtentIndex, EXTENT_MAGIC};
pub use group::GroupDesc;
pub use image::Image;
pub use inode::{Inode, InodeKind, EXTENTS_FL, HUGE_FILE_FL, INDEX_FL, INLINE_DATA_FL, N_BLOCKS};
pub use superblock::{
    features, Access, Superblock, EXT2_MAGIC, STATE_ERROR, STATE_VALID, SUPERBLOCK_OFFSET,
    SUPERBLOCK_SIZE,
};

/// The root directory's inode number.
pub const ROOT_INO: u32 = 2;
/// lost+found's inode number as mkfs makes it (first non-reserved inode of rev 1).
pub const REV0_FIRST_INO: u32 = 11;
/// Longest name a directory entry holds.
pub const NAME_MAX: usize = 255;
/// Symlink targets shorter than this live in the inode's block array ("fast" symlinks).
pub const FAST_SYMLINK_MAX: usize = 60;

#[cfg(test)]
mod tests;
