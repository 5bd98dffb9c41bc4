//! tmpfs: a filesystem in memory (for /tmp, /dev/shm and a root when there is no disk).
//! Inodes live in a map; directories are sorted maps from name to inode.

use std::collections::{BTreeMap, HashMap};

use super::errno::{Errno, FsResult};
use super::node::{now, Attr, DirEntry, FileKind, FileSystem, Ino, NewNode, SetAttr, StatFs};

/// statfs's f_type for tmpfs.
pub const TMPFS_MAGIC: u64 = 0x0102_1994;
const ROOT: Ino = 1;
/// Largest file (a bound so a guest cannot exhaust the host by one seek and write).
const MAX_FILE: u64 = 1 << 34;

enum Data {
    File(Vec<u8>),
    Dir {
        entries: BTreeMap<Vec<u8>, Ino>,
        parent: Ino,
    },
    Symlink(Vec<u8>),
    Special,
}

struct Node {
    attr: Attr,
    data: Data,
}

/// An in-memory filesystem.
pub struct Tmpfs {
    nodes: HashMap<Ino, Node>,
    next: Ino,
    /// Bytes of file data allowed (0: no limit).
    limit: u64,
    used: u64,
    /// Inodes some open file refers to.
    held: std::collections::HashSet<Ino>,
}

fn attr(ino: Ino, kind: FileKind, perm: u32, uid: u32, gid: u32) -> Attr {
    let t = now();
    Attr {
        atime: t,
        mtime: t,
        ctime: t,
        ..Attr::new(ino, kind, perm, uid, gid)
    }
}

impl Tmpfs {
    /// An empty tmpfs (root directory mode 1777) holding at most `limit` bytes of file
    /// data (0: no limit).
    pub fn new(limit: u64) -> Tmpfs {
        let mut root = attr(ROOT, FileKind::Dir, 0o1777, 0, 0);
        root.nlink = 2;
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                attr: root,
                data: Data::Dir {
                    entries: BTreeMap::new(),
                    parent: ROOT,
                },
            },
        );
        Tmpfs {
            nodes,
            next: ROOT + 1,
            limit,
            used: 0,
            held: std::collections::HashSet::new(),
        }
    }

    fn node(&mut self, ino: Ino) -> FsResult<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn entries(&mut self, dir: Ino) -> FsResult<&mut BTreeMap<Vec<u8>, Ino>> {
        match &mut self.node(dir)?.data {
            Data::Dir { entries, .. } => Ok(entries),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn touch(&mut self, ino: Ino) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            let t = now();
            n.attr.mtime = t;
            n.attr.ctime = t;
        }
    }

    fn add(&mut self, dir: Ino, name: &[u8], node: Node) -> FsResult<Ino> {
        let ino = node.attr.ino;
        let is_dir = node.attr.kind == FileKind::Dir;
        self.entries(dir)?.insert(name.to_vec(), ino);
        self.nodes.insert(ino, node);
        if is_dir {
            self.node(dir)?.attr.nlink += 1;
        }
        self.touch(dir);
        Ok(ino)
    }

    fn new_ino(&mut self) -> Ino {
        self.next += 1;
        self.next - 1
    }

    /// Drops one link of `ino`, freeing it at zero.
    fn drop_link(&mut self, ino: Ino) {
        let Some(n) = self.nodes.get_mut(&ino) else {
            return;
        };
        n.attr.nlink = n.attr.nlink.saturating_sub(1);
        n.attr.ctime = now();
        let dead = n.attr.nlink == 0 || (n.attr.kind == FileKind::Dir && n.attr.nlink <= 1);
        if dead {
            n.attr.nlink = 0;
            if !self.held.contains(&ino) {
                self.free(ino);
            }
        }
    }

    fn free(&mut self, ino: Ino) {
        if let Some(Node {
            data: Data::File(v),
            ..
        }) = self.nodes.remove(&ino)
        {
            self.used -= v.len() as u64;
        }
    }

    fn resize(&mut self, ino: Ino, size: u64) -> FsResult<()> {
        if size > MAX_FILE {
            return Err(Errno::EFBIG);
        }
        let (limit, used) = (self.limit, self.used);
        let n = self.node(ino)?;
        let Data::File(v) = &mut n.data else {
            return Err(Errno::EINVAL);
        };
        let old = v.len() as u64;
        if limit != 0 && size > old && used + (size - old) > limit {
            return Err(Errno::ENOSPC);
        }
        v.resize(size as usize, 0);
        n.attr.size = size;
        n.attr.blocks = size.div_ceil(512);
        self.used = used + size - old;
        Ok(())
    }
}

impl FileSystem for Tmpfs {
    fn fs_type(&self) -> &'static str {
        "tmpfs"
    }

    fn root(&self) -> Ino {
        ROOT
    }

    fn read_only(&self) -> bool {
        false
    }

    fn getattr(&mut self, ino: Ino) -> FsResult<Attr> {
        Ok(self.node(ino)?.attr.clone())
    }

    fn setattr(&mut self, ino: Ino, set: &SetAttr) -> FsResult<Attr> {
        if let Some(size) = set.size {
            self.resize(ino, size)?;
            self.touch(ino);
        }
        let a = &mut self.node(ino)?.attr;
        if let Some(p) = set.perm {
            a.perm = p;
        }
        if let Some(u) = set.uid {
            a.uid = u;
        }
        if let Some(g) = set.gid {
            a.gid = g;
        }
        if let Some(t) = set.atime {
            a.atime = t;
        }
        if let Some(t) = set.mtime {
            a.mtime = t;
        }
        a.ctime = now();
        Ok(a.clone())
    }

    fn lookup(&mut self, dir: Ino, name: &[u8]) -> FsResult<Ino> {
        let node = self.node(dir)?;
        let Data::Dir { entries, parent } = &node.data else {
            return Err(Errno::ENOTDIR);
        };
        match name {
            b"." => Ok(dir),
            b".." => Ok(*parent),
            _ => entries.get(name).copied().ok_or(Errno::ENOENT),
        }
    }

    fn mknod(&mut self, dir: Ino, name: &[u8], new: &NewNode) -> FsResult<Ino> {
        let ino = self.new_ino();
        let mut a = attr(ino, new.kind, new.perm, new.uid, new.gid);
        a.rdev = new.rdev;
        let data = match new.kind {
            FileKind::File => Data::File(Vec::new()),
            FileKind::Dir => {
                a.nlink = 2;
                Data::Dir {
                    entries: BTreeMap::new(),
                    parent: dir,
                }
            }
            FileKind::Symlink => return Err(Errno::EINVAL),
            _ => Data::Special,
        };
        self.add(dir, name, Node { attr: a, data })
    }

    fn symlink(
        &mut self,
        dir: Ino,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> FsResult<Ino> {
        let ino = self.new_ino();
        let mut a = attr(ino, FileKind::Symlink, 0o777, uid, gid);
        a.size = target.len() as u64;
        self.add(
            dir,
            name,
            Node {
                attr: a,
                data: Data::Symlink(target.to_vec()),
            },
        )
    }

    fn link(&mut self, ino: Ino, dir: Ino, name: &[u8]) -> FsResult<()> {
        let n = self.node(ino)?;
        n.attr.nlink += 1;
        n.attr.ctime = now();
        self.entries(dir)?.insert(name.to_vec(), ino);
        self.touch(dir);
        Ok(())
    }

    fn unlink(&mut self, dir: Ino, name: &[u8]) -> FsResult<()> {
        let ino = self.entries(dir)?.remove(name).ok_or(Errno::ENOENT)?;
        self.touch(dir);
        self.drop_link(ino);
        Ok(())
    }

    fn rmdir(&mut self, dir: Ino, name: &[u8]) -> FsResult<()> {
        let ino = self.entries(dir)?.remove(name).ok_or(Errno::ENOENT)?;
        self.node(ino)?.attr.nlink = 1;
        self.drop_link(ino);
        self.node(dir)?.attr.nlink -= 1;
        self.touch(dir);
        Ok(())
    }

    fn rename(&mut self, odir: Ino, oname: &[u8], ndir: Ino, nname: &[u8]) -> FsResult<()> {
        let ino = *self.entries(odir)?.get(oname).ok_or(Errno::ENOENT)?;
        let is_dir = self.node(ino)?.attr.kind == FileKind::Dir;
        if let Some(old) = self.entries(ndir)?.get(nname).copied() {
            if is_dir {
                self.rmdir(ndir, nname)?;
            } else {
                self.unlink(ndir, nname)?;
            }
            let _ = old;
        }
        self.entries(odir)?.remove(oname);
        self.entries(ndir)?.insert(nname.to_vec(), ino);
        if is_dir && odir != ndir {
            if let Data::Dir { parent, .. } = &mut self.node(ino)?.data {
                *parent = ndir;
            }
            self.node(odir)?.attr.nlink -= 1;
            self.node(ndir)?.attr.nlink += 1;
        }
        self.node(ino)?.attr.ctime = now();
        self.touch(odir);
        self.touch(ndir);
        Ok(())
    }

    fn readlink(&mut self, ino: Ino) -> FsResult<Vec<u8>> {
        match &self.node(ino)?.data {
            Data::Symlink(t) => Ok(t.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    fn read(&mut self, ino: Ino, offset: u64, buf: &mut [u8]) -> FsResult<usize> {
        let Data::File(v) = &self.node(ino)?.data else {
            return Err(Errno::EINVAL);
        };
        let start = (offset.min(v.len() as u64)) as usize;
        let n = buf.len().min(v.len() - start);
        buf[..n].copy_from_slice(&v[start..start + n]);
        Ok(n)
    }

    fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> FsResult<usize> {
        let end = offset.checked_add(data.len() as u64).ok_or(Errno::EFBIG)?;
        let size = self.node(ino)?.attr.size;
        if end > size {
            self.resize(ino, end)?;
        }
        if let Data::File(v) = &mut self.node(ino)?.data {
            v[offset as usize..end as usize].copy_from_slice(data);
        }
        self.touch(ino);
        Ok(data.len())
    }

    fn readdir(&mut self, dir: Ino) -> FsResult<Vec<DirEntry>> {
        let (entries, parent) = match &self.node(dir)?.data {
            Data::Dir { entries, parent } => (entries.clone(), *parent),
            _ => return Err(Errno::ENOTDIR),
        };
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
        for (name, ino) in entries {
            let kind = self.node(ino)?.attr.kind;
            out.push(DirEntry { ino, kind, name });
        }
        Ok(out)
    }

    fn statfs(&mut self) -> FsResult<StatFs> {
        let total = if self.limit == 0 { 1 << 30 } else { self.limit };
        let blocks = total / 4096;
        let used = self.used.div_ceil(4096);
        Ok(StatFs {
            fs_type: TMPFS_MAGIC,
            bsize: 4096,
            blocks,
            bfree: blocks.saturating_sub(used),
            bavail: blocks.saturating_sub(used),
            files: 1 << 20,
            ffree: (1u64 << 20).saturating_sub(self.nodes.len() as u64),
            namelen: 255,
        })
    }

    fn sync(&mut self) -> FsResult<()> {
        Ok(())
    }

    fn hold(&mut self, ino: Ino) {
        self.held.insert(ino);
    }

    fn release(&mut self, ino: Ino) -> FsResult<()> {
        self.held.remove(&ino);
        if self.nodes.get(&ino).is_some_and(|n| n.attr.nlink == 0) {
            self.free(ino);
        }
        Ok(())
    }
}
