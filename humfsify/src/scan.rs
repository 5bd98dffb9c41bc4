//! Walking `data/` once by descriptor (see `at`: never following a symlink, parents
//! before children, names sorted) and measuring it the way `du -sk` does: allocated
//! blocks, each inode once, rounded up to whole KiB.

use std::collections::HashSet;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::AtFlags;
use nix::sys::stat::{fstatat, FileStat};

use crate::at::{self, Id};
use crate::error::{HumfsifyError, Result};

/// One node under data/.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path relative to data/ (empty for data/ itself).
    pub rel: PathBuf,
    /// lstat of the node.
    pub st: FileStat,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        at::is_dir(&self.st)
    }

    pub fn is_symlink(&self) -> bool {
        at::is_symlink(&self.st)
    }

    /// (device, inode): what hard links share and what a swapped node lacks.
    pub fn id(&self) -> Id {
        Id::of(&self.st)
    }

    /// The owner, group and permission bits (setuid, setgid, sticky included).
    pub fn owner_and_mode(&self) -> (u32, u32, u32) {
        (self.st.st_uid, self.st.st_gid, self.st.st_mode & 0o7777)
    }
}

/// Everything under data/, in walk order, and its disk usage in bytes.
#[derive(Debug, Clone)]
pub struct Scan {
    pub entries: Vec<Entry>,
    pub used_bytes: u64,
}

/// Walks the directory `data` (an open descriptor; `shown` names it in errors).
pub fn scan(data: &OwnedFd, shown: &Path) -> Result<Scan> {
    let st = at::stat(data).map_err(HumfsifyError::io(shown, "stat"))?;
    let mut entries = vec![Entry {
        rel: PathBuf::new(),
        st,
    }];
    walk(data, &PathBuf::new(), shown, &mut entries)?;
    let used_bytes = du_bytes(&entries);
    Ok(Scan {
        entries,
        used_bytes,
    })
}

fn walk(dir: &OwnedFd, rel: &Path, shown: &Path, out: &mut Vec<Entry>) -> Result<()> {
    let names = at::list(dir).map_err(HumfsifyError::io(shown.join(rel), "reading the tree"))?;
    for name in names {
        let child = rel.join(&name);
        let st = fstatat(dir.as_fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| HumfsifyError::io(shown.join(&child), "lstat")(e.into()))?;
        let entry = Entry { rel: child, st };
        let is_dir = entry.is_dir();
        out.push(entry);
        if is_dir {
            let rel = &out[out.len() - 1].rel.clone();
            let fd = at::open_dir(dir, &name)
                .and_then(|fd| at::check_same(&fd, Id::of(&st)).map(|_| fd))
                .map_err(HumfsifyError::io(shown.join(rel), "opening the directory"))?;
            walk(&fd, rel, shown, out)?;
        }
    }
    Ok(())
}

/// What `du -sk` reports, times 1024.
pub fn du_bytes(entries: &[Entry]) -> u64 {
    let mut seen = HashSet::new();
    let bytes: u64 = entries
        .iter()
        .filter(|e| seen.insert(e.id()))
        .map(|e| e.st.st_blocks as u64 * 512)
        .sum();
    bytes.div_ceil(1024) * 1024
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::process::Command;

    #[test]
    fn usage_matches_du_and_counts_hard_links_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir_all(data.join("sub")).unwrap();
        fs::write(data.join("a"), vec![1u8; 10000]).unwrap();
        fs::hard_link(data.join("a"), data.join("sub/a-again")).unwrap();
        fs::write(data.join("sub/b"), b"x").unwrap();
        let fd = at::open_root(&data).unwrap();
        let s = scan(&fd, &data).unwrap();
        assert_eq!(s.entries.len(), 5);
        assert_eq!(s.entries[0].rel, PathBuf::new());
        let du = Command::new("du").arg("-sk").arg(&data).output().unwrap();
        let kib: u64 = String::from_utf8_lossy(&du.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(s.used_bytes, kib * 1024);
    }
}
