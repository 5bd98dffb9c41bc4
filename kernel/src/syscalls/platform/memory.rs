//! Guest memory access for the sentry: process_vm_readv/writev (one copy, no stop
//! needed), falling back to /proc/PID/mem where those are not permitted (the fallback
//! also writes read-only pages, as ptrace's POKEDATA does).

use std::fs::OpenOptions;
use std::io::{IoSlice, IoSliceMut};
use std::os::unix::fs::FileExt;

use nix::errno::Errno;
use nix::sys::uio::{process_vm_readv, process_vm_writev, RemoteIoVec};
use nix::unistd::Pid;

use super::{Error, Platform};

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Whether process_vm_* failed in a way /proc/PID/mem may not.
fn try_proc_mem(errno: Errno) -> bool {
    matches!(errno, Errno::ENOSYS | Errno::EPERM)
}

impl Platform {
    /// Reads `buf.len()` bytes of guest memory at `addr`.
    pub fn read_mem(&self, pid: Pid, addr: u64, buf: &mut [u8]) -> Result<(), Error> {
        let len = buf.len();
        let err = |errno| Error::Memory {
            pid,
            addr,
            len,
            errno,
        };
        if !self.guests.contains_key(&pid) {
            return Err(Error::NoSuchGuest(pid));
        }
        if buf.is_empty() {
            return Ok(());
        }
        let remote = [RemoteIoVec {
            base: addr as usize,
            len,
        }];
        match process_vm_readv(pid, &mut [IoSliceMut::new(buf)], &remote) {
            Ok(n) if n == len => return Ok(()),
            Ok(_) => return Err(err(Errno::EFAULT)),
            Err(e) if !try_proc_mem(e) => return Err(err(e)),
            Err(_) => {}
        }
        let mem = OpenOptions::new()
            .read(true)
            .open(format!("/proc/{pid}/mem"))
            .map_err(|e| err(io_errno(e)))?;
        mem.read_exact_at(buf, addr).map_err(|e| err(io_errno(e)))
    }

    /// Writes `data` into guest memory at `addr`.
    pub fn write_mem(&self, pid: Pid, addr: u64, data: &[u8]) -> Result<(), Error> {
        let err = |errno| Error::Memory {
            pid,
            addr,
            len: data.len(),
            errno,
        };
        if !self.guests.contains_key(&pid) {
            return Err(Error::NoSuchGuest(pid));
        }
        if data.is_empty() {
            return Ok(());
        }
        let remote = [RemoteIoVec {
            base: addr as usize,
            len: data.len(),
        }];
        match process_vm_writev(pid, &[IoSlice::new(data)], &remote) {
            Ok(n) if n == data.len() => return Ok(()),
            Ok(_) => return Err(err(Errno::EFAULT)),
            Err(e) if !try_proc_mem(e) => return Err(err(e)),
            Err(_) => {}
        }
        let mem = OpenOptions::new()
            .write(true)
            .open(format!("/proc/{pid}/mem"))
            .map_err(|e| err(io_errno(e)))?;
        mem.write_all_at(data, addr).map_err(|e| err(io_errno(e)))
    }

    /// Reads a NUL-terminated string of at most `max` bytes (without the NUL).
    pub fn read_cstr(&self, pid: Pid, addr: u64, max: usize) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 256];
        while out.len() < max {
            let at = addr + out.len() as u64;
            // Stay inside the page: the next one may be unmapped.
            let room = (4096 - (at % 4096) as usize).min(chunk.len());
            self.read_mem(pid, at, &mut chunk[..room])?;
            if let Some(end) = chunk[..room].iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..end]);
                return Ok(out);
            }
            out.extend_from_slice(&chunk[..room]);
        }
        out.truncate(max);
        Ok(out)
    }
}
