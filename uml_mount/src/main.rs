//! `uml_mount UMID MOUNTPOINT [-o OPTIONS]`: command line and error reporting.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use uml_mount::cli::Args;
use uml_mount::{run, Request};

fn main() -> ExitCode {
    let args = Args::parse();
    let req = Request {
        umid: args.umid,
        mountpoint: args.mountpoint,
        options: args.options,
        uml_dir: args.uml_dir,
        home: std::env::var_os("HOME").map(Into::into),
        mconsole: args.mconsole,
        timeout: Duration::from_secs(args.timeout),
    };
    match run(&req) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "uml_mount: {e}");
            ExitCode::FAILURE
        }
    }
}
