//! hostfs's inode table: which name in which directory each inode the VFS has looked up
//! was found under, so that an inode number turns back into a path relative to the
//! mount's directory (resolved beneath it by `sys::open_beneath`). Paths are made only of
//! names the VFS looked up, one component each; a guest rename moves one entry and every
//! descendant follows.
//!
//! The table is bounded: past [`MAX_ENTRIES`] the least recently looked-up half goes,
//! except inodes pinned by open files and the directories on their paths (the VFS looks
//! names up again on every walk, so what is in use stays).

use std::collections::{HashMap, HashSet};

use crate::fs::errno::{Errno, FsResult};
use crate::fs::node::Ino;
use crate::fs::vfs::{NAME_MAX, PATH_MAX};

/// Most entries kept before the oldest half is dropped.
pub const MAX_ENTRIES: usize = 1 << 16;

/// Where an inode was last seen, and when (a count of lookups).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    parent: Ino,
    name: Vec<u8>,
    seen: u64,
}

/// The inodes seen so far, by number and by (directory, name).
#[derive(Debug)]
pub struct Nodes {
    root: Ino,
    by_ino: HashMap<Ino, Entry>,
    by_name: HashMap<(Ino, Vec<u8>), Ino>,
    /// Inodes kept whatever their age (open files), with a count each.
    pinned: HashMap<Ino, usize>,
    clock: u64,
    limit: usize,
}

/// Checks that `name` is one ordinary component.
pub fn check_name(name: &[u8]) -> FsResult<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(Errno::EINVAL);
    }
    if name.contains(&0) {
        return Err(Errno::EINVAL);
    }
    if name.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

impl Nodes {
    pub fn new(root: Ino) -> Nodes {
        Nodes::with_limit(root, MAX_ENTRIES)
    }

    fn with_limit(root: Ino, limit: usize) -> Nodes {
        Nodes {
            root,
            by_ino: HashMap::new(),
            by_name: HashMap::new(),
            pinned: HashMap::new(),
            clock: 0,
            limit,
        }
    }

    /// Keeps `ino` (and the directories above it) until `unpin`.
    pub fn pin(&mut self, ino: Ino) {
        *self.pinned.entry(ino).or_insert(0) += 1;
    }

    pub fn unpin(&mut self, ino: Ino) {
        if let Some(n) = self.pinned.get_mut(&ino) {
            *n -= 1;
            if *n == 0 {
                self.pinned.remove(&ino);
            }
        }
    }

    /// Drops the least recently seen half, keeping pinned inodes and every directory on
    /// the path of an entry kept.
    fn evict(&mut self) {
        let mut ages: Vec<(u64, Ino)> = self.by_ino.iter().map(|(i, e)| (e.seen, *i)).collect();
        ages.sort_unstable_by(|a, b| b.cmp(a));
        let mut keep: HashSet<Ino> = ages.iter().take(self.limit / 2).map(|a| a.1).collect();
        keep.extend(self.pinned.keys().copied());
        let mut ancestors = Vec::new();
        for &ino in &keep {
            let mut cur = ino;
            let mut depth = 0;
            while let Some(e) = self.by_ino.get(&cur) {
                if e.parent == self.root || keep.contains(&e.parent) || depth > PATH_MAX {
                    break;
                }
                ancestors.push(e.parent);
                cur = e.parent;
                depth += 1;
            }
        }
        keep.extend(ancestors);
        self.by_ino.retain(|ino, _| keep.contains(ino));
        self.by_name.retain(|_, ino| keep.contains(ino));
    }

    /// `ino` was found as `name` in `dir`.
    pub fn record(&mut self, ino: Ino, dir: Ino, name: &[u8]) {
        if ino == self.root {
            return;
        }
        let key = (dir, name.to_vec());
        if let Some(old) = self.by_name.insert(key.clone(), ino) {
            if old != ino
                && self
                    .by_ino
                    .get(&old)
                    .is_some_and(|e| e.parent == dir && e.name == name)
            {
                self.by_ino.remove(&old);
            }
        }
        self.clock += 1;
        let entry = Entry {
            parent: dir,
            name: name.to_vec(),
            seen: self.clock,
        };
        if let Some(prev) = self.by_ino.insert(ino, entry) {
            let prev_key = (prev.parent, prev.name);
            if prev_key != key && self.by_name.get(&prev_key) == Some(&ino) {
                self.by_name.remove(&prev_key);
            }
        }
        if self.by_ino.len() > self.limit {
            self.evict();
        }
    }

    /// The name `name` in `dir` is gone (unlinked, removed, renamed over).
    pub fn forget(&mut self, dir: Ino, name: &[u8]) {
        if let Some(ino) = self.by_name.remove(&(dir, name.to_vec())) {
            if self
                .by_ino
                .get(&ino)
                .is_some_and(|e| e.parent == dir && e.name == name)
            {
                self.by_ino.remove(&ino);
            }
        }
    }

    /// The directory `ino` was found in and its name there.
    pub fn entry(&self, ino: Ino) -> FsResult<(Ino, &[u8])> {
        self.by_ino
            .get(&ino)
            .map(|e| (e.parent, e.name.as_slice()))
            .ok_or(Errno::ENOENT)
    }

    /// The directory `ino` was found in (the root is its own).
    pub fn parent(&self, ino: Ino) -> FsResult<Ino> {
        if ino == self.root {
            return Ok(ino);
        }
        self.by_ino.get(&ino).map(|e| e.parent).ok_or(Errno::ENOENT)
    }

    /// The path of `ino` relative to the mount's directory (`.` for the root).
    pub fn path(&self, ino: Ino) -> FsResult<Vec<u8>> {
        let mut names: Vec<&[u8]> = Vec::new();
        let mut cur = ino;
        let mut len = 0;
        while cur != self.root {
            let e = self.by_ino.get(&cur).ok_or(Errno::ENOENT)?;
            len += e.name.len() + 1;
            if len >= PATH_MAX {
                // Too deep, or a loop made by directories moved on the host.
                return Err(Errno::ENAMETOOLONG);
            }
            names.push(&e.name);
            cur = e.parent;
        }
        if names.is_empty() {
            return Ok(b".".to_vec());
        }
        let mut out = Vec::with_capacity(len);
        for n in names.iter().rev() {
            if !out.is_empty() {
                out.push(b'/');
            }
            out.extend_from_slice(n);
        }
        Ok(out)
    }

    /// The path of `name` in `dir`.
    pub fn child_path(&self, dir: Ino, name: &[u8]) -> FsResult<Vec<u8>> {
        check_name(name)?;
        let mut p = self.path(dir)?;
        if p == b"." {
            return Ok(name.to_vec());
        }
        p.push(b'/');
        p.extend_from_slice(name);
        if p.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_renames_and_forget_removed_names() {
        let mut n = Nodes::new(1);
        assert_eq!(n.path(1).unwrap(), b".");
        n.record(2, 1, b"a");
        n.record(3, 2, b"b");
        n.record(4, 3, b"c");
        assert_eq!(n.path(4).unwrap(), b"a/b/c");
        assert_eq!(n.child_path(4, b"d").unwrap(), b"a/b/c/d");
        assert_eq!(n.child_path(1, b"x").unwrap(), b"x");
        assert_eq!(n.child_path(1, b".."), Err(Errno::EINVAL));
        assert_eq!(n.child_path(1, b"a/b"), Err(Errno::EINVAL));
        // b moves to the root as z: c follows.
        n.record(3, 1, b"z");
        assert_eq!(n.path(4).unwrap(), b"z/c");
        assert_eq!(n.entry(3).unwrap(), (1, &b"z"[..]));
        assert!(!n.by_name.contains_key(&(2, b"b".to_vec())));
        n.forget(1, b"z");
        assert_eq!(n.path(4), Err(Errno::ENOENT));
        // A name taken over by another inode.
        n.record(5, 1, b"a");
        assert_eq!(n.path(2), Err(Errno::ENOENT));
        assert_eq!(n.path(5).unwrap(), b"a");
        // A loop made on the host ends, it does not hang.
        n.record(6, 7, b"x");
        n.record(7, 6, b"y");
        assert_eq!(n.path(6), Err(Errno::ENAMETOOLONG));
        assert_eq!(n.parent(1).unwrap(), 1);
    }

    #[test]
    fn the_table_is_bounded_and_keeps_what_is_open_and_its_directories() {
        let mut n = Nodes::with_limit(1, 100);
        // An open file deep down, looked up long ago.
        n.record(2, 1, b"d");
        n.record(3, 2, b"e");
        n.record(4, 3, b"open");
        n.pin(4);
        for i in 0..10_000u64 {
            n.record(1000 + i, 1, format!("f{i}").as_bytes());
            assert!(n.by_ino.len() <= 100 && n.by_name.len() <= 100);
        }
        assert_eq!(n.path(4).unwrap(), b"d/e/open");
        // The newest are there, the oldest gone.
        assert_eq!(n.path(10_999).unwrap(), b"f9999");
        assert_eq!(n.path(1000), Err(Errno::ENOENT));
        n.unpin(4);
        for i in 0..200u64 {
            n.record(20_000 + i, 1, format!("g{i}").as_bytes());
        }
        assert_eq!(n.path(4), Err(Errno::ENOENT));
    }
}
