//! A session with one UML (and, for `NAME: command`, others): runs a command line,
//! local commands included, and returns what to print. Nothing here prints.

use std::path::{Path, PathBuf};

use uml_proto::mconsole::{Client, ClientError, Response, Timeouts};
use uml_proto::umid::{self, Candidate, Liveness, ResolveError, UmidDir};

use crate::absolutize::absolutize_config;
use crate::command::{self, Command, LogInput};
use crate::log::log_requests;

/// What the C client prints after the kernel's help (kept byte for byte).
pub const LOCAL_HELP: &str = "Additional local mconsole commands:
    quit - Quit mconsole
    switch <socket-name> - Switch control to the given machine
    log -f <filename> - use contents of <filename> as UML log messages
    mconsole-version - version of this mconsole program
    int  - Interrupt UML session
";

/// What `mconsole-version` prints.
pub const CLIENT_VERSION: &str = "uml_mconsole client version 2\n";

/// Where to look for UMLs and how long to wait.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The user's home (for ~/.uml); None when unset.
    pub home: Option<PathBuf>,
    /// `--uml-dir`: looked in first.
    pub uml_dir: Option<PathBuf>,
    pub timeouts: Timeouts,
    /// Relative `config ubd` file names are made absolute against this.
    pub cwd: PathBuf,
}

/// One thing a command produced, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A kernel answer: printed `OK text` or `ERR text`.
    Reply(Response),
    /// Text the client prints itself.
    Plain(String),
}

/// The result of one command line.
#[derive(Debug, Default)]
pub struct Outcome {
    pub pieces: Vec<Piece>,
    /// What went wrong, if anything (the pieces are what arrived before).
    pub error: Option<String>,
    /// `quit` was given.
    pub quit: bool,
}

impl Outcome {
    fn failed(error: impl ToString) -> Outcome {
        Outcome {
            error: Some(error.to_string()),
            ..Outcome::default()
        }
    }

    fn plain(text: impl Into<String>) -> Outcome {
        Outcome {
            pieces: vec![Piece::Plain(text.into())],
            ..Outcome::default()
        }
    }

    /// True when no error happened and every kernel answer was OK.
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && self.pieces.iter().all(|p| match p {
                Piece::Reply(r) => r.ok(),
                Piece::Plain(_) => true,
            })
    }

    /// Adds a round trip's result; false when it failed (the error is recorded, and a
    /// cut-short answer keeps what arrived).
    fn take(&mut self, result: Result<Response, ClientError>) -> bool {
        let socket = match &result {
            Err(ClientError::Timeout(path, _)) => Some(path.clone()),
            _ => None,
        };
        let ok = self.take_result(result);
        if let (Some(path), Some(e)) = (socket, self.error.as_mut()) {
            e.push_str(&gone_note(&path));
        }
        ok
    }

    fn take_result(&mut self, result: Result<Response, ClientError>) -> bool {
        match result {
            Ok(r) => {
                self.pieces.push(Piece::Reply(r));
                true
            }
            Err(e @ (ClientError::CutShort(..) | ClientError::Overlong(..))) => {
                if let ClientError::CutShort(_, partial) | ClientError::Overlong(_, partial) = &e {
                    self.pieces.push(Piece::Reply(partial.clone()));
                }
                self.error = Some(e.to_string());
                false
            }
            Err(e) => {
                self.error = Some(e.to_string());
                false
            }
        }
    }
}

/// Why a socket may be silent: the UML that made it is gone while processes it
/// started (its helpers, which survive a SIGKILL of the kernel alone) still hold it.
fn gone_note(socket: &Path) -> String {
    match UmidDir::of_socket(socket).liveness() {
        Liveness::Stale(Some(pid)) => {
            format!(" (the UML, pid {pid}, is gone; leftover processes still hold its socket)")
        }
        _ => String::new(),
    }
}

/// The UML a session talks to.
struct Target {
    name: String,
    found: Result<Candidate, ResolveError>,
    client: Option<Client>,
}

/// A session: the current UML and the settings.
pub struct Session {
    settings: Settings,
    target: Target,
}

impl Session {
    /// A session with the UML called `name` (a umid or a socket path). A name that
    /// does not resolve is reported when a command needs it.
    pub fn new(name: &str, settings: Settings) -> Session {
        let target = Self::find(name, &settings);
        Session { settings, target }
    }

    fn find(name: &str, s: &Settings) -> Target {
        Target {
            name: name.to_owned(),
            found: umid::resolve(name, s.home.as_deref(), s.uml_dir.as_deref()),
            client: None,
        }
    }

    /// The name the session was started or switched with (for the prompt).
    pub fn name(&self) -> &str {
        &self.target.name
    }

    /// The socket in use, when the name resolved.
    pub fn socket(&self) -> Option<&Path> {
        self.target.found.as_ref().ok().map(|c| c.socket.as_path())
    }

    /// The current UML's client, made on first use.
    fn client(&mut self) -> Result<&mut Client, String> {
        let found = self.target.found.as_ref().map_err(|e| e.to_string())?;
        if self.target.client.is_none() {
            let c =
                Client::new(&found.socket, self.settings.timeouts).map_err(|e| e.to_string())?;
            self.target.client = Some(c);
        }
        Ok(self.target.client.as_mut().expect("client just made"))
    }

    /// Runs one command line.
    pub fn execute(&mut self, line: &str) -> Outcome {
        match command::parse(line) {
            Command::Empty => Outcome::default(),
            Command::Quit => Outcome {
                quit: true,
                ..Outcome::default()
            },
            Command::Help => self.help(),
            Command::Switch(name) => self.switch(&name),
            Command::Log(input) => self.log(&input),
            Command::ClientVersion => Outcome::plain(CLIENT_VERSION),
            Command::Interrupt => self.interrupt(),
            Command::Umlfs(fd) => self.umlfs(&fd),
            Command::Elsewhere { name, command } => self.elsewhere(&name, &command),
            Command::Remote(text) => self.remote(&text),
        }
    }

    /// Sends one command to the current UML.
    pub fn remote(&mut self, text: &str) -> Outcome {
        let text = absolutize_config(text, &self.settings.cwd);
        let mut out = Outcome::default();
        match self.client() {
            Ok(c) => {
                out.take(c.request(text.as_bytes()));
            }
            Err(e) => out.error = Some(e),
        }
        out
    }

    /// `umlfs FD`: the request `umlfs FD` with descriptor FD attached.
    fn umlfs(&mut self, fd: &str) -> Outcome {
        let Some(fd) = uml_proto::fdpass::inherited_fd(fd) else {
            return Outcome::failed(format!("umlfs: {fd:?} is not an open file descriptor"));
        };
        let mut out = Outcome::default();
        match self.client() {
            Ok(c) => {
                let text = format!("umlfs {}", std::os::fd::AsRawFd::as_raw_fd(&fd));
                out.take(c.request_with_fd(text.as_bytes(), fd));
            }
            Err(e) => out.error = Some(e),
        }
        out
    }

    fn help(&mut self) -> Outcome {
        let mut out = self.remote("help");
        out.pieces.push(Piece::Plain(LOCAL_HELP.to_owned()));
        out
    }

    fn switch(&mut self, name: &str) -> Outcome {
        if name.is_empty() {
            return Outcome::failed("switch: which UML? (switch NAME)");
        }
        let target = Self::find(name, &self.settings);
        if let Err(e) = &target.found {
            return Outcome::failed(e);
        }
        self.target = target;
        Outcome::plain(format!("Switched to '{name}'\n"))
    }

    fn log(&mut self, input: &LogInput) -> Outcome {
        let text = match input {
            LogInput::Text(t) => t.as_bytes().to_vec(),
            LogInput::File(path) => match std::fs::read(path) {
                Ok(bytes) => bytes,
                Err(e) => return Outcome::failed(format!("log -f {}: {e}", path.display())),
            },
        };
        let mut out = Outcome::default();
        let client = match self.client() {
            Ok(c) => c,
            Err(e) => return Outcome::failed(e),
        };
        for request in log_requests(&text) {
            if !out.take(client.request(&request)) {
                break;
            }
        }
        out
    }

    fn interrupt(&mut self) -> Outcome {
        let found = match &self.target.found {
            Ok(c) => c,
            Err(e) => return Outcome::failed(e),
        };
        let dir = found.umid_dir();
        let pid = match dir.read_pid() {
            Ok(pid) => pid,
            Err(e) => {
                return Outcome::failed(format!(
                    "int: the UML's pid is unknown ({}: {e}); no signal sent",
                    dir.pid_file().display()
                ))
            }
        };
        use nix::sys::signal::{kill, Signal};
        match kill(nix::unistd::Pid::from_raw(pid), Signal::SIGINT) {
            Ok(()) => Outcome::default(),
            Err(e) => Outcome::failed(format!("int: cannot signal pid {pid}: {e}")),
        }
    }

    fn elsewhere(&mut self, name: &str, command: &str) -> Outcome {
        let s = &self.settings;
        let found = match umid::resolve(name, s.home.as_deref(), s.uml_dir.as_deref()) {
            Ok(c) => c,
            Err(e) => return Outcome::failed(e),
        };
        let text = absolutize_config(command, &s.cwd);
        let mut out = Outcome::default();
        match Client::new(&found.socket, s.timeouts) {
            Ok(mut c) => {
                out.take(c.request(text.as_bytes()));
            }
            Err(e) => out.error = Some(e.to_string()),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings(home: &Path) -> Settings {
        Settings {
            home: Some(home.to_owned()),
            uml_dir: None,
            timeouts: Timeouts::new(Duration::from_millis(200)),
            cwd: home.to_owned(),
        }
    }

    #[test]
    fn local_commands_need_no_uml() {
        let home = tempfile::tempdir().unwrap();
        let mut s = Session::new("absent-uml", settings(home.path()));
        assert!(s.execute("quit").quit);
        let v = s.execute("mconsole-version");
        assert_eq!(v.pieces, vec![Piece::Plain(CLIENT_VERSION.into())]);
        assert!(v.ok());
        let r = s.execute("version");
        assert!(!r.ok());
        assert!(r.error.unwrap().contains("no UML named 'absent-uml'"));
        let sw = s.execute("switch other-absent");
        assert!(!sw.ok());
        assert_eq!(s.name(), "absent-uml");
    }

    #[test]
    fn int_without_pid_file_sends_nothing() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".uml/vm");
        std::fs::create_dir_all(&dir).unwrap();
        let _sock = std::os::unix::net::UnixDatagram::bind(dir.join("mconsole")).unwrap();
        let mut s = Session::new("vm", settings(home.path()));
        let o = s.execute("int");
        assert!(o.error.unwrap().contains("pid is unknown"));
        let missing_log = s.execute("log -f /nonexistent/file");
        assert!(missing_log.error.unwrap().contains("/nonexistent/file"));
    }
}
