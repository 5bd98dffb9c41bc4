//! uml-kernel's mconsole command execution: every request a client can send, run
//! against one booted kernel (no consoles, no disks) as its event loop runs it, and
//! every reply emitted as a packet. Commands that would reach the host (attaching
//! disks, network devices, or channels other than `null`) are left out: they open
//! files, sockets and helpers named by the input.
#![no_main]
use std::cell::RefCell;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Instant;

use kernel::cmdline::{self, Invocation};
use kernel::mconsole::{self, Command, Incoming};
use kernel::Kernel;
use libfuzzer_sys::fuzz_target;
use uml_proto::mconsole::MAX_REPLY_LEN;

thread_local! {
    static KERNEL: RefCell<Option<(Kernel, SocketAddr)>> = const { RefCell::new(None) };
}

fn boot() -> (Kernel, SocketAddr) {
    let dir = std::env::temp_dir().join(format!("uml-fuzz-exec-{}", std::process::id()));
    let args: Vec<String> = [
        "umid=fuzz".to_string(),
        format!("uml_dir={}", dir.display()),
        "con0=null".into(),
        "con=null".into(),
        "ssl=null".into(),
        "quiet".into(),
    ]
    .into();
    let Ok(Invocation::Boot(config)) = cmdline::parse(&args) else {
        panic!("the fuzz kernel's command line does not parse");
    };
    let k = Kernel::boot(*config, None, Instant::now()).expect("boot");
    // Nothing here talks to the socket, and the fuzzer exits without dropping the
    // kernel: its umid directory goes now rather than stay behind in /tmp.
    let _ = std::fs::remove_dir_all(&dir);
    // An unnamed sender: what sysrq b answers early goes nowhere.
    let from = UnixDatagram::unbound()
        .and_then(|s| s.local_addr())
        .expect("unnamed address");
    (k, from)
}

/// Only what stays inside the kernel.
fn stays_inside(c: &Command) -> bool {
    match c {
        Command::Config(arg) => match arg.split_once('=') {
            None => true,
            Some((dev, value)) => {
                dev.starts_with("mem")
                    || ((dev.starts_with("con") || dev.starts_with("ssl")) && value == "null")
            }
        },
        _ => true,
    }
}

fuzz_target!(|data: &[u8]| {
    let Incoming::Run {
        command: Some(command),
        ..
    } = mconsole::classify(data)
    else {
        return;
    };
    if !stays_inside(&command) {
        return;
    }
    KERNEL.with(|cell| {
        let mut slot = cell.borrow_mut();
        let (k, from) = slot.get_or_insert_with(boot);
        let replies = k.execute_mconsole(command, from);
        // Halt, reboot and sysrq leave an action for the loop: this kernel runs on.
        k.machine().action = None;
        let mut buf = [0u8; MAX_REPLY_LEN];
        for r in &replies {
            r.emit(&mut buf).expect("every reply piece fits a packet");
        }
    });
});
