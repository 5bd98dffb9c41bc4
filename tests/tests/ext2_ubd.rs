//! ext2 on the kernel's ubd disks: through a COW file the writes land in the COW only,
//! `uml_moo` (ours and the C one) merges it into an image that passes `e2fsck -fn` and
//! holds the files, and a sync followed by a crash (the kernel's state simply dropped)
//! leaves an image e2fsck finds clean.

use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kernel::block::ubd::Ubd;
use kernel::cmdline::parse_ubd;
use kernel::fs::blockdev::Sectors;
use kernel::fs::ext2::Ext2Fs;
use kernel::fs::oflag::*;
use kernel::fs::Vfs;
use tests::ext2tree::{debugfs_tree, e2fsck_clean};
use tests::{c_tool, fingerprint, our_bin, run, scratch};

fn mkfs(image: &Path) {
    let out = run(
        Command::new("mkfs.ext2")
            .args(["-q", "-F", "-b", "1024"])
            .arg(image)
            .arg("16M"),
        Duration::from_secs(30),
    );
    assert!(out.success(), "mkfs.ext2: {}", out.stderr);
}

fn mount_ubd(switch: &str) -> Vfs {
    let spec = parse_ubd(switch).unwrap_or_else(|e| panic!("{switch}: {e:?}"));
    let (ubd, _notes) = Ubd::open(&spec).unwrap_or_else(|e| panic!("{switch}: {e}"));
    let fs = Ext2Fs::mount(Box::new(Sectors(ubd)), false, 1 << 20)
        .unwrap_or_else(|e| panic!("mount: {e}"));
    Vfs::new(Box::new(fs), "/dev/ubda")
}

fn populate(vfs: &mut Vfs) {
    let r = vfs.root();
    vfs.mkdir(r, b"/data", 0o755, 0, 0).expect("mkdir");
    for i in 0..50u32 {
        let mut f = vfs
            .open(
                r,
                format!("/data/f{i}").as_bytes(),
                O_WRONLY | O_CREAT,
                0o644,
                0,
                0,
            )
            .expect("create");
        let body: Vec<u8> = (0..i * 997).map(|j| (i + j) as u8).collect();
        vfs.write(&mut f, &body).expect("write");
        vfs.close(f).expect("close");
    }
    vfs.symlink(r, b"data/f1", b"/link", 0, 0).expect("symlink");
}

fn check_files(image: &Path, what: &str) {
    let tree = debugfs_tree(image);
    for i in 0..50u32 {
        let body: Vec<u8> = (0..i * 997).map(|j| (i + j) as u8).collect();
        let got = tree
            .get(&format!("/data/f{i}"))
            .and_then(|e| e.data.clone());
        assert!(
            got.as_deref() == Some(&body[..]),
            "{what}: /data/f{i} differs"
        );
    }
    assert_eq!(
        tree["/link"].target.as_deref(),
        Some(&b"data/f1"[..]),
        "{what}"
    );
}

#[test]
fn writes_through_a_cow_land_in_the_cow_and_merge_clean() {
    let dir = scratch();
    let d = dir.path();
    let image = d.join("root.img");
    mkfs(&image);
    let before = fingerprint(&image);
    let cow = d.join("root.cow");
    let mut vfs = mount_ubd(&format!("ubd0={},{}", cow.display(), image.display()));
    populate(&mut vfs);
    vfs.unmount_all().expect("unmount");
    drop(vfs);
    assert_eq!(fingerprint(&image), before, "the backing file was written");
    for (tool, name) in [(Some(our_bin("uml_moo")), "ours"), (c_tool("uml_moo"), "C")] {
        let Some(tool) = tool else { continue };
        let merged = d.join(format!("merged-{name}.img"));
        let out = run(
            Command::new(&tool).arg(&cow).arg(&merged),
            Duration::from_secs(60),
        );
        assert!(
            out.success(),
            "{name} uml_moo: {}{}",
            out.stdout,
            out.stderr
        );
        e2fsck_clean(&merged, &format!("merged by {name} uml_moo"));
        check_files(&merged, &format!("merged by {name} uml_moo"));
    }
}

#[test]
fn sync_then_crash_leaves_a_clean_image() {
    let dir = scratch();
    let image = dir.path().join("disk.img");
    mkfs(&image);
    let mut vfs = mount_ubd(&format!("ubd0={}", image.display()));
    populate(&mut vfs);
    vfs.sync_all().expect("sync");
    // A crash: nothing more reaches the disk (the cache and the fs are leaked).
    std::mem::forget(vfs);
    e2fsck_clean(&image, "after sync and a crash");
    check_files(&image, "after sync and a crash");
    let _ = File::open(&image).expect("image still there");
}

fn boot(switch: &str, args: &[&str]) -> (kernel::fs::boot::Files, Vec<String>) {
    use kernel::fs::boot::{Files, RootOptions};
    let spec = parse_ubd(switch).unwrap_or_else(|e| panic!("{switch}: {e:?}"));
    let (ubd, _notes) = Ubd::open(&spec).unwrap_or_else(|e| panic!("{switch}: {e}"));
    let opts = RootOptions::from_args(args.iter().copied());
    Files::boot(Some((0, Box::new(ubd))), &opts, 1 << 20, &[0])
}

#[test]
fn boot_mounts_the_root_disk_or_falls_back_to_tmpfs() {
    use kernel::fs::cmds::NoDevices;
    let dir = scratch();
    let image = dir.path().join("root.img");
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("dev")).expect("mkdir");
    std::fs::create_dir_all(src.join("etc")).expect("mkdir");
    std::fs::write(src.join("etc/motd"), b"welcome\n").expect("write");
    let out = run(
        Command::new("mkfs.ext2")
            .args(["-q", "-F", "-d"])
            .arg(&src)
            .arg(&image)
            .arg("8M"),
        Duration::from_secs(30),
    );
    assert!(out.success(), "mkfs.ext2: {}", out.stderr);
    let switch = format!("ubd0={}", image.display());

    let (mut files, log) = boot(&switch, &[]);
    assert_eq!(
        log,
        vec!["VFS: Mounted root (ext2 filesystem) on device 98:0.".to_string()]
    );
    let sh = |files: &mut kernel::fs::boot::Files, line: &str| {
        let words: Vec<&str> = line.split_whitespace().collect();
        files.shell(&words, &mut NoDevices).expect("a file command")
    };
    assert_eq!(sh(&mut files, "cat /etc/motd"), "welcome\n");
    assert!(sh(&mut files, "ls /dev").contains("ubda\n"));
    assert_eq!(sh(&mut files, "echo written by the guest > /etc/new"), "");
    assert!(sh(&mut files, "mount").starts_with("/dev/ubda on / type ext2 (rw)\n"));
    // The periodic write-back puts the new file on the disk without a sync.
    assert!(
        !debugfs_tree(&image).contains_key("/etc/new"),
        "written back too early"
    );
    assert!(files.tick(std::time::Instant::now()).is_empty());
    assert!(
        !debugfs_tree(&image).contains_key("/etc/new"),
        "written back before 30 s"
    );
    assert!(files.tick(files.next_writeback()).is_empty());
    assert_eq!(
        debugfs_tree(&image)["/etc/new"].data.as_deref(),
        Some(&b"written by the guest\n"[..])
    );
    assert!(files.halt().is_empty());
    drop(files);
    e2fsck_clean(&image, "after boot and halt");
    assert_eq!(
        debugfs_tree(&image)["/etc/new"].data.as_deref(),
        Some(&b"written by the guest\n"[..])
    );

    let (mut files, log) = boot(&switch, &["ro"]);
    assert_eq!(
        log,
        vec!["VFS: Mounted root (ext2 filesystem) readonly on device 98:0.".to_string()]
    );
    assert_eq!(
        sh(&mut files, "echo x > /etc/nope"),
        "sh: can't create /etc/nope: Read-only file system\n"
    );

    let garbage = dir.path().join("garbage.img");
    std::fs::write(&garbage, vec![0x5au8; 1 << 20]).expect("write");
    let (mut files, log) = boot(&format!("ubd0={}", garbage.display()), &[]);
    assert!(
        log[0].starts_with("EXT2-fs (ubda): error: can't find an ext2 filesystem"),
        "{log:?}"
    );
    assert!(
        log[1].contains("Cannot open root device \"ubda\""),
        "{log:?}"
    );
    assert_eq!(sh(&mut files, "ls /"), "dev\nmnt\nproc\ntmp\n");
}
