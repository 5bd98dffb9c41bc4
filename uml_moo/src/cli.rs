//! The command line of `uml_moo`: shared by the program and the man page
//! and completion generator.

use std::path::PathBuf;

use clap::{CommandFactory, Parser};

/// Merge a UML copy-on-write (COW) file with its backing file.
///
///   uml_moo [-b BACKING] COW NEW     write the merged disk to a new file NEW
///   uml_moo [-b BACKING] -d COW      merge into the backing file itself
///   uml_moo --info [--json] COW      show the header and how much is dirty
///
/// -b and -d may come in either order. NEW is written beside its final name and renamed
/// into place when complete. An interrupted -d can be finished by running the same
/// command again.
#[derive(Parser, Debug)]
#[command(name = "uml_moo", version, verbatim_doc_comment)]
pub struct Args {
    /// Merge destructively into the backing file
    #[arg(short = 'd', long = "destructive")]
    pub destructive: bool,
    /// The actual backing file, when it moved since the COW file was made
    #[arg(short = 'b', long = "backing", value_name = "BACKING")]
    pub backing: Option<PathBuf>,
    /// Print the COW header, the backing file check and the dirty sector count
    #[arg(long = "info", conflicts_with = "destructive")]
    pub info: bool,
    /// With --info: one JSON object for scripts
    #[arg(long = "json", requires = "info")]
    pub json: bool,
    /// No progress bar
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// The COW file
    pub cow: PathBuf,
    /// The new merged image (not with -d or --info)
    pub new: Option<PathBuf>,
}

/// The command-line definition (for --help, man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}
