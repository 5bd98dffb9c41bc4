//! uml_mount and `uml_mconsole UMID umlfs FD`: the FUSE mount, the hand-over of the
//! /dev/fuse descriptor over the mconsole socket (SCM_RIGHTS), and what happens when
//! the kernel does not take it (linux.uml: ERR Unknown command, a silent socket): the
//! mount is taken down, nothing hangs. uml-kernel and a fake kernel take the
//! descriptor: the mount stays. Every uml_mount runs in a private mount
//! namespace, so a failing test leaves no mount behind.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tests::{c_tool, our_bin, require_root, run, scratch, GuestImage, Uml};
use uml_proto::mconsole::{Reply, Request, REQUEST_LEN};

const LIMIT: Duration = Duration::from_secs(40);

/// PATH with our target directory first (so uml_mount runs our uml_mconsole).
fn our_path() -> String {
    format!(
        "{}:{}",
        our_bin("uml_mconsole").parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// What a uml_mount run in a private mount namespace gave.
struct Mounting {
    out: tests::Output,
    /// The namespace's mount table had MOUNTPOINT right after uml_mount exited.
    mounted: bool,
    code: i32,
    took: Duration,
}

fn uml_mount(home: &Path, mnt: &Path, args: &[&str]) -> Mounting {
    let script = r#"mnt="$1"; shift
"$@"; rc=$?
echo "RC=$rc"
if grep -q " $mnt " /proc/self/mountinfo; then echo MOUNTED; else echo NOT-MOUNTED; fi"#;
    let start = Instant::now();
    let out = run(
        Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(mnt)
            .arg(our_bin("uml_mount"))
            .args(args)
            .env("HOME", home)
            .env("PATH", our_path()),
        LIMIT,
    );
    let took = start.elapsed();
    assert!(!out.timed_out, "uml_mount hung: {out:?}");
    let code = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("RC="))
        .unwrap_or_else(|| panic!("no RC line: {out:?}"))
        .parse()
        .unwrap();
    Mounting {
        mounted: out.stdout.contains("\nMOUNTED\n"),
        out,
        code,
        took,
    }
}

fn mountpoint(dir: &Path) -> PathBuf {
    let mnt = dir.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    mnt
}

/// A uml-kernel in the background (stdin held open), killed when dropped.
struct Kern(Child);

impl Drop for Kern {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn uml_kernel(home: &Path, umid: &str) -> Kern {
    fs::create_dir_all(home).unwrap();
    let child = Command::new(our_bin("uml-kernel"))
        .arg(format!("umid={umid}"))
        .env("HOME", home)
        .current_dir(home)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sock = home.join(".uml").join(umid).join("mconsole");
    let start = Instant::now();
    while !sock.exists() {
        assert!(
            start.elapsed() < LIMIT,
            "uml-kernel made no mconsole socket"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    Kern(child)
}

fn mconsole(client: &Path, home: &Path, args: &[&str]) -> tests::Output {
    run(
        Command::new(client).args(args).env("HOME", home),
        Duration::from_secs(20),
    )
}

/// uml-kernel takes the descriptor (its side of umlfs is tested in kernel_umlfs.rs):
/// uml_mount exits 0 at once and leaves the mount in place.
#[test]
fn uml_kernel_takes_the_descriptor_and_the_mount_stays() {
    require_root("the uml_mount tests (FUSE mounts)");
    let dir = scratch();
    let home = dir.path().join("home");
    let _k = uml_kernel(&home, "um-k");
    let mnt = mountpoint(dir.path());
    let m = uml_mount(&home, &mnt, &["um-k", mnt.to_str().unwrap()]);
    assert_eq!(m.code, 0, "{:?}", m.out);
    assert!(m.mounted, "not mounted: {:?}", m.out);
    assert!(
        m.out.stdout.starts_with("OK umlfs: serving / over FUSE 7."),
        "{:?}",
        m.out
    );
    assert!(m.out.stderr.is_empty(), "{:?}", m.out);
    assert!(m.took < Duration::from_secs(10), "{:?}", m.took);
    // The kernel carries on.
    let v = mconsole(&our_bin("uml_mconsole"), &home, &["um-k", "version"]);
    assert!(v.success(), "{v:?}");
}

#[test]
fn linux_uml_answers_unknown_command_with_both_clients() {
    let Some(c) = c_tool("uml_mconsole") else {
        return;
    };
    require_root("the uml_mount tests (FUSE mounts)");
    let dir = scratch();
    let home = dir.path().join("home");
    let image = GuestImage::build(
        &dir.path().join("root.img"),
        "#!/bin/sh\nmount -t proc proc /proc\necho UMLFS-READY\nwhile true; do sleep 1; done\n",
    );
    let Some(uml) = Uml::new(&home, "um-l") else {
        return;
    };
    let uml = uml.root(image.path.to_str().unwrap());
    let _boot = uml.spawn_until("UMLFS-READY", LIMIT);
    let mnt = mountpoint(dir.path());
    let m = uml_mount(&home, &mnt, &["um-l", mnt.to_str().unwrap()]);
    assert_eq!(m.code, 1, "{:?}", m.out);
    assert!(!m.mounted, "left mounted: {:?}", m.out);
    assert!(
        m.out.stdout.starts_with("ERR Unknown command\n"),
        "{:?}",
        m.out
    );
    assert!(
        m.out.stderr.contains("um-l did not take the filesystem"),
        "{:?}",
        m.out
    );
    // `umlfs FD` from the C client and from ours: the same answer, the same failure.
    let with_fd = |client: &Path| {
        run(
            Command::new("sh")
                .args(["-c", "exec 7</dev/null; exec \"$@\"", "sh"])
                .arg(client)
                .args(["um-l", "umlfs", "7"])
                .env("HOME", &home),
            Duration::from_secs(20),
        )
    };
    // The C client's umlfs now and then dies of SIGSEGV before printing anything (seen
    // about one run in four here); its answer is the first run that lives.
    let theirs = (0..8)
        .map(|_| with_fd(&c))
        .find(|o| o.signal != Some(libc::SIGSEGV))
        .expect("the C uml_mconsole crashed eight times in a row");
    let ours = with_fd(&our_bin("uml_mconsole"));
    assert_eq!(ours.stdout, theirs.stdout, "ours {ours:?}, C {theirs:?}");
    assert_eq!(ours.stdout, "ERR Unknown command\n");
    assert_eq!(ours.success(), theirs.success());
    // A descriptor that is not open is refused before anything is sent.
    let closed = mconsole(&our_bin("uml_mconsole"), &home, &["um-l", "umlfs", "97"]);
    assert_eq!(closed.code, Some(1), "{closed:?}");
    assert!(
        closed
            .stderr
            .contains("\"97\" is not an open file descriptor"),
        "{closed:?}"
    );
    assert!(mconsole(&our_bin("uml_mconsole"), &home, &["um-l", "version"]).success());
}

/// A fake kernel at `sock` that takes one request with its descriptor and never
/// answers; hands back what it got.
fn silent_kernel(sock: &Path) -> std::thread::JoinHandle<(String, Option<OwnedFd>)> {
    let server = UnixDatagram::bind(sock).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; REQUEST_LEN];
        let (n, fd) = uml_proto::fdpass::recv_fd(server.as_fd(), &mut buf).unwrap();
        let req = Request::parse(&buf[..n]).unwrap();
        (String::from_utf8_lossy(&req.command).into_owned(), fd)
    })
}

#[test]
fn a_kernel_that_takes_the_descriptor_keeps_the_mount() {
    require_root("the uml_mount tests (FUSE mounts)");
    let dir = scratch();
    let sock = dir.path().join("fake.sock");
    let server = UnixDatagram::bind(&sock).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let fake = std::thread::spawn(move || {
        use nix::sys::socket::{recvmsg, sendto, ControlMessageOwned, MsgFlags, UnixAddr};
        use std::os::fd::{AsRawFd, FromRawFd};
        let mut buf = [0u8; REQUEST_LEN];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 2]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<UnixAddr>(
            server.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .unwrap();
        let n = msg.bytes;
        let from = msg.address.expect("the client's address");
        let mut fd = None;
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(fds) = c {
                // SAFETY: the kernel just installed these descriptors for us.
                fd = fds.first().map(|&f| unsafe { OwnedFd::from_raw_fd(f) });
            }
        }
        let req = Request::parse(&buf[..n]).unwrap();
        let mut out = [0u8; 600];
        let reply = Reply {
            err: 0,
            more: false,
            text: b"umlfs: serving".to_vec(),
        };
        let len = reply.emit(&mut out).unwrap();
        sendto(server.as_raw_fd(), &out[..len], &from, MsgFlags::empty()).unwrap();
        (String::from_utf8_lossy(&req.command).into_owned(), fd)
    });
    let mnt = mountpoint(dir.path());
    let m = uml_mount(
        dir.path(),
        &mnt,
        &[
            sock.to_str().unwrap(),
            mnt.to_str().unwrap(),
            "-o",
            "allow_other",
        ],
    );
    let (command, fd) = fake.join().unwrap();
    assert_eq!(m.code, 0, "{:?}", m.out);
    assert!(m.mounted, "not mounted: {:?}", m.out);
    assert!(
        m.out.stdout.starts_with("OK umlfs: serving\n"),
        "{:?}",
        m.out
    );
    assert!(m.out.stderr.is_empty(), "{:?}", m.out);
    let (word, number) = command.split_once(' ').unwrap();
    assert_eq!(word, "umlfs");
    assert!(number.parse::<i32>().unwrap() > 2, "{command:?}");
    let fd = fd.expect("no descriptor came with the request");
    let what = fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))
    .unwrap();
    // (/dev/fuse, or /fuse when /dev is a mount of its own)
    assert!(what.ends_with("fuse"), "{}", what.display());
}

#[test]
fn a_silent_socket_is_given_up_on_and_unmounted() {
    require_root("the uml_mount tests (FUSE mounts)");
    let dir = scratch();
    let sock = dir.path().join("silent.sock");
    let fake = silent_kernel(&sock);
    let mnt = mountpoint(dir.path());
    let m = uml_mount(
        dir.path(),
        &mnt,
        &[
            sock.to_str().unwrap(),
            mnt.to_str().unwrap(),
            "--timeout",
            "2",
        ],
    );
    let (command, fd) = fake.join().unwrap();
    assert!(command.starts_with("umlfs "), "{command:?}");
    assert!(fd.is_some());
    assert_eq!(m.code, 1, "{:?}", m.out);
    assert!(!m.mounted, "left mounted: {:?}", m.out);
    assert!(
        m.out.stderr.contains("(no answer within 2 s)"),
        "{:?}",
        m.out
    );
    assert!(m.took < Duration::from_secs(8), "{:?}", m.took);
}

/// One bad-argument case: args, the C tool's status and stderr, ours.
type Case<'a> = (Vec<&'a str>, Option<i32>, &'a str, i32, String);

/// Bad arguments: ours refuses with one line and mounts nothing; the C tool (which
/// needs fusermount, not installed here) in the same cases.
#[test]
fn bad_arguments_against_the_c_tool() {
    let Some(c) = c_tool("uml_mount") else {
        return;
    };
    require_root("the uml_mount tests (FUSE mounts)");
    let dir = scratch();
    let home = dir.path().join("home");
    let _k = uml_kernel(&home, "um-b");
    let mnt = mountpoint(dir.path());
    let m = mnt.to_str().unwrap().to_owned();
    let file = dir.path().join("file");
    fs::write(&file, "").unwrap();
    let f = file.to_str().unwrap().to_owned();
    // args, C status, C stderr, our status, our stderr
    let cases: Vec<Case> = vec![
        (vec![], None, "Assertion", 2, "error:".into()),
        (
            vec!["um-b"],
            Some(1),
            "fuse: missing mountpoint parameter",
            2,
            "error:".into(),
        ),
        (
            vec!["no-such-uml", &m],
            Some(1),
            "fuse: failed to exec fusermount",
            1,
            "uml_mount: no UML named 'no-such-uml' (tried ".into(),
        ),
        (
            vec!["um-b", "/nonexistent-mnt"],
            Some(1),
            "fuse: ",
            1,
            "uml_mount: /nonexistent-mnt: No such file or directory".into(),
        ),
        (
            vec!["um-b", &f],
            Some(1),
            "fuse: ",
            1,
            format!("uml_mount: {f}: Not a directory"),
        ),
        (
            vec!["um-b", &m, "-o", "no_such_fuse_option"],
            Some(1),
            "fuse: ",
            1,
            format!("uml_mount: mount {m}: Invalid argument (an unknown -o option?)"),
        ),
    ];
    for (args, c_code, c_err, our_code, our_err) in &cases {
        let theirs = run(
            Command::new(&c).args(args).env("HOME", &home),
            Duration::from_secs(10),
        );
        assert_eq!(theirs.code, *c_code, "C {args:?}: {theirs:?}");
        assert!(theirs.stderr.contains(c_err), "C {args:?}: {theirs:?}");
        let ours = uml_mount(&home, &mnt, args);
        assert_eq!(ours.code, *our_code, "ours {args:?}: {:?}", ours.out);
        assert!(!ours.mounted, "ours {args:?} left a mount");
        assert!(
            ours.out.stderr.starts_with(our_err.as_str()),
            "ours {args:?}: {:?}",
            ours.out
        );
        if *our_code == 1 {
            assert_eq!(
                ours.out.stderr.lines().count(),
                1,
                "ours {args:?}: {:?}",
                ours.out
            );
        }
    }
    // Not root: said before anything is mounted.
    let sock = dir.path().join("any.sock");
    let _listening = UnixDatagram::bind(&sock).unwrap();
    let out = run(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(our_bin("uml_mount"))
            .arg(&sock)
            .arg(&m),
        Duration::from_secs(10),
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("mounting needs root"), "{out:?}");
}

/// SIGTERM while the UML has not answered: uml_mount stops uml_mconsole, unmounts and
/// exits 1 at once (the C tool, being uml_mconsole by then, died and left the mount).
#[test]
fn a_stop_request_during_the_hand_over_unmounts() {
    require_root("the uml_mount tests (FUSE mounts)");
    let dir = scratch();
    let sock = dir.path().join("silent.sock");
    let fake = silent_kernel(&sock);
    let mnt = mountpoint(dir.path());
    let script = r#"mnt="$1"; shift
"$@" & pid=$!
sleep 1
kill -TERM $pid
wait $pid; echo "RC=$?"
if grep -q " $mnt " /proc/self/mountinfo; then echo MOUNTED; else echo NOT-MOUNTED; fi"#;
    let start = Instant::now();
    let out = run(
        Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(&mnt)
            .arg(our_bin("uml_mount"))
            .arg(&sock)
            .arg(&mnt)
            .args(["--timeout", "30"])
            .env("PATH", our_path()),
        LIMIT,
    );
    let took = start.elapsed();
    let _ = fake.join();
    assert!(out.stdout.contains("RC=1\nNOT-MOUNTED\n"), "{out:?}");
    assert!(
        out.stderr
            .contains("did not take the filesystem (interrupted by SIGTERM)"),
        "{out:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
}
