//! kustomize and helm for `validate` and `plan`, run exactly as the operator runs them
//! (`factory_tools`: the same checks, sandbox and limits) on the local checkout.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use factory_core::manifests::{self, Manifest, SourceFile};
use factory_tools::{Chart, Config, KUSTOMIZATION_FILES, Limits, Tools, Tree};

use crate::local;

/// The tools over one checkout.
pub struct Renderer {
    root: PathBuf,
    tools: Tools,
    _work: tempfile::TempDir,
}

impl Renderer {
    /// The tools `kustomize` and `helm` (paths, or names looked up on PATH) over the checkout at `root`.
    pub fn new(root: &Path, kustomize: PathBuf, helm: PathBuf) -> Result<Self> {
        let work = tempfile::tempdir().context("creating a scratch directory for kustomize and helm")?;
        let config = Config {
            kustomize,
            helm,
            work_dir: work.path().to_path_buf(),
            limits: Limits::default(),
            cache_bytes: 64 << 20,
        };
        Ok(Self { root: root.to_path_buf(), tools: Tools::new(config), _work: work })
    }

    fn tree<T>(&self, render: impl FnOnce(&Tools, &Tree<'_>) -> T) -> T {
        let files = || local::read_all(&self.root).map_err(|e| format!("{e:#}"));
        render(&self.tools, &Tree { id: "checkout".into(), files: &files })
    }

    /// The files of `path` as the operator reads them: the YAML files, or, when the path holds
    /// a kustomization, `kustomize build`'s output.
    pub fn read(&self, path: &str) -> Result<Vec<SourceFile>> {
        let dir = path.trim_end_matches('/');
        if !KUSTOMIZATION_FILES.iter().any(|name| self.root.join(dir).join(name).is_file()) {
            return local::read(&self.root, path);
        }
        let rendered = self.tree(|tools, tree| tools.kustomize(tree, dir))?;
        Ok(vec![SourceFile { path: rendered.source, content: rendered.text.as_bytes().to_vec() }])
    }

    /// The objects of `chart`, rendered as the operator renders it.
    pub fn chart(&self, chart: &Chart) -> Result<Vec<Manifest>> {
        let rendered = self.tree(|tools, tree| tools.helm(tree, chart))?;
        manifests::load_rendered(&rendered.source, &rendered.text, None).map_err(|errors| {
            anyhow::anyhow!("{}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
        })
    }
}
