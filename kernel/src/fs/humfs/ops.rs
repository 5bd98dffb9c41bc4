//! humfs's `FileSystem` operations: each changes data/ and the metadata together
//! (undoing the first when the second fails) and charges or refunds the size.

use std::os::unix::fs::FileExt;
use std::path::Path;

use nix::sys::stat::SFlag;
use uml_proto::humfs::layout;
use uml_proto::humfs::{NodeKind, Record};

use super::host::{self, kind, under};
use super::meta::node_kind;
use super::{errno, host_kind, name_path, HumFs, BLOCK, DIR_BYTES, HUMFS_MAGIC, ROOT};
use crate::fs::errno::{Errno, FsResult};
use crate::fs::node::{Attr, DirEntry, FileKind, FileSystem, Ino, NewNode, SetAttr, StatFs};

impl FileSystem for HumFs {
    fn fs_type(&self) -> &'static str {
        "humfs"
    }

    fn root(&self) -> Ino {
        ROOT
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn getattr(&mut self, ino: Ino) -> FsResult<Attr> {
        let (st, meta) = self.state(ino)?;
        self.attr_of(ino, &st, meta)
    }

    fn setattr(&mut self, ino: Ino, set: &SetAttr) -> FsResult<Attr> {
        self.writable()?;
        let (st, meta) = self.state(ino)?;
        let rel = self.node(ino)?.rel.clone();
        let shown_perm = meta.and_then(|m| m.mode).unwrap_or(st.st_mode & 0o7777);
        if self.version() == 1 && set.perm.is_some_and(|p| p != shown_perm) {
            // Version 1 records no mode: it is the data file's own.
            return Err(Errno::EOPNOTSUPP);
        }
        if let Some(size) = set.size {
            let old = st.st_size as u64;
            if size > old {
                self.charge(size - old)?;
            }
            let file = self.file(ino, true)?;
            let r = file.set_len(size).map_err(errno);
            drop(file);
            if let Err(e) = r {
                if size > old {
                    self.refund(size - old);
                }
                return Err(e);
            }
            if size < old {
                self.refund(old - size);
            }
        }
        if set.perm.is_some() || set.uid.is_some() || set.gid.is_some() {
            let before = self.attr_of(ino, &st, meta)?;
            let record = Record {
                mode: Some(set.perm.unwrap_or(before.perm)),
                uid: set.uid.unwrap_or(before.uid),
                gid: set.gid.unwrap_or(before.gid),
                kind: node_kind(before.kind, before.rdev),
            };
            // An open file whose last name is gone keeps its metadata in memory only.
            if let Some(rel) = &rel {
                self.write_meta(rel, before.kind == FileKind::Dir, &record)?;
            }
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.meta = Some(record);
            }
        }
        if set.atime.is_some() || set.mtime.is_some() {
            if let Some(rel) = &rel {
                self.top
                    .set_times(&Self::data(rel), set.atime, set.mtime)
                    .map_err(errno)?;
            }
        }
        self.getattr(ino)
    }

    fn lookup(&mut self, dir: Ino, name: &[u8]) -> FsResult<Ino> {
        let dir_rel = self.rel(dir)?;
        let rel = if name == b".." {
            dir_rel.parent().map(Path::to_owned).unwrap_or_default()
        } else if name == b"." {
            dir_rel
        } else {
            dir_rel.join(name_path(name))
        };
        if rel.as_os_str().is_empty() {
            return Ok(ROOT);
        }
        let st = self.lstat(&rel)?;
        Ok(self.register(&st, rel))
    }

    fn mknod(&mut self, dir: Ino, name: &[u8], node: &NewNode) -> FsResult<Ino> {
        self.writable()?;
        let is_dir = node.kind == FileKind::Dir;
        self.check_name(name, is_dir)?;
        let rel = self.child(dir, name)?;
        let data = Self::data(&rel);
        let cost = if is_dir { DIR_BYTES } else { 0 };
        self.charge(cost)?;
        let made = match node.kind {
            FileKind::Dir => self.top.mkdir(&data),
            FileKind::Fifo => self.top.mkfifo(&data),
            _ => self.top.create_file(&data).map(drop),
        };
        if let Err(e) = made {
            self.refund(cost);
            return Err(errno(e));
        }
        let record = Record {
            mode: Some(node.perm & 0o7777),
            uid: node.uid,
            gid: node.gid,
            kind: node_kind(node.kind, node.rdev),
        };
        let recorded = if is_dir {
            self.make_dir_meta(&rel, &record)
        } else {
            self.write_meta(&rel, false, &record)
        };
        if let Err(e) = recorded {
            if is_dir {
                self.remove_dir_meta(&rel);
                let _ = self.top.rmdir(&data);
            } else {
                let _ = self.top.unlink(&data);
            }
            self.refund(cost);
            return Err(e);
        }
        let st = self.lstat(&rel)?;
        let ino = self.register(&st, rel);
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.meta = Some(record);
        }
        Ok(ino)
    }

    fn symlink(
        &mut self,
        dir: Ino,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> FsResult<Ino> {
        self.writable()?;
        self.check_name(name, false)?;
        let rel = self.child(dir, name)?;
        let cost = target.len() as u64;
        self.charge(cost)?;
        if let Err(e) = self.top.symlink(target, &Self::data(&rel)) {
            self.refund(cost);
            return Err(errno(e));
        }
        let record = Record {
            mode: Some(0o777),
            uid,
            gid,
            kind: NodeKind::Plain,
        };
        if let Err(e) = self.write_meta(&rel, false, &record) {
            let _ = self.top.unlink(&Self::data(&rel));
            self.refund(cost);
            return Err(e);
        }
        let st = self.lstat(&rel)?;
        Ok(self.register(&st, rel))
    }

    fn link(&mut self, ino: Ino, dir: Ino, name: &[u8]) -> FsResult<()> {
        self.writable()?;
        self.check_name(name, false)?;
        let (st, meta) = self.state(ino)?;
        let from = self.rel(ino)?;
        let to = self.child(dir, name)?;
        self.top
            .link(&Self::data(&from), &Self::data(&to))
            .map_err(errno)?;
        let v = self.version();
        let meta_to = layout::metadata_path(v, &to, false);
        if let Some(parent) = meta_to.parent() {
            self.make_dirs(parent);
        }
        let linked = match self.top.link(
            &layout::metadata_path(v, &from, false),
            &layout::metadata_path(v, &to, false),
        ) {
            Ok(()) => Ok(()),
            // No metadata file to share: write one with what the node shows.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let a = self.attr_of(ino, &st, meta)?;
                let record = Record {
                    mode: Some(a.perm),
                    uid: a.uid,
                    gid: a.gid,
                    kind: NodeKind::Plain,
                };
                self.write_meta(&to, false, &record)
            }
            Err(_) => Err(Errno::EIO),
        };
        if let Err(e) = linked {
            let _ = self.top.unlink(&Self::data(&to));
            return Err(e);
        }
        Ok(())
    }

    fn unlink(&mut self, dir: Ino, name: &[u8]) -> FsResult<()> {
        self.writable()?;
        let rel = self.child(dir, name)?;
        let st = self.lstat(&rel)?;
        self.top.unlink(&Self::data(&rel)).map_err(errno)?;
        let last = st.st_nlink <= 1;
        if last {
            self.refund(Self::cost(&st));
        }
        self.forget_name(&rel, last);
        self.remove_file_meta(&rel)
    }

    fn rmdir(&mut self, dir: Ino, name: &[u8]) -> FsResult<()> {
        self.writable()?;
        let rel = self.child(dir, name)?;
        self.top.rmdir(&Self::data(&rel)).map_err(errno)?;
        self.remove_dir_meta(&rel);
        self.refund(DIR_BYTES);
        self.forget_name(&rel, true);
        Ok(())
    }

    fn rename(&mut self, odir: Ino, oname: &[u8], ndir: Ino, nname: &[u8]) -> FsResult<()> {
        self.writable()?;
        let from = self.child(odir, oname)?;
        let to = self.child(ndir, nname)?;
        let st = self.lstat(&from)?;
        let is_dir = kind(&st) == SFlag::S_IFDIR;
        self.check_name(nname, is_dir)?;
        let replaced = match self.lstat(&to) {
            Ok(t) => Some(t),
            Err(Errno::ENOENT) => None,
            Err(e) => return Err(e),
        };
        if replaced.is_some_and(|t| (t.st_dev, t.st_ino) == (st.st_dev, st.st_ino)) {
            return Ok(()); // two names of one file: nothing to do, as rename(2)
        }
        self.top
            .rename(&Self::data(&from), &Self::data(&to))
            .map_err(errno)?;
        let v = self.version();
        // The destination's metadata directory may be missing (made on the host).
        if is_dir {
            let dest_parent = to.parent().unwrap_or(Path::new(""));
            for root in layout::metadata_roots(v) {
                self.make_dirs(&under(root, dest_parent));
            }
        } else if let Some(parent) = layout::metadata_path(v, &to, false).parent() {
            self.make_dirs(parent);
        }
        let moved = if is_dir {
            // The replaced directory was empty: its metadata goes first.
            if replaced.is_some() {
                self.remove_dir_meta(&to);
            }
            layout::metadata_roots(v).iter().try_for_each(|root| {
                match self.top.rename(&under(root, &from), &under(root, &to)) {
                    Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(e),
                    _ => Ok(()),
                }
            })
        } else {
            match self.top.rename(
                &layout::metadata_path(v, &from, false),
                &layout::metadata_path(v, &to, false),
            ) {
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    // No metadata to carry: the replaced name's must not stay.
                    self.top
                        .unlink(&layout::metadata_path(v, &to, false))
                        .or_else(|e| match e.raw_os_error() {
                            Some(libc::ENOENT) => Ok(()),
                            _ => Err(e),
                        })
                }
                other => other,
            }
        };
        if moved.is_err() {
            // Put the data back where its metadata is.
            let _ = self.top.rename(&Self::data(&to), &Self::data(&from));
            return Err(Errno::EIO);
        }
        if let Some(t) = replaced {
            let last = t.st_nlink <= 1 || kind(&t) == SFlag::S_IFDIR;
            if last {
                self.refund(Self::cost(&t));
            }
            self.forget_name(&to, last);
        }
        self.move_names(&from, &to);
        Ok(())
    }

    fn readlink(&mut self, ino: Ino) -> FsResult<Vec<u8>> {
        let rel = self.rel(ino)?;
        self.top.readlink(&Self::data(&rel)).map_err(errno)
    }

    fn read(&mut self, ino: Ino, offset: u64, buf: &mut [u8]) -> FsResult<usize> {
        let file = self.file(ino, false)?;
        file.read_at(buf, offset).map_err(errno)
    }

    fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> FsResult<usize> {
        self.writable()?;
        let old = self.file(ino, true)?.metadata().map_err(errno)?.len();
        let end = offset.checked_add(data.len() as u64).ok_or(Errno::EFBIG)?;
        let free = self.sb.total.saturating_sub(self.sb.used);
        // A write that would grow the file past the size is cut short; one that can
        // write nothing fails.
        let allowed = if end > old + free {
            (old + free).saturating_sub(offset) as usize
        } else {
            data.len()
        };
        if allowed == 0 && !data.is_empty() {
            return Err(Errno::ENOSPC);
        }
        let file = self.file(ino, true)?;
        let n = file.write_at(&data[..allowed], offset).map_err(errno)?;
        let new = file.metadata().map_err(errno)?.len();
        drop(file);
        if new > old {
            self.sb.used += new - old;
            self.sb_dirty = true;
        }
        Ok(n)
    }

    fn readdir(&mut self, dir: Ino) -> FsResult<Vec<DirEntry>> {
        let rel = self.rel(dir)?;
        let parent = self.lookup(dir, b"..")?;
        let mut out = vec![
            DirEntry {
                ino: dir,
                kind: FileKind::Dir,
                name: b".".to_vec(),
            },
            DirEntry {
                ino: parent,
                kind: FileKind::Dir,
                name: b"..".to_vec(),
            },
        ];
        for name in self.top.list(&Self::data(&rel)).map_err(errno)? {
            let child = rel.join(name_path(&name));
            let Ok(st) = self.lstat(&child) else {
                continue; // gone since the listing
            };
            let ino = self.register(&st, child);
            // A damaged metadata file still lists the name (its stat then fails).
            let kind = match self.getattr(ino) {
                Ok(a) => a.kind,
                Err(_) => host_kind(&st).unwrap_or(FileKind::File),
            };
            out.push(DirEntry { ino, kind, name });
        }
        Ok(out)
    }

    fn statfs(&mut self) -> FsResult<StatFs> {
        let free = self.sb.total.saturating_sub(self.sb.used);
        Ok(StatFs {
            fs_type: HUMFS_MAGIC,
            bsize: BLOCK as u32,
            blocks: self.sb.total / BLOCK,
            bfree: free / BLOCK,
            bavail: free / BLOCK,
            files: 0,
            ffree: 0,
            namelen: 255,
        })
    }

    fn sync(&mut self) -> FsResult<()> {
        for n in self.nodes.values() {
            if let Some(f) = &n.file {
                let _ = f.sync_data();
            }
        }
        self.write_superblock()
    }

    fn hold(&mut self, ino: Ino) {
        let Ok(node) = self.node(ino) else {
            return;
        };
        let Some(rel) = node.rel.clone() else {
            return;
        };
        let data = Self::data(&rel);
        let file = self
            .top
            .open_file(&data, !self.read_only)
            .or_else(|_| self.top.open_file(&data, false));
        if let (Ok(f), Some(n)) = (file, self.nodes.get_mut(&ino)) {
            if host::same_file(&f, n.host) {
                n.file = Some(f);
            }
        }
    }

    fn release(&mut self, ino: Ino) -> FsResult<()> {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.file = None;
            if n.rel.is_none() {
                self.nodes.remove(&ino);
            }
        }
        Ok(())
    }
}
