//! uml-kernel's humfs end to end (issue 13, acceptance 4): a fixture tree humfsified by
//! our humfsify (as root, for user nobody) is mounted by uml-kernel running as that
//! user (`mount none /mnt -t humfs -o TREE` in the built-in shell); `ls -l` shows the
//! metadata's owners and modes, not the host's; what the guest creates, chowns, moves
//! and removes lands in data/ and the metadata so that `humfsify -r` gives exactly that
//! tree back; the superblock's size gives ENOSPC with the file's size consistent;
//! symlinks the tree's owner plants are not followed on the host; damaged trees are
//! refused or fail with EIO, and the kernel goes on. Needs root (humfsify chowns and
//! makes devices; the kernel runs as nobody through setpriv).
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::os::unix::fs::{chown, MetadataExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tests::humtree::{fixture, humfsify, snapshot, Snapshot};
use tests::{our_bin, require_root, run, scratch, KernelRun};

const LIMIT: Duration = Duration::from_secs(10);
/// The user the tree is handed to and the kernel runs as.
const NOBODY: u32 = 65534;

/// Runs `cmd` as nobody (the tree's owner).
fn as_nobody(cmd: &str, args: &[&str]) -> tests::Output {
    run(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", cmd])
            .args(args),
        LIMIT,
    )
}

/// uml-kernel running as nobody with its home in `home`.
fn kernel(home: &Path, umid: &str) -> KernelRun {
    fs::create_dir_all(home).unwrap();
    chown(home, Some(NOBODY), Some(NOBODY)).unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(our_bin("uml-kernel"))
        .arg(format!("umid={umid}"))
        .current_dir(home);
    let k = KernelRun::start(cmd, home, umid);
    k.wait_socket(LIMIT);
    k
}

/// Humfsifies `top` for nobody with `size`; panics with humfsify's output on failure.
fn humfsify_for_nobody(top: &Path, size: &str) {
    let out = humfsify(&our_bin("humfsify"), top, &["65534", "65534", size]);
    assert!(out.success(), "humfsify: {out:?}");
}

/// The words of the `ls -l` line naming `name` (a symlink's line ends `name -> ...`).
fn ls_line(listing: &str, name: &str) -> Vec<String> {
    let line = listing
        .lines()
        .find(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() > 5
                && (w.last() == Some(&name)
                    || w.iter().position(|x| *x == "->") == Some(w.len() - 2)
                        && w[w.len() - 3] == name)
        })
        .unwrap_or_else(|| panic!("no `{name}` in ls -l:\n{listing}"));
    line.split_whitespace().map(str::to_string).collect()
}

/// Asserts that `ls -l` shows `name` with `perm` owned by `uid`/`gid`.
fn assert_shown(listing: &str, name: &str, perm: &str, uid: u32, gid: u32) {
    let w = ls_line(listing, name);
    assert_eq!(
        (
            w[0].as_str(),
            w[2].parse::<u32>().unwrap(),
            w[3].parse::<u32>().unwrap()
        ),
        (perm, uid, gid),
        "ls -l of {name}:\n{listing}"
    );
}

fn halt(k: &mut KernelRun) {
    k.type_line("halt");
    let status = k.wait_exit(LIMIT);
    assert!(
        status.is_some_and(|s| s.success()),
        "no clean halt ({status:?}):\n{}",
        k.output()
    );
}

/// The snapshot with hard-link group names dropped (which name of a group a walk
/// meets first depends on directory order, which the guest's changes may shuffle).
fn unlabelled(s: Snapshot) -> Snapshot {
    s.into_iter()
        .map(|(k, v)| match v.find(" linked-with ") {
            Some(i) => (k, format!("{} linked", &v[..i])),
            None => (k, v),
        })
        .collect()
}

#[test]
fn humfsified_tree_shows_its_metadata_and_reverts_to_what_the_guest_did() {
    require_root("kernel humfs tests");
    let dir = scratch();
    let top = dir.path().join("tree");
    fixture(&top);
    let before = unlabelled(snapshot(&top.join("data")));
    humfsify_for_nobody(&top, "1M");
    // On the host, everything now is nobody's, mode 0755.
    let shadow = fs::metadata(top.join("data/etc/shadow")).unwrap();
    assert_eq!((shadow.uid(), shadow.mode() & 0o7777), (NOBODY, 0o755));

    let mut k = kernel(&dir.path().join("home"), "humfs");
    assert!(
        k.sh("cat /proc/filesystems", LIMIT)
            .contains("nodev\thumfs"),
        "/proc/filesystems has no humfs"
    );
    let out = k.sh(
        &format!("mount none /mnt -t humfs -o {}", top.display()),
        LIMIT,
    );
    assert!(!out.contains("failed"), "mount: {out}");
    assert!(k
        .sh("cat /proc/mounts", LIMIT)
        .contains("none /mnt humfs rw 0 0"));
    let etc = k.sh("ls -l /mnt/etc", LIMIT);
    // (the fixture's chown of home/passwd-link went through to etc/passwd)
    assert_shown(&etc, "passwd", "-rw-r--r--", 7, 8);
    assert_shown(&etc, "shadow", "-rw-r-----", 0, 42);
    assert_shown(&etc, "conf.d", "drwxr-x---", 0, 0);
    let dev = k.sh("ls -l /mnt/dev", LIMIT);
    assert_shown(&dev, "ubda", "brw-r-----", 0, 6);
    assert_shown(&dev, "initctl", "prw-------", 0, 0);
    assert!(
        ls_line(&dev, "null").join(" ").contains(" 1, 3 "),
        "null's device numbers:\n{dev}"
    );
    let home = k.sh("ls -l /mnt/home", LIMIT);
    assert_shown(&home, "user", "drwx------", 1000, 1000);
    assert_shown(&home, "passwd-link", "lrwxrwxrwx", 7, 8);
    assert_eq!(
        ls_line(&home, "passwd-link").last().unwrap(),
        "../etc/passwd"
    );

    // The guest's changes.
    for cmd in [
        "echo made-in-guest > /mnt/home/user/made",
        "chown 1000:100 /mnt/home/user/made",
        "chmod 4750 /mnt/home/user/made",
        "mkdir /mnt/srv",
        "chmod 1777 /mnt/srv",
        "mknod /mnt/dev/sdb b 8 16",
        "mknod /mnt/srv/queue p",
        "ln -s ../etc/passwd /mnt/srv/pw",
        "mv /mnt/etc/conf.d/net /mnt/srv/net",
        "rm /mnt/home/user/run.sh",
    ] {
        let out = k.sh(cmd, LIMIT);
        assert_eq!(out, "", "`{cmd}` failed");
    }
    let user = k.sh("ls -l /mnt/home/user", LIMIT);
    assert_shown(&user, "made", "-rwsr-x---", 1000, 100);
    assert_shown(&k.sh("ls -l /mnt", LIMIT), "srv", "drwxrwxrwt", 0, 0);
    assert_shown(&k.sh("ls -l /mnt/dev", LIMIT), "sdb", "brw-r--r--", 0, 0);
    let out = k.sh("umount /mnt", LIMIT);
    assert!(!out.contains("umount:"), "{out}");
    halt(&mut k);

    // The host: the data is nobody's file under data/, the truth in the metadata.
    let made = top.join("data/home/user/made");
    assert_eq!(fs::read_to_string(&made).unwrap(), "made-in-guest\n");
    assert_eq!(fs::metadata(&made).unwrap().uid(), NOBODY);
    assert_eq!(
        fs::read_to_string(top.join("file_metadata/home/user/made")).unwrap(),
        format!("{} 1000 100\n", 0o4750)
    );
    assert_eq!(
        fs::read_to_string(top.join("file_metadata/dev/sdb")).unwrap(),
        format!("{} 0 0 b 8 16\n", 0o644)
    );
    assert!(!top.join("file_metadata/home/user/run.sh").exists());

    // humfsify -r gives back the fixture with exactly the guest's changes.
    let out = humfsify(&our_bin("humfsify"), &top, &["-r"]);
    assert!(out.success(), "humfsify -r: {out:?}");
    let mut want = before;
    want.remove("home/user/run.sh");
    let net = want.remove("etc/conf.d/net").unwrap();
    want.insert("srv/net".into(), net);
    want.insert(
        "home/user/made".into(),
        "file \"made-in-guest\\n\" 4750 1000:100".into(),
    );
    want.insert("srv".into(), "dir 1777 0:0".into());
    want.insert("srv/pw".into(), "link -> ../etc/passwd 0 0:0".into());
    want.insert("srv/queue".into(), "fifo 644 0:0".into());
    want.insert("dev/sdb".into(), "b 8:16 644 0:0".into());
    assert_eq!(unlabelled(snapshot(&top.join("data"))), want);
}

#[test]
fn the_superblock_size_gives_enospc_with_a_consistent_file() {
    require_root("kernel humfs tests");
    let dir = scratch();
    let top = dir.path().join("tree");
    fs::create_dir_all(top.join("data")).unwrap();
    fs::write(top.join("data/seed"), "seed\n").unwrap();
    humfsify_for_nobody(&top, "16K");
    let sb = fs::read_to_string(top.join("superblock")).unwrap();
    let used: u64 = sb
        .lines()
        .find_map(|l| l.strip_prefix("used "))
        .unwrap()
        .parse()
        .unwrap();
    let room = 16384 - used;
    assert!(room > 1000, "the fixture leaves too little room: {sb}");

    let mut k = kernel(&dir.path().join("home"), "quota");
    let out = k.sh(
        &format!("mount none /mnt -t humfs -o {}", top.display()),
        LIMIT,
    );
    assert!(!out.contains("failed"), "mount: {out}");
    let df = k.sh("df", LIMIT);
    let line = df
        .lines()
        .find(|l| l.ends_with(" /mnt"))
        .unwrap_or_else(|| panic!("no /mnt in df:\n{df}"));
    assert_eq!(line.split_whitespace().nth(1), Some("16"), "df:\n{df}");
    let chunk = "x".repeat(999);
    let mut full = None;
    for i in 0..40 {
        let out = k.sh(&format!("echo {chunk} >> /mnt/big"), LIMIT);
        if out.contains("No space left on device") {
            full = Some(i);
            break;
        }
    }
    assert!(full.is_some(), "no ENOSPC after 40 KB in a 16 KiB humfs");
    let w = ls_line(&k.sh("ls -l /mnt", LIMIT), "big");
    assert_eq!(
        w[4].parse::<u64>().unwrap(),
        room,
        "the guest's size of big"
    );
    let out = k.sh("mkdir /mnt/more", LIMIT);
    assert!(out.contains("No space left on device"), "{out}");
    let out = k.sh("umount /mnt", LIMIT);
    assert!(!out.contains("umount:"), "{out}");
    halt(&mut k);
    assert_eq!(fs::metadata(top.join("data/big")).unwrap().len(), room);
    let sb = fs::read_to_string(top.join("superblock")).unwrap();
    assert!(sb.contains("used 16384\ntotal 16384\n"), "{sb}");
    assert!(!top.join("data/more").exists());
}

#[test]
fn planted_symlinks_are_not_followed_on_the_host() {
    require_root("kernel humfs tests");
    let dir = scratch();
    let top = dir.path().join("tree");
    fixture(&top);
    humfsify_for_nobody(&top, "1M");
    // The tree's owner (nobody) has a directory of its own outside the tree and plants
    // links to it: one in data/, one replacing a metadata file, one replacing a
    // metadata directory.
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), "outside the tree\n").unwrap();
    fs::write(outside.join("victim"), "420 0 0\n").unwrap();
    for p in [&outside, &outside.join("secret"), &outside.join("victim")] {
        chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let o = outside.to_str().unwrap();
    let t = |rel: &str| top.join(rel).to_str().unwrap().to_string();
    for (cmd, args) in [
        ("ln", vec!["-s", o, &t("data/escape")]),
        ("rm", vec![&t("file_metadata/etc/passwd")]),
        (
            "ln",
            vec!["-s", &format!("{o}/victim"), &t("file_metadata/etc/passwd")],
        ),
        ("rm", vec!["-r", &t("file_metadata/home/user")]),
        ("ln", vec!["-s", o, &t("file_metadata/home/user")]),
    ] {
        let out = as_nobody(cmd, &args);
        assert!(out.success(), "{cmd} {args:?} as nobody: {out:?}");
    }
    let listing_before: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();

    let mut k = kernel(&dir.path().join("home"), "plant");
    let out = k.sh(
        &format!("mount none /mnt -t humfs -o {}", top.display()),
        LIMIT,
    );
    assert!(!out.contains("failed"), "mount: {out}");
    let out = k.sh("cat /mnt/escape/secret", LIMIT);
    assert!(
        !out.contains("outside the tree"),
        "read through a planted link: {out}"
    );
    assert!(out.contains("No such file or directory"), "{out}");
    let out = k.sh("echo x > /mnt/escape/new", LIMIT);
    assert!(out.contains("can't create"), "{out}");
    for cmd in ["chmod 4777 /mnt/etc/passwd", "chown 0:0 /mnt/etc/passwd"] {
        let out = k.sh(cmd, LIMIT);
        assert!(out.contains("Input/output error"), "`{cmd}`: {out}");
    }
    let out = k.sh("echo x > /mnt/home/user/new", LIMIT);
    assert!(out.contains("Input/output error"), "{out}");
    // The rest of the tree still works.
    assert!(k.sh("cat /mnt/etc/shadow", LIMIT).contains("secret"));
    halt(&mut k);
    assert_eq!(
        fs::read_to_string(outside.join("victim")).unwrap(),
        "420 0 0\n"
    );
    assert_eq!(
        fs::read_to_string(outside.join("secret")).unwrap(),
        "outside the tree\n"
    );
    let listing: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(listing, listing_before, "a file was made outside the tree");
    assert!(!top.join("data/home/user/new").exists());
}

#[test]
fn damaged_trees_are_refused_or_fail_with_eio_and_the_kernel_goes_on() {
    require_root("kernel humfs tests");
    let dir = scratch();
    let bare = dir.path().join("bare");
    fs::create_dir_all(bare.join("data")).unwrap();
    let top = dir.path().join("tree");
    fixture(&top);
    humfsify_for_nobody(&top, "1M");
    fs::write(
        top.join("file_metadata/etc/passwd"),
        "rw-r--r-- root root\n",
    )
    .unwrap();
    let bad_sb = dir.path().join("badsb");
    fs::create_dir_all(bad_sb.join("data")).unwrap();
    fs::write(
        bad_sb.join("superblock"),
        "version 2\nmetadata shadow_fs\nused 9\ntotal 4\n",
    )
    .unwrap();

    let mut k = kernel(&dir.path().join("home"), "bad");
    let out = k.sh(
        &format!("mount none /mnt -t humfs -o {}", bare.display()),
        LIMIT,
    );
    assert!(
        out.contains(&format!(
            "mount: mounting none on /mnt failed: humfs: {}/superblock: no superblock",
            bare.display()
        )),
        "{out}"
    );
    let out = k.sh(
        &format!("mount none /mnt -t humfs -o {}", bad_sb.display()),
        LIMIT,
    );
    assert!(out.contains("used (9) is greater than total (4)"), "{out}");
    let out = k.sh("mount none /mnt -t humfs", LIMIT);
    assert!(out.contains("humfs: no host directory given"), "{out}");
    let out = k.sh(
        &format!("mount none /mnt -t humfs -o {}", top.display()),
        LIMIT,
    );
    assert!(!out.contains("failed"), "mount: {out}");
    let out = k.sh("cat /mnt/etc/passwd", LIMIT);
    assert!(
        out.contains("cat: /mnt/etc/passwd: Input/output error"),
        "{out}"
    );
    let out = k.sh("ls -l /mnt/etc", LIMIT);
    assert!(
        out.contains("ls: /mnt/etc/passwd: Input/output error"),
        "{out}"
    );
    assert_shown(&out, "shadow", "-rw-r-----", 0, 42);
    halt(&mut k);
}

#[test]
fn directories_swapped_for_symlinks_while_the_guest_writes_lead_nowhere() {
    require_root("kernel humfs tests");
    let dir = scratch();
    let top = dir.path().join("tree");
    fs::create_dir_all(top.join("data/d")).unwrap();
    humfsify_for_nobody(&top, "1M");
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    chown(&outside, Some(NOBODY), Some(NOBODY)).unwrap();
    // The tree's owner swaps data/d and file_metadata/d for links to OUTSIDE and back,
    // as fast as it can, while the guest writes into d.
    let script = format!(
        "cd '{}' || exit 1; while :; do for t in data file_metadata; do \
         mv $t/d $t/d.real && ln -s '{}' $t/d; rm -f $t/d; mv $t/d.real $t/d; done; done",
        top.display(),
        outside.display()
    );
    let mut swapper = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
            &script,
        ])
        .spawn()
        .unwrap();
    let mut k = kernel(&dir.path().join("home"), "swap");
    let out = k.sh(
        &format!("mount none /mnt -t humfs -o {}", top.display()),
        LIMIT,
    );
    assert!(!out.contains("failed"), "mount: {out}");
    for i in 0..200 {
        k.sh(&format!("echo {i} > /mnt/d/f{i}"), LIMIT);
        k.sh(&format!("chmod 4777 /mnt/d/f{i}"), LIMIT);
    }
    let _ = swapper.kill();
    let _ = swapper.wait();
    halt(&mut k);
    let made: Vec<_> = fs::read_dir(&outside).unwrap().collect();
    assert!(made.is_empty(), "files made outside the tree: {made:?}");
}
