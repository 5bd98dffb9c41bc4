//! `uml-docgen OUTDIR | --layout | --packages`: command line and error reporting.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use docgen::{generate, programs};

/// Generate the man pages and shell completions of every program, or print where each
/// program is installed (for scripts/install).
#[derive(Parser, Debug)]
#[command(name = "uml-docgen", version)]
struct Args {
    /// Print one line per program: PACKAGE BUILT DEST MODE GROUP (tab-separated)
    #[arg(long, conflicts_with_all = ["packages", "outdir"])]
    layout: bool,
    /// Print the cargo packages that build the programs, one a line
    #[arg(long, conflicts_with = "outdir")]
    packages: bool,
    /// Write share/man/... and share/*completion* under OUTDIR (laid out as under PREFIX)
    #[arg(required_unless_present_any = ["layout", "packages"])]
    outdir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let all = programs::all();
    if args.layout {
        print!("{}", programs::layout_lines(&all));
        return ExitCode::SUCCESS;
    }
    if args.packages {
        for (package, _) in programs::PACKAGES {
            println!("{package}");
        }
        return ExitCode::SUCCESS;
    }
    let outdir = args.outdir.expect("clap requires OUTDIR");
    match generate::write_all(&all, &outdir) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uml-docgen: {e}");
            ExitCode::FAILURE
        }
    }
}
