//! The kernel's module graph, read from its sources: every reference from one top-level
//! module to another (`use crate::x`, `crate::x::...` in code, `crate::{x, y}`, and
//! `super::` chains that climb to the crate root) is an edge. The graph must be acyclic
//! (the old machine -> net -> services -> shell -> machine cycle stays gone), and the
//! built-in shell must be a leaf that no module of the library imports (`main.rs`, the
//! binary, hands it to the kernel).
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a source file: `net/services.rs` -> [net, services],
/// `shell/mod.rs` -> [shell], `lib.rs` -> [].
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" && stem != "main" {
        parts.push(stem.to_owned());
    }
    parts
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules named right after `crate::` (or `crate::{a, b::c}`).
fn names_after_root(rest: &str, out: &mut BTreeSet<String>) {
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 0;
        let mut item_start = true;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => item_start = true,
                c if c.is_whitespace() => {}
                _ if item_start && depth == 0 => {
                    item_start = false;
                    let id = ident_at(&group[i..]);
                    if !id.is_empty() && id != "self" {
                        out.insert(id.to_owned());
                    }
                }
                _ => {}
            }
        }
    } else {
        let id = ident_at(rest);
        if !id.is_empty() {
            out.insert(id.to_owned());
        }
    }
}

/// The top-level modules that `code` (of a file at `path`) refers to.
fn references(code: &str, path: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            let before = rest[..i].chars().last();
            let after = &rest[i + "crate::".len()..];
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                names_after_root(after, &mut out);
            }
            rest = after;
        }
        let mut rest = line;
        while let Some(i) = rest.find("super::") {
            let before = rest[..i].chars().last();
            let mut after = &rest[i..];
            let mut climbs = 0;
            while let Some(a) = after.strip_prefix("super::") {
                climbs += 1;
                after = a;
            }
            let word_start = !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            // A file at depth d reaches the crate root after d climbs.
            if word_start && climbs >= path.len() {
                names_after_root(after, &mut out);
            }
            rest = after;
        }
    }
    out
}

/// The graph of top-level library modules (main.rs, the binary, is not one).
fn kernel_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut tops = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        if let Some(first) = module_path(rel).first() {
            tops.insert(first.clone());
        }
    }
    let mut g = Graph::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let path = module_path(rel);
        let Some(from) = path.first() else {
            continue; // lib.rs and main.rs declare, they do not belong to a module
        };
        let code = std::fs::read_to_string(f).unwrap();
        let node = g.entry(from.clone()).or_default();
        for to in references(&code, &path) {
            if tops.contains(&to) && &to != from {
                node.insert(to);
            }
        }
    }
    g
}

/// A cycle in `g`, if there is one, as the list of modules around it.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        n: &str,
        g: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(n.to_owned(), Mark::Open);
        stack.push(n.to_owned());
        for m in g.get(n).into_iter().flatten() {
            match marks.get(m.as_str()).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let at = stack.iter().position(|s| s == m).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(m, g, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(n.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for n in g.keys() {
        if marks.get(n.as_str()).copied().unwrap_or(Mark::New) == Mark::New {
            if let Some(c) = visit(n, g, &mut marks, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn show(g: &Graph) -> String {
    g.iter()
        .map(|(k, v)| {
            format!(
                "{k} -> {}",
                v.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_kernel_module_graph_is_acyclic() {
    let g = kernel_graph();
    // The parse sees the edges we know are there.
    for (from, to) in [
        ("kernel", "mconsole"),
        ("machine", "net"),
        ("shell", "machine"),
    ] {
        assert!(
            g.get(from).is_some_and(|s| s.contains(to)),
            "missing {from} -> {to}:\n{}",
            show(&g)
        );
    }
    if let Some(c) = find_cycle(&g) {
        panic!("import cycle {}\n{}", c.join(" -> "), show(&g));
    }
}

#[test]
fn nothing_in_the_kernel_imports_the_shell() {
    let g = kernel_graph();
    assert!(g.contains_key("shell"), "{}", show(&g));
    let users: Vec<&String> = g
        .iter()
        .filter(|(_, to)| to.contains("shell"))
        .map(|(from, _)| from)
        .collect();
    assert!(users.is_empty(), "the shell is imported by {users:?}");
}

#[test]
fn the_checker_sees_cycles_and_every_form_of_reference() {
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default();
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&g).unwrap(),
        vec!["a".to_string(), "b".into(), "c".into(), "a".into()]
    );
    let code = "use crate::{machine::{self, Machine}, net};\n\
                let x = crate::proc::read(); // crate::ignored\n\
                use super::super::block::SECTOR;\n\
                use super::sibling;\n\
                notcrate::x;";
    let refs = references(code, &["shell".into(), "net".into()]);
    let want: BTreeSet<String> = ["block", "machine", "net", "proc"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(refs, want);
}
