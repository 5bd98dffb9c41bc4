//! Permission checks for host callers of umlfs. The mount is made without
//! `default_permissions`, so the host kernel leaves them to us: a host process acts
//! with its own uid and gid (as numbers, the same in the guest) against the modes and
//! owners the guest's files have, as Linux would check a guest process. uid 0 passes
//! every check but execute (which needs an x bit somewhere). Only the primary group
//! counts: FUSE does not send the caller's supplementary groups, so a member of a
//! file's group through them is treated as "other" (a refusal, never a grant).

use crate::fs::node::{Attr, FileKind};
use crate::fs::Errno;

/// Read, write, execute (search) as access(2) numbers them.
pub const R: u32 = 4;
pub const W: u32 = 2;
pub const X: u32 = 1;

const S_ISVTX: u32 = 0o1000;

/// Who asks: the host caller's ids from the request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
}

impl Caller {
    pub fn is_root(self) -> bool {
        self.uid == 0
    }

    /// Whether `want` (a mask of R, W, X) is granted on a node with `attr`.
    pub fn may(self, attr: &Attr, want: u32) -> bool {
        if self.is_root() {
            return want & X == 0 || attr.kind == FileKind::Dir || attr.perm & 0o111 != 0;
        }
        let bits = if self.uid == attr.uid {
            attr.perm >> 6
        } else if self.gid == attr.gid {
            attr.perm >> 3
        } else {
            attr.perm
        } & 7;
        bits & want == want
    }

    /// `may`, as an EACCES error.
    pub fn check(self, attr: &Attr, want: u32) -> Result<(), Errno> {
        if self.may(attr, want) {
            Ok(())
        } else {
            Err(Errno::EACCES)
        }
    }

    /// Making or removing a name in directory `dir` needs write and search on it.
    pub fn check_dir_write(self, dir: &Attr) -> Result<(), Errno> {
        self.check(dir, W | X)
    }

    /// Removing or replacing `victim` in `dir`: with the sticky bit set only the owner
    /// of either (or root) may.
    pub fn check_sticky(self, dir: &Attr, victim: &Attr) -> Result<(), Errno> {
        if dir.perm & S_ISVTX == 0
            || self.is_root()
            || self.uid == dir.uid
            || self.uid == victim.uid
        {
            Ok(())
        } else {
            Err(Errno::EPERM)
        }
    }

    /// chmod and explicit times: the owner or root.
    pub fn check_owner(self, attr: &Attr) -> Result<(), Errno> {
        if self.is_root() || self.uid == attr.uid {
            Ok(())
        } else {
            Err(Errno::EPERM)
        }
    }

    /// chown: only root gives a file away; the owner may change its group to their own.
    pub fn check_chown(self, attr: &Attr, uid: Option<u32>, gid: Option<u32>) -> Result<(), Errno> {
        if self.is_root() {
            return Ok(());
        }
        let uid_ok = uid.is_none_or(|u| u == attr.uid);
        let gid_ok = gid.is_none_or(|g| g == attr.gid || (self.uid == attr.uid && g == self.gid));
        if uid_ok && gid_ok && self.uid == attr.uid {
            Ok(())
        } else {
            Err(Errno::EPERM)
        }
    }
}

/// What access(2)'s mode asks for, from open(2) flags: read and/or write, and write
/// for O_TRUNC.
pub fn wanted_by_flags(flags: u32) -> u32 {
    use crate::fs::oflag::*;
    let mut want = match flags & O_ACCMODE {
        O_RDONLY => R,
        O_WRONLY => W,
        _ => R | W,
    };
    if flags & O_TRUNC != 0 {
        want |= W;
    }
    want
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: FileKind, perm: u32, uid: u32, gid: u32) -> Attr {
        Attr::new(5, kind, perm, uid, gid)
    }

    const ROOT: Caller = Caller { uid: 0, gid: 0 };
    const ALICE: Caller = Caller {
        uid: 1000,
        gid: 100,
    };
    const BOB: Caller = Caller {
        uid: 1001,
        gid: 100,
    };
    const EVE: Caller = Caller {
        uid: 1002,
        gid: 200,
    };

    #[test]
    fn owner_group_and_other_bits() {
        let f = attr(FileKind::File, 0o640, 1000, 100);
        assert!(ALICE.may(&f, R | W));
        assert!(BOB.may(&f, R) && !BOB.may(&f, W));
        assert!(!EVE.may(&f, R));
        assert_eq!(EVE.check(&f, R), Err(Errno::EACCES));
        // The owner's bits count even when "other" would allow more.
        let g = attr(FileKind::File, 0o047, 1000, 100);
        assert!(!ALICE.may(&g, R) && EVE.may(&g, R | W | X));
    }

    #[test]
    fn root_passes_all_but_execute_without_an_x_bit() {
        let f = attr(FileKind::File, 0o000, 1000, 100);
        assert!(ROOT.may(&f, R | W));
        assert!(!ROOT.may(&f, X));
        assert!(ROOT.may(&attr(FileKind::File, 0o001, 1, 1), X));
        assert!(ROOT.may(&attr(FileKind::Dir, 0o000, 1, 1), X));
    }

    #[test]
    fn sticky_directories_protect_other_users_files() {
        let tmp = attr(FileKind::Dir, 0o1777, 0, 0);
        let alices = attr(FileKind::File, 0o644, 1000, 100);
        assert_eq!(ALICE.check_sticky(&tmp, &alices), Ok(()));
        assert_eq!(BOB.check_sticky(&tmp, &alices), Err(Errno::EPERM));
        assert_eq!(ROOT.check_sticky(&tmp, &alices), Ok(()));
        let plain = attr(FileKind::Dir, 0o777, 0, 0);
        assert_eq!(BOB.check_sticky(&plain, &alices), Ok(()));
    }

    #[test]
    fn only_root_gives_files_away() {
        let f = attr(FileKind::File, 0o644, 1000, 100);
        assert_eq!(ROOT.check_chown(&f, Some(5), Some(5)), Ok(()));
        assert_eq!(ALICE.check_chown(&f, Some(1001), None), Err(Errno::EPERM));
        assert_eq!(ALICE.check_chown(&f, None, Some(100)), Ok(()));
        assert_eq!(ALICE.check_chown(&f, None, Some(300)), Err(Errno::EPERM));
        assert_eq!(EVE.check_chown(&f, None, Some(200)), Err(Errno::EPERM));
        assert_eq!(EVE.check_owner(&f), Err(Errno::EPERM));
    }

    #[test]
    fn open_flags_ask_for_what_they_need() {
        use crate::fs::oflag::*;
        assert_eq!(wanted_by_flags(O_RDONLY), R);
        assert_eq!(wanted_by_flags(O_WRONLY), W);
        assert_eq!(wanted_by_flags(O_RDWR), R | W);
        assert_eq!(wanted_by_flags(O_RDONLY | O_TRUNC), R | W);
    }
}
