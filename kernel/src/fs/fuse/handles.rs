//! The host's open handles on umlfs: an open file is the VFS's own `OpenFile` (so the
//! guest sees it open: an unlinked file stays until the host closes it, a mount with
//! open files cannot be unmounted); an open directory is a snapshot of its entries
//! (taken again whenever the host reads from the start), read on by index as
//! READDIR's offsets.

use std::collections::HashMap;

use super::session::Fail;
use crate::fs::{DirEntry, Loc, OpenFile};

/// Most handles one connection may hold.
pub const MAX_HANDLES: usize = 65536;

#[derive(Debug)]
pub enum Handle {
    File(OpenFile),
    /// A directory and its entries as last read.
    Dir {
        loc: Loc,
        entries: Vec<DirEntry>,
    },
}

#[derive(Debug, Default)]
pub struct Handles {
    map: HashMap<u64, Handle>,
    next: u64,
}

impl Handles {
    /// Room for one more handle, or EMFILE.
    pub fn room(&self) -> Result<(), Fail> {
        if self.map.len() >= MAX_HANDLES {
            return Err(Fail(libc::EMFILE));
        }
        Ok(())
    }

    /// Stores a handle (after `room` said yes); its number for the host.
    pub fn insert(&mut self, h: Handle) -> u64 {
        self.next += 1;
        self.map.insert(self.next, h);
        self.next
    }

    pub fn get_mut(&mut self, fh: u64) -> Option<&mut Handle> {
        self.map.get_mut(&fh)
    }

    pub fn remove(&mut self, fh: u64) -> Option<Handle> {
        self.map.remove(&fh)
    }

    /// Every handle, for closing them all.
    pub fn drain(&mut self) -> Vec<Handle> {
        self.map.drain().map(|(_, h)| h).collect()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
