//! Opening a COW file: read its header, check that the bitmap and data area lie inside
//! the file, lock it as linux.uml does, read the bitmap and write pieces of it back.
//! Every error names the file. (Finding, checking and switching the backing file, and
//! making a new COW file, are in `backing.rs`.)

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::bitmap::{bitmap_bytes, SectorBitmap};
use super::lock::{lock_whole_file, LockError};
use super::{read_header, CowGeometry, CowHeader, HeaderError};

/// The kernel rewrites the on-disk bitmap in pieces of this many bytes, aligned.
pub const BITMAP_WRITE_CHUNK: u64 = 16;

/// An open, checked COW file.
#[derive(Debug)]
pub struct CowFile {
    pub path: PathBuf,
    pub file: File,
    pub header: CowHeader,
    pub geometry: CowGeometry,
    /// The file's length when it was opened.
    pub len: u64,
}

/// Why a COW file cannot be used.
#[derive(Debug)]
pub enum CowFileError {
    /// An I/O call failed; `op` says which.
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// The header is not a usable COW header.
    Header { path: PathBuf, source: HeaderError },
    /// The file ends before the bitmap or the data area does.
    Truncated {
        path: PathBuf,
        area: &'static str,
        needed: u64,
        len: u64,
    },
}

impl fmt::Display for CowFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CowFileError::Io { path, op, source } => {
                write!(f, "{}: {op}: {source}", path.display())
            }
            CowFileError::Header { path, source } => write!(f, "{}: {source}", path.display()),
            CowFileError::Truncated {
                path,
                area,
                needed,
                len,
            } => write!(
                f,
                "{}: {area} past the end of the file (needs {needed} bytes, file has {len})",
                path.display()
            ),
        }
    }
}

impl std::error::Error for CowFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CowFileError::Io { source, .. } => Some(source),
            CowFileError::Header { source, .. } => Some(source),
            CowFileError::Truncated { .. } => None,
        }
    }
}

impl CowFile {
    /// Opens `path` read-only and checks its header and extent.
    pub fn open(path: &Path) -> Result<CowFile, CowFileError> {
        Self::open_with(path, OpenOptions::new().read(true))
    }

    /// Opens `path` with `options` and checks its header and extent.
    pub fn open_with(path: &Path, options: &OpenOptions) -> Result<CowFile, CowFileError> {
        let io_err = |op| {
            move |source| CowFileError::Io {
                path: path.to_owned(),
                op,
                source,
            }
        };
        let file = options.open(path).map_err(io_err("open"))?;
        let meta = file.metadata().map_err(io_err("stat"))?;
        if meta.is_dir() {
            return Err(io_err("open")(io::Error::from_raw_os_error(libc::EISDIR)));
        }
        let header = read_header(&file)
            .map_err(io_err("read header"))?
            .map_err(|source| CowFileError::Header {
                path: path.to_owned(),
                source,
            })?;
        let geometry = header.geometry();
        let len = meta.len();
        let truncated = |area, needed| CowFileError::Truncated {
            path: path.to_owned(),
            area,
            needed,
            len,
        };
        let bitmap_end = geometry.bitmap_offset + bitmap_bytes(header.sectors());
        if len < bitmap_end.min(geometry.data_offset) {
            return Err(truncated("bitmap", bitmap_end));
        }
        if len < header.min_file_len() {
            return Err(truncated("data area", header.min_file_len()));
        }
        Ok(CowFile {
            path: path.to_owned(),
            file,
            header,
            geometry,
            len,
        })
    }

    /// A file already open (and locked, which must come before anything else opens
    /// it: closing any descriptor of a file drops the process's locks on it) whose
    /// header was read with [`read_header`]. Its extent is not checked: the kernel
    /// reads a short file's missing sectors as zeros.
    pub fn from_open(path: &Path, file: File, header: CowHeader) -> Result<CowFile, CowFileError> {
        let len = file
            .metadata()
            .map_err(|source| CowFileError::Io {
                path: path.to_owned(),
                op: "stat",
                source,
            })?
            .len();
        Ok(CowFile {
            path: path.to_owned(),
            file,
            geometry: header.geometry(),
            header,
            len,
        })
    }

    /// Takes linux.uml's whole-file lock on the COW file: a write lock if `write`.
    pub fn lock(&self, write: bool) -> Result<(), LockError> {
        lock_whole_file(&self.file, write)
    }

    /// Reads the bitmap: one bit per whole sector, `ceil(sectors / 8)` bytes from the
    /// bitmap offset (V1/V2 bitmaps are a byte short when the sector count is not a
    /// multiple of 8; the byte after them is read as uml_moo does).
    pub fn read_bitmap(&self) -> Result<SectorBitmap, CowFileError> {
        let sectors = self.header.sectors();
        self.read_bitmap_of(sectors, bitmap_bytes(sectors))
    }

    /// Reads a bitmap of `sectors` bits, at most `max_bytes` of it from the file (the
    /// kernel counts a trailing partial sector and reads only `geometry.bitmap_len`);
    /// what the file does not hold reads as clear.
    pub fn read_bitmap_of(
        &self,
        sectors: u64,
        max_bytes: u64,
    ) -> Result<SectorBitmap, CowFileError> {
        let want = bitmap_bytes(sectors).min(max_bytes);
        let available = self.len.saturating_sub(self.geometry.bitmap_offset);
        let mut bytes = vec![0u8; want.min(available) as usize];
        self.file
            .read_exact_at(&mut bytes, self.geometry.bitmap_offset)
            .map_err(|source| CowFileError::Io {
                path: self.path.clone(),
                op: "read bitmap",
                source,
            })?;
        Ok(SectorBitmap::from_bytes(bytes, sectors))
    }

    /// Writes the bitmap bytes that cover sectors `start..end` back to the file, in the
    /// kernel's aligned pieces of [`BITMAP_WRITE_CHUNK`] bytes (never past the bitmap).
    pub fn write_bitmap_range(
        &self,
        bitmap: &SectorBitmap,
        start: u64,
        end: u64,
    ) -> Result<(), CowFileError> {
        if end <= start {
            return Ok(());
        }
        let bytes = bitmap.as_bytes();
        let from = (start / 8) / BITMAP_WRITE_CHUNK * BITMAP_WRITE_CHUNK;
        let to = ((end - 1) / 8 / BITMAP_WRITE_CHUNK + 1) * BITMAP_WRITE_CHUNK;
        let to = to.min(self.geometry.bitmap_len).min(bytes.len() as u64);
        if from >= to {
            return Ok(());
        }
        self.file
            .write_all_at(
                &bytes[from as usize..to as usize],
                self.geometry.bitmap_offset + from,
            )
            .map_err(|source| CowFileError::Io {
                path: self.path.clone(),
                op: "write bitmap",
                source,
            })
    }
}
