//! `uml_moo [-b BACKING] [-d] COW [NEW]` and `uml_moo --info COW`: command line and
//! error reporting.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use uml_moo::cli::Args;
use uml_moo::{inspect, merge, MergeRequest, Target};

fn usage_error(msg: &str) -> ExitCode {
    let mut cmd = Args::command();
    cmd.error(clap::error::ErrorKind::MissingRequiredArgument, msg)
        .exit()
}

fn main() -> ExitCode {
    let args = Args::parse();
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
