//! The shape of the code (docs/architecture.md, "Layers"): crates by layer that depend
//! only downward, no circle between the top-level modules of any crate, Lambda functions
//! that link neither SQLite nor the local server nor SMTP, and nothing that points at a
//! file outside the repository.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The library crates, lowest first, and the crates each may depend on.
const LAYERS: [(&str, &[&str]); 5] = [
    ("okr-core", &[]),
    ("okr-pipeline", &["okr-core"]),
    ("okr-consumers", &["okr-core", "okr-pipeline"]),
    ("okr-aws", &["okr-core", "okr-pipeline", "okr-consumers"]),
    ("okr-local", &["okr-core", "okr-pipeline", "okr-consumers"]),
];

/// The Lambda functions.
const FUNCTIONS: [&str; 8] = [
    "ingest",
    "warehouse-sink",
    "slack-notifier",
    "progress-alerts",
    "progress-projection",
    "email-summaries",
    "stalled-check",
    "people-snapshot",
];

/// What `cargo ARGS` prints, run in the repository; it must succeed.
fn cargo(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The workspace's packages as `cargo metadata` reads their manifests: name, manifest
/// path, and the `okr-*` crates among its normal dependencies (renames and tables
/// included: cargo resolves them).
fn packages() -> Vec<(String, PathBuf, BTreeSet<String>)> {
    let output = cargo(&[
        "metadata",
        "--no-deps",
        "--offline",
        "--format-version",
        "1",
    ]);
    let metadata: serde_json::Value = serde_json::from_str(&output).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let depends = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .filter_map(|d| d["name"].as_str())
                .filter(|name| name.starts_with("okr-"))
                .map(str::to_owned)
                .collect();
            (
                package["name"].as_str().unwrap().to_owned(),
                PathBuf::from(package["manifest_path"].as_str().unwrap()),
                depends,
            )
        })
        .collect()
}

fn library_dir(name: &str) -> PathBuf {
    root().join("shared").join(name.trim_start_matches("okr-"))
}

#[test]
fn library_crates_depend_only_downward() {
    let packages = packages();
    let shared = root().join("shared").canonicalize().unwrap();
    let libraries: BTreeSet<&str> = packages
        .iter()
        .filter(|(_, manifest, _)| manifest.starts_with(&shared))
        .map(|(name, _, _)| name.as_str())
        .collect();
    let layered: BTreeSet<&str> = LAYERS.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        libraries, layered,
        "every crate under shared/ has its layer"
    );
    for (name, allowed) in LAYERS {
        let (_, _, depends) = packages.iter().find(|(n, _, _)| n == name).unwrap();
        let above: Vec<_> = depends
            .iter()
            .filter(|d| !allowed.contains(&d.as_str()))
            .collect();
        assert!(above.is_empty(), "{name} depends on {above:?}");
    }
    for function in FUNCTIONS {
        let (_, _, depends) = packages.iter().find(|(n, _, _)| n == function).unwrap();
        assert!(
            !depends.contains("okr-local"),
            "{function} depends on okr-local"
        );
        assert!(depends.contains("okr-aws"), "{function}: {depends:?}");
    }
}

#[test]
fn no_function_links_sqlite_the_local_server_or_smtp() {
    for function in FUNCTIONS {
        let tree = cargo(&[
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            function,
        ]);
        assert!(tree.lines().any(|l| l.starts_with("okr-aws ")), "{tree}");
        for banned in ["rusqlite", "libsqlite3-sys", "axum", "lettre"] {
            assert!(
                !tree.lines().any(|l| l.starts_with(&format!("{banned} "))),
                "{function} links {banned}"
            );
        }
    }
}

/// A source file's module path inside its crate: `a/b.rs` is `[a, b]`, `a/mod.rs`
/// is `[a]`, `lib.rs` and `main.rs` are `[]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().unwrap();
    match file.trim_end_matches(".rs") {
        "mod" => {}
        "lib" | "main" if parts.is_empty() => {}
        stem => parts.push(stem.to_owned()),
    }
    parts
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

fn identifier(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The index just past the item that starts at `from`: through its `;`, or through the
/// `}` that closes its first `{`, whichever comes first.
fn item_end(code: &str, from: usize) -> usize {
    let rest = &code[from..];
    let (Some(brace), semicolon) = (rest.find('{'), rest.find(';')) else {
        return rest.find(';').map_or(code.len(), |at| from + at + 1);
    };
    if semicolon.is_some_and(|at| at < brace) {
        return from + semicolon.unwrap() + 1;
    }
    let mut depth = 0;
    for (at, c) in rest[brace..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return from + brace + at + 1;
                }
            }
            _ => {}
        }
    }
    code.len()
}

/// `text` without comment lines and without the items marked `#[cfg(test)]`.
fn non_test_code(text: &str) -> String {
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .map(|line| format!("{line}\n"))
        .collect();
    let mut kept = String::new();
    let mut at = 0;
    while let Some(found) = code[at..].find("#[cfg(test)]") {
        let start = at + found;
        kept.push_str(&code[at..start]);
        at = item_end(&code, start + "#[cfg(test)]".len());
    }
    kept.push_str(&code[at..]);
    kept
}

/// The first name of each path a `use` names after a prefix: `x::Y` gives `x`, and a
/// group `{x::Y, z}` gives `x` and `z`.
fn first_names(rest: &str) -> Vec<String> {
    let Some(group) = rest.strip_prefix('{') else {
        return vec![identifier(rest).to_owned()];
    };
    let mut names = Vec::new();
    let mut depth = 0;
    let mut item_start = true;
    for (at, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => item_start = true,
            c if item_start && !c.is_whitespace() => {
                names.push(identifier(&group[at..]).to_owned());
                item_start = false;
            }
            _ => {}
        }
    }
    names
}

/// What the crate root re-exports (`pub use m::{A, B}` in lib.rs or main.rs): each name
/// and the module it comes from.
fn root_exports(src: &Path) -> BTreeMap<String, String> {
    let mut exports = BTreeMap::new();
    for root in ["lib.rs", "main.rs"] {
        let Ok(text) = std::fs::read_to_string(src.join(root)) else {
            continue;
        };
        let code = non_test_code(&text);
        for (at, _) in code.match_indices("pub use ") {
            let path = &code[at + "pub use ".len()..];
            let path = path.strip_prefix("crate::").unwrap_or(path);
            let module = identifier(path).to_owned();
            let end = path.find(';').unwrap_or(path.len());
            let last = path[..end]
                .rsplit(['{', ',', ':'])
                .flat_map(|part| part.split(" as "))
                .map(|part| part.trim().trim_end_matches('}').trim())
                .filter(|part| !part.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>();
            for name in last {
                exports.entry(name).or_insert_with(|| module.clone());
            }
        }
    }
    exports
}

/// The edges between the top-level modules of the crate whose sources are in `src`:
/// module -> the modules its code (tests and comments aside) names by `crate::x`,
/// `super::x` (also in `{...}` groups), or a name the crate root re-exports from `x`.
fn module_edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_path(f.strip_prefix(src).unwrap()).first().cloned())
        .collect();
    let exports = root_exports(src);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let path = module_path(file.strip_prefix(src).unwrap());
        let Some(top) = path.first() else { continue };
        let code = non_test_code(&std::fs::read_to_string(file).unwrap());
        let mut targets = Vec::new();
        for (at, _) in code.match_indices("crate::") {
            targets.extend(first_names(&code[at + "crate::".len()..]));
        }
        for (at, _) in code.match_indices("super::") {
            if code[..at].ends_with("super::") {
                continue;
            }
            let mut rest = &code[at..];
            let mut depth = 0;
            while let Some(next) = rest.strip_prefix("super::") {
                depth += 1;
                rest = next;
            }
            // `super` from module path [a, b] names [a]; at the crate root, a top module.
            if depth >= path.len() {
                targets.extend(first_names(rest));
            }
        }
        for target in targets {
            let module = match modules.contains(&target) {
                true => Some(target),
                false => exports.get(&target).cloned(),
            };
            if let Some(module) = module.filter(|m| m != top && modules.contains(m)) {
                edges.entry(top.clone()).or_default().insert(module);
            }
        }
    }
    edges
}

/// The circles in `edges`: each strongly connected set of two or more modules.
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(at) = stack.pop() {
            for next in edges.get(&at).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        edges.keys().map(|m| (m, reach(m))).collect();
    let mut found: Vec<BTreeSet<String>> = Vec::new();
    for (module, from) in &reached {
        if !from.contains(*module) || found.iter().any(|c| c.contains(*module)) {
            continue;
        }
        let circle = from
            .iter()
            .filter(|other| reached.get(other).is_some_and(|r| r.contains(*module)))
            .cloned()
            .collect();
        found.push(circle);
    }
    found
}

#[test]
fn no_circle_between_the_top_level_modules_of_any_crate() {
    let mut sources: Vec<PathBuf> = LAYERS
        .iter()
        .map(|(name, _)| library_dir(name).join("src"))
        .collect();
    sources.push(root().join("cli/src"));
    sources.extend(
        FUNCTIONS
            .iter()
            .map(|f| root().join("functions").join(f).join("src")),
    );
    let mut read = 0;
    for src in sources {
        let edges = module_edges(&src);
        read += edges.values().map(BTreeSet::len).sum::<usize>();
        let found = circles(&edges);
        assert!(found.is_empty(), "{}: circles {found:?}", src.display());
    }
    // The crates' modules do name each other (71 ties when this was written): a graph this small
    // would mean the reading broke, not that there is no circle.
    assert!(read > 50, "only {read} ties between modules were read");
}

#[test]
fn the_circle_check_finds_a_circle_through_crate_and_super_paths() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\npub mod c;\n").unwrap();
    std::fs::write(src.join("a/mod.rs"), "mod inner;\n").unwrap();
    std::fs::write(src.join("a/inner.rs"), "use super::super::b::B;\n").unwrap();
    std::fs::write(src.join("b.rs"), "use crate::c::C;\npub struct B;\n").unwrap();
    std::fs::write(
        src.join("c.rs"),
        "use crate::a;\npub struct C;\n#[cfg(test)]\nmod tests { use crate::b; }\n",
    )
    .unwrap();
    let found = circles(&module_edges(src));
    let expected: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
    assert_eq!(found, vec![expected.clone()]);
    // Without c's tie back to a, there is none (its test module does not count).
    std::fs::write(
        src.join("c.rs"),
        "//! Not tied: crate::a is named in a comment.\npub struct C;\n#[cfg(test)]\nmod t { use crate::a; }\n",
    )
    .unwrap();
    assert!(circles(&module_edges(src)).is_empty());
    // Each of these ties c back to a: in a `use` group, through a name the crate root
    // re-exports from a, after a test module.
    std::fs::write(
        src.join("lib.rs"),
        "pub mod a;\npub mod b;\npub mod c;\npub use a::{Thing, other::Other as Renamed};\n",
    )
    .unwrap();
    for tie in [
        "use crate::{b::B, a::Thing};\n",
        "use crate::Thing;\n",
        "fn f() -> crate::Renamed { todo!() }\n",
        "#[cfg(test)]\nmod t { use crate::b; }\nuse super::{a};\n",
    ] {
        std::fs::write(src.join("c.rs"), tie).unwrap();
        assert_eq!(circles(&module_edges(src)), vec![expected.clone()], "{tie}");
    }
}

/// The repository's files git knows, under `dirs`.
fn tracked(dirs: &[&str]) -> Vec<PathBuf> {
    let output = Command::new("git")
        .arg("ls-files")
        .args(dirs)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| root().join(l))
        .collect()
}

#[test]
fn nothing_points_at_a_file_outside_the_repository() {
    let mut outside = Vec::new();
    for file in tracked(&["."]) {
        let name = file.to_string_lossy();
        let Some(ext) = file.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        if !matches!(
            ext,
            "rs" | "md" | "toml" | "yaml" | "py" | "sh" | "js" | "html"
        ) || name.ends_with("tests/layers.rs")
        {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // Files outside the repository, and paths of the one-crate layout that are gone.
        let gone = [
            "shared/src/",
            "shared/tests/",
            "okr_webhooks::",
            "-p okr-webhooks ",
        ];
        for pointer in ["DESIGN.md", "STYLE.md", "../shared/", "seeds/"]
            .into_iter()
            .chain(gone)
        {
            if text.contains(pointer) {
                outside.push(format!("{name}: {pointer}"));
            }
        }
        if ext == "md" {
            // Every relative link names a file that is here.
            for (at, _) in text.match_indices("](") {
                let target = &text[at + 2..];
                let target = &target[..target.find(')').unwrap_or(0)];
                let path = target.split('#').next().unwrap();
                if path.is_empty() || path.contains("://") || path.starts_with("mailto:") {
                    continue;
                }
                if !file.parent().unwrap().join(path).exists() {
                    outside.push(format!("{name}: link to {target}"));
                }
            }
        }
    }
    assert!(outside.is_empty(), "{outside:#?}");
}
