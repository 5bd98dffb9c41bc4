//! `uml_moo [-b BACKING] [-d] COW [NEW]` and `uml_moo --info COW`: command line and
//! error reporting.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use uml_moo::{inspect, merge, MergeRequest, Target};

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
struct Args {
    /// Merge destructively into the backing file
    #[arg(short = 'd', long = "destructive")]
    destructive: bool,
    /// The actual backing file, when it moved since the COW file was made
    #[arg(short = 'b', long = "backing", value_name = "BACKING")]
    backing: Option<PathBuf>,
    /// Print the COW header, the backing file check and the dirty sector count
    #[arg(long = "info", conflicts_with = "destructive")]
    info: bool,
    /// With --info: one JSON object for scripts
    #[arg(long = "json", requires = "info")]
    json: bool,
    /// No progress bar
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// The COW file
    cow: PathBuf,
    /// The new merged image (not with -d or --info)
    new: Option<PathBuf>,
}

fn usage_error(msg: &str) -> ExitCode {
    let mut cmd = Args::command();
    cmd.error(clap::error::ErrorKind::MissingRequiredArgument, msg)
        .exit()
}

fn main() -> ExitCode {
    let args = Args::parse();
    uml_moo::mapped::install_sigbus_exit(
        b"uml_moo: an input file shrank during the merge; nothing complete was written\n",
    );
    if args.info {
        if args.new.is_some() {
            return usage_error("--info takes only the COW file");
        }
        return match inspect(&args.cow, args.backing.as_deref()) {
            Ok(info) => {
                if args.json {
                    println!("{}", info.to_json());
                } else {
                    print!("{}", info.to_text());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("uml_moo: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let target = match (args.destructive, args.new) {
        (true, None) => Target::InPlace,
        (true, Some(_)) => return usage_error("-d merges into the backing file: give no NEW file"),
        (false, Some(new)) => Target::NewFile(new),
        (false, None) => return usage_error("the new file to write is missing (or use -d)"),
    };
    let req = MergeRequest {
        cow: args.cow,
        backing: args.backing,
        target,
        progress: !args.quiet,
    };
    match merge(&req) {
        Ok(report) => {
            if report.resumed {
                eprintln!("uml_moo: finished an interrupted merge");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("uml_moo: {e}");
            ExitCode::FAILURE
        }
    }
}
