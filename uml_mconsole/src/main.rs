//! `uml_mconsole NAME [COMMAND ...]` and `uml_mconsole --notify SOCKET`: command line,
//! choice of mode (one-shot, interactive, stdin script, notify) and error reporting.
//!
//! A one-shot run lasts about a millisecond, a tenth of which was the Rust runtime's
//! own start-up (probing the main stack through /proc/self/maps, installing signal
//! handlers); so the entry point is a plain C `main` that calls `run` and leaves
//! through `std::process::exit`, which flushes stdout as a normal return would.
#![no_main]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use uml_mconsole::cli::Args;
use uml_mconsole::interactive::{self, Completion};
use uml_mconsole::{notify, render, Session, Settings};
use uml_proto::mconsole::Timeouts;
use uml_proto::umid;

const SUCCESS: i32 = 0;
const FAILURE: i32 = 1;

fn usage_error(msg: &str) -> i32 {
    Args::command()
        .error(clap::error::ErrorKind::InvalidValue, msg)
        .exit()
}

fn fail(msg: impl std::fmt::Display) -> i32 {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "uml_mconsole: {msg}");
    FAILURE
}

fn status(ok: bool) -> i32 {
    if ok {
        SUCCESS
    } else {
        FAILURE
    }
}

/// `NAME COMMAND...` with no option before the command: what clap would make of it,
/// without building the whole parser (a one-shot client's start-up time counts).
fn plain_one_shot() -> Option<Args> {
    let mut argv = std::env::args_os().skip(1);
    let name = argv.next()?.into_string().ok()?;
    let first = argv.next()?.into_string().ok()?;
    if name.starts_with('-') || first.starts_with('-') {
        return None;
    }
    let mut command = vec![first];
    for a in argv {
        command.push(a.into_string().ok()?);
    }
    Some(Args {
        uml_dir: None,
        timeout: None,
        json: false,
        notify: None,
        once: false,
        name: Some(name),
        command,
    })
}

/// The process entry point (see the module comment). std::env::args works without
/// the runtime's start-up: glibc hands argv to the standard library's initializer.
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    std::process::exit(run())
}

fn run() -> i32 {
    let args = plain_one_shot().unwrap_or_else(Args::parse);
    let timeout = match args.timeout {
        Some(t) if !(t.is_finite() && t > 0.0 && t < 1e9) => {
            return usage_error("--timeout takes a positive number of seconds")
        }
        t => t.map(Duration::from_secs_f64),
    };
    if args.once && args.notify.is_none() {
        return usage_error("--once goes with --notify SOCKET");
    }
    if let Some(path) = &args.notify {
        return listen(path, args.once, args.json, timeout);
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => return fail(format!("current directory: {e}")),
    };
    let settings = Settings {
        home: home.clone(),
        uml_dir: args.uml_dir.clone(),
        timeouts: Timeouts::new(timeout.unwrap_or(Duration::from_secs(10))),
        cwd,
    };
    let name = args.name.expect("clap requires NAME without --notify");
    let mut session = Session::new(&name, settings);
    if !args.command.is_empty() {
        let outcome = session.execute(&args.command.join(" "));
        if let Err(e) = render::print(&outcome, args.json) {
            return fail(format!("stdout: {e}"));
        }
        return status(outcome.ok());
    }
    if std::io::stdin().is_terminal() {
        let mut uml_dirs: Vec<PathBuf> = args.uml_dir.into_iter().collect();
        uml_dirs.extend(home.as_deref().map(umid::default_uml_dir));
        uml_dirs.push(PathBuf::from(umid::TMP_UML_DIR));
        let history = interactive::history_path(home.as_deref());
        return match interactive::run(&mut session, Completion { uml_dirs }, history, args.json) {
            Ok(()) => SUCCESS,
            Err(e) => fail(e),
        };
    }
    match interactive::run_script(&mut session, std::io::stdin().lock(), args.json) {
        Ok(all_ok) => status(all_ok),
        Err(e) => fail(e),
    }
}

fn listen(path: &std::path::Path, once: bool, json: bool, wait: Option<Duration>) -> i32 {
    let listener = match notify::bind(path) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    match listener.run(once, json, wait, &mut std::io::stdout().lock()) {
        Ok(()) => SUCCESS,
        Err(e) => fail(e),
    }
}
