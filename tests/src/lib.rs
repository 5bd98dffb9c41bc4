//! The test harness shared by every cross-program test: where our binaries and the real
//! peers are, running a command with a bounded wait, building a bootable guest image in
//! a second, and booting linux.uml on it.
//!
//! Interoperability tests need linux.uml and the C uml-utilities. When one is missing the
//! test fails with a message saying which package to install; only `UML_SKIP_INTEROP=1`
//! turns that into a skip (CI never sets it).

pub mod command;
pub mod ext2tree;
pub mod guest;
pub mod holder;
pub mod humtree;
pub mod kernel;
pub mod mountns;
pub mod netns;
pub mod peers;
pub mod pty;

pub use command::{run, run_input, run_ok, Output};
pub use guest::{descendants, gcc_static, proc_dir, static_program, GuestImage, Uml, UmlBoot};
pub use kernel::KernelRun;
pub use mountns::MountNs;
pub use netns::NetNs;
pub use peers::{c_tool, linux_uml, our_bin, require_root, slirp};

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A scratch directory, removed when dropped, readable by other users (tests that drop
/// privileges with setpriv need to reach it).
pub fn scratch() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("umltest.")
        .tempdir()
        .expect("create scratch dir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod scratch dir");
    dir
}

/// A file's content digest and mtime, to prove that a command did not touch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub digest: u64,
    pub len: u64,
    pub mtime: (i64, i64),
}

/// Reads `path` whole and fingerprints it.
pub fn fingerprint(path: &Path) -> Fingerprint {
    use std::hash::{Hash, Hasher};
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    let meta = std::fs::metadata(path).expect("stat");
    Fingerprint {
        digest: h.finish(),
        len: bytes.len() as u64,
        mtime: (meta.mtime(), meta.mtime_nsec()),
    }
}

/// Allocated bytes of a file (what `du` counts).
pub fn allocated_bytes(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").blocks() * 512
}

/// Attaches to the switch at `ctl` as a v3 client of this process (data socket named by
/// our pid and `tag`), waiting at most 5 s; panics with the reason otherwise. A control
/// socket that exists but does not accept yet (a switch between bind and listen) is
/// tried again.
pub fn attach_v3(ctl: &Path, tag: u32) -> uml_proto::switch::Client {
    use uml_proto::switch::{attach, DataAddr, Request};
    let local = DataAddr::abstract_name(std::process::id(), tag);
    let start = std::time::Instant::now();
    loop {
        let limit = std::time::Duration::from_secs(5).saturating_sub(start.elapsed());
        match attach(ctl, local, |addr| Request::V3 { addr }, None, limit) {
            Ok(client) => return client,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused && !limit.is_zero() => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("cannot attach to the switch at {}: {e}", ctl.display()),
        }
    }
}
