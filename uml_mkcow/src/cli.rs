//! The command line of `uml_mkcow`: shared by the program and the man page
//! and completion generator.

use std::path::PathBuf;

use clap::{CommandFactory, Parser};

/// Create a UML copy-on-write (COW) file for a backing file.
///
/// The COW file gets the same V3 header linux.uml writes (sector size 512, alignment
/// 4096, the backing file's absolute path, size and mtime) and is sparse. Unlike the
/// original tool, -f replaces an existing COW file with an empty one (no stale sectors
/// survive), and a failed run leaves no file behind.
#[derive(Parser, Debug)]
#[command(name = "uml_mkcow", version)]
pub struct Args {
    /// Replace an existing COW file
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// The COW file to create
    pub cow: PathBuf,
    /// The backing file (disk image) it records changes to
    pub backing: PathBuf,
}

/// The command-line definition (for --help, man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}
