//! Repository trees written out for the tools: one directory per repository and commit, built
//! from the files read out of git objects (regular files only: no symlink, hook or submodule
//! reaches the disk), written once and shared by every render of that commit; the oldest go
//! when there are more than a set number.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use factory_core::manifests::SourceFile;

use crate::RenderError;
use crate::paths::normalise;

/// Marks a tree written completely.
const COMPLETE: &str = ".factory-tree-complete";

/// The trees under one directory.
pub(crate) struct Trees {
    root: PathBuf,
    keep: usize,
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl Trees {
    /// Trees under `root`, at most `keep` of them.
    pub(crate) fn new(root: PathBuf, keep: usize) -> Self {
        Self { root, keep, locks: Mutex::new(HashMap::new()) }
    }

    /// The tree `id`, written from `files` unless it exists already.
    pub(crate) fn tree(
        &self,
        id: &str,
        files: &dyn Fn() -> Result<Vec<SourceFile>, String>,
    ) -> Result<PathBuf, RenderError> {
        let dir = self.root.join(id);
        let lock = self.locks.lock().unwrap_or_else(|p| p.into_inner()).entry(id.to_string()).or_default().clone();
        let _one = lock.lock().unwrap_or_else(|p| p.into_inner());
        if dir.join(COMPLETE).is_file() {
            return Ok(dir);
        }
        let err = |path: &Path, why: String| RenderError::Tree { path: path.display().to_string(), why };
        let files = files().map_err(RenderError::Refused)?;
        let partial = self.root.join(format!("{id}.partial"));
        let _ = std::fs::remove_dir_all(&partial);
        for file in files {
            let relative = normalise(Path::new(&file.path))
                .ok_or_else(|| err(Path::new(&file.path), "leaves the repository".into()))?;
            let target = partial.join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| err(parent, e.to_string()))?;
            }
            std::fs::write(&target, &file.content).map_err(|e| err(&target, e.to_string()))?;
        }
        std::fs::create_dir_all(&partial).map_err(|e| err(&partial, e.to_string()))?;
        std::fs::write(partial.join(COMPLETE), b"").map_err(|e| err(&partial, e.to_string()))?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&partial, &dir).map_err(|e| err(&dir, e.to_string()))?;
        self.evict(id);
        Ok(dir)
    }

    /// Removes the oldest trees past `keep`, never `current`.
    fn evict(&self, current: &str) {
        let Ok(read) = std::fs::read_dir(&self.root) else { return };
        let mut trees: Vec<(std::time::SystemTime, PathBuf)> = read
            .flatten()
            .filter(|e| e.file_name() != current && e.path().join(COMPLETE).is_file())
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        if trees.len() < self.keep {
            return;
        }
        trees.sort();
        for (_, path) in trees.iter().take(trees.len() + 1 - self.keep) {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}
