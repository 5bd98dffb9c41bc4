//! The command line of `humfsify`: shared by the program and the man page
//! and completion generator.

use clap::{CommandFactory, Parser};

/// Turn data/ into a humfs tree for UML, or back (-r).
///
/// Run in the directory that holds data/. Records each node's mode, owner and device
/// numbers in file_metadata/ and dir_metadata/ (one line per node), writes superblock
/// (version 2, metadata shadow_fs, used, total), then gives data/ to USER:GROUP with
/// mode 0755. SIZE is in bytes, with an optional K, M or G suffix. `-r` puts the
/// recorded modes, owners and device nodes back and removes the metadata.
///
/// Differences from the Perl humfsify: no shell is ever run, so names with spaces,
/// quotes, newlines or shell metacharacters are safe; setuid, setgid and sticky bits
/// are recorded and restored; device numbers use the real major/minor split (above
/// 255 too); hard links are counted once and hard-linked device nodes stay linked on
/// -r; -r restores directory modes; every check (data/, user, group, size, an old
/// superblock, earlier metadata) happens before anything changes, and a failure leaves
/// the tree as it was; errors go to stderr and exit 1, also when -r could not restore
/// everything.
#[derive(Parser, Debug)]
#[command(
    name = "humfsify",
    version,
    override_usage = "humfsify USER GROUP SIZE\n       humfsify -r"
)]
pub struct Args {
    /// Revert: restore data/ from the metadata and remove it
    #[arg(short = 'r', long = "revert", conflicts_with_all = ["user", "group", "size"])]
    pub revert: bool,
    /// Owner for data/ (name or uid)
    #[arg(required_unless_present = "revert")]
    pub user: Option<String>,
    /// Group for data/ (name or gid)
    #[arg(required_unless_present = "revert")]
    pub group: Option<String>,
    /// File-system size: bytes, or a number with K, M or G
    #[arg(required_unless_present = "revert")]
    pub size: Option<String>,
}

/// The command-line definition (for --help, man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}
