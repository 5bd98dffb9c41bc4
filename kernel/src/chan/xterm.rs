//! The `xterm` channel, as linux.uml runs it (reference helpers.md §5): bind a datagram
//! socket at a fresh `/tmp/xterm-pipeXXXXXX`, start the terminal emulator with a title
//! and `port-helper -uml-socket <path>` as its command, and take the terminal that
//! port-helper sends back. The emulator comes from `xterm=EMULATOR[,TITLE_SW[,EXEC_SW]]`
//! (default `x-terminal-emulator,-T,-e`).

use std::ffi::OsString;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::port::Connection;

/// The emulator and its title and execute switches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emulator {
    pub program: String,
    pub title_switch: String,
    pub exec_switch: String,
}

impl Emulator {
    /// From the `xterm=` switch (None: Debian's default).
    pub fn from_switch(value: Option<&str>) -> Emulator {
        let mut parts = value.unwrap_or("").split(',');
        let mut next = |default: &str| {
            parts
                .next()
                .filter(|s| !s.is_empty())
                .unwrap_or(default)
                .to_owned()
        };
        Emulator {
            program: next("x-terminal-emulator"),
            title_switch: next("-T"),
            exec_switch: next("-e"),
        }
    }
}

/// Starts the emulator for a line titled `title`; `helper` is port-helper.
pub fn open(
    emulator: &Emulator,
    title: &str,
    helper: &Path,
    display: Option<OsString>,
) -> io::Result<Connection> {
    if display.is_none_or(|d| d.is_empty()) {
        return Err(io::Error::other("xterm_open: $DISPLAY not set."));
    }
    let (path, sock) = bind_fresh_socket()?;
    sock.set_nonblocking(true)?;
    let child = Command::new(&emulator.program)
        .arg(&emulator.title_switch)
        .arg(title)
        .arg(&emulator.exec_switch)
        .arg(helper)
        .arg("-uml-socket")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| {
            let _ = std::fs::remove_file(&path);
            io::Error::new(e.kind(), format!("cannot run {}: {e}", emulator.program))
        })?;
    Ok(Connection::new(child, sock, Some(path)))
}

fn bind_fresh_socket() -> io::Result<(PathBuf, UnixDatagram)> {
    for _ in 0..100 {
        let mut bytes = [0u8; 6];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| io::Read::read_exact(&mut f, &mut bytes))?;
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let name: String = bytes
            .iter()
            .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
            .collect();
        let path = PathBuf::from(format!("/tmp/xterm-pipe{name}"));
        match UnixDatagram::bind(&path) {
            Ok(s) => return Ok((path, s)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free /tmp/xterm-pipe name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulator_switch_defaults() {
        assert_eq!(
            Emulator::from_switch(None),
            Emulator {
                program: "x-terminal-emulator".into(),
                title_switch: "-T".into(),
                exec_switch: "-e".into()
            }
        );
        let e = Emulator::from_switch(Some("gnome-terminal,-t,-x"));
        assert_eq!(
            (
                e.program.as_str(),
                e.title_switch.as_str(),
                e.exec_switch.as_str()
            ),
            ("gnome-terminal", "-t", "-x")
        );
        assert_eq!(Emulator::from_switch(Some("xterm")).exec_switch, "-e");
    }

    #[test]
    fn no_display_is_refused() {
        let e = open(
            &Emulator::from_switch(None),
            "t",
            Path::new("/bin/true"),
            None,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "xterm_open: $DISPLAY not set.");
    }
}
