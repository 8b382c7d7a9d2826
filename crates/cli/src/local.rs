//! Reading a local checkout: the YAML files under a path, as the operator would read them from
//! git (relative paths, `.git` skipped, symlinks that leave the checkout refused).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use factory_core::manifests::SourceFile;

/// Largest file read, like the operator's limit.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Every `.yaml`/`.yml` file under `path` (a directory or a file) of the checkout at `root`;
/// nothing when the path does not exist.
pub fn read(root: &Path, path: &str) -> Result<Vec<SourceFile>> {
    let root = root.canonicalize().with_context(|| format!("{} is not a directory", root.display()))?;
    let start = root.join(path.trim_start_matches('/'));
    if !start.exists() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    walk(&root, &start, false, &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Every file of the checkout at `root`, any extension (`.git` skipped): the tree kustomize
/// and helm render from, refused the same way as the operator's (a symlink leaving it, a file
/// over the limit).
pub fn read_all(root: &Path) -> Result<Vec<SourceFile>> {
    let root = root.canonicalize().with_context(|| format!("{} is not a directory", root.display()))?;
    let mut files = Vec::new();
    walk(&root, &root, true, &mut files)?;
    Ok(files)
}

fn walk(root: &Path, at: &Path, every_file: bool, out: &mut Vec<SourceFile>) -> Result<()> {
    let real: PathBuf = at.canonicalize().with_context(|| format!("reading {}", at.display()))?;
    if !real.starts_with(root) {
        bail!("{} leaves the checkout (a symlink to {})", at.display(), real.display());
    }
    if real.is_dir() {
        if real.file_name().is_some_and(|n| n == ".git") {
            return Ok(());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&real)
            .with_context(|| format!("listing {}", real.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            walk(root, &entry, every_file, out)?;
        }
        return Ok(());
    }
    let name = at.to_string_lossy();
    if !(every_file || name.ends_with(".yaml") || name.ends_with(".yml")) {
        return Ok(());
    }
    let size = real.metadata().map(|m| m.len()).unwrap_or(0);
    if size > MAX_FILE_BYTES {
        bail!("{} is {size} bytes; the operator reads files of at most {MAX_FILE_BYTES}", at.display());
    }
    let content = std::fs::read(&real).with_context(|| format!("reading {}", real.display()))?;
    let relative = at.strip_prefix(root).unwrap_or(at).to_string_lossy().into_owned();
    out.push(SourceFile { path: relative, content });
    Ok(())
}

/// Subdirectories of `path` in the checkout (class or environment names), sorted.
pub fn subdirectories(root: &Path, path: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join(path))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
