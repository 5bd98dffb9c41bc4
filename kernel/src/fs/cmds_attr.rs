//! The built-in shell's commands that set what a file is rather than what it holds:
//! `chmod MODE FILE...` (octal), `chown UID[:GID] FILE...` (numeric; the shell has no
//! passwd database) and `mknod NAME b|c|u|p [MAJOR MINOR]`, with busybox's messages.

use super::cmds::FileShell;
use super::node::{FileKind, NewNode, SetAttr};

/// Runs `chmod`, `chown` or `mknod`.
pub fn run(sh: &mut FileShell<'_>, cmd: &str, args: &[&str]) -> String {
    match cmd {
        "chmod" => chmod(sh, args),
        "chown" => chown(sh, args),
        _ => mknod(sh, args),
    }
}

fn set_each(sh: &mut FileShell<'_>, cmd: &str, files: &[&str], set: &SetAttr) -> String {
    if files.is_empty() {
        return format!("{cmd}: missing operand\n");
    }
    let mut out = String::new();
    for f in files {
        if let Err(e) = sh.vfs.setattr(*sh.cwd, f.as_bytes(), true, set) {
            out.push_str(&format!("{cmd}: {f}: {e}\n"));
        }
    }
    out
}

fn chmod(sh: &mut FileShell<'_>, args: &[&str]) -> String {
    let Some((mode, files)) = args.split_first() else {
        return "chmod: missing operand\n".into();
    };
    match u32::from_str_radix(mode, 8) {
        Ok(perm) if perm <= 0o7777 => {
            let set = SetAttr {
                perm: Some(perm),
                ..SetAttr::default()
            };
            set_each(sh, "chmod", files, &set)
        }
        _ => format!("chmod: invalid mode '{mode}'\n"),
    }
}

fn chown(sh: &mut FileShell<'_>, args: &[&str]) -> String {
    let Some((owner, files)) = args.split_first() else {
        return "chown: missing operand\n".into();
    };
    let (user, group) = match owner.split_once([':', '.']) {
        Some((u, g)) => (u, Some(g)),
        None => (*owner, None),
    };
    let Ok(uid) = user.parse::<u32>() else {
        return format!("chown: unknown user {user}\n");
    };
    let gid = match group.map(str::parse::<u32>) {
        None => None,
        Some(Ok(g)) => Some(g),
        Some(Err(_)) => return format!("chown: unknown group {}\n", group.unwrap_or("")),
    };
    let set = SetAttr {
        uid: Some(uid),
        gid,
        ..SetAttr::default()
    };
    set_each(sh, "chown", files, &set)
}

fn mknod(sh: &mut FileShell<'_>, args: &[&str]) -> String {
    let usage = "mknod: usage: mknod NAME b|c|u|p [MAJOR MINOR]\n";
    let (name, kind, numbers) = match args {
        [name, "p"] => (name, FileKind::Fifo, (0, 0)),
        [name, t @ ("b" | "c" | "u"), major, minor] => {
            let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
                return usage.into();
            };
            let kind = if *t == "b" {
                FileKind::Block
            } else {
                FileKind::Char
            };
            (name, kind, (major, minor))
        }
        _ => return usage.into(),
    };
    let node = NewNode {
        kind,
        perm: 0o644,
        uid: 0,
        gid: 0,
        rdev: numbers,
    };
    match sh.vfs.mknod(*sh.cwd, name.as_bytes(), &node) {
        Ok(_) => String::new(),
        Err(e) => format!("mknod: {name}: {e}\n"),
    }
}

#[cfg(test)]
mod tests {
    use crate::fs::cmds::{FileShell, NoDevices};
    use crate::fs::tmpfs::Tmpfs;
    use crate::fs::vfs::Vfs;
    use crate::fs::FileKind;

    #[test]
    fn chmod_chown_and_mknod_over_tmpfs() {
        let mut vfs = Vfs::new(Box::new(Tmpfs::new(0)), "rootfs");
        let mut cwd = vfs.root();
        let mut sh = |line: &str| {
            let words: Vec<&str> = line.split_whitespace().collect();
            FileShell {
                vfs: &mut vfs,
                cwd: &mut cwd,
                mounter: &mut NoDevices,
            }
            .run(&words)
            .expect("a file command")
        };
        assert_eq!(sh("touch f"), "");
        assert_eq!(sh("chmod 4750 f"), "");
        assert_eq!(sh("chown 1000:100 f"), "");
        assert_eq!(sh("chmod 9 f"), "chmod: invalid mode '9'\n");
        assert_eq!(sh("chown bob f"), "chown: unknown user bob\n");
        assert_eq!(
            sh("chmod 600 nope"),
            "chmod: nope: No such file or directory\n"
        );
        assert_eq!(sh("mknod sda b 8 0"), "");
        assert_eq!(sh("mknod fifo p"), "");
        assert_eq!(
            sh("mknod x q"),
            "mknod: usage: mknod NAME b|c|u|p [MAJOR MINOR]\n"
        );
        let root = vfs.root();
        let a = vfs.stat(root, b"f", false).unwrap();
        assert_eq!((a.perm, a.uid, a.gid), (0o4750, 1000, 100));
        let d = vfs.stat(root, b"sda", false).unwrap();
        assert_eq!((d.kind, d.rdev), (FileKind::Block, (8, 0)));
        assert_eq!(vfs.stat(root, b"fifo", false).unwrap().kind, FileKind::Fifo);
    }
}
