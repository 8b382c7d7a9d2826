//! `helm template` of a chart vendored in the repository: every dependency must be in the
//! chart's `charts/` or a `file://` path inside the repository (copied into a private copy of
//! the chart before helm runs); a repository URL or OCI reference is refused, naming Chart.yaml.
//! Hooks are rendered as plain objects (nothing runs them at install time) and test hooks are
//! left out; CRDs in the chart's `crds/` are not rendered (a team's account cannot write them).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::paths::{is_remote, normalise};
use crate::sandbox::{Invocation, run};
use crate::{Limits, RenderError};

/// What the target cluster serves, for `.Capabilities`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The API server's version, such as `v1.37.2`.
    pub kube_version: String,
    /// Served group/versions and group/version/kinds, such as `apps/v1` and `apps/v1/Deployment`.
    pub api_versions: Vec<String>,
}

/// One chart to render, as the factory sets it up.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// The chart's directory, relative to the repository root.
    pub path: String,
    /// Values files relative to the repository root, later ones winning.
    pub values_files: Vec<String>,
    /// Inline values over the files.
    pub values: Option<serde_json::Value>,
    /// The release name.
    pub release: String,
    /// The namespace it is rendered for.
    pub namespace: String,
    /// The target cluster's version and APIs.
    pub capabilities: Capabilities,
}

/// A `file://` dependency to copy into the chart's `charts/`.
struct Vendored {
    name: String,
    from: PathBuf,
}

/// Checks the chart's dependencies; returns the `file://` ones to vendor.
fn check(root: &Path, chart: &Path) -> Result<Vec<Vendored>, RenderError> {
    let file = chart.join("Chart.yaml");
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(root.join(&file)).map_err(|_| RenderError::Input {
        file: shown.clone(),
        why: "missing: the chart path must hold a Chart.yaml".into(),
    })?;
    let doc: Value = serde_yaml::from_str(&text)
        .map_err(|e| RenderError::Input { file: shown.clone(), why: format!("invalid YAML: {e}") })?;
    let mut vendored = Vec::new();
    for dep in doc.get("dependencies").and_then(Value::as_sequence).into_iter().flatten() {
        let name = dep.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        let repository = dep.get("repository").and_then(Value::as_str).unwrap_or("").trim();
        if repository.is_empty() {
            continue; // Must already be in charts/; helm says so if it is not.
        }
        let Some(local) = repository.strip_prefix("file://") else {
            let entry = format!("dependency {name} from {repository}");
            return Err(RenderError::Remote { file: shown, entry });
        };
        if is_remote(local) {
            return Err(RenderError::Remote { file: shown, entry: format!("dependency {name} from {repository}") });
        }
        let from = normalise(&chart.join(local)).ok_or_else(|| RenderError::Escapes {
            file: shown.clone(),
            entry: format!("dependency {name} from {repository}"),
        })?;
        if !root.join(&from).join("Chart.yaml").is_file() {
            return Err(RenderError::Input {
                file: shown,
                why: format!("dependency {name}: {} holds no Chart.yaml", from.display()),
            });
        }
        vendored.push(Vendored { name, from });
    }
    Ok(vendored)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Renders `chart` from the tree at `root`, working in the empty directory `work`.
pub(crate) fn template(
    binary: &Path,
    root: &Path,
    chart: &Chart,
    work: &Path,
    limits: &Limits,
) -> Result<String, RenderError> {
    let chart_dir = normalise(Path::new(&chart.path))
        .ok_or_else(|| RenderError::Escapes { file: "spec.helm.chart".into(), entry: chart.path.clone() })?;
    let vendored = check(root, &chart_dir)?;
    let tree_err = |e: std::io::Error| RenderError::Tree { path: work.display().to_string(), why: e.to_string() };
    let copy = work.join("chart");
    copy_dir(&root.join(&chart_dir), &copy).map_err(tree_err)?;
    for dep in &vendored {
        let target = copy.join("charts").join(&dep.name);
        if !target.exists() {
            copy_dir(&root.join(&dep.from), &target).map_err(tree_err)?;
        }
    }
    let mut args: Vec<OsString> = vec!["template".into(), chart.release.clone().into(), copy.into_os_string()];
    args.extend(["--namespace".into(), chart.namespace.clone().into(), "--skip-tests".into()]);
    if !chart.capabilities.kube_version.is_empty() {
        args.extend(["--kube-version".into(), chart.capabilities.kube_version.clone().into()]);
    }
    for api in &chart.capabilities.api_versions {
        args.extend(["--api-versions".into(), api.into()]);
    }
    for file in &chart.values_files {
        let path = normalise(Path::new(file))
            .ok_or_else(|| RenderError::Escapes { file: chart.path.clone(), entry: file.clone() })?;
        args.extend(["--values".into(), root.join(path).into_os_string()]);
    }
    if let Some(values) = &chart.values {
        let inline = work.join("inline-values.yaml");
        std::fs::write(&inline, values.to_string()).map_err(tree_err)?;
        args.extend(["--values".into(), inline.into_os_string()]);
    }
    let home = work.join("home");
    std::fs::create_dir_all(&home).map_err(tree_err)?;
    let what = format!("chart {}", chart.path);
    run(Invocation { tool: "helm", binary, args, cwd: root, home: &home, what: &what }, limits)
}
