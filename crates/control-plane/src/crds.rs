//! The CustomResourceDefinitions a local control plane gets: ours (from the Rust types) and
//! Tekton Pipelines and Triggers (from the published `config/` of their Go modules, read from
//! the Go module cache at the pinned versions, never copied into this repository).
//!
//! Tekton's Pipeline, Task, PipelineRun, TaskRun, CustomRun and StepAction CRDs declare a
//! conversion webhook served by Tekton's own webhook Deployment, which a test cluster does not
//! run. We install them with `conversion.strategy: None` and always use their storage
//! version, `tekton.dev/v1`, so the webhook is never needed and the schemas are Tekton's own.

use std::fs;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::binaries::download_module;
use crate::error::{Error, io};
use crate::versions;

/// Writes our CRDs into `dir`, one file each, and the tenant namespace the chart would create; returns the paths.
pub fn write_ours(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    io(fs::create_dir_all(dir), || format!("creating {}", dir.display()))?;
    // What the chart installs beside the CRDs: the namespace of the team factories' accounts.
    let tenants = dir.join("tenant-namespace.yaml");
    let namespace = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {}\n  labels: {{pod-security.kubernetes.io/enforce: restricted}}\n",
        factory_api::DEFAULT_TENANT_NAMESPACE
    );
    io(fs::write(&tenants, namespace), || format!("writing {}", tenants.display()))?;
    let crds: Result<Vec<PathBuf>, Error> = factory_api::crd::all()
        .iter()
        .map(|crd| {
            let path = dir.join(factory_api::crd::file_name(crd));
            let yaml = factory_api::crd::to_yaml(crd).map_err(|source| Error::Yaml { path: path.clone(), source })?;
            io(fs::write(&path, yaml), || format!("writing {}", path.display()))?;
            Ok(path)
        })
        .collect();
    Ok(crds?.into_iter().chain([tenants]).collect())
}

/// Writes Tekton's CRDs (conversion set to `None`) and its aggregated ClusterRoles into `dir`;
/// returns the paths.
/// `scratch` is a directory for the Go module download.
pub fn write_tekton(dir: &Path, scratch: &Path) -> Result<Vec<PathBuf>, Error> {
    io(fs::create_dir_all(dir), || format!("creating {}", dir.display()))?;
    io(fs::create_dir_all(scratch), || format!("creating {}", scratch.display()))?;
    let go_mod = scratch.join("go.mod");
    if !go_mod.exists() {
        io(fs::write(&go_mod, "module factory-operator/tekton-crds\n\ngo 1.26\n"), || {
            format!("writing {}", go_mod.display())
        })?;
    }
    let mut sources = Vec::new();
    let (pipeline, _) = download_module(scratch, "github.com/tektoncd/pipeline", versions::TEKTON_PIPELINE)?;
    sources.extend(yaml_files(&pipeline.join("config/300-crds"), |_| true)?);
    let (triggers, _) = download_module(scratch, "github.com/tektoncd/triggers", versions::TEKTON_TRIGGERS)?;
    sources.extend(yaml_files(&triggers.join("config"), |name| name.starts_with("300-"))?);
    // Tekton's own aggregated roles, so `edit`/`admin` cover its kinds as in a real install.
    let roles = |name: &str| name.starts_with("clusterrole-aggregate-");
    sources.extend(yaml_files(&pipeline.join("config"), roles)?);
    sources.extend(yaml_files(&triggers.join("config"), roles)?);
    let mut written = Vec::new();
    for source in sources {
        let text = io(fs::read_to_string(&source), || format!("reading {}", source.display()))?;
        let mut doc: Value =
            serde_yaml::from_str(&text).map_err(|e| Error::Yaml { path: source.clone(), source: e })?;
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
        if kind != "CustomResourceDefinition" && kind != "ClusterRole" {
            continue;
        }
        if let Some(spec) =
            doc.get_mut("spec").and_then(Value::as_mapping_mut).filter(|_| kind == "CustomResourceDefinition")
        {
            let mut none = serde_yaml::Mapping::new();
            none.insert("strategy".into(), "None".into());
            spec.insert("conversion".into(), Value::Mapping(none));
        }
        let name = doc["metadata"]["name"].as_str().unwrap_or("unnamed").to_string();
        let path = dir.join(format!("{}-{name}.yaml", kind.to_lowercase()));
        let yaml = serde_yaml::to_string(&doc).map_err(|e| Error::Yaml { path: path.clone(), source: e })?;
        io(fs::write(&path, yaml), || format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn yaml_files(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>, Error> {
    let mut files: Vec<PathBuf> = io(fs::read_dir(dir), || format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".yaml") && keep(name)
        })
        .collect();
    files.sort();
    Ok(files)
}
