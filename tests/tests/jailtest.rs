//! jailtest in a linux.uml guest: our static build and the C jailtest side by side on
//! the same kernel, as guest root and as an unprivileged guest user; and ours in a
//! uml-kernel guest, all GOOD.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tests::{c_tool, our_bin, run, scratch, GuestImage, Uml};

const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// Builds jailtest as a static (glibc static-pie) binary: the guest image has no C
/// library. `cargo rustc` with an explicit target keeps it apart from the normal
/// (dynamic) build in the same target directory.
fn static_jailtest() -> PathBuf {
    let built = our_bin("jailtest");
    let profile_dir = built.parent().unwrap();
    let target_dir = profile_dir.parent().unwrap();
    let profile = profile_dir.file_name().unwrap().to_str().unwrap();
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let out = run(
        Command::new(cargo)
            .args(["rustc", "--quiet", "-p", "jailtest", "--bin", "jailtest"])
            .args(["--target", TRIPLE, "--target-dir"])
            .arg(target_dir)
            .arg("--manifest-path")
            .arg(&manifest)
            .args([
                "--profile",
                if profile == "debug" { "dev" } else { profile },
            ])
            .args(["--", "-C", "target-feature=+crt-static"]),
        Duration::from_secs(600),
    );
    assert!(out.success(), "static build of jailtest failed: {out:?}");
    let path = target_dir.join(TRIPLE).join(profile).join("jailtest");
    let file = tests::run_ok(Command::new("file").arg(&path));
    assert!(
        file.stdout.contains("static-pie linked") || file.stdout.contains("statically linked"),
        "not static: {}",
        file.stdout
    );
    path
}

/// The lines between `begin` and `end N` in `console`, and N.
fn section(console: &str, begin: &str, end: &str) -> (Vec<String>, i32) {
    let start = console
        .find(&format!("{begin}\n"))
        .unwrap_or_else(|| panic!("no {begin} in\n{console}"));
    let rest = &console[start + begin.len() + 1..];
    let stop = rest
        .find(&format!("{end} "))
        .unwrap_or_else(|| panic!("no {end} in\n{console}"));
    let code = rest[stop + end.len() + 1..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let lines = rest[..stop]
        .lines()
        .filter(|l| l.starts_with("Trying "))
        .map(str::to_owned)
        .collect();
    (lines, code)
}

#[test]
fn jailtest_in_a_linux_uml_guest_against_the_c_jailtest() {
    let Some(c) = c_tool("jailtest") else {
        return;
    };
    let dir = scratch();
    let ours = fs::read(static_jailtest()).unwrap();
    let host_only = dir.path().join("host-only-marker");
    fs::write(&host_only, "host\n").unwrap();
    let host = host_only.display();
    let init = format!(
        "#!/bin/sh
mount -t proc proc /proc
mount -t devtmpfs dev /dev 2>/dev/null
echo ROOT-BEGIN
/bin/jailtest --host-path {host}
echo \"ROOT-EXIT $?\"
echo USER-BEGIN
su -s /bin/sh nobody -c '/bin/jailtest --host-path {host}'
echo \"USER-EXIT $?\"
echo C-BEGIN
/bin/jailtest-c
echo \"C-EXIT $?\"
poweroff -f
"
    );
    // The C jailtest is dynamic: give it its libraries.
    let c_bytes = fs::read(&c).unwrap();
    let ldd = tests::run_ok(Command::new("ldd").arg(&c));
    let libs: Vec<(String, Vec<u8>)> = ldd
        .stdout
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(|l| (l.trim_start_matches('/').to_owned(), fs::read(l).unwrap()))
        .collect();
    let mut files: Vec<(&str, &[u8], u32)> = vec![
        ("bin/jailtest", &ours, 0o755),
        ("bin/jailtest-c", &c_bytes, 0o755),
        (
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
            0o644,
        ),
        ("etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644),
    ];
    for (path, bytes) in &libs {
        files.push((path, bytes, 0o755));
    }
    let image = GuestImage::build_with(&dir.path().join("root.img"), &init, 96, &files);
    let Some(uml) = Uml::new(&dir.path().join("home"), "jailtest") else {
        return;
    };
    let out = uml
        .root(image.path.to_str().unwrap())
        .boot_to_poweroff(Duration::from_secs(120));
    let console = out.stdout.replace('\r', "");

    // As an unprivileged guest user every probe is GOOD.
    let (user, code) = section(&console, "USER-BEGIN", "USER-EXIT");
    assert_eq!(user.len(), 14, "{user:#?}");
    assert!(user.iter().all(|l| l.ends_with(" - GOOD")), "{user:#?}");
    assert_eq!(code, 0, "{user:#?}");
    assert!(user.contains(&format!(
        "Trying to reach host path {host}...Not there - GOOD"
    )));
    assert!(user.contains(&"Trying to directly write 0x60000000...Segv - GOOD".to_owned()));

    // Guest root may open linux.uml's /dev/mem (the guest's own memory): that one line
    // is BAD and the exit status says so; everything else holds.
    let (root, code) = section(&console, "ROOT-BEGIN", "ROOT-EXIT");
    let bad: Vec<&String> = root.iter().filter(|l| !l.ends_with(" - GOOD")).collect();
    assert_eq!(
        bad,
        [&"Trying to open /dev/mem...Didn't fail (fd = 3) - BAD!".to_owned()],
        "{root:#?}"
    );
    assert_eq!(code, 1);
    assert_eq!(root.len(), 14, "{root:#?}");

    // The C jailtest on the same kernel: the same verdicts on the probes it has (its
    // address 0xa0800000; /dev/kmem missing counts as BAD for it, GOOD for ours), and
    // it always exits 0.
    // (The kernel's segfault log line may land in the middle of its first line.)
    let c_start = console.find("C-BEGIN\n").unwrap();
    let c_end = console.find("C-EXIT ").unwrap();
    let theirs = &console[c_start..c_end];
    assert!(console[c_end..].starts_with("C-EXIT 0\n"), "{theirs}");
    for verdict in [
        "Segv - GOOD",
        "Trying to write 0xa0800000 via read...Returned EFAULT - GOOD",
        "Trying to open /dev/mem...Didn't fail with EPERM (fd = 4, errno = 14) - BAD!",
        "Trying to open /dev/kmem...Didn't fail with EPERM (fd = -1, errno = 2) - BAD!",
    ] {
        assert!(theirs.contains(verdict), "{verdict} missing: {theirs}");
    }
    for probe in [
        "Trying to directly write 0xa0800000...Segv - GOOD",
        "Trying to write 0xa0800000 via read...Returned EFAULT - GOOD",
        "Trying to open /dev/kmem...Failed with ENOENT - GOOD",
    ] {
        assert!(
            root.contains(&probe.to_owned()),
            "{probe} missing: {root:#?}"
        );
    }
}

/// On the host: a BAD line makes the exit status 1 (the C tool always exits 0); bad
/// arguments are refused before any probe runs (the C tool ignores its arguments).
#[test]
fn exit_status_and_bad_arguments_against_the_c_jailtest() {
    let Some(c) = c_tool("jailtest") else {
        return;
    };
    let ours = our_bin("jailtest");
    let found = run(
        Command::new(&ours).args(["--host-path", "/", "--max-pid", "16"]),
        Duration::from_secs(30),
    );
    assert_eq!(found.code, Some(1), "{found:?}");
    assert!(
        found
            .stdout
            .lines()
            .any(|l| l == "Trying to reach host path /...Found - BAD!"),
        "{found:?}"
    );
    for args in [&["--address", "zz"][..], &["--max-pid"], &["--frobnicate"]] {
        let mine = run(Command::new(&ours).args(args), Duration::from_secs(10));
        assert_eq!(mine.code, Some(2), "{args:?}: {mine:?}");
        assert!(mine.stdout.is_empty(), "{args:?} probed: {mine:?}");
        assert!(mine.stderr.starts_with("error:"), "{args:?}: {mine:?}");
        let theirs = run(Command::new(&c).args(args), Duration::from_secs(10));
        assert_eq!(theirs.code, Some(0), "C {args:?}: {theirs:?}");
        assert!(
            theirs.stdout.contains("Segv - GOOD"),
            "C {args:?}: {theirs:?}"
        );
    }
}

/// Our static jailtest in a uml-kernel guest (issue 17): every probe GOOD, exit 0 — the
/// kernel's memory is another host process, /dev/mem and /dev/kmem do not exist, other
/// guests refuse ptrace, process_vm_* and /proc/PID/mem, pids outside the guest are
/// ESRCH, a host path is not there.
#[test]
fn jailtest_in_a_uml_kernel_guest_is_all_good() {
    let dir = scratch();
    let ours = fs::read(static_jailtest()).unwrap();
    let host_only = dir.path().join("host-only-marker");
    fs::write(&host_only, "host\n").unwrap();
    let init = format!(
        "#!/bin/sh\nsleep 100 &\necho JT-BEGIN\n/bin/jailtest --host-path {}\necho \"JT-EXIT $?\"\npoweroff -f\n",
        host_only.display()
    );
    let image = GuestImage::build_with(
        &dir.path().join("root.img"),
        &init,
        64,
        &[("bin/jailtest", &ours, 0o755)],
    );
    let args = [
        format!("ubd0={}", image.path.display()),
        "root=/dev/ubda".to_string(),
        "rw".into(),
        "init=/sbin/init".into(),
        "con0=fd:0,fd:1".into(),
        "con=null".into(),
    ];
    let mut k = tests::KernelRun::start(
        tests::KernelRun::command(&our_bin("uml-kernel"), "jailtest-k", &args),
        &dir.path().join("home"),
        "jailtest-k",
    );
    let status = k.wait_exit(Duration::from_secs(120));
    let console = k.output().replace('\r', "");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{console}");
    let (lines, code) = section(&console, "JT-BEGIN", "JT-EXIT");
    assert_eq!(lines.len(), 14, "{lines:#?}\n{console}");
    assert!(lines.iter().all(|l| l.ends_with(" - GOOD")), "{lines:#?}");
    assert_eq!(code, 0, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Trying /proc/PID/mem on ") && !l.contains(" on 0 other")),
        "no other guest process was probed: {lines:#?}"
    );
}
