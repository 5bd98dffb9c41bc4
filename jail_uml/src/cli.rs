//! The command line of `jail_uml`: the C tool's positional arguments plus GNU options,
//! shared by the program and docgen.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, Parser};

/// Run a User-Mode Linux kernel in a chroot jail as an unprivileged user.
///
/// As the C tool: chroot into JAIL-DIR, become USER (a name, or else a numeric uid), and
/// execute UML-COMMAND-LINE (its first word a path inside the jail; the environment
/// is passed on unchanged). If the user is not found, it's assumed to be a uid (with
/// its passwd entry's group, or gid 99 as the C tool when it has none).
///
/// Besides: supplementary groups are dropped (the C tool kept the user's), no_new_privs
/// is set (no setuid program inside the jail gains privileges), uid 0 is refused, and
/// JAIL-DIR must be a real path (no symbolic links; it is walked by descriptor and the
/// checked directory is the one entered) owned by root and writable by nobody else.
/// --namespaces gives the UML its own mount, PID, IPC and UTS namespaces: it runs as
/// pid 1 of its namespace under a small supervisor that passes signals on and exits
/// with its status.
#[derive(Parser, Debug)]
#[command(name = "jail_uml", version, verbatim_doc_comment)]
pub struct Args {
    /// Give the UML its own mount, PID, IPC and UTS namespaces
    #[arg(short = 'n', long)]
    pub namespaces: bool,
    /// The jail: root-owned, not writable by group or others
    #[arg(value_name = "JAIL-DIR")]
    pub jail: PathBuf,
    /// The user to run as: a user name, or a numeric uid
    #[arg(value_name = "USER|UID")]
    pub user: String,
    /// The UML's command line; its program is a path inside the jail
    #[arg(value_name = "UML-COMMAND-LINE", required = true, num_args = 1..,
          trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

/// The command-line definition (for --help, man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_keeps_its_own_options() {
        let a = Args::try_parse_from(["j", "/jail", "nobody", "/linux", "-x", "--help", "mem=48M"])
            .unwrap();
        assert_eq!(a.command, ["/linux", "-x", "--help", "mem=48M"]);
        assert!(!a.namespaces);
        let a = Args::try_parse_from(["j", "--namespaces", "/jail", "1000", "/linux"]).unwrap();
        assert!(a.namespaces);
        assert!(Args::try_parse_from(["j", "/jail", "nobody"]).is_err());
        assert!(Args::try_parse_from(["j"]).is_err());
    }
}
