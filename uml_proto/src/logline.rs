//! Writing log lines and messages so that a failed write never panics (a closed
//! terminal gives EIO, a reader that left gives EPIPE, a `-daemon` outlives its
//! login), and showing bytes a client chose (paths, names) without the control
//! characters that would rewrite a terminal or forge log lines.
//!
//! This module prints nothing on its own: programs call these helpers (or the
//! `quiet_eprintln!` / `quiet_print!` macros) instead of `eprintln!` / `print!`.

use std::fmt;
use std::io::{self, Write};

/// Writes `args` and a newline to stderr as one write; every error is ignored.
pub fn stderr_line(args: fmt::Arguments<'_>) {
    let mut line = fmt::format(args);
    line.push('\n');
    let _ = write_all_quiet(&mut io::stderr().lock(), line.as_bytes());
}

/// Writes `args` to stdout and flushes; every error is ignored.
pub fn stdout_text(args: fmt::Arguments<'_>) {
    let text = fmt::format(args);
    let mut out = io::stdout().lock();
    let _ = write_all_quiet(&mut out, text.as_bytes());
    let _ = out.flush();
}

/// Writes `bytes` to `w`, giving up on the first error (EPIPE, EIO, ...), which is
/// returned for callers that want to stop logging.
pub fn write_all_quiet(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    w.write_all(bytes)
}

/// `eprintln!` that never panics.
#[macro_export]
macro_rules! quiet_eprintln {
    ($($t:tt)*) => { $crate::logline::stderr_line(format_args!($($t)*)) };
}

/// `print!` that never panics (and flushes, for messages scripts wait for).
#[macro_export]
macro_rules! quiet_print {
    ($($t:tt)*) => { $crate::logline::stdout_text(format_args!($($t)*)) };
}

/// `bytes` as text for a log line: printable ASCII and valid non-control UTF-8 as
/// they are, a backslash doubled, and everything else (control characters, DEL,
/// invalid UTF-8) as `\xNN`, so the result is one line of harmless characters.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// A path (or any OS string) escaped as [`escape_bytes`] does.
pub fn escape_path(p: &std::path::Path) -> String {
    escape_bytes(p.as_os_str().as_encoded_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_bytes(b"/tmp/a b"), "/tmp/a b");
        assert_eq!(
            escape_bytes(b"x\x1b[2J\nOK fake\r\x7f\\"),
            "x\\x1b[2J\\x0aOK fake\\x0d\\x7f\\\\"
        );
        assert_eq!(escape_bytes("é\u{85}".as_bytes()), "é\\xc2\\x85");
        assert_eq!(escape_bytes(b"\xff/a"), "\\xff/a");
    }

    #[test]
    fn writes_to_a_broken_pipe_do_not_panic() {
        let (r, w) = std::os::unix::net::UnixStream::pair().unwrap();
        drop(r);
        let mut w = w;
        assert!(write_all_quiet(&mut w, b"gone\n").is_err());
    }
}
