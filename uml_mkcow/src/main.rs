//! `uml_mkcow [-f] COW BACKING`: command line and error reporting.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use uml_mkcow::{make_cow, MkcowRequest};

/// Create a UML copy-on-write (COW) file for a backing file.
///
/// The COW file gets the same V3 header linux.uml writes (sector size 512, alignment
/// 4096, the backing file's absolute path, size and mtime) and is sparse. Unlike the
/// original tool, -f replaces an existing COW file with an empty one (no stale sectors
/// survive), and a failed run leaves no file behind.
#[derive(Parser, Debug)]
#[command(name = "uml_mkcow", version)]
struct Args {
    /// Replace an existing COW file
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// The COW file to create
    cow: PathBuf,
    /// The backing file (disk image) it records changes to
    backing: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let req = MkcowRequest {
        cow: args.cow,
        backing: args.backing,
        force: args.force,
    };
    match make_cow(&req) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uml_mkcow: {e}");
            ExitCode::FAILURE
        }
    }
}
