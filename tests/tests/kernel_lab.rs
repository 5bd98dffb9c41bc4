//! Acceptance 1 of issue 14: the image and init that `scripts/lab` gives linux.uml (its
//! init script is read from scripts/lab itself, the disk made as lab makes it) run
//! unmodified under uml-kernel, on a COW over the disk, with linux.uml's command line.
//! `poweroff -f` ends uml-kernel with 0; after uml_moo merges the COW, debugfs reads
//! the file the guest wrote and `e2fsck -fn` finds the merged image clean; what the
//! guest printed on the console is what it prints under linux.uml, kernel lines aside.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tests::{our_bin, run, run_ok, KernelRun, Uml};

const LIMIT: Duration = Duration::from_secs(60);
const BUSYBOX: &str = "/bin/busybox";

/// The init script scripts/lab writes into the guest disk (its here-document).
fn lab_init() -> String {
    let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/lab");
    let text = fs::read_to_string(&lab).unwrap();
    let body: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "cat > root/sbin/init <<'INIT'")
        .skip(1)
        .take_while(|l| *l != "INIT")
        .collect();
    assert!(
        body.first() == Some(&"#!/bin/sh") && body.iter().any(|l| l.contains("poweroff -f")),
        "scripts/lab no longer writes its init as this test expects: {body:#?}"
    );
    body.join("\n") + "\n"
}

/// The disk as scripts/lab makes it: busybox and its links, the init, 32 MiB ext2.
fn lab_disk(path: &Path) {
    let tree = tempfile::Builder::new()
        .prefix("labroot.")
        .tempdir()
        .unwrap();
    let root = tree.path();
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "etc",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    let list = run_ok(Command::new(BUSYBOX).arg("--list-full"));
    for applet in list.stdout.lines().map(str::trim) {
        if applet.is_empty() || applet == "bin/busybox" {
            continue;
        }
        let link = root.join(applet);
        let _ = fs::remove_file(&link);
        symlink("/bin/busybox", &link).unwrap();
    }
    let init = root.join("sbin/init");
    let _ = fs::remove_file(&init);
    fs::write(&init, lab_init()).unwrap();
    fs::set_permissions(&init, fs::Permissions::from_mode(0o755)).unwrap();
    run_ok(
        Command::new("mkfs.ext2")
            .args(["-q", "-F", "-d"])
            .arg(root)
            .arg(path)
            .arg("32M"),
    );
}

/// What init printed: the console after "Run /sbin/init as init process", without the
/// kernels' own lines (their power-off messages, linux.uml's MAC notice), with the
/// kernel's release (which `uname -sr` prints) replaced by RELEASE.
fn guest_lines(console: &str, release: &str) -> Vec<String> {
    let kernel_line = |l: &str| {
        l.starts_with("reboot: ")
            || l.starts_with("Not activating Mandatory Access Control")
            || l.is_empty()
    };
    console
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .skip_while(|l| *l != "Run /sbin/init as init process")
        .skip(1)
        .filter(|l| !kernel_line(l))
        .map(|l| l.replace(release, "RELEASE"))
        .collect()
}

fn debugfs_cat(image: &Path, path: &str) -> String {
    run(
        Command::new("debugfs")
            .arg("-R")
            .arg(format!("cat {path}"))
            .arg(image),
        LIMIT,
    )
    .stdout
}

/// The switches scripts/lab boots linux.uml with (less its umid).
fn lab_switches(cow: &Path, disk: &Path) -> Vec<String> {
    vec![
        "mem=48M".into(),
        format!("ubd0={},{}", cow.display(), disk.display()),
        "root=/dev/ubda".into(),
        "rw".into(),
        "con0=fd:0,fd:1".into(),
        "con=null".into(),
        "init=/sbin/init".into(),
    ]
}

#[test]
fn the_lab_image_and_init_run_unmodified_and_merge_clean() {
    let dir = tests::scratch();
    let disk = dir.path().join("disk.img");
    lab_disk(&disk);
    let pristine = fs::read(&disk).unwrap();

    let cow = dir.path().join("k.cow");
    let mut k = KernelRun::start(
        KernelRun::command(&our_bin("uml-kernel"), "lab14", &lab_switches(&cow, &disk)),
        &dir.path().join("home"),
        "lab14",
    );
    let status = k.wait_exit(LIMIT);
    let console = k.output();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "uml-kernel did not power off with 0:\n{console}"
    );
    let ours = guest_lines(&console, kernel::machine::RELEASE);
    assert_eq!(
        ours,
        ["guest: Linux RELEASE, writing /lab.txt"],
        "uml-kernel's console:\n{console}"
    );
    assert_eq!(
        fs::read(&disk).unwrap(),
        pristine,
        "the guest's writes reached the backing disk instead of the COW"
    );

    let merged = dir.path().join("merged-k.img");
    let moo = run(
        Command::new(our_bin("uml_moo")).arg(&cow).arg(&merged),
        LIMIT,
    );
    assert!(moo.success(), "uml_moo: {moo:?}");
    let lab_txt = debugfs_cat(&merged, "/lab.txt");
    assert!(
        lab_txt.starts_with("written inside UML at ") && lab_txt.ends_with('\n'),
        "debugfs cat /lab.txt of the merged image: {lab_txt:?}"
    );
    tests::ext2tree::e2fsck_clean(&merged, "the merged image uml-kernel's guest wrote");

    let Some(uml) = Uml::new(&dir.path().join("uml-home"), "lab14-uml") else {
        return; // UML_SKIP_INTEROP=1
    };
    let linux_cow = dir.path().join("disk.cow");
    let mut uml = uml;
    uml.args
        .retain(|a| !a.starts_with("mem=") && !a.starts_with("con"));
    uml.args.extend(lab_switches(&linux_cow, &disk));
    let out = uml.boot_to_poweroff(LIMIT);
    let release = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("guest: Linux "))
        .and_then(|l| l.split(',').next())
        .unwrap_or("(no guest line)")
        .to_string();
    let theirs = guest_lines(&out.stdout, &release);
    assert_eq!(
        ours, theirs,
        "uml-kernel (left) and linux.uml (right) printed different guest lines:\n{}",
        out.stdout
    );
    // linux.uml's COW merges the same way.
    let merged = dir.path().join("merged.img");
    let moo = run(
        Command::new(our_bin("uml_moo"))
            .arg(&linux_cow)
            .arg(&merged),
        LIMIT,
    );
    assert!(moo.success(), "uml_moo of linux.uml's COW: {moo:?}");
    assert!(debugfs_cat(&merged, "/lab.txt").starts_with("written inside UML at "));
    tests::ext2tree::e2fsck_clean(&merged, "the merged image linux.uml's guest wrote");
}
