//! jail_uml against the C tool: linux.uml, with its libraries copied into a jail
//! directory, boots as `nobody`; its hostfs sees only the jail and the guest cannot
//! write outside it; ours also drops supplementary groups, sets no_new_privs and, with
//! --namespaces, gives the UML its own mount, PID, IPC and UTS namespaces. Bad
//! arguments side by side, and the attack a writable jail allows.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tests::{c_tool, linux_uml, our_bin, require_root, run, scratch, GuestImage};

const NOBODY: u32 = 65534;

/// Mounts the host's jail through hostfs, lists it, writes where nobody may and tries
/// to get out; then waits for the test to look at the kernel process.
const INIT: &str = "#!/bin/sh
mount -t proc proc /proc
mount -t hostfs none /mnt -o / || echo HOSTFS-FAILED
echo \"LS: $(ls /mnt | tr '\\n' ' ')\"
echo ok > /mnt/home/ok && echo \"WROTE-HOME $(stat -c %u /mnt/home/ok)\"
echo bad > /mnt/escape 2>/dev/null && echo WROTE-JAIL-ROOT
mkdir -p /up && mount -t hostfs none /up -o /../.. && echo \"UP: $(ls /up | tr '\\n' ' ')\"
cat /up/outside-marker 2>/dev/null && echo READ-OUTSIDE
ln -s /outside-marker /mnt/home/link && cat /mnt/home/link 2>/dev/null && echo READ-LINK
ln -s ../../outside-marker /mnt/home/up && cat /mnt/home/up 2>/dev/null && echo READ-UP
echo JAIL-CHECKS
sleep 4
poweroff -f
";

/// A jail: root-owned 0755, linux.uml and its libraries, a guest image and a home
/// directory owned by nobody; beside it (outside) a marker file.
fn make_jail(dir: &Path) -> PathBuf {
    make_jail_with(dir, INIT)
}

fn make_jail_with(dir: &Path, init: &str) -> PathBuf {
    let kernel = linux_uml().unwrap();
    let jail = dir.join("jail");
    fs::create_dir(&jail).unwrap();
    fs::set_permissions(&jail, fs::Permissions::from_mode(0o755)).unwrap();
    fs::copy(&kernel, jail.join("linux.uml")).unwrap();
    let ldd = tests::run_ok(Command::new("ldd").arg(&kernel));
    for lib in ldd.stdout.split_whitespace().filter(|w| w.starts_with('/')) {
        let dest = jail.join(lib.trim_start_matches('/'));
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(lib, &dest).unwrap();
    }
    // The preload linux.uml gets outside (see tests::peers::XSTATE_PRELOAD), at the same
    // path inside the jail.
    let preload = jail.join(tests::peers::XSTATE_PRELOAD.trim_start_matches('/'));
    fs::create_dir_all(preload.parent().unwrap()).unwrap();
    fs::copy(tests::peers::XSTATE_PRELOAD, &preload).unwrap();
    for (d, mode) in [("home", 0o755), ("tmp", 0o1777)] {
        fs::create_dir(jail.join(d)).unwrap();
        fs::set_permissions(jail.join(d), fs::Permissions::from_mode(mode)).unwrap();
    }
    std::os::unix::fs::chown(jail.join("home"), Some(NOBODY), None).unwrap();
    let image = GuestImage::build(&jail.join("root.img"), init);
    std::os::unix::fs::chown(&image.path, Some(NOBODY), None).unwrap();
    fs::write(dir.join("outside-marker"), "secret\n").unwrap();
    jail
}

fn uml_args(umid: &str) -> Vec<String> {
    [
        "/linux.uml",
        "mem=48M",
        &format!("umid={umid}"),
        "con0=fd:0,fd:1",
        "con=null",
        "ubd0=/root.img",
        "root=/dev/ubda",
        "rw",
        "init=/sbin/init",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The last `n` lines of a console log (the end is where a boot stopped).
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The kernel's /proc/PID/status fields of interest.
#[derive(Debug)]
struct Status {
    uid: String,
    groups: String,
    no_new_privs: String,
    ns_pid: String,
}

fn status(proc_dir: &Path) -> Status {
    let text = fs::read_to_string(proc_dir.join("status")).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    Status {
        uid: field("Uid:"),
        groups: field("Groups:"),
        no_new_privs: field("NoNewPrivs:"),
        ns_pid: field("NSpid:"),
    }
}

fn ns(proc_dir: &Path, kind: &str) -> PathBuf {
    fs::read_link(proc_dir.join("ns").join(kind)).unwrap()
}

/// What one jailed boot showed.
struct Boot {
    console: String,
    kernel: Status,
    namespaces_differ: Vec<bool>,
    code: Option<i32>,
}

/// Boots the jailed linux.uml with `jail_uml` (and `extra` options) and looks at the
/// kernel process while the guest waits.
fn boot(jail_uml: &Path, extra: &[&str], jail: &Path, umid: &str) -> Boot {
    let log = jail.parent().unwrap().join(format!("{umid}.console"));
    let mut child: Child = Command::new(jail_uml)
        .args(extra)
        .arg(jail)
        .arg("nobody")
        .args(uml_args(umid))
        .env("HOME", "/home")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&log).unwrap())
        .stderr(fs::File::create(log.with_extension("err")).unwrap())
        .spawn()
        .unwrap();
    let console = || fs::read_to_string(&log).unwrap_or_default();
    let start = Instant::now();
    while !console().contains("JAIL-CHECKS") {
        if start.elapsed() > Duration::from_secs(60) || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the jailed UML never got through init:\n{}\n{}",
                tail(&console(), 40),
                fs::read_to_string(log.with_extension("err")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Our child as /proc names it (scripts/test's /proc is an outer pid namespace's).
    let me = tests::proc_dir(child.id() as i32).expect("jail_uml in /proc");
    // Without namespaces jail_uml became the kernel; with them the kernel is its child
    // (in a deeper PID namespace: its parent's children list has it, as /proc names it).
    let kernel = if extra.is_empty() {
        me
    } else {
        let pid = me.file_name().unwrap().to_str().unwrap().to_owned();
        let children = fs::read_to_string(me.join("task").join(&pid).join("children")).unwrap();
        let first = children
            .split_whitespace()
            .next()
            .expect("the supervised kernel");
        PathBuf::from("/proc").join(first)
    };
    let status_of_kernel = status(&kernel);
    let namespaces_differ = ["mnt", "pid", "ipc", "uts"]
        .iter()
        .map(|k| ns(Path::new("/proc/self"), k) != ns(&kernel, k))
        .collect();
    let (st, killed) = tests::command::wait_bounded(&mut child, Duration::from_secs(30));
    assert!(!killed, "the jailed UML did not power off:\n{}", console());
    Boot {
        console: console().replace('\r', ""),
        kernel: status_of_kernel,
        namespaces_differ,
        code: st.code(),
    }
}

/// What the guest must have seen in every jailed run.
fn assert_confined(b: &Boot, jail: &Path) {
    let c = &b.console;
    assert_eq!(b.code, Some(0), "{c}");
    // What the jail holds (home lib lib64 linux.uml root.img tmp, and the preload's top
    // directory), as `ls | tr '\n' ' '` prints it.
    let mut names: Vec<String> = fs::read_dir(jail)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let listing = names.iter().map(|n| format!("{n} ")).collect::<String>();
    assert!(
        c.contains(&format!("LS: {listing}\n")),
        "hostfs sees more than the jail:\n{c}"
    );
    assert!(c.contains(&format!("WROTE-HOME {NOBODY}\n")), "{c}");
    assert!(
        c.contains(&format!("UP: {listing}\n")),
        "hostfs -o /../.. got out of the jail:\n{c}"
    );
    for bad in [
        "HOSTFS-FAILED",
        "WROTE-JAIL-ROOT",
        "READ-OUTSIDE",
        "READ-LINK",
        "READ-UP",
        "secret",
    ] {
        assert!(!c.contains(bad), "{bad}:\n{c}");
    }
    assert_eq!(
        b.kernel.uid,
        format!("{NOBODY}\t{NOBODY}\t{NOBODY}\t{NOBODY}")
    );
    let ok = jail.join("home/ok");
    assert_eq!(fs::metadata(&ok).unwrap().uid(), NOBODY);
    fs::remove_file(ok).unwrap();
    let _ = fs::remove_file(jail.join("home/link"));
    let _ = fs::remove_file(jail.join("home/up"));
    // Nothing appeared beside the jail or in its root.
    let parent: Vec<String> = fs::read_dir(jail.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.contains(".console") && !n.ends_with(".err"))
        .collect();
    let mut parent = parent;
    parent.sort();
    assert_eq!(parent, ["jail", "outside-marker"]);
    assert!(!jail.join("escape").exists());
}

#[test]
fn jailed_linux_uml_runs_as_nobody_and_sees_only_the_jail() {
    let Some(c) = c_tool("jail_uml") else {
        return;
    };
    if linux_uml().is_none() {
        return;
    }
    require_root("the jail_uml tests (chroot)");
    let dir = scratch();
    let jail = make_jail(dir.path());

    let theirs = boot(&c, &[], &jail, "jail-c");
    assert_confined(&theirs, &jail);
    // The C tool keeps nobody's supplementary groups and sets no no_new_privs.
    assert_eq!(theirs.kernel.groups, NOBODY.to_string());
    assert_eq!(theirs.kernel.no_new_privs, "0");

    let ours = boot(&our_bin("jail_uml"), &[], &jail, "jail-ours");
    assert_confined(&ours, &jail);
    assert_eq!(ours.kernel.groups, "", "supplementary groups kept");
    assert_eq!(ours.kernel.no_new_privs, "1");
    assert_eq!(ours.namespaces_differ, [false; 4]);

    let ns = boot(&our_bin("jail_uml"), &["--namespaces"], &jail, "jail-ns");
    assert_confined(&ns, &jail);
    assert_eq!(ns.kernel.groups, "");
    assert_eq!(ns.kernel.no_new_privs, "1");
    assert_eq!(ns.namespaces_differ, [true; 4], "mnt pid ipc uts");
    assert!(
        ns.kernel.ns_pid.ends_with("\t1"),
        "the UML is not pid 1 of its namespace: {:?}",
        ns.kernel.ns_pid
    );
}

/// Bad arguments side by side: ours refuses with a one-line error and never starts the
/// command; the C tool, where it accepts them, runs it (here a missing program, so it
/// fails at execve).
#[test]
fn bad_arguments_against_the_c_tool() {
    let Some(c) = c_tool("jail_uml") else {
        return;
    };
    require_root("the jail_uml tests (chroot)");
    let dir = scratch();
    let good = dir.path().join("good");
    fs::create_dir(&good).unwrap();
    fs::set_permissions(&good, fs::Permissions::from_mode(0o755)).unwrap();
    let open = dir.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let theirs_dir = dir.path().join("theirs");
    fs::create_dir(&theirs_dir).unwrap();
    fs::set_permissions(&theirs_dir, fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&theirs_dir, Some(NOBODY), None).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&good, &link).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let (g, o, t, l) = (s(&good), s(&open), s(&theirs_dir), s(&link));
    // args, C status, C stderr, our status, our stderr (a prefix of its only line)
    let cases: Vec<(Vec<&str>, i32, &str, i32, String)> = vec![
        (
            vec![],
            1,
            "Usage : jail_uml jail-directory user",
            2,
            "error:".into(),
        ),
        (
            vec![&g, "nobody"],
            1,
            "execve of (null) failed",
            2,
            "error:".into(),
        ),
        (
            vec!["/nonexistent-jail", "nobody", "/x"],
            1,
            "chdir: No such file or directory",
            1,
            "jail_uml: /nonexistent-jail: No such file or directory".into(),
        ),
        (
            vec![&g, "12abc", "/x"],
            1,
            "Usage : jail_uml",
            1,
            "jail_uml: 12abc: no such user, and not a numeric uid".into(),
        ),
        (
            vec![&g, "root", "/x"],
            1,
            "execve of /x failed : No such file",
            1,
            "jail_uml: root: refusing to run the UML as root".into(),
        ),
        (
            vec![&g, "0", "/x"],
            1,
            "execve of /x failed : No such file",
            1,
            "jail_uml: 0: refusing to run the UML as root".into(),
        ),
        (
            vec![&o, "nobody", "/x"],
            1,
            "execve of /x failed : No such file",
            1,
            format!("jail_uml: {o}: writable by group or others (mode 0777)"),
        ),
        (
            vec![&t, "nobody", "/x"],
            1,
            "execve of /x failed : No such file",
            1,
            format!("jail_uml: {t}: owned by uid {NOBODY}, not root"),
        ),
        (
            vec![&l, "nobody", "/x"],
            1,
            "execve of /x failed : No such file",
            1,
            format!("jail_uml: {l}: is a symbolic link"),
        ),
        (
            vec![&g, "nobody", "/x"],
            1,
            "execve of /x failed : No such file",
            1,
            format!("jail_uml: execve of /x in {g} failed: No such file or directory"),
        ),
    ];
    for (args, c_code, c_err, our_code, our_err) in &cases {
        let theirs = run(Command::new(&c).args(args), Duration::from_secs(10));
        assert_eq!(theirs.code, Some(*c_code), "C {args:?}: {theirs:?}");
        assert!(theirs.stderr.contains(c_err), "C {args:?}: {theirs:?}");
        let ours = run(
            Command::new(our_bin("jail_uml")).args(args),
            Duration::from_secs(10),
        );
        assert_eq!(ours.code, Some(*our_code), "ours {args:?}: {ours:?}");
        assert!(
            ours.stderr.starts_with(our_err.as_str()),
            "ours {args:?}: {ours:?}"
        );
        if *our_code == 1 {
            assert_eq!(ours.stderr.lines().count(), 1, "ours {args:?}: {ours:?}");
        }
    }
    // Not root: both say so, in the same words.
    for bin in [c.clone(), our_bin("jail_uml")] {
        let out = run(
            Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&bin)
                .args([&g, "nobody", "/x"]),
            Duration::from_secs(10),
        );
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(
            out.stderr.contains("jail_uml must be run as root"),
            "{out:?}"
        );
    }
}

/// The attack a jail writable by others allows: another user (uid 12345) replaces the
/// jail's kernel with a program of theirs, which jail_uml then runs as the UML's user
/// (here it writes into nobody's home in the jail). The C tool runs it; ours refuses
/// the jail.
#[test]
fn a_jail_writable_by_another_user_is_refused() {
    let Some(c) = c_tool("jail_uml") else {
        return;
    };
    require_root("the jail_uml tests (chroot)");
    let dir = scratch();
    let attack = |jail_uml: &Path| -> (tests::Output, bool) {
        let jail = dir.path().join("jail");
        let _ = fs::remove_dir_all(&jail);
        fs::create_dir(&jail).unwrap();
        fs::set_permissions(&jail, fs::Permissions::from_mode(0o777)).unwrap();
        fs::create_dir(jail.join("home")).unwrap();
        std::os::unix::fs::chown(jail.join("home"), Some(NOBODY), None).unwrap();
        fs::write(jail.join("linux.uml"), "the administrator's kernel").unwrap();
        // The attacker, an unrelated user, plants a shell and a script as the kernel.
        let planted = run(
            Command::new("setpriv")
                .args(["--reuid=12345", "--regid=12345", "--clear-groups", "sh", "-c"])
                .arg("cp /bin/busybox \"$1/sh\" && rm -f \"$1/linux.uml\" && printf '#!/sh\\necho pwned > /home/pwned\\n' > \"$1/linux.uml\" && chmod 755 \"$1/linux.uml\"")
                .arg("sh")
                .arg(&jail),
            Duration::from_secs(10),
        );
        assert!(planted.success(), "{planted:?}");
        let out = run(
            Command::new(jail_uml)
                .arg(&jail)
                .args(["nobody", "/linux.uml", "mem=48M"]),
            Duration::from_secs(10),
        );
        (out, jail.join("home/pwned").exists())
    };
    let (theirs, pwned) = attack(&c);
    assert!(pwned, "the attack did not work on the C tool: {theirs:?}");
    let (ours, pwned) = attack(&our_bin("jail_uml"));
    assert!(!pwned, "our jail_uml ran the planted program: {ours:?}");
    assert_eq!(ours.code, Some(1));
    assert!(
        ours.stderr.contains("writable by group or others"),
        "{ours:?}"
    );
}

/// With --namespaces the UML is pid 1 of its own namespace under a supervisor: SIGTERM
/// to jail_uml reaches the UML, which halts, and jail_uml exits with it; SIGKILL to the
/// supervisor takes the UML down too (parent-death signal).
#[test]
fn the_supervisor_passes_signals_on_and_takes_the_uml_with_it() {
    if linux_uml().is_none() {
        return;
    }
    require_root("the jail_uml tests (chroot)");
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        // Each round boots its own jail and image: nothing the first UML left behind
        // (an unclean image, its temp files) reaches the second.
        let dir = scratch();
        let jail = make_jail_with(
            dir.path(),
            "#!/bin/sh\nmount -t proc proc /proc\necho JAIL-READY\nwhile true; do sleep 1; done\n",
        );
        let umid = format!("jail-sig{signal}");
        let log = dir.path().join(format!("{umid}.console"));
        let errors = log.with_extension("err");
        let mut child = Command::new(our_bin("jail_uml"))
            .arg("--namespaces")
            .arg(&jail)
            .arg("nobody")
            .args(uml_args(&umid))
            .env("HOME", "/home")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::create(&errors).unwrap())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("JAIL-READY")
        {
            let ended = child.try_wait().unwrap();
            if ended.is_some() || start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "signal {signal} round: the jailed UML never got through init ({}):\n{}\n{}",
                    match ended {
                        Some(st) => format!("jail_uml ended with {st:?}"),
                        None => "still booting after 60 s".to_owned(),
                    },
                    tail(&fs::read_to_string(&log).unwrap_or_default(), 40),
                    fs::read_to_string(&errors).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let me = tests::proc_dir(child.id() as i32).unwrap();
        let pid = me.file_name().unwrap().to_str().unwrap().to_owned();
        let children = fs::read_to_string(me.join("task").join(&pid).join("children")).unwrap();
        let kernel = PathBuf::from("/proc").join(children.split_whitespace().next().unwrap());
        // A process is (state, start time) from /proc/PID/stat, after the comm field.
        let state = |proc: &Path| {
            let stat = fs::read_to_string(proc.join("stat")).ok()?;
            let rest: Vec<String> = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            Some((rest.first()?.clone(), rest.get(19)?.clone()))
        };
        let (_, kernel_start) = state(&kernel).expect("the kernel's stat");
        // SAFETY: kill on the pid of a child we spawned and have not reaped.
        unsafe { libc::kill(child.id() as i32, signal) };
        let (status, killed) = tests::command::wait_bounded(&mut child, Duration::from_secs(20));
        assert!(!killed, "jail_uml did not end after signal {signal}");
        // The kernel process is gone (dead, a zombie, or its pid reused).
        let start = Instant::now();
        loop {
            match state(&kernel) {
                Some((st, started)) if st != "Z" && started == kernel_start => {}
                _ => break,
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the UML outlived jail_uml (signal {signal})"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        if signal == libc::SIGTERM {
            // jail_uml ended because the UML did, passing on its status (linux.uml
            // shuts down on SIGTERM).
            use std::os::unix::process::ExitStatusExt;
            assert!(status.signal().is_none(), "{status:?}");
            eprintln!("SIGTERM: jail_uml exited with {status:?}");
        }
    }
}
