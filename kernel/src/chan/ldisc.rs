//! The tty line discipline of the consoles and serial lines: collects typed bytes into
//! lines on a raw terminal (echo, backspace, Ctrl-U, Ctrl-C) and holds the prompt the
//! guest shows, so devices and the shell share it without importing each other.

pub const PROMPT: &str = "# ";

/// Collects typed bytes into lines.
#[derive(Debug, Default)]
pub struct LineEditor {
    buf: Vec<u8>,
    last_cr: bool,
    /// Echo typed characters back (the input is a terminal).
    pub echo: bool,
}

/// What a chunk of input produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Edited {
    pub lines: Vec<String>,
    /// Bytes to write back (echo, erasures, `^C`).
    pub echo: Vec<u8>,
    /// Ctrl-C: the current line was dropped; show a fresh prompt.
    pub interrupted: bool,
}

impl LineEditor {
    pub fn new(echo: bool) -> LineEditor {
        LineEditor {
            echo,
            ..Default::default()
        }
    }

    pub fn feed(&mut self, input: &[u8]) -> Edited {
        let mut out = Edited::default();
        for &b in input {
            let after_cr = std::mem::replace(&mut self.last_cr, b == b'\r');
            match b {
                b'\n' if after_cr => {}
                b'\r' | b'\n' => {
                    if self.echo {
                        out.echo.extend_from_slice(b"\n");
                    }
                    out.lines
                        .push(String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned());
                }
                0x7f | 0x08 if self.buf.pop().is_some() && self.echo => {
                    out.echo.extend_from_slice(b"\x08 \x08");
                }
                0x7f | 0x08 => {}
                0x15 => {
                    if self.echo {
                        for _ in 0..self.buf.len() {
                            out.echo.extend_from_slice(b"\x08 \x08");
                        }
                    }
                    self.buf.clear();
                }
                0x03 => {
                    self.buf.clear();
                    out.echo.extend_from_slice(b"^C\n");
                    out.interrupted = true;
                }
                0x20..=0x7e | 0x09 | 0x80..=0xff => {
                    self.buf.push(b);
                    if self.echo {
                        out.echo.push(b);
                    }
                }
                _ => {}
            }
        }
        out
    }

    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_handles_raw_terminal_keys() {
        let mut e = LineEditor {
            echo: true,
            ..Default::default()
        };
        let r = e.feed(b"ecx\x7fho hi\r\n");
        assert_eq!(r.lines, vec!["echo hi"]);
        assert_eq!(r.echo, b"ecx\x08 \x08ho hi\n");
        let r = e.feed(b"junk\x03");
        assert!(r.interrupted && r.lines.is_empty());
        let r = e.feed(b"ab\x15cd\n");
        assert_eq!(r.lines, vec!["cd"]);
    }
}
