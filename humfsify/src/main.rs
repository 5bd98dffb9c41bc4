//! `humfsify [-r] USER GROUP SIZE`: command line and error reporting.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use humfsify::forward::{humfsify, Request};
use humfsify::owner::{resolve_group, resolve_user};
use humfsify::progress::bar;
use humfsify::revert::revert;
use humfsify::size::parse_size;
use humfsify::HumfsifyError;

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
struct Args {
    /// Revert: restore data/ from the metadata and remove it
    #[arg(short = 'r', long = "revert", conflicts_with_all = ["user", "group", "size"])]
    revert: bool,
    /// Owner for data/ (name or uid)
    #[arg(required_unless_present = "revert")]
    user: Option<String>,
    /// Group for data/ (name or gid)
    #[arg(required_unless_present = "revert")]
    group: Option<String>,
    /// File-system size: bytes, or a number with K, M or G
    #[arg(required_unless_present = "revert")]
    size: Option<String>,
}

fn run(args: Args) -> Result<(), HumfsifyError> {
    let top = Path::new(".");
    if args.revert {
        revert(top, &bar(0, "restoring"))?;
        return Ok(());
    }
    let (user, group, size) = (
        args.user.unwrap_or_default(),
        args.group.unwrap_or_default(),
        args.size.unwrap_or_default(),
    );
    let req = Request {
        top: top.to_owned(),
        uid: resolve_user(&user)?,
        gid: resolve_group(&group)?,
        total: parse_size(&size)?,
    };
    humfsify(&req, &bar(0, "humfsifying"))?;
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("humfsify: {e}");
            ExitCode::FAILURE
        }
    }
}
