//! Everything that can stop a merge, each naming the file it concerns.

use std::fmt;
use std::io;
use std::path::PathBuf;

use uml_proto::cow::{BackingMismatch, CowFileError, LockError};

#[derive(Debug)]
pub enum MooError {
    /// The COW file cannot be opened or is not a valid COW file.
    Cow(CowFileError),
    /// An I/O call on `path` failed.
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// The backing file does not match the COW header.
    Mismatch {
        backing: PathBuf,
        source: BackingMismatch,
    },
    /// The output would overwrite one of the inputs.
    OutputIsInput { output: PathBuf, input: PathBuf },
    /// A UML (or another merge) has the file locked.
    Locked { path: PathBuf, source: LockError },
    /// A resume journal that does not belong to this merge.
    ForeignJournal { path: PathBuf },
    /// The backing file does not match because an interrupted `-d` left it half merged.
    PendingJournal { cow: PathBuf, journal: PathBuf },
    /// The backing file the header names is not there (`-b` gives its new place).
    BackingMissing { path: PathBuf, source: io::Error },
    /// The COW file's owner could not read (or, for `-d`, write) the backing file its
    /// header names.
    NotOwnersBacking {
        path: PathBuf,
        uid: u32,
        write: bool,
        source: io::Error,
    },
}

impl MooError {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        op: &'static str,
    ) -> impl FnOnce(io::Error) -> MooError {
        let path = path.into();
        move |source| MooError::Io { path, op, source }
    }
}

impl fmt::Display for MooError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MooError::Cow(e) => e.fmt(f),
            MooError::Io { path, op, source } => write!(f, "{}: {op}: {source}", path.display()),
            MooError::Mismatch { backing, source } => {
                write!(f, "{source} \"{}\"", backing.display())
            }
            MooError::OutputIsInput { output, input } => write!(
                f,
                "{}: refusing to write the merged image over {}",
                output.display(),
                input.display()
            ),
            MooError::Locked { path, source } => write!(
                f,
                "{}: in use ({source}); is a UML running on it?",
                path.display()
            ),
            MooError::ForeignJournal { path } => write!(
                f,
                "{}: journal of an interrupted merge of another COW or backing file; \
                 finish that merge or remove the journal",
                path.display()
            ),
            MooError::PendingJournal { cow, journal } => write!(
                f,
                "{}: an interrupted `uml_moo -d` left {} and a half-merged backing file; \
                 run `uml_moo -d {}` again to finish it",
                cow.display(),
                journal.display(),
                cow.display()
            ),
            MooError::BackingMissing { path, source } => write!(
                f,
                "{}: open: {source}; if the backing file moved, give its new path with -b BACKING",
                path.display()
            ),
            MooError::NotOwnersBacking {
                path,
                uid,
                write,
                source,
            } => write!(
                f,
                "{}: refused: the COW file's owner (uid {uid}) may not {} this backing file \
                 ({}); name it with -b BACKING if you mean to merge into it",
                path.display(),
                if *write { "write" } else { "read" },
                uml_proto::tap::strerror(source),
            ),
        }
    }
}

impl std::error::Error for MooError {}

impl From<CowFileError> for MooError {
    fn from(e: CowFileError) -> Self {
        MooError::Cow(e)
    }
}
