//! The guest's built-in init: a small shell on every console that has input. It runs
//! the built-in commands on the lines the consoles' line discipline (`chan::ldisc`)
//! collects, against the machine: file commands through the VFS (`fs::cmds`) first,
//! then the rest; it also reads and writes disk sectors so COW behaviour can be proved
//! from inside the guest.

mod net;

use crate::block::{BlockError, SECTOR};
use crate::fs::blockdev::UbdMounter;
use crate::job::Run;
use crate::machine::{self, Action, Machine};
use crate::net::services;
use crate::proc;

const HELP: &str = "\
Built-in commands:
  help                         this list
  echo [TEXT...] [> FILE | >> FILE]   (> /proc/mconsole notifies the host)
  cat FILE...
  ls [-l] [-a] [PATH...]
  cd [DIR], pwd
  touch FILE..., mkdir [-p] DIR..., rmdir DIR...
  rm [-r] [-f] PATH..., mv FROM TO, ln [-s] TARGET NAME
  stat PATH..., df
  mount [-t ext2|tmpfs|hostfs] [-o ro|HOSTDIR] SOURCE DIR, umount DIR
  dmesg                        the kernel log
  uname [-a|-s|-n|-r|-v|-m]
  uptime, free, ps, sync
  halt, poweroff, reboot
  ubd [list]                   block devices
  ubd read DEV SECTOR [COUNT]  hex dump of sectors (DEV: ubda, ubd0, /dev/ubda)
  ubd write DEV SECTOR TEXT    TEXT at the start of the sector, rest zero
  ubd writehex DEV SECTOR HEX  bytes given in hex, rest of the sector zero
  ifconfig [ethN [ADDR] [netmask M] [up|down]]
  route [-n] | route add default gw ADDR | route del default
  ping [-c N] [-i SECS] [-W SECS] ADDR   (4 requests without -c)
  arp                          neighbours seen on the wire
  netstat                      TCP service sockets
  echod [PORT]                 echo service, TCP and UDP (port 7)
  discard [PORT]               TCP sink (port 9)
  tcpsend [-n BYTES] ADDR [PORT]  send zeros over TCP (to port 9), report the rate
  telnetd [PORT]               a line shell on a TCP port (23); `exit` ends it
";

/// Runs one command line: what it printed, or the job that goes on running it.
pub fn execute(line: &str, m: &mut Machine) -> Run {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&cmd, args)) = words.split_first() else {
        return Run::Done(String::new());
    };
    match cmd {
        "ping" => net::ping(&mut m.net, args),
        "ifconfig" => net::ifconfig(m, args),
        "tcpsend" => net::tcpsend(&mut m.net, args),
        _ => Run::Done(run_now(cmd, args, m)),
    }
}

/// The commands that finish at once.
fn run_now(cmd: &str, args: &[&str], m: &mut Machine) -> String {
    if let Some(out) = file_command(cmd, args, m) {
        return out;
    }
    match cmd {
        "help" => HELP.into(),
        "echo" => echo(args, m),
        "dmesg" => m.log.dmesg(),
        "uname" => uname(args),
        "uptime" => uptime(m),
        "free" => free(m),
        "ps" => m.tasks.listing(),
        "sync" => {
            m.sync_disks();
            String::new()
        }
        "halt" | "poweroff" => {
            m.sync_disks();
            m.log.info(if cmd == "halt" {
                "reboot: System halted"
            } else {
                "reboot: Power down"
            });
            m.action = Some(Action::Halt(0));
            String::new()
        }
        "reboot" => {
            m.sync_disks();
            m.log.info("reboot: Restarting system");
            m.action = Some(Action::Reboot);
            String::new()
        }
        "ubd" => ubd(args, m),
        "route" => net::route(&mut m.net, args),
        "arp" => net::arp(&m.net),
        "netstat" => m.net.netstat(),
        "echod" | "discard" | "telnetd" => service(cmd, args, m),
        _ => format!("sh: {cmd}: not found\n"),
    }
}

/// `echod [PORT]` (7) and `telnetd [PORT]` (23) start a TCP service on every device.
fn service(cmd: &str, args: &[&str], m: &mut Machine) -> String {
    let (kind, default) = match cmd {
        "echod" => (services::Kind::Echo, 7),
        "discard" => (services::Kind::Discard, 9),
        _ => (services::Kind::Shell, 23),
    };
    let port = match args.first().map(|p| p.parse::<u16>()) {
        None => default,
        Some(Ok(p)) if p > 0 => p,
        Some(_) => return format!("{cmd}: bad port\n"),
    };
    match m.net.start_service(kind, port) {
        Ok(()) => format!("{cmd}: listening on TCP port {port}\n"),
        Err(e) => format!("{cmd}: {e}\n"),
    }
}

/// A file command run through the VFS; None for the other commands, `sync` (which
/// also flushes the disks) and `echo ... > /proc/FILE` (a write to the kernel).
fn file_command(cmd: &str, args: &[&str], m: &mut Machine) -> Option<String> {
    if cmd == "sync" || (cmd == "echo" && proc_redirect(args).is_some()) {
        return None;
    }
    proc::refresh(m);
    let words: Vec<&str> = std::iter::once(cmd).chain(args.iter().copied()).collect();
    let mut mounter = UbdMounter::new(&m.disks, &m.config);
    m.files.shell(&words, &mut mounter)
}

/// The /proc file an `echo ... > /proc/FILE` writes.
fn proc_redirect<'a>(args: &[&'a str]) -> Option<&'a str> {
    let pos = args.iter().position(|a| *a == ">" || *a == ">>")?;
    args.get(pos + 1)
        .copied()
        .filter(|t| t.starts_with("/proc/"))
}

/// `echo TEXT > /proc/FILE` (other echoes are file commands).
fn echo(args: &[&str], m: &mut Machine) -> String {
    let Some(target) = proc_redirect(args) else {
        return format!("{}\n", args.join(" "));
    };
    let end = args
        .iter()
        .position(|a| *a == ">" || *a == ">>")
        .unwrap_or(0);
    let text = format!("{}\n", args[..end].join(" "));
    match proc::write(m, target, text.as_bytes()) {
        Ok(()) => String::new(),
        Err(e) => format!("sh: {e}\n"),
    }
}

fn uname(args: &[&str]) -> String {
    let field = args.first().copied().unwrap_or("-s");
    let text = match field {
        "-a" => format!("{} GNU/Linux", machine::uname_line()),
        "-s" => machine::SYSNAME.into(),
        "-n" => machine::NODENAME.into(),
        "-r" => machine::RELEASE.into(),
        "-v" => machine::VERSION.into(),
        "-m" => machine::machine_arch().into(),
        other => return format!("uname: unrecognized option '{other}'\n"),
    };
    text + "\n"
}

fn uptime(m: &Machine) -> String {
    let secs = m.uptime_secs() as u64;
    format!(
        " up {} min, {} sec,  load average: 0.00, 0.00, 0.00\n",
        secs / 60,
        secs % 60
    )
}

fn free(m: &Machine) -> String {
    let (used, free) = m.memory_kb();
    format!(
        "              total        used        free\nMem:    {:>11} {:>11} {:>11}\nSwap:   {:>11} {:>11} {:>11}\n",
        used + free,
        used,
        free,
        0,
        0,
        0
    )
}

fn ubd(args: &[&str], m: &mut Machine) -> String {
    match args {
        [] | ["list"] => ubd_list(m),
        ["read", dev, sector, rest @ ..] if rest.len() <= 1 => {
            let count = rest.first().map_or(Ok(1), |c| number(c));
            match (number(sector), count) {
                (Ok(s), Ok(c)) => match m.disks.lookup(dev).map_err(UbdError::Device).and_then(|d| d.read(s, c).map_err(|e| UbdError::Io(dev.to_string(), e))) {
                    Ok(data) => hexdump(&data, s * SECTOR),
                    Err(e) => format!("ubd: {e}\n"),
                },
                (Err(e), _) | (_, Err(e)) => format!("ubd: {e}\n"),
            }
        }
        ["write", dev, sector, text @ ..] if !text.is_empty() => ubd_write(m, dev, sector, text.join(" ").into_bytes()),
        ["writehex", dev, sector, hex] => match parse_hex(hex) {
            Ok(bytes) => ubd_write(m, dev, sector, bytes),
            Err(e) => format!("ubd: {e}\n"),
        },
        _ => "usage: ubd [list] | ubd read DEV SECTOR [COUNT] | ubd write DEV SECTOR TEXT | ubd writehex DEV SECTOR HEX\n".into(),
    }
}

fn ubd_list(m: &Machine) -> String {
    let mut out = String::new();
    for (n, slot) in m.disks.slots.iter().enumerate() {
        let Some(s) = slot else { continue };
        let state = match s.open.as_ref().map(|d| d.borrow()) {
            Some(d) => format!(
                "{} sectors{}",
                d.sectors(),
                if d.writable { "" } else { ", read-only" }
            ),
            None => "not open".into(),
        };
        let backing = s
            .backing
            .as_ref()
            .map(|b| format!(" over {}", b.display()))
            .unwrap_or_default();
        out.push_str(&format!(
            "{} {}{} ({state})\n",
            crate::block::disk_name(n),
            s.spec.file.display(),
            backing
        ));
    }
    out
}

fn ubd_write(m: &mut Machine, dev: &str, sector: &str, mut data: Vec<u8>) -> String {
    let s = match number(sector) {
        Ok(s) => s,
        Err(e) => return format!("ubd: {e}\n"),
    };
    let padded = (data.len() as u64).div_ceil(SECTOR).max(1) * SECTOR;
    data.resize(padded as usize, 0);
    match m
        .disks
        .lookup(dev)
        .map_err(UbdError::Device)
        .and_then(|mut d| {
            d.write(s, &data)
                .map_err(|e| UbdError::Io(dev.to_string(), e))
        }) {
        Ok(()) => format!("wrote {} sector(s) at {s}\n", padded / SECTOR),
        Err(e) => format!("ubd: {e}\n"),
    }
}

/// Why a `ubd` command failed (printed after `ubd: `).
#[derive(Debug)]
enum UbdError {
    Device(BlockError),
    Io(String, std::io::Error),
    NotANumber(String),
    OddHex(String),
    NotHex(String),
}

impl std::fmt::Display for UbdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UbdError::Device(e) => e.fmt(f),
            UbdError::Io(dev, e) => write!(f, "{dev}: {e}"),
            UbdError::NotANumber(s) => write!(f, "{s}: not a number"),
            UbdError::OddHex(s) => write!(f, "{s}: odd number of hex digits"),
            UbdError::NotHex(s) => write!(f, "{s}: not hex"),
        }
    }
}

fn number(s: &str) -> Result<u64, UbdError> {
    let parsed = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| UbdError::NotANumber(s.to_owned()))
}

fn parse_hex(s: &str) -> Result<Vec<u8>, UbdError> {
    if !s.len().is_multiple_of(2) {
        return Err(UbdError::OddHex(s.to_owned()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| UbdError::NotHex(s.to_owned())))
        .collect()
}

/// `hexdump -C` style, 16 bytes a line, offsets from `base`.
pub fn hexdump(data: &[u8], base: u64) -> String {
    let mut out = String::new();
    for (i, row) in data.chunks(16).enumerate() {
        out.push_str(&format!("{:08x} ", base + i as u64 * 16));
        for (j, b) in row.iter().enumerate() {
            if j == 8 {
                out.push(' ');
            }
            out.push_str(&format!(" {b:02x}"));
        }
        let text: String = row
            .iter()
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!("  |{text}|\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hexdump_rows() {
        let d = hexdump(b"ABCDEFGHIJKLMNOPQ", 512);
        assert!(d.starts_with("00000200  41 42"), "{d}");
        assert!(d.contains("|ABCDEFGHIJKLMNOP|\n00000210  51"), "{d}");
    }

    #[test]
    fn hex_parse() {
        assert_eq!(parse_hex("00ff10").unwrap(), vec![0, 255, 16]);
        assert!(parse_hex("abc").is_err());
    }
}
