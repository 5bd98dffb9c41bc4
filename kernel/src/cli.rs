//! uml-kernel's command line for the documentation. The switches are parsed by hand
//! (`cmdline`), as linux.uml parses them; with the `doc` feature, `command()` turns the
//! `--help` text into the clap definition that man pages and completions are made from,
//! so the text exists once and the kernel binary carries no clap.

use clap::{Arg, ArgAction};

use crate::cmdline::help_text;

/// The command-line definition (for man pages and completions).
pub fn command() -> clap::Command {
    let help = help_text();
    // The text is: the summary, the usage line, the switches; clap makes its own usage.
    let (about, rest) = help.split_once("\n\n").unwrap_or((help.as_str(), ""));
    let body = rest
        .split_once("\n\n")
        .map_or(rest, |(_usage, switches)| switches);
    clap::Command::new("uml-kernel")
        .version(env!("CARGO_PKG_VERSION"))
        .about(about.trim_start_matches("uml-kernel: ").to_owned())
        .long_about(body.to_owned())
        .override_usage("uml-kernel [SWITCH...]")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(
            Arg::new("help")
                .long("help")
                .action(ArgAction::Help)
                .help("Print help"),
        )
        .arg(
            Arg::new("version")
                .long("version")
                .action(ArgAction::Version)
                .help("Print version"),
        )
        .arg(
            Arg::new("showconfig")
                .long("showconfig")
                .action(ArgAction::SetTrue)
                .help("Print what this kernel was built with"),
        )
        .arg(
            Arg::new("switches")
                .value_name("SWITCH")
                .num_args(0..)
                .help("linux.uml command-line switches (NAME=VALUE), as listed above"),
        )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_definition_carries_the_help_text() {
        let cmd = super::command();
        cmd.clone().debug_assert();
        assert_eq!(cmd.get_name(), "uml-kernel");
        let long = cmd.get_long_about().unwrap().to_string();
        assert!(
            long.contains("ubd<N><FLAGS>=FILE[,BACKING[,SERIAL]]"),
            "{long}"
        );
    }
}
