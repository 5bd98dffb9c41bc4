//! `uml_switch [-unix CTL] [-hub] [-tap DEV] [-daemon]`, `uml_switch -compat-v0 [-unix
//! CTL DATA] ...`, plus `--pcap FILE|-` and `--log-level`: command line, start
//! messages and exit status.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use uml_switch::cli::{config, rewrite_legacy, Args};
use uml_switch::log::set_level;
use uml_switch::{Config, Exit, Switch};

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

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_owned())
    }
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
    cfg.mgmt = cfg.mgmt.as_deref().map(absolute);
    cfg.vde = cfg.vde.as_deref().map(absolute);
    if let Some(p) = cfg.pcap.as_deref().filter(|p| *p != Path::new("-")) {
        cfg.pcap = Some(absolute(p));
    }
    let pcap_on_stdout = cfg.pcap.as_deref() == Some(Path::new("-"));
    let prog = std::env::args_os().next().map_or_else(
        || "uml_switch".to_string(),
        |a| a.to_string_lossy().into_owned(),
    );
    let msg = start_message(&prog, &shown);
    // Neither message may panic on a closed terminal or a pipe nobody reads.
    let announce = || {
        if pcap_on_stdout {
            let _ = std::io::stderr().write_all(msg.as_bytes());
        } else {
            uml_proto::quiet_print!("{msg}");
        }
    };
    let mut switch = match Switch::setup(cfg, announce) {
        Ok(s) => s,
        Err(e) => {
            uml_proto::quiet_eprintln!("uml_switch: {e}");
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
