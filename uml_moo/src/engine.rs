//! The merge loops, in large extents.
//!
//! The virtual disk is walked a chunk (2 MiB) at a time. A chunk's window of the backing
//! file and of the COW data area are read with `pread` into two reusable buffers (the
//! COW window in one read when it is dense, run by run when it is sparse), and the
//! output is written with `pwritev` straight from those buffers: sectors the bitmap
//! marks come from the COW file, the others from the backing file (skipped where it has
//! holes). Contiguous output goes out in one call however many runs it is made of.
//!
//! The files are read, not memory-mapped: another user may write the COW file (or the
//! backing file) while we run, and bytes that change under a `&[u8]` would be undefined
//! behaviour; a buffer we read holds still.
//!
//! Into a new file only non-zero sectors are written, so the output is at least as
//! sparse as the C tool's. In place (`-d`) only marked sectors are written, a zero sector
//! only where the backing sector is not zero already.
//!
//! Writeback overlaps the merge: every `WRITEBACK_BYTES` of disk written in large
//! pieces, the range just written is handed to the kernel to start writing out
//! (`sync_file_range`), so the one `fdatasync` at the end finds little left to wait for.
//! In place, a chunk of scattered sectors is instead merged in a buffer of the backing
//! window and written in one piece when that touches most of its pages anyway
//! (`overlay_pays`): a disk writes it in order instead of seeking from page to page.

use std::fs::File;
use std::io::{self, IoSlice};
use std::ops::Range;
use std::os::unix::fs::FileExt;

use uml_proto::cow::{CowFile, SectorBitmap};

use crate::io_util::{is_zero, DataExtents};
use crate::progress::Progress;
use crate::sys;

/// Bytes of virtual disk handled per step.
const CHUNK_BYTES: u64 = 2 << 20;
/// A COW window is read all at once when at least 1 in this many of its sectors is
/// marked; sparser windows are read run by run.
const DENSE: u64 = 8;
/// iovecs per pwritev call (Linux's IOV_MAX).
const IOV_MAX: usize = 1024;
/// How much of the output is written before its writeback is started.
const WRITEBACK_BYTES: u64 = 16 << 20;

/// Which file an I/O failure concerns.
#[derive(Debug)]
pub enum LoopError {
    Cow(io::Error),
    Backing(io::Error),
    Write(io::Error),
}

/// The sector geometry of the walk.
struct Walk {
    ss: u64,
    sectors: u64,
    per_chunk: u64,
}

impl Walk {
    fn of(cow: &CowFile) -> Walk {
        let ss = u64::from(cow.header.sectorsize);
        Walk {
            ss,
            sectors: cow.header.sectors(),
            per_chunk: (CHUNK_BYTES / ss).max(1),
        }
    }

    /// `(first sector, sector count)` of every chunk.
    fn chunks(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        (0..self.sectors)
            .step_by(self.per_chunk as usize)
            .map(|first| (first, self.per_chunk.min(self.sectors - first)))
    }
}

/// The buffers one chunk is read into, reused from chunk to chunk.
#[derive(Default)]
struct ChunkBufs {
    /// The chunk's backing window (empty when it is a hole or not needed).
    backing: Vec<u8>,
    /// The COW data from the chunk's first sector up to its last marked one; only the
    /// marked runs are filled in.
    cow: Vec<u8>,
    /// One backing sector (in place: the old contents under a zero COW sector).
    old: Vec<u8>,
}

/// Reads `buf.len()` bytes at `offset`; a file shorter than that is an error.
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::other("the file shrank during the merge")
        } else {
            e
        }
    })
}

impl ChunkBufs {
    /// Reads the backing window of the chunk.
    fn read_backing(
        &mut self,
        backing: &File,
        (first, count): (u64, u64),
        ss: u64,
    ) -> io::Result<()> {
        self.backing.resize((count * ss) as usize, 0);
        read_at(backing, &mut self.backing, first * ss)
    }

    /// Reads the marked runs of the chunk from the COW data area.
    fn read_cow(
        &mut self,
        cow: &CowFile,
        first: u64,
        ss: u64,
        runs: &[(u64, u64)],
    ) -> io::Result<()> {
        let Some(&(s, n)) = runs.last() else {
            self.cow.clear();
            return Ok(());
        };
        let window = s + n - first;
        self.cow.resize((window * ss) as usize, 0);
        let base = cow.geometry.data_offset + first * ss;
        let marked: u64 = runs.iter().map(|&(_, n)| n).sum();
        if marked * DENSE >= window {
            return read_at(&cow.file, &mut self.cow, base);
        }
        for &(s, n) in runs {
            let at = ((s - first) * ss) as usize;
            read_at(
                &cow.file,
                &mut self.cow[at..at + (n * ss) as usize],
                base + (s - first) * ss,
            )?;
        }
        Ok(())
    }
}

/// Byte range of sectors `start..start + count` in a buffer that begins at sector `first`.
fn span(first: u64, ss: u64, start: u64, count: u64) -> Range<usize> {
    let a = ((start - first) * ss) as usize;
    a..a + (count * ss) as usize
}

/// Collects pieces of buffers that land at consecutive file offsets and writes them with
/// as few `pwritev` calls as possible; a piece that does not continue the previous one
/// starts a new write.
struct SpanWriter<'f, 'm> {
    out: &'f File,
    start: u64,
    len: u64,
    pieces: Vec<(&'m [u8], Range<usize>)>,
}

impl<'f, 'm> SpanWriter<'f, 'm> {
    fn new(out: &'f File) -> Self {
        SpanWriter {
            out,
            start: 0,
            len: 0,
            pieces: Vec::with_capacity(IOV_MAX),
        }
    }

    /// The file offset the next piece continues from.
    fn end(&self) -> Option<u64> {
        (!self.pieces.is_empty()).then_some(self.start + self.len)
    }

    /// Queues `buf[range]` for the file offset `offset`.
    fn push(&mut self, offset: u64, buf: &'m [u8], range: Range<usize>) -> io::Result<()> {
        if self.end() != Some(offset) {
            self.flush()?;
            self.start = offset;
        }
        let n = range.len() as u64;
        // Extend the previous piece when the bytes follow it in the same buffer too.
        if let Some((last_buf, last)) = self.pieces.last_mut() {
            if std::ptr::eq(*last_buf, buf) && last.end == range.start {
                last.end = range.end;
                self.len += n;
                return Ok(());
            }
        }
        if self.pieces.len() == IOV_MAX {
            self.flush()?;
            self.start = offset;
        }
        self.pieces.push((buf, range));
        self.len += n;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pieces.is_empty() {
            let slices: Vec<IoSlice<'_>> = self
                .pieces
                .iter()
                .map(|(b, r)| IoSlice::new(&b[r.clone()]))
                .collect();
            write_all_vectored_at(self.out, slices, self.start)?;
        }
        self.pieces.clear();
        self.len = 0;
        Ok(())
    }
}

/// Writes every byte of `iov`, back to back, at `offset`.
fn write_all_vectored_at(out: &File, mut iov: Vec<IoSlice<'_>>, mut offset: u64) -> io::Result<()> {
    let mut rest: &mut [IoSlice<'_>] = &mut iov;
    while !rest.is_empty() {
        let n = match nix::sys::uio::pwritev(out, rest, offset as libc::off_t) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        offset += n as u64;
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

/// Starts writeback of what was written since the last call, once there is enough.
struct Writeback<'f> {
    file: &'f File,
    from: u64,
}

impl<'f> Writeback<'f> {
    fn new(file: &'f File) -> Self {
        Writeback { file, from: 0 }
    }

    /// Everything before `upto` has been written as scattered small writes: leave their
    /// writeback to the final fdatasync, which can order them (measured on ext4: hints
    /// for scattered pages made `-d` of a 1% scattered COW 1.5-2x slower).
    fn skip(&mut self, upto: u64) {
        self.from = upto;
    }

    /// Everything before `upto` has been written.
    fn written(&mut self, upto: u64) {
        if upto >= self.from + WRITEBACK_BYTES {
            // Only a hint to the kernel: a failure here shows up in the final fdatasync.
            let _ = sys::start_writeback(self.file, self.from, upto - self.from);
            self.from = upto;
        }
    }
}

/// Writes backing-plus-COW into `out`, an empty file, leaving zero sectors as holes.
pub fn copy_merge(
    cow: &CowFile,
    bitmap: &SectorBitmap,
    backing: &File,
    out: &File,
    bar: &Progress,
) -> Result<(), LoopError> {
    let walk = Walk::of(cow);
    let ss = walk.ss;
    let mut runs = Vec::new();
    let mut extents = DataExtents::new(backing);
    let mut bufs = ChunkBufs::default();
    let mut writeback = Writeback::new(out);
    for (first, count) in walk.chunks() {
        runs.clear();
        runs.extend(bitmap.set_runs(first, first + count));
        let hole = extents.is_hole(first * ss, count * ss);
        if hole && runs.is_empty() {
            bar.advance(count * ss);
            continue;
        }
        if !hole {
            bufs.read_backing(backing, (first, count), ss)
                .map_err(LoopError::Backing)?;
        }
        bufs.read_cow(cow, first, ss, &runs)
            .map_err(LoopError::Cow)?;
        let (back, new): (&[u8], &[u8]) = (&bufs.backing, &bufs.cow);
        // The unmarked sectors `from..to` come from the backing file (none from a hole).
        let unmarked =
            |from: u64, to: u64| (!hole && to > from).then(|| span(first, ss, from, to - from));
        let mut w = SpanWriter::new(out);
        let mut at = first;
        for &(s, n) in &runs {
            if let Some(r) = unmarked(at, s) {
                push_sectors(&mut w, back, r, first, ss).map_err(LoopError::Write)?;
            }
            push_sectors(&mut w, new, span(first, ss, s, n), first, ss)
                .map_err(LoopError::Write)?;
            at = s + n;
        }
        if let Some(r) = unmarked(at, first + count) {
            push_sectors(&mut w, back, r, first, ss).map_err(LoopError::Write)?;
        }
        w.flush().map_err(LoopError::Write)?;
        writeback.written((first + count) * ss);
        bar.advance(count * ss);
    }
    Ok(())
}

/// Pushes the non-zero sectors of `buf[range]`, a buffer whose byte 0 is sector `first`.
fn push_sectors<'m>(
    w: &mut SpanWriter<'_, 'm>,
    buf: &'m [u8],
    range: Range<usize>,
    first: u64,
    ss: u64,
) -> io::Result<()> {
    let base = first * ss;
    let step = ss as usize;
    for a in range.step_by(step) {
        if !is_zero(&buf[a..a + step]) {
            w.push(base + a as u64, buf, a..a + step)?;
        }
    }
    Ok(())
}

/// In place, a chunk whose window (first to last marked sector) has at least half its
/// pages touched by marked runs, and no hole, is merged in a buffer of the backing
/// window and written back whole: one write instead of one per run, and a disk writes
/// the window in order instead of seeking from page to page (the extra pages it
/// rewrites, unchanged, cost less than the scattered writes they replace).
const PAGE: u64 = 4096;

/// Whether `runs` touch at least half the pages of the window `first..first + window`.
fn overlay_pays(first: u64, window: u64, ss: u64, runs: &[(u64, u64)]) -> bool {
    let per_page = (PAGE / ss).max(1);
    let pages = window.div_ceil(per_page);
    let mut touched = 0;
    let mut last = None;
    for &(s, n) in runs {
        let (a, b) = ((s - first) / per_page, (s + n - 1 - first) / per_page);
        let a = match last {
            Some(l) if l >= a => l + 1,
            _ => a,
        };
        if b >= a {
            touched += b - a + 1;
        }
        last = Some(last.map_or(b, |l: u64| l.max(b)));
    }
    touched * 2 >= pages
}

/// Writes the COW's marked sectors into the backing file, skipping zero sectors whose
/// backing sector is zero too (it may be a hole).
pub fn in_place_merge(
    cow: &CowFile,
    bitmap: &SectorBitmap,
    backing: &File,
    bar: &Progress,
) -> Result<(), LoopError> {
    let walk = Walk::of(cow);
    let ss = walk.ss;
    let step = ss as usize;
    let mut runs = Vec::new();
    let mut bufs = ChunkBufs::default();
    bufs.old.resize(step, 0);
    let mut writeback = Writeback::new(backing);
    let mut extents = DataExtents::new(backing);
    // On tmpfs nothing seeks: rewriting whole windows only costs copies there.
    let on_disk = !in_memory(backing);
    for (first, count) in walk.chunks() {
        runs.clear();
        runs.extend(bitmap.set_runs(first, first + count));
        if runs.is_empty() {
            continue;
        }
        bufs.read_cow(cow, first, ss, &runs)
            .map_err(LoopError::Cow)?;
        let marked: u64 = runs.iter().map(|&(_, n)| n).sum();
        let window = runs.last().map_or(0, |&(s, n)| s + n - first);
        if on_disk
            && overlay_pays(first, window, ss, &runs)
            && extents.is_data(first * ss, window * ss)
        {
            overlay_chunk(&mut bufs, backing, first, window, ss, &runs)?;
            writeback.written((first + count) * ss);
            bar.advance(marked * ss);
            continue;
        }
        let new: &[u8] = &bufs.cow;
        let old = &mut bufs.old;
        let mut w = SpanWriter::new(backing);
        let mut marked = 0;
        for &(s, n) in &runs {
            marked += n;
            for a in span(first, ss, s, n).step_by(step) {
                let at = first * ss + a as u64;
                let keep = !is_zero(&new[a..a + step]) || {
                    read_at(backing, old, at).map_err(LoopError::Backing)?;
                    !is_zero(old)
                };
                if keep {
                    w.push(at, new, a..a + step).map_err(LoopError::Write)?;
                }
            }
        }
        w.flush().map_err(LoopError::Write)?;
        writeback.skip((first + count) * ss);
        bar.advance(marked * ss);
    }
    Ok(())
}

/// Whether `file` lives in memory (tmpfs) rather than on a disk.
fn in_memory(file: &File) -> bool {
    use nix::sys::statfs::{fstatfs, TMPFS_MAGIC};
    fstatfs(file).is_ok_and(|s| s.filesystem_type() == TMPFS_MAGIC)
}

/// Reads the backing window `first..first + window`, lays the COW's marked runs over
/// it (already in `bufs.cow`) and writes the window back in one call.
fn overlay_chunk(
    bufs: &mut ChunkBufs,
    backing: &File,
    first: u64,
    window: u64,
    ss: u64,
    runs: &[(u64, u64)],
) -> Result<(), LoopError> {
    bufs.read_backing(backing, (first, window), ss)
        .map_err(LoopError::Backing)?;
    for &(s, n) in runs {
        let r = span(first, ss, s, n);
        bufs.backing[r.clone()].copy_from_slice(&bufs.cow[r]);
    }
    backing
        .write_all_at(&bufs.backing, first * ss)
        .map_err(LoopError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_when_most_pages_are_touched() {
        // 8 sectors a page; a window of 4 pages.
        assert!(overlay_pays(0, 32, 512, &[(0, 32)]));
        // One sector in each of pages 0, 1: 2 of 4 pages.
        assert!(overlay_pays(0, 32, 512, &[(0, 1), (8, 1), (31, 1)]));
        // Pages 0 and 3 only: 2 of 4, still half.
        assert!(overlay_pays(0, 32, 512, &[(0, 1), (31, 1)]));
        // Page 0 only, window of 4 pages.
        assert!(!overlay_pays(0, 32, 512, &[(0, 2)]));
        // A run across a page boundary counts both pages once.
        assert!(!overlay_pays(100, 64, 512, &[(106, 4), (163, 1)]));
        assert!(overlay_pays(100, 24, 512, &[(106, 4), (123, 1)]));
    }
}
