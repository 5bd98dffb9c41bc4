//! The uml_mconsole binary against a fake kernel (a thread answering on a socket with
//! uml_proto's reply packets): what it sends for local commands, --uml-dir, --json,
//! `NAME: command`, malformed replies and bad arguments. No UML needed.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use uml_proto::mconsole::{Reply, Request};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_uml_mconsole")
}

/// A fake kernel at `dir/umid/mconsole`: answers each request with `answer(command)`
/// (raw datagrams) until `count` requests came; returns the commands it saw.
fn fake(
    dir: &Path,
    umid: &str,
    count: usize,
    answer: fn(&[u8]) -> Vec<Vec<u8>>,
) -> (PathBuf, JoinHandle<Vec<String>>) {
    let d = dir.join(umid);
    std::fs::create_dir_all(&d).unwrap();
    let path = d.join("mconsole");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let h = std::thread::spawn(move || {
        use std::os::linux::net::SocketAddrExt;
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        for _ in 0..count {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                break;
            };
            let req = Request::parse(&buf[..n]).unwrap();
            seen.push(String::from_utf8(req.command.clone()).unwrap());
            let to = std::os::unix::net::SocketAddr::from_abstract_name(
                from.as_abstract_name()
                    .expect("the client binds an abstract address"),
            )
            .unwrap();
            for d in answer(&req.command) {
                sock.send_to_addr(&d, &to).unwrap();
            }
        }
        seen
    });
    (path, h)
}

fn packets(err: i32, text: &[u8]) -> Vec<Vec<u8>> {
    Reply::pieces(err, text, false)
        .iter()
        .map(|r| r.to_vec().unwrap())
        .collect()
}

fn ok_empty(_: &[u8]) -> Vec<Vec<u8>> {
    packets(0, b"")
}

fn echo(cmd: &[u8]) -> Vec<Vec<u8>> {
    packets(0, cmd)
}

fn run(home: &Path, cwd: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut c = Command::new(bin());
    c.args(args).env("HOME", home).current_dir(cwd);
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn uml_dir_finds_the_socket_and_json_wraps_the_answer() {
    let root = tempfile::tempdir().unwrap();
    let umls = root.path().join("umls");
    let (_, h) = fake(&umls, "vm", 2, echo);
    let dir = umls.to_str().unwrap();
    let o = run(
        root.path(),
        root.path(),
        &["--uml-dir", dir, "vm", "proc", "uptime"],
        None,
    );
    assert_eq!(
        (text(&o.stdout), o.status.code()),
        ("OK proc uptime\n".into(), Some(0))
    );
    let o = run(
        root.path(),
        root.path(),
        &["--uml-dir", dir, "--json", "vm", "say \"hi\""],
        None,
    );
    assert_eq!(
        text(&o.stdout),
        "{\"ok\":true,\"output\":\"say \\\"hi\\\"\"}\n"
    );
    assert_eq!(h.join().unwrap(), vec!["proc uptime", "say \"hi\""]);
}

#[test]
fn log_file_is_sent_in_request_sized_chunks() {
    let home = tempfile::tempdir().unwrap();
    let (_, h) = fake(&home.path().join(".uml"), "vm", 4, ok_empty);
    let body: String = "0123456789".repeat(120);
    std::fs::write(home.path().join("msg"), &body).unwrap();
    let o = run(home.path(), home.path(), &["vm", "log", "-f", "msg"], None);
    assert_eq!(text(&o.stdout), "OK \n".repeat(4));
    let seen = h.join().unwrap();
    let lens: Vec<usize> = seen.iter().map(String::len).collect();
    assert_eq!(lens, vec![510, 510, 192, 5]);
    assert_eq!(seen[0], format!("log {}", &body[..506]));
    assert_eq!(seen[3], "log \n");
}

#[test]
fn relative_ubd_files_are_sent_absolute_and_prefix_targets_another_uml() {
    let home = tempfile::tempdir().unwrap();
    let cwd = std::fs::canonicalize(home.path()).unwrap();
    let (_, a) = fake(&home.path().join(".uml"), "vm", 1, ok_empty);
    let (_, b) = fake(&home.path().join(".uml"), "other", 1, echo);
    let script = b"config ubd1=disk.img,base.img\nother: version\nquit\nversion\n";
    let o = run(home.path(), &cwd, &["vm"], Some(script));
    assert_eq!(text(&o.stdout), "OK \nOK version\n");
    assert_eq!(o.status.code(), Some(0));
    let c = cwd.display();
    assert_eq!(
        a.join().unwrap(),
        vec![format!("config ubd1={c}/disk.img,{c}/base.img")]
    );
    assert_eq!(b.join().unwrap(), vec!["version"]);
}

#[test]
fn malformed_and_error_replies() {
    fn garbage(_: &[u8]) -> Vec<Vec<u8>> {
        vec![b"ERR Version 0 mconsole clients are not supported".to_vec()]
    }
    fn enodev(_: &[u8]) -> Vec<Vec<u8>> {
        packets(-19, b"Device doesn't exist")
    }
    let home = tempfile::tempdir().unwrap();
    let (sock, h) = fake(&home.path().join(".uml"), "bad", 1, garbage);
    let o = run(home.path(), home.path(), &["bad", "version"], None);
    assert_eq!((text(&o.stdout), o.status.code()), (String::new(), Some(1)));
    let err = text(&o.stderr);
    assert!(
        err.starts_with("uml_mconsole: ") && err.contains("malformed reply"),
        "{err}"
    );
    assert!(err.contains(sock.to_str().unwrap()));
    h.join().unwrap();
    let (_, h) = fake(&home.path().join(".uml"), "vm", 1, enodev);
    let o = run(home.path(), home.path(), &["vm", "remove", "ubd5"], None);
    assert_eq!(
        (text(&o.stdout), o.status.code()),
        ("ERR Device doesn't exist\n".into(), Some(1))
    );
    h.join().unwrap();
}

#[test]
fn bad_arguments_are_usage_errors() {
    let home = tempfile::tempdir().unwrap();
    let o = run(
        home.path(),
        home.path(),
        &["--timeout", "0", "vm", "version"],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    let o = run(home.path(), home.path(), &[], None);
    assert_eq!(o.status.code(), Some(2));
    let o = run(home.path(), home.path(), &["--once", "vm"], None);
    assert_eq!(o.status.code(), Some(2));
    let o = run(home.path(), home.path(), &["--help"], None);
    assert!(o.status.success() && text(&o.stdout).contains("--notify"));
    let o = run(home.path(), home.path(), &["vm", "mconsole-version"], None);
    assert_eq!(text(&o.stdout), "uml_mconsole client version 2\n");
    let long = "x".repeat(600);
    let o = run(
        home.path(),
        home.path(),
        &["/nonexistent/sock", &long],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
}
