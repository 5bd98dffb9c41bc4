//! The one system call uml_moo needs that nix does not wrap.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Starts writing `len` bytes of `file` from `offset` out to the disk without waiting
/// for it (`sync_file_range(SYNC_FILE_RANGE_WRITE)`); a later fdatasync then has less
/// to wait for.
pub fn start_writeback(file: &File, offset: u64, len: u64) -> io::Result<()> {
    // SAFETY: sync_file_range takes integers only and touches no memory of ours; the fd
    // is open for the duration of the call.
    let rc = unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
