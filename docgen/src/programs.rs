//! Which programs there are and where each goes: the program crates come from
//! build.rs (every path dependency of docgen), their placement from a short table of
//! the ones that differ from "PREFIX/bin, mode 0755, man section 1".

/// A program crate's `cli::command`.
pub type CommandFn = fn() -> clap::Command;

include!(concat!(env!("OUT_DIR"), "/programs.rs"));

/// One installed program.
#[derive(Debug, Clone)]
pub struct Program {
    /// The cargo package that builds it.
    pub package: &'static str,
    /// The binary's name in cargo's target directory.
    pub built: String,
    /// Its clap definition; the command's name is the installed file name.
    pub command: clap::Command,
    /// Directory under PREFIX.
    pub dir: &'static str,
    pub mode: u32,
    /// Group owner on a real install (None: root's).
    pub group: Option<&'static str>,
    /// Man page section.
    pub section: &'static str,
}

impl Program {
    /// The installed file name (the command's name).
    pub fn name(&self) -> String {
        self.command.get_name().to_owned()
    }

    /// Path under PREFIX, e.g. `lib/uml/port-helper`.
    pub fn dest(&self) -> String {
        format!("{}/{}", self.dir, self.name())
    }
}

/// Programs installed other than as PREFIX/bin/NAME 0755 with a section-1 page:
/// (name, directory, mode, group, section). Debian's layout: uml_net setuid root for
/// group uml-net, the kernel's helpers in lib/uml (linux.uml adds it to PATH), and
/// the administrators' tools in section 8 (jail_uml, run by root, in sbin as Debian has it).
const PLACEMENTS: &[(&str, &str, u32, Option<&str>, &str)] = &[
    ("uml_net", "bin", 0o4754, Some("uml-net"), "8"),
    ("tunctl", "bin", 0o755, None, "8"),
    ("port-helper", "lib/uml", 0o755, None, "8"),
    ("in.telnetd", "lib/uml", 0o755, None, "8"),
    ("jail_uml", "sbin", 0o755, None, "8"),
];

/// Second programs a package builds: (package, binary built, clap definition).
const EXTRA_BINARIES: &[(&str, &str, CommandFn)] = &[(
    "port-helper",
    "in-telnetd",
    port_helper::cli::telnetd_command,
)];

fn place(package: &'static str, built: &str, command: clap::Command) -> Program {
    let name = command.get_name().to_owned();
    let (dir, mode, group, section) = PLACEMENTS
        .iter()
        .find(|p| p.0 == name)
        .map(|&(_, dir, mode, group, section)| (dir, mode, group, section))
        .unwrap_or(("bin", 0o755, None, "1"));
    Program {
        package,
        built: built.to_owned(),
        command,
        dir,
        mode,
        group,
        section,
    }
}

/// Every program, in a stable order.
pub fn all() -> Vec<Program> {
    let mut out = Vec::new();
    for &(package, command) in PACKAGES {
        let command = command();
        let built = command.get_name().to_owned();
        out.push(place(package, &built, command));
        for &(_, built, extra) in EXTRA_BINARIES.iter().filter(|e| e.0 == package) {
            out.push(place(package, built, extra()));
        }
    }
    out
}

/// The install script's instructions, one program a line, tab-separated:
/// `PACKAGE BUILT DEST MODE GROUP` (mode in octal, `-` for no group).
pub fn layout_lines(programs: &[Program]) -> String {
    programs
        .iter()
        .map(|p| {
            format!(
                "{}\t{}\t{}\t{:04o}\t{}\n",
                p.package,
                p.built,
                p.dest(),
                p.mode,
                p.group.unwrap_or("-")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_crate_is_listed_once_with_its_second_binary() {
        let names: Vec<String> = all().iter().map(Program::name).collect();
        for want in [
            "uml_mkcow",
            "uml_moo",
            "tunctl",
            "uml_net",
            "port-helper",
            "in.telnetd",
        ] {
            assert_eq!(
                names.iter().filter(|n| *n == want).count(),
                1,
                "{want} in {names:?}"
            );
        }
    }

    #[test]
    fn uml_net_is_setuid_for_its_group_and_helpers_go_to_lib_uml() {
        let layout = layout_lines(&all());
        assert!(layout.contains("uml_net\tuml_net\tbin/uml_net\t4754\tuml-net\n"));
        assert!(layout.contains("port-helper\tin-telnetd\tlib/uml/in.telnetd\t0755\t-\n"));
        assert!(layout.contains("uml_moo\tuml_moo\tbin/uml_moo\t0755\t-\n"));
        assert!(layout.contains("jail_uml\tjail_uml\tsbin/jail_uml\t0755\t-\n"));
    }
}
