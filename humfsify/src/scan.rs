//! Walking `data/` once (walkdir, never following symlinks, parents before children)
//! and measuring it the way `du -sk` does: allocated blocks, each inode once, rounded
//! up to whole KiB.

use std::collections::HashSet;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::error::{HumfsifyError, Result};

/// One node under data/.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path relative to data/ (empty for data/ itself).
    pub rel: PathBuf,
    /// lstat of the node.
    pub meta: Metadata,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        self.meta.file_type().is_dir()
    }

    pub fn is_symlink(&self) -> bool {
        self.meta.file_type().is_symlink()
    }

    /// (device, inode): what hard links share.
    pub fn inode(&self) -> (u64, u64) {
        (self.meta.dev(), self.meta.ino())
    }
}

/// Everything under data/, in walk order, and its disk usage in bytes.
#[derive(Debug, Clone)]
pub struct Scan {
    pub entries: Vec<Entry>,
    pub used_bytes: u64,
}

/// Walks `data`.
pub fn scan(data: &Path) -> Result<Scan> {
    let mut entries = Vec::new();
    for item in WalkDir::new(data).follow_links(false).sort_by_file_name() {
        let item = item.map_err(|e| {
            let path = e.path().unwrap_or(data).to_owned();
            HumfsifyError::Io {
                path,
                op: "reading the tree",
                source: e.into(),
            }
        })?;
        let meta = item.metadata().map_err(|e| HumfsifyError::Io {
            path: item.path().to_owned(),
            op: "lstat",
            source: e.into(),
        })?;
        let rel = item
            .path()
            .strip_prefix(data)
            .unwrap_or(item.path())
            .to_owned();
        entries.push(Entry { rel, meta });
    }
    let used_bytes = du_bytes(&entries);
    Ok(Scan {
        entries,
        used_bytes,
    })
}

/// What `du -sk` reports, times 1024.
pub fn du_bytes(entries: &[Entry]) -> u64 {
    let mut seen = HashSet::new();
    let bytes: u64 = entries
        .iter()
        .filter(|e| seen.insert(e.inode()))
        .map(|e| e.meta.blocks() * 512)
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
        let s = scan(&data).unwrap();
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
