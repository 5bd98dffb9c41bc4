//! linux.uml on hosts with AMX: Debian's 6.1 UML hands the host a fixed-size XSAVE
//! buffer when it restores a guest's FPU state (PTRACE_SETREGSET NT_X86_XSTATE), and a
//! host kernel whose XSAVE area is larger (AMX tile data: 11 KiB) refuses it with EFAULT,
//! so init dies at its first context switch ("ptrace set fp regs failed, errno = 14").
//! On such hosts linux.uml runs through a wrapper that preloads a tiny shim
//! (`xstate_pad.c`) padding that buffer with zeros to the host's size; the header of the
//! area names no component in the padding, so the host reads nothing from it. Built once
//! per user with gcc into the temporary directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const SHIM_C: &str = include_str!("xstate_pad.c");

/// Whether this host's XSAVE area is larger than linux.uml's buffer (AMX present).
fn needs_pad() -> bool {
    fs::read_to_string("/proc/cpuinfo")
        .map(|c| c.split_whitespace().any(|w| w == "amx_tile"))
        .unwrap_or(false)
}

/// Writes `bytes` to `path` atomically (another test process may do the same).
fn put(path: &Path, bytes: &[u8], mode: u32) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, bytes).expect("write xstate shim file");
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).expect("chmod");
    fs::rename(&tmp, path).expect("rename xstate shim file");
}

fn build(real: &Path) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "uml-xstate-pad-{}",
        nix::unistd::geteuid().as_raw()
    ));
    fs::create_dir_all(&dir).expect("xstate shim dir");
    let src = dir.join("xstate_pad.c");
    let so = dir.join("xstate_pad.so");
    let wrapper = dir.join("linux.uml");
    if fs::read_to_string(&src).ok().as_deref() != Some(SHIM_C) || !so.exists() {
        put(&src, SHIM_C.as_bytes(), 0o644);
        let tmp = dir.join(format!("xstate_pad.so.tmp{}", std::process::id()));
        let status = Command::new("gcc")
            .args(["-O2", "-shared", "-fPIC", "-o"])
            .arg(&tmp)
            .arg(&src)
            .arg("-ldl")
            .status()
            .expect("gcc is missing: install gcc (scripts/setup)");
        assert!(status.success(), "gcc failed on {}", src.display());
        fs::rename(&tmp, &so).expect("rename xstate shim");
    }
    let script = format!(
        "#!/bin/sh\nLD_PRELOAD=\"{}${{LD_PRELOAD:+:$LD_PRELOAD}}\" exec {} \"$@\"\n",
        so.display(),
        real.display()
    );
    if fs::read_to_string(&wrapper).ok().as_deref() != Some(script.as_str()) {
        put(&wrapper, script.as_bytes(), 0o755);
    }
    wrapper
}

/// The command to run for linux.uml at `real`: itself, or on an AMX host the wrapper
/// that preloads the padding shim.
pub fn linux_uml_command(real: &Path) -> PathBuf {
    static WRAPPED: OnceLock<Option<PathBuf>> = OnceLock::new();
    WRAPPED
        .get_or_init(|| needs_pad().then(|| build(real)))
        .clone()
        .unwrap_or_else(|| real.to_owned())
}
