//! The command lines of `port-helper` and `in.telnetd`: shared by the programs and the
//! man page / completion generator.

use std::path::PathBuf;

use clap::{CommandFactory, Parser};

/// Hand the terminal on standard input to a UML kernel's console.
///
/// The UML kernel runs this program; you do not. Its port channel (`con1=port:9000`)
/// runs `in.telnetd -L port-helper`, which leaves the kernel's socket on fd 3; its
/// xterm channel runs a terminal emulator with `port-helper -uml-socket PATH`. Either
/// way port-helper gives up its controlling terminal, sends fd 0 and its pid to the
/// kernel (SCM_RIGHTS) and waits until the kernel kills it. Unlike the C tool it fails
/// at once, saying why, when there is no socket to send to. Arguments a telnet server
/// adds for a login program (`-h HOST -p`, ...) are ignored.
#[derive(Parser, Debug)]
#[command(name = "port-helper", version)]
pub struct Args {
    /// Connect to the kernel's socket at PATH (xterm channel) instead of using fd 3
    #[arg(long = "uml-socket", value_name = "PATH")]
    pub uml_socket: Option<PathBuf>,
}

/// The command-line definition (for --help, man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}

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
pub struct TelnetdArgs {
    /// Program to run on the pseudo-terminal
    #[arg(short = 'L', long = "login", value_name = "LOGIN-PROGRAM")]
    pub login: PathBuf,
}

/// The command-line definition of `in.telnetd` (for --help, man pages and completions).
pub fn telnetd_command() -> clap::Command {
    TelnetdArgs::command()
}
