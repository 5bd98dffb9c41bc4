//! The command line of `uml_mconsole`: shared by the program and the man page
//! and completion generator.

use std::path::PathBuf;

use clap::{CommandFactory, Parser};

/// Drive a running User-Mode Linux through its management console (mconsole).
///
///   uml_mconsole NAME COMMAND...      send one command, print OK/ERR and the answer
///   uml_mconsole NAME                 interactive session (or commands from stdin)
///   uml_mconsole --notify SOCKET      print what a UML booted with
///                                     mconsole=notify:SOCKET reports
///
/// NAME is a umid (looked up as ~/.uml/NAME, then /tmp/uml/NAME) or the path of a
/// mconsole socket. Local commands: quit, help, switch NAME, log TEXT, log -f FILE,
/// mconsole-version, int (SIGINT to the UML), and `OTHER: COMMAND` for another UML.
/// Exit status: 0 when the kernel answered OK, 1 on ERR or any failure.
#[derive(Parser, Debug)]
#[command(name = "uml_mconsole", version, verbatim_doc_comment)]
pub struct Args {
    /// Look for UMLs in DIR first (for UMLs started with uml_dir=DIR)
    #[arg(long = "uml-dir", value_name = "DIR")]
    pub uml_dir: Option<PathBuf>,
    /// Seconds to wait for an answer [default: 10]; with --notify, for each
    /// notification [default: no limit]
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Print each command's result as one JSON object: {"ok":true,"output":"..."}
    #[arg(long)]
    pub json: bool,
    /// Create SOCKET and print each notification a UML sends to it
    #[arg(long, value_name = "SOCKET")]
    pub notify: Option<PathBuf>,
    /// With --notify: exit after the first notification
    #[arg(long, requires = "notify")]
    pub once: bool,
    /// The UML: a umid or the path of its mconsole socket
    #[arg(required_unless_present = "notify", conflicts_with = "notify")]
    pub name: Option<String>,
    /// The command to send (words joined by spaces); without it: interactive on a
    /// terminal, else one command per line from stdin
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// The command-line definition (for --help, man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}
