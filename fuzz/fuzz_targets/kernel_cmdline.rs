//! uml-kernel's command line (NUL-separated switches in the input): the whole parse,
//! the root device lookup, and each switch's value parsers on their own.
#![no_main]
use kernel::cmdline::{self, Invocation};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let args: Vec<String> = data
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if let Ok(Invocation::Boot(config)) = cmdline::parse(&args) {
        let _ = config.root_ubd();
    }
    for a in &args {
        let _ = cmdline::parse_ubd(a);
        let _ = cmdline::parse_ubd_index(a);
        let _ = cmdline::parse_line(a);
        let _ = cmdline::parse_mem(a, a);
    }
});
