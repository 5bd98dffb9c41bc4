//! `uml_mkcow [-f] COW BACKING`: command line and error reporting.

use std::process::ExitCode;

use clap::Parser;
use uml_mkcow::cli::Args;
use uml_mkcow::{make_cow, MkcowRequest};

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
