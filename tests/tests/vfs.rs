//! The kernel's VFS semantics, the same checks on tmpfs and on ext2 images made by
//! mkfs.ext2 (1 and 4 KiB blocks, revision 0 and 1): path walks with `.`, `..`,
//! symlinks (and their loop limit) and mount crossings; open flags; the errno of every
//! refused operation; rename over targets and across directories; ext2 images pass
//! `e2fsck -fn` afterwards and read back after a remount.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kernel::fs::ext2::Ext2Fs;
use kernel::fs::oflag::*;
use kernel::fs::tmpfs::Tmpfs;
use kernel::fs::{Errno, FileKind, Loc, NewNode, SetAttr, Vfs};
use tests::ext2tree::e2fsck_clean;
use tests::{run, scratch};

fn write_file(vfs: &mut Vfs, cwd: Loc, path: &str, data: &[u8], flags: u32) -> Result<(), Errno> {
    let mut f = vfs.open(
        cwd,
        path.as_bytes(),
        O_WRONLY | O_CREAT | flags,
        0o644,
        0,
        0,
    )?;
    let r = vfs.write(&mut f, data);
    vfs.close(f).expect("close");
    r.map(|_| ())
}

fn read_file(vfs: &mut Vfs, cwd: Loc, path: &str) -> Result<Vec<u8>, Errno> {
    let mut f = vfs.open(cwd, path.as_bytes(), O_RDONLY, 0, 0, 0)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1000];
    loop {
        let n = vfs.read(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    vfs.close(f).expect("close");
    Ok(out)
}

fn names(vfs: &mut Vfs, cwd: Loc, path: &str) -> Vec<String> {
    let mut v: Vec<String> = vfs
        .readdir(cwd, path.as_bytes())
        .expect("readdir")
        .into_iter()
        .map(|e| String::from_utf8_lossy(&e.name).into_owned())
        .filter(|n| n != "." && n != ".." && n != "lost+found")
        .collect();
    v.sort();
    v
}

/// Every check; `vfs`'s root is the filesystem under test, empty but for lost+found.
fn semantics(vfs: &mut Vfs) {
    let r = vfs.root();
    // Create, read, O_EXCL, O_APPEND, O_TRUNC.
    write_file(vfs, r, "/a", b"hello", 0).expect("create");
    assert_eq!(write_file(vfs, r, "/a", b"x", O_EXCL), Err(Errno::EEXIST));
    write_file(vfs, r, "/a", b" world", O_APPEND).expect("append");
    assert_eq!(read_file(vfs, r, "/a").expect("read"), b"hello world");
    write_file(vfs, r, "/a", b"new", O_TRUNC).expect("trunc");
    assert_eq!(read_file(vfs, r, "/a").expect("read"), b"new");
    assert_eq!(
        vfs.open(r, b"/missing", O_RDONLY, 0, 0, 0).err(),
        Some(Errno::ENOENT)
    );
    assert_eq!(
        vfs.open(r, b"/a", O_RDONLY | O_DIRECTORY, 0, 0, 0).err(),
        Some(Errno::ENOTDIR)
    );
    assert_eq!(
        vfs.open(r, b"/", O_WRONLY, 0, 0, 0).err(),
        Some(Errno::EISDIR)
    );
    // A write past the end leaves a hole of zeros.
    let mut f = vfs.open(r, b"/a", O_RDWR, 0, 0, 0).expect("open rw");
    f.offset = 10_000;
    vfs.write(&mut f, b"end").expect("write far");
    vfs.close(f).expect("close");
    let data = read_file(vfs, r, "/a").expect("read");
    assert_eq!(data.len(), 10_003);
    assert!(data[3..10_000].iter().all(|&b| b == 0));
    // Truncate down then up: the cut bytes read as zeros.
    let set = |size| SetAttr {
        size: Some(size),
        ..SetAttr::default()
    };
    vfs.setattr(r, b"/a", true, &set(2)).expect("truncate");
    vfs.setattr(r, b"/a", true, &set(6)).expect("extend");
    assert_eq!(read_file(vfs, r, "/a").expect("read"), b"ne\0\0\0\0");
    // Indirect blocks: a file reaching the double indirect range, cut back, removed.
    let big: Vec<u8> = (0..5000u32 * 1024).map(|i| (i % 253) as u8).collect();
    write_file(vfs, r, "/big", &big, 0).expect("big write");
    assert!(read_file(vfs, r, "/big").expect("read big") == big);
    vfs.setattr(r, b"/big", true, &set(300_000))
        .expect("truncate big");
    assert!(read_file(vfs, r, "/big").expect("read big") == big[..300_000]);
    vfs.setattr(r, b"/big", true, &set(20_000))
        .expect("truncate big");
    vfs.unlink(r, b"/big").expect("unlink big");

    // Directories and path walks.
    vfs.mkdir(r, b"/d", 0o755, 0, 0).expect("mkdir");
    vfs.mkdir(r, b"/d/e", 0o700, 0, 0).expect("mkdir nested");
    assert_eq!(vfs.mkdir(r, b"/d", 0o755, 0, 0).err(), Some(Errno::EEXIST));
    assert_eq!(
        vfs.mkdir(r, b"/nope/x", 0o755, 0, 0).err(),
        Some(Errno::ENOENT)
    );
    assert_eq!(
        vfs.mkdir(r, b"/a/x", 0o755, 0, 0).err(),
        Some(Errno::ENOTDIR)
    );
    let d = vfs.resolve(r, b"/d/e/../.", true).expect("walk");
    assert_eq!(vfs.getattr(d).expect("attr").nlink, 3);
    write_file(vfs, d, "rel", b"relative", 0).expect("relative create");
    assert_eq!(read_file(vfs, r, "/d/rel").expect("read"), b"relative");
    assert_eq!(vfs.resolve(r, b"/../../d", true).expect("above root"), d);
    let e = vfs.resolve(r, b"/d/e", true).expect("e");
    assert_eq!(vfs.path_of(e).expect("path"), b"/d/e");

    // Symlinks: relative, absolute, dangling, loops, O_NOFOLLOW, readlink.
    vfs.symlink(r, b"d/rel", b"/s1", 0, 0).expect("symlink");
    vfs.symlink(r, b"/d", b"/s2", 0, 0).expect("symlink");
    let long = format!("/{}", "x".repeat(100));
    vfs.symlink(r, long.as_bytes(), b"/slow", 0, 0)
        .expect("slow symlink");
    assert_eq!(
        vfs.readlink(r, b"/slow").expect("readlink"),
        long.as_bytes()
    );
    assert_eq!(read_file(vfs, r, "/s1").expect("through link"), b"relative");
    assert_eq!(
        read_file(vfs, r, "/s2/rel").expect("through dir link"),
        b"relative"
    );
    assert_eq!(
        vfs.stat(r, b"/s1", false).expect("lstat").kind,
        FileKind::Symlink
    );
    assert_eq!(
        vfs.open(r, b"/s1", O_RDONLY | O_NOFOLLOW, 0, 0, 0).err(),
        Some(Errno::ELOOP)
    );
    vfs.symlink(r, b"/loop2", b"/loop1", 0, 0).expect("symlink");
    vfs.symlink(r, b"/loop1", b"/loop2", 0, 0).expect("symlink");
    assert_eq!(
        vfs.open(r, b"/loop1", O_RDONLY, 0, 0, 0).err(),
        Some(Errno::ELOOP)
    );
    vfs.symlink(r, b"/nowhere", b"/dangling", 0, 0)
        .expect("symlink");
    assert_eq!(
        vfs.open(r, b"/dangling", O_RDONLY, 0, 0, 0).err(),
        Some(Errno::ENOENT)
    );
    assert_eq!(vfs.readlink(r, b"/a").err(), Some(Errno::EINVAL));
    // A chain of 40 links resolves; 41 do not.
    for i in 0..41 {
        let target = if i == 0 {
            "/a".to_string()
        } else {
            format!("/c{}", i - 1)
        };
        vfs.symlink(r, target.as_bytes(), format!("/c{i}").as_bytes(), 0, 0)
            .expect("chain");
    }
    assert!(vfs.stat(r, b"/c39", true).is_ok());
    assert_eq!(vfs.stat(r, b"/c40", true).err(), Some(Errno::ELOOP));

    // An unlinked open file stays readable and writable until closed.
    write_file(vfs, r, "/orphan", b"still here", 0).expect("create");
    let mut f = vfs.open(r, b"/orphan", O_RDWR, 0, 0, 0).expect("open");
    vfs.unlink(r, b"/orphan").expect("unlink open file");
    assert_eq!(vfs.stat(r, b"/orphan", true).err(), Some(Errno::ENOENT));
    let mut buf = [0u8; 10];
    assert_eq!(vfs.read(&mut f, &mut buf), Ok(10));
    assert_eq!(&buf, b"still here");
    vfs.write(&mut f, &[5u8; 3000]).expect("write to an orphan");
    assert_eq!(vfs.getattr(f.loc).expect("attr").nlink, 0);
    vfs.close(f).expect("last close frees it");

    // Hard links, unlink, rmdir.
    vfs.link(r, b"/a", b"/d/hard").expect("link");
    assert_eq!(vfs.stat(r, b"/a", true).expect("stat").nlink, 2);
    assert_eq!(vfs.link(r, b"/d", b"/dlink").err(), Some(Errno::EPERM));
    assert_eq!(vfs.link(r, b"/a", b"/d/rel").err(), Some(Errno::EEXIST));
    vfs.unlink(r, b"/a").expect("unlink");
    assert_eq!(vfs.stat(r, b"/d/hard", true).expect("stat").nlink, 1);
    assert_eq!(vfs.unlink(r, b"/d").err(), Some(Errno::EISDIR));
    assert_eq!(vfs.rmdir(r, b"/d").err(), Some(Errno::ENOTEMPTY));
    assert_eq!(vfs.rmdir(r, b"/d/hard").err(), Some(Errno::ENOTDIR));
    assert_eq!(vfs.rmdir(r, b"/d/e/.").err(), Some(Errno::EINVAL));

    // Rename: over files, over empty directories, across directories, into itself.
    write_file(vfs, r, "/f1", b"one", 0).expect("f1");
    write_file(vfs, r, "/f2", b"two", 0).expect("f2");
    vfs.rename(r, b"/f1", b"/f2").expect("rename over a file");
    assert_eq!(read_file(vfs, r, "/f2").expect("read"), b"one");
    assert_eq!(vfs.stat(r, b"/f1", true).err(), Some(Errno::ENOENT));
    vfs.mkdir(r, b"/empty", 0o755, 0, 0).expect("mkdir");
    assert_eq!(vfs.rename(r, b"/f2", b"/empty").err(), Some(Errno::EISDIR));
    assert_eq!(vfs.rename(r, b"/empty", b"/f2").err(), Some(Errno::ENOTDIR));
    assert_eq!(
        vfs.rename(r, b"/empty", b"/d").err(),
        Some(Errno::ENOTEMPTY)
    );
    assert_eq!(
        vfs.rename(r, b"/d", b"/d/e/inside").err(),
        Some(Errno::EINVAL)
    );
    let root_links = vfs.stat(r, b"/", true).expect("stat").nlink;
    vfs.rename(r, b"/d/e", b"/empty")
        .expect("rename a dir over an empty dir");
    assert_eq!(
        vfs.stat(r, b"/", true).expect("stat").nlink,
        root_links,
        "one dir replaced another"
    );
    assert_eq!(vfs.stat(r, b"/d", true).expect("stat").nlink, 2);
    assert_eq!(
        vfs.resolve(r, b"/empty/..", true).expect(".."),
        r,
        "moved dir's .. updated"
    );
    vfs.rename(r, b"/empty", b"/d/back")
        .expect("rename a dir across");
    assert_eq!(vfs.resolve(r, b"/d/back/..", true).expect(".."), d);
    vfs.rename(r, b"/d/hard", b"/d/hard")
        .expect("rename onto itself");
    assert_eq!(names(vfs, r, "/d"), vec!["back", "hard", "rel"]);

    // mknod, chmod, chown.
    for (name, kind, rdev) in [
        ("fifo", FileKind::Fifo, (0, 0)),
        ("null", FileKind::Char, (1, 3)),
        ("sda", FileKind::Block, (8, 0)),
    ] {
        let node = NewNode {
            kind,
            perm: 0o640,
            uid: 5,
            gid: 6,
            rdev,
        };
        vfs.mknod(r, format!("/{name}").as_bytes(), &node)
            .expect("mknod");
        let a = vfs
            .stat(r, format!("/{name}").as_bytes(), true)
            .expect("stat");
        assert_eq!(
            (a.kind, a.perm, a.uid, a.gid, a.rdev),
            (kind, 0o640, 5, 6, rdev)
        );
    }
    let chmod = SetAttr {
        perm: Some(0o4711),
        uid: Some(1000),
        gid: Some(100),
        ..SetAttr::default()
    };
    let a = vfs.setattr(r, b"/d/rel", true, &chmod).expect("chmod");
    assert_eq!((a.perm, a.uid, a.gid), (0o4711, 1000, 100));
    assert_eq!(vfs.unlink(r, b"/").err(), Some(Errno::EISDIR));

    // A mount on a directory: crossing down, `..` back up, busy, umount.
    vfs.mkdir(r, b"/mnt", 0o755, 0, 0).expect("mkdir");
    vfs.mount(r, b"/mnt", Box::new(Tmpfs::new(0)), "none")
        .expect("mount");
    write_file(vfs, r, "/mnt/t", b"on tmpfs", 0).expect("write on mount");
    assert_eq!(vfs.resolve(r, b"/mnt/..", true).expect(".."), r);
    assert_eq!(vfs.link(r, b"/mnt/t", b"/t").err(), Some(Errno::EXDEV));
    assert_eq!(vfs.rename(r, b"/mnt/t", b"/t").err(), Some(Errno::EXDEV));
    assert_eq!(vfs.rmdir(r, b"/mnt").err(), Some(Errno::EBUSY));
    let f = vfs.open(r, b"/mnt/t", O_RDONLY, 0, 0, 0).expect("open");
    assert_eq!(vfs.umount(r, b"/mnt").err(), Some(Errno::EBUSY));
    vfs.close(f).expect("close");
    assert_eq!(vfs.mounts().len(), 2);
    vfs.umount(r, b"/mnt").expect("umount");
    assert_eq!(vfs.stat(r, b"/mnt/t", true).err(), Some(Errno::ENOENT));
    assert_eq!(names(vfs, r, "/mnt"), Vec::<String>::new());
    vfs.sync_all().expect("sync");
}

#[test]
fn tmpfs_semantics() {
    let mut vfs = Vfs::new(Box::new(Tmpfs::new(0)), "none");
    semantics(&mut vfs);
}

fn mkfs(image: &Path, args: &[&str]) {
    let out = run(
        Command::new("mkfs.ext2")
            .args(["-q", "-F"])
            .args(args)
            .arg(image)
            .arg("8M"),
        Duration::from_secs(30),
    );
    assert!(out.success(), "mkfs.ext2 {args:?}: {}", out.stderr);
}

fn mount_ext2(image: &Path, read_only: bool, cache: usize) -> Vfs {
    let file = OpenOptions::new()
        .read(true)
        .write(!read_only)
        .open(image)
        .expect("open image");
    let fs =
        Ext2Fs::mount(Box::new(file), read_only, cache).unwrap_or_else(|e| panic!("mount: {e}"));
    Vfs::new(Box::new(fs), "/dev/ubda")
}

#[test]
fn ext2_semantics_then_e2fsck_clean() {
    let dir = scratch();
    for args in [
        &["-b", "1024"][..],
        &["-b", "4096", "-I", "128"],
        &["-r", "0", "-b", "2048"],
    ] {
        let what = format!("mkfs.ext2 {}", args.join(" "));
        let image = dir.path().join("img");
        mkfs(&image, args);
        // A small cache: eviction and write-back are exercised too.
        let mut vfs = mount_ext2(&image, false, 64 << 10);
        semantics(&mut vfs);
        vfs.unmount_all().expect("unmount");
        drop(vfs);
        e2fsck_clean(&image, &what);
        let mut vfs = mount_ext2(&image, true, 1 << 20);
        let r = vfs.root();
        assert_eq!(
            read_file(&mut vfs, r, "/d/rel").expect("read back"),
            b"relative",
            "{what}"
        );
        assert_eq!(
            read_file(&mut vfs, r, "/f2").expect("read back"),
            b"one",
            "{what}"
        );
        assert_eq!(
            vfs.readlink(r, b"/slow").expect("readlink").len(),
            101,
            "{what}"
        );
        assert_eq!(write_file(&mut vfs, r, "/ro", b"x", 0), Err(Errno::EROFS));
    }
}

#[test]
fn ext2_mount_state_and_refusals() {
    let dir = scratch();
    let image = dir.path().join("img");
    mkfs(&image, &["-b", "1024"]);
    let mut vfs = mount_ext2(&image, false, 1 << 20);
    // While mounted read-write the on-disk superblock is not clean.
    let sb = uml_proto::ext2::Image::open(File::open(&image).expect("open"))
        .expect("image")
        .sb;
    assert_eq!(sb.state & uml_proto::ext2::STATE_VALID, 0);
    assert_eq!(sb.mnt_count, 1);
    // A file unlinked while open at halt is freed by the unmount.
    let r = vfs.root();
    write_file(&mut vfs, r, "/kept", &[1u8; 20000], 0).expect("write");
    let _open = vfs.open(r, b"/kept", O_RDONLY, 0, 0, 0).expect("open");
    vfs.unlink(r, b"/kept").expect("unlink");
    vfs.unmount_all().expect("unmount");
    e2fsck_clean(&image, "orphan freed at unmount");
    let sb = uml_proto::ext2::Image::open(File::open(&image).expect("open"))
        .expect("image")
        .sb;
    assert_eq!(
        sb.state & uml_proto::ext2::STATE_VALID,
        1,
        "clean after unmount"
    );
    // ext4 refuses a read-write mount and allows a read-only one.
    let out = run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&image)
            .arg("8M"),
        Duration::from_secs(30),
    );
    assert!(out.success(), "mkfs.ext4: {}", out.stderr);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&image)
        .expect("open");
    let err = Ext2Fs::mount(Box::new(file), false, 1 << 20)
        .err()
        .expect("ext4 rw refused");
    assert!(err.to_string().contains("couldn't mount RDWR"), "{err}");
    let mut vfs = mount_ext2(&image, true, 1 << 20);
    let r = vfs.root();
    assert!(names(&mut vfs, r, "/").is_empty());
    assert_eq!(vfs.mkdir(r, b"/x", 0o755, 0, 0).err(), Some(Errno::EROFS));
}

fn debugfs_w(image: &Path, request: &str) {
    let out = run(
        Command::new("debugfs")
            .arg("-w")
            .arg("-R")
            .arg(request)
            .arg(image),
        Duration::from_secs(30),
    );
    assert!(out.success(), "debugfs -w -R '{request}': {}", out.stderr);
}

fn patch(image: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = OpenOptions::new()
        .write(true)
        .open(image)
        .expect("open image");
    f.write_all_at(bytes, offset).expect("patch image");
}

fn mount_err(image: &Path) -> String {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .expect("open image");
    match Ext2Fs::mount(Box::new(file), false, 1 << 20) {
        Ok(_) => panic!("the damaged {} mounted", image.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn corrupt_images_are_refused_or_give_eio() {
    let dir = scratch();
    let image = dir.path().join("img");
    // Truncated.
    mkfs(&image, &["-b", "1024"]);
    OpenOptions::new()
        .write(true)
        .open(&image)
        .expect("open")
        .set_len(4 << 20)
        .expect("truncate");
    assert!(mount_err(&image).contains("block count exceeds size of device"));
    // No superblock.
    mkfs(&image, &["-b", "1024"]);
    patch(&image, 1024 + 56, &[0, 0]);
    assert!(mount_err(&image).contains("can't find an ext2 filesystem"));
    // Inode count that does not match the groups.
    mkfs(&image, &["-b", "1024"]);
    let count = {
        use std::os::unix::fs::FileExt;
        let mut v = [0u8; 4];
        File::open(&image)
            .expect("open")
            .read_exact_at(&mut v, 1024)
            .expect("read");
        u32::from_le_bytes(v)
    };
    patch(&image, 1024, &(count + 1).to_le_bytes());
    assert!(mount_err(&image).contains("inode count"));
    // A group descriptor pointing outside the filesystem.
    mkfs(&image, &["-b", "1024"]);
    debugfs_w(&image, "set_bg 0 inode_table 99999999");
    assert!(mount_err(&image).contains("group descriptors corrupted: group 0"));
    // A file whose block is out of range: EIO on that file, the rest readable.
    mkfs(&image, &["-b", "1024"]);
    let mut vfs = mount_ext2(&image, false, 1 << 20);
    let r = vfs.root();
    write_file(&mut vfs, r, "/bad", &[1u8; 5000], 0).expect("write");
    write_file(&mut vfs, r, "/good", b"fine", 0).expect("write");
    vfs.unmount_all().expect("unmount");
    drop(vfs);
    debugfs_w(&image, "sif /bad block[1] 99999999");
    let mut vfs = mount_ext2(&image, false, 1 << 20);
    let r = vfs.root();
    assert_eq!(read_file(&mut vfs, r, "/bad"), Err(Errno::EIO));
    assert_eq!(read_file(&mut vfs, r, "/good").expect("good file"), b"fine");
    // Removing the damaged file fails cleanly rather than freeing a stranger's block.
    let _ = vfs.unlink(r, b"/bad");
    assert_eq!(read_file(&mut vfs, r, "/good").expect("good file"), b"fine");
}
