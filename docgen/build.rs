//! Lists the program crates docgen documents: every `path` dependency in this crate's
//! Cargo.toml. Writes `programs.rs` into OUT_DIR with one entry per crate (package
//! name, `<crate>::cli::command`), so adding a program is one dependency line.

use std::env;
use std::fs;
use std::path::PathBuf;

/// The names of the `[dependencies]` entries written `NAME = { path = ... }`.
fn path_dependencies(manifest: &str) -> Vec<String> {
    let mut in_dependencies = false;
    let mut names = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if !in_dependencies || line.starts_with('#') {
            continue;
        }
        if let Some((name, value)) = line.split_once('=') {
            let value = value.trim();
            if value.starts_with('{') && value.contains("path") {
                names.push(name.trim().to_owned());
            }
        }
    }
    names
}

fn main() {
    let dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let manifest_path = dir.join("Cargo.toml");
    println!("cargo:rerun-if-changed={}", manifest_path.display());
    let manifest = fs::read_to_string(&manifest_path).expect("read docgen/Cargo.toml");
    let mut code = String::from(
        "/// Every documented program crate: (package, its `cli::command`).\n\
         pub const PACKAGES: &[(&str, CommandFn)] = &[\n",
    );
    for name in path_dependencies(&manifest) {
        let ident = name.replace('-', "_");
        code.push_str(&format!("    ({name:?}, ::{ident}::cli::command),\n"));
    }
    code.push_str("];\n");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it")).join("programs.rs");
    fs::write(out, code).expect("write programs.rs");
}
