//! uml-kernel's mconsole request handling short of the machine: datagram
//! classification, the command table, and the parsers `config` hands its argument to.
#![no_main]
use kernel::cmdline;
use kernel::mconsole::{self, Command, Incoming};
use libfuzzer_sys::fuzz_target;
use uml_proto::mconsole::{Reply, MAX_REPLY_LEN};

fn emits(replies: &[Reply]) {
    let mut buf = [0u8; MAX_REPLY_LEN];
    for r in replies {
        r.emit(&mut buf).expect("every reply piece fits a packet");
    }
}

fuzz_target!(|data: &[u8]| {
    match mconsole::classify(data) {
        Incoming::Refuse(replies) => emits(&replies),
        Incoming::Run {
            command: Some(Command::Config(arg)),
            ..
        } => {
            if let Some((dev, value)) = arg.split_once('=') {
                let _ = cmdline::parse_ubd(&arg);
                let _ = cmdline::parse_line(value);
                let _ = cmdline::parse_ubd_index(dev.trim_start_matches("ubd"));
            }
        }
        Incoming::Run {
            command: Some(Command::Log(text)),
            ..
        } => emits(&mconsole::streamed(b"\n", &text)),
        _ => {}
    }
    emits(&mconsole::answer(0, &String::from_utf8_lossy(data)));
});
