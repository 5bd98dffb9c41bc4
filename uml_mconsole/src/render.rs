//! Turning an outcome into output: `OK text` / `ERR text` lines byte for byte as the C
//! client prints them, or one JSON object per command for scripts. On a terminal the
//! kernel's text has its control characters shown as `\xNN`: a guest (or whoever
//! runs the UML) must not get to send escape sequences to the user's terminal.

use std::io::{self, IsTerminal, Write};

use crate::session::{Outcome, Piece};

/// The C client's rendering: each answer as `OK <text>\n` or `ERR <text>\n` (the
/// space kept when the text is empty), local text as is.
pub fn text(outcome: &Outcome) -> Vec<u8> {
    let mut out = Vec::new();
    for p in &outcome.pieces {
        match p {
            Piece::Reply(r) => {
                out.extend_from_slice(if r.ok() { b"OK " } else { b"ERR " });
                out.extend_from_slice(&r.text);
                out.push(b'\n');
            }
            Piece::Plain(s) => out.extend_from_slice(s.as_bytes()),
        }
    }
    out
}

/// `text` with its control characters shown as escapes: `\n`, `\r` and `\t` by
/// name, the rest (C0, DEL, C1, ESC) as `\xNN`. With `keep_layout`, newline and tab
/// stay as they are.
pub fn escape(text: &str, keep_layout: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\t' if keep_layout => out.push(c),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// The kernel's text made safe for a terminal ([`escape`] keeping newlines and tabs;
/// invalid UTF-8 as U+FFFD).
pub fn escape_controls(text: &[u8]) -> Vec<u8> {
    escape(&String::from_utf8_lossy(text), true).into_bytes()
}

/// [`text`] for a terminal: the kernel's answers with [`escape_controls`].
pub fn text_for_terminal(outcome: &Outcome) -> Vec<u8> {
    let mut out = Vec::new();
    for p in &outcome.pieces {
        match p {
            Piece::Reply(r) => {
                out.extend_from_slice(if r.ok() { b"OK " } else { b"ERR " });
                out.extend_from_slice(&escape_controls(&r.text));
                out.push(b'\n');
            }
            Piece::Plain(s) => out.extend_from_slice(s.as_bytes()),
        }
    }
    out
}

/// `{"ok":true,"output":"..."}` on one line; `"error"` added when something failed
/// locally, `"err"` (the kernel's error value) when the kernel said ERR.
pub fn json(outcome: &Outcome) -> String {
    let mut output = Vec::new();
    let mut err = 0;
    for p in &outcome.pieces {
        match p {
            Piece::Reply(r) => {
                output.extend_from_slice(&r.text);
                if err == 0 {
                    err = r.err;
                }
            }
            Piece::Plain(s) => output.extend_from_slice(s.as_bytes()),
        }
    }
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    let mut line = format!(
        "{{\"ok\":{},\"output\":{}",
        outcome.ok(),
        quote(&String::from_utf8_lossy(&output))
    );
    if err != 0 {
        line.push_str(&format!(",\"err\":{err}"));
    }
    if let Some(e) = &outcome.error {
        line.push_str(&format!(",\"error\":{}", quote(e)));
    }
    line.push('}');
    line
}

/// Prints an outcome: the output on stdout (escaped on a terminal), an error as
/// `uml_mconsole: ...` on stderr (a failed write there is ignored).
pub fn print(outcome: &Outcome, as_json: bool) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    if as_json {
        if !outcome.quit || !outcome.pieces.is_empty() {
            writeln!(stdout, "{}", json(outcome))?;
        }
    } else if stdout.is_terminal() {
        stdout.write_all(&text_for_terminal(outcome))?;
    } else {
        stdout.write_all(&text(outcome))?;
    }
    stdout.flush()?;
    if let Some(e) = &outcome.error {
        if !as_json {
            let _ = writeln!(io::stderr(), "uml_mconsole: {e}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uml_proto::mconsole::Response;

    fn reply(err: i32, text: &str) -> Piece {
        Piece::Reply(Response {
            err,
            text: text.as_bytes().to_vec(),
            packets: 1,
        })
    }

    #[test]
    fn text_matches_the_c_client() {
        let o = Outcome {
            pieces: vec![
                reply(0, ""),
                reply(0, "stopped"),
                reply(-19, "Device doesn't exist"),
            ],
            ..Outcome::default()
        };
        assert_eq!(
            text(&o),
            b"OK \nOK stopped\nERR Device doesn't exist\n".to_vec()
        );
        assert!(!o.ok());
    }

    #[test]
    fn a_terminal_sees_control_characters_escaped() {
        let o = Outcome {
            pieces: vec![reply(
                0,
                "The UML was halted\x1b]0;pwned\x07\x1b[2J\r\u{9b}x\n\tok",
            )],
            ..Outcome::default()
        };
        let shown = String::from_utf8(text_for_terminal(&o)).unwrap();
        assert_eq!(
            shown,
            "OK The UML was halted\\x1b]0;pwned\\x07\\x1b[2J\\r\\x9bx\n\tok\n"
        );
        assert!(!shown.bytes().any(|b| b == 0x1b || b == b'\r'));
        // Scripts (not a terminal) get the bytes as they came.
        assert!(text(&o).contains(&0x1b));
    }

    #[test]
    fn json_is_one_line() {
        let o = Outcome {
            pieces: vec![reply(0, "Linux (none) 6.1\n\"x\"")],
            ..Outcome::default()
        };
        assert_eq!(
            json(&o),
            r#"{"ok":true,"output":"Linux (none) 6.1\n\"x\""}"#
        );
        let e = Outcome {
            pieces: vec![reply(1, "Unknown command")],
            ..Outcome::default()
        };
        assert_eq!(
            json(&e),
            r#"{"ok":false,"output":"Unknown command","err":1}"#
        );
    }
}
