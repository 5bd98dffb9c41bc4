//! Positioned I/O in large extents: full reads, zero-skipping writes, and a cursor over
//! the data extents of a sparse file (SEEK_DATA / SEEK_HOLE).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

/// Reads exactly `buf.len()` bytes at `offset`; bytes past the end of the file read as 0.
pub fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                buf[done..].fill(0);
                break;
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether every byte is zero.
pub fn is_zero(bytes: &[u8]) -> bool {
    let (words, tail) = bytes.as_chunks::<16>();
    words.iter().all(|w| u128::from_ne_bytes(*w) == 0) && tail.iter().all(|&b| b == 0)
}

/// Calls `f(first, count)` for every maximal run of sectors in `buf` (of `sector` bytes
/// each) whose zero-ness equals `zero`.
pub fn for_each_run(
    buf: &[u8],
    sector: usize,
    zero: bool,
    mut f: impl FnMut(usize, usize) -> io::Result<()>,
) -> io::Result<()> {
    let sectors = buf.len() / sector;
    let mut i = 0;
    while i < sectors {
        if is_zero(&buf[i * sector..(i + 1) * sector]) != zero {
            i += 1;
            continue;
        }
        let first = i;
        while i < sectors && is_zero(&buf[i * sector..(i + 1) * sector]) == zero {
            i += 1;
        }
        f(first, i - first)?;
    }
    Ok(())
}

/// Writes the non-zero sectors of `buf` at `offset`, one write per run, leaving holes
/// for the zero sectors (the output must read as zeros there already).
pub fn write_nonzero_sectors(out: &File, buf: &[u8], offset: u64, sector: usize) -> io::Result<()> {
    for_each_run(buf, sector, false, |first, count| {
        out.write_all_at(
            &buf[first * sector..(first + count) * sector],
            offset + (first * sector) as u64,
        )
    })
}

/// Finds which byte ranges of a file hold data, moving forward through the file.
pub struct DataExtents<'a> {
    file: &'a File,
    /// Everything before this offset, from the last query on, is a hole.
    hole_until: u64,
    /// Everything from `hole_until` to here is data.
    data_until: u64,
}

impl<'a> DataExtents<'a> {
    pub fn new(file: &'a File) -> Self {
        DataExtents {
            file,
            hole_until: 0,
            data_until: 0,
        }
    }

    fn seek(&self, offset: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
        // SAFETY: lseek on an open fd has no memory effects.
        let r = unsafe { libc::lseek(self.file.as_raw_fd(), offset as libc::off_t, whence) };
        if r >= 0 {
            return Ok(Some(r as u64));
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENXIO) {
            return Ok(None);
        }
        Err(err)
    }

    /// Whether `offset..offset + len` is entirely a hole. Queries must move forward.
    /// A file system without SEEK_DATA is taken to be all data.
    pub fn is_hole(&mut self, offset: u64, len: u64) -> bool {
        let end = offset + len;
        if offset >= self.hole_until && offset < self.data_until {
            return false;
        }
        if end <= self.hole_until {
            return true;
        }
        match self.seek(offset, libc::SEEK_DATA) {
            Ok(None) => {
                self.hole_until = u64::MAX;
                true
            }
            Ok(Some(data)) => {
                self.hole_until = data;
                self.data_until = match self.seek(data, libc::SEEK_HOLE) {
                    Ok(Some(hole)) => hole,
                    _ => u64::MAX,
                };
                data >= end
            }
            Err(_) => {
                self.hole_until = 0;
                self.data_until = u64::MAX;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_runs_are_found_per_sector() {
        let mut buf = vec![0u8; 8 * 512];
        buf[512 + 100] = 1;
        buf[2 * 512 + 511] = 7;
        buf[6 * 512] = 9;
        let mut runs = Vec::new();
        for_each_run(&buf, 512, false, |a, n| {
            runs.push((a, n));
            Ok(())
        })
        .unwrap();
        assert_eq!(runs, vec![(1, 2), (6, 1)]);
        let mut zeros = Vec::new();
        for_each_run(&buf, 512, true, |a, n| {
            zeros.push((a, n));
            Ok(())
        })
        .unwrap();
        assert_eq!(zeros, vec![(0, 1), (3, 3), (7, 1)]);
        assert!(is_zero(&[0; 37]));
        assert!(!is_zero(&[
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1
        ]));
    }

    #[test]
    fn holes_and_data_are_told_apart() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(&[1; 4096], 32 << 20).unwrap();
        let mut ext = DataExtents::new(&f);
        assert!(ext.is_hole(0, 1 << 20));
        assert!(ext.is_hole(1 << 20, 30 << 20));
        assert!(!ext.is_hole(31 << 20, 2 << 20));
        assert!(!ext.is_hole(32 << 20, 4096));
        assert!(ext.is_hole(40 << 20, 1 << 20));
    }
}
