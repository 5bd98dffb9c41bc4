//! The merge loops, in large extents.
//!
//! The virtual disk is walked a chunk (2 MiB) at a time. The chunk's window of the
//! backing file and of the COW data area are memory-mapped read-only, and the output is
//! written with `pwritev` straight from those maps: sectors the bitmap marks come from
//! the COW file, the others from the backing file (skipped where it has holes). No byte
//! is copied through a buffer, and contiguous output goes out in one call however many
//! runs it is made of.
//!
//! Into a new file only non-zero sectors are written, so the output is at least as
//! sparse as the C tool's. In place (`-d`) only marked sectors are written, a zero sector
//! only where the backing sector is not zero already.

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use uml_proto::cow::{CowFile, SectorBitmap};

use crate::io_util::{is_zero, DataExtents};
use crate::mapped::MappedRange;
use crate::progress::Progress;

/// Bytes of virtual disk handled per step.
const CHUNK_BYTES: u64 = 2 << 20;
/// A COW window is mapped all at once when at least 1 in this many of its sectors is
/// marked (one sector in each 4 KiB page, on average); sparser windows fault per page.
const POPULATE_DENSITY: u64 = 8;
/// iovecs per pwritev call (Linux's IOV_MAX).
const IOV_MAX: usize = 1024;

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

/// One chunk's maps: the backing window (None where it is a hole) and the COW data of
/// the chunk up to its last marked sector (None when nothing is marked).
struct ChunkView {
    first: u64,
    ss: u64,
    backing: Option<MappedRange>,
    cow: Option<MappedRange>,
}

impl ChunkView {
    fn sectors<'a>(&self, map: &'a MappedRange, start: u64, count: u64) -> &'a [u8] {
        let a = ((start - self.first) * self.ss) as usize;
        &map.bytes()[a..a + (count * self.ss) as usize]
    }

    fn backing(&self, start: u64, count: u64) -> Option<&[u8]> {
        self.backing.as_ref().map(|m| self.sectors(m, start, count))
    }

    fn cow(&self, start: u64, count: u64) -> &[u8] {
        self.sectors(
            self.cow.as_ref().expect("COW map of a marked chunk"),
            start,
            count,
        )
    }
}

/// How a chunk's backing window is mapped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BackingMap {
    /// Not at all: it is a hole.
    Hole,
    /// Page by page as it is read.
    Lazy,
    /// Every page at once.
    Populated,
}

fn map_chunk(
    cow: &CowFile,
    backing: &File,
    (first, count): (u64, u64),
    ss: u64,
    runs: &[(u64, u64)],
    how: BackingMap,
) -> Result<ChunkView, LoopError> {
    let populate_backing = how == BackingMap::Populated;
    let backing_map = if how == BackingMap::Hole {
        None
    } else {
        Some(
            MappedRange::new(backing, first * ss, (count * ss) as usize, populate_backing)
                .map_err(LoopError::Backing)?,
        )
    };
    let cow_map = match runs.last() {
        None => None,
        Some(&(s, n)) => {
            let window = s + n - first;
            let marked: u64 = runs.iter().map(|&(_, n)| n).sum();
            // Map every page at once only when most pages will be read.
            let populate = marked * POPULATE_DENSITY >= window;
            let at = cow.geometry.data_offset + first * ss;
            let len = (window * ss) as usize;
            Some(MappedRange::new(&cow.file, at, len, populate).map_err(LoopError::Cow)?)
        }
    };
    Ok(ChunkView {
        first,
        ss,
        backing: backing_map,
        cow: cow_map,
    })
}

/// Collects slices that land at consecutive file offsets and writes them with as few
/// `pwritev` calls as possible; a slice that does not continue the previous one starts
/// a new write.
struct SpanWriter<'f, 'm> {
    out: &'f File,
    start: u64,
    len: u64,
    slices: Vec<&'m [u8]>,
}

impl<'f, 'm> SpanWriter<'f, 'm> {
    fn new(out: &'f File) -> Self {
        SpanWriter {
            out,
            start: 0,
            len: 0,
            slices: Vec::with_capacity(IOV_MAX),
        }
    }

    /// The file offset the next slice continues from.
    fn end(&self) -> Option<u64> {
        (!self.slices.is_empty()).then_some(self.start + self.len)
    }

    fn push(&mut self, offset: u64, bytes: &'m [u8]) -> io::Result<()> {
        if self.end() != Some(offset) {
            self.flush()?;
            self.start = offset;
        }
        // Extend the previous slice when the bytes follow it in memory too.
        if let Some(last) = self.slices.last_mut() {
            if last.as_ptr_range().end == bytes.as_ptr() {
                // SAFETY: both slices lie in the same live mapping, back to back, so the
                // joined range is one valid allocation of initialised bytes.
                *last =
                    unsafe { std::slice::from_raw_parts(last.as_ptr(), last.len() + bytes.len()) };
                self.len += bytes.len() as u64;
                return Ok(());
            }
        }
        if self.slices.len() == IOV_MAX {
            self.flush()?;
            self.start = offset;
        }
        self.slices.push(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.slices.is_empty() {
            write_all_vectored_at(self.out, &self.slices, self.start)?;
        }
        self.slices.clear();
        self.len = 0;
        Ok(())
    }
}

/// Writes every byte of `slices`, back to back, at `offset`.
fn write_all_vectored_at(out: &File, slices: &[&[u8]], mut offset: u64) -> io::Result<()> {
    let mut iov: Vec<IoSlice<'_>> = slices.iter().map(|s| IoSlice::new(s)).collect();
    let mut rest: &mut [IoSlice<'_>] = &mut iov;
    while !rest.is_empty() {
        // SAFETY: IoSlice is ABI-compatible with iovec; the slices outlive the call.
        let n = unsafe {
            libc::pwritev(
                out.as_raw_fd(),
                rest.as_ptr() as *const libc::iovec,
                rest.len() as libc::c_int,
                offset as libc::off_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        offset += n as u64;
        IoSlice::advance_slices(&mut rest, n as usize);
    }
    Ok(())
}

/// Pushes the non-zero sectors of `bytes` (which start at sector `start`).
fn push_nonzero<'m>(
    w: &mut SpanWriter<'_, 'm>,
    bytes: &'m [u8],
    start: u64,
    ss: u64,
) -> io::Result<()> {
    for (i, sector) in bytes.chunks(ss as usize).enumerate() {
        if !is_zero(sector) {
            w.push((start + i as u64) * ss, sector)?;
        }
    }
    Ok(())
}

/// Pushes the non-zero backing sectors `from..to` (nothing where the backing is a hole).
fn push_unmarked<'m>(
    w: &mut SpanWriter<'_, 'm>,
    view: &'m ChunkView,
    from: u64,
    to: u64,
) -> io::Result<()> {
    match view.backing(from, to.saturating_sub(from)) {
        Some(bytes) if to > from => push_nonzero(w, bytes, from, view.ss),
        _ => Ok(()),
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
    for (first, count) in walk.chunks() {
        runs.clear();
        runs.extend(bitmap.set_runs(first, first + count));
        let hole = extents.is_hole(first * ss, count * ss);
        if hole && runs.is_empty() {
            bar.advance(count * ss);
            continue;
        }
        let how = if hole {
            BackingMap::Hole
        } else {
            BackingMap::Populated
        };
        let view = map_chunk(cow, backing, (first, count), ss, &runs, how)?;
        let mut w = SpanWriter::new(out);
        let mut at = first;
        for &(s, n) in &runs {
            push_unmarked(&mut w, &view, at, s).map_err(LoopError::Write)?;
            push_nonzero(&mut w, view.cow(s, n), s, ss).map_err(LoopError::Write)?;
            at = s + n;
        }
        push_unmarked(&mut w, &view, at, first + count).map_err(LoopError::Write)?;
        w.flush().map_err(LoopError::Write)?;
        bar.advance(count * ss);
    }
    Ok(())
}

/// Writes the COW's marked sectors into the backing file, skipping zero sectors whose
/// backing sector is zero too (it may be a hole). Dense chunks are read through maps;
/// sparse ones (a few scattered runs, where mapping a page costs more than reading
/// it) run by run through a small buffer.
pub fn in_place_merge(
    cow: &CowFile,
    bitmap: &SectorBitmap,
    backing: &File,
    bar: &Progress,
) -> Result<(), LoopError> {
    let walk = Walk::of(cow);
    let ss = walk.ss;
    let mut runs = Vec::new();
    let mut buffers = RunBuffers::default();
    for (first, count) in walk.chunks() {
        runs.clear();
        runs.extend(bitmap.set_runs(first, first + count));
        let Some(&(last, n)) = runs.last() else {
            continue;
        };
        let marked: u64 = runs.iter().map(|&(_, n)| n).sum();
        if marked * POPULATE_DENSITY >= last + n - first {
            write_mapped(cow, backing, (first, count), ss, &runs)?;
        } else {
            for &(s, n) in &runs {
                buffers.write_run(cow, backing, s, n, ss)?;
            }
        }
        bar.advance(marked * ss);
    }
    Ok(())
}

/// Writes the marked runs of a dense chunk from maps of the COW and backing windows.
fn write_mapped(
    cow: &CowFile,
    backing: &File,
    chunk: (u64, u64),
    ss: u64,
    runs: &[(u64, u64)],
) -> Result<(), LoopError> {
    let view = map_chunk(cow, backing, chunk, ss, runs, BackingMap::Lazy)?;
    let mut w = SpanWriter::new(backing);
    for &(s, n) in runs {
        let new = view.cow(s, n);
        let old = view.backing(s, n).expect("backing map");
        for (i, (c, b)) in new
            .chunks(ss as usize)
            .zip(old.chunks(ss as usize))
            .enumerate()
        {
            if !is_zero(c) || !is_zero(b) {
                w.push((s + i as u64) * ss, c).map_err(LoopError::Write)?;
            }
        }
    }
    w.flush().map_err(LoopError::Write)
}

/// Buffers for writing one run at a time: its COW data, and the backing sector under
/// a zero COW sector.
#[derive(Default)]
struct RunBuffers {
    new: Vec<u8>,
    old: Vec<u8>,
}

impl RunBuffers {
    fn write_run(
        &mut self,
        cow: &CowFile,
        backing: &File,
        s: u64,
        n: u64,
        ss: u64,
    ) -> Result<(), LoopError> {
        let len = (n * ss) as usize;
        self.new.resize(len, 0);
        self.old.resize(ss as usize, 0);
        let new = &mut self.new[..len];
        cow.file
            .read_exact_at(new, cow.geometry.data_offset + s * ss)
            .map_err(LoopError::Cow)?;
        let mut w = SpanWriter::new(backing);
        for (i, c) in new.chunks(ss as usize).enumerate() {
            let at = (s + i as u64) * ss;
            let keep = !is_zero(c) || {
                backing
                    .read_exact_at(&mut self.old, at)
                    .map_err(LoopError::Backing)?;
                !is_zero(&self.old)
            };
            if keep {
                w.push(at, c).map_err(LoopError::Write)?;
            }
        }
        w.flush().map_err(LoopError::Write)
    }
}
