//! Merging a COW file with its backing file: the checks before any byte is written, the
//! new file that appears only when complete, and the journal that makes an in-place
//! merge resumable. The loops that move the sectors are in `engine`.

use std::fs::{File, OpenOptions, Permissions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use uml_proto::cow::{lock_whole_file, BackingChoice, BackingInfo, CowFile};
use uml_proto::fsutil::{parent_dir, sync_parent_dir, umask};

use crate::engine::{copy_merge, in_place_merge, LoopError};
use crate::error::MooError;
use crate::journal::{self, Found, JournalRecord};
use crate::owner::{self, Owner, OwnerOpenError};
use crate::progress::Progress;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeReport {
    /// The backing file used.
    pub backing: PathBuf,
    pub sectors: u64,
    pub sector_size: u64,
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
    cow.lock(false).map_err(|source| MooError::Locked {
        path: req.cow.clone(),
        source,
    })?;
    // `-b` names the file to use (moved or not, the checks follow), even when it is the
    // header's under another name.
    let backing = match cow.find_backing(req.backing.as_deref()) {
        BackingChoice::Header(p) => req.backing.clone().unwrap_or(p),
        BackingChoice::Moved { asked, .. } | BackingChoice::Mismatch { asked, .. } => asked,
    };
    Ok((cow, backing))
}

/// Merges as requested.
pub fn merge(req: &MergeRequest) -> Result<MergeReport, MooError> {
    let (cow, backing_path) = open_cow(req)?;
    let write = matches!(req.target, Target::InPlace);
    let backing = open_backing(&cow, &backing_path, req.backing.is_some(), write)?;
    match &req.target {
        Target::NewFile(out) => merge_to_new_file(&cow, &backing, &backing_path, out, req.progress),
        Target::InPlace => merge_in_place(&cow, &backing, &backing_path, req.progress),
    }
}

/// Opens the backing file, for writing too with `write`. The path a header names is
/// the COW owner's choice: unless the caller named it (`explicit`, `-b`) or owns the COW
/// file, it is opened with the rights of the COW's owner (see `owner`).
pub fn open_backing(
    cow: &CowFile,
    path: &Path,
    explicit: bool,
    write: bool,
) -> Result<File, MooError> {
    let missing = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound && !explicit {
            MooError::BackingMissing {
                path: path.to_owned(),
                source,
            }
        } else {
            let op = if write { "open for writing" } else { "open" };
            MooError::io(path, op)(source)
        }
    };
    let cow_meta = cow
        .file
        .metadata()
        .map_err(MooError::io(&cow.path, "stat"))?;
    let owner = if explicit {
        None
    } else {
        Owner::of_other(&cow_meta)
    };
    let Some(owner) = owner else {
        return OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .map_err(missing);
    };
    owner::open_as(&owner, path, write).map_err(|e| match e {
        OwnerOpenError::Denied(source) | OwnerOpenError::Caller(source)
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            missing(source)
        }
        OwnerOpenError::Caller(source) => missing(source),
        OwnerOpenError::Denied(source) => MooError::NotOwnersBacking {
            path: path.to_owned(),
            uid: owner.uid,
            write,
            source,
        },
        OwnerOpenError::Check(source) => MooError::io(path, "open as the COW's owner")(source),
    })
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
    backing: &File,
    backing_path: &Path,
    out: &Path,
    progress: bool,
) -> Result<MergeReport, MooError> {
    if let Err(e) = check_backing(cow, backing, backing_path, false) {
        let jpath = journal::journal_path(&cow.path);
        if matches!(journal::read(&jpath), Ok(Found::Record(_))) {
            return Err(MooError::PendingJournal {
                cow: cow.path.clone(),
                journal: jpath,
            });
        }
        return Err(e);
    }
    if let Ok(out_meta) = std::fs::metadata(out) {
        for (file, path) in [(&cow.file, &cow.path), (backing, &backing_path.to_owned())] {
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
    copy_merge(cow, &bitmap, backing, tmp.as_file(), &bar)
        .map_err(|e| e.at(&cow.path, backing_path, out))?;
    bar.finish();
    let file = tmp.as_file();
    file.set_len(sectors * ss)
        .map_err(MooError::io(out, "truncate"))?;
    // The COW file's mode (its read and write bits, under the umask): a private COW
    // file gives a private image.
    let cow_mode = cow
        .file
        .metadata()
        .map_err(MooError::io(&cow.path, "stat"))?
        .mode();
    file.set_permissions(Permissions::from_mode(cow_mode & 0o666 & !umask()))
        .map_err(MooError::io(out, "chmod"))?;
    file.sync_all().map_err(MooError::io(out, "fsync"))?;
    tmp.persist(out)
        .map_err(|e| MooError::io(out, "rename")(e.error))?;
    let _ = sync_parent_dir(out);
    Ok(MergeReport {
        backing: backing_path.to_owned(),
        sectors,
        sector_size: ss,
        dirty_sectors: bitmap.count_set(),
        resumed: false,
    })
}

fn merge_in_place(
    cow: &CowFile,
    backing: &File,
    backing_path: &Path,
    progress: bool,
) -> Result<MergeReport, MooError> {
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
    lock_whole_file(backing, true).map_err(|source| MooError::Locked {
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
            check_backing(cow, backing, backing_path, false)?;
            false
        }
        Found::Record(r) if r == record => {
            check_backing(cow, backing, backing_path, true)?;
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
    in_place_merge(cow, &bitmap, backing, &bar)
        .map_err(|e| e.at(&cow.path, backing_path, backing_path))?;
    bar.finish();
    // One fdatasync: the writeback was started chunk by chunk during the merge.
    backing
        .sync_data()
        .map_err(MooError::io(backing_path, "fdatasync"))?;
    journal::remove(&jpath).map_err(MooError::io(&jpath, "remove journal"))?;
    Ok(MergeReport {
        backing: backing_path.to_owned(),
        sectors: cow.header.sectors(),
        sector_size: ss,
        dirty_sectors: dirty,
        resumed,
    })
}

impl LoopError {
    /// The error with the file it concerns named.
    fn at(self, cow: &Path, backing: &Path, out: &Path) -> MooError {
        let (path, op, source) = match self {
            LoopError::Cow(e) => (cow, "read", e),
            LoopError::Backing(e) => (backing, "read", e),
            LoopError::Write(e) => (out, "write", e),
        };
        MooError::Io {
            path: path.to_owned(),
            op,
            source,
        }
    }
}
