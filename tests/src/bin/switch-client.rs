//! A daemon-transport client for tests that run it as another user (setpriv):
//! `switch-client CTL ADDR [--bind] [--wait-ms N]` attaches to the switch at CTL with a
//! v3 request naming ADDR as its data address (`@TAG`: the abstract name of this
//! process's pid and TAG, as linux.uml makes them; `@PID:TAG`: someone else's; anything
//! else: a path), prints `attached` or `refused`, then keeps the port for N ms (default
//! 1000) and, with --bind (it binds ADDR itself), prints `received K` frames.
//! `switch-client inject HEXADDR HEXFRAME` sends one datagram from an unbound socket to
//! the raw 110-byte address and prints `sent` or the error.
#![allow(clippy::unwrap_used)] // a test helper that fails loudly

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use uml_proto::switch::{bind_dgram, recv_from, DataAddr, Request, MAX_REQUEST_LEN};

fn address(spec: &str) -> DataAddr {
    match spec.strip_prefix('@') {
        Some(rest) => match rest.split_once(':') {
            Some((pid, tag)) => DataAddr::abstract_name(pid.parse().unwrap(), tag.parse().unwrap()),
            None => DataAddr::abstract_name(std::process::id(), rest.parse().unwrap()),
        },
        None => DataAddr::path(Path::new(spec)).expect("path fits a sockaddr"),
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn inject(addr: &str, frame: &str) {
    let to = DataAddr::from_raw(&unhex(addr));
    let sock = std::os::unix::net::UnixDatagram::unbound().unwrap();
    match uml_proto::switch::send_to(sock.as_fd(), &unhex(frame), &to) {
        Ok(_) => println!("sent"),
        Err(e) => println!("error: {e}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args[1] == "inject" {
        return inject(&args[2], &args[3]);
    }
    let ctl = &args[1];
    let addr = address(&args[2]);
    let bind = args.iter().any(|a| a == "--bind");
    let wait_ms: u64 = args
        .iter()
        .position(|a| a == "--wait-ms")
        .map_or(1000, |i| args[i + 1].parse().unwrap());
    let data = bind.then(|| bind_dgram(&addr).expect("bind the data address"));
    let mut control = UnixStream::connect(ctl).expect("connect to the switch");
    let mut req = [0u8; MAX_REQUEST_LEN];
    let n = Request::V3 { addr }.emit(&mut req);
    control.write_all(&req[..n]).unwrap();
    control
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reply = [0u8; 110];
    let attached = control.read_exact(&mut reply).is_ok();
    println!("{}", if attached { "attached" } else { "refused" });
    let start = Instant::now();
    let mut received = 0;
    let mut buf = [0u8; 2048];
    while start.elapsed() < Duration::from_millis(wait_ms) {
        match &data {
            Some(d) => match recv_from(d.as_fd(), &mut buf) {
                Ok(_) => received += 1,
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            },
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    if bind {
        println!("received {received}");
    }
}
