//! `uml_moo [-b BACKING] [-d] COW [NEW]` and `uml_moo --info COW`: command line and
//! error reporting.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use clap::{CommandFactory, Parser};
use uml_moo::cli::Args;
use uml_moo::{inspect, merge, summary, MergeRequest, Target};

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
                let text = if args.json {
                    format!("{}\n", info.to_json())
                } else {
                    info.to_text()
                };
                let mut out = std::io::stdout().lock();
                match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(_) => ExitCode::FAILURE,
                }
            }
            Err(e) => {
                say(&e.to_string());
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
    let started = Instant::now();
    match merge(&req) {
        Ok(report) => {
            if !args.quiet {
                say(&summary::line(
                    &req.cow,
                    &req.target,
                    &report,
                    started.elapsed(),
                ));
            } else if report.resumed {
                say("finished an interrupted merge");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            say(&e.to_string());
            ExitCode::FAILURE
        }
    }
}

/// One line on stderr; a closed stderr is no reason to fail.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "uml_moo: {line}");
}
