//! Read-only memory maps of a window of a file, so the merge can look at sectors and hand
//! them to `pwritev` without copying them through a buffer first.
//!
//! A mapped page whose file was truncated under us raises SIGBUS on access; `uml_moo`'s
//! `main` turns that into a clean error exit (see `install_sigbus_exit`). The files are
//! locked and checked for length first, so that needs another program misbehaving.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

/// `len` bytes of a file from `offset`, mapped read-only and shared.
pub struct MappedRange {
    base: NonNull<libc::c_void>,
    map_len: usize,
    /// Bytes from the page-aligned map start to the requested offset.
    skip: usize,
    len: usize,
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

impl MappedRange {
    /// Maps `offset..offset + len` of `file`, which must be at least that long. With
    /// `populate`, every page is mapped at once (cheaper than a fault per page when
    /// most will be read).
    pub fn new(file: &File, offset: u64, len: usize, populate: bool) -> io::Result<MappedRange> {
        assert!(len > 0, "empty mapping");
        let start = offset - offset % page_size();
        let skip = (offset - start) as usize;
        let map_len = skip + len;
        // SAFETY: a fresh read-only shared mapping chosen by the kernel; it aliases no
        // Rust object. The fd only has to be valid during the call.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ,
                if populate {
                    libc::MAP_SHARED | libc::MAP_POPULATE
                } else {
                    libc::MAP_SHARED
                },
                file.as_raw_fd(),
                start as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(MappedRange {
            base,
            map_len,
            skip,
            len,
        })
    }

    /// The mapped bytes. They are the file's page cache: a write to the file (ours,
    /// through pwrite) shows here, which the merge relies on only for bytes it writes
    /// back unchanged.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is live until drop, readable, and `skip + len` bytes long.
        unsafe {
            std::slice::from_raw_parts((self.base.as_ptr() as *const u8).add(self.skip), self.len)
        }
    }
}

impl Drop for MappedRange {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping we made; no slice outlives `self`.
        unsafe { libc::munmap(self.base.as_ptr(), self.map_len) };
    }
}

/// Turns SIGBUS (a mapped file shrank under us) into a one-line error and exit status 1
/// instead of a crash. Only async-signal-safe calls run in the handler.
pub fn install_sigbus_exit(message: &'static [u8]) {
    static mut MESSAGE: &[u8] = b"";
    extern "C" fn on_sigbus(_: libc::c_int) {
        // SAFETY: MESSAGE is written once before the handler is installed and only read
        // here; write and _exit are async-signal-safe.
        unsafe {
            let m = *std::ptr::addr_of!(MESSAGE);
            libc::write(2, m.as_ptr() as *const libc::c_void, m.len());
            libc::_exit(1);
        }
    }
    // SAFETY: set before the handler exists, so nothing reads it concurrently; then a
    // plain sigaction with a handler that only calls async-signal-safe functions.
    unsafe {
        *std::ptr::addr_of_mut!(MESSAGE) = message;
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn unaligned_windows_see_the_file() {
        let f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..20000u32).map(|i| (i % 251) as u8).collect();
        f.write_all_at(&data, 0).unwrap();
        let m = MappedRange::new(&f, 4100, 9000, false).unwrap();
        assert_eq!(m.bytes(), &data[4100..13100]);
        f.write_all_at(b"new", 5000).unwrap();
        assert_eq!(&m.bytes()[900..903], b"new");
    }
}
