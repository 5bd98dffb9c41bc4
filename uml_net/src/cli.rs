//! uml_net's command line, for people and for the documentation: the helper protocol
//! is parsed by hand (uml_proto::helper) so that the setuid binary stays small, and
//! only `--help` and `--version` are options. The help text lives here once; main
//! prints it and, with the `doc` feature, `command()` turns it into the clap
//! definition man pages and completions are generated from.

use uml_proto::helper::VERSION;

/// The one-line summary.
pub const ABOUT: &str =
    "The setuid helper linux.uml runs to make a tap device and route its addresses";

/// The body of `--help` (and of the man page's description).
pub const DESCRIPTION: &str = "\
The helper linux.uml runs (setuid root) for eth<n>=tuntap,,,GATE: it makes a tap
device owned by the caller, gives it GATE and sends its fd back on fd 1, and
adds or removes host routes and proxy ARP entries for the guest's addresses.
It is not meant to be run by hand. Install with scripts/install, which makes it
setuid root, group uml-net, mode 4754: members of uml-net may run it.

A member may claim a private address that no route covers (host-only, e.g. gate
192.168.0.254, guest 192.168.0.253) or a free address on a LAN the host is on
(probed with ARP, then published with proxy ARP); never a host address, a
gateway, a network or broadcast address. Public addresses and subnets routed
elsewhere need /etc/uml-utilities/uml_net.conf (owned by root, writable by no
one else), with lines 'allow ADDRESS/PREFIXLEN'. Its routes and proxy entries
carry 'proto 77'; del removes only those.";

/// The synopsis, with the protocol version the kernel passes first.
pub fn usage() -> String {
    let v = VERSION;
    format!("uml_net {v} tuntap up GATE | {v} add|del DEV ADDR NETMASK")
}

/// What `uml_net --help` prints.
pub fn help_text() -> String {
    format!("Usage: {}\n\n{DESCRIPTION}\n", usage())
}

/// What `uml_net --version` prints.
pub fn version_text() -> String {
    format!("uml_net {}\n", env!("CARGO_PKG_VERSION"))
}

/// The clap definition used only for man pages and completions (the program itself
/// never builds it).
#[cfg(feature = "doc")]
pub fn command() -> clap::Command {
    clap::Command::new("uml_net")
        .version(env!("CARGO_PKG_VERSION"))
        .about(ABOUT)
        .long_about(DESCRIPTION)
        .override_usage(usage())
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(
            clap::Arg::new("help")
                .long("help")
                .action(clap::ArgAction::Help)
                .help("Print this help"),
        )
        .arg(
            clap::Arg::new("version")
                .long("version")
                .action(clap::ArgAction::Version)
                .help("Print the version"),
        )
        .arg(
            clap::Arg::new("request")
                .value_name("VERSION TRANSPORT ARGS")
                .num_args(0..)
                .help("The request linux.uml sends (see the synopsis)"),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_names_the_protocol_version_and_the_group() {
        let help = help_text();
        assert!(help.starts_with(&format!("Usage: uml_net {VERSION} tuntap up GATE")));
        assert!(help.contains("group uml-net"));
    }

    #[cfg(feature = "doc")]
    #[test]
    fn command_renders_the_same_description() {
        let mut cmd = command();
        let long = cmd.render_long_help().to_string();
        assert!(long.contains("sends its fd back on fd 1"));
    }
}
