//! meshproxy's modules depend on one another in one direction only: among the modules of any one
//! parent, no two reach each other through `use crate::...`, `use super::...` or a path in the code.
//! A circle means two modules that cannot be read, changed or tested apart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path below the crate root, e.g. `["proxy", "forward"]`.
type ModulePath = Vec<String>;

#[test]
fn no_module_reaches_back_to_one_that_reaches_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = rust_files(&src);
    let modules: BTreeSet<ModulePath> = files.iter().filter_map(|f| module_of(&src, f)).collect();
    // Per parent module: edges between its children, each with where it comes from.
    let mut edges: BTreeMap<ModulePath, BTreeMap<(String, String), String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = module_of(&src, file) else { continue };
        let text = std::fs::read_to_string(file).unwrap();
        // Unit tests may reach anywhere: they are not part of the dependency structure.
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
        for (line_number, line) in code.lines().enumerate() {
            let line = line.split("//").next().unwrap_or_default();
            for to in referenced_modules(&from, line, &modules) {
                let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
                let (Some(a), Some(b)) = (from.get(common), to.get(common)) else { continue };
                let place = format!("{}:{}", file.strip_prefix(&src).unwrap().display(), line_number + 1);
                edges.entry(from[..common].to_vec()).or_default().entry((a.clone(), b.clone())).or_insert(place);
            }
        }
    }
    let mut circles = Vec::new();
    for (parent, graph) in &edges {
        for ((a, b), place) in graph {
            if let Some(back) = path_between(graph, b, a) {
                circles.push(format!(
                    "in {}: {a} -> {b} ({place}), and back: {}",
                    if parent.is_empty() { "the crate".to_string() } else { parent.join("::") },
                    back.join(", ")
                ));
            }
        }
    }
    assert!(circles.is_empty(), "modules that reach each other:\n{}", circles.join("\n"));
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// `src/proxy/forward.rs` is `proxy::forward`; `src/proxy/mod.rs` is `proxy`; the binary's
/// `main.rs` and the `bin` folder are not modules of the library.
fn module_of(src: &Path, file: &Path) -> Option<ModulePath> {
    let relative = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.first().is_some_and(|p| p == "main.rs" || p == "bin") {
        return None;
    }
    let last = parts.pop()?.trim_end_matches(".rs").to_string();
    if last != "mod" && last != "lib" {
        parts.push(last);
    }
    Some(parts)
}

/// The modules a line names through `crate::` or `super::` paths, braces included.
fn referenced_modules(from: &ModulePath, line: &str, modules: &BTreeSet<ModulePath>) -> Vec<ModulePath> {
    let mut found = Vec::new();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", from[..from.len().saturating_sub(1)].to_vec())] {
        let mut rest = line;
        while let Some(at) = rest.find(prefix) {
            let preceded_by_ident = rest[..at].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_');
            rest = &rest[at + prefix.len()..];
            if preceded_by_ident {
                continue;
            }
            for path in expand(rest) {
                // The longest prefix of the path that is a module.
                let mut candidate = base.clone();
                let mut deepest = None;
                for segment in path {
                    candidate.push(segment);
                    if modules.contains(&candidate) {
                        deepest = Some(candidate.clone());
                    }
                }
                found.extend(deepest);
            }
        }
    }
    found
}

/// The paths written at the start of `text`: `a::b::C` or `a::{b::C, d}` (one level of braces).
fn expand(text: &str) -> Vec<Vec<String>> {
    let mut head = Vec::new();
    let mut rest = text;
    loop {
        let ident: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if ident.is_empty() {
            if let Some(inner) = rest.strip_prefix('{') {
                let inner = inner.split('}').next().unwrap_or_default();
                return inner
                    .split(',')
                    .map(|item| {
                        let mut path = head.clone();
                        path.extend(item.trim().split("::").map(|s| s.trim().to_string()).filter(|s| !s.is_empty()));
                        path
                    })
                    .collect();
            }
            return vec![head];
        }
        rest = &rest[ident.len()..];
        head.push(ident);
        match rest.strip_prefix("::") {
            Some(after) => rest = after,
            None => return vec![head],
        }
    }
}

/// A path of edges from `start` to `goal` in `graph`, if there is one.
fn path_between(graph: &BTreeMap<(String, String), String>, start: &str, goal: &str) -> Option<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![(start.to_string(), Vec::new())];
    while let Some((node, trail)) = stack.pop() {
        if node == goal {
            return Some(trail);
        }
        if !seen.insert(node.clone()) {
            continue;
        }
        for ((a, b), place) in graph {
            if *a == node {
                let mut next = trail.clone();
                next.push(format!("{a} -> {b} ({place})"));
                stack.push((b.clone(), next));
            }
        }
    }
    None
}
