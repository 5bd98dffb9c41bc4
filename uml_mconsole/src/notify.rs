//! `--notify SOCKET`: the socket a UML started with `mconsole=notify:SOCKET` reports to
//! (its mconsole socket at boot, a panic, text written to /proc/mconsole in the guest).
//! Each message becomes one line: `socket PATH`, `panic TEXT`, `hang`, `user TEXT`, or a
//! JSON object.

use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use uml_proto::mconsole::{Notification, NotifyKind, MAX_NOTIFY_LEN};
use uml_proto::umid::{probe_socket, SocketState};

/// The notify socket, removed again when dropped.
#[derive(Debug)]
pub struct Listener {
    sock: UnixDatagram,
    path: PathBuf,
}

/// Creates the socket at `path`; a stale socket file left by an earlier listener is
/// replaced, a live one or any other file is an error.
pub fn bind(path: &Path) -> Result<Listener, String> {
    let shown = path.display();
    match probe_socket(path).map_err(|e| format!("{shown}: {e}"))? {
        SocketState::Missing => {}
        SocketState::Stale => {
            std::fs::remove_file(path).map_err(|e| format!("{shown}: cannot replace: {e}"))?
        }
        SocketState::Listening => {
            return Err(format!("{shown}: another process is listening there"))
        }
        SocketState::NotASocket => return Err(format!("{shown}: exists and is not a socket")),
    }
    let sock = UnixDatagram::bind(path).map_err(|e| format!("{shown}: {e}"))?;
    Ok(Listener {
        sock,
        path: path.to_owned(),
    })
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One line for a notification.
pub fn line(n: &Notification, as_json: bool) -> String {
    let text = n.text();
    if as_json {
        let quote = |s: &str| serde_json::Value::from(s).to_string();
        format!(
            "{{\"type\":\"{}\",\"text\":{}}}",
            n.kind.name(),
            quote(&text)
        )
    } else if n.kind == NotifyKind::Hang {
        "hang".to_owned()
    } else {
        format!("{} {}", n.kind.name(), one_line(&text))
    }
}

/// The text with its control characters escaped (`\n`, `\x1b`, ...), so that what a
/// guest writes to /proc/mconsole cannot forge further lines (a fake `socket PATH`).
fn one_line(text: &str) -> String {
    crate::render::escape(text, false)
}

impl Listener {
    /// Prints messages as they come; after the first one with `once`. `wait` bounds
    /// the wait for each message (None: wait as long as it takes).
    pub fn run(
        &self,
        once: bool,
        as_json: bool,
        wait: Option<Duration>,
        out: &mut impl Write,
    ) -> Result<(), String> {
        let shown = self.path.display();
        self.sock
            .set_read_timeout(wait)
            .map_err(|e| format!("{shown}: {e}"))?;
        let mut buf = vec![0u8; MAX_NOTIFY_LEN + 64];
        loop {
            let n = match self.sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    let secs = wait.map(|w| w.as_secs_f64()).unwrap_or(0.0);
                    return Err(format!("{shown}: no notification within {secs} s"));
                }
                Err(e) => return Err(format!("{shown}: {e}")),
            };
            match Notification::parse(&buf[..n]) {
                Ok(msg) => {
                    writeln!(out, "{}", line(&msg, as_json))
                        .and_then(|_| out.flush())
                        .map_err(|e| format!("stdout: {e}"))?;
                    if once {
                        return Ok(());
                    }
                }
                Err(e) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "uml_mconsole: {shown}: ignored a malformed notification: {e}"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_for_each_kind() {
        let n = |kind, data: &[u8]| Notification {
            kind,
            data: data.to_vec(),
        };
        assert_eq!(
            line(&n(NotifyKind::Socket, b"/h/.uml/a/mconsole\0"), false),
            "socket /h/.uml/a/mconsole"
        );
        assert_eq!(line(&n(NotifyKind::User, b"hi\n"), false), "user hi");
        assert_eq!(line(&n(NotifyKind::Hang, b""), false), "hang");
        // A guest cannot forge a second line.
        assert_eq!(
            line(&n(NotifyKind::User, b"hi\nsocket /evil\x1b\n"), false),
            "user hi\\nsocket /evil\\x1b"
        );
        assert_eq!(
            line(&n(NotifyKind::Panic, b"Attempted to kill init!\0"), true),
            r#"{"type":"panic","text":"Attempted to kill init!"}"#
        );
    }

    #[test]
    fn receives_skips_garbage_and_cleans_up() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("notify");
        let l = bind(&path).unwrap();
        assert!(bind(&path).unwrap_err().contains("another process"));
        let sender = UnixDatagram::unbound().unwrap();
        sender.send_to(b"junk", &path).unwrap();
        let mut buf = [0u8; 64];
        let msg = Notification {
            kind: NotifyKind::User,
            data: b"tick\n".to_vec(),
        };
        let len = msg.emit(&mut buf).unwrap();
        sender.send_to(&buf[..len], &path).unwrap();
        let mut out = Vec::new();
        l.run(true, false, Some(Duration::from_secs(5)), &mut out)
            .unwrap();
        assert_eq!(out, b"user tick\n");
        let e = l
            .run(true, false, Some(Duration::from_millis(50)), &mut out)
            .unwrap_err();
        assert!(e.contains("no notification"));
        drop(l);
        assert!(!path.exists());
        // A stale file is replaced.
        drop(UnixDatagram::bind(&path).unwrap());
        assert!(bind(&path).is_ok());
    }
}
