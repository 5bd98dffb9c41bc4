//! The switch itself: one epoll loop over the control listener, the control
//! connections, the data socket, the tap device, stdin (when a terminal), a signalfd and
//! the aging timerfd (every 2 s). Frames are received and sent in batches; nothing on
//! the packet path prints except a problem's first occurrence on a port.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use uml_proto::ether::MAX_FRAME_LEN;
use uml_proto::switch::{
    emit_reply, request_len, DataAddr, Request, RequestError, MAX_REQUEST_LEN, SOCKADDR_LEN,
};

use crate::batch::{RxBatch, Sent, TxEntry, TxQueue};
use crate::capture::PcapWriter;
use crate::mgmt::Mgmt;
use crate::sockets::VdeDir;
use crate::sockets::{bind_control, bind_data, default_data_addr, open_tap, SetupError};
use crate::tables::{PortId, PortKind, Problem, Tables, Verdict, AGING_PERIOD_SECS};
use crate::uplink::{Received, Uplink};
use crate::{debug, info, warn};
use uml_proto::overlay::spec::OverlaySpec;

/// Everything the command line decides.
#[derive(Debug, Clone)]
pub struct Config {
    pub control: PathBuf,
    /// `-compat-v0`: the data socket is this path instead of an abstract name.
    pub compat_data: Option<PathBuf>,
    pub hub: bool,
    pub tap: Option<String>,
    pub daemon: bool,
    pub pcap: Option<PathBuf>,
    /// `--uplink`: (the text as given, what it says).
    pub uplinks: Vec<(String, OverlaySpec)>,
    /// `--mgmt`: the management socket's path.
    pub mgmt: Option<PathBuf>,
    /// `--vde DIR`: a second control socket at DIR/ctl, laid out as vde_switch's.
    pub vde: Option<PathBuf>,
}

const T_LISTEN: u64 = 1;
const T_DATA: u64 = 2;
const T_TAP: u64 = 3;
const T_STDIN: u64 = 4;
const T_SIGNAL: u64 = 5;
const T_AGING: u64 = 6;
const T_MGMT: u64 = 7;
const T_LISTEN_VDE: u64 = 8;
/// Uplinks: T_UPLINK + index.
const T_UPLINK: u64 = 1 << 16;
/// Management clients: T_MGMT_CLIENT + fd.
const T_MGMT_CLIENT: u64 = 1 << 33;
/// Ports' own data sockets (daemon and VDE clients): T_OWN_PORT + port id.
const T_OWN_PORT: u64 = 1 << 34;
/// Control connections: T_CONN + fd.
const T_CONN: u64 = 1 << 32;

/// A control connection: waiting for its request, or the life line of a port.
enum Conn {
    Pending {
        stream: UnixStream,
        buf: [u8; MAX_REQUEST_LEN],
        have: usize,
        /// Came in on the `--vde` control socket.
        vde: bool,
    },
    Port {
        stream: UnixStream,
        id: PortId,
        skip: usize,
    },
}

/// How the loop ended.
pub enum Exit {
    /// Stdin reached EOF: exit 0.
    StdinEof,
    /// A terminating signal: re-raise it after cleaning up.
    Signal(Signal),
}

/// The running switch.
pub struct Switch {
    cfg: Config,
    epoll: Epoll,
    listener: UnixListener,
    data: OwnedFd,
    data_addr: DataAddr,
    tap: Option<(OwnedFd, PortId)>,
    /// The uplinks and their ports, in `--uplink` order.
    uplinks: Vec<(Uplink, PortId)>,
    mgmt: Option<Mgmt>,
    vde: Option<VdeDir>,
    /// The ports' own sockets (see `sockets::port_socket`), by port id.
    own: Vec<Option<OwnSock>>,
    signals: SignalFd,
    /// Fires every AGING_PERIOD_SECS: epoll then sleeps without a timeout, so no timer
    /// is armed and cancelled on every wake-up.
    aging: TimerFd,
    stdin_watched: bool,
    conns: crate::fasthash::FastMap<RawFd, Conn>,
    tables: Tables,
    rx: RxBatch,
    tx: TxQueue,
    tap_buf: Vec<u8>,
    /// A descriptor kept in reserve for shedding connections when none are left.
    spare_fd: Option<std::fs::File>,
    fd_exhaustion_logged: bool,
    /// The data socket may still hold frames (edge-triggered: no new event will say so).
    data_backlog: bool,
    pcap: Option<PcapWriter>,
    unknown_senders: u64,
    /// The control socket's inode, so cleanup removes only our own socket.
    control_ino: Option<u64>,
}

fn sys(e: impl std::fmt::Display) -> SetupError {
    SetupError::Other(e.to_string())
}

/// Removes the sockets a failed setup had already bound.
fn remove_sockets(cfg: &Config) {
    let _ = std::fs::remove_file(&cfg.control);
    if let Some(p) = &cfg.compat_data {
        let _ = std::fs::remove_file(p);
    }
}

fn ino(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).ok().map(|m| m.ino())
}

/// The signals the loop handles itself.
fn handled_signals() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGUSR1,
    ] {
        s.add(sig);
    }
    s
}

impl Switch {
    /// Blocks the handled signals and binds every socket. Messages for the start go to
    /// the caller.
    /// `announce` runs once the sockets are bound (the start message), before `-daemon`
    /// detaches: the signalfd and epoll are made after that, in the process that runs.
    pub fn setup(cfg: Config, announce: impl FnOnce()) -> Result<Switch, SetupError> {
        let mask = handled_signals();
        mask.thread_block().map_err(sys)?;
        let listener = bind_control(&cfg.control)?;
        let control_ino = ino(&cfg.control);
        let data_addr = match &cfg.compat_data {
            Some(p) => DataAddr::path(p).ok_or_else(|| {
                SetupError::Other(format!("data socket path '{}' is too long", p.display()))
            })?,
            None => default_data_addr(),
        };
        let data = match bind_data(&data_addr, cfg.compat_data.as_deref()) {
            Ok(d) => d,
            Err(e) => {
                let _ = std::fs::remove_file(&cfg.control);
                return Err(e);
            }
        };
        let mut tables = Tables::new(cfg.hub);
        let tap = match &cfg.tap {
            Some(name) => match open_tap(name) {
                Ok(fd) => {
                    let id = tables
                        .add_port(fd.as_raw_fd(), PortKind::Tap { name: name.clone() })
                        .expect("tap port");
                    Some((fd, id))
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&cfg.control);
                    if let Some(p) = &cfg.compat_data {
                        let _ = std::fs::remove_file(p);
                    }
                    return Err(e);
                }
            },
            None => None,
        };
        let mut uplinks = Vec::new();
        for (index, (name, spec)) in cfg.uplinks.iter().enumerate() {
            let up = match Uplink::open(name, spec) {
                Ok(up) => up,
                Err(e) => {
                    remove_sockets(&cfg);
                    return Err(e);
                }
            };
            let kind = PortKind::Uplink {
                index,
                name: name.clone(),
            };
            let id = tables
                .add_port(up.fd().as_raw_fd(), kind)
                .expect("uplink port");
            uplinks.push((up, id));
        }
        let mgmt = match cfg.mgmt.as_deref().map(Mgmt::bind).transpose() {
            Ok(m) => m,
            Err(e) => {
                remove_sockets(&cfg);
                return Err(e);
            }
        };
        let vde = match cfg.vde.as_deref().map(VdeDir::bind).transpose() {
            Ok(v) => v,
            Err(e) => {
                remove_sockets(&cfg);
                if let Some(m) = &mgmt {
                    m.cleanup();
                }
                return Err(e);
            }
        };
        let pcap = match &cfg.pcap {
            Some(p) => Some(PcapWriter::open(p).map_err(SetupError::Other)?),
            None => None,
        };
        announce();
        if cfg.daemon {
            // Stdio stays; the working directory becomes / (paths were made absolute).
            if let Err(e) = nix::unistd::daemon(false, true) {
                let _ = std::fs::remove_file(&cfg.control);
                return Err(SetupError::Other(format!("daemon: {e}")));
            }
        }
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(sys)?;
        let aging = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(sys)?;
        aging
            .set(
                Expiration::Interval(TimeSpec::from_duration(Duration::from_secs(
                    AGING_PERIOD_SECS,
                ))),
                TimerSetTimeFlags::empty(),
            )
            .map_err(sys)?;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(sys)?;
        let ev = |t| EpollEvent::new(EpollFlags::EPOLLIN, t);
        epoll.add(&listener, ev(T_LISTEN)).map_err(sys)?;
        // Edge-triggered: forward_data drains the socket (or notes a backlog).
        epoll
            .add(
                &data,
                EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLET, T_DATA),
            )
            .map_err(sys)?;
        epoll.add(&signals, ev(T_SIGNAL)).map_err(sys)?;
        epoll.add(&aging, ev(T_AGING)).map_err(sys)?;
        if let Some((fd, _)) = &tap {
            epoll.add(fd, ev(T_TAP)).map_err(sys)?;
        }
        for (i, (up, _)) in uplinks.iter().enumerate() {
            epoll.add(up.fd(), ev(T_UPLINK + i as u64)).map_err(sys)?;
        }
        if let Some(m) = &mgmt {
            epoll.add(m.listener(), ev(T_MGMT)).map_err(sys)?;
        }
        if let Some(v) = &vde {
            epoll.add(&v.listener, ev(T_LISTEN_VDE)).map_err(sys)?;
        }
        let stdin_watched = nix::unistd::isatty(io::stdin()).unwrap_or(false);
        if stdin_watched {
            epoll.add(io::stdin(), ev(T_STDIN)).map_err(sys)?;
        }
        raise_fd_limit();
        Ok(Switch {
            cfg,
            epoll,
            listener,
            data,
            data_addr,
            tap,
            uplinks,
            mgmt,
            vde,
            own: Vec::new(),
            signals,
            aging,
            stdin_watched,
            conns: Default::default(),
            tables,
            rx: RxBatch::new(),
            tx: TxQueue::new(),
            tap_buf: vec![0u8; 65536],
            spare_fd: std::fs::File::open("/dev/null").ok(),
            fd_exhaustion_logged: false,
            data_backlog: false,
            pcap,
            unknown_senders: 0,
            control_ino,
        })
    }

    /// The data socket's address (what replies carry).
    pub fn data_addr(&self) -> &DataAddr {
        &self.data_addr
    }

    /// Runs until stdin EOF or a terminating signal.
    pub fn run(&mut self) -> Exit {
        let mut events = vec![EpollEvent::empty(); 64];
        loop {
            let timeout = if self.data_backlog {
                EpollTimeout::ZERO
            } else {
                EpollTimeout::NONE
            };
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => 0,
                Err(e) => {
                    warn!("epoll_wait: {e}");
                    0
                }
            };
            for ev in &events[..n] {
                if let Some(exit) = self.dispatch(ev.data(), ev.events()) {
                    return exit;
                }
            }
            if self.data_backlog {
                self.forward_data();
            }
        }
    }

    fn age_tables(&mut self) {
        let mut ticks = [0u8; 8];
        // SAFETY: reading the 8-byte expiration count of our own timerfd into a buffer
        // of that size (it is non-blocking: EAGAIN is harmless).
        let _ = unsafe {
            libc::read(
                self.aging.as_fd().as_raw_fd(),
                ticks.as_mut_ptr() as *mut libc::c_void,
                8,
            )
        };
        let gone = self.tables.age(self.tables.now());
        if gone > 0 {
            debug!("aged out {gone} MAC entries");
        }
    }

    fn dispatch(&mut self, token: u64, flags: EpollFlags) -> Option<Exit> {
        match token {
            T_LISTEN => self.accept_all(false),
            T_LISTEN_VDE => self.accept_all(true),
            T_DATA => self.forward_data(),
            T_TAP => self.forward_tap(),
            T_STDIN => return self.stdin_event(),
            T_SIGNAL => return self.signal_event(),
            T_AGING => self.age_tables(),
            T_MGMT => {
                if let Some(m) = &mut self.mgmt {
                    m.accept(&self.epoll, T_MGMT_CLIENT);
                }
            }
            t if t >= T_OWN_PORT => self.forward_own((t - T_OWN_PORT) as PortId),
            t if t >= T_MGMT_CLIENT => self.mgmt_event((t - T_MGMT_CLIENT) as RawFd),
            t if t >= T_CONN => self.conn_event((t - T_CONN) as RawFd, flags),
            t if t >= T_UPLINK => self.forward_uplink((t - T_UPLINK) as usize),
            _ => {}
        }
        None
    }

    fn stdin_event(&mut self) -> Option<Exit> {
        let mut buf = [0u8; 256];
        match io::stdin().lock().read(&mut buf) {
            Ok(0) | Err(_) => {
                info!("EOF on stdin, cleaning up and exiting");
                Some(Exit::StdinEof)
            }
            Ok(_) => None,
        }
    }

    fn signal_event(&mut self) -> Option<Exit> {
        while let Ok(Some(si)) = self.signals.read_signal() {
            let Ok(sig) = Signal::try_from(si.ssi_signo as i32) else {
                continue;
            };
            if sig == Signal::SIGUSR1 {
                let _ = std::io::stderr().write_all(self.report().as_bytes());
            } else {
                info!("Caught signal {}, cleaning up and exiting", sig as i32);
                return Some(Exit::Signal(sig));
            }
        }
        None
    }

    /// Accepts waiting control connections on the control socket (or the VDE one).
    fn accept_all(&mut self, vde: bool) {
        loop {
            let accepted = match (&self.vde, vde) {
                (Some(v), true) => v.listener.accept(),
                _ => self.listener.accept(),
            };
            match accepted {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let fd = stream.as_raw_fd();
                    let ev = EpollEvent::new(
                        EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP,
                        T_CONN + fd as u64,
                    );
                    if self.epoll.add(&stream, ev).is_err() {
                        continue;
                    }
                    debug!("New connection");
                    self.conns.insert(
                        fd,
                        Conn::Pending {
                            stream,
                            buf: [0; MAX_REQUEST_LEN],
                            have: 0,
                            vde,
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    self.shed_connection(&e, vde);
                    return;
                }
                Err(e) => {
                    warn!("accept: {e}");
                    return;
                }
            }
        }
    }

    /// Out of descriptors: free the spare one, accept and close the waiting connection
    /// (so the level-triggered listener does not spin), and take the spare back.
    fn shed_connection(&mut self, e: &io::Error, vde: bool) {
        if !self.fd_exhaustion_logged {
            warn!("accept: {e}: refusing new connections until descriptors are free");
            self.fd_exhaustion_logged = true;
        }
        self.spare_fd = None;
        let accepted = match (&self.vde, vde) {
            (Some(v), true) => v.listener.accept(),
            _ => self.listener.accept(),
        };
        drop(accepted);
        self.spare_fd = std::fs::File::open("/dev/null").ok();
    }

    fn close_conn(&mut self, fd: RawFd) {
        if let Some(conn) = self.conns.remove(&fd) {
            let stream = match conn {
                Conn::Pending { stream, .. } => stream,
                Conn::Port { stream, id, .. } => {
                    self.tables.remove_port(id);
                    self.drop_own(id);
                    stream
                }
            };
            let _ = self.epoll.delete(&stream);
        }
    }

    fn conn_event(&mut self, fd: RawFd, flags: EpollFlags) {
        let Some(conn) = self.conns.get_mut(&fd) else {
            return;
        };
        match conn {
            Conn::Pending {
                stream,
                buf,
                have,
                vde,
            } => {
                let n = match stream.read(&mut buf[*have..]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(_) => 0,
                };
                if n == 0 {
                    debug!("EOF from new port");
                    return self.close_conn(fd);
                }
                *have += n;
                let got = *have;
                let req_bytes = *buf;
                let vde = *vde;
                self.pending_request(fd, &req_bytes[..got], vde);
            }
            Conn::Port { stream, id, skip } => {
                let mut b = [0u8; 128];
                let n = match stream.read(&mut b) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(_) => 0,
                };
                if n > 0 && n <= *skip {
                    *skip -= n;
                    return;
                }
                let label = self.tables.port(*id).map_or(fd, |p| p.label);
                // Frames the client sent before it went are still queued: forward them
                // while its port exists.
                let id = *id;
                self.forward_data();
                self.forward_own(id);
                if n == 0 || flags.contains(EpollFlags::EPOLLHUP) {
                    info!("Disconnect from port {label}");
                } else {
                    warn!("Bad request on the control connection of port {label}: port removed");
                }
                self.close_conn(fd);
            }
        }
    }

    /// Acts on the bytes a new control connection sent so far.
    fn pending_request(&mut self, fd: RawFd, bytes: &[u8], vde: bool) {
        let need = match request_len(bytes) {
            None => return,
            Some(Err(RequestError::Version(2))) => {
                warn!("Version 2 is not supported");
                return self.close_conn(fd);
            }
            Some(Err(e)) => {
                warn!("{e}");
                return self.close_conn(fd);
            }
            Some(Ok(need)) => need,
        };
        if bytes.len() < need {
            return;
        }
        let req = match Request::parse(bytes) {
            Ok(r) => r,
            Err(e) => {
                warn!("{e}");
                return self.close_conn(fd);
            }
        };
        let pinned = match self.admit(fd, req.addr()) {
            Ok(p) => p,
            Err(why) => {
                warn!("refused a port: {why}");
                return self.close_conn(fd);
            }
        };
        // A client that reads the reply gets a socket of its own, connected to its data
        // socket now, before the reply (libvdeplug unlinks that socket's path once it
        // has the reply): its frames come and go there, with no address to resolve,
        // and a full receiver is waited for. Not with -compat-v0, whose clients expect
        // the data path in the reply; a daemon client whose socket cannot be reached
        // yet is served through the shared data socket as before.
        let own = if vde || (req.wants_reply() && self.cfg.compat_data.is_none()) {
            let to = pinned.as_ref().map_or(req.addr(), |p| &p.addr);
            match crate::sockets::port_socket(to) {
                Ok((sock, addr, _)) => Some((sock, addr)),
                Err(e) if vde => {
                    warn!("VDE client's data socket {}: {e}: refused", req.addr());
                    return self.close_conn(fd);
                }
                Err(e) => {
                    debug!(
                        "data socket {}: {e}: served through the shared socket",
                        req.addr()
                    );
                    None
                }
            }
        } else {
            None
        };
        let kind = match own {
            Some(_) if vde => PortKind::Vde { peer: *req.addr() },
            _ => PortKind::Unix {
                send_to: *req.addr(),
                learned_len: false,
                pinned: pinned.map(Box::new),
            },
        };
        let Some(id) = self.tables.add_port(fd, kind) else {
            warn!(
                "a port with data address {} exists already: refused",
                req.addr()
            );
            return self.close_conn(fd);
        };
        let Some(Conn::Pending { stream, .. }) = self.conns.remove(&fd) else {
            return;
        };
        let mut stream = stream;
        let reply_addr = match own {
            Some((sock, addr)) => {
                let ev = EpollEvent::new(EpollFlags::EPOLLIN, T_OWN_PORT + id as u64);
                if self.epoll.add(&sock, ev).is_err() {
                    self.tables.remove_port(id);
                    let _ = self.epoll.delete(&stream);
                    return;
                }
                if self.own.len() <= id {
                    self.own.resize_with(id + 1, || None);
                }
                self.own[id] = Some(OwnSock {
                    fd: sock,
                    stalled: None,
                });
                addr
            }
            None => self.data_addr,
        };
        if req.wants_reply() {
            let mut reply = [0u8; SOCKADDR_LEN];
            let n = emit_reply(&reply_addr, &mut reply);
            if stream.write_all(&reply[..n]).is_err() {
                self.tables.remove_port(id);
                self.drop_own(id);
                let _ = self.epoll.delete(&stream);
                return;
            }
        }
        let skip = req.trailing_allowance(bytes.len());
        info!(
            "New connection: port {fd} for {} ({:?})",
            req.addr(),
            version_name(&req)
        );
        self.conns.insert(fd, Conn::Port { stream, id, skip });
    }

    /// May the client on control connection `fd` have frames sent to `addr`? (See
    /// `peer`: only if it could send there itself.)
    fn admit(&self, fd: RawFd, addr: &DataAddr) -> Result<Option<crate::peer::Pinned>, String> {
        let Some(Conn::Pending { stream, .. }) = self.conns.get(&fd) else {
            return Err("connection gone".into());
        };
        let peer = crate::peer::peer_of(stream.as_fd())
            .map_err(|e| format!("cannot tell who is asking (SO_PEERCRED): {e}"))?;
        crate::peer::check(&peer, addr, nix::unistd::geteuid().as_raw())
    }

    /// Forwards what waits on the data socket, a batch at a time, until it is empty
    /// (at most 64 batches, so control connections are served too).
    fn forward_data(&mut self) {
        self.data_backlog = false;
        for round in 0..64 {
            if round == 63 {
                // Let the other descriptors have a turn; come back without sleeping.
                self.data_backlog = true;
            }
            let n = match self.rx.recv(self.data.as_fd()) {
                Ok(n) => n,
                Err(e) => {
                    warn!("receive on the data socket: {e}");
                    return;
                }
            };
            if n == 0 {
                return;
            }
            let now = self.tables.now();
            for i in 0..n {
                let from = self.rx.sender(i);
                let Some(src) = self.tables.port_for_sender(&from) else {
                    self.unknown_sender(&from);
                    continue;
                };
                self.forward_rx(i, src, now);
            }
            self.flush_tx();
            if let Some(p) = &mut self.pcap {
                p.flush();
            }
            if n < crate::batch::BATCH {
                return;
            }
        }
    }

    fn forward_tap(&mut self) {
        let Some((fd, src)) = self.tap.as_ref().map(|(f, id)| (f.as_raw_fd(), *id)) else {
            return;
        };
        for _ in 0..BATCH_TAP {
            // SAFETY: tap_buf is a live buffer of the length passed; fd is our tap device.
            let r = unsafe {
                libc::read(
                    fd,
                    self.tap_buf.as_mut_ptr() as *mut libc::c_void,
                    self.tap_buf.len(),
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) {
                    self.drop_tap(&e);
                }
                break;
            }
            if r == 0 {
                break;
            }
            let len = r as usize;
            if len > MAX_FRAME_LEN {
                self.count_oversize(src, len);
                continue;
            }
            let now = self.tables.now();
            let (verdict, learned) = self.tables.decide(src, &self.tap_buf[..len], now);
            if let Some(l) = learned {
                self.log_learned(l);
            }
            self.log_limit_hit();
            let data = self.tap_buf.as_ptr();
            self.deliver(src, verdict, data, len);
            // The tap buffer is reused for the next read: send now.
            self.flush_tx();
        }
        if let Some(p) = &mut self.pcap {
            p.flush();
        }
    }

    /// Forwards what a client sent on its port's own socket: batches of recvmmsg, at
    /// most OWN_ROUNDS of them (level-triggered: the rest wakes the loop again). The
    /// socket is connected to the client's data socket, so only it can have sent them.
    fn forward_own(&mut self, src: PortId) {
        for _ in 0..OWN_ROUNDS {
            let received = match self.own.get(src) {
                Some(Some(own)) => self.rx.recv(own.fd.as_fd()),
                _ => return,
            };
            let n = match received {
                Ok(n) => n,
                Err(_) => return,
            };
            if n == 0 {
                return;
            }
            let now = self.tables.now();
            for i in 0..n {
                self.forward_rx(i, src, now);
            }
            self.flush_tx();
            if let Some(p) = &mut self.pcap {
                p.flush();
            }
            if n < crate::batch::BATCH {
                return;
            }
        }
    }

    /// Closes the port's own socket, if it has one.
    fn drop_own(&mut self, id: PortId) {
        if let Some(o) = self.own.get_mut(id).and_then(Option::take) {
            let _ = self.epoll.delete(&o.fd);
        }
    }

    /// Forwards frame `i` of the receive batch, which came from port `src`.
    fn forward_rx(&mut self, i: usize, src: PortId, now: u64) {
        let len = self.rx.len(i);
        if len > MAX_FRAME_LEN {
            self.count_oversize(src, len);
            return;
        }
        let (verdict, learned) = self.tables.decide(src, self.rx.frame(i), now);
        if let Some(l) = learned {
            self.log_learned(l);
        }
        self.log_limit_hit();
        let data = self.rx.buf_ptr(i);
        self.deliver(src, verdict, data, len);
    }

    /// Forwards what arrived through uplink `index` (a batch at most; level-triggered,
    /// so the rest wakes the loop again).
    fn forward_uplink(&mut self, index: usize) {
        let Some(src) = self.uplinks.get(index).map(|(_, id)| *id) else {
            return;
        };
        for _ in 0..BATCH_TAP {
            let received = self.uplinks[index].0.recv(&mut self.tap_buf);
            let len = match received {
                Ok(Received::Frame(len)) => len,
                Ok(Received::Empty) => break,
                Ok(Received::Dropped(why)) => {
                    if let Some(p) = self.tables.port_mut(src) {
                        if p.first_time(Problem::Malformed) {
                            warn!("uplink {}: dropped a packet: {why} (further ones are only counted)", self.uplinks[index].0.name);
                        }
                    }
                    continue;
                }
                Err(e) => {
                    if let Some(p) = self.tables.port_mut(src) {
                        if p.first_time(Problem::ReceiveFailed) {
                            warn!("uplink {}: receive failed: {e}", self.uplinks[index].0.name);
                        }
                    }
                    break;
                }
            };
            if len > MAX_FRAME_LEN {
                self.count_oversize(src, len);
                continue;
            }
            let now = self.tables.now();
            let (verdict, learned) = self.tables.decide(src, &self.tap_buf[..len], now);
            if let Some(l) = learned {
                self.log_learned(l);
            }
            let data = self.tap_buf.as_ptr();
            self.deliver(src, verdict, data, len);
            // The buffer is reused for the next packet: send now.
            self.flush_tx();
        }
        if let Some(p) = &mut self.pcap {
            p.flush();
        }
    }

    /// The tap device failed (it was deleted, say): it stops being a port instead of
    /// waking the loop forever.
    fn drop_tap(&mut self, e: &io::Error) {
        if let Some((fd, id)) = self.tap.take() {
            warn!("tap device: {e}: detached");
            let _ = self.epoll.delete(&fd);
            self.tables.remove_port(id);
        }
    }

    /// Queues (or writes, for the tap) the frame at `data` for every destination.
    fn deliver(&mut self, src: PortId, verdict: Verdict, data: *const u8, len: usize) {
        match verdict {
            Verdict::Drop(reason) => {
                if let Some(p) = self.tables.port_mut(src) {
                    let problem = match reason {
                        crate::tables::DropReason::Runt => Some(Problem::Runt),
                        _ => None,
                    };
                    if let Some(pr) = problem {
                        if p.first_time(pr) {
                            warn!(
                                "port {}: dropping runt frames (shorter than 14 bytes)",
                                p.label
                            );
                        }
                    }
                }
                return;
            }
            Verdict::To(dst) => self.send_one(dst, data, len),
            Verdict::Flood => {
                for k in 0..self.tables.live_ports().len() {
                    let dst = self.tables.live_ports()[k];
                    if dst != src {
                        self.send_one(dst, data, len);
                    }
                }
            }
        }
        if let Some(p) = &mut self.pcap {
            // SAFETY: data points at `len` initialised bytes of the current rx or tap
            // buffer, which is not written until this frame is done.
            p.write(unsafe { std::slice::from_raw_parts(data, len) });
        }
    }

    fn send_one(&mut self, dst: PortId, data: *const u8, len: usize) {
        let tap_fd = self
            .tap
            .as_ref()
            .filter(|(_, id)| *id == dst)
            .map(|(f, _)| f.as_raw_fd());
        // A port with a socket of its own (daemon and VDE clients): no address.
        if let Some(Some(own)) = self.own.get(dst) {
            self.tx.push(TxEntry {
                port: dst,
                fd: own.fd.as_raw_fd(),
                data,
                len,
                to: None,
                wait: own.stalled.is_none(),
            });
            if self.tx.is_full() {
                self.flush_tx();
            }
            return;
        }
        let Some(port) = self.tables.port_mut(dst) else {
            return;
        };
        match (&port.kind, tap_fd) {
            (
                PortKind::Unix {
                    send_to, pinned, ..
                },
                _,
            ) => {
                let to = pinned.as_ref().map_or(*send_to, |p| p.addr);
                self.tx.push(TxEntry {
                    port: dst,
                    fd: self.data.as_raw_fd(),
                    data,
                    len,
                    to: Some(to),
                    wait: false,
                });
                if self.tx.is_full() {
                    self.flush_tx();
                }
            }
            (PortKind::Tap { .. }, Some(fd)) => {
                // SAFETY: data points at len readable bytes (see deliver).
                let r = unsafe { libc::write(fd, data as *const libc::c_void, len) };
                if r == len as isize {
                    port.counters.tx_frames += 1;
                    port.counters.tx_bytes += len as u64;
                } else {
                    port.counters.tx_errors += 1;
                    if port.first_time(Problem::SendFailed) {
                        warn!(
                            "port {}: write to the tap device failed: {}",
                            port.label,
                            io::Error::last_os_error()
                        );
                    }
                }
            }
            (PortKind::Tap { .. }, None) => {}
            // Served through its own socket above; gone with it.
            (PortKind::Vde { .. }, _) => {}
            (PortKind::Uplink { index, .. }, _) => {
                let Some((up, _)) = self.uplinks.get_mut(*index) else {
                    return;
                };
                // SAFETY: data points at len readable bytes (see deliver).
                let frame = unsafe { std::slice::from_raw_parts(data, len) };
                match up.send(frame) {
                    Ok(()) => {
                        port.counters.tx_frames += 1;
                        port.counters.tx_bytes += len as u64;
                    }
                    Err(e) => {
                        port.counters.tx_errors += 1;
                        if port.first_time(Problem::SendFailed) {
                            warn!(
                                "uplink {}: sending failed: {e} (further failures are only counted)",
                                up.name
                            );
                        }
                    }
                }
            }
        }
    }

    fn flush_tx(&mut self) {
        if self.tx.is_empty() {
            return;
        }
        let tables = &mut self.tables;
        let own = &mut self.own;
        let mut retry: Vec<(TxEntry, io::Error)> = Vec::new();
        self.tx.flush(|sent| match sent {
            Sent::Ok(e) => {
                if let Some(p) = tables.port_mut(e.port) {
                    p.counters.tx_frames += 1;
                    p.counters.tx_bytes += e.len as u64;
                }
                if !e.wait && e.to.is_none() {
                    // Room again at a stalled port: wait for it again when full, but
                    // not sooner than STALL_HOLD after the wait that failed (so a
                    // client reading a frame now and then cannot keep the switch
                    // waiting).
                    if let Some(Some(o)) = own.get_mut(e.port) {
                        if o.stalled.is_some_and(|t| t.elapsed() >= STALL_HOLD) {
                            o.stalled = None;
                        }
                    }
                }
            }
            Sent::Failed(e, err) => retry.push((*e, err)),
        });
        for (e, err) in retry {
            self.send_failed(e, err);
        }
    }

    /// A datagram could not be sent. A client that bound a shorter abstract name than
    /// its request said is reachable with the trimmed name: try it once.
    /// Through a port's own socket, a send that waited in vain for room makes the port
    /// stalled: its frames are dropped at once (counted) until it has room again.
    fn send_failed(&mut self, e: TxEntry, err: io::Error) {
        if e.to.is_none() && e.wait && err.kind() == io::ErrorKind::WouldBlock {
            if let Some(Some(o)) = self.own.get_mut(e.port) {
                o.stalled = Some(std::time::Instant::now());
            }
            if let Some(port) = self.tables.port_mut(e.port) {
                port.counters.tx_errors += 1;
                if port.first_time(Problem::Stalled) {
                    warn!(
                        "port {}: its receive queue stayed full for {} ms: frames for it are \
                         dropped while it is full (further drops are only counted)",
                        port.label,
                        crate::sockets::PORT_SEND_WAIT.as_millis()
                    );
                }
            }
            return;
        }
        let data = self.data.as_fd();
        let Some(port) = self.tables.port_mut(e.port) else {
            return;
        };
        if let PortKind::Unix {
            send_to,
            learned_len: false,
            pinned: None,
        } = &mut port.kind
        {
            if err.raw_os_error() == Some(libc::ECONNREFUSED) && send_to.is_abstract() {
                let short = send_to.trimmed();
                // SAFETY: e.data points at e.len bytes kept alive by the caller.
                let frame = unsafe { std::slice::from_raw_parts(e.data, e.len) };
                if uml_proto::switch::send_to(data, frame, &short).is_ok() {
                    *send_to = short;
                    port.counters.tx_frames += 1;
                    port.counters.tx_bytes += e.len as u64;
                    return;
                }
            }
        }
        port.counters.tx_errors += 1;
        if port.first_time(Problem::SendFailed) {
            warn!(
                "port {}: sending failed: {err} (further failures are only counted)",
                port.label
            );
        }
    }

    fn count_oversize(&mut self, src: PortId, len: usize) {
        if let Some(p) = self.tables.port_mut(src) {
            p.counters.oversize += 1;
            if p.first_time(Problem::Oversize) {
                warn!(
                    "port {}: dropping frames over {MAX_FRAME_LEN} bytes (first: {len})",
                    p.label
                );
            }
        }
    }

    fn unknown_sender(&mut self, from: &DataAddr) {
        self.unknown_senders += 1;
        if self.unknown_senders == 1 {
            warn!("frame from {from}, which is no port: dropped (further ones are only counted)");
        }
    }

    fn log_learned(&self, l: crate::tables::Learned) {
        if crate::log::enabled(crate::log::Level::Debug) {
            let label = |id| self.tables.port(id).map_or(-1, |p| p.label);
            match l.old {
                Some(old) => debug!(
                    " Addr: {} New port {} old port {}",
                    l.mac,
                    label(l.port),
                    label(old)
                ),
                None => debug!(" Addr: {} New port {}", l.mac, label(l.port)),
            }
        }
    }

    /// Says once (per port, and once for the whole table) that a MAC limit was reached.
    fn log_limit_hit(&mut self) {
        let Some(hit) = self.tables.take_limit_hit() else {
            return;
        };
        let limits = self.tables.limits();
        match hit {
            crate::tables::LimitHit::Port(id) => {
                let label = self.tables.port(id).map_or(-1, |p| p.label);
                warn!(
                    "port {label}: {} MAC addresses learned, the most one port may have: \
                     new ones are flooded, not learned (counted in the SIGUSR1 report)",
                    limits.per_port
                );
            }
            crate::tables::LimitHit::Total => warn!(
                "the MAC table is full ({} entries): new addresses are flooded, not learned \
                 (counted in the SIGUSR1 report)",
                limits.total
            ),
        }
    }

    /// Answers a management client.
    fn mgmt_event(&mut self, fd: RawFd) {
        let Some(mut mgmt) = self.mgmt.take() else {
            return;
        };
        let sum = self.summary();
        let tables = &self.tables;
        let mut answer = |command: &str| crate::report::json(tables, &sum, command);
        mgmt.serve(fd, &self.epoll, T_MGMT_CLIENT, &mut answer);
        self.mgmt = Some(mgmt);
    }

    /// The port and MAC tables as text (SIGUSR1).
    pub fn report(&self) -> String {
        crate::report::render(&self.tables, &self.summary())
    }

    fn summary(&self) -> crate::report::Summary {
        crate::report::Summary {
            hub: self.cfg.hub,
            unknown_senders: self.unknown_senders,
            control_connections: self.conns.len(),
            uplinks: self
                .uplinks
                .iter()
                .map(|(u, _)| (u.name.clone(), u.counters))
                .collect(),
        }
    }

    /// Removes the sockets this switch made (only if they are still ours).
    pub fn cleanup(&mut self) {
        self.pcap = None;
        if let Some(m) = &self.mgmt {
            m.cleanup();
        }
        if let Some(v) = &self.vde {
            v.cleanup();
        }
        if self.control_ino.is_some() && ino(&self.cfg.control) == self.control_ino {
            let _ = std::fs::remove_file(&self.cfg.control);
        }
        if let Some(p) = &self.cfg.compat_data {
            let _ = std::fs::remove_file(p);
        }
    }

    pub fn watches_stdin(&self) -> bool {
        self.stdin_watched
    }
}

const BATCH_TAP: usize = 32;
/// recvmmsg batches per wake-up of a port's own socket.
const OWN_ROUNDS: usize = 4;

/// A port's own socket (see `sockets::port_socket`).
struct OwnSock {
    fd: OwnedFd,
    /// When a send waited PORT_SEND_WAIT in vain: until one succeeds and STALL_HOLD
    /// has passed, sends do not wait.
    stalled: Option<std::time::Instant>,
}

/// How long a port whose send timed out is not waited for.
const STALL_HOLD: Duration = Duration::from_secs(1);

fn version_name(r: &Request) -> &'static str {
    match r {
        Request::V0 { .. } => "v0",
        Request::V1 { .. } => "v1",
        Request::V3 { .. } => "v3",
    }
}

/// Lets the switch hold as many control connections as the hard limit allows.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.min(1 << 20), hard);
    }
}

/// Ends the process the way the signal would have, after cleanup.
pub fn reraise(sig: Signal) -> ! {
    use nix::sys::signal::{raise, signal, SigHandler};
    // SAFETY: restoring the default disposition installs no Rust handler.
    let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    let mut s = SigSet::empty();
    s.add(sig);
    let _ = s.thread_unblock();
    let _ = raise(sig);
    std::process::exit(128 + sig as i32)
}
