//! umlfs's open files and directories: OPEN and CREATE go through the VFS's `open`
//! (so the guest counts the host's opens like its own), READ and WRITE through the
//! same `pread`/`write` the guest's programs use, RELEASE closes; OPENDIR snapshots
//! the entries that READDIR then hands out by offset.

use uml_proto::fuse::{CreateIn, Dirent, OpenOut, ReadIn, WriteIn, WriteOut};

use super::handles::Handle;
use super::perm::{wanted_by_flags, Caller, R, X};
use super::session::{check_name, host_ino, Fail, Op, Session, MAX_WRITE};
use crate::fs::node::FileKind;
use crate::fs::oflag::*;
use crate::fs::{Errno, Loc, Vfs};

/// The open(2) flags umlfs passes on to the VFS.
const PASSED: u32 = O_ACCMODE | O_APPEND | O_TRUNC;

fn open_out(fh: u64) -> Vec<u8> {
    OpenOut {
        fh,
        ..OpenOut::default()
    }
    .to_bytes()
}

impl Session {
    /// Whether `fh` is a file open for writing on `loc`.
    pub(super) fn writable_handle(&mut self, fh: u64, loc: Loc) -> bool {
        matches!(self.handles.get_mut(fh), Some(Handle::File(f)) if f.loc == loc && f.writable())
    }

    pub(super) fn open(&mut self, vfs: &mut Vfs, who: Caller, id: u64, flags: u32) -> Op<Vec<u8>> {
        let loc = self.loc(id)?;
        let attr = vfs.getattr(loc)?;
        match attr.kind {
            FileKind::Dir => return Err(Errno::EISDIR.into()),
            FileKind::Symlink => return Err(Errno::ELOOP.into()),
            _ => {}
        }
        who.check(&attr, wanted_by_flags(flags))?;
        self.handles.room()?;
        let (dir, name) = self.nodes.link(id).ok_or(Fail(libc::ESTALE))?;
        let name = name.to_vec();
        let file = vfs.open(dir, &name, (flags & PASSED) | O_NOFOLLOW, 0, 0, 0)?;
        if file.loc != loc {
            // The guest renamed or replaced it since the host looked it up.
            let _ = vfs.close(file);
            return Err(Fail(libc::ESTALE));
        }
        let fh = self.handles.insert(Handle::File(file));
        Ok(open_out(fh))
    }

    pub(super) fn create(
        &mut self,
        vfs: &mut Vfs,
        who: Caller,
        id: u64,
        a: &CreateIn,
        name: &[u8],
    ) -> Op<Vec<u8>> {
        let dir = self.loc(id)?;
        let name = check_name(name)?;
        let dattr = vfs.getattr(dir)?;
        if dattr.kind != FileKind::Dir {
            return Err(Errno::ENOTDIR.into());
        }
        who.check(&dattr, X)?;
        self.handles.room()?;
        let flags = (a.flags & (PASSED | O_EXCL)) | O_CREAT | O_NOFOLLOW;
        match vfs.resolve(dir, name, false) {
            Ok(_) if flags & O_EXCL != 0 => return Err(Errno::EEXIST.into()),
            Ok(existing) => who.check(&vfs.getattr(existing)?, wanted_by_flags(flags))?,
            Err(Errno::ENOENT) => who.check_dir_write(&dattr)?,
            Err(e) => return Err(e.into()),
        }
        let gid = if dattr.perm & 0o2000 != 0 {
            dattr.gid
        } else {
            who.gid
        };
        let file = vfs.open(dir, name, flags, a.mode & 0o7777, who.uid, gid)?;
        let loc = file.loc;
        let entry = match self.entry(vfs, loc, dir, name) {
            Ok(e) => e,
            Err(e) => {
                let _ = vfs.close(file);
                return Err(e);
            }
        };
        let fh = self.handles.insert(Handle::File(file));
        let mut out = entry;
        out.extend_from_slice(&open_out(fh));
        Ok(out)
    }

    pub(super) fn read(&mut self, vfs: &mut Vfs, a: &ReadIn) -> Op<Vec<u8>> {
        let Some(Handle::File(f)) = self.handles.get_mut(a.fh) else {
            return Err(Errno::EBADF.into());
        };
        let mut buf = vec![0u8; a.size.min(MAX_WRITE) as usize];
        let n = vfs.pread(f, a.offset, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    pub(super) fn write(&mut self, vfs: &mut Vfs, a: &WriteIn, data: &[u8]) -> Op<Vec<u8>> {
        let Some(Handle::File(f)) = self.handles.get_mut(a.fh) else {
            return Err(Errno::EBADF.into());
        };
        f.offset = a.offset;
        let n = vfs.write(f, data)?;
        Ok(WriteOut {
            size: n as u32,
            padding: 0,
        }
        .to_bytes())
    }

    /// RELEASE and RELEASEDIR.
    pub(super) fn release(&mut self, vfs: &mut Vfs, fh: u64) -> Op<Vec<u8>> {
        match self.handles.remove(fh) {
            Some(Handle::File(f)) => vfs.close(f)?,
            Some(Handle::Dir { .. }) => {}
            None => return Err(Errno::EBADF.into()),
        }
        Ok(Vec::new())
    }

    /// FSYNC and FSYNCDIR: the filesystem holding the node writes its cache back.
    pub(super) fn fsync(&mut self, vfs: &mut Vfs, id: u64) -> Op<Vec<u8>> {
        let loc = self.loc(id)?;
        vfs.fs(loc)?.sync()?;
        Ok(Vec::new())
    }

    pub(super) fn opendir(&mut self, vfs: &mut Vfs, who: Caller, id: u64) -> Op<Vec<u8>> {
        let loc = self.loc(id)?;
        let attr = vfs.getattr(loc)?;
        if attr.kind != FileKind::Dir {
            return Err(Errno::ENOTDIR.into());
        }
        who.check(&attr, R)?;
        self.handles.room()?;
        let fh = self.handles.insert(Handle::Dir {
            loc,
            entries: Vec::new(),
        });
        Ok(open_out(fh))
    }

    /// READDIR: the entries from index `offset` on, as many as fit `size` bytes; from
    /// offset 0 (a new listing, or a rewind) they are read afresh.
    pub(super) fn readdir(&mut self, vfs: &mut Vfs, a: &ReadIn) -> Op<Vec<u8>> {
        let Some(Handle::Dir { loc, entries }) = self.handles.get_mut(a.fh) else {
            return Err(Errno::EBADF.into());
        };
        if a.offset == 0 {
            *entries = vfs.readdir_at(*loc)?;
        }
        let mount = loc.mount;
        let mut out = Vec::new();
        let start = usize::try_from(a.offset).unwrap_or(usize::MAX);
        for (i, e) in entries.iter().enumerate().skip(start) {
            let d = Dirent {
                ino: host_ino(Loc { mount, ino: e.ino }),
                off: i as u64 + 1,
                kind: e.kind.mode_bits() >> 12,
                name: &e.name,
            };
            if out.len() + d.size() > a.size as usize {
                break;
            }
            d.write_to(&mut out);
        }
        Ok(out)
    }
}
