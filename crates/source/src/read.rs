//! Reading the files under some paths of a cached commit, straight from git objects: nothing is
//! checked out, so no hook, filter or submodule ever runs. Hostile content is contained:
//! symlinks that leave the repository are refused, submodules are ignored, and limits bound
//! the size of one file, the number of files and the total bytes read.

use std::path::Path;

use factory_core::paths::normalise;

use factory_core::manifests::SourceFile;
use git2::{ObjectType, Oid, Repository, Tree};

use crate::SourceError;

/// Bounds on what one revision may make the operator read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest single file, in bytes.
    pub max_file_bytes: u64,
    /// Most YAML files read under all paths together.
    pub max_files: usize,
    /// Most tree entries walked (any kind), so a huge tree cannot stall a reconcile.
    pub max_entries: usize,
    /// Most bytes read in total.
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_file_bytes: 1024 * 1024, max_files: 5_000, max_entries: 200_000, max_total_bytes: 64 * 1024 * 1024 }
    }
}

const MODE_LINK: i32 = 0o120000;
const MODE_SUBMODULE: i32 = 0o160000;

/// Reads every `.yaml`/`.yml` file under each of `paths` (relative directories or files) at
/// `commit`. A path missing from the commit contributes nothing; the caller decides whether an
/// empty result is an error.
pub fn read_paths(
    repo: &Repository,
    commit: &str,
    paths: &[&str],
    limits: Limits,
) -> Result<Vec<SourceFile>, SourceError> {
    let cache_err = |source| SourceError::Cache { path: repo.path().display().to_string(), source };
    let oid = Oid::from_str(commit).map_err(cache_err)?;
    let root = repo.find_commit(oid).and_then(|c| c.tree()).map_err(cache_err)?;
    let mut reader = Reader { repo, root: &root, limits, files: Vec::new(), entries: 0, bytes: 0, every_file: false };
    for path in paths {
        let clean = normalise(Path::new(path)).ok_or_else(|| SourceError::Content {
            path: path.to_string(),
            why: "the path leaves the repository".into(),
        })?;
        if clean.as_os_str().is_empty() {
            reader.walk(&root, Path::new(""))?;
            continue;
        }
        let Ok(entry) = root.get_path(&clean) else { continue };
        match entry.kind() {
            Some(ObjectType::Tree) => {
                let tree = repo.find_tree(entry.id()).map_err(cache_err)?;
                reader.walk(&tree, &clean)?;
            }
            _ => reader.file(&clean, entry.id(), entry.filemode(), 0)?,
        }
    }
    reader.files.sort_by(|a, b| a.path.cmp(&b.path));
    reader.files.dedup_by(|a, b| a.path == b.path);
    Ok(reader.files)
}

/// Every file of the repository at `commit` (any extension; symlinks inside the repository
/// read as copies of their targets, symlinks leaving it refused, submodules ignored), within
/// `limits`: the tree kustomize or helm renders from.
pub fn read_tree(repo: &Repository, commit: &str, limits: Limits) -> Result<Vec<SourceFile>, SourceError> {
    let cache_err = |source| SourceError::Cache { path: repo.path().display().to_string(), source };
    let oid = Oid::from_str(commit).map_err(cache_err)?;
    let root = repo.find_commit(oid).and_then(|c| c.tree()).map_err(cache_err)?;
    let mut reader = Reader { repo, root: &root, limits, files: Vec::new(), entries: 0, bytes: 0, every_file: true };
    reader.walk(&root, Path::new(""))?;
    Ok(reader.files)
}

/// The git object id of `path` at `commit` (a tree for a directory): a content hash, so it
/// changes exactly when something under the path changes. `None` when the path is missing.
pub fn path_id(repo: &Repository, commit: &str, path: &str) -> Result<Option<String>, SourceError> {
    let cache_err = |source| SourceError::Cache { path: repo.path().display().to_string(), source };
    let oid = Oid::from_str(commit).map_err(cache_err)?;
    let root = repo.find_commit(oid).and_then(|c| c.tree()).map_err(cache_err)?;
    let clean = normalise(Path::new(path))
        .ok_or_else(|| SourceError::Content { path: path.to_string(), why: "the path leaves the repository".into() })?;
    if clean.as_os_str().is_empty() {
        return Ok(Some(root.id().to_string()));
    }
    Ok(root.get_path(&clean).ok().map(|e| e.id().to_string()))
}

/// Whether directory `dir` at `commit` holds a file with one of `names`.
pub fn holds_any(repo: &Repository, commit: &str, dir: &str, names: &[&str]) -> Result<bool, SourceError> {
    let dir = dir.trim_end_matches('/');
    for name in names {
        let path = if dir.is_empty() || dir == "." { name.to_string() } else { format!("{dir}/{name}") };
        if path_id(repo, commit, &path)?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

struct Reader<'r> {
    repo: &'r Repository,
    root: &'r Tree<'r>,
    limits: Limits,
    files: Vec<SourceFile>,
    entries: usize,
    bytes: u64,
    /// Read every file, not only YAML (a tree handed to kustomize or helm).
    every_file: bool,
}

impl Reader<'_> {
    fn walk(&mut self, tree: &Tree<'_>, dir: &Path) -> Result<(), SourceError> {
        for entry in tree.iter() {
            self.entries += 1;
            if self.entries > self.limits.max_entries {
                return Err(SourceError::Content {
                    path: dir.display().to_string(),
                    why: format!(
                        "more than {} entries under the configured paths (the limit)",
                        self.limits.max_entries
                    ),
                });
            }
            let name = entry.name().unwrap_or("");
            let path = dir.join(name);
            match entry.kind() {
                Some(ObjectType::Tree) => {
                    let sub = self.repo.find_tree(entry.id()).map_err(|source| SourceError::Cache {
                        path: self.repo.path().display().to_string(),
                        source,
                    })?;
                    self.walk(&sub, &path)?;
                }
                // A submodule is a commit entry: it is never fetched or read.
                Some(ObjectType::Commit) => {}
                _ if entry.filemode() == MODE_SUBMODULE => {}
                _ => self.file(&path, entry.id(), entry.filemode(), 0)?,
            }
        }
        Ok(())
    }

    fn file(&mut self, path: &Path, oid: Oid, mode: i32, hops: u8) -> Result<(), SourceError> {
        let shown = path.display().to_string();
        if mode == MODE_LINK {
            return self.symlink(path, oid, hops);
        }
        let is_yaml = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e == "yaml" || e == "yml");
        if !is_yaml && !self.every_file {
            return Ok(());
        }
        let odb = self.repo.odb().map_err(|source| SourceError::Cache { path: shown.clone(), source })?;
        let (size, _) = odb.read_header(oid).map_err(|source| SourceError::Cache { path: shown.clone(), source })?;
        let size = size as u64;
        if size > self.limits.max_file_bytes {
            return Err(SourceError::Content {
                path: shown,
                why: format!("{size} bytes is larger than the limit of {} bytes", self.limits.max_file_bytes),
            });
        }
        if self.files.len() >= self.limits.max_files {
            return Err(SourceError::Content {
                path: shown,
                why: format!("more than {} files under the configured paths (the limit)", self.limits.max_files),
            });
        }
        self.bytes += size;
        if self.bytes > self.limits.max_total_bytes {
            return Err(SourceError::Content {
                path: shown,
                why: format!("the files add up to more than {} bytes", self.limits.max_total_bytes),
            });
        }
        let blob = self.repo.find_blob(oid).map_err(|source| SourceError::Cache { path: shown.clone(), source })?;
        self.files.push(SourceFile { path: shown, content: blob.content().to_vec() });
        Ok(())
    }

    /// Follows a symlink that stays inside the repository (at most a few hops); refuses one
    /// that leaves it.
    fn symlink(&mut self, path: &Path, oid: Oid, hops: u8) -> Result<(), SourceError> {
        let shown = path.display().to_string();
        let refuse = |why: &str| SourceError::Content { path: shown.clone(), why: why.to_string() };
        if hops >= 4 {
            return Err(refuse("symlink chain too long"));
        }
        let blob = self.repo.find_blob(oid).map_err(|source| SourceError::Cache { path: shown.clone(), source })?;
        let target = std::str::from_utf8(blob.content()).map_err(|_| refuse("symlink target is not UTF-8"))?;
        let joined = path.parent().unwrap_or(Path::new("")).join(target);
        if Path::new(target).is_absolute() {
            return Err(refuse(&format!("symlink to {target} leaves the repository")));
        }
        let resolved =
            normalise(&joined).ok_or_else(|| refuse(&format!("symlink to {target} leaves the repository")))?;
        let entry =
            self.root.get_path(&resolved).map_err(|_| refuse(&format!("symlink to {target} points nowhere")))?;
        match entry.kind() {
            Some(ObjectType::Blob) => {
                // Read the target's content under the link's own name.
                self.file(path, entry.id(), entry.filemode(), hops + 1)
            }
            _ => Err(refuse(&format!("symlink to {target} is not a file"))),
        }
    }
}
