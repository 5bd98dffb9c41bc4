//! Telling data from nothing: zero sectors, and the data extents of a sparse file
//! (SEEK_DATA / SEEK_HOLE).

use std::fs::File;
use std::io;

use nix::errno::Errno;
use nix::unistd::{lseek, Whence};

/// Whether every byte is zero.
pub fn is_zero(bytes: &[u8]) -> bool {
    let (words, tail) = bytes.as_chunks::<16>();
    words.iter().all(|w| u128::from_ne_bytes(*w) == 0) && tail.iter().all(|&b| b == 0)
}

/// Finds which byte ranges of a file hold data, moving forward through the file.
///
/// After a look-up at `base`, `base..hole_until` is known to be a hole and
/// `hole_until..data_until` data; later questions inside that range need no system call.
pub struct DataExtents<'a> {
    file: &'a File,
    base: u64,
    hole_until: u64,
    data_until: u64,
}

impl<'a> DataExtents<'a> {
    pub fn new(file: &'a File) -> Self {
        DataExtents {
            file,
            base: 0,
            hole_until: 0,
            data_until: 0,
        }
    }

    fn seek(&self, offset: u64, whence: Whence) -> io::Result<Option<u64>> {
        match lseek(self.file, offset as libc::off_t, whence) {
            Ok(r) => Ok(Some(r as u64)),
            Err(Errno::ENXIO) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes sure the known extents cover `offset`. A file system without SEEK_DATA is
    /// taken to be all data.
    fn locate(&mut self, offset: u64) {
        if offset >= self.base && offset < self.data_until.max(self.hole_until) {
            return;
        }
        self.base = offset;
        (self.hole_until, self.data_until) = match self.seek(offset, Whence::SeekData) {
            Ok(None) => (u64::MAX, u64::MAX),
            Ok(Some(data)) => {
                let hole = match self.seek(data, Whence::SeekHole) {
                    Ok(Some(hole)) => hole,
                    _ => u64::MAX,
                };
                (data, hole)
            }
            Err(_) => (offset, u64::MAX),
        };
    }

    /// Whether `offset..offset + len` is entirely data (no hole). Questions must move
    /// forward.
    pub fn is_data(&mut self, offset: u64, len: u64) -> bool {
        self.locate(offset);
        self.hole_until <= offset && offset + len <= self.data_until
    }

    /// Whether `offset..offset + len` is entirely a hole. Questions must move forward.
    pub fn is_hole(&mut self, offset: u64, len: u64) -> bool {
        self.locate(offset);
        offset + len <= self.hole_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn zero_is_told_from_data_anywhere_in_a_sector() {
        assert!(is_zero(&[0; 512]));
        assert!(is_zero(&[0; 37]));
        for at in [0, 15, 16, 500, 511] {
            let mut s = [0u8; 512];
            s[at] = 1;
            assert!(!is_zero(&s), "byte {at}");
        }
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
        let mut ext = DataExtents::new(&f);
        assert!(!ext.is_data(0, 4096));
        assert!(ext.is_data(32 << 20, 4096));
        assert!(!ext.is_data(32 << 20, 8192));
        assert!(ext.is_hole((32 << 20) + 4096, 1 << 20));
    }
}
