//! `port-helper [-uml-socket PATH]`: command line and error reporting.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use port_helper::helper::{hand_over_terminal, Channel};

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
struct Args {
    /// Connect to the kernel's socket at PATH (xterm channel) instead of using fd 3
    #[arg(long = "uml-socket", value_name = "PATH")]
    uml_socket: Option<PathBuf>,
}

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
                eprintln!("port-helper: TIOCNOTTY on standard input failed (is it the terminal the kernel should get?): {e}");
            }
        }
        Err(e) => {
            eprintln!("port-helper: {e}");
            return ExitCode::FAILURE;
        }
    }
    loop {
        // The kernel kills us when it closes the console.
        nix::unistd::pause();
    }
}
