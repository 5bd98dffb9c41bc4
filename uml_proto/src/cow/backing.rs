//! A COW file's backing file: which one to use (the header's, or one the user names that
//! is the same file or a moved copy with the recorded size and mtime), switching the
//! header to a moved one in the file's own layout, opening and checking it, and the
//! header a new COW file over a backing file gets. Used by the kernel's ubd driver,
//! uml_mkcow and uml_moo alike.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::file::CowFile;
use super::{absolute_backing_path, BackingInfo, BackingMismatch, CowHeader, CowVersion};

/// Which backing file a COW file should use, given the one the user named (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackingChoice {
    /// The header's (none named, or the named one is the same file).
    Header(PathBuf),
    /// The named file differs from the header's but has the recorded size and mtime:
    /// the backing file moved, and the header may be switched to it.
    Moved { asked: PathBuf, header: PathBuf },
    /// The named file differs and does not match the header.
    Mismatch { asked: PathBuf, header: PathBuf },
}

/// Why a backing file cannot be used.
#[derive(Debug)]
pub enum BackingError {
    /// Opening, or reading its size and mtime, failed.
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// It is not the file the header recorded.
    Mismatch {
        path: PathBuf,
        source: BackingMismatch,
    },
}

impl fmt::Display for BackingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackingError::Io { path, op, source } => {
                write!(f, "{}: {op}: {source}", path.display())
            }
            BackingError::Mismatch { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for BackingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BackingError::Io { source, .. } => Some(source),
            BackingError::Mismatch { source, .. } => Some(source),
        }
    }
}

/// Same string, or the same inode.
fn same_file(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The named file has the size and mtime the header records (checked by stat, so no
/// descriptor is opened and closed, which would drop this process's locks on it).
fn matches_header(path: &Path, header: &CowHeader) -> bool {
    match std::fs::metadata(path) {
        Ok(m) => header
            .check_backing(&BackingInfo {
                size: m.len(),
                mtime: m.mtime(),
            })
            .is_ok(),
        Err(_) => false,
    }
}

/// The backing path as a header stores it, checked against the layout's field.
fn header_path_bytes(path: &Path, version: CowVersion) -> Result<(PathBuf, Vec<u8>), NewCowError> {
    let abs = absolute_backing_path(path).map_err(|source| NewCowError::Io {
        path: path.to_owned(),
        op: "make absolute",
        source,
    })?;
    let bytes = abs.as_os_str().as_encoded_bytes().to_vec();
    if bytes.len() > CowHeader::max_path_len(version) {
        return Err(NewCowError::PathTooLong(path.to_owned()));
    }
    Ok((abs, bytes))
}

impl CowFile {
    /// Which backing file to use when the user named `asked` (None: the header's).
    pub fn find_backing(&self, asked: Option<&Path>) -> BackingChoice {
        let header = self.header.backing_path();
        match asked {
            None => BackingChoice::Header(header),
            Some(a) if same_file(a, &header) => BackingChoice::Header(header),
            Some(a) if matches_header(a, &self.header) => BackingChoice::Moved {
                asked: a.to_owned(),
                header,
            },
            Some(a) => BackingChoice::Mismatch {
                asked: a.to_owned(),
                header,
            },
        }
    }

    /// Points the header at `new` (made absolute as the kernel stores it), in the
    /// file's own layout so a V1/V2 file keeps its bitmap and data where they are;
    /// written to the file and made durable when `persist`, else only in memory.
    pub fn switch_backing(&mut self, new: &Path, persist: bool) -> Result<(), NewCowError> {
        let (_, bytes) = header_path_bytes(new, self.header.version)?;
        self.header.backing_file = bytes;
        if !persist {
            return Ok(());
        }
        self.file
            .write_all_at(&self.header.to_bytes(), 0)
            .and_then(|_| self.file.sync_data())
            .map_err(|source| NewCowError::Io {
                path: self.path.clone(),
                op: "rewrite header",
                source,
            })
    }

    /// Opens `path` read-only as this COW file's backing file and checks its size and
    /// mtime against the header.
    pub fn open_backing(&self, path: &Path) -> Result<(File, BackingInfo), BackingError> {
        let io_err = |op| {
            move |source| BackingError::Io {
                path: path.to_owned(),
                op,
                source,
            }
        };
        let file = File::open(path).map_err(io_err("open"))?;
        let info = BackingInfo::of_file(&file).map_err(io_err("stat"))?;
        self.header
            .check_backing(&info)
            .map_err(|source| BackingError::Mismatch {
                path: path.to_owned(),
                source,
            })?;
        Ok((file, info))
    }
}

/// Why no header for a new COW file could be made, or a header not switched.
#[derive(Debug)]
pub enum NewCowError {
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// The absolute backing path does not fit the header's field.
    PathTooLong(PathBuf),
}

impl fmt::Display for NewCowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NewCowError::Io { path, op, source } => write!(f, "{}: {op}: {source}", path.display()),
            NewCowError::PathTooLong(p) => write!(
                f,
                "{}: backing file path longer than the {} bytes a COW header holds",
                p.display(),
                CowHeader::max_path_len(CowVersion::V3)
            ),
        }
    }
}

impl std::error::Error for NewCowError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NewCowError::Io { source, .. } => Some(source),
            NewCowError::PathTooLong(_) => None,
        }
    }
}

/// What a new COW file over a backing file starts from.
#[derive(Debug)]
pub struct NewCow {
    /// The V3 header linux.uml and uml_mkcow write.
    pub header: CowHeader,
    /// The backing file, open read-only.
    pub backing: File,
    /// Its absolute path, as the header records it.
    pub backing_path: PathBuf,
}

impl NewCow {
    /// Opens `backing` and makes the header a new COW file over it gets.
    pub fn over(backing: &Path) -> Result<NewCow, NewCowError> {
        let (abs, bytes) = header_path_bytes(backing, CowVersion::V3)?;
        let io_err = |op| {
            move |source| NewCowError::Io {
                path: backing.to_owned(),
                op,
                source,
            }
        };
        let file = File::open(&abs).map_err(io_err("open"))?;
        let info = BackingInfo::of_file(&file).map_err(io_err("stat"))?;
        Ok(NewCow {
            header: CowHeader::new_v3(bytes, info.header_mtime(), info.size),
            backing: file,
            backing_path: abs,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cow::{read_header, write_new_cow, SectorBitmap};
    use std::fs::OpenOptions;

    fn cow_over(dir: &Path, backing: &Path, version: CowVersion) -> PathBuf {
        let mut header = NewCow::over(backing).unwrap().header;
        header.version = version;
        if version != CowVersion::V3 {
            header.alignment = header.sectorsize;
        }
        let path = dir.join("c.cow");
        let f = File::create(&path).unwrap();
        write_new_cow(&f, &header).unwrap();
        path
    }

    fn open_rw(path: &Path) -> CowFile {
        CowFile::open_with(path, OpenOptions::new().read(true).write(true)).unwrap()
    }

    #[test]
    fn find_backing_tells_same_moved_and_mismatched_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let back = d.join("back.img");
        std::fs::write(&back, vec![7u8; 8192]).unwrap();
        let cow = open_rw(&cow_over(d, &back, CowVersion::V3));
        let header = cow.header.backing_path();
        assert_eq!(
            cow.find_backing(None),
            BackingChoice::Header(header.clone())
        );
        std::fs::hard_link(&back, d.join("link.img")).unwrap();
        assert_eq!(
            cow.find_backing(Some(&d.join("link.img"))),
            BackingChoice::Header(header.clone())
        );
        // A copy with the recorded size and mtime is the backing file, moved.
        let moved = d.join("moved.img");
        std::fs::copy(&back, &moved).unwrap();
        let mtime = std::fs::metadata(&back).unwrap().modified().unwrap();
        File::options()
            .write(true)
            .open(&moved)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_eq!(
            cow.find_backing(Some(&moved)),
            BackingChoice::Moved {
                asked: moved.clone(),
                header: header.clone()
            }
        );
        let other = d.join("other.img");
        std::fs::write(&other, vec![0u8; 4096]).unwrap();
        assert_eq!(
            cow.find_backing(Some(&other)),
            BackingChoice::Mismatch {
                asked: other.clone(),
                header
            }
        );
        assert!(matches!(
            cow.open_backing(&other),
            Err(BackingError::Mismatch { .. })
        ));
        assert_eq!(cow.open_backing(&moved).unwrap().1.size, 8192);
    }

    #[test]
    fn switch_backing_keeps_the_layout_and_persists_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let back = d.join("back.img");
        std::fs::write(&back, vec![1u8; 4096]).unwrap();
        let path = cow_over(d, &back, CowVersion::V2);
        let mut cow = open_rw(&path);
        let geometry = cow.geometry;
        let new = d.join("new.img");
        cow.switch_backing(&new, false).unwrap();
        assert_eq!(cow.header.backing_path(), new);
        let on_disk = read_header(&File::open(&path).unwrap()).unwrap().unwrap();
        assert_eq!(on_disk.backing_path(), back);
        cow.switch_backing(&new, true).unwrap();
        let on_disk = read_header(&File::open(&path).unwrap()).unwrap().unwrap();
        assert_eq!(
            (on_disk.version, on_disk.backing_path()),
            (CowVersion::V2, new)
        );
        assert_eq!(on_disk.geometry(), geometry);
        let long = d.join("x".repeat(5000));
        assert!(matches!(
            cow.switch_backing(&long, true),
            Err(NewCowError::PathTooLong(_))
        ));
    }

    #[test]
    fn bitmap_pieces_are_written_in_aligned_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let back = d.join("back.img");
        std::fs::write(&back, vec![0u8; 512 * 1024]).unwrap();
        let path = cow_over(d, &back, CowVersion::V3);
        let cow = open_rw(&path);
        let mut bm = cow.read_bitmap().unwrap();
        assert_eq!(bm.count_set(), 0);
        for s in [0, 200, 1023] {
            bm.set(s);
        }
        // Only the chunk holding sector 200's byte (byte 25: bytes 16..32) is written.
        cow.write_bitmap_range(&bm, 200, 201).unwrap();
        let back_in = cow.read_bitmap().unwrap();
        assert!(back_in.is_set(200) && !back_in.is_set(0) && !back_in.is_set(1023));
        cow.write_bitmap_range(&bm, 0, 1024).unwrap();
        assert_eq!(cow.read_bitmap().unwrap(), bm);
        // A short read limit leaves the rest clear.
        let partial: SectorBitmap = cow.read_bitmap_of(1024, 16).unwrap();
        assert!(partial.is_set(0) && !partial.is_set(200));
    }
}
