//! ext4 extent trees (read-only): a 12-byte header, then index entries (inner nodes) or
//! extents (leaves) of 12 bytes each. The root lives in the inode's block array.

use byteorder::{ByteOrder, LittleEndian as LE};

use super::Ext2Error;

/// `eh_magic`.
pub const EXTENT_MAGIC: u16 = 0xF30A;
/// Deepest tree we follow (ext4 never builds more than 5 levels).
pub const MAX_DEPTH: u16 = 5;

/// A node's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtentHeader {
    pub entries: u16,
    pub max: u16,
    pub depth: u16,
}

/// An inner node's entry: the subtree for logical blocks from `block` is at `leaf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtentIndex {
    pub block: u32,
    pub leaf: u64,
}

/// A leaf's entry: `len` logical blocks from `block` map to physical blocks from
/// `start`; `uninit` extents read as zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub block: u32,
    pub len: u16,
    pub start: u64,
    pub uninit: bool,
}

impl ExtentHeader {
    /// Parses a node's header and checks that its entries fit in `buf`.
    pub fn parse(buf: &[u8], ino: u32) -> Result<ExtentHeader, Ext2Error> {
        if buf.len() < 12 {
            return Err(Ext2Error::BadExtent(ino, "short node"));
        }
        if LE::read_u16(buf) != EXTENT_MAGIC {
            return Err(Ext2Error::BadExtent(ino, "bad magic"));
        }
        let h = ExtentHeader {
            entries: LE::read_u16(&buf[2..]),
            max: LE::read_u16(&buf[4..]),
            depth: LE::read_u16(&buf[6..]),
        };
        if h.entries > h.max || 12 + 12 * usize::from(h.max) > buf.len() {
            return Err(Ext2Error::BadExtent(ino, "more entries than fit"));
        }
        if h.depth > MAX_DEPTH {
            return Err(Ext2Error::BadExtent(ino, "too deep"));
        }
        Ok(h)
    }

    pub fn emit(&self, buf: &mut [u8]) {
        LE::write_u16(buf, EXTENT_MAGIC);
        LE::write_u16(&mut buf[2..], self.entries);
        LE::write_u16(&mut buf[4..], self.max);
        LE::write_u16(&mut buf[6..], self.depth);
        LE::write_u32(&mut buf[8..], 0);
    }
}

impl ExtentIndex {
    /// Entry `i` of an inner node.
    pub fn parse(node: &[u8], i: usize) -> ExtentIndex {
        let e = &node[12 + 12 * i..];
        ExtentIndex {
            block: LE::read_u32(e),
            leaf: u64::from(LE::read_u32(&e[4..])) | (u64::from(LE::read_u16(&e[8..])) << 32),
        }
    }

    pub fn emit(&self, node: &mut [u8], i: usize) {
        let e = &mut node[12 + 12 * i..];
        LE::write_u32(e, self.block);
        LE::write_u32(&mut e[4..], self.leaf as u32);
        LE::write_u16(&mut e[8..], (self.leaf >> 32) as u16);
        LE::write_u16(&mut e[10..], 0);
    }
}

impl Extent {
    /// Entry `i` of a leaf.
    pub fn parse(node: &[u8], i: usize) -> Extent {
        let e = &node[12 + 12 * i..];
        let raw_len = LE::read_u16(&e[4..]);
        let uninit = raw_len > 32768;
        Extent {
            block: LE::read_u32(e),
            len: if uninit { raw_len - 32768 } else { raw_len },
            start: u64::from(LE::read_u32(&e[8..])) | (u64::from(LE::read_u16(&e[6..])) << 32),
            uninit,
        }
    }

    pub fn emit(&self, node: &mut [u8], i: usize) {
        let e = &mut node[12 + 12 * i..];
        LE::write_u32(e, self.block);
        LE::write_u16(
            &mut e[4..],
            if self.uninit {
                self.len + 32768
            } else {
                self.len
            },
        );
        LE::write_u16(&mut e[6..], (self.start >> 32) as u16);
        LE::write_u32(&mut e[8..], self.start as u32);
    }
}
