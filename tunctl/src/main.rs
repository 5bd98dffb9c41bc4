//! `tunctl [-b] [-n] [-u owner] [-g group] [-t name] [-f clone]` / `tunctl -d name`:
//! command line and error reporting.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tunctl::{resolve_group, resolve_user, run, Action, Request};
use uml_proto::tap::{Kind, DEFAULT_CLONE_DEVICE};

/// Create a persistent TAP (or TUN) interface that a user or group may open, or delete
/// one.
///
/// Output and exit codes match the classic tunctl, so `TAP=$(tunctl -b -u USER)` works in
/// rc files. Differences: -n makes a TUN device; deleting a device that does not exist
/// is an error; creating one that exists is refused unless --reuse is given.
#[derive(Parser, Debug)]
#[command(name = "tunctl", version)]
struct Args {
    /// Brief output: print only the device name
    #[arg(short = 'b', long = "brief")]
    brief: bool,
    /// Delete (make nonpersistent) DEVICE
    #[arg(short = 'd', long = "delete", value_name = "DEVICE")]
    delete: Option<String>,
    /// The tun clone device
    #[arg(short = 'f', long = "clone-device", value_name = "PATH", default_value = DEFAULT_CLONE_DEVICE)]
    clone_device: PathBuf,
    /// Device name, or a template such as tap%d (default: the kernel picks tapN)
    #[arg(short = 't', long = "name", value_name = "NAME")]
    name: Option<String>,
    /// Owner (user name or uid); default the effective uid when no group is given
    #[arg(
        short = 'u',
        long = "user",
        value_name = "OWNER",
        allow_hyphen_values = true
    )]
    user: Option<String>,
    /// Group (group name or gid) whose members may use the device
    #[arg(
        short = 'g',
        long = "group",
        value_name = "GROUP",
        allow_hyphen_values = true
    )]
    group: Option<String>,
    /// Make a TUN (layer 3) device instead of a TAP
    #[arg(short = 'n', long = "tun")]
    tun: bool,
    /// Allow re-owning a device that already exists
    #[arg(long = "reuse")]
    reuse: bool,
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("tunctl: {msg}");
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
    };
    match run(&req) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}
