//! The resume journal of a destructive merge.
//!
//! `uml_moo -d` rewrites the backing file in place, which changes its mtime, so after an
//! interruption the COW header no longer matches and the merge could never be finished.
//! Before the first write, the merge records which COW and backing file it joins and
//! what the header said; a later run that finds a matching record knows the mtime change
//! is its own and redoes the merge (every write is idempotent). The record is removed
//! once the backing file is synced.

use std::fs::OpenOptions;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use uml_proto::fsutil::sync_parent_dir;

const MAGIC_LINE: &str = "uml_moo destructive merge journal v1";

/// What a destructive merge joins, identified by inode and header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalRecord {
    pub cow_dev: u64,
    pub cow_ino: u64,
    pub backing_dev: u64,
    pub backing_ino: u64,
    pub header_mtime: u32,
    pub size: u64,
}

/// The journal's path for a COW file: beside it, with a suffix.
pub fn journal_path(cow: &Path) -> PathBuf {
    let mut name = cow.as_os_str().to_owned();
    name.push(".uml_moo-journal");
    PathBuf::from(name)
}

impl JournalRecord {
    fn to_text(self) -> String {
        format!(
            "{MAGIC_LINE}\ncow {} {}\nbacking {} {}\nheader-mtime {}\nsize {}\n",
            self.cow_dev,
            self.cow_ino,
            self.backing_dev,
            self.backing_ino,
            self.header_mtime,
            self.size
        )
    }

    fn from_text(text: &str) -> Option<JournalRecord> {
        let mut lines = text.lines();
        if lines.next()? != MAGIC_LINE {
            return None;
        }
        let mut field = |key: &str| -> Option<Vec<u64>> {
            let line = lines.next()?;
            let rest = line.strip_prefix(key)?.strip_prefix(' ')?;
            rest.split(' ').map(|n| n.parse().ok()).collect()
        };
        let cow = field("cow")?;
        let backing = field("backing")?;
        let mtime = field("header-mtime")?;
        let size = field("size")?;
        match (&cow[..], &backing[..], &mtime[..], &size[..]) {
            (&[cd, ci], &[bd, bi], &[m], &[s]) => Some(JournalRecord {
                cow_dev: cd,
                cow_ino: ci,
                backing_dev: bd,
                backing_ino: bi,
                header_mtime: u32::try_from(m).ok()?,
                size: s,
            }),
            _ => None,
        }
    }
}

/// What was found at the journal path.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    Nothing,
    Record(JournalRecord),
    /// A file that is not a journal this program wrote.
    Unreadable,
}

/// Reads the journal at `path`, if any.
pub fn read(path: &Path) -> io::Result<Found> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(std::str::from_utf8(&bytes)
            .ok()
            .and_then(JournalRecord::from_text)
            .map_or(Found::Unreadable, Found::Record)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Found::Nothing),
        Err(e) => Err(e),
    }
}

/// Writes a new journal durably (file and directory entry) before any data is touched.
pub fn write(path: &Path, record: JournalRecord) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(path)?;
    f.write_all(record.to_text().as_bytes())?;
    f.sync_all()?;
    sync_parent_dir(path)
}

/// Removes the journal durably once the merge is complete and synced.
pub fn remove(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)?;
    sync_parent_dir(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_junk_is_rejected() {
        let r = JournalRecord {
            cow_dev: 2049,
            cow_ino: 123,
            backing_dev: 2049,
            backing_ino: 456,
            header_mtime: 4_000_000_000,
            size: 1 << 30,
        };
        assert_eq!(JournalRecord::from_text(&r.to_text()), Some(r));
        assert_eq!(JournalRecord::from_text("hello\n"), None);
        let cut = r.to_text().replace("size 1073741824\n", "");
        assert_eq!(JournalRecord::from_text(&cut), None);
        let dir = tempfile::tempdir().unwrap();
        let p = journal_path(&dir.path().join("disk.cow"));
        assert!(p.ends_with("disk.cow.uml_moo-journal"));
        assert_eq!(read(&p).unwrap(), Found::Nothing);
        write(&p, r).unwrap();
        assert_eq!(read(&p).unwrap(), Found::Record(r));
        assert!(
            write(&p, r).is_err(),
            "a second journal must not replace the first"
        );
        remove(&p).unwrap();
        assert_eq!(read(&p).unwrap(), Found::Nothing);
    }
}
