//! `uml_watchdog -pid PID | -mconsole SOCKET`: command line and reporting.

use std::io::Write;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use uml_watchdog::cli::{rewrite_legacy, Args};
use uml_watchdog::{acknowledge, fire, watch, Error, Process, Target, Watch, GRACE};

/// One line on stderr; a closed stderr is no reason to stop.
fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "uml_watchdog: {msg}");
}

fn run(args: Args) -> Result<ExitCode, Error> {
    let timeout = Duration::from_secs(args.timeout.into());
    let target = match (args.pid, args.mconsole) {
        (Some(pid), _) => Target::Pid(Process::open(pid)?),
        (None, Some(path)) => Target::Mconsole(path),
        (None, None) => unreachable!("clap requires -pid or -mconsole"),
    };
    acknowledge(&mut std::io::stdout())?;
    let stdin = std::io::stdin();
    match watch(stdin.as_fd(), timeout)? {
        Watch::Closed => Ok(ExitCode::SUCCESS),
        Watch::Expired => {
            if let Some(line) = target.announce(timeout) {
                say(&line);
            }
            let action = fire(&target, timeout, GRACE)?;
            say(&action.describe(timeout));
            Ok(ExitCode::FAILURE)
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse_from(rewrite_legacy(std::env::args_os()));
    // (Rust ignores SIGPIPE: a parent that is gone gives EPIPE, an error we report.)
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            say(&e.to_string());
            ExitCode::FAILURE
        }
    }
}
