//! Creating a COW file: the same V3 header linux.uml writes, in a sparse file of the
//! same length. The file appears whole or not at all: it is built under a temporary
//! name beside the target and renamed into place.

pub mod cli;

use std::fmt;
use std::fs::Permissions;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use uml_proto::cow::{write_new_cow, CowHeader, CowVersion, NewCow, NewCowError};
use uml_proto::fsutil::{new_file_mode, parent_dir, sync_parent_dir};

/// What to create.
#[derive(Debug, Clone)]
pub struct MkcowRequest {
    pub cow: PathBuf,
    pub backing: PathBuf,
    /// Replace an existing COW file (with a fresh, empty one).
    pub force: bool,
}

/// Why no COW file was made.
#[derive(Debug)]
pub enum MkcowError {
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    Exists(PathBuf),
    SameFile(PathBuf),
    PathTooLong(PathBuf),
}

impl fmt::Display for MkcowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MkcowError::Io { path, op, source } => write!(f, "{}: {op}: {source}", path.display()),
            MkcowError::Exists(p) => write!(
                f,
                "{}: File exists (use -f to replace it with a new COW file)",
                p.display()
            ),
            MkcowError::SameFile(p) => write!(
                f,
                "{}: the COW file and the backing file are the same file",
                p.display()
            ),
            MkcowError::PathTooLong(p) => write!(
                f,
                "{}: backing file path longer than the {} bytes a COW header holds",
                p.display(),
                CowHeader::max_path_len(CowVersion::V3)
            ),
        }
    }
}

impl std::error::Error for MkcowError {}

fn io_err(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> MkcowError {
    let path = path.to_owned();
    move |source| MkcowError::Io { path, op, source }
}

/// Creates the COW file and returns its header.
pub fn make_cow(req: &MkcowRequest) -> Result<CowHeader, MkcowError> {
    let NewCow {
        header,
        backing,
        backing_path: _,
    } = NewCow::over(&req.backing).map_err(|e| match e {
        NewCowError::PathTooLong(p) => MkcowError::PathTooLong(p),
        NewCowError::Io {
            op: "stat", source, ..
        } => io_err(&req.backing, "stat")(source),
        NewCowError::Io { source, .. } => io_err(&req.backing, "open")(source),
    })?;
    match std::fs::symlink_metadata(&req.cow) {
        Ok(_) if !req.force => return Err(MkcowError::Exists(req.cow.clone())),
        _ => {}
    }
    if let Ok(cow_meta) = std::fs::metadata(&req.cow) {
        let back_meta = backing.metadata().map_err(io_err(&req.backing, "stat"))?;
        if (cow_meta.dev(), cow_meta.ino()) == (back_meta.dev(), back_meta.ino()) {
            return Err(MkcowError::SameFile(req.cow.clone()));
        }
    }

    let dir = parent_dir(&req.cow);
    let tmp = tempfile::Builder::new()
        .prefix(".uml_mkcow.")
        .tempfile_in(dir)
        .map_err(io_err(&req.cow, "create"))?;
    write_new_cow(tmp.as_file(), &header).map_err(io_err(&req.cow, "write"))?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(new_file_mode()))
        .map_err(io_err(&req.cow, "chmod"))?;
    tmp.as_file()
        .sync_all()
        .map_err(io_err(&req.cow, "fsync"))?;
    if req.force {
        tmp.persist(&req.cow)
            .map_err(|e| io_err(&req.cow, "rename")(e.error))?;
    } else {
        tmp.persist_noclobber(&req.cow).map_err(|e| {
            if e.error.kind() == io::ErrorKind::AlreadyExists {
                MkcowError::Exists(req.cow.clone())
            } else {
                io_err(&req.cow, "create")(e.error)
            }
        })?;
    }
    let _ = sync_parent_dir(&req.cow);
    Ok(header)
}
