//! UML's command-line switches turned into a typed configuration.
//!
//! The kernel takes the same switches as linux.uml (`umid=`, `uml_dir=`, `mem=`,
//! `ubd<N><flags>=FILE[,BACKING]`, `con[N]=`, `ssl[N]=`, `mconsole=notify:SOCK`, `root=`,
//! `init=`, `hostfs=`, `quiet`, `--help`, `--version`, `--showconfig`). A malformed
//! value is an error naming the switch; a switch this kernel does not know is kept in
//! [`Config::unknown`] so the boot log can report it as Linux 6.x does. The ubd syntax
//! and its error texts follow `shared/reference/cow.md` §5, because `config ubdN=` over
//! mconsole uses the same parser and must answer with the same words.

use std::fmt;
use std::path::PathBuf;

/// Number of ubd devices (ubd0..ubd15, ubda..ubdp).
pub const MAX_UBD: usize = 16;
/// Number of virtual consoles (con0..).
pub const MAX_CON: usize = 8;
/// Number of serial lines (ssl0..).
pub const MAX_SSL: usize = 8;
/// At most this many flag letters may follow `ubdN`.
const MAX_UBD_FLAGS: usize = 6;
/// Smallest memory size the guest accepts.
const MIN_MEM: u64 = 1 << 20;
/// Memory when no `mem=` is given (linux.uml's default).
pub const DEFAULT_MEM: u64 = 64 << 20;

/// What the command line asks for: boot, or print something and exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Boot(Box<Config>),
    Help,
    Version,
    ShowConfig,
}

/// A ubd switch's flag letters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UbdFlags {
    /// `r`: open read-only.
    pub read_only: bool,
    /// `s`: synchronous writes.
    pub sync: bool,
    /// `d`: never look for a COW header.
    pub no_cow: bool,
    /// `c`: shared image, take no host lock.
    pub shared: bool,
    /// `t`: no discard/trim (accepted; this kernel never discards).
    pub no_trim: bool,
}

impl UbdFlags {
    /// The letters as written on a command line, in a fixed order.
    pub fn letters(&self) -> String {
        let mut s = String::new();
        for (on, c) in [
            (self.read_only, 'r'),
            (self.sync, 's'),
            (self.no_cow, 'd'),
            (self.shared, 'c'),
            (self.no_trim, 't'),
        ] {
            if on {
                s.push(c);
            }
        }
        s
    }
}

/// One `ubd<N><flags>=FILE[,BACKING[,SERIAL]]` switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UbdSpec {
    pub index: usize,
    pub flags: UbdFlags,
    /// The image, or the COW file when a backing file follows.
    pub file: PathBuf,
    pub backing: Option<PathBuf>,
    pub serial: Option<String>,
}

/// Why a ubd switch is malformed; the texts are the kernel's (reference cow.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UbdSyntaxError {
    OutOfRange,
    BadFlag,
    TooManyFlags,
    MissingEquals,
    NoCowWithBacking,
    MissingFile,
}

impl UbdSyntaxError {
    /// The text linux.uml gives (and its errno, as `config` answers it).
    pub fn text(self) -> &'static str {
        match self {
            UbdSyntaxError::OutOfRange => "Device number out of range",
            UbdSyntaxError::BadFlag => "Expected '=' or flag letter (r, s, c, t or d)",
            UbdSyntaxError::TooManyFlags => "Too many flags specified",
            UbdSyntaxError::MissingEquals => "Missing '='",
            UbdSyntaxError::NoCowWithBacking => "Can't specify both 'd' and a cow file",
            UbdSyntaxError::MissingFile => "Missing file name",
        }
    }

    /// The error number `config ubdN=` replies with.
    pub fn errno(self) -> i32 {
        match self {
            UbdSyntaxError::OutOfRange => 1,
            _ => -libc::EINVAL,
        }
    }
}

impl fmt::Display for UbdSyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// One end of a console or serial line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChanSpec {
    /// `fd:N`: an inherited host descriptor.
    Fd(i32),
    /// `null`: the line exists, reads nothing, output is discarded.
    Null,
    /// `none`: no such line.
    None,
    /// `pty` or `pts`: a new pseudo-terminal, announced in the boot log.
    Pty,
    /// `tty:DEV`: a host terminal device.
    Tty(PathBuf),
    /// `port:PORT`: telnet access through the port helper.
    Port(u16),
    /// `xterm`: a terminal emulator window.
    Xterm,
}

impl fmt::Display for ChanSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChanSpec::Fd(n) => write!(f, "fd:{n}"),
            ChanSpec::Null => f.write_str("null"),
            ChanSpec::None => f.write_str("none"),
            ChanSpec::Pty => f.write_str("pty"),
            ChanSpec::Tty(p) => write!(f, "tty:{}", p.display()),
            ChanSpec::Port(p) => write!(f, "port:{p}"),
            ChanSpec::Xterm => f.write_str("xterm"),
        }
    }
}

/// A line's channels: input and output, the same unless written `IN,OUT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineSpec {
    pub input: ChanSpec,
    pub output: ChanSpec,
}

impl LineSpec {
    pub fn both(spec: ChanSpec) -> LineSpec {
        LineSpec {
            input: spec.clone(),
            output: spec,
        }
    }

    pub fn is_none(&self) -> bool {
        self.input == ChanSpec::None && self.output == ChanSpec::None
    }
}

impl fmt::Display for LineSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.input == self.output {
            write!(f, "{}", self.input)
        } else {
            write!(f, "{},{}", self.input, self.output)
        }
    }
}

/// The `hostfs=DIR[,append]` switch: where every hostfs mount is confined (None: the
/// whole host) and whether they are append-only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostfsSwitch {
    pub dir: Option<PathBuf>,
    pub append: bool,
}

impl HostfsSwitch {
    /// Parses the switch's value: `DIR`, `DIR,append` or `,append`.
    pub fn parse(value: &str) -> Result<HostfsSwitch, HostfsOptionError> {
        let mut parts = value.split(',');
        let dir = parts.next().unwrap_or("");
        let mut switch = HostfsSwitch {
            dir: (!dir.is_empty()).then(|| PathBuf::from(dir)),
            append: false,
        };
        for opt in parts {
            match opt {
                "append" => switch.append = true,
                "" => {}
                other => return Err(HostfsOptionError(other.to_owned())),
            }
        }
        Ok(switch)
    }
}

/// A `hostfs=` option other than `append`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostfsOptionError(pub String);

impl fmt::Display for HostfsOptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown option '{}' (only 'append')", self.0)
    }
}

/// The typed configuration of one boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Every argument as given, for `/proc/cmdline` and for `reboot`.
    pub args: Vec<String>,
    pub umid: Option<String>,
    pub uml_dir: Option<PathBuf>,
    pub mem: u64,
    pub ubd: Vec<Option<UbdSpec>>,
    /// `ubd=sync` seen: every ubd switch after it writes synchronously.
    pub con: Vec<LineSpec>,
    pub ssl: Vec<LineSpec>,
    pub notify: Option<PathBuf>,
    pub root: Option<String>,
    pub init: Option<String>,
    pub quiet: bool,
    pub xterm: Option<String>,
    /// `hostfs=DIR[,append]`: where hostfs mounts are confined, and append-only.
    pub hostfs: HostfsSwitch,
    /// `eth<N>=` switches, set up by `net` (the name predates networking).
    pub unsupported: Vec<String>,
    /// Switches this kernel does not know, reported in the boot log.
    pub unknown: Vec<String>,
}

impl Default for Config {
    fn default() -> Config {
        let mut con = vec![LineSpec::both(ChanSpec::None); MAX_CON];
        con[0] = LineSpec {
            input: ChanSpec::Fd(0),
            output: ChanSpec::Fd(1),
        };
        Config {
            args: Vec::new(),
            umid: None,
            uml_dir: None,
            mem: DEFAULT_MEM,
            ubd: vec![None; MAX_UBD],
            con,
            ssl: vec![LineSpec::both(ChanSpec::None); MAX_SSL],
            notify: None,
            root: None,
            init: None,
            quiet: false,
            xterm: None,
            hostfs: HostfsSwitch::default(),
            unsupported: Vec::new(),
            unknown: Vec::new(),
        }
    }
}

impl Config {
    /// The ubd index the root device names (`root=/dev/ubda`, `/dev/ubd0`, `98:0`);
    /// ubd0 when no `root=` is given.
    pub fn root_ubd(&self) -> Option<usize> {
        match &self.root {
            None => Some(0),
            Some(r) => root_device_index(r),
        }
    }
}

/// A switch with a malformed value: stops the boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdlineError {
    /// The switch as written, e.g. `ubd0x=f` or `mem=`.
    pub switch: String,
    pub message: String,
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.switch, self.message)
    }
}

impl std::error::Error for CmdlineError {}

fn bad(switch: &str, message: impl Into<String>) -> CmdlineError {
    CmdlineError {
        switch: switch.to_owned(),
        message: message.into(),
    }
}

/// Parses the whole command line (without the program name).
pub fn parse(args: &[String]) -> Result<Invocation, CmdlineError> {
    for a in args {
        match a.as_str() {
            "--help" => return Ok(Invocation::Help),
            "--version" => return Ok(Invocation::Version),
            "--showconfig" => return Ok(Invocation::ShowConfig),
            _ => {}
        }
    }
    let mut config = Config {
        args: args.to_vec(),
        ..Config::default()
    };
    let mut global_sync = false;
    for a in args {
        apply(&mut config, a, &mut global_sync)?;
    }
    Ok(Invocation::Boot(Box::new(config)))
}

fn apply(config: &mut Config, arg: &str, global_sync: &mut bool) -> Result<(), CmdlineError> {
    let (key, value) = match arg.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (arg, None),
    };
    match (key, value) {
        ("umid", Some(v)) => config.umid = Some(parse_umid(arg, v)?),
        ("uml_dir", Some(v)) => config.uml_dir = Some(parse_nonempty_path(arg, v)?),
        ("mem", Some(v)) => config.mem = parse_mem(arg, v)?,
        ("mconsole", Some(v)) => config.notify = Some(parse_mconsole(arg, v)?),
        ("root", Some(v)) => config.root = Some(nonempty(arg, v)?.to_owned()),
        ("init", Some(v)) => config.init = Some(nonempty(arg, v)?.to_owned()),
        ("xterm", Some(v)) => config.xterm = Some(nonempty(arg, v)?.to_owned()),
        ("quiet", None) => config.quiet = true,
        ("hostfs", Some(v)) => {
            config.hostfs = HostfsSwitch::parse(v).map_err(|e| bad(arg, e.to_string()))?
        }
        ("ubd", Some("sync")) => *global_sync = true,
        ("ubd", Some(_)) => {} // "fake major not supported any more": ignored, as Linux does
        _ if key.starts_with("ubd") => {
            let mut spec = parse_ubd(arg).map_err(|e| bad(arg, e.text()))?;
            spec.flags.sync |= *global_sync;
            let index = spec.index;
            config.ubd[index] = Some(spec);
        }
        _ if key.starts_with("con") && is_line_key(key, "con") => {
            set_lines(&mut config.con, key, "con", arg, value)?
        }
        _ if key.starts_with("ssl") && is_line_key(key, "ssl") => {
            set_lines(&mut config.ssl, key, "ssl", arg, value)?
        }
        _ if key.starts_with("eth") && key[3..].bytes().all(|b| b.is_ascii_digit()) => {
            config.unsupported.push(arg.to_owned())
        }
        _ if vec_switch(arg).is_some() => config.unsupported.push(arg.to_owned()),
        _ if arg.starts_with('-') && arg.len() > 1 => {
            return Err(bad(arg, "unknown option (try --help)"))
        }
        _ => config.unknown.push(arg.to_owned()),
    }
    Ok(())
}

fn nonempty<'a>(arg: &str, v: &'a str) -> Result<&'a str, CmdlineError> {
    if v.is_empty() {
        Err(bad(arg, "empty value"))
    } else {
        Ok(v)
    }
}

fn parse_nonempty_path(arg: &str, v: &str) -> Result<PathBuf, CmdlineError> {
    Ok(PathBuf::from(nonempty(arg, v)?))
}

fn parse_umid(arg: &str, v: &str) -> Result<String, CmdlineError> {
    let v = nonempty(arg, v)?;
    if v.len() > uml_proto::umid::MAX_UMID_LEN {
        return Err(bad(
            arg,
            format!(
                "name longer than {} characters",
                uml_proto::umid::MAX_UMID_LEN
            ),
        ));
    }
    if !uml_proto::umid::valid_umid(v) || v == "." || v == ".." {
        return Err(bad(arg, "a umid may not contain '/' or be '.' or '..'"));
    }
    Ok(v.to_owned())
}

/// `mem=`: a number of bytes with an optional K, M or G suffix (as memparse reads it).
pub fn parse_mem(arg: &str, v: &str) -> Result<u64, CmdlineError> {
    let size = parse_size(v).ok_or_else(|| {
        bad(
            arg,
            "expected a size such as 48M (a number with an optional K, M or G suffix)",
        )
    })?;
    if size < MIN_MEM {
        return Err(bad(arg, "less than 1M of memory cannot boot"));
    }
    Ok(size)
}

fn parse_size(v: &str) -> Option<u64> {
    let digits_end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    if digits_end == 0 {
        return None;
    }
    let n: u64 = v[..digits_end].parse().ok()?;
    let shift = match &v[digits_end..] {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

fn parse_mconsole(arg: &str, v: &str) -> Result<PathBuf, CmdlineError> {
    match v.strip_prefix("notify:") {
        Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
        Some(_) => Err(bad(arg, "notify: needs a socket path")),
        None => Err(bad(arg, "expected notify:SOCKET")),
    }
}

/// Parses `ubd<n>[flags]=<file>[<sep><backing>[<sep><serial>]]` (the text after
/// `ubd` included, as `config ubdN=` gives it).
pub fn parse_ubd(arg: &str) -> Result<UbdSpec, UbdSyntaxError> {
    let rest = arg.strip_prefix("ubd").unwrap_or(arg);
    let (index, mut rest) = parse_ubd_index(rest).ok_or(UbdSyntaxError::OutOfRange)?;
    let mut flags = UbdFlags::default();
    let mut count = 0;
    loop {
        let c = rest.chars().next();
        match c {
            Some('=') => {
                rest = &rest[1..];
                break;
            }
            _ if count == MAX_UBD_FLAGS => {
                return Err(if c.is_some_and(|c| "rsdct".contains(c)) {
                    // 7th letter: the kernel stops counting and looks for '='.
                    if rest[1..].starts_with('=') {
                        UbdSyntaxError::TooManyFlags
                    } else {
                        UbdSyntaxError::MissingEquals
                    }
                } else {
                    UbdSyntaxError::MissingEquals
                });
            }
            Some('r') => flags.read_only = true,
            Some('s') => flags.sync = true,
            Some('d') => flags.no_cow = true,
            Some('c') => flags.shared = true,
            Some('t') => flags.no_trim = true,
            _ => return Err(UbdSyntaxError::BadFlag),
        }
        count += 1;
        rest = &rest[1..];
    }
    let mut fields = rest.splitn(3, [',', ':']);
    let file = fields.next().unwrap_or("");
    let backing = fields.next().filter(|s| !s.is_empty());
    let serial = fields.next().filter(|s| !s.is_empty());
    if file.is_empty() {
        return Err(UbdSyntaxError::MissingFile);
    }
    if flags.no_cow && backing.is_some() {
        return Err(UbdSyntaxError::NoCowWithBacking);
    }
    Ok(UbdSpec {
        index,
        flags,
        file: PathBuf::from(file),
        backing: backing.map(PathBuf::from),
        serial: serial.map(str::to_owned),
    })
}

/// The device number at the start of `s`: decimal 0-15 or a letter a-p.
pub fn parse_ubd_index(s: &str) -> Option<(usize, &str)> {
    let first = s.chars().next()?;
    if first.is_ascii_lowercase() && first <= 'p' {
        return Some(((first as u8 - b'a') as usize, &s[1..]));
    }
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    let n: usize = s[..end].parse().ok()?;
    (n < MAX_UBD).then_some((n, &s[end..]))
}

/// The ubd index a `root=` value names.
fn root_device_index(root: &str) -> Option<usize> {
    if let Some(rest) = root.strip_prefix("/dev/ubd") {
        return match parse_ubd_index(rest) {
            Some((n, "")) => Some(n),
            _ => None,
        };
    }
    let (major, minor) = root.split_once(':')?;
    if major != "98" {
        return None;
    }
    let minor: usize = minor.parse().ok()?;
    (minor.is_multiple_of(16) && minor / 16 < MAX_UBD).then_some(minor / 16)
}

fn is_line_key(key: &str, prefix: &str) -> bool {
    key[prefix.len()..].bytes().all(|b| b.is_ascii_digit())
}

/// `con=SPEC` sets every line but con0; `conN=SPEC` one line (likewise `ssl`).
fn set_lines(
    lines: &mut [LineSpec],
    key: &str,
    prefix: &str,
    arg: &str,
    value: Option<&str>,
) -> Result<(), CmdlineError> {
    let value = value.ok_or_else(|| bad(arg, "expected '=' and a channel"))?;
    let spec = parse_line(value).map_err(|m| bad(arg, m.to_string()))?;
    let number = &key[prefix.len()..];
    if number.is_empty() {
        let first = if prefix == "con" { 1 } else { 0 };
        for line in &mut lines[first..] {
            *line = spec.clone();
        }
        return Ok(());
    }
    let n: usize = number.parse().map_err(|_| bad(arg, "bad line number"))?;
    let max = lines.len();
    let line = lines
        .get_mut(n)
        .ok_or_else(|| bad(arg, format!("line number out of range (0 to {})", max - 1)))?;
    *line = spec;
    Ok(())
}

/// What is wrong with a channel specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChanSpecError {
    FdNumber(String),
    PortNumber(String),
    Empty,
    Unknown(String),
}

impl fmt::Display for ChanSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChanSpecError::FdNumber(n) => write!(f, "fd:{n}: not a file descriptor number"),
            ChanSpecError::PortNumber(p) => write!(f, "port:{p}: not a TCP port number"),
            ChanSpecError::Empty => f.write_str("empty channel"),
            ChanSpecError::Unknown(s) => write!(
                f,
                "unknown channel '{s}' (expected fd:N, null, none, pty, pts, tty:DEV, port:PORT or xterm)"
            ),
        }
    }
}

impl std::error::Error for ChanSpecError {}

/// A line's channels: `SPEC` or `IN,OUT`.
pub fn parse_line(value: &str) -> Result<LineSpec, ChanSpecError> {
    match value.split_once(',') {
        None => Ok(LineSpec::both(parse_chan(value)?)),
        Some((input, output)) => Ok(LineSpec {
            input: parse_chan(input)?,
            output: parse_chan(output)?,
        }),
    }
}

/// One channel: `fd:N`, `null`, `none`, `pty`, `pts`, `tty:DEV`, `port:PORT`, `xterm`.
pub fn parse_chan(s: &str) -> Result<ChanSpec, ChanSpecError> {
    let (kind, arg) = match s.split_once(':') {
        Some((k, a)) => (k, Some(a)),
        None => (s, None),
    };
    match (kind, arg) {
        ("fd", Some(n)) => n
            .parse::<i32>()
            .ok()
            .filter(|&n| n >= 0)
            .map(ChanSpec::Fd)
            .ok_or_else(|| ChanSpecError::FdNumber(n.to_owned())),
        ("null", None) => Ok(ChanSpec::Null),
        ("none", None) => Ok(ChanSpec::None),
        ("pty", None) | ("pts", None) => Ok(ChanSpec::Pty),
        ("tty", Some(dev)) if !dev.is_empty() => Ok(ChanSpec::Tty(PathBuf::from(dev))),
        ("port", Some(p)) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .map(ChanSpec::Port)
            .ok_or_else(|| ChanSpecError::PortNumber(p.to_owned())),
        ("xterm", None) => Ok(ChanSpec::Xterm),
        ("", _) => Err(ChanSpecError::Empty),
        _ => Err(ChanSpecError::Unknown(s.to_owned())),
    }
}

/// The text `--help` prints.
pub fn help_text() -> String {
    "\
uml-kernel: a minimal guest kernel that behaves like User-Mode Linux toward the host

usage: uml-kernel [SWITCH...]

  umid=NAME              name of this machine (default: random); files in UML_DIR/NAME/
  uml_dir=DIR            where the umid directory lives (default: $HOME/.uml/)
  mem=SIZE               guest memory, e.g. 48M (default: 64M)
  ubd<N><FLAGS>=FILE[,BACKING[,SERIAL]]
                         block device N (0-15 or a-p); with BACKING, FILE is its COW file
                         (created when missing); ':' also separates; FLAGS: r read-only,
                         s synchronous, d no COW detection, c shared (no lock), t no trim
  ubd=sync               synchronous writes for the ubd switches that follow
  con[N]=CHAN[,CHAN]     console channels (con0 default fd:0,fd:1; con= sets con1 and up)
  ssl[N]=CHAN[,CHAN]     serial-line channels
                         CHAN: fd:N, null, none, pty, pts, tty:DEV, port:PORT, xterm
  mconsole=notify:SOCK   send mconsole notifications to the unix socket SOCK
  root=DEV               root device (default /dev/ubda)
  ro, rw, rootfstype=TYPE, rootflags=OPTS
                         root mount: read-only or not, ext2 (default) or hostfs (then
                         rootflags=HOSTDIR, and root=/dev/root as in Linux)
  hostfs=[DIR][,append]  confine every hostfs mount under DIR; append: append-only
  init=PATH              run PATH from the root filesystem as init (pid 1);
                         init=builtin or none: the built-in shell
  xterm=EMU[,TITLE_SW[,EXEC_SW]]
                         terminal emulator for xterm channels (default x-terminal-emulator,-T,-e)
  quiet                  print only warnings on the console during boot
  --help, --version, --showconfig
"
    .to_owned()
}

/// The text `--showconfig` prints: what this kernel was built with.
pub fn showconfig_text() -> String {
    format!(
        "\
#
# uml-kernel {} configuration
#
CONFIG_UML=y
CONFIG_MCONSOLE=y
CONFIG_MAGIC_SYSRQ=y
CONFIG_BLK_DEV_UBD=y
CONFIG_BLK_DEV_COW_COMMON=y
CONFIG_NULL_CHAN=y
CONFIG_FD_CHAN=y
CONFIG_PTY_CHAN=y
CONFIG_TTY_CHAN=y
CONFIG_PORT_CHAN=y
CONFIG_XTERM_CHAN=y
CONFIG_UML_NET=n
CONFIG_PROC_FS=y
CONFIG_HOSTFS=y
CONFIG_NR_UBD={MAX_UBD}
CONFIG_NR_CON={MAX_CON}
CONFIG_NR_SSL={MAX_SSL}
",
        env!("CARGO_PKG_VERSION")
    )
}

/// `vec<N>:VALUE` split into N and VALUE.
pub fn vec_switch(arg: &str) -> Option<(&str, &str)> {
    let (key, value) = arg.strip_prefix("vec")?.split_once(':')?;
    key.bytes()
        .all(|b| b.is_ascii_digit())
        .then_some((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(args: &[&str]) -> Result<Config, CmdlineError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&args)? {
            Invocation::Boot(c) => Ok(*c),
            other => panic!("not a boot: {other:?}"),
        }
    }

    #[test]
    fn ubd_forms() {
        let s = parse_ubd("ubd0=a.cow,b.img").unwrap();
        assert_eq!(
            (s.index, s.file.to_str(), s.backing.as_deref()),
            (0, Some("a.cow"), Some(std::path::Path::new("b.img")))
        );
        let s = parse_ubd("ubdb=x:y").unwrap();
        assert_eq!((s.index, s.backing), (1, Some(PathBuf::from("y"))));
        let s = parse_ubd("ubd3rsct=x:y:SER").unwrap();
        assert_eq!(s.index, 3);
        assert!(s.flags.read_only && s.flags.sync && s.flags.shared && s.flags.no_trim);
        assert_eq!(s.serial.as_deref(), Some("SER"));
        assert_eq!(
            parse_ubd("ubd0=File,,Serial").unwrap().serial.as_deref(),
            Some("Serial")
        );
    }

    #[test]
    fn ubd_errors_have_kernel_texts() {
        use UbdSyntaxError::*;
        for (arg, want) in [
            ("ubd16=x", OutOfRange),
            ("ubdq=x", OutOfRange),
            ("ubd=x", OutOfRange),
            ("ubd1x=f", BadFlag),
            ("ubd1", BadFlag),
            ("ubd1rrrrrrr=f", TooManyFlags),
            ("ubd1rrrrrrrx", MissingEquals),
            ("ubd1d=a,b", NoCowWithBacking),
            ("ubd1=", MissingFile),
        ] {
            assert_eq!(parse_ubd(arg), Err(want), "{arg}");
        }
        assert_eq!(parse_ubd("ubd1rrrrrr=f").unwrap().index, 1);
    }

    #[test]
    fn boot_config() {
        let c = boot(&[
            "umid=t1",
            "mem=48M",
            "ubd0=r.img",
            "con0=null",
            "ssl1=pty",
            "quiet",
            "foo=bar",
            "eth0=tuntap,,",
            "mconsole=notify:/tmp/s",
        ])
        .unwrap();
        assert_eq!(c.umid.as_deref(), Some("t1"));
        assert_eq!(c.mem, 48 << 20);
        assert_eq!(c.con[0], LineSpec::both(ChanSpec::Null));
        assert_eq!(c.ssl[1], LineSpec::both(ChanSpec::Pty));
        assert!(c.quiet);
        assert_eq!(c.unknown, vec!["foo=bar"]);
        assert_eq!(c.unsupported, vec!["eth0=tuntap,,"]);
        assert_eq!(c.notify, Some(PathBuf::from("/tmp/s")));
        let c = boot(&["con=pty", "con0=fd:3,fd:4"]).unwrap();
        assert_eq!(c.con[0].to_string(), "fd:3,fd:4");
        assert_eq!(c.con[5].to_string(), "pty");
        let c = boot(&["ubd=sync", "ubd1=x"]).unwrap();
        assert!(c.ubd[1].as_ref().unwrap().flags.sync);
    }

    #[test]
    fn bad_values_name_the_switch() {
        for args in [
            &["mem=lots"][..],
            &["mem=48Q"],
            &["mem=12"],
            &["umid="],
            &["umid=a/b"],
            &["ubd0x=f"],
            &["con0=bogus"],
            &["con9=null"],
            &["ssl0=fd:x"],
            &["mconsole=foo"],
            &["root="],
            &["--frobnicate"],
        ] {
            let e = boot(args).unwrap_err();
            assert_eq!(e.switch, args[0]);
            assert!(e.to_string().starts_with(args[0]), "{e}");
        }
    }

    #[test]
    fn root_names_a_ubd() {
        let mut c = Config::default();
        assert_eq!(c.root_ubd(), Some(0));
        c.root = Some("/dev/ubdb".into());
        assert_eq!(c.root_ubd(), Some(1));
        c.root = Some("98:32".into());
        assert_eq!(c.root_ubd(), Some(2));
        c.root = Some("/dev/sda1".into());
        assert_eq!(c.root_ubd(), None);
    }

    #[test]
    fn help_version_showconfig() {
        let v = |a: &str| parse(&[a.to_string()]).unwrap();
        assert_eq!(v("--help"), Invocation::Help);
        assert_eq!(v("--version"), Invocation::Version);
        assert_eq!(v("--showconfig"), Invocation::ShowConfig);
    }
}
