//! `jailtest [--host-path PATH]...`: runs every probe, prints one line each, exits 1 if
//! any is BAD.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use jailtest::cli::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    let probes = jailtest::all(&args);
    let mut out = std::io::stdout().lock();
    for p in &probes {
        let _ = writeln!(out, "{}", p.line);
    }
    let _ = out.flush();
    if probes.iter().all(|p| p.good) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
