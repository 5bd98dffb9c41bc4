//! Writes each program's man page and completions into a tree laid out as under
//! PREFIX (share/man/manN, share/bash-completion/completions, share/zsh/site-functions,
//! share/fish/vendor_completions.d), so that installing is copying the tree.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

use crate::programs::Program;

/// Where a shell looks for a program's completions, relative to PREFIX.
fn completion_path(shell: Shell, name: &str) -> PathBuf {
    match shell {
        Shell::Bash => format!("share/bash-completion/completions/{name}"),
        Shell::Zsh => format!("share/zsh/site-functions/_{name}"),
        Shell::Fish => format!("share/fish/vendor_completions.d/{name}.fish"),
        other => unreachable!("no completion directory for {other}"),
    }
    .into()
}

/// The man page path relative to PREFIX.
pub fn man_path(program: &Program) -> PathBuf {
    format!(
        "share/man/man{s}/{}.{s}",
        program.name(),
        s = program.section
    )
    .into()
}

fn write_file(root: &Path, rel: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    let path = root.join(rel);
    let dir = path.parent().expect("relative paths have a directory");
    fs::create_dir_all(dir).map_err(|e| annotate(dir, e))?;
    fs::write(&path, bytes).map_err(|e| annotate(&path, e))?;
    Ok(rel.to_owned())
}

fn annotate(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The roff man page of one program.
pub fn man_page(program: &Program) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(program.command.clone())
        .section(program.section)
        .manual("uml-utilities")
        .render(&mut buf)?;
    Ok(buf)
}

/// One shell's completion script for one program.
pub fn completion(program: &Program, shell: Shell) -> Vec<u8> {
    let mut command = program.command.clone();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut command, program.name(), &mut buf);
    buf
}

/// Writes every program's man page and completions under `root`; returns the files
/// written, relative to `root`.
pub fn write_all(programs: &[Program], root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for program in programs {
        written.push(write_file(root, &man_path(program), &man_page(program)?)?);
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let rel = completion_path(shell, &program.name());
            written.push(write_file(root, &rel, &completion(program, shell))?);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programs::all;

    #[test]
    fn pages_carry_the_section_and_the_programs_options() {
        let programs = all();
        let tunctl = programs.iter().find(|p| p.name() == "tunctl").unwrap();
        let page = String::from_utf8(man_page(tunctl).unwrap()).unwrap();
        assert!(page.contains(".TH tunctl 8"), "{page}");
        assert!(page.contains("reuse"));
        let net = programs.iter().find(|p| p.name() == "uml_net").unwrap();
        let page = String::from_utf8(man_page(net).unwrap()).unwrap();
        assert!(page.contains("sends its fd back on fd 1"));
    }

    #[test]
    fn writes_four_files_per_program() {
        let dir = tempfile::tempdir().unwrap();
        let programs = all();
        let written = write_all(&programs, dir.path()).unwrap();
        assert_eq!(written.len(), 4 * programs.len());
        assert!(dir
            .path()
            .join("share/zsh/site-functions/_uml_moo")
            .is_file());
        assert!(dir.path().join("share/man/man8/in.telnetd.8").is_file());
        let bash = fs::read_to_string(dir.path().join("share/bash-completion/completions/uml_moo"))
            .unwrap();
        assert!(bash.contains("complete -F"), "{bash}");
    }
}
