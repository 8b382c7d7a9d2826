//! Integration tests live in the test targets of this package (see `smoke/`); this library
//! holds what they share: the YAML fixtures under `testdata/`.

use std::path::{Path, PathBuf};

/// The folder of the fixtures: `tests/testdata/`.
pub fn testdata_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// The fixture at `testdata/<path>` with every `{{name}}` replaced by its value in `vars`.
///
/// Panics, naming the file, when it is missing, when a placeholder has no value, or when a value
/// is given that the file never uses: a fixture and its test cannot drift apart silently.
pub fn testdata(path: &str, vars: &[(&str, &str)]) -> String {
    let file = testdata_dir().join(path);
    let (text, used) = fill(&file, vars);
    if let Some((name, _)) = vars.iter().zip(&used).find(|(_, used)| !**used).map(|(v, _)| v) {
        panic!("fixture {} never uses {{{{{name}}}}}", file.display());
    }
    text
}

/// Every file under `testdata/<dir>`, as a repository's content: paths relative to `dir`.
pub struct Tree(Vec<(String, String)>);

impl Tree {
    /// The files as (path, content) pairs, sorted by path.
    pub fn files(&self) -> Vec<(&str, &str)> {
        self.0.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect()
    }
}

/// Every file under `testdata/<dir>` with `vars` filled in as [`testdata`] does; a value must be
/// used by at least one of them.
pub fn testdata_tree(dir: &str, vars: &[(&str, &str)]) -> Tree {
    let root = testdata_dir().join(dir);
    let mut paths = Vec::new();
    walk(&root, &mut paths);
    paths.sort();
    assert!(!paths.is_empty(), "fixture tree {} is empty or missing", root.display());
    let mut used_any = vec![false; vars.len()];
    let mut files = Vec::new();
    for path in paths {
        let (text, used) = fill(&path, vars);
        used_any.iter_mut().zip(used).for_each(|(any, used)| *any |= used);
        let relative = path.strip_prefix(&root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
        files.push((relative, text));
    }
    if let Some(((name, _), _)) = vars.iter().zip(&used_any).find(|(_, used)| !**used) {
        panic!("fixture tree {} never uses {{{{{name}}}}}", root.display());
    }
    Tree(files)
}

/// Every file under `testdata/<dir>` as it is, `{{` included (charts and their templates).
pub fn testdata_raw_tree(dir: &str) -> Tree {
    let root = testdata_dir().join(dir);
    let mut paths = Vec::new();
    walk(&root, &mut paths);
    paths.sort();
    assert!(!paths.is_empty(), "fixture tree {} is empty or missing", root.display());
    let files = paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
            let relative = path.strip_prefix(&root).unwrap_or(path).to_string_lossy().replace('\\', "/");
            (relative, text)
        })
        .collect();
    Tree(files)
}

/// The fixture at `testdata/<path>` as it is, `{{` included.
pub fn testdata_raw(path: &str) -> String {
    let file = testdata_dir().join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("fixture {}: {e}", file.display()))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("fixture tree {}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() { walk(&path, out) } else { out.push(path) }
    }
}

/// The file's text with `vars` filled in, and which of them it used; panics on a placeholder
/// left without a value.
fn fill(file: &Path, vars: &[(&str, &str)]) -> (String, Vec<bool>) {
    let mut text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("fixture {}: {e}", file.display()));
    let mut used = Vec::with_capacity(vars.len());
    for (name, value) in vars {
        let placeholder = format!("{{{{{name}}}}}");
        used.push(text.contains(&placeholder));
        text = text.replace(&placeholder, value);
    }
    if let Some(at) = text.find("{{") {
        let rest = &text[at..];
        let end = rest.find("}}").map_or(rest.len(), |e| e + 2);
        panic!("fixture {}: no value given for {}", file.display(), &rest[..end]);
    }
    (text, used)
}

/// One file of many objects: the namespace `<prefix>-bulk` and a ConfigMap `cm-NNNN` in it
/// for each number in `range` (`bulk/` fixtures), for tests of large revisions.
pub fn bulk_config_maps(prefix: &str, range: std::ops::Range<usize>) -> String {
    let mut out = testdata("bulk/namespace.yaml", &[("prefix", prefix)]);
    for i in range {
        let (index, number) = (format!("{i:04}"), i.to_string());
        out.push_str(&testdata("bulk/configmap.yaml", &[("index", &index), ("prefix", prefix), ("i", &number)]));
    }
    out
}

/// The name of the function it stands in: a test names its context after itself, once.
#[macro_export]
macro_rules! test_name {
    () => {{
        fn here() {}
        $crate::enclosing(std::any::type_name_of_val(&here))
    }};
}

/// The function a `here` marker stands in, from its type's path: the last segment that is
/// neither the marker nor an async body (`{{closure}}`).
pub fn enclosing(path: &'static str) -> &'static str {
    path.rsplit("::").find(|s| *s != "here" && *s != "{{closure}}").unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_knows_its_own_name() {
        assert_eq!(test_name!(), "a_test_knows_its_own_name");
    }

    #[tokio::test]
    async fn an_async_test_knows_its_own_name() {
        let nested = async { test_name!() }.await;
        assert_eq!((test_name!(), nested), ("an_async_test_knows_its_own_name", "an_async_test_knows_its_own_name"));
    }

    #[test]
    fn placeholders_are_replaced_and_checked() {
        let text = testdata("loader-selftest.yaml", &[("prefix", "t1")]);
        assert!(text.ends_with("name: t1-a\nother: t1\n"), "{text}");
        assert!(std::panic::catch_unwind(|| testdata("loader-selftest.yaml", &[])).is_err(), "a missing value");
        let unused = std::panic::catch_unwind(|| testdata("loader-selftest.yaml", &[("prefix", "x"), ("nope", "y")]));
        assert!(unused.is_err(), "an unused value");
        assert!(std::panic::catch_unwind(|| testdata("no-such-file.yaml", &[])).is_err(), "a missing file");
    }
}
