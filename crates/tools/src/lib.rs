//! The real `kustomize build` and `helm template`, run on a repository tree written from git
//! objects, contained (no network, no plugins, nothing outside the tree, bounded time, output
//! and objects) and cached by their inputs: (tool and version, repository commit, path, values,
//! release, namespace, cluster capabilities).
//!
//! Blocking code: async callers run it with `tokio::task::spawn_blocking`, a bounded number at
//! a time.

mod cache;
mod error;
mod helm;
mod kustomize;
mod paths;
mod sandbox;
mod trees;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use factory_core::manifests::SourceFile;
use sha2::{Digest, Sha256};

pub use error::RenderError;
pub use helm::{Capabilities, Chart};
pub use kustomize::{KUSTOMIZATION_FILES, kustomization_in};

/// Bounds on one render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest a tool may run.
    pub timeout: Duration,
    /// Most bytes of output.
    pub max_output_bytes: u64,
    /// Most objects in the output.
    pub max_objects: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(30), max_output_bytes: 16 * 1024 * 1024, max_objects: 5_000 }
    }
}

/// Where the tools are and how they run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `kustomize` binary.
    pub kustomize: PathBuf,
    /// The `helm` binary.
    pub helm: PathBuf,
    /// A directory for repository trees and scratch space (created on first use).
    pub work_dir: PathBuf,
    /// Bounds on each render.
    pub limits: Limits,
    /// Most bytes of rendered output kept.
    pub cache_bytes: u64,
}

/// A repository at one commit, written out only when a render needs it.
pub struct Tree<'a> {
    /// Names the repository and commit uniquely (a file name).
    pub id: String,
    /// Reads every file of the commit.
    pub files: &'a dyn Fn() -> Result<Vec<SourceFile>, String>,
}

/// One render's output.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// What made it, such as `kustomize build deploy/environments/prod`.
    pub source: String,
    /// The YAML stream.
    pub text: Arc<String>,
    /// Whether it came from the cache.
    pub cached: bool,
}

/// Counts since start, for metrics and the benchmark.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Answers from the cache.
    pub hits: u64,
    /// Renders run.
    pub renders: u64,
    /// Time spent rendering, in microseconds.
    pub render_micros: u64,
}

/// The tools, their cache and their trees. Shared by every reconcile.
pub struct Tools {
    config: Config,
    cache: cache::Cache,
    trees: trees::Trees,
    versions: OnceLock<(String, String)>,
    hits: AtomicU64,
    renders: AtomicU64,
    render_micros: AtomicU64,
    scratch: AtomicU64,
}

impl Tools {
    /// Tools as `config` says.
    pub fn new(mut config: Config) -> Self {
        config.kustomize = on_path(config.kustomize);
        config.helm = on_path(config.helm);
        let trees = trees::Trees::new(config.work_dir.join("trees"), 32);
        let cache = cache::Cache::new(config.cache_bytes);
        Self {
            config,
            cache,
            trees,
            versions: OnceLock::new(),
            hits: AtomicU64::new(0),
            renders: AtomicU64::new(0),
            render_micros: AtomicU64::new(0),
            scratch: AtomicU64::new(0),
        }
    }

    /// Counts since start.
    pub fn stats(&self) -> Stats {
        Stats {
            hits: self.hits.load(Ordering::Relaxed),
            renders: self.renders.load(Ordering::Relaxed),
            render_micros: self.render_micros.load(Ordering::Relaxed),
        }
    }

    /// The versions of kustomize and helm (part of every cache key), asked once.
    pub fn versions(&self) -> &(String, String) {
        self.versions.get_or_init(|| {
            let limits = Limits { timeout: Duration::from_secs(20), ..self.config.limits };
            let ask = |tool: &'static str, binary: &Path, args: &[&str]| {
                let home = self.scratch_dir();
                let invocation = sandbox::Invocation {
                    tool,
                    binary,
                    args: args.iter().map(Into::into).collect(),
                    cwd: &home,
                    home: &home,
                    what: "version",
                };
                let version = sandbox::run(invocation, &limits).map(|v| v.trim().to_string()).unwrap_or_default();
                let _ = std::fs::remove_dir_all(&home);
                version
            };
            (
                ask("kustomize", &self.config.kustomize, &["version"]),
                ask("helm", &self.config.helm, &["version", "--short"]),
            )
        })
    }

    fn scratch_dir(&self) -> PathBuf {
        let n = self.scratch.fetch_add(1, Ordering::Relaxed);
        let dir = self.config.work_dir.join("scratch").join(format!("{}-{n}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        dir
    }

    /// `kustomize build` of `dir` (relative to the repository root) in `tree`.
    pub fn kustomize(&self, tree: &Tree<'_>, dir: &str) -> Result<Rendered, RenderError> {
        let dir = paths::normalise(Path::new(dir))
            .ok_or_else(|| RenderError::Escapes { file: dir.to_string(), entry: dir.to_string() })?;
        let source = format!("kustomize build {}", dir.display());
        let key = digest(&["kustomize", &self.versions().0, &tree.id, &dir.display().to_string()]);
        self.render(&key, ("kustomize", source), |scratch| {
            let root = self.trees.tree(&tree.id, tree.files)?;
            kustomize::check(&root, &dir)?;
            let args = vec![
                "build".into(),
                dir.clone().into_os_string(),
                "--load-restrictor".into(),
                "LoadRestrictionsRootOnly".into(),
            ];
            let what = dir.display().to_string();
            let invocation = sandbox::Invocation {
                tool: "kustomize",
                binary: &self.config.kustomize,
                args,
                cwd: &root,
                home: scratch,
                what: &what,
            };
            sandbox::run(invocation, &self.config.limits)
        })
    }

    /// `helm template` of `chart` in `tree`.
    pub fn helm(&self, tree: &Tree<'_>, chart: &Chart) -> Result<Rendered, RenderError> {
        let source = format!("helm template {}", chart.path);
        let values = chart.values.as_ref().map(ToString::to_string).unwrap_or_default();
        let capabilities = format!("{} {}", chart.capabilities.kube_version, chart.capabilities.api_versions.join(","));
        let files = chart.values_files.join("\0");
        let key = digest(&[
            "helm",
            &self.versions().1,
            &tree.id,
            &chart.path,
            &files,
            &values,
            &chart.release,
            &chart.namespace,
            &capabilities,
        ]);
        self.render(&key, ("helm", source), |scratch| {
            let root = self.trees.tree(&tree.id, tree.files)?;
            helm::template(&self.config.helm, &root, chart, scratch, &self.config.limits)
        })
    }

    fn render(
        &self,
        key: &str,
        (tool, source): (&'static str, String),
        run: impl FnOnce(&Path) -> Result<String, RenderError>,
    ) -> Result<Rendered, RenderError> {
        let (output, cached) = self.cache.get_or_render(key, || {
            let started = Instant::now();
            let scratch = self.scratch_dir();
            let output = run(&scratch).and_then(|text| self.count(tool, &source, text));
            let _ = std::fs::remove_dir_all(&scratch);
            self.renders.fetch_add(1, Ordering::Relaxed);
            self.render_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            // A timeout may be the machine's load, and a missing tree or binary may be fixed:
            // those are tried again; anything else is what these inputs give.
            let keep = !matches!(
                output,
                Err(RenderError::Timeout { .. } | RenderError::Missing { .. } | RenderError::Tree { .. })
            );
            (output.map(Arc::new), keep)
        });
        if cached {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        output.map(|text| Rendered { source, text, cached })
    }

    /// Refuses output with more objects than the limit.
    fn count(&self, tool: &'static str, source: &str, text: String) -> Result<String, RenderError> {
        let documents = text.lines().filter(|l| l.trim_end() == "---").count() + 1;
        if documents > self.config.limits.max_objects {
            return Err(RenderError::TooLarge {
                tool,
                path: source.to_string(),
                why: format!("more than {} objects (the limit)", self.config.limits.max_objects),
            });
        }
        Ok(text)
    }
}

/// `binary` itself when it names a path, else where the operator's PATH finds it (the tools
/// run with an empty PATH).
fn on_path(binary: PathBuf) -> PathBuf {
    if binary.components().count() > 1 {
        return binary;
    }
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|dir| dir.join(&binary)).find(|c| c.is_file()))
        .unwrap_or(binary)
}

fn digest(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hex::encode(hash.finalize())
}
