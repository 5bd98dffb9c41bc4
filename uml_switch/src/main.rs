//! `uml_switch [-unix CTL] [-hub] [-tap DEV] [-daemon]`, `uml_switch -compat-v0 [-unix
//! CTL DATA] ...`, plus `--pcap FILE|-` and `--log-level`: command line, start
//! messages and exit status.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use uml_switch::log::{set_level, Level};
use uml_switch::{Config, Exit, Switch};

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
struct Args {
    /// Control socket (and, with -compat-v0, data socket) paths
    #[arg(long = "unix", value_name = "CTL [DATA]", num_args = 1..=2)]
    unix: Option<Vec<PathBuf>>,
    /// Be a hub: flood every frame to every other port
    #[arg(long)]
    hub: bool,
    /// Attach this tap device as one more port
    #[arg(long, value_name = "DEV")]
    tap: Option<String>,
    /// Serve protocol v0 clients: the data socket is a path (default /tmp/uml.data)
    #[arg(long = "compat-v0")]
    compat_v0: bool,
    /// Go to the background after the sockets are bound (working directory /)
    #[arg(long)]
    daemon: bool,
    /// Write every forwarded frame to FILE as pcap ("-": stdout)
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Messages on stderr from this level up
    #[arg(long = "log-level", value_enum, default_value = "info")]
    log_level: Level,
}

const LEGACY: [&str; 5] = ["-unix", "-hub", "-tap", "-compat-v0", "-daemon"];

/// Turns the C tool's single-dash long options into GNU ones for clap.
fn rewrite_legacy(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    args.enumerate()
        .map(|(i, a)| match a.to_str() {
            Some(s) if i > 0 && LEGACY.contains(&s) => OsString::from(format!("-{s}")),
            _ => a,
        })
        .collect()
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_owned())
    }
}

fn config(args: &Args) -> Result<Config, clap::Error> {
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
    Ok(Config {
        control,
        compat_data,
        hub: args.hub,
        tap: args.tap.clone(),
        daemon: args.daemon,
        pcap: args.pcap.clone(),
    })
}

/// The C tool's start lines, naming the program as it was invoked (stdout, or stderr
/// when stdout carries pcap data).
fn start_message(prog: &str, cfg: &Config) -> String {
    let mut s = String::new();
    if cfg.compat_data.is_some() {
        s.push_str("Control protocol 0 compatibility\n");
    }
    if cfg.hub {
        s.push_str(&format!("{prog} will be a hub instead of a switch\n"));
    }
    match &cfg.compat_data {
        Some(d) => s.push_str(&format!(
            "{prog} attached to unix sockets '{}' and '{}'",
            cfg.control.display(),
            d.display()
        )),
        None => s.push_str(&format!(
            "{prog} attached to unix socket '{}'",
            cfg.control.display()
        )),
    }
    if let Some(t) = &cfg.tap {
        s.push_str(&format!(" tap device '{t}'"));
    }
    s.push('\n');
    s
}

fn main() -> ExitCode {
    let args = Args::parse_from(rewrite_legacy(std::env::args_os()));
    set_level(args.log_level);
    let shown = match config(&args) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let mut cfg = shown.clone();
    cfg.control = absolute(&cfg.control);
    cfg.compat_data = cfg.compat_data.as_deref().map(absolute);
    if let Some(p) = cfg.pcap.as_deref().filter(|p| *p != Path::new("-")) {
        cfg.pcap = Some(absolute(p));
    }
    let pcap_on_stdout = cfg.pcap.as_deref() == Some(Path::new("-"));
    let prog = std::env::args_os().next().map_or_else(
        || "uml_switch".to_string(),
        |a| a.to_string_lossy().into_owned(),
    );
    let msg = start_message(&prog, &shown);
    let announce = || {
        if pcap_on_stdout {
            eprint!("{msg}");
        } else {
            print!("{msg}");
            let _ = std::io::stdout().flush();
        }
    };
    let mut switch = match Switch::setup(cfg, announce) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("uml_switch: {e}");
            return ExitCode::FAILURE;
        }
    };
    let exit = switch.run();
    switch.cleanup();
    match exit {
        Exit::StdinEof => ExitCode::SUCCESS,
        Exit::Signal(sig) => uml_switch::server::reraise(sig),
    }
}
