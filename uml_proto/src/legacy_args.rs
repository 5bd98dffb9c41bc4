//! The C tools' single-dash long options (`-unix`, `-hub`, `-pid`...), spelled the GNU
//! way (`--unix`) so one argument parser reads both spellings.

use std::ffi::OsString;

/// `args` with every word in `legacy` after the program name given a second dash;
/// values and everything else stay as they are.
pub fn gnu_spelling(args: impl Iterator<Item = OsString>, legacy: &[&str]) -> Vec<OsString> {
    args.enumerate()
        .map(|(i, a)| match a.to_str() {
            Some(s) if i > 0 && legacy.contains(&s) => OsString::from(format!("-{s}")),
            _ => a,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_words_after_the_program_name_change() {
        let args = ["-hub", "-hub", "-tap", "-x", "--unix", "-unix"].map(OsString::from);
        let got = gnu_spelling(args.into_iter(), &["-hub", "-unix"]);
        assert_eq!(
            got,
            ["-hub", "--hub", "-tap", "-x", "--unix", "--unix"].map(OsString::from)
        );
    }
}
