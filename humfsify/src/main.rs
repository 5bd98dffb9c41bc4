//! `humfsify [-r] USER GROUP SIZE`: command line and error reporting.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use humfsify::cli::Args;
use humfsify::forward::{humfsify, Request};
use humfsify::owner::{resolve_group, resolve_user};
use humfsify::progress::bar;
use humfsify::revert::revert;
use humfsify::size::parse_size;
use humfsify::HumfsifyError;

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
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "humfsify: {e}");
            ExitCode::FAILURE
        }
    }
}
