//! The built-in shell's file commands over the VFS (`ls [-l] [-a]`, `cat`, `echo ... >`
//! / `>>`, `touch`, `chmod`, `chown`, `mknod` (in `cmds_attr`), `mkdir [-p]`, `rm [-r] [-f]`, `rmdir`, `mv`, `ln [-s]`, `stat`,
//! `mount`, `umount`, `df`, `sync`, `cd`, `pwd`), with busybox's messages. The shell
//! hands a command here first; `None` means "not a file command".

use super::errno::Errno;
use super::node::{Attr, FileKind, FileSystem, SetAttr};
use super::tmpfs::Tmpfs;
use super::vfs::{oflag::*, Loc, Vfs};

/// Makes the filesystem for `mount -t TYPE [-o OPTIONS] SOURCE DIR` (tmpfs is built in;
/// the kernel supplies the rest, e.g. ext2 on a ubd device). `options` is the `-o` text
/// as given (`ro` in it also sets `read_only`).
pub trait Mounter {
    fn make(
        &mut self,
        fs_type: &str,
        source: &str,
        read_only: bool,
        options: &str,
    ) -> Result<Box<dyn FileSystem>, String>;
}

/// A mounter that knows only tmpfs.
pub struct NoDevices;

impl Mounter for NoDevices {
    fn make(
        &mut self,
        fs_type: &str,
        _: &str,
        _: bool,
        _: &str,
    ) -> Result<Box<dyn FileSystem>, String> {
        Err(format!("unknown filesystem type '{fs_type}'"))
    }
}

/// The shell's state the commands use: the VFS and the current directory.
pub struct FileShell<'a> {
    pub vfs: &'a mut Vfs,
    pub cwd: &'a mut Loc,
    pub mounter: &'a mut dyn Mounter,
}

fn perm_string(a: &Attr) -> String {
    let mut s = String::with_capacity(10);
    s.push(a.kind.letter());
    let p = a.perm;
    let bit = |s: &mut String, on: bool, c: char| s.push(if on { c } else { '-' });
    for (shift, special, lower, upper) in [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ] {
        let r = (p >> shift) & 4 != 0;
        let w = (p >> shift) & 2 != 0;
        let x = (p >> shift) & 1 != 0;
        bit(&mut s, r, 'r');
        bit(&mut s, w, 'w');
        if p & special != 0 {
            s.push(if x { lower } else { upper });
        } else {
            bit(&mut s, x, 'x');
        }
    }
    s
}

/// `Mon DD HH:MM` of a time (UTC), as ls -l shows it.
fn ls_time(t: i64) -> String {
    let days = t.div_euclid(86400);
    let secs = t.rem_euclid(86400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {:>2} {:02}:{:02}",
        MONTHS[(m - 1) as usize],
        d,
        secs / 3600,
        secs / 60 % 60
    )
}

impl FileShell<'_> {
    /// Runs a file command; None when `words[0]` is not one.
    pub fn run(&mut self, words: &[&str]) -> Option<String> {
        let (&cmd, args) = words.split_first()?;
        Some(match cmd {
            "ls" => self.ls(args),
            "cat" => self.cat(args),
            "echo" => self.echo(args),
            "touch" => self.each(args, "touch", |s, p| s.touch(p)),
            "chmod" | "chown" | "mknod" => super::cmds_attr::run(self, cmd, args),
            "mkdir" => self.mkdir(args),
            "rm" => self.rm(args),
            "rmdir" => self.each(args, "rmdir", |s, p| s.vfs.rmdir(*s.cwd, p.as_bytes())),
            "mv" => self.mv(args),
            "ln" => self.ln(args),
            "stat" => self.stat(args),
            "mount" => self.mount(args),
            "umount" => self.each(args, "umount", |s, p| s.vfs.umount(*s.cwd, p.as_bytes())),
            "df" => self.df(),
            "sync" => match self.vfs.sync_all() {
                Ok(()) => String::new(),
                Err(e) => format!("sync: {e}\n"),
            },
            "cd" => self.cd(args),
            "pwd" => match self.vfs.path_of(*self.cwd) {
                Ok(p) => format!("{}\n", String::from_utf8_lossy(&p)),
                Err(e) => format!("pwd: {e}\n"),
            },
            _ => return None,
        })
    }

    fn each(
        &mut self,
        args: &[&str],
        cmd: &str,
        mut f: impl FnMut(&mut Self, &str) -> Result<(), Errno>,
    ) -> String {
        let mut out = String::new();
        if args.is_empty() {
            return format!("{cmd}: missing operand\n");
        }
        for a in args {
            if let Err(e) = f(self, a) {
                out.push_str(&format!("{cmd}: {a}: {e}\n"));
            }
        }
        out
    }

    fn line(&mut self, dir: &str, name: &str, a: &Attr, long: bool) -> String {
        if !long {
            return format!("{name}\n");
        }
        let size = match a.kind {
            FileKind::Char | FileKind::Block => format!("{:>4}, {:>4}", a.rdev.0, a.rdev.1),
            _ => format!("{:>10}", a.size),
        };
        let mut s = format!(
            "{} {:>4} {:<8} {:<8} {size} {} {name}",
            perm_string(a),
            a.nlink,
            a.uid,
            a.gid,
            ls_time(a.mtime)
        );
        if a.kind == FileKind::Symlink {
            let path = if dir.is_empty() {
                name.to_string()
            } else {
                format!("{dir}/{name}")
            };
            if let Ok(t) = self.vfs.readlink(*self.cwd, path.as_bytes()) {
                s.push_str(&format!(" -> {}", String::from_utf8_lossy(&t)));
            }
        }
        s.push('\n');
        s
    }

    fn ls(&mut self, args: &[&str]) -> String {
        let long = args.iter().any(|a| a.starts_with('-') && a.contains('l'));
        let all = args.iter().any(|a| a.starts_with('-') && a.contains('a'));
        let mut paths: Vec<&str> = args
            .iter()
            .copied()
            .filter(|a| !a.starts_with('-'))
            .collect();
        if paths.is_empty() {
            paths.push(".");
        }
        let many = paths.len() > 1;
        let mut out = String::new();
        for p in paths {
            let attr = match self.vfs.stat(*self.cwd, p.as_bytes(), false) {
                Ok(a) => a,
                Err(e) => {
                    out.push_str(&format!("ls: {p}: {e}\n"));
                    continue;
                }
            };
            let is_dir = attr.kind == FileKind::Dir
                || (attr.kind == FileKind::Symlink
                    && self
                        .vfs
                        .stat(*self.cwd, p.as_bytes(), true)
                        .is_ok_and(|a| a.kind == FileKind::Dir));
            if !is_dir {
                let line = self.line("", p, &attr, long);
                out.push_str(&line);
                continue;
            }
            let entries = match self.vfs.readdir(*self.cwd, p.as_bytes()) {
                Ok(e) => e,
                Err(e) => {
                    out.push_str(&format!("ls: {p}: {e}\n"));
                    continue;
                }
            };
            if many {
                out.push_str(&format!("{p}:\n"));
            }
            let mut names: Vec<String> = entries
                .into_iter()
                .map(|e| String::from_utf8_lossy(&e.name).into_owned())
                .filter(|n| all || !n.starts_with('.'))
                .collect();
            names.sort();
            for n in names {
                let path = format!("{}/{n}", p.trim_end_matches('/'));
                match self.vfs.stat(*self.cwd, path.as_bytes(), false) {
                    Ok(a) => {
                        let line = self.line(p.trim_end_matches('/'), &n, &a, long);
                        out.push_str(&line);
                    }
                    Err(e) => out.push_str(&format!("ls: {path}: {e}\n")),
                }
            }
        }
        out
    }

    fn read_all(&mut self, path: &str) -> Result<Vec<u8>, Errno> {
        let mut f = self
            .vfs
            .open(*self.cwd, path.as_bytes(), O_RDONLY, 0, 0, 0)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        let result = loop {
            match self.vfs.read(&mut f, &mut buf) {
                Ok(0) => break Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => break Err(e),
            }
        };
        let closed = self.vfs.close(f);
        result.and_then(|data| closed.map(|()| data))
    }

    fn cat(&mut self, args: &[&str]) -> String {
        let mut out = String::new();
        for a in args {
            match self.read_all(a) {
                Ok(data) => out.push_str(&String::from_utf8_lossy(&data)),
                Err(e) => out.push_str(&format!("cat: {a}: {e}\n")),
            }
        }
        out
    }

    fn write_file(&mut self, path: &str, data: &[u8], append: bool) -> Result<(), Errno> {
        let flags = O_WRONLY | O_CREAT | if append { O_APPEND } else { O_TRUNC };
        let mut f = self
            .vfs
            .open(*self.cwd, path.as_bytes(), flags, 0o644, 0, 0)?;
        let mut r = Ok(0);
        let mut done = 0;
        // A short write (a full filesystem) is retried: the next one says why.
        while done < data.len() {
            r = self.vfs.write(&mut f, &data[done..]);
            match r {
                Ok(0) | Err(_) => break,
                Ok(n) => done += n,
            }
        }
        let closed = self.vfs.close(f);
        r.map(drop).and(closed)
    }

    fn echo(&mut self, args: &[&str]) -> String {
        let redirect = args.iter().position(|a| *a == ">" || *a == ">>");
        let Some(pos) = redirect else {
            return format!("{}\n", args.join(" "));
        };
        let text = format!("{}\n", args[..pos].join(" "));
        let Some(target) = args.get(pos + 1) else {
            return "sh: syntax error: unexpected newline\n".into();
        };
        match self.write_file(target, text.as_bytes(), args[pos] == ">>") {
            Ok(()) => String::new(),
            Err(e) => format!("sh: can't create {target}: {e}\n"),
        }
    }

    fn touch(&mut self, path: &str) -> Result<(), Errno> {
        match self.vfs.stat(*self.cwd, path.as_bytes(), true) {
            Ok(_) => {
                let t = super::node::now();
                let set = SetAttr {
                    atime: Some(t),
                    mtime: Some(t),
                    ..SetAttr::default()
                };
                self.vfs
                    .setattr(*self.cwd, path.as_bytes(), true, &set)
                    .map(|_| ())
            }
            Err(Errno::ENOENT) => {
                let f =
                    self.vfs
                        .open(*self.cwd, path.as_bytes(), O_WRONLY | O_CREAT, 0o644, 0, 0)?;
                self.vfs.close(f)
            }
            Err(e) => Err(e),
        }
    }

    fn mkdir(&mut self, args: &[&str]) -> String {
        let parents = args.contains(&"-p");
        let mut out = String::new();
        for a in args.iter().filter(|a| !a.starts_with('-')) {
            let r = if parents {
                let mut prefix = if a.starts_with('/') {
                    "/".to_string()
                } else {
                    String::new()
                };
                let mut result = Ok(());
                for c in a.split('/').filter(|c| !c.is_empty()) {
                    prefix.push_str(c);
                    match self.vfs.mkdir(*self.cwd, prefix.as_bytes(), 0o755, 0, 0) {
                        Ok(_) | Err(Errno::EEXIST) => {}
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                    prefix.push('/');
                }
                result
            } else {
                self.vfs
                    .mkdir(*self.cwd, a.as_bytes(), 0o755, 0, 0)
                    .map(|_| ())
            };
            if let Err(e) = r {
                out.push_str(&format!("mkdir: can't create directory '{a}': {e}\n"));
            }
        }
        out
    }

    fn remove_tree(&mut self, path: &str) -> Result<(), Errno> {
        let attr = self.vfs.stat(*self.cwd, path.as_bytes(), false)?;
        if attr.kind != FileKind::Dir {
            return self.vfs.unlink(*self.cwd, path.as_bytes());
        }
        for e in self.vfs.readdir(*self.cwd, path.as_bytes())? {
            if e.name == b"." || e.name == b".." {
                continue;
            }
            let child = format!(
                "{}/{}",
                path.trim_end_matches('/'),
                String::from_utf8_lossy(&e.name)
            );
            self.remove_tree(&child)?;
        }
        self.vfs.rmdir(*self.cwd, path.as_bytes())
    }

    fn rm(&mut self, args: &[&str]) -> String {
        let flags: String = args
            .iter()
            .filter(|a| a.starts_with('-'))
            .map(|a| &a[1..])
            .collect();
        let (recursive, force) = (
            flags.contains('r') || flags.contains('R'),
            flags.contains('f'),
        );
        let mut out = String::new();
        for a in args.iter().filter(|a| !a.starts_with('-')) {
            let r = if recursive {
                self.remove_tree(a)
            } else {
                self.vfs.unlink(*self.cwd, a.as_bytes())
            };
            match r {
                Ok(()) => {}
                Err(Errno::ENOENT) if force => {}
                Err(e) => out.push_str(&format!("rm: can't remove '{a}': {e}\n")),
            }
        }
        out
    }

    /// Where `src` goes when the destination is `dst` (into it when it is a directory).
    fn destination(&mut self, src: &str, dst: &str) -> String {
        let is_dir = self
            .vfs
            .stat(*self.cwd, dst.as_bytes(), true)
            .is_ok_and(|a| a.kind == FileKind::Dir);
        if is_dir {
            let base = src.trim_end_matches('/').rsplit('/').next().unwrap_or(src);
            format!("{}/{base}", dst.trim_end_matches('/'))
        } else {
            dst.to_string()
        }
    }

    fn mv(&mut self, args: &[&str]) -> String {
        let [src, dst] = args else {
            return "mv: need a source and a destination\n".into();
        };
        let to = self.destination(src, dst);
        match self.vfs.rename(*self.cwd, src.as_bytes(), to.as_bytes()) {
            Ok(()) => String::new(),
            Err(e) => format!("mv: can't rename '{src}': {e}\n"),
        }
    }

    fn ln(&mut self, args: &[&str]) -> String {
        let symbolic = args.contains(&"-s");
        let rest: Vec<&str> = args
            .iter()
            .copied()
            .filter(|a| !a.starts_with('-'))
            .collect();
        let [target, link] = rest.as_slice() else {
            return "ln: need a target and a link name\n".into();
        };
        let to = self.destination(target, link);
        let r = if symbolic {
            self.vfs
                .symlink(*self.cwd, target.as_bytes(), to.as_bytes(), 0, 0)
                .map(|_| ())
        } else {
            self.vfs.link(*self.cwd, target.as_bytes(), to.as_bytes())
        };
        match r {
            Ok(()) => String::new(),
            Err(e) => format!("ln: {to}: {e}\n"),
        }
    }

    fn stat(&mut self, args: &[&str]) -> String {
        let mut out = String::new();
        for a in args {
            match self.vfs.stat(*self.cwd, a.as_bytes(), false) {
                Ok(s) => {
                    let kind = match s.kind {
                        FileKind::File if s.size == 0 => "regular empty file",
                        FileKind::File => "regular file",
                        FileKind::Dir => "directory",
                        FileKind::Symlink => "symbolic link",
                        FileKind::Char => "character special file",
                        FileKind::Block => "block special file",
                        FileKind::Fifo => "fifo",
                        FileKind::Socket => "socket",
                    };
                    out.push_str(&format!(
                        "  File: {a}\n  Size: {:<10} Blocks: {:<10} IO Block: {:<6} {kind}\n\
                         Inode: {:<10} Links: {}\n\
                         Access: ({:04o}/{})  Uid: ({:5})   Gid: ({:5})\n",
                        s.size,
                        s.blocks,
                        s.blksize,
                        s.ino,
                        s.nlink,
                        s.perm,
                        perm_string(&s),
                        s.uid,
                        s.gid
                    ));
                }
                Err(e) => out.push_str(&format!("stat: can't stat '{a}': {e}\n")),
            }
        }
        out
    }

    fn mount(&mut self, args: &[&str]) -> String {
        if args.is_empty() {
            let mut out = String::new();
            for m in self.vfs.mounts() {
                let opt = if m.read_only { "ro" } else { "rw" };
                out.push_str(&format!(
                    "{} on {} type {} ({opt})\n",
                    m.source, m.path, m.fs_type
                ));
            }
            return out;
        }
        let mut fs_type = None;
        let mut data = None;
        let mut read_only = false;
        let mut rest = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match *a {
                "-t" => fs_type = it.next().copied(),
                "-o" => {
                    data = it.next().copied();
                    read_only = data.is_some_and(|o| o.split(',').any(|x| x == "ro"));
                }
                "-r" => read_only = true,
                _ => rest.push(*a),
            }
        }
        let [source, dir] = rest.as_slice() else {
            return "mount: need a source and a directory\n".into();
        };
        let fs_type = fs_type.unwrap_or("ext2");
        let made = match fs_type {
            "tmpfs" => Ok(Box::new(Tmpfs::new(0)) as Box<dyn FileSystem>),
            _ => self
                .mounter
                .make(fs_type, source, read_only, data.unwrap_or("")),
        };
        let fs = match made {
            Ok(fs) => fs,
            Err(e) => return format!("mount: mounting {source} on {dir} failed: {e}\n"),
        };
        match self.vfs.mount(*self.cwd, dir.as_bytes(), fs, source) {
            Ok(()) => String::new(),
            Err(e) => format!("mount: mounting {source} on {dir} failed: {e}\n"),
        }
    }

    fn df(&mut self) -> String {
        let mut out =
            "Filesystem           1K-blocks      Used Available Use% Mounted on\n".to_string();
        for m in self.vfs.mounts() {
            let Ok(s) = self.vfs.statfs(*self.cwd, m.path.as_bytes()) else {
                continue;
            };
            let k = u64::from(s.bsize) / 1024;
            let (total, free, avail) = (s.blocks * k, s.bfree * k, s.bavail * k);
            let used = total - free.min(total);
            let pct = if used + avail == 0 {
                0
            } else {
                (used * 100).div_ceil(used + avail)
            };
            out.push_str(&format!(
                "{:<20} {total:>9} {used:>9} {avail:>9} {pct:>3}% {}\n",
                m.source, m.path
            ));
        }
        out
    }

    fn cd(&mut self, args: &[&str]) -> String {
        let target = args.first().copied().unwrap_or("/");
        match self.vfs.resolve(*self.cwd, target.as_bytes(), true) {
            Ok(loc) if self.vfs.getattr(loc).is_ok_and(|a| a.kind == FileKind::Dir) => {
                *self.cwd = loc;
                String::new()
            }
            Ok(_) => format!("sh: cd: can't cd to {target}: Not a directory\n"),
            Err(e) => format!("sh: cd: can't cd to {target}: {e}\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(vfs: &mut Vfs, cwd: &mut Loc, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        FileShell {
            vfs,
            cwd,
            mounter: &mut NoDevices,
        }
        .run(&words)
        .expect("a file command")
    }

    #[test]
    fn commands_over_tmpfs() {
        let mut vfs = Vfs::new(Box::new(Tmpfs::new(0)), "rootfs");
        let mut cwd = vfs.root();
        let v = &mut vfs;
        let c = &mut cwd;
        assert_eq!(sh(v, c, "mkdir -p /a/b/c"), "");
        assert_eq!(sh(v, c, "cd /a/b"), "");
        assert_eq!(sh(v, c, "pwd"), "/a/b\n");
        assert_eq!(sh(v, c, "echo hello world > f"), "");
        assert_eq!(sh(v, c, "echo again >> f"), "");
        assert_eq!(sh(v, c, "cat /a/b/f"), "hello world\nagain\n");
        assert_eq!(sh(v, c, "ln -s f link"), "");
        assert_eq!(sh(v, c, "ln f hard"), "");
        assert_eq!(sh(v, c, "ls"), "c\nf\nhard\nlink\n");
        let long = sh(v, c, "ls -l");
        assert!(
            long.contains("-rw-r--r--    2 0        0                18 "),
            "{long}"
        );
        assert!(long.contains("link -> f\n"), "{long}");
        assert_eq!(sh(v, c, "mv f c"), "");
        assert_eq!(sh(v, c, "cat c/f"), "hello world\nagain\n");
        assert_eq!(
            sh(v, c, "cat nope"),
            "cat: nope: No such file or directory\n"
        );
        assert_eq!(sh(v, c, "rm c"), "rm: can't remove 'c': Is a directory\n");
        assert_eq!(
            sh(v, c, "mkdir c"),
            "mkdir: can't create directory 'c': File exists\n"
        );
        assert!(sh(v, c, "stat hard").contains("Links: 2"));
        assert_eq!(sh(v, c, "cd .."), "");
        assert_eq!(sh(v, c, "rm -r b"), "");
        assert_eq!(sh(v, c, "ls /a"), "");
        assert_eq!(sh(v, c, "mkdir /tmp"), "");
        assert_eq!(sh(v, c, "mount -t tmpfs none /tmp"), "");
        assert_eq!(
            sh(v, c, "mount"),
            "rootfs on / type tmpfs (rw)\nnone on /tmp type tmpfs (rw)\n"
        );
        assert!(sh(v, c, "df").contains("none"));
        assert_eq!(
            sh(v, c, "mount /dev/ubdb /a"),
            "mount: mounting /dev/ubdb on /a failed: unknown filesystem type 'ext2'\n"
        );
        assert_eq!(sh(v, c, "umount /tmp"), "");
        assert_eq!(
            sh(v, c, "cd /nowhere"),
            "sh: cd: can't cd to /nowhere: No such file or directory\n"
        );
        assert_eq!(
            FileShell {
                vfs: v,
                cwd: c,
                mounter: &mut NoDevices
            }
            .run(&["ifconfig"]),
            None
        );
    }

    #[test]
    fn ls_times_and_modes() {
        assert_eq!(ls_time(0), "Jan  1 00:00");
        assert_eq!(ls_time(1_764_763_200), "Dec  3 12:00");
        let mut a = Attr::new(1, FileKind::File, 0o4755, 0, 0);
        assert_eq!(perm_string(&a), "-rwsr-xr-x");
        a.perm = 0o1777;
        a.kind = FileKind::Dir;
        assert_eq!(perm_string(&a), "drwxrwxrwt");
    }
}
