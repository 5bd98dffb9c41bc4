//! `port-helper [-uml-socket PATH]`: command line and error reporting.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use port_helper::cli::Args;
use port_helper::helper::{hand_over_terminal, Channel};

/// The arguments clap should see: the legacy `-uml-socket` spelled GNU style, and
/// nothing at all when the first argument is not ours (a telnet server's login
/// arguments, which the port channel's helper ignores).
fn arguments_for_clap(argv: Vec<OsString>) -> Vec<OsString> {
    let mut argv = argv.into_iter();
    let program = argv.next().unwrap_or_else(|| "port-helper".into());
    let rest: Vec<OsString> = argv.collect();
    let ours = ["-uml-socket", "--uml-socket", "--help", "--version"];
    match rest.first().and_then(|a| a.to_str()) {
        Some(first) if ours.contains(&first) || first.starts_with("--uml-socket=") => {
            let mut out = vec![program];
            out.extend(rest.into_iter().map(|a| {
                if a == "-uml-socket" {
                    "--uml-socket".into()
                } else {
                    a
                }
            }));
            out
        }
        _ => vec![program],
    }
}

fn main() -> ExitCode {
    let args = Args::parse_from(arguments_for_clap(std::env::args_os().collect()));
    let channel = match args.uml_socket {
        Some(path) => Channel::Socket(path),
        None => Channel::Inherited,
    };
    // SAFETY: installing SIG_IGN for SIGHUP touches no Rust state. The kernel hangs up
    // the terminal's session when we detach; we must survive that.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    match hand_over_terminal(&channel) {
        Ok(detach_problem) => {
            if let Some(e) = detach_problem {
                // After the hand-over: stderr may be the very terminal that just went
                // to the kernel, or closed; the message must not panic.
                uml_proto::quiet_eprintln!("port-helper: TIOCNOTTY on standard input failed (is it the terminal the kernel should get?): {e}");
            }
        }
        Err(e) => {
            uml_proto::quiet_eprintln!("port-helper: {e}");
            return ExitCode::FAILURE;
        }
    }
    loop {
        // The kernel kills us when it closes the console.
        nix::unistd::pause();
    }
}
