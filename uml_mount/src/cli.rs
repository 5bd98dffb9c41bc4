//! The command line of `uml_mount`: UMID MOUNTPOINT and the FUSE options the C tool
//! took (`-o OPTIONS`; -d, -f and -s are accepted and mean nothing here), shared by the
//! program and docgen.

use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, Parser};

/// Mount a running UML's filesystem on the host over FUSE.
///
/// As the C tool: open a FUSE mount on MOUNTPOINT, then run `uml_mconsole UMID umlfs FD`
/// (uml_mconsole from PATH), which sends the /dev/fuse descriptor to the UML over its
/// mconsole socket; the UML then serves its filesystem through it. uml_mconsole's
/// OK/ERR line is printed as it comes.
///
/// Unlike the C tool, UMID is checked before anything is mounted, and when the UML does
/// not take the connection (an ERR answer, no answer within the timeout, no
/// uml_mconsole) the mount is taken down again and uml_mount exits 1: no dead mount is
/// left behind. Mounting needs root (the C tool used fusermount, which Debian no longer
/// installs by default).
#[derive(Parser, Debug)]
#[command(name = "uml_mount", version, verbatim_doc_comment)]
pub struct Args {
    /// The UML: a umid (~/.uml/UMID, then /tmp/uml/UMID) or its mconsole socket's path
    #[arg(value_name = "UMID")]
    pub umid: String,
    /// Where to mount the UML's filesystem (an existing directory)
    #[arg(value_name = "MOUNTPOINT")]
    pub mountpoint: PathBuf,
    /// FUSE mount options (e.g. allow_other,default_permissions), comma-separated
    #[arg(short = 'o', value_name = "OPTIONS", action = ArgAction::Append)]
    pub options: Vec<String>,
    /// Look for UMID in DIR first (for UMLs started with uml_dir=DIR)
    #[arg(long = "uml-dir", value_name = "DIR")]
    pub uml_dir: Option<PathBuf>,
    /// The uml_mconsole program to run
    #[arg(long, value_name = "PROGRAM", default_value = "uml_mconsole")]
    pub mconsole: PathBuf,
    /// Seconds to wait for the UML's answer before unmounting
    #[arg(long, value_name = "SECS", default_value_t = 15)]
    pub timeout: u64,
    /// FUSE's debug, foreground and single-thread flags (ignored: the UML serves)
    #[arg(short = 'd', hide = true)]
    pub debug: bool,
    #[arg(short = 'f', hide = true)]
    pub foreground: bool,
    #[arg(short = 's', hide = true)]
    pub single: bool,
}

/// The command-line definition (for --help, man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuse_style_arguments() {
        let a = Args::try_parse_from(["m", "u1", "/mnt", "-o", "allow_other", "-f", "-o", "ro"])
            .unwrap();
        assert_eq!((a.umid.as_str(), a.options.len()), ("u1", 2));
        assert!(Args::try_parse_from(["m", "u1"]).is_err());
        assert!(Args::try_parse_from(["m"]).is_err());
    }
}
