//! Privileges of a setuid-root helper: start with the caller's identity (effective uid
//! = real uid, root kept only as the saved uid), become root just for the host changes,
//! and give root up for good before answering.

use nix::unistd::{getgid, getuid, setresgid, setresuid, Gid, Uid};

/// Who called us (the real ids), which never change.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub uid: Uid,
    pub gid: Gid,
}

/// Records the caller and lowers the effective uid to it (keeping root as the saved
/// uid when we were started setuid root).
pub fn start() -> Caller {
    let caller = Caller {
        uid: getuid(),
        gid: getgid(),
    };
    // Fails harmlessly when we are not setuid (nothing to lower).
    let _ = setresuid(Uid::from_raw(u32::MAX), caller.uid, Uid::from_raw(u32::MAX));
    caller
}

/// Runs `f` with effective uid 0 (if the saved uid allows it), then lowers it again.
pub fn as_root<T>(caller: Caller, f: impl FnOnce() -> T) -> T {
    let keep = Uid::from_raw(u32::MAX);
    let _ = setresuid(keep, Uid::from_raw(0), keep);
    let out = f();
    let _ = setresuid(keep, caller.uid, keep);
    out
}

/// Gives up root for good: real, effective and saved ids all become the caller's.
pub fn drop_for_good(caller: Caller) -> nix::Result<()> {
    setresgid(caller.gid, caller.gid, caller.gid)?;
    setresuid(caller.uid, caller.uid, caller.uid)?;
    if caller.uid.as_raw() != 0
        && setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).is_ok()
    {
        // Root came back: something is badly wrong; refuse to go on.
        std::process::abort();
    }
    Ok(())
}
