//! mmap of guest files, as private copies: the host cannot map a VFS file, so the
//! sentry turns the call into an anonymous private mapping of the same size and
//! protection, lets the host make it, and at the call's exit writes the file's bytes
//! into it (through ptrace where the pages are read-only) before the guest sees the
//! address. Later changes to the file are not seen through the mapping, and writes to
//! a MAP_PRIVATE mapping stay private, as in Linux. Shared writable mappings are
//! refused (ENODEV): nothing would carry the guest's writes back to the file.
//! /dev/zero maps as zeroed memory. The errno cases, in Linux's order: EINVAL (an
//! offset that is not page-aligned), EBADF (no such descriptor), EINVAL (length 0),
//! ENODEV (a pipe, the tty, a directory or another device; a shared
//! writable mapping), EACCES (a descriptor not open for reading, or a shared writable
//! mapping of one not open for writing), ENOMEM (the copy could not be written).

use nix::unistd::Pid;

use super::abi::errno::*;
use super::fdtable::Object;
use super::file::fe;
use super::sentry::{Ret, Sentry};
use crate::fs::node::FileKind;
use crate::fs::vfs::oflag;
use crate::machine::Machine;

const PAGE: u64 = 4096;
/// Largest file mapping copied (the guest's address space is 1 GiB).
const MAX_COPY: u64 = 256 << 20;
const PROT_WRITE: u64 = 2;
const MAP_SHARED: u64 = 1;
const MAP_PRIVATE: u64 = 2;
const MAP_TYPE: u64 = 0xf;

/// A file mapping being made: what to write into it and the registers to put back.
pub struct PendingFill {
    data: Vec<u8>,
    /// r10, r8 and r9 as the guest passed them (flags, fd, offset).
    regs: (u64, u64, u64),
}

impl Sentry {
    /// mmap(addr, len, prot, flags, fd, offset) of a file (anonymous maps never stop).
    pub(super) fn mmap_file(&mut self, m: &mut Machine, pid: u32, host: Pid, a: [u64; 6]) -> Ret {
        let (len, prot, flags, fd, offset) = (a[1], a[2], a[3], super::file::fdarg(a[4]), a[5]);
        let data = match self.mapped_bytes(m, pid, fd, len, prot, flags, offset) {
            Ok(d) => d,
            Err(e) => return Ret::Val(e),
        };
        let Ok(mut regs) = self.platform.regs(host) else {
            return Ret::Val(-ESRCH);
        };
        let saved = (regs.r10, regs.r8, regs.r9);
        regs.r10 = (flags & !MAP_TYPE) | MAP_PRIVATE | libc::MAP_ANONYMOUS as u64;
        regs.r8 = u64::MAX; // fd -1
        regs.r9 = 0;
        if self.platform.set_regs(host, regs).is_err() {
            return Ret::Val(-ESRCH);
        }
        if self.platform.pass_to_exit(host).is_err() {
            return Ret::Val(-ENODEV);
        }
        self.mmap_fills
            .insert(host, PendingFill { data, regs: saved });
        Ret::Resumed
    }

    /// The bytes a mapping of `fd` shows, after the errno checks.
    #[allow(clippy::too_many_arguments)] // mmap's own arguments
    fn mapped_bytes(
        &mut self,
        m: &mut Machine,
        pid: u32,
        fd: i64,
        len: u64,
        prot: u64,
        flags: u64,
        offset: u64,
    ) -> Result<Vec<u8>, i64> {
        // Linux's order: the offset, the descriptor, the length.
        if !offset.is_multiple_of(PAGE) {
            return Err(-EINVAL);
        }
        let d = self.desc_of(pid, fd)?;
        if len == 0 {
            return Err(-EINVAL);
        }
        let d = d.borrow();
        let Object::File(of) = &d.object else {
            return Err(-ENODEV);
        };
        let attr = m.files.vfs.getattr(of.loc).map_err(fe)?;
        match attr.kind {
            FileKind::File => {}
            // /dev/zero maps as zeroed memory.
            FileKind::Char if attr.rdev == (1, 5) => return Ok(Vec::new()),
            _ => return Err(-ENODEV),
        }
        if d.flags & oflag::O_ACCMODE == oflag::O_WRONLY {
            return Err(-EACCES);
        }
        if flags & MAP_TYPE != MAP_PRIVATE && prot & PROT_WRITE != 0 {
            return Err(if d.flags & oflag::O_ACCMODE == oflag::O_RDWR {
                -ENODEV
            } else {
                -EACCES
            });
        }
        if flags & MAP_TYPE != MAP_PRIVATE && flags & MAP_TYPE != MAP_SHARED {
            // MAP_SHARED_VALIDATE and the rest: read-only, so a private copy does.
            if flags & MAP_TYPE != 3 {
                return Err(-EINVAL);
            }
        }
        let want = len.min(attr.size.saturating_sub(offset)).min(MAX_COPY) as usize;
        let mut data = vec![0u8; want];
        let mut done = 0;
        while done < want {
            match m
                .files
                .vfs
                .pread(of, offset + done as u64, &mut data[done..])
            {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) => return Err(fe(e)),
            }
        }
        data.truncate(done);
        Ok(data)
    }

    /// The host made the anonymous mapping (or failed, `ret` < 0): fill it, put the
    /// guest's registers back, answer. False when `host` had no file mapping pending.
    pub(super) fn mmap_returned(&mut self, host: Pid, ret: i64) -> bool {
        let Some(fill) = self.mmap_fills.remove(&host) else {
            return false;
        };
        let mut v = ret;
        if !(-4095..0).contains(&ret) && !fill.data.is_empty() {
            // process_vm_writev cannot write read-only pages; ptrace's pokes can.
            let at = ret as u64;
            let written = self
                .platform
                .write_mem(host, at, &fill.data)
                .or_else(|_| self.platform.write_mem_ptrace(host, at, &fill.data));
            if written.is_err() {
                v = -ENOMEM;
            }
        }
        if let Ok(mut regs) = self.platform.regs(host) {
            (regs.r10, regs.r8, regs.r9) = fill.regs;
            let _ = self.platform.set_regs(host, regs);
        }
        let _ = self.platform.reply(host, v);
        true
    }
}
