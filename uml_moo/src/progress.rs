//! A progress bar on stderr, shown only when stderr is a terminal and not asked to be
//! quiet, laid out to fit the terminal's width so a redraw never wraps.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress(Option<ProgressBar>);

/// The line's layout for a terminal `width` columns wide: the bar (indicatif's wide
/// element) takes what the other fields leave, and fields are dropped as the terminal
/// narrows. Each template's fixed fields take at most `width - 12` columns.
pub fn template(width: u16) -> &'static str {
    match width {
        // "merging in place" 16 + "1023.99 MiB/1023.99 GiB" 23 + "1023.99 MiB/s" 13
        // + "eta 59m" 7 + separators: about 66.
        80.. => "{msg} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        // 23 + percent 4 + eta 7 + separators: about 40.
        56..80 => "[{wide_bar}] {bytes}/{total_bytes} {percent}% {eta}",
        // percent and eta only: about 12.
        20..56 => "[{wide_bar}] {percent:>3}% {eta:>3}",
        _ => "{wide_bar}",
    }
}

/// The terminal's width in columns (80 when it cannot be told).
fn terminal_width() -> u16 {
    console::Term::stderr()
        .size_checked()
        .map_or(80, |(_rows, cols)| cols)
}

impl Progress {
    /// A bar over `total` bytes, or nothing when `wanted` is false or stderr is no terminal.
    pub fn new(wanted: bool, total: u64, label: &'static str) -> Progress {
        if !wanted || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(template(terminal_width())) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label);
        Progress(Some(bar))
    }

    pub fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(bytes);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for w in [10, 20, 40, 56, 79, 80, 200] {
            assert!(ProgressStyle::with_template(template(w)).is_ok(), "{w}");
        }
    }
}
