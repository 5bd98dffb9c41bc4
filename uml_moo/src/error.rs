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
        }
    }
}

impl std::error::Error for MooError {}

impl From<CowFileError> for MooError {
    fn from(e: CowFileError) -> Self {
        MooError::Cow(e)
    }
}
