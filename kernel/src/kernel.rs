//! Boot and the main loop: set up the host files, the mconsole socket, the disks and
//! the consoles, then serve every registered descriptor from one poll loop until the
//! guest halts or reboots. `stop` freezes the guest (console input is no longer read)
//! while mconsole keeps answering.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Instant;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use uml_proto::mconsole::{NotifyKind, Reply};

use crate::block::Disks;
use crate::chan::{port, xterm, Family, Line};
use crate::cmdline::{self, Config};
use crate::event::EventLoop;
use crate::host::{self, UmidHome};
use crate::klog::KernelLog;
use crate::machine::{self, Action, Machine, Notifier, Task};
use crate::mconsole::{self, Command, Incoming, Server};
use crate::proc;
use crate::shell::{self, LineEditor};
use std::net::TcpListener;

/// How the kernel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Halt(i32),
    Reboot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Signal,
    Mconsole,
    Line(usize),
    /// A `port:` channel's listening socket.
    Port(u16),
    /// port-helper's answer for a line's new connection.
    Helper(usize),
    /// Frames waiting on network device ethN.
    Net(usize),
}

/// A console or serial line with the shell running on it.
struct Console {
    line: Line,
    editor: LineEditor,
    pid: u32,
    /// A `port:` line's current telnet connection.
    conn: Option<port::Connection>,
}

pub struct Kernel {
    m: Machine,
    /// con0..con7 then ssl0..ssl7.
    consoles: Vec<Option<Console>>,
    server: Server,
    signals: SignalFd,
    events: EventLoop<Token>,
    stopped: bool,
    home: UmidHome,
    next_pid: u32,
    /// Listening sockets of `port:` channels, shared by the lines on the same port.
    ports: Vec<(u16, TcpListener)>,
}

/// A boot that could not complete: the message names the switch or file.
#[derive(Debug)]
pub struct BootError(pub String);

impl std::fmt::Display for BootError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn slot_of(family: Family, index: usize) -> usize {
    match family {
        Family::Con => index,
        Family::Ssl => cmdline::MAX_CON + index,
    }
}

impl Kernel {
    /// Boots: everything the host sees is set up when this returns.
    pub fn boot(
        config: Config,
        home_env: Option<PathBuf>,
        start: Instant,
    ) -> Result<Kernel, BootError> {
        let mut log = KernelLog::new(start, config.quiet);
        log.info(format!(
            "{} version {} (uml-kernel {}) {}",
            machine::SYSNAME,
            machine::RELEASE,
            env!("CARGO_PKG_VERSION"),
            machine::VERSION
        ));
        log.info(format!("Kernel command line: {}", config.args.join(" ")));
        if !config.unknown.is_empty() {
            log.info(format!(
                "Unknown kernel command line parameters \"{}\", will be passed to user space.",
                config.unknown.join(" ")
            ));
        }
        let mut consoles: Vec<Option<Console>> = (0..cmdline::MAX_CON + cmdline::MAX_SSL)
            .map(|_| None)
            .collect();
        let uml_dir =
            host::uml_dir(config.uml_dir.as_deref(), home_env.as_deref()).map_err(BootError)?;
        let home = UmidHome::create(&uml_dir, config.umid.as_deref()).map_err(BootError)?;
        let socket_path = home.socket_path();
        let server = Server::bind(&socket_path).map_err(|e| {
            BootError(format!(
                "{}: cannot bind the mconsole socket: {e}",
                socket_path.display()
            ))
        })?;
        let mut mask = SigSet::empty();
        for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            mask.add(s);
        }
        mask.thread_block()
            .map_err(|e| BootError(format!("cannot block signals: {e}")))?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| BootError(format!("signalfd: {e}")))?;
        let notify = match &config.notify {
            Some(p) => Some(
                Notifier::new(p.clone())
                    .map_err(|e| BootError(format!("mconsole=notify:{}: {e}", p.display())))?,
            ),
            None => None,
        };
        let mut m = Machine {
            disks: Disks::new(config.root_ubd()),
            config,
            log,
            boot: start,
            notify,
            tasks: vec![Task {
                pid: 1,
                name: "init".into(),
                tty: "?".into(),
            }],
            action: None,
            socket_path: socket_path.clone(),
            net: crate::net::Net::default(),
        };
        m.log.info(format!(
            "mconsole (version 2) initialized on {}",
            socket_path.display()
        ));
        let mut payload = socket_path.as_os_str().as_encoded_bytes().to_vec();
        payload.push(0);
        m.notify(NotifyKind::Socket, &payload);
        let mut k = Kernel {
            m,
            consoles: Vec::new(),
            server,
            signals,
            events: EventLoop::new(),
            stopped: false,
            home,
            next_pid: 2,
            ports: Vec::new(),
        };
        let specs: Vec<(Family, usize, cmdline::LineSpec)> =
            k.m.config
                .con
                .iter()
                .enumerate()
                .map(|(i, s)| (Family::Con, i, s.clone()))
                .chain(
                    k.m.config
                        .ssl
                        .iter()
                        .enumerate()
                        .map(|(i, s)| (Family::Ssl, i, s.clone())),
                )
                .collect();
        for (family, i, spec) in specs {
            if let Some(line) = Line::open(family, i, &spec).map_err(BootError)? {
                consoles[slot_of(family, i)] = Some(k.new_console(line));
            }
        }
        k.consoles = consoles;
        k.attach_disks()?;
        k.attach_net();
        k.events.register(k.signals.as_raw_fd(), Token::Signal);
        k.events.register(k.server.fd(), Token::Mconsole);
        for slot in 0..k.consoles.len() {
            k.register_console(slot);
            k.setup_port(slot).map_err(BootError)?;
        }
        k.m.log.info(format!(
            "Run {} as init process",
            k.m.config.init.as_deref().unwrap_or("the built-in shell")
        ));
        for slot in 0..k.consoles.len() {
            k.prompt(slot);
        }
        k.flush_log();
        Ok(k)
    }

    fn attach_disks(&mut self) -> Result<(), BootError> {
        let specs: Vec<_> = self.m.config.ubd.iter().flatten().cloned().collect();
        for spec in specs {
            let n = spec.index;
            if let Err(e) = self.m.disks.attach(spec, &mut self.m.log) {
                if self.m.disks.root == Some(n) {
                    let msg = format!("VFS: Unable to mount root fs on ubd{n}: {e}");
                    self.m.log.err(format!("Kernel panic - not syncing: {msg}"));
                    let mut payload = msg.clone().into_bytes();
                    payload.push(0);
                    self.m.notify(NotifyKind::Panic, &payload);
                    self.flush_log();
                    return Err(BootError(e));
                }
            }
        }
        Ok(())
    }

    /// Sets up the `eth<N>=` devices of the command line; one that fails is logged
    /// and left out, as linux.uml does.
    fn attach_net(&mut self) {
        for arg in self.m.config.unsupported.clone() {
            if let Err(e) = self.add_net(&arg) {
                self.m.log.err(e);
            }
        }
    }

    fn add_net(&mut self, arg: &str) -> Result<(), String> {
        let n = self.m.net.attach(arg, &mut self.m.log)?;
        for fd in self.m.net.fds(n) {
            self.events.register(fd, Token::Net(n));
        }
        Ok(())
    }

    /// Runs the lines typed into TCP shell sessions and sends back their output.
    fn serve_net_shells(&mut self) {
        for (dev, h, line) in self.m.net.take_shell_lines() {
            let word = line.trim();
            if word == "exit" || word == "logout" {
                self.m.net.shell_reply(dev, h, "", true);
                continue;
            }
            let out = shell::execute(&line, &mut self.m);
            self.flush_log();
            self.m.net.shell_reply(dev, h, &out, false);
        }
    }

    /// Watches the devices' current host descriptors (a helper-made tap comes and goes
    /// with `ifconfig up/down`).
    fn sync_net_fds(&mut self) {
        if !std::mem::take(&mut self.m.net.dirty) {
            return;
        }
        for n in 0..crate::net::MAX_ETH {
            self.events.unregister(Token::Net(n));
            for fd in self.m.net.fds(n) {
                self.events.register(fd, Token::Net(n));
            }
        }
    }

    fn new_console(&mut self, line: Line) -> Console {
        let name = line.name();
        match (&line.device, line.family) {
            (Some(dev), Family::Con) => self.m.log.info(format!(
                "Virtual console {} assigned device '{}'",
                line.index,
                dev.display()
            )),
            (Some(dev), Family::Ssl) => self.m.log.info(format!(
                "Serial line {} assigned device {}",
                line.index,
                dev.display()
            )),
            _ => {}
        }
        let pid = self.next_pid;
        self.next_pid += 1;
        let tty = match line.family {
            Family::Con => format!("tty{}", line.index),
            Family::Ssl => format!("ttyS{}", line.index),
        };
        if line.input_fd().is_some() {
            self.m.tasks.push(Task {
                pid,
                name: format!("sh ({name})"),
                tty,
            });
        }
        Console {
            editor: LineEditor::new(line.terminal),
            line,
            pid,
            conn: None,
        }
    }

    fn register_console(&mut self, slot: usize) {
        if let Some(fd) = self.consoles[slot].as_ref().and_then(|c| c.line.input_fd()) {
            self.events.register(fd, Token::Line(slot));
        }
    }

    /// Starts the terminal emulator of an `xterm` line; a failure leaves the line
    /// without a terminal and is logged, as linux.uml does.
    fn setup_xterm(&mut self, slot: usize) {
        let Some(c) = &self.consoles[slot] else {
            return;
        };
        if !c.line.xterm {
            return;
        }
        let title = match c.line.family {
            Family::Con => format!("Virtual Console #{} ({})", c.line.index, self.home.umid),
            Family::Ssl => format!("Serial Line #{} ({})", c.line.index, self.home.umid),
        };
        let name = c.line.name();
        let emulator = xterm::Emulator::from_switch(self.m.config.xterm.as_deref());
        let helper = port::helper_path(std::env::var_os("UML_PORT_HELPER"));
        match xterm::open(&emulator, &title, &helper, std::env::var_os("DISPLAY")) {
            Ok(conn) => {
                self.events.register(conn.fd(), Token::Helper(slot));
                if let Some(c) = &mut self.consoles[slot] {
                    c.conn = Some(conn);
                }
            }
            Err(e) => self.m.log.err(format!("{name}: {e}")),
        }
    }

    /// Listens for a `port:` line's connections (one socket per port, shared); starts
    /// an `xterm` line's emulator.
    fn setup_port(&mut self, slot: usize) -> Result<(), String> {
        self.setup_xterm(slot);
        let Some(c) = &self.consoles[slot] else {
            return Ok(());
        };
        let Some(p) = c.line.port else { return Ok(()) };
        let name = c.line.name();
        if !self.ports.iter().any(|(q, _)| *q == p) {
            let l = port::listen(p).map_err(|e| format!("{name}=port:{p}: cannot listen: {e}"))?;
            self.events.register(l.as_raw_fd(), Token::Port(p));
            self.ports.push((p, l));
        }
        self.m.log.info(format!(
            "{name}: waiting for a telnet connection on port {p}"
        ));
        Ok(())
    }

    /// A connection on `port`: the first line waiting there gets it.
    fn on_port(&mut self, p: u16) {
        let Some((_, listener)) = self.ports.iter().find(|(q, _)| *q == p) else {
            return;
        };
        while let Ok((stream, peer)) = listener.accept() {
            let waiting = (0..self.consoles.len()).find(|&s| {
                self.consoles[s].as_ref().is_some_and(|c| {
                    c.line.port == Some(p) && c.conn.is_none() && c.line.input_fd().is_none()
                })
            });
            let Some(slot) = waiting else {
                self.m.log.warn(format!(
                    "port {p}: no free line for {peer}, connection closed"
                ));
                continue;
            };
            let helper = port::helper_path(std::env::var_os("UML_PORT_HELPER"));
            match port::Connection::start(stream, &helper, std::env::var_os("PATH")) {
                Ok(conn) => {
                    self.events.register(conn.fd(), Token::Helper(slot));
                    if let Some(c) = &mut self.consoles[slot] {
                        c.conn = Some(conn);
                    }
                }
                Err(e) => {
                    self.m.log.err(format!("port_connection : {e}"));
                    if std::env::var_os("UML_PORT_HELPER").is_none() {
                        self.m.log.err("Set UML_PORT_HELPER environment variable to path to uml-utilities port-helper binary");
                    }
                }
            }
        }
    }

    /// port-helper sent the terminal for a line's connection.
    fn on_helper(&mut self, slot: usize) {
        let Some(c) = &mut self.consoles[slot] else {
            return;
        };
        let Some(conn) = &mut c.conn else { return };
        match conn.receive_terminal() {
            Ok(None) => {}
            Ok(Some(tty)) => {
                let name = c.line.name();
                self.events.unregister(Token::Helper(slot));
                if let Err(e) = c.line.attach_terminal(tty) {
                    self.m.log.err(format!("{name}: {e}"));
                    c.conn = None;
                    return;
                }
                c.editor = LineEditor::new(true);
                let tty = name.replace("con", "tty").replace("ssl", "ttyS");
                let pid = c.pid;
                if !self.m.tasks.iter().any(|t| t.pid == pid) {
                    self.m.tasks.push(Task {
                        pid,
                        name: format!("sh ({name})"),
                        tty,
                    });
                }
                self.register_console(slot);
                self.prompt(slot);
            }
            Err(e) => {
                self.m.log.err(format!("{}: {e}", c.line.name()));
                c.conn = None;
                self.events.unregister(Token::Helper(slot));
            }
        }
    }

    fn prompt(&mut self, slot: usize) {
        if let Some(c) = &mut self.consoles[slot] {
            if c.line.input_fd().is_some() {
                c.line.write_output(shell::PROMPT.as_bytes());
            }
        }
    }

    /// Writes queued log text to con0.
    fn flush_log(&mut self) {
        let text = self.m.log.take_console();
        if text.is_empty() {
            return;
        }
        if let Some(Some(c)) = self.consoles.first_mut() {
            c.line.write_output(&text);
        }
    }

    /// Runs until halt or reboot.
    pub fn run(&mut self) -> Exit {
        loop {
            let stopped = self.stopped;
            let timeout = self.m.net.poll_delay();
            let ready = match self
                .events
                .wait(timeout, |t| !stopped || !matches!(t, Token::Line(_)))
            {
                Ok(r) => r,
                Err(e) => {
                    self.m.log.err(format!("poll failed: {e}"));
                    return Exit::Halt(1);
                }
            };
            for t in ready {
                match t {
                    Token::Signal => self.on_signal(),
                    Token::Mconsole => self.serve_mconsole(),
                    Token::Port(p) => self.on_port(p),
                    Token::Helper(slot) => self.on_helper(slot),
                    Token::Line(slot) if !self.stopped => self.on_input(slot),
                    Token::Line(_) => {}
                    Token::Net(n) => self.m.net.service(n),
                }
                if let Some(exit) = self.take_action() {
                    self.flush_log();
                    return exit;
                }
            }
            self.m.net.poll_all();
            self.serve_net_shells();
            self.sync_net_fds();
            self.flush_log();
        }
    }

    fn take_action(&mut self) -> Option<Exit> {
        match self.m.action.take()? {
            Action::Halt(code) => Some(Exit::Halt(code)),
            Action::Reboot => Some(Exit::Reboot),
            Action::KillTasks => {
                for slot in 0..self.consoles.len() {
                    if let Some(c) = &mut self.consoles[slot] {
                        c.editor.clear();
                        c.line.write_output(b"\n");
                    }
                    self.prompt(slot);
                }
                None
            }
        }
    }

    fn on_signal(&mut self) {
        if let Ok(Some(info)) = self.signals.read_signal() {
            self.m
                .log
                .warn(format!("Received signal {}, shutting down", info.ssi_signo));
            self.m.sync_disks();
            self.m.action = Some(Action::Halt(1));
        }
    }

    fn on_input(&mut self, slot: usize) {
        let Some(c) = &mut self.consoles[slot] else {
            return;
        };
        let bytes = match c.line.read_input() {
            Ok(b) => b,
            Err(_) => return,
        };
        if bytes.is_empty() {
            self.events.unregister(Token::Line(slot));
            if c.line.port.is_some() || c.line.xterm {
                // The telnet user left: wait for the next connection.
                c.line.detach_terminal();
                c.conn = None;
                c.editor.clear();
                let pid = c.pid;
                self.m.tasks.retain(|t| t.pid != pid);
            }
            return;
        }
        let edited = c.editor.feed(&bytes);
        c.line.write_output(&edited.echo);
        if edited.interrupted {
            c.line.write_output(shell::PROMPT.as_bytes());
        }
        for line in edited.lines {
            let out = shell::execute(&line, &mut self.m);
            self.flush_log();
            let Some(c) = &mut self.consoles[slot] else {
                return;
            };
            c.line.write_output(out.as_bytes());
            if self.m.action.is_some() {
                return;
            }
            c.line.write_output(shell::PROMPT.as_bytes());
        }
    }

    fn serve_mconsole(&mut self) {
        while let Some((datagram, from)) = self.server.receive() {
            match mconsole::classify(&datagram) {
                Incoming::Version0 => self.server.send_version0(&from),
                Incoming::Refuse(r) => self.server.send(&from, &r),
                Incoming::Ignore => {}
                Incoming::Run {
                    command,
                    wrong_version,
                } => {
                    if wrong_version {
                        self.server.send(
                            &from,
                            &mconsole::error("This driver only supports version 2 clients"),
                        );
                    }
                    let replies = match command {
                        Some(c) => self.run_command(c, &from),
                        None => mconsole::error("Unknown command"),
                    };
                    self.server.send(&from, &replies);
                }
            }
            self.flush_log();
            if self.m.action.is_some() {
                return;
            }
        }
    }

    fn run_command(
        &mut self,
        command: Command,
        from: &std::os::unix::net::SocketAddr,
    ) -> Vec<Reply> {
        match command {
            Command::Version => mconsole::answer(0, &machine::uname_line()),
            Command::Help => mconsole::answer(0, mconsole::HELP),
            Command::Halt => {
                self.m.sync_disks();
                self.m.log.info("reboot: System halted");
                self.m.action = Some(Action::Halt(0));
                mconsole::answer(0, "")
            }
            Command::Reboot | Command::Cad => {
                self.m.sync_disks();
                self.m.log.info("reboot: Restarting system");
                self.m.action = Some(Action::Reboot);
                mconsole::answer(0, "")
            }
            Command::Stop if self.stopped => mconsole::error("Already stopped"),
            Command::Stop => {
                self.stopped = true;
                mconsole::answer(0, "stopped")
            }
            Command::Go if self.stopped => {
                self.stopped = false;
                mconsole::answer(0, "")
            }
            Command::Go => mconsole::error("Not stopped"),
            Command::Log(text) => {
                self.m.log.warn(String::from_utf8_lossy(&text));
                mconsole::answer(0, "")
            }
            Command::Proc(name) => match proc::read(&self.m, &name) {
                Ok(text) => mconsole::streamed(b"\n", text.as_bytes()),
                Err(proc::ProcError::Open) => mconsole::error("Failed to open file"),
                Err(proc::ProcError::Read) => mconsole::error("Read of file failed"),
            },
            Command::Sysrq(key) => self.sysrq(key, from),
            Command::Stack(arg) => self.stack(&arg),
            Command::Config(arg) => {
                let (err, text) = self.config(&arg);
                mconsole::answer(err, &text)
            }
            Command::Remove(arg) => {
                let (err, text) = self.remove(&arg);
                mconsole::answer(err, &text)
            }
        }
    }

    fn sysrq(&mut self, key: Option<char>, from: &std::os::unix::net::SocketAddr) -> Vec<Reply> {
        let mut out = String::new();
        match key {
            Some('b') => {
                self.server.send(from, &[Reply { err: 0, more: false, text: Vec::new() }]);
                self.m.log.info("sysrq: Resetting");
                self.m.action = Some(Action::Reboot);
                return Vec::new();
            }
            Some('o') => {
                out.push_str("sysrq: Power Off\n");
                self.m.action = Some(Action::Halt(0));
            }
            Some('s') => {
                out.push_str("sysrq: Emergency Sync\n");
                if self.m.sync_disks() {
                    out.push_str("Emergency Sync complete\n");
                }
            }
            Some('u') => {
                out.push_str("sysrq: Emergency Remount R/O\n");
                self.m.sync_disks();
                out.push_str("Emergency Remount complete\n");
            }
            Some('m') => {
                out.push_str("sysrq: Show Memory\n");
                out.push_str(&proc::read(&self.m, "meminfo").unwrap_or_default());
            }
            Some('t') => {
                out.push_str("sysrq: Show State\n");
                out.push_str(&self.m.task_list());
            }
            Some('e') => {
                out.push_str("sysrq: Terminate All Tasks\n");
                self.m.action = Some(Action::KillTasks);
            }
            _ => out.push_str("sysrq: HELP : reboot(b) terminate-all-tasks(e) help(h) show-memory-usage(m) poweroff(o) sync(s) show-task-states(t) unmount(u) \n"),
        }
        self.m.log.info(&out);
        mconsole::streamed(b"", out.as_bytes())
    }

    fn stack(&mut self, arg: &str) -> Vec<Reply> {
        let digits: String = arg.chars().take_while(|c| c.is_ascii_digit()).collect();
        let Ok(pid) = digits.parse::<u32>() else {
            return mconsole::error("Please specify a pid");
        };
        let Some(task) = self.m.find_task(pid).cloned() else {
            return mconsole::error("Couldn't find that pid");
        };
        let wait = if pid == 1 {
            "init_wait_children"
        } else {
            "shell_read_line"
        };
        let text = format!(
            "task:{:<15} state:S pid:{pid}\nCall Trace:\n <TASK>\n {wait}+0x1c/0x40\n event_loop_poll+0x4a/0x90\n kernel_main+0x120/0x200\n </TASK>\n",
            task.name
        );
        self.m.log.info(&text);
        mconsole::streamed(b"", text.as_bytes())
    }

    fn config(&mut self, arg: &str) -> (i32, String) {
        if let Some((dev, _)) = arg.split_once('=') {
            if dev.starts_with("ubd") {
                return self.m.disks.config_add(arg, &mut self.m.log);
            }
            if let Some(f) = line_family(dev) {
                return self.config_line(f, dev, arg);
            }
            if dev == "mem" {
                let v = &arg[4..];
                return if v.starts_with('+') || v.starts_with('-') {
                    (1, "Memory hotplug is not supported by this kernel".into())
                } else {
                    (
                        -libc::EINVAL,
                        "Expected increment to start with '-' or '+'".into(),
                    )
                };
            }
            if dev.starts_with("eth") {
                return match self.add_net(arg) {
                    Ok(()) => (0, String::new()),
                    Err(e) => (-libc::EINVAL, e),
                };
            }
            return (1, "Bad configuration option".into());
        }
        if let Some(rest) = arg.strip_prefix("ubd") {
            return self.m.disks.config_query(rest);
        }
        if let Some(f) = line_family(arg) {
            return match self.line_index(f, &arg[3..]) {
                Some(i) => (0, self.line_spec(f, i).to_string()),
                None => (1, "line_get_config failed to parse device number".into()),
            };
        }
        if arg.starts_with("mem") {
            return (0, self.m.config.mem.to_string());
        }
        if let Some(n) = arg.strip_prefix("eth") {
            return match n
                .parse::<usize>()
                .ok()
                .and_then(|n| self.m.net.devs.get(n)?.as_ref())
            {
                Some(d) => (0, d.spec.text.clone()),
                None => (-libc::ENODEV, "Device doesn't exist".into()),
            };
        }
        (1, "Bad configuration option".into())
    }

    fn line_index(&self, f: Family, s: &str) -> Option<usize> {
        let max = if f == Family::Con {
            cmdline::MAX_CON
        } else {
            cmdline::MAX_SSL
        };
        s.parse::<usize>().ok().filter(|&i| i < max)
    }

    fn line_spec(&self, f: Family, i: usize) -> &cmdline::LineSpec {
        match f {
            Family::Con => &self.m.config.con[i],
            Family::Ssl => &self.m.config.ssl[i],
        }
    }

    fn config_line(&mut self, f: Family, dev: &str, arg: &str) -> (i32, String) {
        let Some(i) = self.line_index(f, &dev[3..]) else {
            return (-libc::EINVAL, "Bad device number".into());
        };
        let spec = match cmdline::parse_line(&arg[dev.len() + 1..]) {
            Ok(s) => s,
            Err(e) => return (-libc::EINVAL, e),
        };
        let slot = slot_of(f, i);
        if self.consoles[slot].is_some() {
            return (-libc::EBUSY, "Device is already configured".into());
        }
        match Line::open(f, i, &spec) {
            Ok(line) => {
                match f {
                    Family::Con => self.m.config.con[i] = spec,
                    Family::Ssl => self.m.config.ssl[i] = spec,
                }
                if let Some(line) = line {
                    let c = self.new_console(line);
                    self.consoles[slot] = Some(c);
                    self.register_console(slot);
                    if let Err(e) = self.setup_port(slot) {
                        self.consoles[slot] = None;
                        return (-libc::EINVAL, e);
                    }
                    self.prompt(slot);
                }
                (0, String::new())
            }
            Err(e) => {
                self.m.log.err(&e);
                (-libc::EINVAL, e)
            }
        }
    }

    fn remove(&mut self, arg: &str) -> (i32, String) {
        if let Some(rest) = arg.strip_prefix("ubd") {
            return self.m.disks.remove(rest);
        }
        if let Some(f) = line_family(arg) {
            let Some(i) = self.line_index(f, &arg[3..]) else {
                return (1, "Invalid device number".into());
            };
            let slot = slot_of(f, i);
            let Some(c) = self.consoles[slot].take() else {
                return (-libc::ENODEV, "Device doesn't exist".into());
            };
            self.events.unregister(Token::Line(slot));
            self.events.unregister(Token::Helper(slot));
            self.m.tasks.retain(|t| t.pid != c.pid);
            match f {
                Family::Con => {
                    self.m.config.con[i] = cmdline::LineSpec::both(cmdline::ChanSpec::None)
                }
                Family::Ssl => {
                    self.m.config.ssl[i] = cmdline::LineSpec::both(cmdline::ChanSpec::None)
                }
            }
            return (0, String::new());
        }
        if let Some(n) = arg.strip_prefix("eth") {
            let Ok(n) = n.parse::<usize>() else {
                return (1, "Invalid device number".into());
            };
            return match self.m.net.remove(n) {
                Ok(()) => {
                    self.events.unregister(Token::Net(n));
                    (0, String::new())
                }
                Err(e) => e,
            };
        }
        (1, "Bad remove option".into())
    }

    /// Runs one mconsole command as the loop does for a request from `from`, and
    /// returns its replies (the fuzz target drives command execution through this).
    pub fn execute_mconsole(
        &mut self,
        command: Command,
        from: &std::os::unix::net::SocketAddr,
    ) -> Vec<Reply> {
        let replies = self.run_command(command, from);
        self.flush_log();
        replies
    }

    /// Leaves the umid directory behind (a panic).
    pub fn keep_umid_dir(&mut self) {
        self.home.keep = true;
    }

    pub fn machine(&mut self) -> &mut Machine {
        &mut self.m
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
