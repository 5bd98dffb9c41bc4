//! The block-device trait the ext2 code reads and writes through: byte offsets, whole
//! buffers. Implemented for files and for byte vectors (tests and fuzzing); the kernel
//! implements it for its cached ubd devices.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// A device addressed by byte offset.
pub trait BlockDevice {
    /// Fills `buf` from `offset`; reading past the end is an error.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// The device's size in bytes.
    fn size(&mut self) -> io::Result<u64>;
    /// Makes written data durable (a no-op for memory).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl BlockDevice for File {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }
    fn size(&mut self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}

fn range(len: usize, offset: u64, n: usize) -> io::Result<std::ops::Range<usize>> {
    let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
    let end = start.checked_add(n).ok_or(io::ErrorKind::UnexpectedEof)?;
    if end > len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(start..end)
}

impl BlockDevice for Vec<u8> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let r = range(self.len(), offset, buf.len())?;
        buf.copy_from_slice(&self[r]);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let r = range(self.len(), offset, buf.len())?;
        self[r].copy_from_slice(buf);
        Ok(())
    }
    fn size(&mut self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}
