//! UML copy-on-write (COW) disk files.
//!
//! A COW file is a header naming a backing file, a bitmap with one bit per sector, and a
//! data area holding the sectors whose bit is set. This module parses every header layout
//! UML has written (V1, V2, V3 and the broken 64-bit V3), emits them, computes where the
//! bitmap and the data live, checks a backing file the way the kernel does, and writes
//! a fresh V3 header byte for byte as linux.uml and the C `uml_mkcow` do.
//! Facts: `shared/reference/cow.md`.

use std::fmt;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use byteorder::{BigEndian, ByteOrder, NativeEndian};

mod backing;
mod bitmap;
mod file;
mod lock;

pub use backing::{BackingChoice, BackingError, NewCow, NewCowError};
pub use bitmap::{bitmap_bytes, SectorBitmap, SetRuns};
pub use file::{CowFile, CowFileError, BITMAP_WRITE_CHUNK};
pub use lock::{lock_whole_file, LockError};

/// The magic number at offset 0 of every COW header.
pub const COW_MAGIC: u32 = 0x4F4F_4F4D;
/// Length of a V1 header.
pub const V1_HEADER_LEN: usize = 280;
/// Length of a V2 header.
pub const V2_HEADER_LEN: usize = 4120;
/// Length of a V3 header.
pub const V3_HEADER_LEN: usize = 4128;
/// Length of a broken (unpacked 64-bit) V3 header.
pub const V3_BROKEN_HEADER_LEN: usize = 4136;
/// The most bytes any header layout needs.
pub const MAX_HEADER_LEN: usize = V3_BROKEN_HEADER_LEN;
/// Sector size linux.uml and uml_mkcow write (the kernel always does I/O in these).
pub const SECTOR_SIZE: u32 = 512;
/// Alignment linux.uml and uml_mkcow write (the host page size).
pub const DEFAULT_ALIGNMENT: u32 = 4096;

const V1_PATH_LEN: usize = 256;
const V2_PATH_LEN: usize = 4096;

/// Which header layout a COW file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CowVersion {
    /// Version 1: host byte order, 256-byte path.
    V1,
    /// Version 2: big-endian, 4096-byte path.
    V2,
    /// Version 3: big-endian, packed; what everything writes today.
    V3,
    /// Version 3 as written by unpacked 64-bit builds before December 2005.
    V3Broken,
}

impl CowVersion {
    /// The header's length in bytes.
    pub fn header_len(self) -> usize {
        match self {
            CowVersion::V1 => V1_HEADER_LEN,
            CowVersion::V2 => V2_HEADER_LEN,
            CowVersion::V3 => V3_HEADER_LEN,
            CowVersion::V3Broken => V3_BROKEN_HEADER_LEN,
        }
    }

    /// The version number stored in the header.
    pub fn number(self) -> u32 {
        match self {
            CowVersion::V1 => 1,
            CowVersion::V2 => 2,
            CowVersion::V3 | CowVersion::V3Broken => 3,
        }
    }

    /// A short name for messages: `V1`, `V2`, `V3`, `V3 (broken 64-bit layout)`.
    pub fn name(self) -> &'static str {
        match self {
            CowVersion::V1 => "V1",
            CowVersion::V2 => "V2",
            CowVersion::V3 => "V3",
            CowVersion::V3Broken => "V3 (broken 64-bit layout)",
        }
    }
}

/// Why a buffer is not a usable COW header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than 8 bytes: not even magic and version.
    Short,
    /// The magic number is wrong: this is a plain disk image, not a COW file.
    NotCow,
    /// A version this format never had.
    UnknownVersion(u32),
    /// The buffer ends before the header of this version does.
    Truncated(CowVersion),
    /// The backing-file path has no terminating NUL inside its field.
    UnterminatedPath,
    /// The backing-file path is empty.
    EmptyPath,
    /// Sector size 0 (the geometry would divide by zero).
    ZeroSectorSize,
    /// Alignment 0 (the geometry would divide by zero).
    ZeroAlignment,
    /// A cow_format other than 0 (the bitmap format, the only one there is).
    UnknownFormat(u32),
    /// A disk size no file can have (over 2^63 - 1 bytes).
    SizeTooLarge(u64),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Short => write!(f, "short header (not a COW file)"),
            HeaderError::NotCow => write!(f, "not a COW file (bad magic)"),
            HeaderError::UnknownVersion(v) => write!(f, "invalid COW version {v}"),
            HeaderError::Truncated(v) => write!(f, "truncated {} COW header", v.name()),
            HeaderError::UnterminatedPath => {
                write!(f, "invalid COW header: backing file name is not terminated")
            }
            HeaderError::EmptyPath => write!(f, "invalid COW header: no backing file name"),
            HeaderError::ZeroSectorSize => write!(f, "invalid COW header: sector size is 0"),
            HeaderError::ZeroAlignment => write!(f, "invalid COW header: alignment is 0"),
            HeaderError::UnknownFormat(v) => write!(f, "invalid COW header: unknown format {v}"),
            HeaderError::SizeTooLarge(n) => write!(f, "invalid COW header: size {n} too large"),
        }
    }
}

impl std::error::Error for HeaderError {}

/// A parsed COW header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CowHeader {
    pub version: CowVersion,
    /// The backing file's path as stored (bytes before the NUL).
    pub backing_file: Vec<u8>,
    /// The backing file's mtime in seconds, as the 32 bits the header holds.
    pub mtime: u32,
    /// The backing file's size in bytes.
    pub size: u64,
    pub sectorsize: u32,
    /// Data alignment. V1 and V2 have none stored: it is the sector size.
    pub alignment: u32,
    /// Always 0 (bitmap) in V3; 0 for V1 and V2.
    pub cow_format: u32,
}

/// Where the bitmap and the sector data live inside a COW file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CowGeometry {
    pub bitmap_offset: u64,
    /// The bitmap's length as the kernel sizes it (V1/V2 keep their historic rounding).
    pub bitmap_len: u64,
    pub data_offset: u64,
}

fn div_round_up(x: u64, y: u64) -> u64 {
    x.div_ceil(y)
}

fn round_up(x: u64, y: u64) -> u64 {
    div_round_up(x, y) * y
}

/// The bytes of a NUL-terminated string field, or an error if no NUL is inside it.
fn c_string(field: &[u8]) -> Result<Vec<u8>, HeaderError> {
    let end = field
        .iter()
        .position(|&b| b == 0)
        .ok_or(HeaderError::UnterminatedPath)?;
    if end == 0 {
        return Err(HeaderError::EmptyPath);
    }
    Ok(field[..end].to_vec())
}

impl CowHeader {
    /// A V3 header as linux.uml and uml_mkcow write it for a backing file.
    pub fn new_v3(backing_file: Vec<u8>, mtime: u32, size: u64) -> CowHeader {
        CowHeader {
            version: CowVersion::V3,
            backing_file,
            mtime,
            size,
            sectorsize: SECTOR_SIZE,
            alignment: DEFAULT_ALIGNMENT,
            cow_format: 0,
        }
    }

    /// Parses a header from the start of a COW file. `buf` may be longer than the header;
    /// [`MAX_HEADER_LEN`] bytes (or the whole file if shorter) are always enough.
    pub fn parse(buf: &[u8]) -> Result<CowHeader, HeaderError> {
        if buf.len() < 8 {
            return Err(HeaderError::Short);
        }
        let magic = NativeEndian::read_u32(&buf[0..4]);
        let version = if magic == COW_MAGIC {
            NativeEndian::read_u32(&buf[4..8])
        } else if magic == COW_MAGIC.swap_bytes() {
            BigEndian::read_u32(&buf[4..8])
        } else {
            return Err(HeaderError::NotCow);
        };
        let header = match version {
            1 => Self::parse_v1(buf)?,
            2 => Self::parse_v2(buf)?,
            3 => Self::parse_v3(buf)?,
            other => return Err(HeaderError::UnknownVersion(other)),
        };
        if header.sectorsize == 0 {
            return Err(HeaderError::ZeroSectorSize);
        }
        if header.alignment == 0 {
            return Err(HeaderError::ZeroAlignment);
        }
        if header.cow_format != 0 {
            return Err(HeaderError::UnknownFormat(header.cow_format));
        }
        if header.size > i64::MAX as u64 {
            return Err(HeaderError::SizeTooLarge(header.size));
        }
        Ok(header)
    }

    fn parse_v1(buf: &[u8]) -> Result<CowHeader, HeaderError> {
        if buf.len() < V1_HEADER_LEN {
            return Err(HeaderError::Truncated(CowVersion::V1));
        }
        // V1 fields are in host byte order whichever way the magic matched.
        let sectorsize = NativeEndian::read_u32(&buf[276..280]);
        Ok(CowHeader {
            version: CowVersion::V1,
            backing_file: c_string(&buf[8..8 + V1_PATH_LEN])?,
            mtime: NativeEndian::read_u32(&buf[264..268]),
            size: NativeEndian::read_u64(&buf[268..276]),
            sectorsize,
            alignment: sectorsize,
            cow_format: 0,
        })
    }

    fn parse_v2(buf: &[u8]) -> Result<CowHeader, HeaderError> {
        if buf.len() < V2_HEADER_LEN {
            return Err(HeaderError::Truncated(CowVersion::V2));
        }
        let sectorsize = BigEndian::read_u32(&buf[4116..4120]);
        Ok(CowHeader {
            version: CowVersion::V2,
            backing_file: c_string(&buf[8..8 + V2_PATH_LEN])?,
            mtime: BigEndian::read_u32(&buf[4104..4108]),
            size: BigEndian::read_u64(&buf[4108..4116]),
            sectorsize,
            alignment: sectorsize,
            cow_format: 0,
        })
    }

    fn parse_v3(buf: &[u8]) -> Result<CowHeader, HeaderError> {
        if buf.len() < V3_HEADER_LEN {
            return Err(HeaderError::Truncated(CowVersion::V3));
        }
        // A packed V3 header has the path's first bytes at offset 32; the unpacked
        // 64-bit layout has cow_format (always 0) there.
        if BigEndian::read_u32(&buf[32..36]) != 0 {
            return Ok(CowHeader {
                version: CowVersion::V3,
                backing_file: c_string(&buf[32..32 + V2_PATH_LEN])?,
                mtime: BigEndian::read_u32(&buf[8..12]),
                size: BigEndian::read_u64(&buf[12..20]),
                sectorsize: BigEndian::read_u32(&buf[20..24]),
                alignment: BigEndian::read_u32(&buf[24..28]),
                cow_format: BigEndian::read_u32(&buf[28..32]),
            });
        }
        if buf.len() < V3_BROKEN_HEADER_LEN - 4 {
            return Err(HeaderError::Truncated(CowVersion::V3Broken));
        }
        Ok(CowHeader {
            version: CowVersion::V3Broken,
            backing_file: c_string(&buf[36..36 + V2_PATH_LEN])?,
            mtime: BigEndian::read_u32(&buf[8..12]),
            size: BigEndian::read_u64(&buf[16..24]),
            sectorsize: BigEndian::read_u32(&buf[24..28]),
            alignment: BigEndian::read_u32(&buf[28..32]),
            cow_format: BigEndian::read_u32(&buf[32..36]),
        })
    }

    /// The longest backing path this header's layout can hold (without the NUL).
    pub fn max_path_len(version: CowVersion) -> usize {
        match version {
            CowVersion::V1 => V1_PATH_LEN - 1,
            _ => V2_PATH_LEN - 1,
        }
    }

    /// Writes the header in its own layout into `buf` (at least `header_len()` bytes),
    /// zero-filling the rest of the path field, and returns the header's length.
    /// Panics if the path does not fit its field or `buf` is too short: both are
    /// programming errors, checked by the caller through [`CowHeader::max_path_len`].
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.version.header_len();
        assert!(buf.len() >= len, "COW header buffer too short");
        assert!(self.backing_file.len() <= Self::max_path_len(self.version));
        let buf = &mut buf[..len];
        buf.fill(0);
        let path = &self.backing_file;
        match self.version {
            CowVersion::V1 => {
                NativeEndian::write_u32(&mut buf[0..4], COW_MAGIC);
                NativeEndian::write_u32(&mut buf[4..8], 1);
                buf[8..8 + path.len()].copy_from_slice(path);
                NativeEndian::write_u32(&mut buf[264..268], self.mtime);
                NativeEndian::write_u64(&mut buf[268..276], self.size);
                NativeEndian::write_u32(&mut buf[276..280], self.sectorsize);
            }
            CowVersion::V2 => {
                BigEndian::write_u32(&mut buf[0..4], COW_MAGIC);
                BigEndian::write_u32(&mut buf[4..8], 2);
                buf[8..8 + path.len()].copy_from_slice(path);
                BigEndian::write_u32(&mut buf[4104..4108], self.mtime);
                BigEndian::write_u64(&mut buf[4108..4116], self.size);
                BigEndian::write_u32(&mut buf[4116..4120], self.sectorsize);
            }
            CowVersion::V3 => {
                BigEndian::write_u32(&mut buf[0..4], COW_MAGIC);
                BigEndian::write_u32(&mut buf[4..8], 3);
                BigEndian::write_u32(&mut buf[8..12], self.mtime);
                BigEndian::write_u64(&mut buf[12..20], self.size);
                BigEndian::write_u32(&mut buf[20..24], self.sectorsize);
                BigEndian::write_u32(&mut buf[24..28], self.alignment);
                BigEndian::write_u32(&mut buf[28..32], self.cow_format);
                buf[32..32 + path.len()].copy_from_slice(path);
            }
            CowVersion::V3Broken => {
                BigEndian::write_u32(&mut buf[0..4], COW_MAGIC);
                BigEndian::write_u32(&mut buf[4..8], 3);
                BigEndian::write_u32(&mut buf[8..12], self.mtime);
                BigEndian::write_u64(&mut buf[16..24], self.size);
                BigEndian::write_u32(&mut buf[24..28], self.sectorsize);
                BigEndian::write_u32(&mut buf[28..32], self.alignment);
                BigEndian::write_u32(&mut buf[32..36], self.cow_format);
                buf[36..36 + path.len()].copy_from_slice(path);
            }
        }
        len
    }

    /// The header as bytes in its own layout.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = vec![0; self.version.header_len()];
        self.emit(&mut buf);
        buf
    }

    /// The backing file's path.
    pub fn backing_path(&self) -> PathBuf {
        PathBuf::from(std::ffi::OsStr::from_bytes(&self.backing_file))
    }

    /// Where the bitmap and the data live, by the kernel's formulas for this version.
    pub fn geometry(&self) -> CowGeometry {
        let n = self.size;
        let s = u64::from(self.sectorsize);
        let a = u64::from(self.alignment);
        match self.version {
            CowVersion::V1 | CowVersion::V2 => {
                let offset = self.version.header_len() as u64;
                // The historic rounding: one byte short when sectors % 8 != 0.
                let bitmap_len = (n + s - 1) / (8 * s);
                CowGeometry {
                    bitmap_offset: offset,
                    bitmap_len,
                    data_offset: round_up(offset + bitmap_len, s),
                }
            }
            CowVersion::V3 | CowVersion::V3Broken => {
                let bitmap_offset = round_up(self.version.header_len() as u64, a);
                let bitmap_len = div_round_up(div_round_up(n, s), 8);
                CowGeometry {
                    bitmap_offset,
                    bitmap_len,
                    data_offset: round_up(bitmap_offset + bitmap_len, a),
                }
            }
        }
    }

    /// Whole sectors of the virtual disk (a trailing partial sector is not counted,
    /// as uml_moo does).
    pub fn sectors(&self) -> u64 {
        self.size / u64::from(self.sectorsize)
    }

    /// The smallest length a COW file with this header must have: the data area must
    /// hold every whole sector.
    pub fn min_file_len(&self) -> u64 {
        self.geometry().data_offset + self.sectors() * u64::from(self.sectorsize)
    }

    /// Checks a backing file's size and mtime against the header, as the kernel does:
    /// the size must be equal, and the mtime equal to the header's 32-bit value read as
    /// an unsigned number (good until 2106, past 2038).
    pub fn check_backing(&self, backing: &BackingInfo) -> Result<(), BackingMismatch> {
        if backing.size != self.size {
            return Err(BackingMismatch::Size {
                header: self.size,
                actual: backing.size,
            });
        }
        if backing.mtime != i64::from(self.mtime) {
            return Err(BackingMismatch::Mtime {
                header: self.mtime,
                actual: backing.mtime,
            });
        }
        Ok(())
    }
}

/// What a COW header records about its backing file, read from the file itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackingInfo {
    /// Bytes; for a block device its capacity.
    pub size: u64,
    /// Seconds since the epoch, full width.
    pub mtime: i64,
}

impl BackingInfo {
    /// Reads size and mtime of an open backing file (block devices by their capacity).
    pub fn of_file(file: &File) -> io::Result<BackingInfo> {
        let meta = file.metadata()?;
        let size = if meta.file_type().is_block_device() {
            block_device_size(file)?
        } else {
            meta.len()
        };
        Ok(BackingInfo::from_metadata(&meta, size))
    }

    fn from_metadata(meta: &Metadata, size: u64) -> BackingInfo {
        BackingInfo {
            size,
            mtime: meta.mtime(),
        }
    }

    /// The mtime as the header stores it: truncated to 32 bits, as the kernel does.
    pub fn header_mtime(&self) -> u32 {
        self.mtime as u32
    }
}

fn block_device_size(file: &File) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    // BLKGETSIZE64 is `_IOR(0x12, 114, size_t)` on Linux.
    nix::ioctl_read!(blkgetsize64, 0x12, 114, u64);
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points at `size`;
    // the fd is open for the duration of the call.
    unsafe { blkgetsize64(file.as_raw_fd(), &mut size) }?;
    Ok(size)
}

/// A backing file that does not match its COW header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackingMismatch {
    Size { header: u64, actual: u64 },
    Mtime { header: u32, actual: i64 },
}

impl fmt::Display for BackingMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackingMismatch::Size { header, actual } => write!(
                f,
                "Size mismatch ({header} vs {actual}) of COW header vs backing file"
            ),
            BackingMismatch::Mtime { header, actual } => write!(
                f,
                "mtime mismatch ({header} vs {actual}) of COW header vs backing file"
            ),
        }
    }
}

impl std::error::Error for BackingMismatch {}

/// The backing path the kernel stores: the directory part resolved to a symlink-free
/// absolute path (as `chdir` + `getcwd` give it), the last component kept as written.
pub fn absolute_backing_path(path: &Path) -> io::Result<PathBuf> {
    crate::fsutil::absolute_path(path, &std::env::current_dir()?)
}

/// Reads and parses the header at the start of an open file.
pub fn read_header(file: &File) -> io::Result<Result<CowHeader, HeaderError>> {
    let mut buf = vec![0u8; MAX_HEADER_LEN];
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read_at(&mut buf[filled..], filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(CowHeader::parse(&buf[..filled]))
}

/// Writes a fresh COW file into `file` (which must be empty): the header at offset 0
/// and the file extended to its full length, sparse, so the bitmap reads as zeros.
pub fn write_new_cow(file: &File, header: &CowHeader) -> io::Result<()> {
    file.write_all_at(&header.to_bytes(), 0)?;
    file.set_len(header.geometry().data_offset + header.size)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(version: CowVersion) -> CowHeader {
        let sectorsize = 512;
        CowHeader {
            version,
            backing_file: b"/srv/uml/root_fs".to_vec(),
            mtime: 0xfedc_ba98,
            size: 33_554_432 + 4608,
            sectorsize,
            alignment: if matches!(version, CowVersion::V1 | CowVersion::V2) {
                sectorsize
            } else {
                4096
            },
            cow_format: 0,
        }
    }

    #[test]
    fn every_version_round_trips() {
        for v in [
            CowVersion::V1,
            CowVersion::V2,
            CowVersion::V3,
            CowVersion::V3Broken,
        ] {
            let h = sample(v);
            let bytes = h.to_bytes();
            assert_eq!(bytes.len(), v.header_len());
            assert_eq!(CowHeader::parse(&bytes).unwrap(), h, "{v:?}");
            let mut again = vec![0; v.header_len()];
            CowHeader::parse(&bytes).unwrap().emit(&mut again);
            assert_eq!(again, bytes, "{v:?}");
        }
    }

    /// The header linux.uml 6.1 wrote when it created a COW over /tmp/g/img
    /// (32 MiB, mtime 1795752215), and the one the C uml_mkcow wrote over
    /// /tmp/t1/back.img (32 MiB, mtime 1795752208): captured, committed as fixtures.
    #[test]
    fn headers_written_by_the_real_peers() {
        let kernel = include_bytes!("../tests/fixtures/linux-uml-6.1.cow-header");
        let h = CowHeader::parse(kernel).unwrap();
        assert_eq!(
            h,
            CowHeader::new_v3(b"/tmp/g/img".to_vec(), 1_795_752_215, 32 << 20)
        );
        let emitted = h.to_bytes();
        let path_end = 32 + b"/tmp/g/img".len();
        assert_eq!(&emitted[..path_end], &kernel[..path_end]);

        let c_tool = include_bytes!("../tests/fixtures/c-uml_mkcow.cow-header");
        let h = CowHeader::parse(c_tool).unwrap();
        assert_eq!(
            h,
            CowHeader::new_v3(b"/tmp/t1/back.img".to_vec(), 1_795_752_208, 32 << 20)
        );
        // The C tool zero-fills the tail, so the whole header is byte-identical.
        assert_eq!(&h.to_bytes()[..], &c_tool[..V3_HEADER_LEN]);
    }

    /// A V3 header laid out by hand from the reference's offset table.
    #[test]
    fn v3_fields_at_documented_offsets() {
        let mut b = vec![0u8; V3_HEADER_LEN];
        b[0..4].copy_from_slice(b"OOOM");
        b[4..8].copy_from_slice(&[0, 0, 0, 3]);
        b[8..12].copy_from_slice(&[0x69, 0x25, 0xa7, 0xf1]);
        b[12..20].copy_from_slice(&[0, 0, 0, 0, 0x02, 0, 0, 0]);
        b[20..24].copy_from_slice(&[0, 0, 2, 0]);
        b[24..28].copy_from_slice(&[0, 0, 0x10, 0]);
        b[32..48].copy_from_slice(b"/tmp/t/root.img\0");
        // Garbage after the NUL, as the kernel leaves it, must not matter.
        b[48..60].copy_from_slice(b"\x7fELF garbage");
        let h = CowHeader::parse(&b).unwrap();
        assert_eq!(h.version, CowVersion::V3);
        assert_eq!(h.backing_file, b"/tmp/t/root.img");
        assert_eq!(h.mtime, 0x6925_a7f1);
        assert_eq!(h.size, 32 << 20);
        assert_eq!((h.sectorsize, h.alignment), (512, 4096));
        let g = h.geometry();
        assert_eq!(
            (g.bitmap_offset, g.bitmap_len, g.data_offset),
            (8192, 8192, 16384)
        );
        assert_eq!(g.data_offset + h.size, 33_570_816);
    }

    #[test]
    fn v1_is_host_order_and_v2_big_endian() {
        let v1 = sample(CowVersion::V1).to_bytes();
        assert_eq!(&v1[0..4], &COW_MAGIC.to_ne_bytes());
        assert_eq!(&v1[264..268], &0xfedc_ba98u32.to_ne_bytes());
        let v2 = sample(CowVersion::V2).to_bytes();
        assert_eq!(&v2[0..4], b"OOOM");
        assert_eq!(&v2[4104..4108], &[0xfe, 0xdc, 0xba, 0x98]);
        let broken = sample(CowVersion::V3Broken).to_bytes();
        assert_eq!(&broken[16..24], &(33_554_432u64 + 4608).to_be_bytes());
        assert_eq!(&broken[36..40], b"/srv");
    }

    #[test]
    fn v1_v2_keep_the_short_bitmap_rounding() {
        let mut h = sample(CowVersion::V1);
        h.size = 9 * 512;
        let g = h.geometry();
        assert_eq!(
            (g.bitmap_offset, g.bitmap_len, g.data_offset),
            (280, 1, 512)
        );
        h.version = CowVersion::V2;
        let g = h.geometry();
        assert_eq!(
            (g.bitmap_offset, g.bitmap_len, g.data_offset),
            (4120, 1, 4608)
        );
        h.version = CowVersion::V3Broken;
        h.alignment = 4096;
        let g = h.geometry();
        assert_eq!(
            (g.bitmap_offset, g.bitmap_len, g.data_offset),
            (8192, 2, 12288)
        );
    }

    #[test]
    fn bad_headers_are_refused() {
        assert_eq!(CowHeader::parse(b"OOOM"), Err(HeaderError::Short));
        assert_eq!(CowHeader::parse(&[0x7f; 5000]), Err(HeaderError::NotCow));
        let mut v3 = sample(CowVersion::V3).to_bytes();
        assert_eq!(
            CowHeader::parse(&v3[..4000]),
            Err(HeaderError::Truncated(CowVersion::V3))
        );
        v3[7] = 9;
        assert_eq!(CowHeader::parse(&v3), Err(HeaderError::UnknownVersion(9)));
        v3[7] = 3;
        v3[24..28].fill(0);
        assert_eq!(CowHeader::parse(&v3), Err(HeaderError::ZeroAlignment));
        v3[24..28].copy_from_slice(&[0, 0, 0x10, 0]);
        v3[20..24].fill(0);
        assert_eq!(CowHeader::parse(&v3), Err(HeaderError::ZeroSectorSize));
        let mut v2 = sample(CowVersion::V2).to_bytes();
        v2[8..4104].fill(b'a');
        assert_eq!(CowHeader::parse(&v2), Err(HeaderError::UnterminatedPath));
    }

    #[test]
    fn backing_checks_use_the_unsigned_32_bit_mtime() {
        let mut h = sample(CowVersion::V3);
        // 2040-01-01: past 2038, still representable in the header's 32 bits.
        h.mtime = 2_208_988_800;
        let ok = BackingInfo {
            size: h.size,
            mtime: 2_208_988_800,
        };
        assert_eq!(h.check_backing(&ok), Ok(()));
        assert_eq!(ok.header_mtime(), h.mtime);
        let later = BackingInfo {
            mtime: ok.mtime + 1,
            ..ok
        };
        assert_eq!(
            h.check_backing(&later).unwrap_err().to_string(),
            "mtime mismatch (2208988800 vs 2208988801) of COW header vs backing file"
        );
        let bigger = BackingInfo {
            size: h.size + 512,
            ..ok
        };
        assert!(matches!(
            h.check_backing(&bigger),
            Err(BackingMismatch::Size { .. })
        ));
    }
}
