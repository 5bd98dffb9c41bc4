//! The console and serial-line device family: con0..con7 and ssl0..ssl7, each a line
//! with a line discipline and a shell task on it. It owns the lines' descriptors, the
//! `port:` listening sockets and the port-helper/xterm connections, handles their
//! events (typed input, a telnet connection, the terminal port-helper sends), and
//! answers mconsole `config`/`remove` for `con<N>`/`ssl<N>`. What is typed comes back
//! to the kernel as complete lines for the shell.

use std::net::TcpListener;
use std::os::fd::AsRawFd;

use super::ldisc::{LineEditor, PROMPT};
use super::{port, xterm, ChanError, Family, Line};
use crate::cmdline::{self, ChanSpec, Config, LineSpec};
use crate::event::Scope;
use crate::klog::KernelLog;
use crate::task::{Task, Tasks};

/// What a console event the loop reports is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// Input on a line (its slot).
    Line(usize),
    /// A `port:` channel's listening socket.
    Port(u16),
    /// port-helper's answer for a line's new connection.
    Helper(usize),
}

pub use crate::mconsole::Answer;

/// What an event gave the kernel.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Typed {
    /// Complete lines typed on slot `slot`.
    pub lines: Vec<String>,
    pub slot: usize,
    /// The line's user went away (a telnet or xterm session ended): its shell's work
    /// is dropped.
    pub hung_up: bool,
    /// Ctrl-C was typed (the line being typed was dropped).
    pub interrupted: bool,
    /// The bytes as typed, when guest programs own the ttys (their line discipline
    /// edits them; `lines` stays empty).
    pub raw: Vec<u8>,
}

/// A line with the shell running on it.
struct Console {
    line: Line,
    editor: LineEditor,
    pid: u32,
    /// A `port:` or `xterm` line's current connection.
    conn: Option<port::Connection>,
}

/// Every console and serial line.
pub struct Consoles {
    /// con0..con7 then ssl0..ssl7.
    slots: Vec<Option<Console>>,
    /// Listening sockets of `port:` channels, shared by the lines on the same port.
    ports: Vec<(u16, TcpListener)>,
    /// For xterm window titles.
    umid: String,
    /// The `xterm=` switch.
    xterm: Option<String>,
    /// Guest programs own the ttys (init is a program of the root disk): the built-in
    /// shell's prompt is not shown.
    pub guest_ttys: bool,
}

/// The slot of line `index` of `family`.
pub fn slot_of(family: Family, index: usize) -> usize {
    match family {
        Family::Con => index,
        Family::Ssl => cmdline::MAX_CON + index,
    }
}

fn line_family(dev: &str) -> Option<Family> {
    if dev.starts_with("con") {
        Some(Family::Con)
    } else if dev.starts_with("ssl") {
        Some(Family::Ssl)
    } else {
        None
    }
}

fn line_index(f: Family, s: &str) -> Option<usize> {
    let max = match f {
        Family::Con => cmdline::MAX_CON,
        Family::Ssl => cmdline::MAX_SSL,
    };
    s.parse::<usize>().ok().filter(|&i| i < max)
}

fn specs_of(config: &mut Config, f: Family) -> &mut [LineSpec] {
    match f {
        Family::Con => &mut config.con,
        Family::Ssl => &mut config.ssl,
    }
}

fn tty_name(line: &Line) -> String {
    match line.family {
        Family::Con => format!("tty{}", line.index),
        Family::Ssl => format!("ttyS{}", line.index),
    }
}

impl Consoles {
    pub fn new(umid: &str, xterm: Option<String>) -> Consoles {
        Consoles {
            slots: (0..cmdline::MAX_CON + cmdline::MAX_SSL)
                .map(|_| None)
                .collect(),
            ports: Vec::new(),
            umid: umid.to_owned(),
            xterm,
            guest_ttys: false,
        }
    }

    /// Opens every line the command line configures (boot, first half: the log lines
    /// naming their devices come before the disks' and the network's).
    pub fn open_all(
        &mut self,
        config: &Config,
        log: &mut KernelLog,
        tasks: &mut Tasks,
    ) -> Result<(), ChanError> {
        let lines = config
            .con
            .iter()
            .enumerate()
            .map(|(i, s)| (Family::Con, i, s))
            .chain(
                config
                    .ssl
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (Family::Ssl, i, s)),
            );
        for (family, i, spec) in lines {
            if let Some(line) = Line::open(family, i, spec)? {
                self.slots[slot_of(family, i)] = Some(new_console(line, log, tasks));
            }
        }
        Ok(())
    }

    /// Starts serving every open line (boot, second half): input registered, ports
    /// listening, xterms started.
    pub fn start_all<T: Copy + Eq>(
        &mut self,
        ev: &mut Scope<'_, T, Token>,
        log: &mut KernelLog,
    ) -> Result<(), ChanError> {
        for slot in 0..self.slots.len() {
            self.register(slot, ev);
            self.setup_port(slot, ev, log)?;
        }
        Ok(())
    }

    fn register<T: Copy + Eq>(&mut self, slot: usize, ev: &mut Scope<'_, T, Token>) {
        if let Some(fd) = self.slots[slot].as_ref().and_then(|c| c.line.input_fd()) {
            ev.register(fd, Token::Line(slot));
        }
    }

    /// Starts the terminal emulator of an `xterm` line; a failure leaves the line
    /// without a terminal and is logged, as linux.uml does.
    fn setup_xterm<T: Copy + Eq>(
        &mut self,
        slot: usize,
        ev: &mut Scope<'_, T, Token>,
        log: &mut KernelLog,
    ) {
        let Some(c) = &mut self.slots[slot] else {
            return;
        };
        if !c.line.xterm {
            return;
        }
        let title = match c.line.family {
            Family::Con => format!("Virtual Console #{} ({})", c.line.index, self.umid),
            Family::Ssl => format!("Serial Line #{} ({})", c.line.index, self.umid),
        };
        let emulator = xterm::Emulator::from_switch(self.xterm.as_deref());
        let helper = port::helper_path(std::env::var_os("UML_PORT_HELPER"));
        match xterm::open(&emulator, &title, &helper, std::env::var_os("DISPLAY")) {
            Ok(conn) => {
                ev.register(conn.fd(), Token::Helper(slot));
                c.conn = Some(conn);
            }
            Err(e) => log.err(format!("{}: {e}", c.line.name())),
        }
    }

    /// Listens for a `port:` line's connections (one socket per port, shared); starts
    /// an `xterm` line's emulator.
    fn setup_port<T: Copy + Eq>(
        &mut self,
        slot: usize,
        ev: &mut Scope<'_, T, Token>,
        log: &mut KernelLog,
    ) -> Result<(), ChanError> {
        self.setup_xterm(slot, ev, log);
        let Some(c) = &self.slots[slot] else {
            return Ok(());
        };
        let Some(p) = c.line.port else { return Ok(()) };
        let name = c.line.name();
        if !self.ports.iter().any(|(q, _)| *q == p) {
            let l = port::listen(p).map_err(|source| ChanError::Listen {
                line: name.clone(),
                port: p,
                source,
            })?;
            ev.register(l.as_raw_fd(), Token::Port(p));
            self.ports.push((p, l));
        }
        log.info(format!(
            "{name}: waiting for a telnet connection on port {p}"
        ));
        Ok(())
    }

    /// Handles an event; lines typed come back for the shell.
    pub fn on_event<T: Copy + Eq>(
        &mut self,
        token: Token,
        ev: &mut Scope<'_, T, Token>,
        log: &mut KernelLog,
        tasks: &mut Tasks,
    ) -> Option<Typed> {
        match token {
            Token::Line(slot) => self.on_input(slot, ev, tasks),
            Token::Port(p) => {
                self.on_port(p, ev, log);
                None
            }
            Token::Helper(slot) => {
                self.on_helper(slot, ev, log, tasks);
                None
            }
        }
    }

    fn on_input<T: Copy + Eq>(
        &mut self,
        slot: usize,
        ev: &mut Scope<'_, T, Token>,
        tasks: &mut Tasks,
    ) -> Option<Typed> {
        let c = self.slots[slot].as_mut()?;
        let bytes = c.line.read_input().ok()?;
        if bytes.is_empty() {
            ev.unregister(Token::Line(slot));
            if c.line.port.is_none() && !c.line.xterm {
                return None;
            }
            // The telnet user left: wait for the next connection.
            c.line.detach_terminal();
            c.conn = None;
            c.editor.clear();
            tasks.remove(c.pid);
            return Some(Typed {
                slot,
                hung_up: true,
                ..Typed::default()
            });
        }
        if self.guest_ttys {
            return Some(Typed {
                slot,
                raw: bytes,
                ..Typed::default()
            });
        }
        let edited = c.editor.feed(&bytes);
        c.line.write_output(&edited.echo);
        if edited.interrupted && !self.guest_ttys {
            c.line.write_output(PROMPT.as_bytes());
        }
        Some(Typed {
            lines: edited.lines,
            slot,
            hung_up: false,
            interrupted: edited.interrupted,
            raw: Vec::new(),
        })
    }

    /// A connection on `port`: the first line waiting there gets it.
    fn on_port<T: Copy + Eq>(&mut self, p: u16, ev: &mut Scope<'_, T, Token>, log: &mut KernelLog) {
        let Some((_, listener)) = self.ports.iter().find(|(q, _)| *q == p) else {
            return;
        };
        while let Ok((stream, peer)) = listener.accept() {
            let waiting = self.slots.iter().position(|c| {
                c.as_ref().is_some_and(|c| {
                    c.line.port == Some(p) && c.conn.is_none() && c.line.input_fd().is_none()
                })
            });
            let Some(slot) = waiting else {
                log.warn(format!(
                    "port {p}: no free line for {peer}, connection closed"
                ));
                continue;
            };
            let helper = port::helper_path(std::env::var_os("UML_PORT_HELPER"));
            match port::Connection::start(stream, &helper, std::env::var_os("PATH")) {
                Ok(conn) => {
                    ev.register(conn.fd(), Token::Helper(slot));
                    if let Some(c) = &mut self.slots[slot] {
                        c.conn = Some(conn);
                    }
                }
                Err(e) => {
                    log.err(format!("port_connection : {e}"));
                    if std::env::var_os("UML_PORT_HELPER").is_none() {
                        log.err("Set UML_PORT_HELPER environment variable to path to uml-utilities port-helper binary");
                    }
                }
            }
        }
    }

    /// port-helper sent the terminal for a line's connection.
    fn on_helper<T: Copy + Eq>(
        &mut self,
        slot: usize,
        ev: &mut Scope<'_, T, Token>,
        log: &mut KernelLog,
        tasks: &mut Tasks,
    ) {
        let Some(c) = &mut self.slots[slot] else {
            return;
        };
        let Some(conn) = &mut c.conn else { return };
        match conn.receive_terminal() {
            Ok(None) => {}
            Ok(Some(tty)) => {
                let name = c.line.name();
                ev.unregister(Token::Helper(slot));
                if let Err(e) = c.line.attach_terminal(tty) {
                    log.err(format!("{name}: {e}"));
                    c.conn = None;
                    return;
                }
                c.editor = LineEditor::new(true);
                tasks.add(Task {
                    pid: c.pid,
                    name: format!("sh ({name})"),
                    tty: tty_name(&c.line),
                });
                self.register(slot, ev);
                self.prompt(slot);
            }
            Err(e) => {
                log.err(format!("{}: {e}", c.line.name()));
                c.conn = None;
                ev.unregister(Token::Helper(slot));
            }
        }
    }

    /// Writes guest output to a line (nothing if the slot is empty).
    pub fn write(&mut self, slot: usize, bytes: &[u8]) {
        if let Some(Some(c)) = self.slots.get_mut(slot) {
            c.line.write_output(bytes);
        }
    }

    /// The shell's prompt on a line that has input.
    pub fn prompt(&mut self, slot: usize) {
        if self.guest_ttys {
            return;
        }
        if let Some(Some(c)) = self.slots.get_mut(slot) {
            if c.line.input_fd().is_some() {
                c.line.write_output(PROMPT.as_bytes());
            }
        }
    }

    /// The slots of the lines there are.
    pub fn open_slots(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&s| self.slots[s].is_some())
            .collect()
    }

    pub fn prompt_all(&mut self) {
        for slot in 0..self.slots.len() {
            self.prompt(slot);
        }
    }

    /// SysRq e: every shell starts over on a fresh line.
    pub fn restart_shells(&mut self) {
        for slot in 0..self.slots.len() {
            if let Some(c) = &mut self.slots[slot] {
                c.editor.clear();
                c.line.write_output(b"\n");
            }
            self.prompt(slot);
        }
    }

    /// mconsole `config con<N>[=SPEC]` / `ssl<N>[=SPEC]`; None when `arg` names
    /// another device.
    pub fn config<T: Copy + Eq>(
        &mut self,
        arg: &str,
        config: &mut Config,
        ev: &mut Scope<'_, T, Token>,
        log: &mut KernelLog,
        tasks: &mut Tasks,
    ) -> Option<Answer> {
        let (dev, value) = match arg.split_once('=') {
            Some((dev, value)) => (dev, Some(value)),
            None => (arg, None),
        };
        let f = line_family(dev)?;
        let Some(value) = value else {
            return Some(match line_index(f, &arg[3..]) {
                Some(i) => (0, specs_of(config, f)[i].to_string()),
                None => (1, "line_get_config failed to parse device number".into()),
            });
        };
        let Some(i) = line_index(f, &dev[3..]) else {
            return Some((-libc::EINVAL, "Bad device number".into()));
        };
        let spec = match cmdline::parse_line(value) {
            Ok(s) => s,
            Err(e) => return Some((-libc::EINVAL, e.to_string())),
        };
        let slot = slot_of(f, i);
        if self.slots[slot].is_some() {
            return Some((-libc::EBUSY, "Device is already configured".into()));
        }
        let line = match Line::open(f, i, &spec) {
            Ok(line) => line,
            Err(e) => {
                log.err(e.to_string());
                return Some((-libc::EINVAL, e.to_string()));
            }
        };
        specs_of(config, f)[i] = spec;
        if let Some(line) = line {
            self.slots[slot] = Some(new_console(line, log, tasks));
            self.register(slot, ev);
            if let Err(e) = self.setup_port(slot, ev, log) {
                self.slots[slot] = None;
                return Some((-libc::EINVAL, e.to_string()));
            }
            self.prompt(slot);
        }
        Some((0, String::new()))
    }

    /// mconsole `remove con<N>` / `ssl<N>`; None when `arg` names another device.
    /// A removed line's slot comes back with the answer, so its shell's work can go.
    pub fn remove<T: Copy + Eq>(
        &mut self,
        arg: &str,
        config: &mut Config,
        ev: &mut Scope<'_, T, Token>,
        tasks: &mut Tasks,
    ) -> Option<(Answer, Option<usize>)> {
        let f = line_family(arg)?;
        let Some(i) = line_index(f, &arg[3..]) else {
            return Some(((1, "Invalid device number".into()), None));
        };
        let slot = slot_of(f, i);
        let Some(c) = self.slots[slot].take() else {
            return Some(((-libc::ENODEV, "Device doesn't exist".into()), None));
        };
        ev.unregister(Token::Line(slot));
        ev.unregister(Token::Helper(slot));
        tasks.remove(c.pid);
        specs_of(config, f)[i] = LineSpec::both(ChanSpec::None);
        Some(((0, String::new()), Some(slot)))
    }
}

/// A line gets its shell task (if it reads anything) and its boot log line.
fn new_console(line: Line, log: &mut KernelLog, tasks: &mut Tasks) -> Console {
    match (&line.device, line.family) {
        (Some(dev), Family::Con) => log.info(format!(
            "Virtual console {} assigned device '{}'",
            line.index,
            dev.display()
        )),
        (Some(dev), Family::Ssl) => log.info(format!(
            "Serial line {} assigned device {}",
            line.index,
            dev.display()
        )),
        _ => {}
    }
    let pid = tasks.new_pid();
    if line.input_fd().is_some() {
        tasks.add(Task {
            pid,
            name: format!("sh ({})", line.name()),
            tty: tty_name(&line),
        });
    }
    Console {
        editor: LineEditor::new(line.terminal),
        line,
        pid,
        conn: None,
    }
}
