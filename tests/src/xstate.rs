//! linux.uml on hosts with a large XSAVE area (AMX: Sapphire Rapids and later): the
//! host kernel takes PTRACE_SETREGSET NT_X86_XSTATE only with a buffer of its full
//! xstate size, and Debian's linux.uml 6.1 passes its own smaller one, so every guest
//! process dies at its first switch ("userspace - ptrace set fp regs failed, errno =
//! 14", then "Attempted to kill init!"). The fix is outside linux.uml: a small
//! LD_PRELOAD library (tests/guests/xstate_shim.c, built here with gcc, once per content) wraps ptrace so such a
//! SETREGSET reads the full state first and writes it back with linux.uml's part laid
//! over it. Where the sizes already agree it changes nothing.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

const SHIM: &str = include_str!("../guests/xstate_shim.c");

/// The shim library (built on first use), or None when gcc cannot build it (then
/// linux.uml runs as it is; on an AMX host its guests then fail visibly).
pub fn shim() -> Option<PathBuf> {
    static SHIM_PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    SHIM_PATH.get_or_init(build).clone()
}

fn build() -> Option<PathBuf> {
    let hash = SHIM.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let uid = nix::unistd::geteuid().as_raw();
    let dir = std::env::temp_dir().join(format!("uml-tests-xstate-{uid}-{hash:016x}"));
    let lib = dir.join("xstate.so");
    if lib.exists() {
        return Some(lib);
    }
    fs::create_dir_all(&dir).ok()?;
    let src = dir.join(format!("xstate.{}.c", std::process::id()));
    let tmp = dir.join(format!("xstate.{}.so", std::process::id()));
    fs::write(&src, SHIM).ok()?;
    let ok = Command::new("gcc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&tmp)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    let _ = fs::remove_file(&src);
    if !ok {
        eprintln!("note: gcc could not build the linux.uml xstate shim; running linux.uml as is");
        return None;
    }
    fs::rename(&tmp, &lib).ok()?;
    Some(lib)
}

/// LD_PRELOAD for a linux.uml process: the shim ahead of what the caller had.
pub fn preload_env() -> Option<(String, String)> {
    let lib = shim()?;
    let mut v = lib.display().to_string();
    if let Some(old) = std::env::var_os("LD_PRELOAD") {
        v.push(':');
        v.push_str(&old.to_string_lossy());
    }
    Some(("LD_PRELOAD".to_string(), v))
}
