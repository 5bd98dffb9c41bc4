//! Builds the linux.uml preload library (shim/xstate_preload.c, see its comment) that
//! lets Debian's UML 6.1 run guest programs on hosts with AVX-512 or AMX.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "shim/xstate_preload.c";
    println!("cargo:rerun-if-changed={source}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let library = out.join("libuml_xstate_preload.so");
    let compiler = std::env::var("CC").unwrap_or_else(|_| "gcc".into());
    let status = Command::new(&compiler)
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&library)
        .arg(source)
        .arg("-ldl")
        .status()
        .unwrap_or_else(|e| panic!("{compiler}: {e} (scripts/setup installs gcc)"));
    assert!(status.success(), "{compiler} failed to build {source}");
}
