//! The command line of `tunctl`: shared by the program and the man page
//! and completion generator.

use std::path::PathBuf;

use uml_proto::tap::DEFAULT_CLONE_DEVICE;

use clap::{CommandFactory, Parser};

/// Create a persistent TAP (or TUN) interface that a user or group may open, or delete
/// one.
///
/// The same invocation gives the classic tunctl's output and exit status, so
/// `TAP=$(tunctl -b -u USER)` and rc scripts that run on every boot work: an existing
/// device is re-owned, and deleting a missing one reports success (a note on stderr says
/// so). Additions: -n makes a TUN device; --strict refuses to re-own an existing device
/// (unless --reuse) and fails on -d of a missing one.
#[derive(Parser, Debug)]
#[command(name = "tunctl", version)]
pub struct Args {
    /// Brief output: print only the device name
    #[arg(short = 'b', long = "brief")]
    pub brief: bool,
    /// Delete (make nonpersistent) DEVICE
    #[arg(short = 'd', long = "delete", value_name = "DEVICE")]
    pub delete: Option<String>,
    /// The tun clone device
    #[arg(short = 'f', long = "clone-device", value_name = "PATH", default_value = DEFAULT_CLONE_DEVICE)]
    pub clone_device: PathBuf,
    /// Device name, or a template such as tap%d (default: the kernel picks tapN)
    #[arg(short = 't', long = "name", value_name = "NAME")]
    pub name: Option<String>,
    /// Owner (user name or uid); default the effective uid when no group is given
    #[arg(
        short = 'u',
        long = "user",
        value_name = "OWNER",
        allow_hyphen_values = true
    )]
    pub user: Option<String>,
    /// Group (group name or gid) whose members may use the device
    #[arg(
        short = 'g',
        long = "group",
        value_name = "GROUP",
        allow_hyphen_values = true
    )]
    pub group: Option<String>,
    /// Make a TUN (layer 3) device instead of a TAP
    #[arg(short = 'n', long = "tun")]
    pub tun: bool,
    /// Fail instead of re-owning a device that already exists (unless --reuse), and on
    /// -d of a device that does not exist
    #[arg(long = "strict")]
    pub strict: bool,
    /// With --strict: allow re-owning a device that already exists (the default without
    /// --strict)
    #[arg(long = "reuse")]
    pub reuse: bool,
}

/// The command-line definition (for --help, man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}
