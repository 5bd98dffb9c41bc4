//! /proc as a VFS filesystem: read-only files whose contents the kernel provides. The
//! kernel keeps a `ProcHandle` and sets each file's text (from its machine state, just
//! before a read or on a timer); the VFS side serves whatever is set. `mounts` and
//! `filesystems` come from the VFS itself (`proc_mounts`, `FILESYSTEMS`). Symbolic links
//! (`self`, `PID/exe`, `PID/fd/N`) are set the same way; the per-process directories
//! are replaced as a whole (`set_processes`) by the syscall layer before a guest looks.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::errno::{Errno, FsResult};
use super::node::{now, Attr, DirEntry, FileKind, FileSystem, Ino, NewNode, SetAttr, StatFs};
use super::vfs::Vfs;

/// statfs's f_type for proc.
pub const PROC_SUPER_MAGIC: u64 = 0x9fa0;
/// /proc/filesystems as this kernel has them.
pub const FILESYSTEMS: &str = "nodev	proc
nodev	tmpfs
nodev	devtmpfs
	ext2
	ext3
	ext4
nodev	hostfs
nodev	humfs
";

/// The files of a /proc: path (without a leading `/`) to contents.
#[derive(Debug, Default)]
pub struct ProcContent {
    files: BTreeMap<String, Vec<u8>>,
    links: BTreeMap<String, Vec<u8>>,
}

/// Whether `path` is in a per-process part of /proc (`self`, `PID/...`).
fn per_process(path: &str) -> bool {
    let first = path.split('/').next().unwrap_or("");
    first == "self" || (!first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()))
}

/// The kernel's handle on a mounted /proc.
#[derive(Debug, Clone, Default)]
pub struct ProcHandle(Rc<RefCell<ProcContent>>);

impl ProcHandle {
    pub fn new() -> ProcHandle {
        ProcHandle::default()
    }

    /// Sets (or adds) the file at `path` (`version`, `sys/kernel/hostname`, ...).
    pub fn set(&self, path: &str, contents: impl Into<Vec<u8>>) {
        let key = path.trim_matches('/').to_string();
        self.0.borrow_mut().files.insert(key, contents.into());
    }

    /// Replaces every per-process entry (`self` and the `PID/` directories) by `files`
    /// and `links` (paths without a leading `/`).
    pub fn set_processes(
        &self,
        files: BTreeMap<String, Vec<u8>>,
        links: BTreeMap<String, Vec<u8>>,
    ) {
        let mut c = self.0.borrow_mut();
        c.files.retain(|k, _| !per_process(k));
        c.links.retain(|k, _| !per_process(k));
        c.files.extend(files);
        c.links.extend(links);
    }

    /// The filesystem to mount.
    pub fn fs(&self) -> ProcFs {
        ProcFs {
            content: self.clone(),
            inos: vec![String::new()],
        }
    }
}

/// Text of /proc/mounts for `vfs`.
pub fn proc_mounts(vfs: &Vfs) -> String {
    let mut out = String::new();
    for m in vfs.mounts() {
        let opt = if m.read_only { "ro" } else { "rw" };
        out.push_str(&format!(
            "{} {} {} {opt} 0 0\n",
            m.source, m.path, m.fs_type
        ));
    }
    out
}

/// The mounted /proc: inode numbers are indexes into the paths seen so far.
pub struct ProcFs {
    content: ProcHandle,
    inos: Vec<String>,
}

impl ProcFs {
    fn path(&self, ino: Ino) -> FsResult<String> {
        self.inos.get(ino as usize).cloned().ok_or(Errno::ENOENT)
    }

    fn ino_of(&mut self, path: &str) -> Ino {
        match self.inos.iter().position(|p| p == path) {
            Some(i) => i as Ino,
            None => {
                self.inos.push(path.to_string());
                (self.inos.len() - 1) as Ino
            }
        }
    }

    fn is_dir(&self, path: &str) -> bool {
        path.is_empty() || {
            let prefix = format!("{path}/");
            let c = self.content.0.borrow();
            c.files
                .keys()
                .chain(c.links.keys())
                .any(|k| k.starts_with(&prefix))
        }
    }

    fn is_link(&self, path: &str) -> bool {
        self.content.0.borrow().links.contains_key(path)
    }

    /// The entries of directory `path`: name and kind.
    fn children(&self, path: &str) -> Vec<(String, FileKind)> {
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let mut out: BTreeMap<String, FileKind> = BTreeMap::new();
        let c = self.content.0.borrow();
        let files = c.files.keys().map(|k| (k, FileKind::File));
        let links = c.links.keys().map(|k| (k, FileKind::Symlink));
        for (k, kind) in files.chain(links) {
            if let Some(rest) = k.strip_prefix(&prefix) {
                match rest.split_once('/') {
                    Some((dir, _)) => out.insert(dir.to_string(), FileKind::Dir),
                    None => out.insert(rest.to_string(), kind),
                };
            }
        }
        out.into_iter().collect()
    }
}

impl FileSystem for ProcFs {
    fn fs_type(&self) -> &'static str {
        "proc"
    }
    fn root(&self) -> Ino {
        0
    }
    /// Mounted read-write as in Linux: the refusals are per operation (below).
    fn read_only(&self) -> bool {
        false
    }

    fn getattr(&mut self, ino: Ino) -> FsResult<Attr> {
        let path = self.path(ino)?;
        let dir = self.is_dir(&path);
        let link = !dir && self.is_link(&path);
        let size = if dir {
            0
        } else if link {
            self.content.0.borrow().links.get(&path).map_or(0, Vec::len) as u64
        } else {
            self.content
                .0
                .borrow()
                .files
                .get(&path)
                .ok_or(Errno::ENOENT)?
                .len() as u64
        };
        let t = now();
        Ok(Attr {
            ino,
            kind: match (dir, link) {
                (true, _) => FileKind::Dir,
                (_, true) => FileKind::Symlink,
                _ => FileKind::File,
            },
            perm: match (dir, link) {
                (true, _) => 0o555,
                (_, true) => 0o777,
                _ => 0o444,
            },
            nlink: if dir { 2 } else { 1 },
            uid: 0,
            gid: 0,
            size,
            blocks: 0,
            atime: t,
            mtime: t,
            ctime: t,
            rdev: (0, 0),
            blksize: 1024,
        })
    }

    /// Modes are fixed (EPERM); other changes are taken and forgotten, as Linux does.
    fn setattr(&mut self, ino: Ino, set: &SetAttr) -> FsResult<Attr> {
        if set.perm.is_some() {
            return Err(Errno::EPERM);
        }
        self.getattr(ino)
    }

    fn lookup(&mut self, dir: Ino, name: &[u8]) -> FsResult<Ino> {
        let base = self.path(dir)?;
        let name = std::str::from_utf8(name).map_err(|_| Errno::ENOENT)?;
        let path = match name {
            "." => base,
            ".." => base
                .rsplit_once('/')
                .map_or(String::new(), |(p, _)| p.to_string()),
            _ if base.is_empty() => name.to_string(),
            _ => format!("{base}/{name}"),
        };
        let exists = self.is_dir(&path)
            || self.is_link(&path)
            || self.content.0.borrow().files.contains_key(&path);
        if !exists {
            return Err(Errno::ENOENT);
        }
        Ok(self.ino_of(&path))
    }

    // Linux's /proc: a name that is not there cannot be looked up, so creating one
    // fails with ENOENT; removing or renaming what is there has no operation (EPERM).
    fn mknod(&mut self, _: Ino, _: &[u8], _: &NewNode) -> FsResult<Ino> {
        Err(Errno::ENOENT)
    }
    fn symlink(&mut self, _: Ino, _: &[u8], _: &[u8], _: u32, _: u32) -> FsResult<Ino> {
        Err(Errno::ENOENT)
    }
    fn link(&mut self, _: Ino, _: Ino, _: &[u8]) -> FsResult<()> {
        Err(Errno::ENOENT)
    }
    fn unlink(&mut self, _: Ino, _: &[u8]) -> FsResult<()> {
        Err(Errno::EPERM)
    }
    fn rmdir(&mut self, _: Ino, _: &[u8]) -> FsResult<()> {
        Err(Errno::EPERM)
    }
    fn rename(&mut self, _: Ino, _: &[u8], _: Ino, _: &[u8]) -> FsResult<()> {
        Err(Errno::EPERM)
    }
    fn readlink(&mut self, ino: Ino) -> FsResult<Vec<u8>> {
        let path = self.path(ino)?;
        self.content
            .0
            .borrow()
            .links
            .get(&path)
            .cloned()
            .ok_or(Errno::EINVAL)
    }

    fn read(&mut self, ino: Ino, offset: u64, buf: &mut [u8]) -> FsResult<usize> {
        let path = self.path(ino)?;
        let content = self.content.0.borrow();
        let data = content.files.get(&path).ok_or(Errno::EISDIR)?;
        let start = (offset.min(data.len() as u64)) as usize;
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    /// The files the kernel sets take no writes (EIO, as Linux's read-only entries).
    fn write(&mut self, _: Ino, _: u64, _: &[u8]) -> FsResult<usize> {
        Err(Errno::EIO)
    }

    fn readdir(&mut self, dir: Ino) -> FsResult<Vec<DirEntry>> {
        let path = self.path(dir)?;
        if !self.is_dir(&path) {
            return Err(Errno::ENOTDIR);
        }
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
        for (name, kind) in self.children(&path) {
            let ino = self.lookup(dir, name.as_bytes())?;
            out.push(DirEntry {
                ino,
                kind,
                name: name.into_bytes(),
            });
        }
        Ok(out)
    }

    fn statfs(&mut self) -> FsResult<StatFs> {
        Ok(StatFs {
            fs_type: PROC_SUPER_MAGIC,
            bsize: 4096,
            blocks: 0,
            bfree: 0,
            bavail: 0,
            files: 0,
            ffree: 0,
            namelen: 255,
        })
    }

    fn sync(&mut self) -> FsResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::cmds::{FileShell, NoDevices};
    use crate::fs::tmpfs::Tmpfs;

    #[test]
    fn proc_serves_what_the_kernel_sets() {
        let mut vfs = Vfs::new(Box::new(Tmpfs::new(0)), "rootfs");
        let mut cwd = vfs.root();
        vfs.mkdir(cwd, b"/proc", 0o555, 0, 0).expect("mkdir");
        let proc = ProcHandle::new();
        vfs.mount(cwd, b"/proc", Box::new(proc.fs()), "proc")
            .expect("mount");
        proc.set("version", "Linux version 6.1.0-uml-kernel\n");
        proc.set("sys/kernel/hostname", "(none)\n");
        proc.set("filesystems", FILESYSTEMS);
        proc.set("mounts", proc_mounts(&vfs));
        let mut sh = |line: &str| {
            let words: Vec<&str> = line.split_whitespace().collect();
            FileShell {
                vfs: &mut vfs,
                cwd: &mut cwd,
                mounter: &mut NoDevices,
            }
            .run(&words)
            .expect("file command")
        };
        assert_eq!(sh("cat /proc/version"), "Linux version 6.1.0-uml-kernel\n");
        assert_eq!(
            sh("cat /proc/mounts"),
            "rootfs / tmpfs rw 0 0\nproc /proc proc rw 0 0\n"
        );
        assert_eq!(sh("ls /proc"), "filesystems\nmounts\nsys\nversion\n");
        assert_eq!(sh("cat /proc/sys/kernel/hostname"), "(none)\n");
        assert_eq!(sh("cd /proc/sys/kernel"), "");
        assert_eq!(sh("pwd"), "/proc/sys/kernel\n");
        assert_eq!(sh("cat ../../version"), "Linux version 6.1.0-uml-kernel\n");
        assert_eq!(
            sh("echo x > /proc/version"),
            "sh: can't create /proc/version: Input/output error\n"
        );
        assert_eq!(
            sh("cat /proc/nope"),
            "cat: /proc/nope: No such file or directory\n"
        );
        proc.set("version", "changed\n");
        assert_eq!(sh("cat /proc/version"), "changed\n");
    }

    #[test]
    fn process_entries_are_replaced_as_a_whole_and_links_resolve() {
        let mut vfs = Vfs::new(Box::new(Tmpfs::new(0)), "rootfs");
        let root = vfs.root();
        vfs.mkdir(root, b"/proc", 0o555, 0, 0).expect("mkdir");
        let proc = ProcHandle::new();
        vfs.mount(root, b"/proc", Box::new(proc.fs()), "proc")
            .expect("mount");
        proc.set("version", "v\n");
        let files = BTreeMap::from([("7/stat".to_string(), b"7 (sh) R\n".to_vec())]);
        let links = BTreeMap::from([
            ("self".to_string(), b"7".to_vec()),
            ("7/exe".to_string(), b"/bin/busybox".to_vec()),
        ]);
        proc.set_processes(files, links);
        assert_eq!(vfs.readlink(root, b"/proc/self").expect("self"), b"7");
        assert_eq!(
            vfs.readlink(root, b"/proc/self/exe").expect("exe"),
            b"/bin/busybox"
        );
        let attr = vfs.stat(root, b"/proc/self/stat", true).expect("stat");
        assert_eq!(attr.size, 9);
        let names: Vec<Vec<u8>> = {
            let dir = vfs.resolve(root, b"/proc", true).expect("dir");
            vfs.readdir_at(dir)
                .expect("readdir")
                .into_iter()
                .map(|e| e.name)
                .collect()
        };
        assert!(names.contains(&b"7".to_vec()) && names.contains(&b"self".to_vec()));
        proc.set_processes(BTreeMap::new(), BTreeMap::new());
        assert!(vfs.stat(root, b"/proc/7/stat", true).is_err());
        assert!(vfs.stat(root, b"/proc/version", true).is_ok());
    }
}
