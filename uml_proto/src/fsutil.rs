//! Small file-system helpers the tools share for writing files safely: the mode a new
//! file gets, the directory a path lives in, and syncing that directory after a rename.

use std::fs::File;
use std::path::Path;

/// The process's umask, read by setting it and immediately restoring it.
pub fn umask() -> u32 {
    // SAFETY: umask cannot fail; the second call restores the value the first returned.
    unsafe {
        let old = libc::umask(0o022);
        libc::umask(old);
        old
    }
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
