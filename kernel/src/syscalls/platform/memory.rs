//! Guest memory access for the sentry: process_vm_readv/writev (one copy, no stop
//! needed), falling back to PTRACE_PEEKDATA/POKEDATA a word at a time where those are
//! not permitted (the fallback needs the guest stopped, and also writes read-only pages).
//! Not /proc/PID/mem: in a pid namespace whose /proc is the parent's, that path names
//! another process.

use std::io::{IoSlice, IoSliceMut};

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::uio::{process_vm_readv, process_vm_writev, RemoteIoVec};
use nix::unistd::Pid;

use super::{Error, Platform};

const WORD: u64 = std::mem::size_of::<libc::c_long>() as u64;

/// Whether process_vm_* failed in a way ptrace may not.
fn try_ptrace(errno: Errno) -> bool {
    matches!(errno, Errno::ENOSYS | Errno::EPERM)
}

fn peek(pid: Pid, at: u64) -> Result<[u8; WORD as usize], Errno> {
    ptrace::read(pid, at as ptrace::AddressType).map(|w| w.to_ne_bytes())
}

/// Reads through PTRACE_PEEKDATA.
fn peek_bytes(pid: Pid, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
    let mut done = 0usize;
    while done < buf.len() {
        let at = addr + done as u64;
        let base = at - at % WORD;
        let word = peek(pid, base)?;
        let skip = (at - base) as usize;
        let n = (WORD as usize - skip).min(buf.len() - done);
        buf[done..done + n].copy_from_slice(&word[skip..skip + n]);
        done += n;
    }
    Ok(())
}

/// Writes through PTRACE_POKEDATA (read-modify-write for partial words).
fn poke_bytes(pid: Pid, addr: u64, data: &[u8]) -> Result<(), Errno> {
    let mut done = 0usize;
    while done < data.len() {
        let at = addr + done as u64;
        let base = at - at % WORD;
        let skip = (at - base) as usize;
        let n = (WORD as usize - skip).min(data.len() - done);
        let mut word = if n == WORD as usize {
            [0u8; WORD as usize]
        } else {
            peek(pid, base)?
        };
        word[skip..skip + n].copy_from_slice(&data[done..done + n]);
        ptrace::write(
            pid,
            base as ptrace::AddressType,
            libc::c_long::from_ne_bytes(word),
        )?;
        done += n;
    }
    Ok(())
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
            Ok(n) if n == len => Ok(()),
            Ok(_) => Err(err(Errno::EFAULT)),
            Err(e) if try_ptrace(e) => peek_bytes(pid, addr, buf).map_err(err),
            Err(e) => Err(err(e)),
        }
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
            Ok(n) if n == data.len() => Ok(()),
            Ok(_) => Err(err(Errno::EFAULT)),
            Err(e) if try_ptrace(e) => poke_bytes(pid, addr, data).map_err(err),
            Err(e) => Err(err(e)),
        }
    }

    /// Reads guest memory word by word through ptrace (the fallback path, callable
    /// directly; the guest must be stopped).
    pub fn read_mem_ptrace(&self, pid: Pid, addr: u64, buf: &mut [u8]) -> Result<(), Error> {
        let len = buf.len();
        peek_bytes(pid, addr, buf).map_err(|errno| Error::Memory {
            pid,
            addr,
            len,
            errno,
        })
    }

    /// Writes guest memory word by word through ptrace (the fallback path, callable
    /// directly; the guest must be stopped).
    pub fn write_mem_ptrace(&self, pid: Pid, addr: u64, data: &[u8]) -> Result<(), Error> {
        poke_bytes(pid, addr, data).map_err(|errno| Error::Memory {
            pid,
            addr,
            len: data.len(),
            errno,
        })
    }

    /// Reads a NUL-terminated string of at most `max` bytes (without the NUL).
    pub fn read_cstr(&self, pid: Pid, addr: u64, max: usize) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 256];
        while out.len() < max {
            let at = addr + out.len() as u64;
            // Stay inside the page: the next one may be unmapped.
            let room = (4096 - (at % 4096) as usize)
                .min(chunk.len())
                .min(max - out.len());
            self.read_mem(pid, at, &mut chunk[..room])?;
            if let Some(end) = chunk[..room].iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..end]);
                return Ok(out);
            }
            out.extend_from_slice(&chunk[..room]);
        }
        Ok(out)
    }
}
