//! Merging a COW file with its backing file, in large extents.
//!
//! The virtual disk is walked a chunk (2 MiB) at a time. A chunk's bytes come from the
//! backing file (skipped where it has holes) with the runs of sectors that the bitmap
//! marks laid over them from the COW file: one read per run, or one read of the whole
//! chunk when the runs are many. Into a new file only non-zero sectors are written, so
//! the output is at least as sparse as the C tool's. In place (`-d`), only the marked
//! sectors are written, and zero sectors only where the backing file is not already zero.
//! Memory is the bitmap plus two chunk buffers.

use std::fs::{File, OpenOptions, Permissions};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use uml_proto::cow::{lock_whole_file, BackingInfo, CowFile, SectorBitmap};
use uml_proto::fsutil::{new_file_mode, parent_dir, sync_parent_dir};

use crate::error::MooError;
use crate::io_util::{for_each_run, read_full_at, write_nonzero_sectors, DataExtents};
use crate::journal::{self, Found, JournalRecord};
use crate::progress::Progress;

/// Bytes of virtual disk handled per step.
const CHUNK_BYTES: u64 = 2 << 20;
/// Above this many runs in a chunk, the whole chunk of COW data is read at once.
const RUNS_FOR_WHOLE_CHUNK_READ: usize = 4;
/// The largest sector size accepted (the kernel itself only uses 512).
const MAX_SECTOR_SIZE: u32 = 1 << 20;

/// Where the merged disk goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// A new file; the COW and backing files are left alone.
    NewFile(PathBuf),
    /// The backing file itself (`-d`).
    InPlace,
}

#[derive(Debug, Clone)]
pub struct MergeRequest {
    pub cow: PathBuf,
    /// The backing file to use instead of the one the header names (`-b`).
    pub backing: Option<PathBuf>,
    pub target: Target,
    pub progress: bool,
}

/// What a merge did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeReport {
    pub sectors: u64,
    pub dirty_sectors: u64,
    /// An interrupted destructive merge was picked up and finished.
    pub resumed: bool,
}

/// Opens and checks the COW file and decides which backing file it needs.
fn open_cow(req: &MergeRequest) -> Result<(CowFile, PathBuf), MooError> {
    let cow = CowFile::open(&req.cow)?;
    if cow.header.sectorsize > MAX_SECTOR_SIZE {
        return Err(MooError::Io {
            path: req.cow.clone(),
            op: "read header",
            source: std::io::Error::other(format!(
                "unsupported sector size {}",
                cow.header.sectorsize
            )),
        });
    }
    lock_whole_file(&cow.file, false).map_err(|source| MooError::Locked {
        path: req.cow.clone(),
        source,
    })?;
    let backing = req
        .backing
        .clone()
        .unwrap_or_else(|| cow.header.backing_path());
    Ok((cow, backing))
}

/// Merges as requested.
pub fn merge(req: &MergeRequest) -> Result<MergeReport, MooError> {
    let (cow, backing_path) = open_cow(req)?;
    match &req.target {
        Target::NewFile(out) => merge_to_new_file(&cow, &backing_path, out, req.progress),
        Target::InPlace => merge_in_place(&cow, &backing_path, req.progress),
    }
}

fn same_inode(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

fn check_backing(
    cow: &CowFile,
    backing: &File,
    path: &Path,
    size_only: bool,
) -> Result<(), MooError> {
    let info = BackingInfo::of_file(backing).map_err(MooError::io(path, "stat"))?;
    let info = if size_only {
        BackingInfo {
            mtime: i64::from(cow.header.mtime),
            ..info
        }
    } else {
        info
    };
    cow.header
        .check_backing(&info)
        .map_err(|source| MooError::Mismatch {
            backing: path.to_owned(),
            source,
        })
}

fn merge_to_new_file(
    cow: &CowFile,
    backing_path: &Path,
    out: &Path,
    progress: bool,
) -> Result<MergeReport, MooError> {
    let backing = File::open(backing_path).map_err(MooError::io(backing_path, "open"))?;
    check_backing(cow, &backing, backing_path, false)?;
    if let Ok(out_meta) = std::fs::metadata(out) {
        for (file, path) in [(&cow.file, &cow.path), (&backing, &backing_path.to_owned())] {
            let meta = file.metadata().map_err(MooError::io(path, "stat"))?;
            if same_inode(&out_meta, &meta) {
                return Err(MooError::OutputIsInput {
                    output: out.to_owned(),
                    input: path.clone(),
                });
            }
        }
    }
    let bitmap = cow.read_bitmap()?;
    let dir = parent_dir(out);
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".uml_moo-partial")
        .tempfile_in(dir)
        .map_err(MooError::io(out, "create"))?;
    let ss = u64::from(cow.header.sectorsize);
    let sectors = cow.header.sectors();
    let bar = Progress::new(progress, sectors * ss, "merging");
    copy_merge(cow, &bitmap, &backing, tmp.as_file(), &bar).map_err(|e| e.at(backing_path, out))?;
    bar.finish();
    let file = tmp.as_file();
    file.set_len(sectors * ss)
        .map_err(MooError::io(out, "truncate"))?;
    file.set_permissions(Permissions::from_mode(new_file_mode()))
        .map_err(MooError::io(out, "chmod"))?;
    file.sync_all().map_err(MooError::io(out, "fsync"))?;
    tmp.persist(out)
        .map_err(|e| MooError::io(out, "rename")(e.error))?;
    let _ = sync_parent_dir(out);
    Ok(MergeReport {
        sectors,
        dirty_sectors: bitmap.count_set(),
        resumed: false,
    })
}

fn merge_in_place(
    cow: &CowFile,
    backing_path: &Path,
    progress: bool,
) -> Result<MergeReport, MooError> {
    let backing = OpenOptions::new()
        .read(true)
        .write(true)
        .open(backing_path)
        .map_err(MooError::io(backing_path, "open for writing"))?;
    let back_meta = backing
        .metadata()
        .map_err(MooError::io(backing_path, "stat"))?;
    let cow_meta = cow
        .file
        .metadata()
        .map_err(MooError::io(&cow.path, "stat"))?;
    if same_inode(&back_meta, &cow_meta) {
        return Err(MooError::OutputIsInput {
            output: backing_path.to_owned(),
            input: cow.path.clone(),
        });
    }
    lock_whole_file(&backing, true).map_err(|source| MooError::Locked {
        path: backing_path.to_owned(),
        source,
    })?;
    let record = JournalRecord {
        cow_dev: cow_meta.dev(),
        cow_ino: cow_meta.ino(),
        backing_dev: back_meta.dev(),
        backing_ino: back_meta.ino(),
        header_mtime: cow.header.mtime,
        size: cow.header.size,
    };
    let jpath = journal::journal_path(&cow.path);
    let resumed = match journal::read(&jpath).map_err(MooError::io(&jpath, "read"))? {
        Found::Nothing => {
            check_backing(cow, &backing, backing_path, false)?;
            false
        }
        Found::Record(r) if r == record => {
            check_backing(cow, &backing, backing_path, true)?;
            true
        }
        _ => return Err(MooError::ForeignJournal { path: jpath }),
    };
    let bitmap = cow.read_bitmap()?;
    if !resumed {
        journal::write(&jpath, record).map_err(MooError::io(&jpath, "write journal"))?;
    }
    let ss = u64::from(cow.header.sectorsize);
    let dirty = bitmap.count_set();
    let bar = Progress::new(progress, dirty * ss, "merging in place");
    in_place_merge(cow, &bitmap, &backing, &bar).map_err(|e| e.at(backing_path, backing_path))?;
    bar.finish();
    backing
        .sync_all()
        .map_err(MooError::io(backing_path, "fsync"))?;
    journal::remove(&jpath).map_err(MooError::io(&jpath, "remove journal"))?;
    Ok(MergeReport {
        sectors: cow.header.sectors(),
        dirty_sectors: dirty,
        resumed,
    })
}

/// An I/O failure inside the merge loop, before we know which path to name.
#[derive(Debug)]
enum LoopError {
    ReadCow(CowFileErrorSource),
    ReadBacking(std::io::Error),
    Write(std::io::Error),
}

type CowFileErrorSource = (PathBuf, std::io::Error);

impl LoopError {
    fn at(self, backing: &Path, out: &Path) -> MooError {
        match self {
            LoopError::ReadCow((path, source)) => MooError::Io {
                path,
                op: "read",
                source,
            },
            LoopError::ReadBacking(source) => MooError::Io {
                path: backing.to_owned(),
                op: "read",
                source,
            },
            LoopError::Write(source) => MooError::Io {
                path: out.to_owned(),
                op: "write",
                source,
            },
        }
    }
}

/// Sector geometry of the walk.
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

    fn chunks(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        (0..self.sectors)
            .step_by(self.per_chunk as usize)
            .map(|first| (first, self.per_chunk.min(self.sectors - first)))
    }
}

/// Reads the COW data of the marked runs of one chunk into `buf` (indexed from the
/// chunk's first sector), using `scratch` when one whole-chunk read is cheaper.
fn read_cow_runs(
    cow: &CowFile,
    walk: &Walk,
    first: u64,
    runs: &[(u64, u64)],
    buf: &mut [u8],
    scratch: &mut [u8],
) -> Result<(), LoopError> {
    let ss = walk.ss;
    let err = |e| LoopError::ReadCow((cow.path.clone(), e));
    let data = cow.geometry.data_offset;
    if runs.len() > RUNS_FOR_WHOLE_CHUNK_READ {
        let (last, count) = runs[runs.len() - 1];
        let span = ((last + count - first) * ss) as usize;
        read_full_at(&cow.file, &mut scratch[..span], data + first * ss).map_err(err)?;
        for &(s, n) in runs {
            let a = ((s - first) * ss) as usize;
            let b = a + (n * ss) as usize;
            buf[a..b].copy_from_slice(&scratch[a..b]);
        }
    } else {
        for &(s, n) in runs {
            let a = ((s - first) * ss) as usize;
            let b = a + (n * ss) as usize;
            read_full_at(&cow.file, &mut buf[a..b], data + s * ss).map_err(err)?;
        }
    }
    Ok(())
}

/// Writes backing-plus-COW into `out`, an empty file, leaving zero sectors as holes.
fn copy_merge(
    cow: &CowFile,
    bitmap: &SectorBitmap,
    backing: &File,
    out: &File,
    bar: &Progress,
) -> Result<(), LoopError> {
    let walk = Walk::of(cow);
    let chunk = (walk.per_chunk * walk.ss) as usize;
    let mut buf = vec![0u8; chunk];
    let mut scratch = vec![0u8; chunk];
    let mut runs = Vec::new();
    let mut extents = DataExtents::new(backing);
    for (first, count) in walk.chunks() {
        let offset = first * walk.ss;
        let len = count * walk.ss;
        let b = &mut buf[..len as usize];
        runs.clear();
        runs.extend(bitmap.set_runs(first, first + count));
        let hole = extents.is_hole(offset, len);
        if hole && runs.is_empty() {
            bar.advance(len);
            continue;
        }
        if hole {
            b.fill(0);
        } else {
            read_full_at(backing, b, offset).map_err(LoopError::ReadBacking)?;
        }
        read_cow_runs(cow, &walk, first, &runs, b, &mut scratch)?;
        write_nonzero_sectors(out, b, offset, walk.ss as usize).map_err(LoopError::Write)?;
        bar.advance(len);
    }
    Ok(())
}

/// Writes the COW's marked sectors into the backing file.
fn in_place_merge(
    cow: &CowFile,
    bitmap: &SectorBitmap,
    backing: &File,
    bar: &Progress,
) -> Result<(), LoopError> {
    let walk = Walk::of(cow);
    let ss = walk.ss as usize;
    let chunk = (walk.per_chunk * walk.ss) as usize;
    let mut data = vec![0u8; chunk];
    let mut scratch = vec![0u8; chunk];
    let mut runs = Vec::new();
    for (first, count) in walk.chunks() {
        runs.clear();
        runs.extend(bitmap.set_runs(first, first + count));
        if runs.is_empty() {
            continue;
        }
        read_cow_runs(cow, &walk, first, &runs, &mut data, &mut scratch)?;
        for &(s, n) in &runs {
            let a = ((s - first) * walk.ss) as usize;
            let run = &data[a..a + n as usize * ss];
            let at = |i: usize| (s + i as u64) * walk.ss;
            for_each_run(run, ss, false, |i, c| {
                backing.write_all_at(&run[i * ss..(i + c) * ss], at(i))
            })
            .map_err(LoopError::Write)?;
            // Zero sectors: write zeros only over non-zero backing sectors.
            let mut zero_runs = Vec::new();
            for_each_run(run, ss, true, |i, c| {
                zero_runs.push((i, c));
                Ok(())
            })
            .map_err(LoopError::Write)?;
            for (i, c) in zero_runs {
                let old = &mut scratch[..c * ss];
                read_full_at(backing, old, at(i)).map_err(LoopError::ReadBacking)?;
                for_each_run(old, ss, false, |j, d| {
                    backing.write_all_at(&run[(i + j) * ss..(i + j + d) * ss], at(i + j))
                })
                .map_err(LoopError::Write)?;
            }
            bar.advance(n * walk.ss);
        }
    }
    Ok(())
}
