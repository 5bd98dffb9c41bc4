//! Boot and the main loop: set up the host files, the mconsole socket, the disks, the
//! root filesystem and the consoles, then serve every registered descriptor from one
//! poll loop (which also writes dirty filesystem blocks back every 30 s) until the
//! guest halts or reboots, when the filesystems are written back and marked clean. `stop` freezes the guest (console input is no longer read)
//! while mconsole keeps answering. mconsole `umlfs` hands over a FUSE connection that
//! the loop then serves (`fs::fuse`); halt and reboot close them.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Instant;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use uml_proto::mconsole::{NotifyKind, Reply};

use crate::block::{BlockError, Disks};
use crate::chan::consoles::{Consoles, Token as ChanToken};
use crate::chan::ldisc;
use crate::chan::ChanError;
use crate::cmdline::Config;
use crate::event::EventLoop;
use crate::fs::boot::{Files, RootOptions};
use crate::fs::fuse::Umlfs;
use crate::host::{self, UmidHome};
use crate::job::{Interpreter, Jobs, Run, Sink};
use crate::klog::KernelLog;
use crate::machine::{self, Action, Machine, Notifier};
use crate::mconsole::{self, Command, Incoming, Server};
use crate::proc;
use crate::syscalls::sentry::{Sentry, StartError};
use crate::sysrq;
use crate::task::Tasks;

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
    /// A console or serial line's descriptors.
    Chan(ChanToken),
    /// Frames waiting on network device ethN.
    Net(usize),
    /// An answer a job waits for (a helper's reply).
    Job,
    /// Requests waiting on umlfs connection N.
    Fuse(usize),
    /// A guest process stopped or ended (SIGCHLD).
    Guests,
}

pub struct Kernel {
    m: Machine,
    consoles: Consoles,
    server: Server,
    signals: SignalFd,
    events: EventLoop<Token>,
    stopped: bool,
    home: UmidHome,
    /// Runs the command lines typed on consoles and TCP shell sessions.
    init: Interpreter,
    /// Commands still running, and lines typed meanwhile.
    jobs: Jobs,
    /// The FUSE connections serving the guest's files to the host (mconsole `umlfs`).
    umlfs: Umlfs,
    /// The guest processes, when init is a program of the root disk (`init=PATH`).
    sentry: Option<Sentry>,
}

/// A boot that could not complete: the message names the switch or file.
#[derive(Debug)]
pub enum BootError {
    /// The umid directory or its files (host.rs's message).
    Host(String),
    Mconsole {
        path: PathBuf,
        source: std::io::Error,
    },
    Signals(nix::Error),
    Signalfd(nix::Error),
    Notify {
        path: PathBuf,
        source: std::io::Error,
    },
    Chan(ChanError),
    /// The root disk would not open.
    Root(BlockError),
}

impl std::fmt::Display for BootError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BootError::Host(text) => f.write_str(text),
            BootError::Mconsole { path, source } => write!(
                f,
                "{}: cannot bind the mconsole socket: {source}",
                path.display()
            ),
            BootError::Signals(e) => write!(f, "cannot block signals: {e}"),
            BootError::Signalfd(e) => write!(f, "signalfd: {e}"),
            BootError::Notify { path, source } => {
                write!(f, "mconsole=notify:{}: {source}", path.display())
            }
            BootError::Chan(e) => e.fmt(f),
            BootError::Root(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BootError {}

impl Kernel {
    /// Boots: everything the host sees is set up when this returns. `init` runs the
    /// command lines typed into the guest.
    pub fn boot(
        config: Config,
        home_env: Option<PathBuf>,
        start: Instant,
        init: Interpreter,
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
        let unknown: Vec<&str> = config
            .unknown
            .iter()
            .map(String::as_str)
            .filter(|a| !RootOptions::is_root_arg(a))
            .collect();
        if !unknown.is_empty() {
            log.info(format!(
                "Unknown kernel command line parameters \"{}\", will be passed to user space.",
                unknown.join(" ")
            ));
        }
        let uml_dir = host::uml_dir(config.uml_dir.as_deref(), home_env.as_deref())
            .map_err(BootError::Host)?;
        let home = UmidHome::create(&uml_dir, config.umid.as_deref()).map_err(BootError::Host)?;
        let socket_path = home.socket_path();
        let server = Server::bind(&socket_path).map_err(|source| BootError::Mconsole {
            path: socket_path.clone(),
            source,
        })?;
        let mut mask = SigSet::empty();
        for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            mask.add(s);
        }
        mask.thread_block().map_err(BootError::Signals)?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(BootError::Signalfd)?;
        let notify = match &config.notify {
            Some(p) => Some(
                Notifier::new(p.clone()).map_err(|source| BootError::Notify {
                    path: p.clone(),
                    source,
                })?,
            ),
            None => None,
        };
        let mut m = Machine {
            disks: Disks::new(config.root_ubd()),
            // Replaced once the disks are open (`Machine::mount_root`).
            files: Files::boot(None, &RootOptions::default(), 0, &[]).0,
            config,
            log,
            boot: start,
            notify,
            tasks: Tasks::with_init(),
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
        let mut consoles = Consoles::new(&home.umid, m.config.xterm.clone());
        consoles
            .open_all(&m.config, &mut m.log, &mut m.tasks)
            .map_err(BootError::Chan)?;
        let mut k = Kernel {
            m,
            consoles,
            server,
            signals,
            events: EventLoop::new(),
            stopped: false,
            home,
            init,
            jobs: Jobs::default(),
            umlfs: Umlfs::default(),
            sentry: None,
        };
        k.attach_disks()?;
        k.m.mount_root();
        k.attach_net();
        k.events.register(k.signals.as_raw_fd(), Token::Signal);
        k.events.register(k.server.fd(), Token::Mconsole);
        k.consoles
            .start_all(&mut k.events.scope(Token::Chan), &mut k.m.log)
            .map_err(BootError::Chan)?;
        match k.m.config.init.clone().filter(|i| i != "builtin") {
            Some(path) => k.start_init(&path),
            None => {
                k.m.log.info("Run the built-in shell as init process");
                k.consoles.prompt_all();
            }
        }
        k.flush_log();
        Ok(k)
    }

    /// Starts `init=PATH` from the root filesystem as pid 1, with the command line's
    /// plain words as its arguments and its unknown `key=value` words in its
    /// environment, as Linux does. A missing or broken init panics (halts with 1).
    fn start_init(&mut self, path: &str) {
        let mut argv = vec![path.to_string()];
        let mut envp = vec!["HOME=/".to_string(), "TERM=linux".to_string()];
        for word in &self.m.config.args {
            // linux.uml's mem= is a switch of UML's own that Linux's generic parser
            // does not know either: its init finds it in the environment.
            let passed = self.m.config.unknown.contains(word) || word.starts_with("mem=");
            if !passed || RootOptions::is_root_arg(word) {
                continue;
            }
            match word.contains('=') {
                true => envp.push(word.clone()),
                false => argv.push(word.clone()),
            }
        }
        self.m.log.info(format!("Run {path} as init process"));
        self.flush_log();
        let mut sentry = match Sentry::new() {
            Ok(s) => s,
            Err(e) => {
                self.m
                    .log
                    .err(format!("Kernel panic - not syncing: sentry: {e}"));
                self.m.action = Some(Action::Halt(1));
                return;
            }
        };
        match sentry.start_init(&mut self.m, path, &argv, &envp) {
            Ok(()) => {
                self.consoles.guest_ttys = true;
                sentry.set_lines(&self.consoles.open_slots());
                self.events.register(sentry.fd(), Token::Guests);
                self.sentry = Some(sentry);
            }
            Err(StartError::NotFound(errno)) => {
                self.m.log.err(format!(
                    "Kernel panic - not syncing: Requested init {path} failed (error {errno})."
                ));
                self.m.action = Some(Action::Halt(1));
            }
            Err(StartError::Failed(e)) => {
                self.m.log.err(format!(
                    "Kernel panic - not syncing: Requested init {path} failed ({e})."
                ));
                self.m.action = Some(Action::Halt(1));
            }
        }
    }

    /// Serves the guest processes and writes what they printed to con0. Kernel lines
    /// logged while serving them (reboot, panic) follow what the guests printed in the
    /// same turn: they are its consequences.
    fn serve_guests(&mut self) {
        if self.sentry.is_none() {
            return;
        }
        self.flush_log();
        let Some(s) = self.sentry.as_mut() else {
            return;
        };
        s.service(&mut self.m);
        self.write_guest_output();
        self.flush_log();
    }

    /// Writes what guests wrote to the ttys (and the ttys' echo) to their lines.
    fn write_guest_output(&mut self) {
        let Some(s) = self.sentry.as_mut() else {
            return;
        };
        for (slot, out) in s.take_output() {
            self.consoles.write(slot, &out);
        }
    }

    /// Tries the guests' waiting calls again after the network stacks ran (a socket may
    /// have become ready) and writes what they printed.
    fn retry_guests(&mut self) {
        let Some(s) = self.sentry.as_mut() else {
            return;
        };
        s.retry_blocked(&mut self.m);
        self.write_guest_output();
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
                    return Err(BootError::Root(e));
                }
            }
        }
        Ok(())
    }

    fn attach_net(&mut self) {
        let args = self.m.config.unsupported.clone();
        self.m
            .net
            .attach_all(&args, &mut self.events.scope(Token::Net), &mut self.m.log);
    }

    /// Runs the lines typed into TCP shell sessions; drops the jobs of sessions that
    /// ended.
    fn serve_net_shells(&mut self) {
        for (dev, h) in self.m.net.take_closed_sessions() {
            self.drop_sink(Sink::Session(dev, h));
        }
        for (dev, h, line) in self.m.net.take_shell_lines() {
            self.submit(Sink::Session(dev, h), line);
        }
    }

    /// A line typed on `sink`: run now, or after the job running there.
    fn submit(&mut self, sink: Sink, line: String) {
        if self.jobs.busy(sink) {
            self.jobs.queue(sink, line);
            return;
        }
        if let Sink::Session(dev, h) = sink {
            let word = line.trim();
            if word == "exit" || word == "logout" {
                self.m.net.shell_write(dev, h, "", Some(true));
                return;
            }
        }
        match (self.init)(&line, &mut self.m) {
            Run::Done(out) => self.deliver(sink, &out, true),
            Run::Job(job) => self.jobs.start(sink, job),
        }
    }

    /// Writes a command's output to where it was typed; a prompt follows when it is
    /// over (not after halt or reboot).
    fn deliver(&mut self, sink: Sink, text: &str, done: bool) {
        self.flush_log();
        match sink {
            Sink::Console(slot) => {
                self.consoles.write(slot, text.as_bytes());
                if done && self.m.action.is_none() {
                    self.consoles.write(slot, ldisc::PROMPT.as_bytes());
                }
            }
            Sink::Session(dev, h) => {
                self.m.net.shell_write(dev, h, text, done.then_some(false));
            }
        }
    }

    /// Polls every job until none finishes; a finished one gives its sink to the next
    /// queued line. Jobs do not run while the guest is stopped.
    fn poll_jobs(&mut self) {
        if self.stopped {
            return;
        }
        loop {
            let mut finished = false;
            for (sink, progress) in self.jobs.poll(&mut self.m) {
                if progress.done || !progress.output.is_empty() {
                    self.deliver(sink, &progress.output, progress.done);
                }
                if progress.done {
                    finished = true;
                    self.start_queued(sink);
                }
            }
            if !finished || self.m.action.is_some() {
                return;
            }
        }
    }

    /// Runs the lines queued on `sink` until one becomes a job.
    fn start_queued(&mut self, sink: Sink) {
        while self.m.action.is_none() {
            let Some(line) = self.jobs.next_line(sink) else {
                return;
            };
            self.submit(sink, line);
        }
    }

    /// Drops the job and queued lines of `sink` (its console or session went away).
    fn drop_sink(&mut self, sink: Sink) {
        self.jobs.drop_where(&mut self.m, |s| s == sink);
    }

    /// Writes queued log text to con0.
    fn flush_log(&mut self) {
        let text = self.m.log.take_console();
        if text.is_empty() {
            return;
        }
        self.consoles.write(0, &text);
    }

    /// Runs until halt or reboot.
    pub fn run(&mut self) -> Exit {
        if let Some(exit) = self.take_action() {
            self.flush_log();
            return exit;
        }
        loop {
            let stopped = self.stopped;
            let busy = self.jobs.busy_consoles();
            // Stopped, the jobs wait too: their deadlines must not spin the loop.
            let job_delay = match stopped {
                true => None,
                false => self
                    .jobs
                    .deadline()
                    .map(|d| d.saturating_duration_since(Instant::now())),
            };
            let writeback = self
                .m
                .files
                .next_writeback()
                .saturating_duration_since(Instant::now());
            // Stopped (mconsole stop), the guest processes are frozen too: no syscall
            // of theirs is answered until `go`.
            let guests = match stopped {
                true => None,
                false => self.sentry.as_ref().and_then(Sentry::timeout),
            };
            let timeout = [self.m.net.poll_delay(), job_delay, Some(writeback), guests]
                .into_iter()
                .flatten()
                .min();
            // A console whose command still runs keeps its input until it is over.
            self.events.unregister(Token::Job);
            for fd in self.jobs.fds() {
                self.events.register(fd, Token::Job);
            }
            let ready = match self.events.wait(timeout, |t| match t {
                Token::Chan(ChanToken::Line(slot)) => !stopped && !busy.contains(&slot),
                Token::Job | Token::Fuse(_) | Token::Guests => !stopped,
                _ => true,
            }) {
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
                    Token::Chan(ChanToken::Line(_)) if self.stopped => {}
                    Token::Chan(t) => self.on_chan(t),
                    Token::Net(n) => self.m.net.service(n),
                    Token::Job => {}    // the jobs are polled below
                    Token::Guests => {} // served below, every turn
                    Token::Fuse(slot) => self.serve_umlfs(slot),
                }
                if let Some(exit) = self.take_action() {
                    self.flush_log();
                    return exit;
                }
            }
            for line in self.m.files.tick(Instant::now()) {
                self.m.log.err(line);
            }
            if !stopped {
                self.serve_guests();
            }
            if let Some(exit) = self.take_action() {
                self.flush_log();
                return exit;
            }
            self.m.net.poll_all();
            self.retry_guests();
            self.serve_net_shells();
            self.poll_jobs();
            if let Some(exit) = self.take_action() {
                self.flush_log();
                return exit;
            }
            self.m.net.sync_fds(&mut self.events.scope(Token::Net));
            self.flush_log();
        }
    }

    fn take_action(&mut self) -> Option<Exit> {
        match self.m.action.take()? {
            Action::Halt(code) => {
                self.close_umlfs();
                self.m.unmount_all();
                Some(Exit::Halt(code))
            }
            Action::Reboot => {
                self.close_umlfs();
                self.m.unmount_all();
                Some(Exit::Reboot)
            }
            Action::KillTasks(sig) => {
                match self.sentry.as_mut() {
                    Some(s) => s.signal_all_but_init(&mut self.m, sig),
                    None => {
                        self.jobs.drop_where(&mut self.m, |_| true);
                        self.consoles.restart_shells();
                    }
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

    /// A console event; typed lines go to the shell.
    fn on_chan(&mut self, t: ChanToken) {
        let typed = self.consoles.on_event(
            t,
            &mut self.events.scope(Token::Chan),
            &mut self.m.log,
            &mut self.m.tasks,
        );
        let Some(typed) = typed else { return };
        if let Some(s) = self.sentry.as_mut() {
            // init is a guest program: typed bytes are the ttys' input.
            if typed.hung_up {
                s.tty_hangup(&mut self.m, typed.slot);
            }
            if !typed.raw.is_empty() {
                s.tty_input(&mut self.m, typed.slot, &typed.raw);
            }
            self.write_guest_output();
            return;
        }
        if typed.hung_up {
            self.drop_sink(Sink::Console(typed.slot));
        }
        for line in typed.lines {
            self.submit(Sink::Console(typed.slot), line);
            if self.m.action.is_some() {
                return;
            }
        }
    }

    /// Answers the requests waiting on umlfs connection `slot` (the guest's /proc is
    /// brought up to date first, as for the shell); a connection that ended is let go.
    fn serve_umlfs(&mut self, slot: usize) {
        proc::refresh(&self.m);
        if let Some(why) = self.umlfs.service(slot, &mut self.m.files.vfs) {
            self.events.unregister(Token::Fuse(slot));
            self.m
                .log
                .info(format!("umlfs: connection {slot} ended: {why}"));
        }
    }

    /// mconsole `umlfs`: takes the FUSE descriptor that came with the request.
    fn accept_umlfs(&mut self, fd: Option<std::os::fd::OwnedFd>) -> Vec<Reply> {
        match self.umlfs.accept(fd, &mut self.m.files.vfs) {
            Ok((slot, text)) => {
                if let Some(raw) = self.umlfs.fd(slot) {
                    self.events.register(raw, Token::Fuse(slot));
                }
                self.m.log.info(text.clone());
                mconsole::answer(0, &text)
            }
            Err(text) => mconsole::error(&text),
        }
    }

    /// Ends every umlfs connection (halt, reboot): the host's mounts answer ENOTCONN.
    fn close_umlfs(&mut self) {
        for slot in self.umlfs.close_all(&mut self.m.files.vfs) {
            self.events.unregister(Token::Fuse(slot));
            self.m.log.info(format!(
                "umlfs: connection {slot} closed: the guest is going down"
            ));
        }
    }

    fn serve_mconsole(&mut self) {
        while let Some((datagram, from, fd)) = self.server.receive() {
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
                        Some(Command::Umlfs(_)) => self.accept_umlfs(fd),
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
            Command::Cad if self.sentry.as_ref().is_some_and(|s| !s.cad_reboots) => {
                if let Some(s) = self.sentry.as_mut() {
                    s.cad(&mut self.m);
                }
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
            Command::Proc(name) => match proc::read_mounted(&mut self.m, &name) {
                Ok(text) => mconsole::streamed(b"\n", text.as_bytes()),
                Err(proc::ProcError::Open) => mconsole::error("Failed to open file"),
                Err(proc::ProcError::Read) => mconsole::error("Read of file failed"),
            },
            Command::Sysrq(key) => self.sysrq(key, from),
            Command::Stack(arg) => match sysrq::stack(&arg, &mut self.m) {
                Ok(text) => mconsole::streamed(b"", text.as_bytes()),
                Err(e) => mconsole::error(&e.to_string()),
            },
            Command::Config(arg) => {
                let (err, text) = self.config(&arg);
                mconsole::answer(err, &text)
            }
            Command::Remove(arg) => {
                let (err, text) = self.remove(&arg);
                mconsole::answer(err, &text)
            }
            Command::Umlfs(_) => self.accept_umlfs(None),
        }
    }

    fn sysrq(&mut self, key: Option<char>, from: &std::os::unix::net::SocketAddr) -> Vec<Reply> {
        // With guest programs running, SysRq t lists them rather than the built-in tasks.
        if let (Some('t'), Some(s)) = (key, self.sentry.as_ref()) {
            let out = format!("sysrq: Show State\n{}", s.listing());
            self.m.log.info(&out);
            return mconsole::streamed(b"", out.as_bytes());
        }
        match sysrq::run(key, &mut self.m) {
            sysrq::Outcome::Reset => {
                let ok = Reply {
                    err: 0,
                    more: false,
                    text: Vec::new(),
                };
                self.server.send(from, &[ok]);
                Vec::new()
            }
            sysrq::Outcome::Text(out) => mconsole::streamed(b"", out.as_bytes()),
        }
    }

    /// mconsole `config`: each device family answers for its own devices.
    fn config(&mut self, arg: &str) -> (i32, String) {
        if let Some(answer) = self.consoles.config(
            arg,
            &mut self.m.config,
            &mut self.events.scope(Token::Chan),
            &mut self.m.log,
            &mut self.m.tasks,
        ) {
            if let Some(sentry) = self.sentry.as_mut() {
                sentry.set_lines(&self.consoles.open_slots());
            }
            return answer;
        }
        if let Some(answer) = self.m.disks.config(arg, &mut self.m.log) {
            return answer;
        }
        if let Some(answer) =
            self.m
                .net
                .config(arg, &mut self.events.scope(Token::Net), &mut self.m.log)
        {
            return answer;
        }
        match arg.split_once('=') {
            Some(("mem", v)) if v.starts_with('+') || v.starts_with('-') => {
                (1, "Memory hotplug is not supported by this kernel".into())
            }
            Some(("mem", _)) => (
                -libc::EINVAL,
                "Expected increment to start with '-' or '+'".into(),
            ),
            None if arg.starts_with("mem") => (0, self.m.config.mem.to_string()),
            _ => (1, "Bad configuration option".into()),
        }
    }

    /// mconsole `remove`: each device family answers for its own devices.
    fn remove(&mut self, arg: &str) -> (i32, String) {
        if let Some(answer) = self.m.disks.remove_dev(arg) {
            return answer;
        }
        if let Some((answer, removed)) = self
            .m
            .net
            .remove_dev(arg, &mut self.events.scope(Token::Net))
        {
            if let Some(n) = removed {
                let on_dev = |s| matches!(s, Sink::Session(d, _) if d == n);
                self.jobs.drop_where(&mut self.m, on_dev);
            }
            return answer;
        }
        if let Some((answer, removed)) = self.consoles.remove(
            arg,
            &mut self.m.config,
            &mut self.events.scope(Token::Chan),
            &mut self.m.tasks,
        ) {
            if let Some(slot) = removed {
                self.drop_sink(Sink::Console(slot));
            }
            return answer;
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
