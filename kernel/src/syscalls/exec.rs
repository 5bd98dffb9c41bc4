//! execve: the program comes from the VFS (never a host path): `#!` scripts name their
//! interpreter (up to four levels), an ELF is copied once into a memfd image that is
//! kept while the file is unchanged, and the platform starts it as a fresh host process
//! that takes over the guest process (pid, descriptors without close-on-exec, cwd,
//! signal mask and ignored signals; handlers reset).

use std::rc::Rc;

use nix::unistd::Pid;

use super::abi::errno::*;
use super::platform::{Image, SignalState};
use super::sentry::{argv_os, basename, Ret, Sentry};
use crate::fs::node::FileKind;
use crate::fs::vfs::{oflag, Loc};
use crate::machine::Machine;

/// Most bytes of argv plus envp (Linux's ARG_MAX for an 8 MiB stack).
const ARG_MAX: usize = 2 * 1024 * 1024;

/// A program to start: its image, its absolute path and its argv.
pub type Loaded = (Rc<Image>, Vec<u8>, Vec<Vec<u8>>);

/// A program image and the file version it was made from.
pub struct CachedImage {
    mtime: i64,
    ctime: i64,
    size: u64,
    image: Rc<Image>,
}

impl Sentry {
    /// Reads a NULL-terminated array of strings from guest memory.
    fn read_strv(&self, host: Pid, mut addr: u64) -> Result<Vec<Vec<u8>>, i64> {
        let mut out = Vec::new();
        let mut total = 0usize;
        if addr == 0 {
            return Ok(out);
        }
        loop {
            let mut ptr = [0u8; 8];
            self.platform
                .read_mem(host, addr, &mut ptr)
                .map_err(|_| -EFAULT)?;
            let p = u64::from_ne_bytes(ptr);
            if p == 0 {
                return Ok(out);
            }
            let s = self
                .platform
                .read_cstr(host, p, ARG_MAX)
                .map_err(|_| -EFAULT)?;
            total += s.len() + 9;
            if total > ARG_MAX {
                return Err(-E2BIG);
            }
            out.push(s);
            addr += 8;
        }
    }

    /// execve(path, argv, envp) of guest process `pid`.
    pub(super) fn execve(&mut self, m: &mut Machine, pid: u32, host: Pid, args: [u64; 6]) -> Ret {
        let path = match self.platform.read_cstr(host, args[0], 4096) {
            Ok(p) => p,
            Err(_) => return Ret::Val(-EFAULT),
        };
        let (argv, envp) = match (self.read_strv(host, args[1]), self.read_strv(host, args[2])) {
            (Ok(a), Ok(e)) => (a, e),
            (Err(e), _) | (_, Err(e)) => return Ret::Val(e),
        };
        let Some(p) = self.procs.get(&pid) else {
            return Ret::Val(-ESRCH);
        };
        let (cwd, exe) = (p.cwd, p.exe.clone());
        // Signals sent to the old program that its host process never took: pending
        // signals survive execve, so the new one gets them.
        let pending = p.sent;
        let ignored = p.ignored_signals();
        let signals = SignalState {
            mask: p.mask,
            ignored,
        };
        let (image, exe, argv) = match self.load(m, cwd, &exe, &path, argv) {
            Ok(x) => x,
            Err(e) => return Ret::Val(e),
        };
        let new = match self
            .platform
            .spawn_with(&image, &argv_os(&argv), &argv_os(&envp), signals)
        {
            Ok(h) => h,
            Err(e) => {
                m.log.warn(format!("sentry: execve of pid {pid}: {e}"));
                return Ret::Val(-ENOMEM);
            }
        };
        self.replace_host(pid, new);
        let closed = match self.procs.get_mut(&pid) {
            Some(p) => {
                p.exe = exe;
                // The name exec was given (a script's, not its interpreter's), as Linux.
                p.comm = basename(&path);
                p.cmdline = super::procpid::cmdline(&argv);
                p.started = m.uptime_secs();
                for a in p.actions.iter_mut() {
                    if a.0 > 1 {
                        *a = (0, 0);
                    }
                }
                p.fds.take_cloexec()
            }
            None => Vec::new(),
        };
        for fd in closed {
            self.release(m, fd);
        }
        for sig in 1..=64 {
            if pending & super::abi::sigbit(sig) != 0 {
                self.send_signal(pid, sig);
            }
        }
        Ret::Resumed
    }

    /// Finds the program `path` (relative to `cwd`; `/proc/self/exe` is `own_exe`):
    /// follows `#!` lines, returns the image, the program's absolute path and argv.
    pub(super) fn load(
        &mut self,
        m: &mut Machine,
        cwd: Loc,
        own_exe: &[u8],
        path: &[u8],
        mut argv: Vec<Vec<u8>>,
    ) -> Result<Loaded, i64> {
        // No program image bigger than the memory (a sparse file of any size would
        // otherwise be read whole into the kernel), and a cache of a quarter of it.
        let max_image = m.config.mem;
        let vfs = &mut m.files.vfs;
        let mut path = path.to_vec();
        for _ in 0..5 {
            if path == b"/proc/self/exe" && !own_exe.is_empty() {
                path = own_exe.to_vec();
            }
            let loc = vfs
                .resolve(cwd, &path, true)
                .map_err(|e| -(e.code() as i64))?;
            let attr = vfs.getattr(loc).map_err(|e| -(e.code() as i64))?;
            if attr.kind != FileKind::File || attr.perm & 0o111 == 0 {
                return Err(-EACCES);
            }
            let file = vfs
                .open(cwd, &path, oflag::O_RDONLY, 0, 0, 0)
                .map_err(|e| -(e.code() as i64))?;
            let mut head = [0u8; 256];
            let n = vfs.pread(&file, 0, &mut head).unwrap_or(0);
            let head = &head[..n];
            if let Some(rest) = head.strip_prefix(b"#!") {
                let _ = vfs.close(file);
                let line = rest.split(|&b| b == b'\n').next().unwrap_or(rest);
                let line = String::from_utf8_lossy(line).trim().to_string();
                let (interp, arg) = match line.split_once([' ', '\t']) {
                    Some((i, a)) => (i.to_string(), Some(a.trim().to_string())),
                    None => (line.clone(), None),
                };
                if interp.is_empty() {
                    return Err(-ENOEXEC);
                }
                let mut next = vec![interp.clone().into_bytes()];
                if let Some(a) = arg.filter(|a| !a.is_empty()) {
                    next.push(a.into_bytes());
                }
                next.push(path.clone());
                next.extend(argv.into_iter().skip(1));
                argv = next;
                path = interp.into_bytes();
                continue;
            }
            if !head.starts_with(b"\x7fELF") {
                let _ = vfs.close(file);
                return Err(-ENOEXEC);
            }
            let fresh = self
                .images
                .get(&loc)
                .filter(|c| c.mtime == attr.mtime && c.ctime == attr.ctime && c.size == attr.size);
            let image = match fresh {
                Some(c) => c.image.clone(),
                None => {
                    if attr.size > max_image {
                        let _ = vfs.close(file);
                        return Err(-ENOMEM);
                    }
                    let cached: u64 = self.images.values().map(|c| c.size).sum();
                    if cached + attr.size > max_image / 4 {
                        self.images.clear();
                    }
                    let mut bytes = vec![0u8; attr.size as usize];
                    let mut done = 0;
                    while done < bytes.len() {
                        match vfs.pread(&file, done as u64, &mut bytes[done..]) {
                            Ok(0) => break,
                            Ok(k) => done += k,
                            Err(e) => {
                                let _ = vfs.close(file);
                                return Err(-(e.code() as i64));
                            }
                        }
                    }
                    bytes.truncate(done);
                    let name = basename(&path);
                    let image = Rc::new(Image::from_bytes(&name, &bytes).map_err(|_| -ENOMEM)?);
                    self.images.insert(
                        loc,
                        CachedImage {
                            mtime: attr.mtime,
                            ctime: attr.ctime,
                            size: attr.size,
                            image: image.clone(),
                        },
                    );
                    image
                }
            };
            let _ = vfs.close(file);
            // /proc/PID/exe names the program file itself (symbolic links followed).
            let abs = program_path(vfs, cwd, &path);
            if argv.is_empty() {
                argv.push(abs.clone());
            }
            return Ok((image, abs, argv));
        }
        Err(-ELOOP)
    }
}

/// `path` made absolute from `cwd`, its last component's symbolic links followed and
/// `.` and `..` taken out: the program's own path, as /proc/PID/exe shows it.
fn program_path(vfs: &mut crate::fs::vfs::Vfs, cwd: Loc, path: &[u8]) -> Vec<u8> {
    let mut abs = if path.starts_with(b"/") {
        path.to_vec()
    } else {
        let mut p = vfs.path_of(cwd).unwrap_or_else(|_| b"/".to_vec());
        p.push(b'/');
        p.extend_from_slice(path);
        p
    };
    let root = vfs.root();
    for _ in 0..40 {
        abs = normalize(&abs);
        match vfs.stat(root, &abs, false) {
            Ok(a) if a.kind == FileKind::Symlink => {}
            _ => break,
        }
        let Ok(target) = vfs.readlink(root, &abs) else {
            break;
        };
        if target.starts_with(b"/") {
            abs = target;
        } else {
            let dir_end = abs.iter().rposition(|&b| b == b'/').unwrap_or(0);
            abs.truncate(dir_end + 1);
            abs.extend_from_slice(&target);
        }
    }
    abs
}

/// An absolute path without empty, `.` and `..` components.
fn normalize(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            _ => parts.push(c),
        }
    }
    let mut out = Vec::new();
    for c in parts {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn paths_lose_dots_and_double_slashes() {
        assert_eq!(normalize(b"/bin/../sbin/./init"), b"/sbin/init");
        assert_eq!(normalize(b"//a//b/"), b"/a/b");
        assert_eq!(normalize(b"/.."), b"/");
    }
}
