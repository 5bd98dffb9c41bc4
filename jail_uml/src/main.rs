//! `jail_uml [--namespaces] JAIL-DIR USER|UID UML-COMMAND-LINE...`: command line and
//! error reporting.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use jail_uml::cli::Args;
use jail_uml::{run, Error, Plan};

fn report(e: &Error) {
    let _ = writeln!(std::io::stderr(), "jail_uml: {e}");
}

fn main() -> ExitCode {
    let args = Args::parse();
    let plan = match Plan::new(&args.jail, &args.user, &args.command, args.namespaces) {
        Ok(plan) => plan,
        Err(e) => {
            report(&e);
            return ExitCode::FAILURE;
        }
    };
    match run(&plan, report) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}
