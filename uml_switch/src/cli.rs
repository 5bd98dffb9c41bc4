//! The command line of `uml_switch`: its clap definition with the C tool's single-dash
//! options, and the switch configuration it gives. Shared by the program and by the man
//! page and completion generator.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, Parser};

use crate::log::Level;
use crate::Config;
use uml_proto::overlay::spec::OverlaySpec;

/// A virtual Ethernet switch for User-Mode Linux's daemon network transport.
///
/// Boot UMLs with `eth0=daemon,,unix,CTL` (CTL being this switch's control socket) to
/// put them on one virtual LAN. Note that Debian's linux.uml, given just
/// `eth0=daemon`, looks for /var/run/uml-utilities/uml_switch.ctl, not /tmp/uml.ctl.
///
/// Stdin is watched only when it is a terminal: EOF there stops the switch. SIGINT,
/// SIGTERM and SIGHUP remove the control socket and stop it; SIGUSR1 prints the port
/// and MAC tables to stderr. The original single-dash options (-unix, -hub, -tap,
/// -compat-v0, -daemon) work as before.
#[derive(Parser, Debug)]
#[command(name = "uml_switch", version, verbatim_doc_comment)]
pub struct Args {
    /// Control socket (and, with -compat-v0, data socket) paths
    #[arg(long = "unix", value_name = "CTL [DATA]", num_args = 1..=2)]
    pub unix: Option<Vec<PathBuf>>,
    /// Be a hub: flood every frame to every other port
    #[arg(long)]
    pub hub: bool,
    /// Attach this tap device as one more port
    #[arg(long, value_name = "DEV")]
    pub tap: Option<String>,
    /// Serve protocol v0 clients: the data socket is a path (default /tmp/uml.data)
    #[arg(long = "compat-v0")]
    pub compat_v0: bool,
    /// Go to the background after the sockets are bound (working directory /)
    #[arg(long)]
    pub daemon: bool,
    /// Write every forwarded frame to FILE as pcap ("-": stdout)
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Reach other hosts through an overlay (repeatable). SPEC: vxlan:REMOTE[:PORT],vni=N with optional local=ADDR, group=MCAST; gre:REMOTE with optional key=K (or rx_key=K,tx_key=K), sequence=1; l2tpv3:REMOTE,rx_session=N,tx_session=N with optional udp=1, srcport=P, dstport=P, rx_cookie=C, tx_cookie=C, cookie64=1, counter=1 (linux.uml's vector option names)
    #[arg(long, value_name = "SPEC")]
    pub uplink: Vec<String>,
    /// Answer management commands (show, ports, macs, uplinks, help: one per line) with one JSON object per line on this unix socket
    #[arg(long, value_name = "SOCKET")]
    pub mgmt: Option<PathBuf>,
    /// Also serve VDE 2 clients (vde_plug, QEMU -netdev vde, linux.uml ethN=vde,DIR) on DIR/ctl, vde_switch's layout
    #[arg(long, value_name = "DIR")]
    pub vde: Option<PathBuf>,
    /// Messages on stderr from this level up
    #[arg(long = "log-level", value_enum, default_value = "info")]
    pub log_level: Level,
}

const LEGACY: [&str; 5] = ["-unix", "-hub", "-tap", "-compat-v0", "-daemon"];

/// Turns the C tool's single-dash long options into GNU ones for clap.
pub fn rewrite_legacy(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    uml_proto::legacy_args::gnu_spelling(args, &LEGACY)
}

/// The switch configuration the arguments ask for (paths as given).
pub fn config(args: &Args) -> Result<Config, clap::Error> {
    let unix = args.unix.clone().unwrap_or_default();
    if unix.len() == 2 && !args.compat_v0 {
        return Err(Args::command().error(
            clap::error::ErrorKind::TooManyValues,
            "a data socket after -unix CTL needs -compat-v0",
        ));
    }
    let control = unix
        .first()
        .cloned()
        .unwrap_or_else(|| PathBuf::from("/tmp/uml.ctl"));
    let compat_data = args.compat_v0.then(|| {
        unix.get(1)
            .cloned()
            .unwrap_or_else(|| PathBuf::from("/tmp/uml.data"))
    });
    let mut uplinks = Vec::new();
    for text in &args.uplink {
        let spec = OverlaySpec::parse(text).map_err(|e| {
            Args::command().error(
                clap::error::ErrorKind::ValueValidation,
                format!("--uplink {e}"),
            )
        })?;
        uplinks.push((text.clone(), spec));
    }
    Ok(Config {
        control,
        compat_data,
        hub: args.hub,
        tap: args.tap.clone(),
        daemon: args.daemon,
        pcap: args.pcap.clone(),
        uplinks,
        mgmt: args.mgmt.clone(),
        vde: args.vde.clone(),
    })
}

/// The command-line definition (for --help, man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}
