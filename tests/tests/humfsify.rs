//! humfsify against the Perl /usr/bin/humfsify: the same fixture tree humfsified by
//! both gives identical trees (data/, file_metadata/, dir_metadata/) and superblocks;
//! `-r` restores modes (setuid, setgid, sticky too), owners, device nodes (big numbers
//! too) and hard links exactly; awkward names work; every error leaves the tree as it
//! was. Needs root (it makes device nodes and chowns).
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::os::unix::fs::{chown, symlink, MetadataExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tests::humtree::{chmod, fixture, humfsify, mknod, snapshot};
use tests::{c_tool, our_bin, require_root, run, scratch, Output};

#[test]
fn perl_and_ours_give_identical_trees_and_superblocks() {
    require_root("humfsify tests");
    let Some(perl) = c_tool("humfsify") else {
        return;
    };
    let dir = scratch();
    let (theirs, ours) = (dir.path().join("perl"), dir.path().join("ours"));
    for top in [&theirs, &ours] {
        fixture(top);
    }
    assert_eq!(
        snapshot(&theirs),
        snapshot(&ours),
        "fixtures differ before the run"
    );
    let original_data = snapshot(&theirs.join("data"));
    let out = humfsify(&perl, &theirs, &["nobody", "nogroup", "1M"]);
    assert!(out.success(), "Perl humfsify: {out:?}");
    let out = humfsify(&our_bin("humfsify"), &ours, &["nobody", "nogroup", "1M"]);
    assert!(out.success(), "our humfsify: {out:?}");
    let (a, b) = (snapshot(&theirs), snapshot(&ours));
    assert!(a.contains_key("file_metadata/dev/null") && a.contains_key("dir_metadata/metadata"));
    assert_eq!(a, b);
    let sb = fs::read_to_string(ours.join("superblock")).unwrap();
    assert_eq!(fs::read_to_string(theirs.join("superblock")).unwrap(), sb);
    assert!(
        sb.starts_with("version 2\nmetadata shadow_fs\nused "),
        "{sb}"
    );
    // Our -r reads what the Perl tool wrote.
    let out = humfsify(&our_bin("humfsify"), &theirs, &["-r"]);
    assert!(out.success(), "our -r on the Perl tree: {out:?}");
    assert_eq!(snapshot(&theirs.join("data")), original_data);
}

/// Special bits, big device numbers and a hard-linked device pair: what the Perl tool
/// loses, ours keeps.
fn hard_fixture(top: &Path) {
    fixture(top);
    let data = top.join("data");
    let suid = data.join("home/user/run.sh");
    chmod(&suid, 0o4755);
    chmod(&data.join("home"), 0o2775);
    fs::create_dir(data.join("tmp")).unwrap();
    chmod(&data.join("tmp"), 0o1777);
    chmod(&data.join("etc"), 0o555);
    mknod(&data.join("dev/big"), libc::S_IFCHR, 300, 70000);
    fs::hard_link(data.join("dev/big"), data.join("dev/big-again")).unwrap();
}

#[test]
fn revert_restores_modes_owners_devices_and_links_exactly() {
    require_root("humfsify tests");
    let dir = scratch();
    let top = dir.path();
    hard_fixture(top);
    let before = snapshot(&top.join("data"));
    let ours = our_bin("humfsify");
    let out = humfsify(&ours, top, &["nobody", "nogroup", "1M"]);
    assert!(out.success(), "{out:?}");
    let line = |p: &str| fs::read_to_string(top.join(p)).unwrap();
    assert_eq!(line("file_metadata/dev/big"), "416 0 0 c 300 70000\n");
    assert_eq!(
        line("file_metadata/home/user/run.sh"),
        format!("{} 1000 100\n", 0o4755)
    );
    assert_eq!(
        line("dir_metadata/tmp/metadata"),
        format!("{} 0 0\n", 0o1777)
    );
    let meta_link = |p: &str| fs::metadata(top.join(p)).unwrap().ino();
    assert_eq!(
        meta_link("file_metadata/dev/big"),
        meta_link("file_metadata/dev/big-again")
    );
    assert_ne!(
        snapshot(&top.join("data")),
        before,
        "humfsify changed nothing in data/"
    );
    let out = humfsify(&ours, top, &["-r"]);
    assert!(out.success(), "{out:?}");
    assert_eq!(snapshot(&top.join("data")), before);
    assert!(!top.join("file_metadata").exists() && !top.join("dir_metadata").exists());
}

#[test]
fn awkward_names_work_with_ours() {
    require_root("humfsify tests");
    let dir = scratch();
    let top = dir.path();
    fixture(top);
    let names = [
        "with space",
        "quote's \"double\"",
        "new\nline",
        "x$(touch INJECTED)y",
        "semi;colon & star*",
        "-dash",
    ];
    for (i, n) in names.iter().enumerate() {
        let p = top.join("data/home").join(n);
        fs::write(&p, n).unwrap();
        chown(&p, Some(100 + i as u32), Some(200 + i as u32)).unwrap();
        chmod(&p, 0o600 + i as u32);
    }
    fs::create_dir(top.join("data/dir with\nnewline")).unwrap();
    chmod(&top.join("data/dir with\nnewline"), 0o711);
    let before = snapshot(&top.join("data"));
    let ours = our_bin("humfsify");
    let out = humfsify(&ours, top, &["nobody", "nogroup", "1M"]);
    assert!(out.success(), "{out:?}");
    for (i, n) in names.iter().enumerate() {
        let meta = fs::read_to_string(top.join("file_metadata/home").join(n)).unwrap();
        assert_eq!(
            meta,
            format!("{} {} {}\n", 0o600 + i as u32, 100 + i, 200 + i),
            "{n:?}"
        );
    }
    assert!(top.join("dir_metadata/dir with\nnewline/metadata").exists());
    let out = humfsify(&ours, top, &["-r"]);
    assert!(out.success(), "{out:?}");
    assert_eq!(snapshot(&top.join("data")), before);
    assert!(!top.join("data/home/INJECTED").exists() && !top.join("INJECTED").exists());
}

/// Arguments, the expected message, and how to spoil the fixture first.
type ErrorCase = (&'static [&'static str], &'static str, fn(&Path));

#[test]
fn errors_leave_the_tree_unchanged() {
    require_root("humfsify tests");
    let ours = our_bin("humfsify");
    let cases: [ErrorCase; 8] = [
        (
            &["nobody", "nogroup", "1M"],
            "directory named 'metadata'",
            |t| fs::create_dir(t.join("data/etc/metadata")).unwrap(),
        ),
        (&["nobody", "nogroup", "1M"], "no data/ directory", |t| {
            fs::remove_dir_all(t.join("data")).unwrap()
        }),
        (
            &["no-such-user", "nogroup", "1M"],
            "user 'no-such-user'",
            |_| {},
        ),
        (
            &["nobody", "no-such-group", "1M"],
            "group 'no-such-group'",
            |_| {},
        ),
        (
            &["nobody", "nogroup", "12k"],
            "bad file-system size '12k'",
            |_| {},
        ),
        (
            &["nobody", "nogroup", "4K"],
            "more than the requested size of 4096",
            |_| {},
        ),
        (
            &["nobody", "nogroup", "1M"],
            "superblock: opening for writing",
            |t| fs::create_dir(t.join("superblock")).unwrap(),
        ),
        (
            &["nobody", "nogroup", "1M"],
            "looks humfsified already",
            |t| fs::create_dir(t.join("dir_metadata")).unwrap(),
        ),
    ];
    for (args, message, prepare) in cases {
        let dir = scratch();
        let top = dir.path();
        fixture(top);
        prepare(top);
        let before = snapshot(top);
        let out = humfsify(&ours, top, args);
        assert_eq!(out.code, Some(1), "{args:?}: {out:?}");
        assert!(
            out.stderr.starts_with("humfsify: ")
                && out.stderr.contains(message)
                && out.stderr.lines().count() == 1,
            "{args:?}: {}",
            out.stderr
        );
        assert_eq!(snapshot(top), before, "{args:?} changed the tree");
    }
    // Missing arguments are a usage error, as clap reports them.
    let out = humfsify(&ours, Path::new("/"), &["nobody"]);
    assert_eq!(out.code, Some(2), "{out:?}");
}

#[test]
fn revert_refuses_bad_metadata_without_touching_anything() {
    require_root("humfsify tests");
    let ours = our_bin("humfsify");
    let dir = scratch();
    let top = dir.path();
    fixture(top);
    assert!(humfsify(&ours, top, &["0", "0", "1M"]).success());
    fs::write(top.join("file_metadata/etc/passwd"), "420 zero 0\n").unwrap();
    let before = snapshot(top);
    let out = humfsify(&ours, top, &["-r"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("file_metadata/etc/passwd"),
        "{}",
        out.stderr
    );
    assert_eq!(snapshot(top), before);
}

#[test]
fn version_1_trees_revert() {
    require_root("humfsify tests");
    let dir = scratch();
    let top = dir.path();
    fs::create_dir_all(top.join("data/sub")).unwrap();
    fs::create_dir_all(top.join("metadata/sub")).unwrap();
    fs::write(top.join("data/sub/file"), "x").unwrap();
    fs::write(top.join("data/tty"), "").unwrap();
    fs::write(top.join("superblock"), "version 1\nused 0\ntotal 1000\n").unwrap();
    fs::write(top.join("metadata/metadata"), "0 0 0\n").unwrap();
    fs::write(top.join("metadata/sub/metadata"), "5 6 0\n").unwrap();
    fs::write(top.join("metadata/sub/file"), "7 8 0\n").unwrap();
    fs::write(top.join("metadata/tty"), "0 5 0 c 4 1\n").unwrap();
    let out = humfsify(&our_bin("humfsify"), top, &["-r"]);
    assert!(out.success(), "{out:?}");
    let snap = snapshot(&top.join("data"));
    assert!(
        snap["sub"].starts_with("dir ") && snap["sub"].ends_with(" 5:6"),
        "{snap:?}"
    );
    assert!(snap["sub/file"].ends_with(" 7:8"), "{snap:?}");
    assert!(
        snap["tty"].starts_with("c 4:1 ") && snap["tty"].ends_with(" 0:5"),
        "{snap:?}"
    );
    assert!(!top.join("metadata").exists());
}

#[test]
fn progress_bar_only_on_a_terminal() {
    require_root("humfsify tests");
    let ours = our_bin("humfsify");
    let dir = scratch();
    let top = dir.path();
    fixture(top);
    // script(1) gives humfsify a terminal as stderr.
    let line = format!(
        "cd '{}' && '{}' nobody nogroup 1M",
        top.display(),
        ours.display()
    );
    let out = run(
        Command::new("script").args(["-q", "-e", "-c", &line, "/dev/null"]),
        Duration::from_secs(60),
    );
    assert!(out.success(), "{out:?}");
    assert!(
        out.stdout.contains("humfsifying"),
        "no bar on a terminal: {:?}",
        out.stdout
    );
    assert!(top.join("superblock").exists());
    // Without a terminal: nothing at all on stderr.
    let out = humfsify(&ours, top, &["-r"]);
    assert!(out.success() && out.stderr.is_empty(), "{out:?}");
}

// ---- Attacks by the tree's owner (issue 15, items 1 and 2) ----
//
// The attacker is the unprivileged user (uid 65534) who owns the tree; the victim is a
// root-only directory in the scratch directory. Root's humfsify runs in a private mount
// namespace. Each test asserts the victim is exactly as it was.

const ATTACKER: u32 = 65534;

/// A root-only victim directory: a secret file and another one a device could replace.
fn victim(dir: &Path) -> std::path::PathBuf {
    let v = dir.join("VICTIM-dir");
    fs::create_dir(&v).unwrap();
    chmod(&v, 0o700);
    for name in ["secret", "other"] {
        fs::write(v.join(name), format!("{name} of root\n")).unwrap();
        chmod(&v.join(name), 0o600);
    }
    v
}

/// humfsify run by root in its own mount namespace.
fn humfsify_as_root(top: &Path, args: &[&str]) -> Output {
    run(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--"])
            .arg(our_bin("humfsify"))
            .args(args)
            .current_dir(top),
        Duration::from_secs(300),
    )
}

#[test]
fn revert_does_not_follow_a_symlinked_directory_inside_data() {
    require_root("humfsify attack tests");
    let dir = scratch();
    let victim = victim(dir.path());
    let before = snapshot(&victim);
    let top = dir.path().join("tree");
    // The user's tree as humfsify left it, then doctored: symlinks to the victim at
    // the top of data/ and deeper down, metadata naming files through them.
    fs::create_dir_all(top.join("data/sub")).unwrap();
    fs::create_dir_all(top.join("file_metadata/evil")).unwrap();
    fs::create_dir_all(top.join("file_metadata/sub/deeper")).unwrap();
    fs::create_dir_all(top.join("dir_metadata/sub")).unwrap();
    symlink(&victim, top.join("data/evil")).unwrap();
    symlink(&victim, top.join("data/sub/deeper")).unwrap();
    let setuid_mine = format!("{} {ATTACKER} {ATTACKER}\n", 0o4755);
    fs::write(top.join("file_metadata/evil/secret"), &setuid_mine).unwrap();
    fs::write(top.join("file_metadata/evil/other"), "438 0 0 c 1 3\n").unwrap();
    fs::write(top.join("file_metadata/sub/deeper/secret"), &setuid_mine).unwrap();
    fs::write(top.join("dir_metadata/metadata"), "493 0 0\n").unwrap();
    fs::write(top.join("dir_metadata/sub/metadata"), "493 0 0\n").unwrap();
    fs::write(
        top.join("superblock"),
        "version 2\nmetadata shadow_fs\nused 0\ntotal 1048576\n",
    )
    .unwrap();
    Command::new("chown")
        .args(["-hR", &format!("{ATTACKER}:{ATTACKER}")])
        .arg(&top)
        .status()
        .unwrap();
    let out = humfsify_as_root(&top, &["-r"]);
    assert_eq!(
        snapshot(&victim),
        before,
        "humfsify -r changed the victim through a symlink in data/: {out:?}"
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("data/evil/"), "{}", out.stderr);
}

/// The user's swapper: once root's humfsify has read the tree (its staging directory
/// appears in TOP), moves every directory of `parent` away, puts a symlink to the
/// victim in its place, and back, as fast as it can until killed.
const SWAPPER: &str = r#"
my ($top, $parent, $victim, $n) = @ARGV;
$SIG{TERM} = sub { exit 0 };
until (grep { /^\.humfsify-staging/ } do { opendir(my $d, $top); readdir($d) }) {
    select(undef, undef, undef, 0.001);
}
$| = 1;
print "swapping\n";
while (1) {
    for my $i (0 .. $n - 1) {
        rename("$parent/s$i", "$parent/.s$i") and symlink($victim, "$parent/s$i");
    }
    select(undef, undef, undef, 0.001);
    for my $i (0 .. $n - 1) {
        unlink("$parent/s$i") and rename("$parent/.s$i", "$parent/s$i");
    }
}
"#;

#[test]
fn forward_walk_cannot_be_raced_out_of_the_tree() {
    require_root("humfsify attack tests");
    // On tmpfs: the tree is big, and a disk would make the test slow, not better.
    let dir = tempfile::Builder::new()
        .prefix("umltest.")
        .tempdir_in("/dev/shm")
        .unwrap();
    chmod(dir.path(), 0o755);
    let victim = dir.path().join("VICTIM-dir");
    fs::create_dir(&victim).unwrap();
    chmod(&victim, 0o755);
    let (dirs, files) = (10, 1500);
    for k in 0..files {
        let p = victim.join(format!("f{k}"));
        fs::write(&p, "root's\n").unwrap();
        chmod(&p, 0o600);
    }
    let before = snapshot(&victim);
    // data/u is the user's own directory (a home, say), full of the user's directories
    // of root-owned files; data/ itself and the rest are root's.
    let top = dir.path().join("tree");
    let home = top.join("data/u");
    for i in 0..dirs {
        let d = home.join(format!("s{i}"));
        fs::create_dir_all(&d).unwrap();
        for k in 0..files {
            fs::write(d.join(format!("f{k}")), "x").unwrap();
        }
        chown(&d, Some(ATTACKER), Some(ATTACKER)).unwrap();
    }
    chown(&home, Some(ATTACKER), Some(ATTACKER)).unwrap();
    let mut swapper = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "perl",
            "-e",
            SWAPPER,
        ])
        .arg(&top)
        .arg(&home)
        .arg(&victim)
        .arg(dirs.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = humfsify_as_root(&top, &["nobody", "nogroup", "1G"]);
    let _ = swapper.kill();
    tests::command::wait_bounded(&mut swapper, Duration::from_secs(10));
    let mut said = String::new();
    std::io::Read::read_to_string(&mut swapper.stdout.take().unwrap(), &mut said).unwrap();
    assert_eq!(
        said, "swapping\n",
        "the swapper never ran during humfsify: {out:?}"
    );
    assert_eq!(
        snapshot(&victim),
        before,
        "root's humfsify was raced into the victim directory: {out:?}"
    );
}
