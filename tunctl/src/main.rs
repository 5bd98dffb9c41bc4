//! `tunctl [-b] [-n] [-u owner] [-g group] [-t name] [-f clone]` / `tunctl -d name`:
//! command line and error reporting.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use tunctl::cli::Args;
use tunctl::{resolve_group, resolve_user, run, Action, Request};
use uml_proto::tap::Kind;

fn fail(msg: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "tunctl: {msg}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let args = Args::parse();
    let owner = match args.user.as_deref().map(|u| (u, resolve_user(u))) {
        Some((u, None)) => return fail(&format!("'{u}' is neither a username nor a numeric uid.")),
        Some((_, id)) => id,
        None => None,
    };
    let group = match args.group.as_deref().map(|g| (g, resolve_group(g))) {
        Some((g, None)) => {
            return fail(&format!(
                "'{g}' is neither a groupname nor a numeric group."
            ))
        }
        Some((_, id)) => id,
        None => None,
    };
    let (action, name) = match args.delete {
        Some(dev) => (Action::Delete, dev),
        None => (
            Action::Create {
                owner,
                group,
                kind: if args.tun { Kind::Tun } else { Kind::Tap },
                reuse: args.reuse,
                brief: args.brief,
            },
            args.name.unwrap_or_default(),
        ),
    };
    let req = Request {
        action,
        name,
        clone_device: args.clone_device,
        strict: args.strict,
    };
    match run(&req) {
        Ok(done) => {
            // The device is made either way; like the C tool, a closed stdout does not
            // change the exit status.
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{}", done.stdout).and_then(|()| out.flush());
            if let Some(note) = done.note {
                let _ = writeln!(std::io::stderr(), "tunctl: note: {note}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}
