//! The interactive session on a terminal: prompt `(NAME) `, line editing and history
//! (kept across sessions in ~/.uml_mconsole_history), tab completion of command names
//! and, after `switch`, of the UMLs found in the uml dirs (as bash does: the common
//! prefix, then a list of the candidates on the second Tab). When the UML goes away
//! (`halt`, a reboot that ends it, or it dies), the session says so and ends.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, Helper};
use uml_proto::umid::{probe_socket, SocketState};

use crate::command::{KERNEL_COMMANDS, LOCAL_COMMANDS};
use crate::render;
use crate::session::{Outcome, Session};

/// The history file's name in the user's home.
pub const HISTORY_FILE: &str = ".uml_mconsole_history";

/// Where the history is kept for a user whose home is `home`.
pub fn history_path(home: Option<&Path>) -> Option<PathBuf> {
    home.map(|h| h.join(HISTORY_FILE))
}

/// Completes command names, and umids after `switch `.
pub struct Completion {
    /// Directories holding one directory per running UML (~/.uml, --uml-dir).
    pub uml_dirs: Vec<PathBuf>,
}

/// Every command name, local and kernel, once, sorted.
pub fn command_names() -> Vec<&'static str> {
    let mut all: Vec<&str> = KERNEL_COMMANDS
        .iter()
        .chain(LOCAL_COMMANDS)
        .copied()
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

impl Completion {
    /// UML names (directories with a mconsole socket) in the uml dirs.
    fn umids(&self) -> Vec<String> {
        let mut out = Vec::new();
        for dir in &self.uml_dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.path().join(uml_proto::umid::SOCKET_FILE).exists() {
                    out.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The start of the word being completed and the candidates for it.
    pub fn candidates(&self, before_cursor: &str) -> (usize, Vec<String>) {
        match before_cursor.rfind(' ') {
            None => (
                0,
                command_names()
                    .into_iter()
                    .filter(|c| c.starts_with(before_cursor))
                    .map(|c| format!("{c} "))
                    .collect(),
            ),
            Some(i) if before_cursor[..i].trim() == "switch" => {
                let word = &before_cursor[i + 1..];
                let names = self
                    .umids()
                    .into_iter()
                    .filter(|n| n.starts_with(word))
                    .collect();
                (i + 1, names)
            }
            Some(_) => (before_cursor.len(), Vec::new()),
        }
    }
}

impl Completer for Completion {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, words) = self.candidates(&line[..pos]);
        let pairs = words
            .into_iter()
            .map(|w| Pair {
                display: w.trim_end().to_owned(),
                replacement: w,
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for Completion {
    type Hint = String;
}
impl Highlighter for Completion {}
impl Validator for Completion {}
impl Helper for Completion {}

/// Reads commands at a prompt until `quit` or end of input.
pub fn run(
    session: &mut Session,
    completion: Completion,
    history: Option<PathBuf>,
    as_json: bool,
) -> Result<(), String> {
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .build();
    let mut editor: Editor<Completion, DefaultHistory> =
        Editor::with_config(config).map_err(|e| format!("cannot start line editing: {e}"))?;
    editor.set_helper(Some(completion));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    loop {
        let prompt = format!("({}) ", session.name());
        match editor.readline(&prompt) {
            Ok(line) => {
                let line = line.trim_end();
                if line.is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line);
                if let Some(h) = &history {
                    let _ = editor.append_history(h);
                }
                let outcome = session.execute(line);
                render::print(&outcome, as_json).map_err(|e| format!("stdout: {e}"))?;
                if outcome.quit {
                    return Ok(());
                }
                if let Some(why) = gone(session, line, &outcome) {
                    let _ = writeln!(std::io::stderr(), "uml_mconsole: {why}");
                    return Ok(());
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => {
                let _ = writeln!(std::io::stdout());
                return Ok(());
            }
            Err(e) => return Err(format!("reading the terminal: {e}")),
        }
    }
}

/// Whether the session's UML is gone: its socket removed or nobody bound to it.
fn socket_gone(session: &Session) -> bool {
    session.socket().is_some_and(|s| {
        matches!(
            probe_socket(s),
            Ok(SocketState::Missing | SocketState::Stale)
        )
    })
}

/// Polls `test` every 50 ms for at most `limit`; true as soon as it holds.
fn within(limit: Duration, test: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if test() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// After a command: why the session cannot go on (the UML is gone), if it cannot.
/// `halt` and `reboot` are followed until the socket goes (a reboot that brings the
/// UML back keeps the session); any other failed command is checked once.
fn gone(session: &Session, line: &str, outcome: &Outcome) -> Option<String> {
    let name = session.name();
    match line.split_whitespace().next() {
        Some("halt") if outcome.ok() => within(Duration::from_secs(5), || socket_gone(session))
            .then(|| format!("the UML '{name}' has halted; leaving the session")),
        Some("reboot") if outcome.ok() => {
            if !within(Duration::from_secs(3), || socket_gone(session)) {
                return None;
            }
            let back = within(Duration::from_secs(10), || !socket_gone(session));
            (!back).then(|| {
                format!("the UML '{name}' did not come back from the reboot; leaving the session")
            })
        }
        _ if outcome.error.is_some() && socket_gone(session) => {
            Some(format!("the UML '{name}' is gone; leaving the session"))
        }
        _ => None,
    }
}

/// Reads commands line by line from a non-terminal stdin (a pipe, a here-document),
/// without a prompt; true when every command succeeded.
pub fn run_script(
    session: &mut Session,
    input: impl std::io::BufRead,
    as_json: bool,
) -> Result<bool, String> {
    let mut all_ok = true;
    for line in input.split(b'\n') {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        let line = String::from_utf8_lossy(&line);
        let outcome = session.execute(&line);
        render::print(&outcome, as_json).map_err(|e| format!("stdout: {e}"))?;
        all_ok &= outcome.ok();
        if outcome.quit {
            break;
        }
    }
    Ok(all_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_complete_from_the_start_of_the_line() {
        let c = Completion { uml_dirs: vec![] };
        assert_eq!(c.candidates("ver"), (0, vec!["version ".to_string()]));
        let (_, s) = c.candidates("s");
        assert_eq!(s, vec!["stack ", "stop ", "switch ", "sysrq "]);
        assert_eq!(c.candidates("mconsole-").1, vec!["mconsole-version "]);
        assert!(c.candidates("proc up").1.is_empty());
    }

    #[test]
    fn switch_completes_running_umls() {
        let d = tempfile::tempdir().unwrap();
        for name in ["alpha", "beta"] {
            std::fs::create_dir(d.path().join(name)).unwrap();
            std::fs::write(d.path().join(name).join("mconsole"), b"").unwrap();
        }
        std::fs::create_dir(d.path().join("empty")).unwrap();
        let c = Completion {
            uml_dirs: vec![d.path().to_owned()],
        };
        assert_eq!(c.candidates("switch a"), (7, vec!["alpha".to_string()]));
        assert_eq!(c.candidates("switch ").1, vec!["alpha", "beta"]);
    }
}
