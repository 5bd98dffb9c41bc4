//! Where the programs under test are: ours (built by cargo into the target directory)
//! and the real peers (linux.uml, the C uml-utilities), with clear failures when absent.

use std::path::{Path, PathBuf};

/// True when the caller asked to skip interoperability tests (never set in CI).
pub fn skip_interop() -> bool {
    std::env::var_os("UML_SKIP_INTEROP").is_some_and(|v| v == "1")
}

/// One of our programs, from the target directory this test binary was built into.
pub fn our_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace` (scripts/test does) first",
        path.display()
    );
    path
}

fn peer(path: &str, package: &str) -> Option<PathBuf> {
    let p = PathBuf::from(path);
    if p.exists() {
        return Some(p);
    }
    if skip_interop() {
        eprintln!("SKIP: {path} missing and UML_SKIP_INTEROP=1");
        return None;
    }
    panic!(
        "{path} is missing: install the Debian package `{package}` (scripts/setup does), \
         or set UML_SKIP_INTEROP=1 to skip interoperability tests"
    );
}

/// A C tool from Debian's uml-utilities (`uml_moo`, `uml_mkcow`, `uml_mconsole`, ...).
/// None only when interop tests are skipped on purpose.
pub fn c_tool(name: &str) -> Option<PathBuf> {
    let path = match name {
        "port-helper" => "/usr/lib/uml/port-helper".to_string(),
        "jail_uml" => "/usr/sbin/jail_uml".to_string(),
        _ => format!("/usr/bin/{name}"),
    };
    peer(&path, "uml-utilities")
}

/// The library every linux.uml the tests start preloads (tests/shim/xstate_preload.c):
/// it lets Debian's UML 6.1 restore guest registers on hosts with AVX-512 or AMX, and
/// does nothing on other hosts.
pub const XSTATE_PRELOAD: &str = concat!(env!("OUT_DIR"), "/libuml_xstate_preload.so");

/// The real UML kernel from Debian's user-mode-linux. The first call also puts
/// [`XSTATE_PRELOAD`] in this process's `LD_PRELOAD`, so every linux.uml it starts
/// (directly, through jail_uml or a namespace wrapper) runs guest programs on any x86_64
/// host.
pub fn linux_uml() -> Option<PathBuf> {
    static PRELOAD: std::sync::Once = std::sync::Once::new();
    let kernel = peer("/usr/bin/linux.uml", "user-mode-linux")?;
    PRELOAD.call_once(|| {
        let preload = match std::env::var("LD_PRELOAD") {
            Ok(other) if !other.is_empty() => format!("{XSTATE_PRELOAD}:{other}"),
            _ => XSTATE_PRELOAD.to_string(),
        };
        std::env::set_var("LD_PRELOAD", preload);
    });
    Some(kernel)
}

/// Debian's slirp, the user-mode IP helper of the `eth<N>=slirp` transport.
pub fn slirp() -> Option<PathBuf> {
    peer("/usr/bin/slirp", "slirp")
}

/// Panics with a clear message unless running as root (tests that mount, drop
/// privileges or make devices need it; scripts/test runs as root in CI).
pub fn require_root(what: &str) {
    assert_eq!(
        nix::unistd::geteuid().as_raw(),
        0,
        "{what} needs root: run it through scripts/test as root"
    );
}
