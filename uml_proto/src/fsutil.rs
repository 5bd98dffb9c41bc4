//! Small file-system helpers the tools share: the mode a new file gets, the directory a
//! path lives in, syncing that directory after a rename, and making a path absolute the
//! way the kernel records it (COW backing files, `config ubdN=` names).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{umask as set_umask, Mode};

/// The process's umask, read by setting it and immediately restoring it.
pub fn umask() -> u32 {
    let old = set_umask(Mode::from_bits_truncate(0o022));
    set_umask(old);
    old.bits()
}

/// `path` made absolute against `cwd`, as the kernel stores a backing file's name: the
/// directory part resolved to a symlink-free absolute path (what `chdir` + `getcwd`
/// give), the last component kept exactly as written (the file may not exist yet).
/// Fails when the directory part does not exist.
pub fn absolute_path(path: &Path, cwd: &Path) -> io::Result<PathBuf> {
    let bytes = path.as_os_str().as_bytes();
    let (dir, name) = match bytes.iter().rposition(|&b| b == b'/') {
        None => (cwd.to_owned(), bytes),
        Some(0) => (PathBuf::from("/"), &bytes[1..]),
        Some(slash) => (
            cwd.join(OsStr::from_bytes(&bytes[..slash])),
            &bytes[slash + 1..],
        ),
    };
    let mut out = std::fs::canonicalize(dir)?.into_os_string().into_vec();
    if out != b"/" {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    Ok(PathBuf::from(std::ffi::OsString::from_vec(out)))
}

/// The mode `creat(path, 0644)` gives a new file under the current umask.
pub fn new_file_mode() -> u32 {
    0o644 & !umask()
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename or unlink in the directory holding `path` durable.
pub fn sync_parent_dir(path: &Path) -> std::io::Result<()> {
    File::open(parent_dir(path))?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_resolve_the_directory_only() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(real.join("sub")).unwrap();
        std::os::unix::fs::symlink(real.join("sub"), real.join("link")).unwrap();
        let abs = |p: &str| absolute_path(Path::new(p), &real).unwrap();
        assert_eq!(abs("link/../sub/img"), real.join("sub/img"));
        assert_eq!(abs("link/img"), real.join("sub/img"));
        assert_eq!(abs("img"), real.join("img"));
        assert_eq!(abs("/img"), Path::new("/img"));
        assert_eq!(
            abs(&format!("{}/link/x", real.display())),
            real.join("sub/x")
        );
        assert!(absolute_path(Path::new("missing/img"), &real).is_err());
    }

    #[test]
    fn umask_reads_without_changing_it() {
        let first = umask();
        assert_eq!(umask(), first);
    }
}
