//! uml_net's argument list (NUL-separated in the input): parse, rebuild the argv,
//! parse gives the same request.
#![no_main]
use libfuzzer_sys::fuzz_target;
use uml_proto::helper::parse_argv;

fuzz_target!(|data: &[u8]| {
    let args: Vec<String> = data
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if let Ok(req) = parse_argv(&args) {
        let _ = req.reply_kind();
        let again = parse_argv(&req.argv()).expect("a rebuilt argv parses");
        assert_eq!(again, req);
    }
});
