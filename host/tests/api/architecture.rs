//! The shape of `host/src`: no import cycle between its top-level modules, nor between
//! the sibling modules inside one (a parent's own file aside, which declares them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module paths of every file under `dir` (`api/docs.rs` → `["api", "docs"]`,
/// `api/mod.rs` → `["api"]`), with the file's text.
fn modules(root: &Path, dir: &Path, out: &mut Vec<(Vec<String>, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            modules(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).unwrap().with_extension("");
            let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|p| p == "mod" || p == "lib" || p == "main") {
                parts.pop();
            }
            out.push((parts, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

/// The names that follow `prefix` in `text` (`crate::slot::X` → `slot`).
fn referenced<'a>(text: &'a str, prefix: &'a str) -> impl Iterator<Item = String> + 'a {
    text.match_indices(prefix).filter_map(move |(at, _)| {
        let rest = &text[at + prefix.len()..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        (!name.is_empty()).then_some(name)
    })
}

/// A cycle in `edges`, if there is one, as the nodes along it.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            return Some(path[start..].iter().cloned().chain([node.to_string()]).collect());
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, edges, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_of_the_host_depends_on_one_that_depends_on_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    modules(&root, &root, &mut files);
    let top: BTreeSet<String> = files.iter().filter_map(|(m, _)| m.first().cloned()).collect();

    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in &files {
        let Some(from) = module.first() else { continue };
        for to in referenced(text, "crate::").filter(|t| top.contains(t) && t != from) {
            edges.entry(from.clone()).or_default().insert(to);
        }
    }
    assert_eq!(cycle(&edges), None, "top-level modules depend on each other in a cycle: {edges:#?}");

    // Siblings: `super::x` from `a/b.rs` is an edge `b → x` inside `a`, and so is
    // `crate::a::x` from anywhere inside `a`.
    for parent in &top {
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let children: BTreeSet<String> = files
            .iter()
            .filter(|(m, _)| m.len() >= 2 && &m[0] == parent)
            .map(|(m, _)| m[1].clone())
            .collect();
        for (module, text) in files.iter().filter(|(m, _)| m.len() >= 2 && &m[0] == parent) {
            let from = &module[1];
            let from_parent =
                if module.len() == 2 { "super::".to_string() } else { "super::super::".to_string() };
            let absolute = format!("crate::{parent}::");
            let refs = referenced(text, &from_parent).chain(referenced(text, &absolute));
            for to in refs.filter(|t| children.contains(t) && t != from) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
        assert_eq!(
            cycle(&edges),
            None,
            "modules inside {parent} depend on each other in a cycle: {edges:#?}"
        );
    }
}
