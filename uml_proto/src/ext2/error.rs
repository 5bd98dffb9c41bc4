//! The errors of reading ext2 structures: one enum, messages in the kernel's words.

use std::fmt;
use std::io;

/// Why bytes are not a usable ext2 structure or filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ext2Error {
    /// Reading or writing the device failed (offset, error kind).
    Io(u64, io::ErrorKind),
    /// The buffer is shorter than the structure (what, bytes needed).
    Short(&'static str, usize),
    /// No ext2 magic in the superblock.
    BadMagic(u16),
    /// A superblock value no ext2 filesystem has (which field).
    BadSuperblock(&'static str),
    /// A group descriptor points outside its filesystem (group number, which field).
    BadGroup(u32, &'static str),
    /// Incompatible features this driver does not know (their bits).
    UnsupportedIncompat(u32),
    /// An ext3/ext4 journal needs replaying first.
    NeedsRecovery,
    /// An inode number outside 1..=inodes_count.
    BadInodeNumber(u32),
    /// An inode whose contents are impossible (inode, what).
    BadInode(u32, &'static str),
    /// An inode maps to a block outside the filesystem (inode, block).
    BlockOutOfRange(u32, u64),
    /// A directory block whose entries do not tile it (directory inode, byte offset).
    BadDirEntry(u32, u64),
    /// An extent tree that is malformed (inode, what).
    BadExtent(u32, &'static str),
}

impl fmt::Display for Ext2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ext2Error::Io(off, kind) => write!(f, "I/O error at byte {off}: {kind}"),
            Ext2Error::Short(what, need) => write!(f, "{what}: short buffer ({need} bytes needed)"),
            Ext2Error::BadMagic(m) => {
                write!(
                    f,
                    "can't find an ext2 filesystem (magic {m:#06x}, want 0xef53)"
                )
            }
            Ext2Error::BadSuperblock(what) => write!(f, "corrupt superblock: {what}"),
            Ext2Error::BadGroup(g, what) => {
                write!(f, "group descriptors corrupted: group {g}: {what}")
            }
            Ext2Error::UnsupportedIncompat(bits) => write!(
                f,
                "couldn't mount because of unsupported optional features ({bits:x})"
            ),
            Ext2Error::NeedsRecovery => write!(
                f,
                "filesystem needs journal recovery (run e2fsck or mount it as ext3/ext4 in Linux)"
            ),
            Ext2Error::BadInodeNumber(n) => write!(f, "bad inode number {n}"),
            Ext2Error::BadInode(n, what) => write!(f, "corrupt inode {n}: {what}"),
            Ext2Error::BlockOutOfRange(n, b) => {
                write!(f, "inode {n}: block {b} is outside the filesystem")
            }
            Ext2Error::BadDirEntry(n, off) => {
                write!(f, "directory inode {n}: bad entry at offset {off}")
            }
            Ext2Error::BadExtent(n, what) => write!(f, "inode {n}: bad extent tree: {what}"),
        }
    }
}

impl std::error::Error for Ext2Error {}
