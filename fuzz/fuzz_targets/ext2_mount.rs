//! Mounting and walking a whole image with the kernel's ext2 driver, read-write: mount
//! (or a refusal), walk every directory through the VFS, read every file and symlink,
//! then create, write, rename and remove files and unmount. Corrupt images must give
//! errors, never a panic or a hang. Input: the sparse image format of ext2_image.
#![no_main]
use libfuzzer_sys::fuzz_target;

use kernel::fs::ext2::Ext2Fs;
use kernel::fs::oflag::*;
use kernel::fs::{FileKind, Loc, Vfs};


fn walk(vfs: &mut Vfs, dir: Loc, depth: usize, budget: &mut usize) {
    let Ok(entries) = vfs.readdir_at(dir) else {
        return;
    };
    for e in entries {
        if *budget == 0 || e.name == b"." || e.name == b".." {
            continue;
        }
        *budget -= 1;
        let loc = Loc { mount: dir.mount, ino: e.ino };
        let Ok(attr) = vfs.getattr(loc) else {
            continue;
        };
        match attr.kind {
            FileKind::Dir if depth < 16 => walk(vfs, loc, depth + 1, budget),
            FileKind::File => {
                let mut buf = vec![0u8; 8192];
                let _ = vfs.fs(loc).and_then(|fs| fs.read(loc.ino, 0, &mut buf));
                let _ = vfs.fs(loc).and_then(|fs| fs.read(loc.ino, attr.size.saturating_sub(10), &mut buf));
            }
            FileKind::Symlink => {
                let _ = vfs.fs(loc).and_then(|fs| fs.readlink(loc.ino));
            }
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(bytes) = uml_fuzz::sparse_image(data) else {
        return;
    };
    let Ok(fs) = Ext2Fs::mount(Box::new(bytes), false, 64 << 10) else {
        return;
    };
    let mut vfs = Vfs::new(Box::new(fs), "fuzz");
    let r = vfs.root();
    let mut budget = 2000;
    walk(&mut vfs, r, 0, &mut budget);
    if let Ok(mut f) = vfs.open(r, b"/new", O_WRONLY | O_CREAT, 0o644, 0, 0) {
        let _ = vfs.write(&mut f, &[7u8; 3000]);
        f.offset = 300_000;
        let _ = vfs.write(&mut f, b"far");
        let _ = vfs.close(f);
    }
    let _ = vfs.mkdir(r, b"/newdir", 0o755, 0, 0);
    let _ = vfs.rename(r, b"/new", b"/newdir/moved");
    let _ = vfs.symlink(r, b"/newdir/moved", b"/link", 0, 0);
    let _ = vfs.unlink(r, b"/newdir/moved");
    let _ = vfs.rmdir(r, b"/newdir");
    let _ = vfs.rename(r, b"/d", b"/lost+found/d");
    let _ = vfs.unlink(r, b"/hard");
    let _ = vfs.unmount_all();
});
