//! The file syscalls: descriptors (open, close, dup, fcntl, pipe2), data (read, write,
//! vectors, positioned I/O, lseek, getdents64), metadata (stat family, statx, access,
//! readlink, chmod, chown, utimensat, truncate) and the name operations (mkdir, unlink,
//! rename, link, symlink), all against the VFS, the sentry's pipes and the console tty.
//! Errors are Linux's errno values, negated.
// A handler takes the syscall's own arguments, plus the caller and the machine.
#![allow(clippy::too_many_arguments)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use nix::unistd::Pid;

use super::abi::{self, errno::*};
use super::fdtable::{desc, DescRef, Fd, Object, Pipe, PipeEnd, PIPE_CAPACITY};
use super::harddog;
use super::sentry::{Ret, Sentry};
use crate::fs::errno::Errno as FsErrno;
use crate::fs::node::{Attr, FileKind, SetAttr};
use crate::fs::vfs::{oflag, Loc};
use crate::machine::Machine;
use crate::net::inet::SockErr;

pub const AT_FDCWD: i64 = -100;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_REMOVEDIR: u64 = 0x200;
const AT_EMPTY_PATH: u64 = 0x1000;
const O_NONBLOCK: u32 = 0o4000;
const O_CLOEXEC: u64 = 0o2000000;
/// Most bytes one read or write moves (a short count beyond, as Linux allows).
pub(super) const MAX_IO: usize = 1 << 20;

pub fn fe(e: FsErrno) -> i64 {
    -(e.code() as i64)
}

/// A descriptor argument (an int: the upper half of the register is not part of it).
pub fn fdarg(a: u64) -> i64 {
    a as i32 as i64
}

impl Sentry {
    pub(super) fn desc_of(&self, pid: u32, fd: i64) -> Result<DescRef, i64> {
        self.procs
            .get(&pid)
            .and_then(|p| p.fds.get(fd))
            .map(|f| f.desc.clone())
            .ok_or(-EBADF)
    }

    pub(super) fn path_arg(&self, host: Pid, addr: u64) -> Result<Vec<u8>, i64> {
        if addr == 0 {
            return Err(-EFAULT);
        }
        let p = self
            .platform
            .read_cstr(host, addr, 4097)
            .map_err(|_| -EFAULT)?;
        if p.len() > 4096 {
            return Err(-36); // ENAMETOOLONG
        }
        Ok(p)
    }

    /// The directory a *at call starts from.
    fn base(&self, m: &mut Machine, pid: u32, dirfd: i64) -> Result<Loc, i64> {
        if dirfd == AT_FDCWD {
            return self.procs.get(&pid).map(|p| p.cwd).ok_or(-ESRCH);
        }
        let d = self.desc_of(pid, dirfd)?;
        let d = d.borrow();
        match &d.object {
            Object::File(of) => {
                let attr = m.files.vfs.getattr(of.loc).map_err(fe)?;
                if attr.kind != FileKind::Dir {
                    return Err(-ENOTDIR);
                }
                Ok(of.loc)
            }
            _ => Err(-ENOTDIR),
        }
    }

    /// `path` made absolute from `base` (for calls naming two paths).
    pub(super) fn absolute(m: &mut Machine, base: Loc, path: &[u8]) -> Result<Vec<u8>, i64> {
        if path.starts_with(b"/") {
            return Ok(path.to_vec());
        }
        let mut p = m.files.vfs.path_of(base).map_err(fe)?;
        if !p.ends_with(b"/") {
            p.push(b'/');
        }
        p.extend_from_slice(path);
        Ok(p)
    }

    pub(super) fn put(&self, host: Pid, addr: u64, data: &[u8]) -> Result<(), i64> {
        self.platform
            .write_mem(host, addr, data)
            .map_err(|_| -EFAULT)
    }

    pub(super) fn get(&self, host: Pid, addr: u64, len: usize) -> Result<Vec<u8>, i64> {
        let mut buf = vec![0u8; len];
        self.platform
            .read_mem(host, addr, &mut buf)
            .map_err(|_| -EFAULT)?;
        Ok(buf)
    }

    fn umask_of(&self, pid: u32) -> u32 {
        self.procs.get(&pid).map_or(0o022, |p| p.umask)
    }

    pub(super) fn openat(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        dirfd: i64,
        path_addr: u64,
        flags: u64,
        mode: u64,
    ) -> i64 {
        let r = (|| {
            let path = self.path_arg(host, path_addr)?;
            let base = self.base(m, pid, dirfd)?;
            if path.starts_with(b"/proc") {
                crate::proc::refresh(m);
            }
            let perm = mode as u32 & !self.umask_of(pid) & 0o7777;
            let flags32 = flags as u32;
            let of = m
                .files
                .vfs
                .open(base, &path, flags32, perm, 0, 0)
                .map_err(fe)?;
            let attr = m.files.vfs.getattr(of.loc).map_err(fe)?;
            if attr.kind == FileKind::Fifo {
                let loc = of.loc;
                let _ = m.files.vfs.close(of);
                let entry = Fd {
                    desc: self.open_fifo(pid, loc, flags32)?,
                    cloexec: flags & O_CLOEXEC != 0,
                };
                return self.install(m, pid, 0, entry);
            }
            let keep = flags32 & (oflag::O_ACCMODE | oflag::O_APPEND | O_NONBLOCK);
            let object = if attr.kind == FileKind::Char && matches!(attr.rdev.0, 4 | 5) {
                let _ = m.files.vfs.close(of);
                Object::Tty(self.open_tty(pid, attr.rdev, flags32 & libc::O_NOCTTY as u32 != 0)?)
            } else if attr.kind == FileKind::Char && attr.rdev == harddog::RDEV {
                let _ = m.files.vfs.close(of);
                Object::Watchdog(open_watchdog(m)?)
            } else {
                Object::File(of)
            };
            let entry = Fd {
                desc: desc(object, keep),
                cloexec: flags & O_CLOEXEC != 0,
            };
            let abs = Self::absolute(m, base, &path).unwrap_or_default();
            self.desc_paths
                .insert(Rc::as_ptr(&entry.desc) as usize, abs);
            self.install(m, pid, 0, entry)
        })();
        r.unwrap_or_else(|e| e)
    }

    /// Puts a descriptor in the lowest free slot at or above `min`.
    pub(super) fn install(
        &mut self,
        m: &mut Machine,
        pid: u32,
        min: usize,
        entry: Fd,
    ) -> Result<i64, i64> {
        let Some(p) = self.procs.get_mut(&pid) else {
            return Err(-ESRCH);
        };
        match p.fds.insert_from(min, entry.clone()) {
            Some(fd) => Ok(fd as i64),
            None => {
                self.release(m, entry);
                Err(-EMFILE)
            }
        }
    }

    pub(super) fn close(&mut self, m: &mut Machine, pid: u32, fd: i64) -> i64 {
        match self.procs.get_mut(&pid).and_then(|p| p.fds.remove(fd)) {
            Some(entry) => {
                self.release(m, entry);
                0
            }
            None => -EBADF,
        }
    }

    pub(super) fn dup(
        &mut self,
        m: &mut Machine,
        pid: u32,
        old: i64,
        new: Option<i64>,
        flags: u64,
        min: usize,
    ) -> i64 {
        let Ok(d) = self.desc_of(pid, old) else {
            return -EBADF;
        };
        let entry = Fd {
            desc: d,
            cloexec: flags & O_CLOEXEC != 0,
        };
        match new {
            None => self.install(m, pid, min, entry).unwrap_or_else(|e| e),
            Some(n) if !(0..super::fdtable::MAX_FDS as i64).contains(&n) => -EBADF,
            Some(n) => {
                let old_entry = match self.procs.get_mut(&pid) {
                    Some(p) => p.fds.set(n as usize, entry),
                    None => return -ESRCH,
                };
                if let Some(o) = old_entry {
                    self.release(m, o);
                }
                n
            }
        }
    }

    pub(super) fn fcntl(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        fd: i64,
        cmd: u64,
        arg: u64,
    ) -> i64 {
        let Ok(d) = self.desc_of(pid, fd) else {
            return -EBADF;
        };
        match cmd as i32 {
            libc::F_DUPFD => self.dup(m, pid, fd, None, 0, arg as usize),
            libc::F_DUPFD_CLOEXEC => self.dup(m, pid, fd, None, O_CLOEXEC, arg as usize),
            libc::F_GETFD => self
                .procs
                .get(&pid)
                .and_then(|p| p.fds.get(fd))
                .map_or(-EBADF, |f| f.cloexec as i64),
            libc::F_SETFD => match self.procs.get_mut(&pid).and_then(|p| p.fds.get_mut(fd)) {
                Some(f) => {
                    f.cloexec = arg & 1 != 0;
                    0
                }
                None => -EBADF,
            },
            libc::F_GETFL => d.borrow().flags as i64,
            libc::F_SETFL => {
                let mut d = d.borrow_mut();
                let settable = oflag::O_APPEND | O_NONBLOCK;
                d.flags = (d.flags & !settable) | (arg as u32 & settable);
                if let Object::File(of) = &mut d.object {
                    of.flags = (of.flags & !oflag::O_APPEND) | (arg as u32 & oflag::O_APPEND);
                }
                0
            }
            libc::F_GETLK => {
                // No locks are held by anyone else: l_type = F_UNLCK.
                let _ = self.put(host, arg, &(libc::F_UNLCK as i16).to_ne_bytes());
                0
            }
            libc::F_SETLK | libc::F_SETLKW => 0,
            _ => -EINVAL,
        }
    }

    pub(super) fn pipe2(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        addr: u64,
        flags: u64,
    ) -> i64 {
        let id = self.next_pipe;
        self.next_pipe += 1;
        let pipe = Rc::new(RefCell::new(Pipe {
            id,
            ..Pipe::default()
        }));
        let nb = flags as u32 & O_NONBLOCK;
        let cloexec = flags & O_CLOEXEC != 0;
        let r = desc(
            Object::Pipe(PipeEnd::new(&pipe, false)),
            oflag::O_RDONLY | nb,
        );
        let w = desc(
            Object::Pipe(PipeEnd::new(&pipe, true)),
            oflag::O_WRONLY | nb,
        );
        let rfd = match self.install(m, pid, 0, Fd { desc: r, cloexec }) {
            Ok(fd) => fd,
            Err(e) => return e,
        };
        let wfd = match self.install(m, pid, 0, Fd { desc: w, cloexec }) {
            Ok(fd) => fd,
            Err(e) => {
                self.close(m, pid, rfd);
                return e;
            }
        };
        self.put_fd_pair(m, pid, host, addr, [rfd, wfd])
    }

    /// Writes the two new descriptors of pipe2 or socketpair to the guest's int[2] at
    /// `addr`: 0, or EFAULT with both closed again.
    pub(super) fn put_fd_pair(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        addr: u64,
        fds: [i64; 2],
    ) -> i64 {
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&(fds[0] as i32).to_ne_bytes());
        out[4..].copy_from_slice(&(fds[1] as i32).to_ne_bytes());
        if self.put(host, addr, &out).is_err() {
            self.close(m, pid, fds[0]);
            self.close(m, pid, fds[1]);
            return -EFAULT;
        }
        0
    }

    /// Reads at most `max` bytes from a description; None when it would wait.
    fn read_desc(
        &mut self,
        m: &mut Machine,
        d: &DescRef,
        max: usize,
        at: Option<u64>,
    ) -> Result<Option<Vec<u8>>, i64> {
        let mut d = d.borrow_mut();
        match &mut d.object {
            Object::File(of) => {
                let mut buf = vec![0u8; max];
                let n = match at {
                    Some(off) => m.files.vfs.pread(of, off, &mut buf),
                    None => m.files.vfs.read(of, &mut buf),
                }
                .map_err(fe)?;
                buf.truncate(n);
                Ok(Some(buf))
            }
            Object::Pipe(_) | Object::Tty(_) if at.is_some() => Err(-ESPIPE),
            Object::Pipe(end) if end.write => Err(-EBADF),
            Object::Pipe(end) => {
                let mut p = end.pipe.borrow_mut();
                if p.buf.is_empty() {
                    return Ok((p.writers == 0).then(Vec::new));
                }
                let n = p.buf.len().min(max);
                Ok(Some(p.buf.drain(..n).collect()))
            }
            Object::Tty(slot) => {
                let slot = *slot;
                Ok(
                    match self.ttys.get_mut(&slot).map(|t| t.ld.read(max, false)) {
                        Some(super::ldisc::Read::Data(data)) => Some(data),
                        Some(super::ldisc::Read::Wait(_)) => None,
                        None => Some(Vec::new()),
                    },
                )
            }
            Object::Socket(_) if at.is_some() => Err(-ESPIPE),
            Object::Socket(sock) => match sock.recv(&mut m.net, max, false) {
                Ok((data, _, _)) => Ok(Some(data)),
                Err(SockErr::Wait) => Ok(None),
                Err(SockErr::Errno(e)) => Err(-e),
            },
            Object::Watchdog(_) => Err(-EINVAL),
        }
    }

    /// Writes to a description; None when it would wait. EPIPE also sends SIGPIPE.
    fn write_desc(
        &mut self,
        m: &mut Machine,
        pid: u32,
        d: &DescRef,
        data: &[u8],
        at: Option<u64>,
    ) -> Result<Option<usize>, i64> {
        let mut d = d.borrow_mut();
        match &mut d.object {
            Object::File(of) => {
                let n = match at {
                    Some(off) => {
                        let mut tmp = of.clone();
                        tmp.offset = off;
                        tmp.flags &= !oflag::O_APPEND;
                        m.files.vfs.write(&mut tmp, data)
                    }
                    None => m.files.vfs.write(of, data),
                }
                .map_err(fe)?;
                Ok(Some(n))
            }
            Object::Pipe(_) | Object::Tty(_) if at.is_some() => Err(-ESPIPE),
            Object::Pipe(end) if !end.write => Err(-EBADF),
            Object::Pipe(end) => {
                let mut p = end.pipe.borrow_mut();
                if p.readers == 0 {
                    drop(p);
                    drop(d);
                    self.send_signal(pid, libc::SIGPIPE);
                    return Err(-EPIPE);
                }
                let cap = self.pipe_capacity(m, p.buf.len(), data.len());
                let room = cap.saturating_sub(p.buf.len());
                if room == 0 || (data.len() <= 4096 && room < data.len()) {
                    return Ok(None);
                }
                let n = room.min(data.len());
                p.buf.extend(&data[..n]);
                Ok(Some(n))
            }
            Object::Tty(slot) => {
                let slot = *slot;
                let out = self.ttys.get(&slot).map(|t| t.ld.output(data));
                if let Some(out) = out {
                    self.tty_out(slot, &out);
                }
                Ok(Some(data.len()))
            }
            Object::Socket(_) if at.is_some() => Err(-ESPIPE),
            Object::Socket(sock) => match sock.send(&mut m.net, &mut self.unix, data, None) {
                Ok(n) => Ok(Some(n)),
                Err(SockErr::Wait) => Ok(None),
                Err(SockErr::Errno(EPIPE)) => {
                    drop(d);
                    self.send_signal(pid, libc::SIGPIPE);
                    Err(-EPIPE)
                }
                Err(SockErr::Errno(e)) => Err(-e),
            },
            Object::Watchdog(_) if at.is_some() => Err(-ESPIPE),
            Object::Watchdog(dog) => match dog.ping() {
                Ok(()) => Ok(Some(data.len())),
                Err(e) => {
                    m.log.warn(format!("harddog: {e}"));
                    Err(-harddog::EIO)
                }
            },
        }
    }

    pub(super) fn nonblocking(d: &DescRef) -> bool {
        d.borrow().flags & O_NONBLOCK != 0
    }

    /// read and pread64.
    pub(super) fn read(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        fd: i64,
        buf: u64,
        len: u64,
        at: Option<u64>,
    ) -> Ret {
        let d = match self.desc_of(pid, fd) {
            Ok(d) => d,
            Err(e) => return Ret::Val(e),
        };
        match self.read_desc(m, &d, (len as usize).min(MAX_IO), at) {
            Ok(Some(data)) => Ret::Val(match self.put(host, buf, &data) {
                Ok(()) => data.len() as i64,
                Err(e) => e,
            }),
            Ok(None) if Self::nonblocking(&d) => Ret::Val(-EAGAIN),
            Ok(None) => Ret::Block(None),
            Err(e) => Ret::Val(e),
        }
    }

    /// write and pwrite64.
    pub(super) fn write(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        fd: i64,
        buf: u64,
        len: u64,
        at: Option<u64>,
    ) -> Ret {
        let d = match self.desc_of(pid, fd) {
            Ok(d) => d,
            Err(e) => return Ret::Val(e),
        };
        let data = match self.get(host, buf, (len as usize).min(MAX_IO)) {
            Ok(b) => b,
            Err(e) => return Ret::Val(e),
        };
        match self.write_desc(m, pid, &d, &data, at) {
            Ok(Some(n)) => Ret::Val(n as i64),
            Ok(None) if Self::nonblocking(&d) => Ret::Val(-EAGAIN),
            Ok(None) => Ret::Block(None),
            Err(e) => Ret::Val(e),
        }
    }

    /// The (base, length) pairs of a guest iovec array (at most 1024: EINVAL beyond).
    pub(super) fn iovecs(&self, host: Pid, iov: u64, count: u64) -> Result<Vec<(u64, u64)>, i64> {
        if count > 1024 {
            return Err(-EINVAL);
        }
        let raw = self.get(host, iov, count as usize * 16)?;
        Ok(raw
            .chunks_exact(16)
            .map(|c| {
                let mut a = [0u8; 8];
                let mut b = [0u8; 8];
                a.copy_from_slice(&c[..8]);
                b.copy_from_slice(&c[8..]);
                (u64::from_ne_bytes(a), u64::from_ne_bytes(b))
            })
            .collect())
    }

    /// readv: one read of the total, scattered.
    pub(super) fn readv(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        fd: i64,
        iov: u64,
        count: u64,
    ) -> Ret {
        let vecs = match self.iovecs(host, iov, count) {
            Ok(v) => v,
            Err(e) => return Ret::Val(e),
        };
        let total: u64 = vecs.iter().map(|v| v.1).sum();
        let d = match self.desc_of(pid, fd) {
            Ok(d) => d,
            Err(e) => return Ret::Val(e),
        };
        let data = match self.read_desc(m, &d, (total as usize).min(MAX_IO), None) {
            Ok(Some(data)) => data,
            Ok(None) if Self::nonblocking(&d) => return Ret::Val(-EAGAIN),
            Ok(None) => return Ret::Block(None),
            Err(e) => return Ret::Val(e),
        };
        match self.scatter(host, &vecs, &data) {
            Ok(()) => Ret::Val(data.len() as i64),
            Err(e) => Ret::Val(e),
        }
    }

    /// Copies `data` into the guest's iovecs in order (readv, recvmsg).
    pub(super) fn scatter(&self, host: Pid, vecs: &[(u64, u64)], data: &[u8]) -> Result<(), i64> {
        let mut done = 0usize;
        for &(base, len) in vecs {
            if done >= data.len() {
                break;
            }
            let n = (len as usize).min(data.len() - done);
            self.put(host, base, &data[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// The guest's iovecs gathered into one buffer of at most MAX_IO bytes (writev,
    /// sendmsg).
    pub(super) fn gather(&self, host: Pid, vecs: &[(u64, u64)]) -> Result<Vec<u8>, i64> {
        let mut data = Vec::new();
        for &(base, len) in vecs {
            let room = MAX_IO.saturating_sub(data.len());
            data.extend(self.get(host, base, (len as usize).min(room))?);
        }
        Ok(data)
    }

    /// writev: the vectors gathered, one write.
    pub(super) fn writev(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        fd: i64,
        iov: u64,
        count: u64,
    ) -> Ret {
        let vecs = match self.iovecs(host, iov, count) {
            Ok(v) => v,
            Err(e) => return Ret::Val(e),
        };
        let data = match self.gather(host, &vecs) {
            Ok(data) => data,
            Err(e) => return Ret::Val(e),
        };
        let d = match self.desc_of(pid, fd) {
            Ok(d) => d,
            Err(e) => return Ret::Val(e),
        };
        match self.write_desc(m, pid, &d, &data, None) {
            Ok(Some(n)) => Ret::Val(n as i64),
            Ok(None) if Self::nonblocking(&d) => Ret::Val(-EAGAIN),
            Ok(None) => Ret::Block(None),
            Err(e) => Ret::Val(e),
        }
    }

    pub(super) fn lseek(
        &mut self,
        m: &mut Machine,
        pid: u32,
        fd: i64,
        off: i64,
        whence: u64,
    ) -> i64 {
        let d = match self.desc_of(pid, fd) {
            Ok(d) => d,
            Err(e) => return e,
        };
        let mut d = d.borrow_mut();
        let Object::File(of) = &mut d.object else {
            return -ESPIPE;
        };
        let Ok(attr) = m.files.vfs.getattr(of.loc) else {
            return -EBADF;
        };
        let base = match whence {
            0 => 0,
            1 => of.offset as i64,
            2 if attr.kind != FileKind::Dir => attr.size as i64,
            _ => return -EINVAL,
        };
        let Some(new) = base.checked_add(off).filter(|n| *n >= 0) else {
            return -EINVAL;
        };
        of.offset = new as u64;
        new
    }

    fn attr_of(&self, m: &mut Machine, d: &DescRef) -> Result<(Attr, (u32, u32)), i64> {
        match &d.borrow().object {
            Object::File(of) => Ok((
                m.files.vfs.getattr(of.loc).map_err(fe)?,
                abi::mount_dev(of.loc.mount),
            )),
            Object::Pipe(end) => Ok((abi::pipe_attr(end.pipe.borrow().id), (0, 12))),
            Object::Tty(slot) => {
                let mut attr = abi::tty_attr();
                attr.rdev = super::tty::dev_of_slot(*slot);
                Ok((attr, (0, 6)))
            }
            Object::Socket(_) => Ok((abi::socket_attr(Rc::as_ptr(d) as u64), (0, 8))),
            Object::Watchdog(_) => Ok((
                Attr {
                    ino: 4,
                    perm: 0o600,
                    gid: 0,
                    rdev: harddog::RDEV,
                    ..abi::tty_attr()
                },
                (0, 6),
            )),
        }
    }

    /// The attributes a stat call names: a descriptor (with AT_EMPTY_PATH or fstat) or
    /// a path from a directory.
    fn stat_target(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        dirfd: i64,
        path_addr: Option<u64>,
        flags: u64,
    ) -> Result<(Attr, (u32, u32)), i64> {
        let path = match path_addr {
            Some(a) => self.path_arg(host, a)?,
            None => Vec::new(),
        };
        if path.is_empty() {
            if path_addr.is_some() && flags & AT_EMPTY_PATH == 0 {
                return Err(-ENOENT);
            }
            let d = self.desc_of(pid, dirfd)?;
            return self.attr_of(m, &d);
        }
        let base = self.base(m, pid, dirfd)?;
        if path.starts_with(b"/proc") {
            crate::proc::refresh(m);
        }
        let loc = m
            .files
            .vfs
            .resolve(base, &path, flags & AT_SYMLINK_NOFOLLOW == 0)
            .map_err(fe)?;
        let attr = m.files.vfs.getattr(loc).map_err(fe)?;
        if attr.kind == FileKind::Char && matches!(attr.rdev.0, 4 | 5) {
            return Ok((attr, abi::mount_dev(loc.mount)));
        }
        Ok((attr, abi::mount_dev(loc.mount)))
    }

    /// stat, lstat, fstat, newfstatat.
    pub(super) fn stat(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        dirfd: i64,
        path: Option<u64>,
        buf: u64,
        flags: u64,
    ) -> i64 {
        match self.stat_target(m, pid, host, dirfd, path, flags) {
            Ok((attr, dev)) => match self.put(host, buf, &abi::stat(&attr, dev)) {
                Ok(()) => 0,
                Err(e) => e,
            },
            Err(e) => e,
        }
    }

    pub(super) fn statx(&mut self, m: &mut Machine, pid: u32, host: Pid, args: [u64; 6]) -> i64 {
        match self.stat_target(m, pid, host, fdarg(args[0]), Some(args[1]), args[2]) {
            Ok((attr, dev)) => match self.put(host, args[4], &abi::statx(&attr, dev)) {
                Ok(()) => 0,
                Err(e) => e,
            },
            Err(e) => e,
        }
    }

    pub(super) fn getdents64(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        fd: i64,
        buf: u64,
        count: u64,
    ) -> i64 {
        let d = match self.desc_of(pid, fd) {
            Ok(d) => d,
            Err(e) => return e,
        };
        let mut d = d.borrow_mut();
        let Object::File(of) = &mut d.object else {
            return -ENOTDIR;
        };
        let entries = match m.files.vfs.readdir_at(of.loc) {
            Ok(e) => e,
            Err(e) => return fe(e),
        };
        let room = (count as usize).min(MAX_IO);
        let mut out = Vec::new();
        let mut pos = of.offset as usize;
        while let Some(e) = entries.get(pos) {
            if !abi::dirent64(&mut out, room, e, pos as u64 + 1) {
                if out.is_empty() {
                    return -EINVAL;
                }
                break;
            }
            pos += 1;
        }
        of.offset = pos as u64;
        match self.put(host, buf, &out) {
            Ok(()) => out.len() as i64,
            Err(e) => e,
        }
    }

    pub(super) fn readlinkat(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        dirfd: i64,
        path: u64,
        buf: u64,
        size: u64,
    ) -> i64 {
        let r = (|| {
            let path = self.path_arg(host, path)?;
            let target = if path == b"/proc/self/exe" {
                self.procs.get(&pid).map(|p| p.exe.clone()).ok_or(-ESRCH)?
            } else {
                let base = self.base(m, pid, dirfd)?;
                m.files.vfs.readlink(base, &path).map_err(fe)?
            };
            if size as i64 <= 0 {
                return Err(-EINVAL);
            }
            let n = target.len().min(size as usize);
            self.put(host, buf, &target[..n])?;
            Ok(n as i64)
        })();
        r.unwrap_or_else(|e| e)
    }

    pub(super) fn faccessat(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        dirfd: i64,
        path: u64,
        mode: u64,
    ) -> i64 {
        let r = (|| {
            let path = self.path_arg(host, path)?;
            let base = self.base(m, pid, dirfd)?;
            let attr = m.files.vfs.stat(base, &path, true).map_err(fe)?;
            if mode & 1 != 0 && attr.kind != FileKind::Dir && attr.perm & 0o111 == 0 {
                return Err(-EACCES);
            }
            Ok(0)
        })();
        r.unwrap_or_else(|e| e)
    }

    pub(super) fn mkdirat(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        dirfd: i64,
        path: u64,
        mode: u64,
    ) -> i64 {
        let r = (|| {
            let path = self.path_arg(host, path)?;
            let base = self.base(m, pid, dirfd)?;
            let perm = mode as u32 & !self.umask_of(pid) & 0o7777;
            m.files.vfs.mkdir(base, &path, perm, 0, 0).map_err(fe)?;
            Ok(0)
        })();
        r.unwrap_or_else(|e| e)
    }

    pub(super) fn mknodat(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        dirfd: i64,
        path: u64,
        mode: u64,
        dev: u64,
    ) -> i64 {
        let r = (|| {
            let path = self.path_arg(host, path)?;
            let base = self.base(m, pid, dirfd)?;
            let kind = FileKind::from_mode(mode as u32).unwrap_or(FileKind::File);
            let node = crate::fs::node::NewNode {
                kind,
                perm: mode as u32 & !self.umask_of(pid) & 0o7777,
                uid: 0,
                gid: 0,
                rdev: (
                    ((dev >> 8) & 0xfff) as u32,
                    ((dev & 0xff) | ((dev >> 12) & !0xff)) as u32,
                ),
            };
            m.files.vfs.mknod(base, &path, &node).map_err(fe)?;
            Ok(0)
        })();
        r.unwrap_or_else(|e| e)
    }

    pub(super) fn unlinkat(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        dirfd: i64,
        path: u64,
        flags: u64,
    ) -> i64 {
        let r = (|| {
            let path = self.path_arg(host, path)?;
            let base = self.base(m, pid, dirfd)?;
            if flags & AT_REMOVEDIR != 0 {
                m.files.vfs.rmdir(base, &path).map_err(fe)?;
            } else {
                m.files.vfs.unlink(base, &path).map_err(fe)?;
            }
            Ok(0)
        })();
        r.unwrap_or_else(|e| e)
    }

    /// renameat2 (flags: RENAME_NOREPLACE) and linkat.
    pub(super) fn two_paths(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        args: [u64; 6],
        link: bool,
    ) -> i64 {
        let r = (|| {
            let old = self.path_arg(host, args[1])?;
            let new = self.path_arg(host, args[3])?;
            let ob = self.base(m, pid, fdarg(args[0]))?;
            let nb = self.base(m, pid, fdarg(args[2]))?;
            let old = Self::absolute(m, ob, &old)?;
            let new = Self::absolute(m, nb, &new)?;
            let root = m.files.vfs.root();
            if link {
                m.files.vfs.link(root, &old, &new).map_err(fe)?;
            } else {
                match args[4] {
                    0 => {}
                    1 => {
                        if m.files.vfs.stat(root, &new, false).is_ok() {
                            return Err(-EEXIST);
                        }
                    }
                    _ => return Err(-EINVAL),
                }
                m.files.vfs.rename(root, &old, &new).map_err(fe)?;
            }
            Ok(0)
        })();
        r.unwrap_or_else(|e| e)
    }

    pub(super) fn symlinkat(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        target: u64,
        dirfd: i64,
        path: u64,
    ) -> i64 {
        let r = (|| {
            let target = self.path_arg(host, target)?;
            let path = self.path_arg(host, path)?;
            let base = self.base(m, pid, dirfd)?;
            m.files
                .vfs
                .symlink(base, &target, &path, 0, 0)
                .map_err(fe)?;
            Ok(0)
        })();
        r.unwrap_or_else(|e| e)
    }

    /// The node a set-attribute call names: a descriptor or a path.
    fn target_loc(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        dirfd: i64,
        path: Option<u64>,
        follow: bool,
    ) -> Result<Option<Loc>, i64> {
        let path = match path {
            Some(a) if a != 0 => self.path_arg(host, a)?,
            _ => Vec::new(),
        };
        if path.is_empty() {
            let d = self.desc_of(pid, dirfd)?;
            let d = d.borrow();
            return Ok(match &d.object {
                Object::File(of) => Some(of.loc),
                _ => None,
            });
        }
        let base = self.base(m, pid, dirfd)?;
        m.files
            .vfs
            .resolve(base, &path, follow)
            .map(Some)
            .map_err(fe)
    }

    /// chmod, chown, truncate and utimes, on a path or a descriptor.
    pub(super) fn setattr(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        dirfd: i64,
        path: Option<u64>,
        follow: bool,
        set: SetAttr,
    ) -> i64 {
        match self.target_loc(m, pid, host, dirfd, path, follow) {
            Ok(Some(loc)) => match m.files.vfs.setattr_at(loc, &set) {
                Ok(_) => 0,
                Err(e) => fe(e),
            },
            Ok(None) => 0, // a pipe or the tty: nothing kept
            Err(e) => e,
        }
    }

    pub(super) fn utimensat(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        args: [u64; 6],
    ) -> i64 {
        let now = crate::fs::node::now();
        let (atime, mtime) = if args[2] == 0 {
            (Some(now), Some(now))
        } else {
            let raw = match self.get(host, args[2], 32) {
                Ok(r) => r,
                Err(e) => return e,
            };
            let field = |at: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&raw[at..at + 8]);
                i64::from_ne_bytes(b)
            };
            let pick = |sec: i64, nsec: i64| match nsec {
                0x3fff_ffff => Some(now),
                0x3fff_fffe => None,
                _ => Some(sec),
            };
            (pick(field(0), field(8)), pick(field(16), field(24)))
        };
        let set = SetAttr {
            atime,
            mtime,
            ..SetAttr::default()
        };
        let path = (args[1] != 0).then_some(args[1]);
        self.setattr(
            m,
            pid,
            host,
            fdarg(args[0]),
            path,
            args[3] & AT_SYMLINK_NOFOLLOW == 0,
            set,
        )
    }

    pub(super) fn chdir(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        path: Option<u64>,
        fd: i64,
    ) -> i64 {
        let loc = match path {
            Some(a) => {
                let r = self.path_arg(host, a).and_then(|p| {
                    let cwd = self.procs.get(&pid).map(|p| p.cwd).ok_or(-ESRCH)?;
                    m.files.vfs.resolve(cwd, &p, true).map_err(fe)
                });
                match r {
                    Ok(l) => l,
                    Err(e) => return e,
                }
            }
            None => match self.base(m, pid, fd) {
                Ok(l) => l,
                Err(e) => return e,
            },
        };
        match m.files.vfs.getattr(loc) {
            Ok(a) if a.kind == FileKind::Dir => {}
            Ok(_) => return -ENOTDIR,
            Err(e) => return fe(e),
        }
        if let Some(p) = self.procs.get_mut(&pid) {
            p.cwd = loc;
        }
        0
    }

    pub(super) fn getcwd(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        buf: u64,
        size: u64,
    ) -> i64 {
        let Some(cwd) = self.procs.get(&pid).map(|p| p.cwd) else {
            return -ESRCH;
        };
        let mut path = match m.files.vfs.path_of(cwd) {
            Ok(p) => p,
            Err(e) => return fe(e),
        };
        path.push(0);
        if path.len() as u64 > size {
            return -ERANGE;
        }
        match self.put(host, buf, &path) {
            Ok(()) => path.len() as i64,
            Err(e) => e,
        }
    }

    pub(super) fn statfs(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        path: Option<u64>,
        fd: i64,
        buf: u64,
    ) -> i64 {
        let loc = match self.target_loc(m, pid, host, libc::AT_FDCWD as i64, path, true) {
            Ok(Some(l)) => l,
            Ok(None) => return -EINVAL,
            Err(e) => return e,
        };
        let _ = fd;
        let s = match m.files.vfs.fs(loc).and_then(|f| f.statfs()) {
            Ok(s) => s,
            Err(e) => return fe(e),
        };
        match self.put(host, buf, &abi::statfs(&s)) {
            Ok(()) => 0,
            Err(e) => e,
        }
    }

    pub(super) fn ioctl(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        fd: i64,
        req: u64,
        arg: u64,
    ) -> i64 {
        let d = match self.desc_of(pid, fd) {
            Ok(d) => d,
            Err(e) => return e,
        };
        let tty = match d.borrow().object {
            Object::Tty(slot) => Some(slot),
            _ => None,
        };
        let req = req as u32;
        if req == libc::FIONBIO as u32 {
            let on = self.get(host, arg, 4).map(|b| b != [0, 0, 0, 0]);
            let mut d = d.borrow_mut();
            match on {
                Ok(true) => d.flags |= O_NONBLOCK,
                Ok(false) => d.flags &= !O_NONBLOCK,
                Err(e) => return e,
            }
            return 0;
        }
        if req == libc::FIONREAD as u32 {
            let n = match &d.borrow().object {
                Object::Pipe(end) => end.pipe.borrow().buf.len(),
                Object::Tty(slot) => self.ttys.get(slot).map_or(0, |t| t.ld.pending()),
                Object::File(_) | Object::Watchdog(_) => 0,
                Object::Socket(_) => usize::MAX,
            };
            let n = match n {
                usize::MAX => self.sock_queued(m, &d),
                n => n,
            };
            return match self.put(host, arg, &(n as i32).to_ne_bytes()) {
                Ok(()) => 0,
                Err(e) => e,
            };
        }
        if matches!(d.borrow().object, Object::Socket(_)) {
            return self.netdev_ioctl(m, host, req, arg);
        }
        if matches!(d.borrow().object, Object::Watchdog(_)) {
            return self.watchdog_ioctl(&d, host, req, arg);
        }
        match tty {
            Some(slot) => self.tty_ioctl(pid, host, slot, req as u64, arg),
            None => -ENOTTY,
        }
    }

    /// poll and ppoll: ready descriptors now, or wait until one is (or the deadline).
    pub(super) fn poll(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        fds: u64,
        nfds: u64,
        deadline: Option<Instant>,
        forever: bool,
    ) -> Ret {
        if nfds > 4096 {
            return Ret::Val(-EINVAL);
        }
        let mut raw = match self.get(host, fds, nfds as usize * 8) {
            Ok(r) => r,
            Err(e) => return Ret::Val(e),
        };
        let mut ready = 0;
        for entry in raw.chunks_exact_mut(8) {
            let fd = i32::from_ne_bytes([entry[0], entry[1], entry[2], entry[3]]);
            let events = i16::from_ne_bytes([entry[4], entry[5]]);
            let revents = if fd < 0 {
                0
            } else {
                match self.desc_of(pid, fd as i64) {
                    Err(_) => libc::POLLNVAL,
                    Ok(d) => self.readiness(m, &d) & (events | libc::POLLHUP | libc::POLLERR),
                }
            };
            entry[6..8].copy_from_slice(&revents.to_ne_bytes());
            if revents != 0 {
                ready += 1;
            }
        }
        let expired = deadline.is_some_and(|d| Instant::now() >= d);
        if ready == 0 && (forever || !expired) {
            return Ret::Block(deadline);
        }
        match self.put(host, fds, &raw) {
            Ok(()) => Ret::Val(ready),
            Err(e) => Ret::Val(e),
        }
    }

    /// The watchdog ioctls harddog answers: KEEPALIVE pings, GETSUPPORT names it,
    /// GETSTATUS and GETBOOTSTATUS are 0; the others (SETTIMEOUT among them) ENOTTY.
    fn watchdog_ioctl(&mut self, d: &DescRef, host: Pid, req: u32, arg: u64) -> i64 {
        let r = match req {
            harddog::WDIOC_KEEPALIVE => match &mut d.borrow_mut().object {
                Object::Watchdog(dog) => dog.ping().map_err(|_| -harddog::EIO),
                _ => Err(-ENOTTY),
            },
            harddog::WDIOC_GETSUPPORT => self.put(host, arg, &harddog::info()),
            harddog::WDIOC_GETSTATUS | harddog::WDIOC_GETBOOTSTATUS => {
                self.put(host, arg, &0i32.to_ne_bytes())
            }
            _ => Err(-ENOTTY),
        };
        r.map_or_else(|e| e, |()| 0)
    }

    /// select and pselect6: the three descriptor sets filled from the same readiness
    /// as poll, or wait until one is ready (or the deadline).
    pub(super) fn select(
        &mut self,
        m: &mut Machine,
        pid: u32,
        host: Pid,
        nfds: u64,
        sets: [u64; 3],
        deadline: Option<Instant>,
        forever: bool,
    ) -> Ret {
        if nfds > super::fdtable::MAX_FDS as u64 {
            return Ret::Val(-EINVAL);
        }
        let bytes = (nfds as usize).div_ceil(64) * 8;
        let mut inp = [Vec::new(), Vec::new(), Vec::new()];
        for (i, &addr) in sets.iter().enumerate() {
            if addr != 0 {
                match self.get(host, addr, bytes) {
                    Ok(b) => inp[i] = b,
                    Err(e) => return Ret::Val(e),
                }
            }
        }
        let mut out = [vec![0u8; bytes], vec![0u8; bytes], vec![0u8; bytes]];
        let mut ready = 0;
        for fd in 0..nfds as usize {
            let (byte, bit) = (fd / 8, 1u8 << (fd % 8));
            let wanted: Vec<usize> = (0..3)
                .filter(|&i| inp[i].get(byte).is_some_and(|b| b & bit != 0))
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let d = match self.desc_of(pid, fd as i64) {
                Ok(d) => d,
                Err(e) => return Ret::Val(e),
            };
            let r = self.readiness(m, &d);
            for i in wanted {
                let hit = match i {
                    0 => r & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0,
                    1 => r & (libc::POLLOUT | libc::POLLERR) != 0,
                    _ => r & libc::POLLPRI != 0,
                };
                if hit {
                    out[i][byte] |= bit;
                    ready += 1;
                }
            }
        }
        let expired = deadline.is_some_and(|d| Instant::now() >= d);
        if ready == 0 && (forever || !expired) {
            return Ret::Block(deadline);
        }
        for (i, &addr) in sets.iter().enumerate() {
            if addr != 0 {
                if let Err(e) = self.put(host, addr, &out[i]) {
                    return Ret::Val(e);
                }
            }
        }
        Ret::Val(ready)
    }

    fn readiness(&mut self, m: &mut Machine, d: &DescRef) -> i16 {
        if matches!(d.borrow().object, Object::Socket(_)) {
            return self.sock_readiness(m, d);
        }
        match &d.borrow().object {
            Object::Socket(_) => 0,
            Object::File(_) => libc::POLLIN | libc::POLLOUT,
            Object::Watchdog(_) => libc::POLLOUT,
            Object::Tty(slot) => {
                let input = match self.ttys.get(slot) {
                    Some(t) if !t.ld.readable() => 0,
                    _ => libc::POLLIN,
                };
                input | libc::POLLOUT
            }
            Object::Pipe(end) => {
                let p = end.pipe.borrow();
                if end.write {
                    if p.readers == 0 {
                        libc::POLLERR | libc::POLLOUT
                    } else if p.buf.len() < PIPE_CAPACITY {
                        libc::POLLOUT
                    } else {
                        0
                    }
                } else if !p.buf.is_empty() {
                    libc::POLLIN
                } else if p.writers == 0 {
                    libc::POLLHUP
                } else {
                    0
                }
            }
        }
    }
}

/// Opens /dev/watchdog: starts the helper (see `harddog`), logging why it could not.
fn open_watchdog(m: &mut Machine) -> Result<harddog::Harddog, i64> {
    let notify = m.config.notify.clone();
    harddog::Harddog::open(notify.as_deref()).map_err(|e| {
        m.log.warn(format!("harddog: {e}"));
        match e {
            harddog::Error::Busy => -harddog::EBUSY,
            _ => -harddog::EIO,
        }
    })
}
