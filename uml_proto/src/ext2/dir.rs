//! Directory entries: inode (4), record length (2), name length (1), file type (1, with
//! the filetype feature; otherwise the name length's high byte), then the name, padded
//! to 4 bytes. Entries tile each directory block exactly.

use byteorder::{ByteOrder, LittleEndian as LE};

use super::{Ext2Error, InodeKind};

/// Bytes before the name.
pub const DIRENT_HEADER_LEN: usize = 8;

/// The record length an entry with a name of `name_len` bytes needs.
pub fn dir_rec_len(name_len: usize) -> usize {
    (DIRENT_HEADER_LEN + name_len + 3) & !3
}

/// The file-type byte of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Unknown = 0,
    File = 1,
    Dir = 2,
    Char = 3,
    Block = 4,
    Fifo = 5,
    Socket = 6,
    Symlink = 7,
}

impl FileType {
    pub fn from_byte(b: u8) -> FileType {
        match b {
            1 => FileType::File,
            2 => FileType::Dir,
            3 => FileType::Char,
            4 => FileType::Block,
            5 => FileType::Fifo,
            6 => FileType::Socket,
            7 => FileType::Symlink,
            _ => FileType::Unknown,
        }
    }

    pub fn of(kind: InodeKind) -> FileType {
        match kind {
            InodeKind::File => FileType::File,
            InodeKind::Dir => FileType::Dir,
            InodeKind::Char => FileType::Char,
            InodeKind::Block => FileType::Block,
            InodeKind::Fifo => FileType::Fifo,
            InodeKind::Socket => FileType::Socket,
            InodeKind::Symlink => FileType::Symlink,
            InodeKind::Unknown => FileType::Unknown,
        }
    }
}

/// One directory entry. `inode == 0` marks unused space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub inode: u32,
    pub rec_len: u16,
    pub file_type: FileType,
    pub name: Vec<u8>,
}

/// One directory entry seen in place in its block (the name is not copied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntryRef<'a> {
    /// Offset of the entry in its block.
    pub off: usize,
    pub inode: u32,
    pub rec_len: u16,
    pub file_type: FileType,
    /// Empty for an unused entry (`inode == 0`).
    pub name: &'a [u8],
}

impl DirEntryRef<'_> {
    pub fn to_owned(&self) -> DirEntry {
        DirEntry {
            inode: self.inode,
            rec_len: self.rec_len,
            file_type: self.file_type,
            name: self.name.to_vec(),
        }
    }
}

/// The entries of one directory block in order, each checked as [`DirEntry::parse`]
/// checks it; a bad entry ends the walk with its error.
pub struct BlockEntries<'a> {
    block: &'a [u8],
    filetype: bool,
    dir: u32,
    base: u64,
    off: usize,
}

impl<'a> Iterator for BlockEntries<'a> {
    type Item = Result<DirEntryRef<'a>, Ext2Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.off >= self.block.len() {
            return None;
        }
        let at = self.off;
        match DirEntry::view(
            &self.block[at..],
            self.filetype,
            self.dir,
            self.base + at as u64,
        ) {
            Ok(mut e) => {
                e.off = at;
                self.off = at + usize::from(e.rec_len);
                Some(Ok(e))
            }
            Err(err) => {
                self.off = self.block.len();
                Some(Err(err))
            }
        }
    }
}

impl DirEntry {
    /// Walks one directory block in place; `base` is the block's byte offset in the
    /// directory (for errors).
    pub fn entries(block: &[u8], filetype: bool, dir: u32, base: u64) -> BlockEntries<'_> {
        BlockEntries {
            block,
            filetype,
            dir,
            base,
            off: 0,
        }
    }

    /// Parses the entry at the start of `buf` (the rest of its block). `dir` and `at`
    /// name the directory and offset for errors.
    pub fn parse(buf: &[u8], filetype: bool, dir: u32, at: u64) -> Result<DirEntry, Ext2Error> {
        Self::view(buf, filetype, dir, at).map(|e| e.to_owned())
    }

    /// Views the entry at the start of `buf` in place (its `off` is 0).
    pub fn view(
        buf: &[u8],
        filetype: bool,
        dir: u32,
        at: u64,
    ) -> Result<DirEntryRef<'_>, Ext2Error> {
        let bad = Err(Ext2Error::BadDirEntry(dir, at));
        if buf.len() < DIRENT_HEADER_LEN {
            return bad;
        }
        let inode = LE::read_u32(buf);
        let rec_len = LE::read_u16(&buf[4..]);
        let (name_len, ft) = if filetype {
            (usize::from(buf[6]), FileType::from_byte(buf[7]))
        } else {
            (usize::from(LE::read_u16(&buf[6..])), FileType::Unknown)
        };
        let rl = usize::from(rec_len);
        if rl < DIRENT_HEADER_LEN || rl % 4 != 0 || rl > buf.len() {
            return bad;
        }
        if inode != 0 && DIRENT_HEADER_LEN + name_len > rl {
            return bad;
        }
        let name: &[u8] = if inode != 0 {
            &buf[DIRENT_HEADER_LEN..DIRENT_HEADER_LEN + name_len]
        } else {
            &[]
        };
        Ok(DirEntryRef {
            off: 0,
            inode,
            rec_len,
            file_type: ft,
            name,
        })
    }

    /// Writes the entry at the start of `buf` (header and name; the rest of the record
    /// is left as it was).
    pub fn emit(&self, buf: &mut [u8], filetype: bool) {
        LE::write_u32(buf, self.inode);
        LE::write_u16(&mut buf[4..], self.rec_len);
        if filetype {
            buf[6] = self.name.len() as u8;
            buf[7] = self.file_type as u8;
        } else {
            LE::write_u16(&mut buf[6..], self.name.len() as u16);
        }
        buf[DIRENT_HEADER_LEN..DIRENT_HEADER_LEN + self.name.len()].copy_from_slice(&self.name);
    }

    /// Parses every entry of one directory block, with each entry's offset; `base` is
    /// the block's byte offset in the directory (for errors).
    pub fn parse_block(
        block: &[u8],
        filetype: bool,
        dir: u32,
        base: u64,
    ) -> Result<Vec<(usize, DirEntry)>, Ext2Error> {
        Self::entries(block, filetype, dir, base)
            .map(|e| e.map(|e| (e.off, e.to_owned())))
            .collect()
    }
}
