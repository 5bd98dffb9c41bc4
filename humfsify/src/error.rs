//! Everything humfsify can fail on, each naming the file or argument involved.

use std::fmt;
use std::io;
use std::path::PathBuf;

use uml_proto::humfs::HumfsError;

#[derive(Debug)]
pub enum HumfsifyError {
    /// The directory has no data/ subdirectory.
    NoData(PathBuf),
    UnknownUser(String),
    UnknownGroup(String),
    BadSize(String),
    /// The data already uses more than the requested size.
    TooSmall {
        used: u64,
        total: u64,
    },
    /// file_metadata/ or dir_metadata/ is already there.
    AlreadyHumfsified(PathBuf),
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    Superblock {
        path: PathBuf,
        source: HumfsError,
    },
    Metadata {
        path: PathBuf,
        source: HumfsError,
    },
    /// A metadata file whose data file is gone.
    MissingData {
        metadata: PathBuf,
        data: PathBuf,
    },
    /// A directory named `metadata`: its dir_metadata/ entry would collide with its
    /// parent's metadata file (a limit of the humfs layout).
    Unrepresentable(PathBuf),
    /// `-r` could not restore some files; each is listed.
    RevertProblems(Vec<String>),
}

impl HumfsifyError {
    pub fn io(path: impl Into<PathBuf>, op: &'static str) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| HumfsifyError::Io { path, op, source }
    }
}

impl fmt::Display for HumfsifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HumfsifyError::NoData(dir) => write!(
                f,
                "no data/ directory in '{}' (run humfsify in the directory that holds data/)",
                dir.display()
            ),
            HumfsifyError::UnknownUser(u) => write!(f, "user '{u}' not found in the password file"),
            HumfsifyError::UnknownGroup(g) => write!(f, "group '{g}' not found in the group file"),
            HumfsifyError::BadSize(s) => write!(
                f,
                "bad file-system size '{s}' (a number of bytes, optionally followed by K, M or G)"
            ),
            HumfsifyError::TooSmall { used, total } => write!(
                f,
                "data/ already uses {used} bytes, more than the requested size of {total}"
            ),
            HumfsifyError::AlreadyHumfsified(p) => write!(
                f,
                "'{}' already exists: this tree looks humfsified already (run humfsify -r first)",
                p.display()
            ),
            HumfsifyError::Io { path, op, source } => {
                write!(f, "{}: {op}: {source}", path.display())
            }
            HumfsifyError::Superblock { path, source } => {
                write!(f, "bad superblock '{}': {source}", path.display())
            }
            HumfsifyError::Metadata { path, source } => {
                write!(f, "bad metadata file '{}': {source}", path.display())
            }
            HumfsifyError::MissingData { metadata, data } => write!(
                f,
                "'{}' has no data file '{}'",
                metadata.display(),
                data.display()
            ),
            HumfsifyError::Unrepresentable(p) => write!(
                f,
                "'{}': humfs cannot hold a directory named 'metadata' (it would collide with \
                 its parent's dir_metadata entry); rename it first",
                p.display()
            ),
            HumfsifyError::RevertProblems(p) => write!(
                f,
                "{} file(s) could not be restored; the metadata directories are kept:\n  {}",
                p.len(),
                p.join("\n  ")
            ),
        }
    }
}

impl std::error::Error for HumfsifyError {}

pub type Result<T> = std::result::Result<T, HumfsifyError>;
