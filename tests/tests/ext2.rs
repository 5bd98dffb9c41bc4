//! uml_proto::ext2 against e2fsprogs: images made by `mkfs.ext2 -d` (1, 2 and 4 KiB
//! blocks, revision 0 and 1, 128- and 256-byte inodes), ext3 and ext4 images, read by
//! our reader and compared with what `debugfs` shows; the feature rules on real images.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tests::ext2tree::{assert_same_tree, debugfs_tree, our_tree};
use tests::{require_root, run, scratch};
use uml_proto::ext2::{features, Access, Ext2Error, Image, InodeKind};

/// A source tree exercising every kind of inode and block map depth.
fn populate(root: &Path) {
    fs::create_dir_all(root.join("dir/sub/deeper")).expect("mkdir");
    fs::write(root.join("empty"), b"").expect("write");
    fs::write(root.join("hello"), b"hello, ext2\n").expect("write");
    let big: Vec<u8> = (0..300 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(root.join("dir/big"), &big).expect("write");
    // Data beyond 64 MiB: triple indirect with 1 KiB blocks; the rest is a hole.
    let f = fs::File::create(root.join("sparse")).expect("create");
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"far away", 70 << 20).expect("write sparse");
    f.write_all_at(b"near", 5000).expect("write sparse");
    symlink("hello", root.join("fast")).expect("symlink");
    let long = format!("/{}", "long-target/".repeat(10));
    symlink(&long, root.join("dir/slow")).expect("symlink");
    fs::hard_link(root.join("hello"), root.join("dir/sub/hard")).expect("link");
    for i in 0..150 {
        fs::write(root.join(format!("dir/sub/f{i:03}")), format!("{i}\n")).expect("write");
    }
    fs::write(root.join("owned"), b"x").expect("write");
    std::os::unix::fs::chown(root.join("owned"), Some(1234), Some(5678)).expect("chown");
    fs::set_permissions(root.join("owned"), fs::Permissions::from_mode(0o4751)).expect("chmod");
    for (name, kind) in [("fifo", "p"), ("null", "c"), ("disk", "b")] {
        let mut cmd = Command::new("mknod");
        cmd.arg(root.join(name)).arg(kind);
        match kind {
            "c" => cmd.args(["1", "3"]),
            "b" => cmd.args(["300", "70000"]),
            _ => &mut cmd,
        };
        let out = run(&mut cmd, Duration::from_secs(10));
        assert!(out.success(), "mknod {name}: {}", out.stderr);
    }
}

fn mkfs(prog: &str, args: &[&str], src: &Path, image: &Path, size: &str) {
    let out = run(
        Command::new(prog)
            .args(["-q", "-F"])
            .args(args)
            .arg("-d")
            .arg(src)
            .arg(image)
            .arg(size),
        Duration::from_secs(60),
    );
    assert!(out.success(), "{prog} {args:?} failed: {}", out.stderr);
}

fn open(image: &Path) -> Result<Image<fs::File>, Ext2Error> {
    Image::open(fs::File::open(image).expect("open image"))
}

#[test]
fn reads_what_mkfs_ext2_wrote_like_debugfs() {
    require_root("making device nodes and owned files for mkfs -d");
    let dir = scratch();
    let src = dir.path().join("src");
    populate(&src);
    for args in [
        &["-b", "1024", "-I", "128"][..],
        &["-b", "1024", "-I", "256"],
        &["-b", "2048", "-I", "256"],
        &["-b", "4096", "-I", "128"],
        &["-b", "4096", "-I", "256"],
        &["-r", "0", "-b", "1024"],
        &["-r", "0", "-b", "4096"],
    ] {
        let image = dir.path().join("img");
        mkfs("mkfs.ext2", args, &src, &image, "16M");
        let what = format!("mkfs.ext2 {}", args.join(" "));
        let img = open(&image).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(img.access, Access::ReadWrite, "{what}");
        let bs: u32 = args[args.iter().position(|a| *a == "-b").expect("-b") + 1]
            .parse()
            .expect("bs");
        assert_eq!(img.block_size(), bs, "{what}");
        assert_eq!(img.sb.rev_level, u32::from(args[0] != "-r"), "{what}");
        let theirs = debugfs_tree(&image);
        let ours = our_tree(&image);
        assert!(
            theirs.len() > 160,
            "{what}: debugfs listed only {} names",
            theirs.len()
        );
        assert_same_tree(&ours, &theirs, &what);
        let sparse = &ours["/sparse"];
        assert_eq!(sparse.size, Some((70 << 20) + 8));
        let data = sparse.data.as_ref().expect("data");
        assert_eq!(&data[5000..5004], b"near");
        assert_eq!(&data[70 << 20..], b"far away");
        // Device numbers, old and new encodings.
        let mut img = open(&image).expect("reopen");
        for (name, dev) in [("null", (1, 3)), ("disk", (300, 70000))] {
            let ino = img.lookup(2, name.as_bytes()).expect("lookup").expect(name);
            assert_eq!(
                img.read_inode(ino).expect("inode").device(),
                dev,
                "{what}: {name}"
            );
        }
    }
}

#[test]
fn ext3_mounts_as_ext2_and_ext4_reads_through_extents() {
    require_root("making device nodes and owned files for mkfs -d");
    let dir = scratch();
    let src = dir.path().join("src");
    populate(&src);
    let image = dir.path().join("img");
    mkfs("mkfs.ext3", &["-b", "1024"], &src, &image, "16M");
    let img = open(&image).expect("ext3 opens");
    assert_eq!(
        img.access,
        Access::ReadWrite,
        "ext3 without recovery mounts as ext2"
    );
    assert_same_tree(&our_tree(&image), &debugfs_tree(&image), "mkfs.ext3");

    for args in [&["-b", "4096"][..], &["-b", "1024", "-O", "^has_journal"]] {
        mkfs("mkfs.ext4", args, &src, &image, "32M");
        let img = open(&image).expect("ext4 opens");
        match img.access {
            Access::ReadOnly { incompat, .. } => {
                assert_ne!(incompat & features::INCOMPAT_EXTENTS, 0)
            }
            other => panic!("ext4 must be read-only, got {other:?}"),
        }
        let what = format!("mkfs.ext4 {}", args.join(" "));
        assert_same_tree(&our_tree(&image), &debugfs_tree(&image), &what);
        let mut img = open(&image).expect("reopen");
        let ino = img.lookup(2, b"sparse").expect("lookup").expect("sparse");
        let inode = img.read_inode(ino).expect("inode");
        assert_eq!(inode.kind(), InodeKind::File);
        assert_ne!(
            inode.flags & uml_proto::ext2::EXTENTS_FL,
            0,
            "{what}: extents in use"
        );
    }
}

/// Sets feature bits in an image's superblock.
fn patch_features(image: &Path, offset: u64, bits: u32) {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .expect("open");
    let mut v = [0u8; 4];
    f.read_exact_at(&mut v, 1024 + offset).expect("read");
    let new = u32::from_le_bytes(v) | bits;
    f.write_all_at(&new.to_le_bytes(), 1024 + offset)
        .expect("write");
}

#[test]
fn feature_rules_on_real_images() {
    let dir = scratch();
    let image = dir.path().join("img");
    let fresh = |image: &Path| {
        let out = run(
            Command::new("mkfs.ext2")
                .args(["-q", "-F"])
                .arg(image)
                .arg("4M"),
            Duration::from_secs(30),
        );
        assert!(out.success(), "mkfs.ext2: {}", out.stderr);
    };
    fresh(&image);
    patch_features(&image, 92, 0x0800_0000);
    assert_eq!(
        open(&image).expect("unknown compat").access,
        Access::ReadWrite
    );
    fresh(&image);
    patch_features(&image, 100, 0x0800_0000);
    assert_eq!(
        open(&image).expect("unknown ro_compat").access,
        Access::ReadOnly {
            ro_compat: 0x0800_0000,
            incompat: 0
        }
    );
    fresh(&image);
    patch_features(&image, 96, 0x0800_0000);
    let err = open(&image).expect_err("unknown incompat is refused");
    assert_eq!(err, Ext2Error::UnsupportedIncompat(0x0800_0000));
    fresh(&image);
    patch_features(&image, 96, features::INCOMPAT_RECOVER);
    let err = open(&image).expect_err("needs_recovery is refused");
    assert!(err.to_string().contains("journal recovery"), "{err}");
}
