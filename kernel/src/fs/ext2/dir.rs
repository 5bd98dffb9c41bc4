//! Directory blocks: finding, adding (in a free record, by splitting a record with room
//! to spare, or in a new block) and removing entries (merged into the record before
//! them, as ext2 does). A directory we change loses its hashed-index flag, so e2fsck
//! and Linux read it linearly. Blocks are searched in place in the cache, and each
//! directory remembers the first block where its last entry went in (`dir_room`), so
//! adding many names does not search the full blocks again.

use uml_proto::ext2::{dir_rec_len, DirEntry, FileType, INDEX_FL};

use super::Ext2Fs;
use crate::fs::errno::{Errno, FsResult};

/// Where an entry is: its block, offset, the entry, and the offset of the one before.
pub(super) struct Found {
    pub block: u64,
    pub off: usize,
    pub entry: DirEntry,
    pub prev: Option<usize>,
}

impl Ext2Fs {
    fn dir_block(&mut self, b: u64) -> FsResult<Vec<u8>> {
        let mut raw = vec![0u8; self.img.block_size() as usize];
        self.img.read_block(b, &mut raw).map_err(Self::eio)?;
        Ok(raw)
    }

    /// The entry named `name` in directory `dir` (each block is searched in place in
    /// the cache).
    pub(super) fn find_entry(&mut self, dir: u32, name: &[u8]) -> FsResult<Option<Found>> {
        let inode = self.inode(dir)?;
        let bs = u64::from(self.img.block_size());
        let filetype = self.img.sb.has_filetype();
        for lblk in 0..inode.size / bs {
            let b = self
                .img
                .map_block(dir, &inode, lblk)
                .map_err(Self::eio)?
                .ok_or(Errno::EIO)?;
            let hit = self
                .img
                .dev
                .with(b, |raw| -> FsResult<Option<Found>> {
                    let mut prev = None;
                    for e in DirEntry::entries(raw, filetype, dir, lblk * bs) {
                        let e = e.map_err(Self::eio)?;
                        // The last byte first: names of one length often share a prefix.
                        if e.inode != 0 && e.name.last() == name.last() && e.name == name {
                            return Ok(Some(Found {
                                block: b,
                                off: e.off,
                                entry: e.to_owned(),
                                prev,
                            }));
                        }
                        prev = Some(e.off);
                    }
                    Ok(None)
                })
                .map_err(|_| Errno::EIO)??;
            if hit.is_some() {
                return Ok(hit);
            }
        }
        Ok(None)
    }

    fn dir_changed(&mut self, dir: u32) -> FsResult<()> {
        let mut inode = self.inode(dir)?;
        inode.flags &= !INDEX_FL;
        let t = Self::now32();
        inode.mtime = t;
        inode.ctime = t;
        self.put_inode(dir, &inode)
    }

    /// Adds `name` -> `ino` to directory `dir`.
    pub(super) fn add_entry(
        &mut self,
        dir: u32,
        name: &[u8],
        ino: u32,
        ft: FileType,
    ) -> FsResult<()> {
        let mut inode = self.inode(dir)?;
        let bs = u64::from(self.img.block_size());
        let filetype = self.img.sb.has_filetype();
        let need = dir_rec_len(name.len());
        let new = |rec_len: usize| DirEntry {
            inode: ino,
            rec_len: rec_len as u16,
            file_type: ft,
            name: name.to_vec(),
        };
        // Blocks before the hint had no room for an entry this size.
        let first = match self.dir_room.get(&dir) {
            Some(&(lblk, size)) if size <= need => lblk,
            _ => 0,
        };
        for lblk in first..inode.size / bs {
            let b = self
                .img
                .map_block(dir, &inode, lblk)
                .map_err(Self::eio)?
                .ok_or(Errno::EIO)?;
            let slot = self
                .img
                .dev
                .with(
                    b,
                    |raw| -> FsResult<Option<(usize, usize, Option<usize>)>> {
                        for e in DirEntry::entries(raw, filetype, dir, lblk * bs) {
                            let e = e.map_err(Self::eio)?;
                            let rec = usize::from(e.rec_len);
                            if e.inode == 0 && rec >= need {
                                return Ok(Some((e.off, rec, None)));
                            }
                            let used = dir_rec_len(e.name.len());
                            if e.inode != 0 && rec - used >= need {
                                return Ok(Some((e.off, rec, Some(used))));
                            }
                        }
                        Ok(None)
                    },
                )
                .map_err(|_| Errno::EIO)??;
            let added = slot.is_some();
            if let Some((off, rec, split)) = slot {
                self.img
                    .dev
                    .modify(b, |raw| match split {
                        None => new(rec).emit(&mut raw[off..], filetype),
                        Some(used) => {
                            raw[off + 4..off + 6].copy_from_slice(&(used as u16).to_le_bytes());
                            new(rec - used).emit(&mut raw[off + used..], filetype);
                        }
                    })
                    .map_err(|_| Errno::EIO)?;
            }
            if added {
                self.dir_room.insert(dir, (lblk, need));
                return self.dir_changed(dir);
            }
        }
        // No room: a new block at the end.
        let lblk = inode.size / bs;
        let b = self.map_alloc(dir, &mut inode, lblk)?;
        let mut raw = vec![0u8; bs as usize];
        new(bs as usize).emit(&mut raw, filetype);
        self.cache_write(b, 0, &raw)?;
        self.dir_room.insert(dir, (lblk, need));
        inode.size += bs;
        self.put_inode(dir, &inode)?;
        self.dir_changed(dir)
    }

    /// Removes `name` from `dir`; returns the inode it named.
    pub(super) fn remove_entry(&mut self, dir: u32, name: &[u8]) -> FsResult<u32> {
        let f = self.find_entry(dir, name)?.ok_or(Errno::ENOENT)?;
        let filetype = self.img.sb.has_filetype();
        let mut raw = self.dir_block(f.block)?;
        self.dir_room.remove(&dir);
        match f.prev {
            Some(p) => {
                let prev =
                    DirEntry::parse(&raw[p..], filetype, dir, p as u64).map_err(Self::eio)?;
                let merged = prev.rec_len + f.entry.rec_len;
                raw[p + 4..p + 6].copy_from_slice(&merged.to_le_bytes());
            }
            None => raw[f.off..f.off + 4].fill(0),
        }
        self.cache_write(f.block, 0, &raw)?;
        self.dir_changed(dir)?;
        Ok(f.entry.inode)
    }

    /// Points the existing entry `name` of `dir` at `ino` (rename over a target, `..`).
    pub(super) fn set_entry(
        &mut self,
        dir: u32,
        name: &[u8],
        ino: u32,
        ft: FileType,
    ) -> FsResult<u32> {
        let f = self.find_entry(dir, name)?.ok_or(Errno::ENOENT)?;
        let filetype = self.img.sb.has_filetype();
        let mut raw = self.dir_block(f.block)?;
        let old = f.entry.inode;
        DirEntry {
            inode: ino,
            file_type: ft,
            ..f.entry
        }
        .emit(&mut raw[f.off..], filetype);
        self.cache_write(f.block, 0, &raw)?;
        self.dir_changed(dir)?;
        Ok(old)
    }

    /// The first block of a new directory: `.` and `..`.
    pub(super) fn empty_dir_block(&self, ino: u32, parent: u32) -> Vec<u8> {
        let bs = self.img.block_size() as usize;
        let filetype = self.img.sb.has_filetype();
        let mut raw = vec![0u8; bs];
        let dot = DirEntry {
            inode: ino,
            rec_len: 12,
            file_type: FileType::Dir,
            name: b".".to_vec(),
        };
        let dotdot = DirEntry {
            inode: parent,
            rec_len: (bs - 12) as u16,
            file_type: FileType::Dir,
            name: b"..".to_vec(),
        };
        dot.emit(&mut raw, filetype);
        dotdot.emit(&mut raw[12..], filetype);
        raw
    }
}
