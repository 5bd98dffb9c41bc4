//! umlfs's namespace operations: LOOKUP, GETATTR, SETATTR, READLINK, SYMLINK, MKNOD,
//! MKDIR, UNLINK, RMDIR, RENAME(2), LINK, ACCESS and STATFS, each checked against the
//! guest's modes and owners for the host caller (`perm.rs`), then done through the
//! VFS's public operations with the directory as the starting point and the name as
//! the path, so the VFS's own rules (kinds, emptiness, mount points, read-only
//! mounts, cross-device moves) apply as they do to the guest's shell.

use uml_proto::fuse::{
    decode_dev, fattr, rename_flags, GetattrIn, MkdirIn, MknodIn, SetattrIn, StatfsOut,
};

use super::perm::{Caller, R, W, X};
use super::session::{check_name, Fail, Op, Session};
use crate::fs::node::{now, Attr, FileKind, NewNode, SetAttr};
use crate::fs::{Errno, Loc, Vfs};

const S_ISGID: u32 = 0o2000;

/// The group a new node gets: the directory's when it is setgid, else the caller's.
fn new_gid(who: Caller, dir: &Attr) -> u32 {
    if dir.perm & S_ISGID != 0 {
        dir.gid
    } else {
        who.gid
    }
}

/// `dir`'s absolute path with `name` appended.
fn path_in(vfs: &mut Vfs, dir: Loc, name: &[u8]) -> Op<Vec<u8>> {
    let mut p = vfs.path_of(dir)?;
    if !p.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    Ok(p)
}

/// `name` in `dir`, if it exists.
fn child(vfs: &mut Vfs, dir: Loc, name: &[u8]) -> Op<Option<Loc>> {
    match vfs.resolve(dir, name, false) {
        Ok(l) => Ok(Some(l)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Session {
    /// A directory the caller may change names in: its Loc and attributes.
    fn writable_dir(&self, vfs: &mut Vfs, who: Caller, id: u64) -> Op<(Loc, Attr)> {
        let dir = self.loc(id)?;
        let attr = vfs.getattr(dir)?;
        if attr.kind != FileKind::Dir {
            return Err(Errno::ENOTDIR.into());
        }
        who.check_dir_write(&attr)?;
        Ok((dir, attr))
    }

    pub(super) fn lookup(
        &mut self,
        vfs: &mut Vfs,
        who: Caller,
        id: u64,
        name: &[u8],
    ) -> Op<Vec<u8>> {
        let dir = self.loc(id)?;
        let name = check_name(name).map_err(|_| Fail(libc::ENOENT))?;
        let dattr = vfs.getattr(dir)?;
        if dattr.kind != FileKind::Dir {
            return Err(Errno::ENOTDIR.into());
        }
        who.check(&dattr, X)?;
        let loc = vfs.resolve(dir, name, false)?;
        self.entry(vfs, loc, dir, name)
    }

    pub(super) fn getattr(&mut self, vfs: &mut Vfs, id: u64, _a: &GetattrIn) -> Op<Vec<u8>> {
        let loc = self.loc(id)?;
        let attr = vfs.getattr(loc)?;
        Ok(Self::attr_out(loc, &attr))
    }

    pub(super) fn setattr(
        &mut self,
        vfs: &mut Vfs,
        who: Caller,
        id: u64,
        a: &SetattrIn,
    ) -> Op<Vec<u8>> {
        let loc = self.loc(id)?;
        let attr = vfs.getattr(loc)?;
        let mut set = SetAttr::default();
        if a.valid & fattr::MODE != 0 {
            who.check_owner(&attr)?;
            let mut perm = a.mode & 0o7777;
            if !who.is_root() && who.gid != attr.gid {
                perm &= !S_ISGID;
            }
            set.perm = Some(perm);
        }
        let uid = (a.valid & fattr::UID != 0).then_some(a.uid);
        let gid = (a.valid & fattr::GID != 0).then_some(a.gid);
        if uid.is_some() || gid.is_some() {
            who.check_chown(&attr, uid, gid)?;
            set.uid = uid;
            set.gid = gid;
        }
        if a.valid & fattr::SIZE != 0 {
            // ftruncate on a descriptor open for writing needs no more.
            let through_fd = a.valid & fattr::FH != 0 && self.writable_handle(a.fh, loc);
            if !through_fd {
                who.check(&attr, W)?;
            }
            set.size = Some(a.size);
        }
        let t = now();
        for (bit, now_bit, value, slot) in [
            (fattr::ATIME, fattr::ATIME_NOW, a.atime, &mut set.atime),
            (fattr::MTIME, fattr::MTIME_NOW, a.mtime, &mut set.mtime),
        ] {
            if a.valid & now_bit != 0 {
                if who.check_owner(&attr).is_err() {
                    who.check(&attr, W)?;
                }
                *slot = Some(t);
            } else if a.valid & bit != 0 {
                who.check_owner(&attr)?;
                *slot = Some(i64::try_from(value).unwrap_or(i64::MAX));
            }
        }
        let new = if set == SetAttr::default() {
            attr
        } else {
            vfs.setattr_at(loc, &set)?
        };
        Ok(Self::attr_out(loc, &new))
    }

    pub(super) fn readlink(&mut self, vfs: &mut Vfs, id: u64) -> Op<Vec<u8>> {
        let loc = self.loc(id)?;
        if vfs.getattr(loc)?.kind != FileKind::Symlink {
            return Err(Errno::EINVAL.into());
        }
        Ok(vfs.fs(loc)?.readlink(loc.ino)?)
    }

    pub(super) fn symlink(
        &mut self,
        vfs: &mut Vfs,
        who: Caller,
        id: u64,
        name: &[u8],
        target: &[u8],
    ) -> Op<Vec<u8>> {
        let (dir, dattr) = self.writable_dir(vfs, who, id)?;
        let name = check_name(name)?;
        let loc = vfs.symlink(dir, target, name, who.uid, new_gid(who, &dattr))?;
        self.entry(vfs, loc, dir, name)
    }

    pub(super) fn mknod(
        &mut self,
        vfs: &mut Vfs,
        who: Caller,
        id: u64,
        a: &MknodIn,
        name: &[u8],
    ) -> Op<Vec<u8>> {
        let (dir, dattr) = self.writable_dir(vfs, who, id)?;
        let name = check_name(name)?;
        let kind = FileKind::from_mode(a.mode).ok_or(Errno::EINVAL)?;
        let node = NewNode {
            kind,
            perm: a.mode & 0o7777,
            uid: who.uid,
            gid: new_gid(who, &dattr),
            rdev: decode_dev(a.rdev),
        };
        let loc = vfs.mknod(dir, name, &node)?;
        self.entry(vfs, loc, dir, name)
    }

    pub(super) fn mkdir(
        &mut self,
        vfs: &mut Vfs,
        who: Caller,
        id: u64,
        a: &MkdirIn,
        name: &[u8],
    ) -> Op<Vec<u8>> {
        let (dir, dattr) = self.writable_dir(vfs, who, id)?;
        let name = check_name(name)?;
        let perm = (a.mode & 0o7777) | (dattr.perm & S_ISGID);
        let loc = vfs.mkdir(dir, name, perm, who.uid, new_gid(who, &dattr))?;
        self.entry(vfs, loc, dir, name)
    }

    /// UNLINK (`dir` false) and RMDIR.
    pub(super) fn remove(
        &mut self,
        vfs: &mut Vfs,
        who: Caller,
        id: u64,
        name: &[u8],
        dir_wanted: bool,
    ) -> Op<Vec<u8>> {
        let (dir, dattr) = self.writable_dir(vfs, who, id)?;
        let name = check_name(name)?;
        let victim = vfs.resolve(dir, name, false)?;
        who.check_sticky(&dattr, &vfs.getattr(victim)?)?;
        if dir_wanted {
            vfs.rmdir(dir, name)?;
        } else {
            vfs.unlink(dir, name)?;
        }
        Ok(Vec::new())
    }

    /// RENAME and RENAME2 (NOREPLACE only: no exchange, no whiteout).
    pub(super) fn rename(
        &mut self,
        vfs: &mut Vfs,
        who: Caller,
        (from_id, old): (u64, &[u8]),
        (to_id, new): (u64, &[u8]),
        flags: u32,
    ) -> Op<Vec<u8>> {
        if flags & !rename_flags::NOREPLACE != 0 {
            return Err(Errno::EINVAL.into());
        }
        let (odir, oattr) = self.writable_dir(vfs, who, from_id)?;
        let (ndir, nattr) = self.writable_dir(vfs, who, to_id)?;
        let (old, new) = (check_name(old)?, check_name(new)?);
        let src = vfs.resolve(odir, old, false)?;
        let sattr = vfs.getattr(src)?;
        who.check_sticky(&oattr, &sattr)?;
        if let Some(dst) = child(vfs, ndir, new)? {
            if flags & rename_flags::NOREPLACE != 0 {
                return Err(Errno::EEXIST.into());
            }
            who.check_sticky(&nattr, &vfs.getattr(dst)?)?;
        }
        // A directory moving elsewhere has its `..` rewritten.
        if sattr.kind == FileKind::Dir && odir != ndir {
            who.check(&sattr, W)?;
        }
        let target = if odir == ndir {
            new.to_vec()
        } else {
            path_in(vfs, ndir, new)?
        };
        vfs.rename(odir, old, &target)?;
        self.nodes.moved(src, ndir, new);
        Ok(Vec::new())
    }

    /// LINK: a new name in `id` for the node `src_id`.
    pub(super) fn link(
        &mut self,
        vfs: &mut Vfs,
        who: Caller,
        id: u64,
        src_id: u64,
        name: &[u8],
    ) -> Op<Vec<u8>> {
        let (dir, _) = self.writable_dir(vfs, who, id)?;
        let name = check_name(name)?;
        let src = self.loc(src_id)?;
        let sattr = vfs.getattr(src)?;
        // As Linux's protected_hardlinks: only files one owns or may read and write.
        if !who.is_root() && who.uid != sattr.uid && !who.may(&sattr, R | W) {
            return Err(Errno::EPERM.into());
        }
        let (sdir, sname) = self.nodes.link(src_id).ok_or(Fail(libc::ESTALE))?;
        let sname = sname.to_vec();
        let old = path_in(vfs, sdir, &sname)?;
        let root = vfs.root();
        if vfs.resolve(root, &old, false)? != src {
            return Err(Fail(libc::ESTALE));
        }
        let new = path_in(vfs, dir, name)?;
        vfs.link(root, &old, &new)?;
        self.entry(vfs, src, dir, name)
    }

    pub(super) fn access(&mut self, vfs: &mut Vfs, who: Caller, id: u64, mask: u32) -> Op<Vec<u8>> {
        let loc = self.loc(id)?;
        let attr = vfs.getattr(loc)?;
        let want = mask & (R | W | X);
        let data = matches!(
            attr.kind,
            FileKind::File | FileKind::Dir | FileKind::Symlink
        );
        if want & W != 0 && data && vfs.fs(loc)?.read_only() {
            return Err(Errno::EROFS.into());
        }
        who.check(&attr, want)?;
        Ok(Vec::new())
    }

    pub(super) fn statfs(&mut self, vfs: &mut Vfs, id: u64) -> Op<Vec<u8>> {
        let loc = self.loc(id)?;
        let s = vfs.fs(loc)?.statfs()?;
        Ok(StatfsOut {
            blocks: s.blocks,
            bfree: s.bfree,
            bavail: s.bavail,
            files: s.files,
            ffree: s.ffree,
            bsize: s.bsize,
            namelen: s.namelen,
            frsize: s.bsize,
            ..StatfsOut::default()
        }
        .to_bytes())
    }
}
