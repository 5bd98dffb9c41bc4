//! `uml-kernel [SWITCH...]`: parse the UML switches, boot, run until halt, and re-execute
//! on reboot (same process, same arguments, as linux.uml restarts in place).

use std::ffi::CString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use kernel::cmdline::{self, Invocation};
use kernel::{Exit, Kernel};

fn main() -> ExitCode {
    let start = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match cmdline::parse(&args) {
        Ok(Invocation::Boot(c)) => c,
        Ok(Invocation::Help) => {
            uml_proto::quiet_print!("{}", cmdline::help_text());
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Version) => {
            uml_proto::quiet_print!(
                "uml-kernel {} ({})\n",
                env!("CARGO_PKG_VERSION"),
                kernel::machine::RELEASE
            );
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::ShowConfig) => {
            uml_proto::quiet_print!("{}", cmdline::showconfig_text());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            uml_proto::quiet_eprintln!("uml-kernel: {e}");
            return ExitCode::FAILURE;
        }
    };
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let exit = match Kernel::boot(*config, home, start) {
        Ok(mut k) => k.run(),
        Err(e) => {
            uml_proto::quiet_eprintln!("uml-kernel: {e}");
            return ExitCode::FAILURE;
        }
    };
    match exit {
        Exit::Halt(code) => ExitCode::from(code as u8),
        Exit::Reboot => reexec(&args),
    }
}

/// Starts the kernel again in this process with the same arguments.
fn reexec(args: &[String]) -> ExitCode {
    let exe = CString::new("/proc/self/exe").expect("no NUL");
    let mut argv = vec![CString::new("uml-kernel").expect("no NUL")];
    for a in args {
        match CString::new(a.as_str()) {
            Ok(c) => argv.push(c),
            Err(_) => return ExitCode::FAILURE,
        }
    }
    let err = nix::unistd::execv(&exe, &argv).unwrap_err();
    uml_proto::quiet_eprintln!("uml-kernel: reboot: cannot re-execute: {err}");
    ExitCode::FAILURE
}
