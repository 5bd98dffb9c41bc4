//! The node ids umlfs hands the host kernel: each stands for one place in the guest's
//! mounted tree (a VFS `Loc`) and lives while the host holds lookup references on it
//! (every entry reply adds one, FORGET takes them back). Each node also remembers the
//! directory and name it was last reached by, so that it can be opened through the
//! VFS's own `open` (which keeps the guest's open-file accounting right).

use std::collections::HashMap;

use uml_proto::fuse::ROOT_ID;

use crate::fs::Loc;

#[derive(Debug, Clone)]
struct Node {
    loc: Loc,
    lookups: u64,
    /// Where it was last seen: (directory, name). None for the root.
    link: Option<(Loc, Vec<u8>)>,
}

/// node id <-> Loc, with lookup counts.
#[derive(Debug)]
pub struct Nodes {
    by_id: HashMap<u64, Node>,
    by_loc: HashMap<Loc, u64>,
    next: u64,
}

impl Nodes {
    /// A table whose root (node id 1) is `root`.
    pub fn new(root: Loc) -> Nodes {
        let mut n = Nodes {
            by_id: HashMap::new(),
            by_loc: HashMap::new(),
            next: ROOT_ID + 1,
        };
        n.by_id.insert(
            ROOT_ID,
            Node {
                loc: root,
                lookups: 1,
                link: None,
            },
        );
        n.by_loc.insert(root, ROOT_ID);
        n
    }

    /// The place a node id stands for.
    pub fn loc(&self, id: u64) -> Option<Loc> {
        self.by_id.get(&id).map(|n| n.loc)
    }

    /// The directory and name a node was last reached by.
    pub fn link(&self, id: u64) -> Option<(Loc, &[u8])> {
        let (dir, name) = self.by_id.get(&id)?.link.as_ref()?;
        Some((*dir, name.as_slice()))
    }

    /// A node reached as `name` in `dir`: its id (new or existing) with one more
    /// lookup reference.
    pub fn found(&mut self, loc: Loc, dir: Loc, name: &[u8]) -> u64 {
        if let Some(&id) = self.by_loc.get(&loc) {
            if let Some(n) = self.by_id.get_mut(&id) {
                n.lookups = n.lookups.saturating_add(1);
                if id != ROOT_ID {
                    n.link = Some((dir, name.to_vec()));
                }
                return id;
            }
        }
        let id = self.next;
        self.next += 1;
        self.by_id.insert(
            id,
            Node {
                loc,
                lookups: 1,
                link: Some((dir, name.to_vec())),
            },
        );
        self.by_loc.insert(loc, id);
        id
    }

    /// A node moved to `name` in `dir` (a rename through umlfs).
    pub fn moved(&mut self, loc: Loc, dir: Loc, name: &[u8]) {
        if let Some(id) = self.by_loc.get(&loc) {
            if let Some(n) = self.by_id.get_mut(id) {
                if *id != ROOT_ID {
                    n.link = Some((dir, name.to_vec()));
                }
            }
        }
    }

    /// The host dropped `count` lookup references; the last one frees the id (the
    /// root's never goes).
    pub fn forget(&mut self, id: u64, count: u64) {
        if id == ROOT_ID {
            return;
        }
        let Some(n) = self.by_id.get_mut(&id) else {
            return;
        };
        n.lookups = n.lookups.saturating_sub(count);
        if n.lookups == 0 {
            let loc = n.loc;
            self.by_id.remove(&id);
            if self.by_loc.get(&loc) == Some(&id) {
                self.by_loc.remove(&loc);
            }
        }
    }

    /// How many node ids are alive (the root included).
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(ino: u64) -> Loc {
        Loc { mount: 0, ino }
    }

    #[test]
    fn lookups_count_and_forget_frees() {
        let mut n = Nodes::new(loc(2));
        assert_eq!(n.loc(ROOT_ID), Some(loc(2)));
        let a = n.found(loc(12), loc(2), b"a");
        assert_eq!(n.found(loc(12), loc(2), b"b"), a);
        assert_eq!(n.link(a), Some((loc(2), &b"b"[..])));
        let c = n.found(loc(13), loc(2), b"c");
        assert_ne!(a, c);
        n.forget(a, 1);
        assert_eq!(n.loc(a), Some(loc(12)));
        n.forget(a, 1);
        assert_eq!(n.loc(a), None);
        // A later lookup of the same place gets a fresh id.
        assert_ne!(n.found(loc(12), loc(2), b"a"), a);
        n.forget(ROOT_ID, 100);
        assert_eq!(n.loc(ROOT_ID), Some(loc(2)));
        assert_eq!(n.len(), 3);
    }

    #[test]
    fn the_root_has_no_link_and_moves_are_remembered() {
        let mut n = Nodes::new(loc(2));
        assert_eq!(n.found(loc(2), loc(2), b"x"), ROOT_ID);
        assert_eq!(n.link(ROOT_ID), None);
        let a = n.found(loc(12), loc(2), b"a");
        n.moved(loc(12), loc(30), b"z");
        assert_eq!(n.link(a), Some((loc(30), &b"z"[..])));
    }
}
