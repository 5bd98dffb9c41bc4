//! Opening a COW file: read its header, check that the bitmap and data area lie inside
//! the file, read the bitmap. Every error names the file.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::bitmap::{bitmap_bytes, SectorBitmap};
use super::{read_header, CowGeometry, CowHeader, HeaderError};

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

    /// Reads the bitmap: one bit per whole sector, `ceil(sectors / 8)` bytes from the
    /// bitmap offset (V1/V2 bitmaps are a byte short when the sector count is not a
    /// multiple of 8; the byte after them is read as uml_moo does).
    pub fn read_bitmap(&self) -> Result<SectorBitmap, CowFileError> {
        let sectors = self.header.sectors();
        let want = bitmap_bytes(sectors);
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
}
