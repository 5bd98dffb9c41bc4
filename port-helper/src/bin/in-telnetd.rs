//! `in.telnetd -L LOGIN-PROGRAM`: command line and error reporting.

use std::process::ExitCode;

use clap::Parser;
use port_helper::cli::TelnetdArgs;

fn main() -> ExitCode {
    let args = TelnetdArgs::parse();
    match port_helper::telnetd::serve(&args.login) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            uml_proto::quiet_eprintln!("in.telnetd: {e}");
            ExitCode::FAILURE
        }
    }
}
