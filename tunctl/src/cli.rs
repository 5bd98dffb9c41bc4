//! The command line of `tunctl`: shared by the program and the man page
//! and completion generator.

use std::path::PathBuf;

use uml_proto::tap::DEFAULT_CLONE_DEVICE;

use clap::{CommandFactory, Parser};

/// Create a persistent TAP (or TUN) interface that a user or group may open, or delete
/// one.
///
/// Output and exit codes match the classic tunctl, so `TAP=$(tunctl -b -u USER)` works in
/// rc files. Differences: -n makes a TUN device; deleting a device that does not exist
/// is an error; creating one that exists is refused unless --reuse is given.
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
    /// Allow re-owning a device that already exists
    #[arg(long = "reuse")]
    pub reuse: bool,
}

/// The command-line definition (for --help, man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}
