//! `uml_net VERSION TRANSPORT ARGS...`: the setuid-root helper linux.uml runs. Sets up a
//! safe process (environment emptied, fds 0-2 open, root only while changing the
//! host), parses the kernel's argument list and answers on fd 1 the way the kernel
//! expects: a datagram with the tap fd for `tuntap up`, length-prefixed text otherwise.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::process::ExitCode;

use uml_net::config::{self, Config, ConfigError};
use uml_net::{privs, privs::Caller};
use uml_proto::helper::{self, AddrOp, ArgvError, ReplyKind, Request, TuntapUpReply};
use uml_proto::tap::{DEFAULT_CLONE_DEVICE, SYS_CLASS_NET};

/// Empties the environment and makes sure fds 0, 1 and 2 are open (a closed one would
/// otherwise be reused by a file we open).
fn sanitize_process() {
    for (key, _) in std::env::vars_os() {
        std::env::remove_var(key);
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    for fd in 0..3 {
        // SAFETY: F_GETFD only asks whether the descriptor is open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            // SAFETY: open with a constant NUL-terminated path; the fd (the lowest
            // free one, i.e. `fd`) is deliberately kept open for the process lifetime.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

fn fd1() -> BorrowedFd<'static> {
    // SAFETY: fd 1 is open for the whole life of the process (sanitize_process made sure).
    unsafe { BorrowedFd::borrow_raw(1) }
}

fn send_text(text: &str, status_byte: Option<u8>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    buf.extend(status_byte);
    helper::emit_text(text, &mut buf);
    let mut out = std::io::stdout().lock();
    out.write_all(&buf)?;
    out.flush()
}

fn answer(kind: ReplyKind, text: &str) -> std::io::Result<()> {
    match kind {
        ReplyKind::Datagram => helper::send_tuntap_up(
            fd1(),
            &TuntapUpReply {
                ifname: None,
                output: text.to_owned(),
            },
            None,
        ),
        ReplyKind::Stream => send_text(text, None),
        ReplyKind::EthertapStatus => send_text(text, Some(0)),
    }
}

fn finish(sent: std::io::Result<()>, ok: bool) -> ExitCode {
    match sent {
        Err(e) => {
            eprintln!(
                "uml_net: cannot answer on fd 1 ({}); uml_net is run by UML, not by hand",
                uml_proto::tap::strerror(&e)
            );
            ExitCode::FAILURE
        }
        Ok(()) if ok => ExitCode::SUCCESS,
        Ok(()) => ExitCode::FAILURE,
    }
}

fn drop_privileges(caller: Caller) -> bool {
    privs::drop_for_good(caller).is_ok()
}

/// The administrator's uml_net.conf, read as root (it may be readable by root only;
/// it is opened by descriptor and checked to be root's).
fn load_config(caller: Caller) -> Result<Config, ConfigError> {
    privs::as_root(caller, config::load)
}

fn tuntap_up(caller: Caller, gate: &str) -> ExitCode {
    let cfg = load_config(caller);
    let plan = uml_net::check_gate(gate).and_then(|g| uml_net::plan_gate(g, &cfg));
    let plan = match plan {
        Ok(p) => p,
        Err(r) => {
            drop_privileges(caller);
            return finish(
                answer(ReplyKind::Datagram, &format!("uml_net : {r}\n")),
                false,
            );
        }
    };
    let outcome = privs::as_root(caller, || {
        uml_net::tuntap_up(Path::new(DEFAULT_CLONE_DEVICE), &plan, caller.uid.as_raw())
    });
    if !drop_privileges(caller) {
        return finish(
            answer(ReplyKind::Datagram, "uml_net : cannot drop privileges\n"),
            false,
        );
    }
    let name = outcome.tap.as_ref().map(|t| t.name.clone());
    let reply = TuntapUpReply {
        ifname: name,
        output: outcome.log,
    };
    let fd = outcome.tap.as_ref().map(|t| t.file.as_fd());
    let ok = fd.is_some();
    finish(helper::send_tuntap_up(fd1(), &reply, fd), ok)
}

fn address(caller: Caller, req: &Request) -> ExitCode {
    let Request::Address {
        op,
        dev,
        addr,
        netmask,
        ..
    } = req
    else {
        unreachable!("address() is only called for address requests")
    };
    let cfg = match op {
        AddrOp::Add => load_config(caller),
        AddrOp::Del => Ok(Config::default()),
    };
    let uid = caller.uid.as_raw();
    let plan = uml_net::plan_address(*op, dev, addr, netmask, uid, Path::new(SYS_CLASS_NET), &cfg);
    let (log, ok) = match plan {
        Ok(plan) => privs::as_root(caller, || uml_net::apply_address(&plan, uid)),
        Err(r) => (format!("uml_net : {r}\n"), false),
    };
    if !drop_privileges(caller) {
        return finish(send_text("uml_net : cannot drop privileges\n", None), false);
    }
    finish(send_text(&log, None), ok)
}

/// True when fd 1 is a unix socket of the kind `kind` is answered on (a datagram
/// socket for `tuntap up`, a stream otherwise): checked before any host change, so
/// running the helper by hand changes nothing.
fn fd1_fits(kind: ReplyKind) -> bool {
    use nix::sys::socket::{getsockopt, sockopt};
    let want = match kind {
        ReplyKind::Datagram => nix::sys::socket::SockType::Datagram,
        _ => nix::sys::socket::SockType::Stream,
    };
    getsockopt(&fd1(), sockopt::SockType).is_ok_and(|t| t == want)
}

/// `--help` / `--version` text (the helper protocol has no other options).
fn help_or_version(arg: &str) -> Option<String> {
    match arg {
        "--version" => Some(uml_net::cli::version_text()),
        "--help" => Some(uml_net::cli::help_text()),
        _ => None,
    }
}

fn main() -> ExitCode {
    sanitize_process();
    let caller = privs::start();
    let args: Option<Vec<String>> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string().ok())
        .collect();
    let Some(args) = args else {
        drop_privileges(caller);
        eprintln!("uml_net: arguments must be text");
        return ExitCode::FAILURE;
    };
    if let [only] = args.as_slice() {
        if let Some(text) = help_or_version(only) {
            drop_privileges(caller);
            print!("{text}");
            return ExitCode::SUCCESS;
        }
    }
    let request = helper::parse_argv(&args);
    if !matches!(
        request,
        Ok(Request::TuntapUp { .. } | Request::Address { .. })
    ) {
        drop_privileges(caller);
    }
    if let Ok(req) = &request {
        if !fd1_fits(req.reply_kind()) {
            drop_privileges(caller);
            eprintln!("uml_net: fd 1 is not the socket UML gives its helpers");
            eprintln!("{}", ArgvError::TooFew);
            return ExitCode::FAILURE;
        }
    }
    match request {
        Err(e @ (ArgvError::TooFew | ArgvError::VersionMismatch(_))) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
        Err(e @ (ArgvError::UnknownTransport(_) | ArgvError::NoHandler { .. })) => {
            println!("{e}");
            ExitCode::FAILURE
        }
        Err(ArgvError::Transport { reply, message }) => {
            finish(answer(reply, &format!("{message}\n")), false)
        }
        Ok(Request::TuntapUp { gate }) => tuntap_up(caller, &gate),
        Ok(req @ Request::Address { .. }) => address(caller, &req),
        Ok(req @ Request::Ethertap { .. }) => finish(
            answer(req.reply_kind(), &uml_net::unsupported("ethertap")),
            false,
        ),
        Ok(req) => finish(
            answer(req.reply_kind(), &uml_net::unsupported("slip")),
            false,
        ),
    }
}
