//! fork, the one call here that nix marks unsafe.

use nix::unistd::ForkResult;

/// Forks; the caller is single-threaded (jail_uml never starts a thread).
pub fn fork() -> nix::Result<ForkResult> {
    // SAFETY: jail_uml is single-threaded when it forks (main calls this before any
    // thread could exist), so the child's copy of the address space is consistent and
    // it may allocate and call anything.
    unsafe { nix::unistd::fork() }
}
