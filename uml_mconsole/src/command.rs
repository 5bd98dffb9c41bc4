//! What one command line means: a command the client handles itself (matched by its
//! whole first word, unlike the C client's prefix match), a command for another UML
//! (`NAME: command`), or text for the kernel.

use std::path::PathBuf;

/// Text to put into the UML's kernel log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogInput {
    /// `log TEXT`
    Text(String),
    /// `log -f FILE`
    File(PathBuf),
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Nothing to do (empty line).
    Empty,
    /// `quit`
    Quit,
    /// `help`: the kernel's help, then the local commands.
    Help,
    /// `switch NAME` (the name may be missing: an error when run).
    Switch(String),
    /// `log TEXT` or `log -f FILE`.
    Log(LogInput),
    /// `mconsole-version`
    ClientVersion,
    /// `int`: SIGINT to the UML's process.
    Interrupt,
    /// `umlfs FD`: send our open descriptor FD (a /dev/fuse connection, from
    /// uml_mount) to the UML with the request, as the C client does.
    Umlfs(String),
    /// `NAME: command`: one command for another UML.
    Elsewhere { name: String, command: String },
    /// Anything else goes to the kernel as typed.
    Remote(String),
}

/// The local command names, for completion.
pub const LOCAL_COMMANDS: &[&str] = &[
    "quit",
    "help",
    "switch",
    "log",
    "mconsole-version",
    "int",
    "umlfs",
];

/// The kernel's command names (linux 6.1), for completion.
pub const KERNEL_COMMANDS: &[&str] = &[
    "version", "halt", "reboot", "config", "remove", "sysrq", "help", "cad", "stop", "go", "log",
    "proc", "stack",
];

/// Splits off the first word; the rest loses the one blank that separated them.
fn first_word(line: &str) -> (&str, &str) {
    match line.find([' ', '\t']) {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    }
}

fn parse_log(rest: &str) -> LogInput {
    let (flag, file) = first_word(rest);
    if flag == "-f" {
        LogInput::File(PathBuf::from(file.trim()))
    } else {
        LogInput::Text(rest.to_owned())
    }
}

/// Parses a line (surrounding whitespace ignored).
pub fn parse(line: &str) -> Command {
    let line = line.trim();
    let (word, rest) = first_word(line);
    match word {
        "" => Command::Empty,
        "quit" => Command::Quit,
        "help" => Command::Help,
        "switch" => Command::Switch(rest.trim().to_owned()),
        "log" => Command::Log(parse_log(rest)),
        "mconsole-version" => Command::ClientVersion,
        "int" => Command::Interrupt,
        "umlfs" => Command::Umlfs(rest.trim().to_owned()),
        w if w.len() > 1 && w.ends_with(':') && !rest.trim().is_empty() => Command::Elsewhere {
            name: w[..w.len() - 1].to_owned(),
            command: rest.trim().to_owned(),
        },
        _ => Command::Remote(line.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_commands_match_whole_words_only() {
        assert_eq!(parse("quit"), Command::Quit);
        assert_eq!(parse("  int \n"), Command::Interrupt);
        assert_eq!(parse("interrupt"), Command::Remote("interrupt".into()));
        assert_eq!(parse("helpme"), Command::Remote("helpme".into()));
        assert_eq!(parse("logfoo"), Command::Remote("logfoo".into()));
        assert_eq!(parse("quitter"), Command::Remote("quitter".into()));
        assert_eq!(parse("mconsole-version"), Command::ClientVersion);
        assert_eq!(parse(""), Command::Empty);
    }

    #[test]
    fn arguments_are_kept() {
        assert_eq!(parse("switch vm2"), Command::Switch("vm2".into()));
        assert_eq!(parse("switch"), Command::Switch(String::new()));
        assert_eq!(
            parse("log hello  world"),
            Command::Log(LogInput::Text("hello  world".into()))
        );
        assert_eq!(parse("log"), Command::Log(LogInput::Text(String::new())));
        assert_eq!(
            parse("log -f /tmp/x y"),
            Command::Log(LogInput::File("/tmp/x y".into()))
        );
        assert_eq!(
            parse("proc  uptime"),
            Command::Remote("proc  uptime".into())
        );
    }

    #[test]
    fn name_prefix_sends_to_another_uml() {
        assert_eq!(
            parse("vm2: proc uptime"),
            Command::Elsewhere {
                name: "vm2".into(),
                command: "proc uptime".into()
            }
        );
        assert_eq!(parse("vm2:"), Command::Remote("vm2:".into()));
        assert_eq!(parse(": x"), Command::Remote(": x".into()));
    }
}
