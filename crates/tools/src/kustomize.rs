//! `kustomize build` of one directory, after reading every kustomization it reaches: a remote
//! base or resource, a path leaving the repository, a plugin that runs a program or a Helm
//! chart inflated by kustomize is refused, naming the file, before kustomize runs. kustomize
//! itself runs with its load restrictor on and without plugins, exec or helm.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::RenderError;
use crate::paths::{is_remote, normalise};

/// The names kustomize looks for in a directory, in its order.
pub const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Fields holding paths to other kustomizations or resource files.
const RESOURCE_FIELDS: [&str; 3] = ["resources", "bases", "components"];
/// Fields holding paths to files.
const FILE_FIELDS: [&str; 3] = ["crds", "configurations", "patchesStrategicMerge"];
/// Fields whose entries configure plugins.
const PLUGIN_FIELDS: [&str; 3] = ["generators", "transformers", "validators"];
/// Lists of maps whose `path` names a file.
const PATH_LISTS: [&str; 3] = ["patches", "patchesJson6902", "replacements"];

/// The kustomization file in `dir` of `root`, if any (its name relative to `root`).
pub fn kustomization_in(root: &Path, dir: &Path) -> Option<PathBuf> {
    KUSTOMIZATION_FILES.iter().map(|name| dir.join(name)).find(|p| root.join(p).is_file())
}

/// Checks every kustomization reached from `dir` (relative to the tree `root`).
pub(crate) fn check(root: &Path, dir: &Path) -> Result<(), RenderError> {
    let mut queue = VecDeque::from([dir.to_path_buf()]);
    let mut seen = BTreeSet::new();
    while let Some(dir) = queue.pop_front() {
        if !seen.insert(dir.clone()) {
            continue;
        }
        let Some(file) = kustomization_in(root, &dir) else { continue };
        let shown = file.display().to_string();
        let text = std::fs::read_to_string(root.join(&file))
            .map_err(|e| RenderError::Input { file: shown.clone(), why: e.to_string() })?;
        let doc: Value = serde_yaml::from_str(&text)
            .map_err(|e| RenderError::Input { file: shown.clone(), why: format!("invalid YAML: {e}") })?;
        let checker = Checker { root, dir: &dir, file: &shown };
        for key in ["helmCharts", "helmGlobals", "helmChartInflationGenerator"] {
            if doc.get(key).is_some() {
                return Err(RenderError::Plugin {
                    file: shown,
                    what: format!(
                        "`{key}` (a chart inflated by kustomize; name the chart in the application's `helm` instead)"
                    ),
                });
            }
        }
        for key in RESOURCE_FIELDS {
            for entry in strings(doc.get(key)) {
                let path = checker.path(entry)?;
                if root.join(&path).is_dir() {
                    queue.push_back(path);
                }
            }
        }
        for key in FILE_FIELDS {
            // An entry with a newline is an inline patch, not a path.
            for entry in strings(doc.get(key)).filter(|e| !e.contains('\n')) {
                checker.path(entry)?;
            }
        }
        for key in PATH_LISTS {
            for item in sequence(doc.get(key)) {
                if let Some(entry) = item.get("path").and_then(Value::as_str) {
                    checker.path(entry)?;
                }
            }
        }
        if let Some(entry) = doc.get("openapi").and_then(|o| o.get("path")).and_then(Value::as_str) {
            checker.path(entry)?;
        }
        for key in ["configMapGenerator", "secretGenerator"] {
            for item in sequence(doc.get(key)) {
                let files = strings(item.get("files")).map(|f| f.rsplit_once('=').map_or(f, |(_, p)| p));
                for entry in files.chain(strings(item.get("envs"))).chain(item.get("env").and_then(Value::as_str)) {
                    checker.path(entry)?;
                }
            }
        }
        for key in PLUGIN_FIELDS {
            for entry in strings(doc.get(key)) {
                if entry.contains('\n') {
                    checker.plugins(entry, &shown)?;
                    continue;
                }
                let path = checker.path(entry)?;
                let full = root.join(&path);
                if full.is_dir() {
                    queue.push_back(path);
                } else {
                    let text = std::fs::read_to_string(&full)
                        .map_err(|e| RenderError::Input { file: path.display().to_string(), why: e.to_string() })?;
                    checker.plugins(&text, &path.display().to_string())?;
                }
            }
        }
    }
    Ok(())
}

struct Checker<'a> {
    root: &'a Path,
    dir: &'a Path,
    file: &'a str,
}

impl Checker<'_> {
    /// `entry` resolved against the kustomization's directory, inside the repository.
    fn path(&self, entry: &str) -> Result<PathBuf, RenderError> {
        if is_remote(entry) {
            return Err(RenderError::Remote { file: self.file.to_string(), entry: entry.to_string() });
        }
        let resolved = normalise(&self.dir.join(entry))
            .ok_or_else(|| RenderError::Escapes { file: self.file.to_string(), entry: entry.to_string() })?;
        debug_assert!(self.root.join(&resolved).starts_with(self.root));
        Ok(resolved)
    }

    /// Refuses a plugin configuration that is not one of kustomize's built-ins.
    fn plugins(&self, text: &str, file: &str) -> Result<(), RenderError> {
        for doc in serde_yaml::Deserializer::from_str(text) {
            let Ok(value) = <Value as serde::Deserialize>::deserialize(doc) else { continue };
            let function = ["config.kubernetes.io/function", "config.k8s.io/function"]
                .iter()
                .any(|a| value.get("metadata").and_then(|m| m.get("annotations")).and_then(|m| m.get(*a)).is_some());
            let api = value.get("apiVersion").and_then(Value::as_str).unwrap_or("");
            let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
            if function || (api != "builtin" && !api.is_empty()) {
                return Err(RenderError::Plugin { file: file.to_string(), what: format!("plugin {api} {kind}") });
            }
        }
        Ok(())
    }
}

fn sequence(value: Option<&Value>) -> impl Iterator<Item = &Value> {
    value.and_then(Value::as_sequence).into_iter().flatten()
}

fn strings(value: Option<&Value>) -> impl Iterator<Item = &str> {
    sequence(value).filter_map(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(full, text).expect("write");
        }
        dir
    }

    fn checked(kustomization: &str) -> Result<(), RenderError> {
        let base = "resources: [cm.yaml]\n";
        let dir = tree(&[("app/prod/kustomization.yaml", kustomization), ("app/base/kustomization.yaml", base)]);
        check(dir.path(), Path::new("app/prod"))
    }

    #[test]
    fn every_way_out_is_refused_naming_the_file() {
        assert_eq!(checked("resources: [../base]\npatches: [{path: p.yaml}]\n"), Ok(()));
        let remote = checked("resources: [github.com/org/repo//base?ref=v1]\n");
        assert!(matches!(&remote, Err(RenderError::Remote { file, .. }) if file == "app/prod/kustomization.yaml"));
        assert!(matches!(checked("resources: [../../../etc]\n"), Err(RenderError::Escapes { .. })));
        assert!(matches!(checked("patches: [{path: ../../../p.yaml}]\n"), Err(RenderError::Escapes { .. })));
        let generator = "configMapGenerator: [{name: c, files: [key=../../../../etc/passwd]}]\n";
        assert!(matches!(checked(generator), Err(RenderError::Escapes { .. })));
        assert!(matches!(checked("helmCharts: [{name: redis}]\n"), Err(RenderError::Plugin { .. })));
        let function = "transformers:\n- |\n  apiVersion: x/v1\n  kind: T\n  metadata: {name: t}\n";
        assert!(matches!(checked(function), Err(RenderError::Plugin { .. })));
        let builtin = "transformers:\n- |\n  apiVersion: builtin\n  kind: LabelTransformer\n  metadata: {name: t}\n";
        assert_eq!(checked(builtin), Ok(()));
        // A base reached through another base is read too.
        let dir = tree(&[
            ("a/kustomization.yaml", "resources: [../b]\n"),
            ("b/kustomization.yaml", "resources: [https://example.com/x.yaml]\n"),
        ]);
        assert!(
            matches!(check(dir.path(), Path::new("a")), Err(RenderError::Remote { file, .. }) if file == "b/kustomization.yaml")
        );
    }
}
