//! `in.telnetd -L LOGIN-PROGRAM`: command line and error reporting.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// A small telnet server for UML port consoles.
///
/// linux.uml's port channel (`con1=port:9000`) runs `in.telnetd -L port-helper` with
/// the client's TCP socket on fds 0-2, but current telnet servers lack `-L`. This one
/// runs LOGIN-PROGRAM (with no arguments) on a new pseudo-terminal that is its standard
/// input, output and controlling terminal, keeps every other inherited descriptor open
/// for it, and relays between the pty and the socket: option negotiation (ECHO and
/// SUPPRESS-GO-AHEAD offered, window size accepted, BINARY allowed, the rest refused),
/// IAC escaping, CR LF / CR NUL to CR. Install it as lib/uml/in.telnetd beside
/// port-helper: linux.uml appends that directory to PATH.
#[derive(Parser, Debug)]
#[command(name = "in.telnetd", version)]
struct Args {
    /// Program to run on the pseudo-terminal
    #[arg(short = 'L', long = "login", value_name = "LOGIN-PROGRAM")]
    login: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match port_helper::telnetd::serve(&args.login) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("in.telnetd: {e}");
            ExitCode::FAILURE
        }
    }
}
