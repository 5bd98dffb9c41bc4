//! The command line of `uml_watchdog`: the C tool's `-pid PID` / `-mconsole SOCKET`
//! (rewritten to GNU options before clap), shared by the program and docgen.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, Parser};

/// The host side of User-Mode Linux's hardware watchdog (the harddog driver).
///
/// linux.uml runs this program when a guest opens /dev/watchdog: its stdin is the
/// ping pipe (one byte per guest write or WDIOC_KEEPALIVE), and its first output byte
/// (a NUL) tells the kernel it started. When no ping arrives for the timeout (60 s,
/// as the C tool), it acts:
///
///   -pid PID          SIGINT to PID (linux.uml halts cleanly), again after 1 s, then
///                     SIGKILL after 1 s more while PID still lives;
///   -mconsole SOCKET  a "hang" notification to the UML's notify socket
///                     (mconsole=notify:SOCKET; `uml_mconsole --notify SOCKET` shows it).
///
/// Either way it says on stderr what it does (for -pid a line before the first signal
/// and one with the outcome) and exits 1. EOF on
/// stdin (the guest closed /dev/watchdog, or the UML is gone) ends it with status 0.
/// Under linux.uml, stderr is the kernel's end of the pipe, so the line is meant for
/// runs by hand and for wrappers.
#[derive(Parser, Debug)]
#[command(name = "uml_watchdog", version, verbatim_doc_comment)]
pub struct Args {
    /// The UML kernel's process to stop when the pings stop
    #[arg(long, value_name = "PID", required_unless_present = "mconsole")]
    pub pid: Option<i32>,
    /// The notify socket to send a hang notification to when the pings stop
    #[arg(long, value_name = "SOCKET", conflicts_with = "pid")]
    pub mconsole: Option<PathBuf>,
    /// Seconds without a ping before the watchdog fires
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub timeout: u32,
}

const LEGACY: [&str; 2] = ["-pid", "-mconsole"];

/// Turns the C tool's single-dash long options into GNU ones for clap.
pub fn rewrite_legacy(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    uml_proto::legacy_args::gnu_spelling(args, &LEGACY)
}

/// The command-line definition (for --help, man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(rewrite_legacy(args.iter().map(OsString::from)))
    }

    #[test]
    fn legacy_and_gnu_spellings() {
        assert_eq!(parse(&["w", "-pid", "42"]).unwrap().pid, Some(42));
        assert_eq!(parse(&["w", "--pid", "42"]).unwrap().timeout, 60);
        let m = parse(&["w", "-mconsole", "/s", "--timeout", "5"]).unwrap();
        assert_eq!((m.mconsole.unwrap(), m.timeout), (PathBuf::from("/s"), 5));
        assert!(parse(&["w"]).is_err());
        assert!(parse(&["w", "-pid", "1", "-mconsole", "/s"]).is_err());
        assert!(parse(&["w", "-pid", "x"]).is_err());
        assert!(parse(&["w", "-pid", "1", "--timeout", "0"]).is_err());
    }
}
