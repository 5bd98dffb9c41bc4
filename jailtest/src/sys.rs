//! The probes that must touch memory they do not own: a raw write to an address, a
//! read(2) into it, and fork.

use nix::errno::Errno;
use nix::unistd::ForkResult;

/// Writes one byte at `addr` (expected to kill the caller with SIGSEGV).
pub fn poke(addr: usize) {
    // SAFETY: not sound by design: this runs in a forked child whose only purpose is to
    // show that the address is not writable; the child exits right after.
    unsafe { std::ptr::write_volatile(addr as *mut u8, 0x55) };
}

/// read(2) from `fd` into `len` bytes at `addr`; the kernel checks the address.
pub fn read_into(fd: i32, addr: usize, len: usize) -> Result<usize, Errno> {
    // SAFETY: the kernel validates the destination and answers EFAULT for memory we
    // may not write; if it does write, it writes memory this probe deems not ours,
    // which is the failure the probe reports (a BAD line).
    let n = unsafe { libc::read(fd, addr as *mut libc::c_void, len) };
    Errno::result(n).map(|n| n as usize)
}

/// Forks; jailtest is single-threaded.
pub fn fork() -> nix::Result<ForkResult> {
    // SAFETY: jailtest never starts a thread, so the child's copy is consistent.
    unsafe { nix::unistd::fork() }
}
