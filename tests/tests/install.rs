//! scripts/install as a distribution package uses it: a DESTDIR install checked file by
//! file (modes, the setuid uml_net, man pages that render, completions bash loads),
//! --uninstall leaving the tree as it was, the ifupdown hook run by ifup/ifdown in a
//! private network and mount namespace, and the uml_switch unit through
//! `systemd-analyze verify`.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::collections::BTreeMap;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tests::{our_bin, require_root, run, run_ok, scratch};

const PREFIX: &str = "/usr/local";
const LIMIT: Duration = Duration::from_secs(60);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_owned()
}

/// The directory of our built binaries (and uml-docgen), given to `--from`.
fn built_dir() -> PathBuf {
    our_bin("uml-docgen")
        .parent()
        .expect("target dir")
        .to_owned()
}

fn install(args: &[&str]) -> tests::Output {
    let mut cmd = Command::new(repo_root().join("scripts/install"));
    cmd.args(args);
    run(&mut cmd, LIMIT)
}

/// Stages an install under `destdir` from the already built binaries.
fn stage(destdir: &Path) -> tests::Output {
    let out = install(&[
        "--destdir",
        destdir.to_str().unwrap(),
        "--from",
        built_dir().to_str().unwrap(),
    ]);
    assert!(out.success(), "install failed: {out:?}");
    out
}

/// One program of `uml-docgen --layout`.
struct Placed {
    built: String,
    dest: String,
    mode: u32,
}

impl Placed {
    fn name(&self) -> &str {
        self.dest.rsplit('/').next().unwrap()
    }
}

fn layout() -> Vec<Placed> {
    let out = run_ok(Command::new(our_bin("uml-docgen")).arg("--layout"));
    out.stdout
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 5, "layout line {line:?}");
            Placed {
                built: f[1].to_owned(),
                dest: f[2].to_owned(),
                mode: u32::from_str_radix(f[3], 8).expect("octal mode"),
            }
        })
        .collect()
}

fn under(destdir: &Path, path: &str) -> PathBuf {
    destdir.join(path.trim_start_matches('/'))
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

/// A file's mode, size and (for text-sized files, which are all that a test puts
/// there) content hash, marked when it holds an unfilled `@BINDIR@`. Binaries are
/// compared with what was built elsewhere.
fn file_summary(path: &Path, meta: &fs::Metadata) -> String {
    if meta.len() > 1 << 20 {
        return format!("file {:o} {} bytes", meta.mode(), meta.len());
    }
    let bytes = fs::read(path).unwrap();
    let mut hash = DefaultHasher::new();
    bytes.hash(&mut hash);
    let unfilled = if bytes.windows(8).any(|w| w == b"@BINDIR@") {
        " @BINDIR@"
    } else {
        ""
    };
    format!("file {:o} {:016x}{unfilled}", meta.mode(), hash.finish())
}

/// Every path under `dir` with what it is (a file's summary, a link's target, or a
/// directory).
fn tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let what = if meta.is_symlink() {
                format!("link {}", fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                "dir".to_owned()
            } else {
                file_summary(&path, &meta)
            };
            out.insert(path.strip_prefix(dir).unwrap().to_owned(), what);
        }
    }
    out
}

fn man_page(destdir: &Path, name: &str) -> PathBuf {
    ["1", "8"]
        .iter()
        .map(|s| under(destdir, &format!("{PREFIX}/share/man/man{s}/{name}.{s}")))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no man page for {name}"))
}

#[test]
fn destdir_install_places_every_program_with_its_mode_man_page_and_completions() {
    let dir = scratch();
    let destdir = dir.path().join("stage");
    let out = stage(&destdir);
    assert!(
        out.stdout
            .contains("postinst must create the group uml-net"),
        "{out:?}"
    );
    let programs = layout();
    let names: Vec<&str> = programs.iter().map(Placed::name).collect();
    for want in [
        "uml_mkcow",
        "uml_moo",
        "tunctl",
        "uml_net",
        "port-helper",
        "in.telnetd",
        "humfsify",
        "uml_mconsole",
        "uml_switch",
        "uml-kernel",
        "uml_watchdog",
        "jail_uml",
        "jailtest",
        "uml_mount",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for p in &programs {
        let installed = under(&destdir, &format!("{PREFIX}/{}", p.dest));
        assert_eq!(mode(&installed), p.mode, "{}", installed.display());
        assert_eq!(
            fs::read(&installed).unwrap(),
            fs::read(built_dir().join(&p.built)).unwrap(),
            "{} is not the built {}",
            installed.display(),
            p.built
        );
    }
    // Debian's layout: uml_net setuid root, executable by its group only; the kernel's
    // helpers beside each other in lib/uml.
    let uml_net = under(&destdir, &format!("{PREFIX}/bin/uml_net"));
    assert_eq!(mode(&uml_net), 0o4754);
    // jail_uml, run by root, in sbin as Debian has it.
    assert_eq!(
        mode(&under(&destdir, &format!("{PREFIX}/sbin/jail_uml"))),
        0o755
    );
    for helper in ["port-helper", "in.telnetd"] {
        assert_eq!(
            mode(&under(&destdir, &format!("{PREFIX}/lib/uml/{helper}"))),
            0o755
        );
    }

    for name in &names {
        let page = man_page(&destdir, name);
        assert_eq!(mode(&page), 0o644);
        let shown = run(
            Command::new("man")
                .arg("-l")
                .arg(&page)
                .env("MANPAGER", "cat")
                .env("MANWIDTH", "80"),
            LIMIT,
        );
        assert!(shown.success(), "man -l {}: {shown:?}", page.display());
        assert!(
            shown.stdout.contains("SYNOPSIS") && shown.stdout.contains(name),
            "man -l {}: {}",
            page.display(),
            shown.stdout
        );
        assert!(
            shown.stderr.is_empty(),
            "man -l {}: {}",
            page.display(),
            shown.stderr
        );

        let bash = under(
            &destdir,
            &format!("{PREFIX}/share/bash-completion/completions/{name}"),
        );
        let loaded = run(
            Command::new("bash")
                .arg("--norc")
                .arg("-c")
                .arg(r#"source "$1" && complete -p "$2""#)
                .arg("bash")
                .arg(&bash)
                .arg(name),
            LIMIT,
        );
        assert!(
            loaded.success() && loaded.stdout.trim_end().ends_with(&format!(" {name}")),
            "bash completion {}: {loaded:?}",
            bash.display()
        );
        let zsh = fs::read_to_string(under(
            &destdir,
            &format!("{PREFIX}/share/zsh/site-functions/_{name}"),
        ))
        .unwrap();
        assert!(zsh.starts_with(&format!("#compdef {name}")), "{zsh}");
        let fish = fs::read_to_string(under(
            &destdir,
            &format!("{PREFIX}/share/fish/vendor_completions.d/{name}.fish"),
        ))
        .unwrap();
        assert!(fish.contains(&format!("complete -c {name}")), "{fish}");
    }
    let net_page = fs::read_to_string(man_page(&destdir, "uml_net")).unwrap();
    assert!(net_page.contains(".TH uml_net 8"), "{net_page}");

    // The hook and the unit, with our bin directory filled in.
    let hook = under(&destdir, "/etc/network/if-pre-up.d/uml-tunctl");
    assert_eq!(mode(&hook), 0o755);
    assert!(fs::read_to_string(&hook)
        .unwrap()
        .contains(&format!("TUNCTL={PREFIX}/bin/tunctl")));
    assert_eq!(
        fs::read_link(under(&destdir, "/etc/network/if-post-down.d/uml-tunctl")).unwrap(),
        Path::new("../if-pre-up.d/uml-tunctl")
    );
    // Every installed file is in the manifest, and nothing is left unsubstituted.
    let manifest_rel = format!("{PREFIX}/share/uml-utilities/install-manifest");
    let manifest = fs::read_to_string(under(&destdir, &manifest_rel)).unwrap();
    let listed: Vec<PathBuf> = manifest
        .lines()
        .map(|l| PathBuf::from(l.strip_prefix("f /").expect("f PATH line")))
        .collect();
    for (path, what) in tree(&destdir) {
        if what == "dir" || path.to_str().unwrap().contains("install-manifest") {
            continue;
        }
        assert!(
            listed.contains(&path),
            "{} not in the manifest",
            path.display()
        );
        assert!(
            !what.contains("@BINDIR@"),
            "{} has @BINDIR@",
            path.display()
        );
    }
}

#[test]
fn uninstall_removes_exactly_what_was_installed() {
    let dir = scratch();
    let destdir = dir.path().join("stage");
    // Things that were there before and must survive.
    fs::create_dir_all(destdir.join("usr/local/bin")).unwrap();
    fs::write(destdir.join("usr/local/bin/theirs"), b"keep me").unwrap();
    fs::create_dir_all(destdir.join("etc/network/if-pre-up.d")).unwrap();
    fs::write(destdir.join("etc/network/interfaces"), b"auto lo\n").unwrap();
    fs::write(
        destdir.join("etc/network/if-pre-up.d/other"),
        b"#!/bin/sh\n",
    )
    .unwrap();
    fs::set_permissions(
        destdir.join("etc/network/if-pre-up.d/other"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let before = tree(&destdir);
    stage(&destdir);
    assert!(tree(&destdir).len() > before.len() + 30);
    let out = install(&["--destdir", destdir.to_str().unwrap(), "--uninstall"]);
    assert!(out.success(), "{out:?}");
    assert_eq!(tree(&destdir), before);
    // A second uninstall has nothing to go by and says so.
    let again = install(&["--destdir", destdir.to_str().unwrap(), "--uninstall"]);
    assert_eq!(again.code, Some(1), "{again:?}");
    assert!(
        again.stderr.contains("install-manifest: not found"),
        "{again:?}"
    );
    assert_eq!(tree(&destdir), before);
}

#[test]
fn bad_arguments_are_refused_before_anything_is_built() {
    let out = install(&["--frobnicate"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("'--frobnicate'"));
    let out = install(&["--prefix", "relative/dir", "--destdir", "/nonexistent-x"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("absolute"));
    assert!(!Path::new("/nonexistent-x").exists());
}

/// Runs ifup and ifdown on `stanza` in a private network and mount namespace where
/// the staged /etc/network (the hook) is bind-mounted over /etc/network and the staged
/// PREFIX over /usr/local, as on a system the package was installed on. Prints what
/// the tap looked like in between. `setup.debian_hook` also installs Debian's own
/// uml-utilities hook under that name (run-parts runs hooks in name order);
/// `setup.before` is a shell step run before ifup.
fn ifup_ifdown(destdir: &Path, work: &Path, iface: &str, stanza: &str) -> tests::Output {
    ifup_ifdown_with(destdir, work, iface, stanza, HookSetup::default())
}

#[derive(Default, Clone, Copy)]
struct HookSetup<'a> {
    debian_hook: Option<&'a str>,
    before: &'a str,
}

/// Debian's uml-utilities ifupdown hook (it runs the C tunctl).
const DEBIAN_HOOK: &str = "/etc/network/if-pre-up.d/uml-utilities";

fn ifup_ifdown_with(
    destdir: &Path,
    work: &Path,
    iface: &str,
    stanza: &str,
    setup: HookSetup<'_>,
) -> tests::Output {
    let net = work.join("network");
    for d in ["if-pre-up.d", "if-up.d", "if-down.d", "if-post-down.d"] {
        fs::create_dir_all(net.join(d)).unwrap();
    }
    let copied = run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(destdir.join("etc/network/."))
            .arg(&net),
    );
    assert!(copied.success());
    if let Some(name) = setup.debian_hook {
        assert!(
            Path::new(DEBIAN_HOOK).exists(),
            "{DEBIAN_HOOK} is missing: install the Debian package uml-utilities (scripts/setup does)"
        );
        fs::copy(DEBIAN_HOOK, net.join("if-pre-up.d").join(name)).unwrap();
    }
    let interfaces = work.join("interfaces");
    fs::write(&interfaces, stanza).unwrap();
    let script = r#"
        set -e
        mount --make-rprivate /
        ip link set lo up
        mount -t sysfs sysfs /sys
        mount --bind "$1" /etc/network
        mount -t tmpfs tmpfs /run
        mount --bind "$2" /usr/local
        eval "$5"
        ifup -i "$3" "$4"
        echo "owner=$(cat /sys/class/net/$4/owner) group=$(cat /sys/class/net/$4/group)"
        echo "flags=$(cat /sys/class/net/$4/tun_flags)"
        ip -o -4 addr show dev "$4"
        ifdown -i "$3" "$4"
        if [ -e "/sys/class/net/$4" ]; then echo "after: present"; else echo "after: gone"; fi
    "#;
    run(
        Command::new("unshare")
            .args([
                "--net", "--mount", "--fork", "--", "bash", "-c", script, "ns",
            ])
            .arg(&net)
            .arg(destdir.join("usr/local"))
            .arg(&interfaces)
            .arg(iface)
            .arg(setup.before),
        LIMIT,
    )
}

#[test]
fn ifupdown_hook_creates_the_tap_for_its_user_and_removes_it() {
    require_root("the ifupdown hook test (network and mount namespaces)");
    assert!(
        Path::new("/sbin/ifup").exists(),
        "ifup is missing: install the Debian package ifupdown (scripts/setup does)"
    );
    let dir = scratch();
    let destdir = dir.path().join("stage");
    stage(&destdir);
    let nobody = run_ok(Command::new("id").args(["-u", "nobody"]));
    let stanza = "iface umltap7 inet static\n    address 192.0.2.1/24\n    \
                  tunctl_user nobody\n    tunctl_group 4321\n";
    let out = ifup_ifdown(&destdir, dir.path(), "umltap7", stanza);
    assert!(out.success(), "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("owner={} group=4321", nobody.stdout.trim())),
        "{out:?}"
    );
    // IFF_TAP | IFF_NO_PI | IFF_PERSIST: a persistent tap, as tunctl makes by default.
    assert!(out.stdout.contains("flags=0x1802"), "{out:?}");
    assert!(out.stdout.contains("inet 192.0.2.1/24"), "{out:?}");
    assert!(
        out.stdout.contains("Set 'umltap7' nonpersistent"),
        "{out:?}"
    );
    assert!(out.stdout.contains("after: gone"), "{out:?}");

    // A stanza without tunctl_user/tunctl_group is left alone by the hook: there is no
    // device, so ifup fails to configure it.
    let plain = "iface umltap8 inet static\n    address 192.0.2.9/24\n";
    let out = ifup_ifdown(&destdir, &dir.path().join("plain"), "umltap8", plain);
    assert!(!out.success(), "{out:?}");
    assert!(!out.stdout.contains("owner="), "{out:?}");
    assert!(out.stderr.contains("\"umltap8\""), "{out:?}");
}

/// A tap already there and owned by root (made by hand, or left from an earlier boot)
/// is re-owned by our hook, as Debian's hook does; with Debian's hook installed as well,
/// in either order (as run-parts runs them: ours is `uml-tunctl`, before Debian's
/// `uml-utilities`; and renamed to run first), the tap ends up owned by tunctl_user.
#[test]
fn ifupdown_hook_reowns_an_existing_tap_and_works_before_or_after_debians_hook() {
    require_root("the ifupdown hook test (network and mount namespaces)");
    assert!(
        Path::new("/sbin/ifup").exists(),
        "ifup is missing: install the Debian package ifupdown (scripts/setup does)"
    );
    let dir = scratch();
    let destdir = dir.path().join("stage");
    stage(&destdir);
    let nobody = run_ok(Command::new("id").args(["-u", "nobody"]));
    let owner = format!("owner={} ", nobody.stdout.trim());
    let stanza = "iface umltap5 inet static\n    address 192.0.2.5/24\n    tunctl_user nobody\n";
    let root_owned = format!("{} -t umltap5 -u 0 >/dev/null", our_bin("tunctl").display());
    let cases = [
        ("alone, tap owned by root", None, root_owned.as_str()),
        ("before Debian's hook", Some("uml-utilities"), ""),
        ("after Debian's hook", Some("00-uml-utilities"), ""),
        (
            "before Debian's, tap owned by root",
            Some("uml-utilities"),
            root_owned.as_str(),
        ),
        (
            "after Debian's, tap owned by root",
            Some("00-uml-utilities"),
            root_owned.as_str(),
        ),
    ];
    for (i, (what, debian_hook, before)) in cases.into_iter().enumerate() {
        let setup = HookSetup {
            debian_hook,
            before,
        };
        let work = dir.path().join(format!("case{i}"));
        let out = ifup_ifdown_with(&destdir, &work, "umltap5", stanza, setup);
        assert!(out.success(), "{what}: {out:?}");
        assert!(out.stdout.contains(&owner), "{what}: {out:?}");
        assert!(out.stdout.contains("flags=0x1802"), "{what}: {out:?}");
        assert!(out.stdout.contains("inet 192.0.2.5/24"), "{what}: {out:?}");
        assert!(out.stdout.contains("after: gone"), "{what}: {out:?}");
    }
}

#[test]
fn uml_switch_unit_passes_systemd_analyze_verify() {
    let dir = scratch();
    let destdir = dir.path().join("stage");
    stage(&destdir);
    let unit_path = under(
        &destdir,
        &format!("{PREFIX}/lib/systemd/system/uml_switch.service"),
    );
    let unit = fs::read_to_string(&unit_path).unwrap();
    for line in [
        "User=uml-net",
        "RuntimeDirectory=uml-utilities",
        "Environment=UML_SWITCH_CTL=/run/uml-utilities/uml_switch.ctl",
        "EnvironmentFile=-/etc/default/uml-utilities",
        "ExecStart=/usr/local/bin/uml_switch -unix ${UML_SWITCH_CTL} $UML_SWITCH_OPTIONS",
    ] {
        assert!(unit.lines().any(|l| l == line), "no {line:?} in\n{unit}");
    }
    // systemd-analyze checks that ExecStart's program exists: point it at the staged one.
    let staged_bin = under(&destdir, &format!("{PREFIX}/bin"));
    let target = staged_bin.join("uml_switch");
    assert!(target.exists(), "uml_switch was not installed");
    let check = dir.path().join("check");
    fs::create_dir_all(&check).unwrap();
    let verify = |exec: &Path| {
        let copy = check.join("uml_switch.service");
        fs::write(
            &copy,
            unit.replace("/usr/local/bin/uml_switch", exec.to_str().unwrap()),
        )
        .unwrap();
        run(
            Command::new("systemd-analyze")
                .args(["verify", "--man=no"])
                .arg(&copy),
            LIMIT,
        )
    };
    let ok = verify(&target);
    assert!(ok.success(), "{ok:?}");
    assert!(!ok.stderr.contains("uml_switch.service"), "{ok:?}");
    // The check can fail: a missing program is reported.
    let bad = verify(&staged_bin.join("no-such-program"));
    assert!(!bad.success(), "{bad:?}");
    assert!(bad.stderr.contains("no-such-program"), "{bad:?}");

    // The networkd example's template unit, instantiated for tap0.
    let examples = under(
        &destdir,
        &format!("{PREFIX}/share/doc/uml-utilities/examples/networkd"),
    );
    let template = fs::read_to_string(examples.join("uml-tap@.service")).unwrap();
    fs::write(
        check.join("uml-tap@.service"),
        template.replace("/usr/local/bin/", &format!("{}/", staged_bin.display())),
    )
    .unwrap();
    let ok = run(
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(check.join("uml-tap@tap0.service")),
        LIMIT,
    );
    assert!(ok.success(), "{ok:?}");
}

#[test]
fn real_install_creates_the_uml_net_group_and_user_and_makes_uml_net_setuid_for_it() {
    require_root("the real install test (a private mount namespace)");
    // A real install, on a copy of /etc and an empty /usr/local bind-mounted over the
    // real ones in a private mount namespace: groupadd and useradd write the copy.
    let dir = scratch();
    let script = r#"
        set -e
        mount --make-rprivate /
        cp -a /etc "$1/etc"
        mkdir "$1/local"
        mount --bind "$1/etc" /etc
        mount --bind "$1/local" /usr/local
        if getent passwd uml-net >/dev/null; then userdel uml-net; fi
        if getent group uml-net >/dev/null; then groupdel uml-net; fi
        "$2/scripts/install" --from "$3"
        echo "group: $(getent group uml-net | cut -d: -f1)"
        echo "user: $(getent passwd uml-net | cut -d: -f1,7)"
        echo "uml_net: $(stat -c '%U %G %a' /usr/local/bin/uml_net)"
        echo "hook: $(stat -c '%a' /etc/network/if-pre-up.d/uml-tunctl)"
        "$2/scripts/install" --uninstall
        echo "left: $(ls -A /usr/local | tr '\n' ' ')"
        if [ -e /etc/network/if-pre-up.d/uml-tunctl ]; then echo "hook left"; fi
    "#;
    let out = run(
        Command::new("unshare")
            .args(["--mount", "--fork", "--", "bash", "-c", script, "ns"])
            .arg(dir.path())
            .arg(repo_root())
            .arg(built_dir()),
        LIMIT,
    );
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.contains("group: uml-net\n"), "{out:?}");
    assert!(
        out.stdout.contains("user: uml-net:/usr/sbin/nologin\n"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("uml_net: root uml-net 4754\n"),
        "{out:?}"
    );
    assert!(out.stdout.contains("hook: 755\n"), "{out:?}");
    assert!(out.stdout.contains("installed under /usr/local"), "{out:?}");
    assert!(out.stdout.contains("left: \n"), "{out:?}");
    assert!(!out.stdout.contains("hook left"), "{out:?}");
}
