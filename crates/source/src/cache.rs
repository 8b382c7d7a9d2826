//! The repository cache: one bare repository per (URL, credential), shared by every factory
//! that points at it, fetched incrementally. A poll where nothing changed costs one remote
//! ref listing, never a fetch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use git2::{Direction, Oid, Repository};

use crate::fetch::{Auth, callbacks, classify, fetch_into, open_or_init};
use crate::{Reference, SourceError};

/// The outcome of [`RepoCache::sync`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// Full commit SHA the reference resolves to.
    pub commit: String,
    /// Revision string for status, such as `main@sha1:<sha>`.
    pub revision: String,
    /// Whether objects were downloaded (false: the listing showed nothing new).
    pub fetched: bool,
}

/// Bare repositories under one directory, keyed by URL and credential.
#[derive(Debug)]
pub struct RepoCache {
    root: PathBuf,
    locks: Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>,
}

impl RepoCache {
    /// A cache under `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), locks: Mutex::new(HashMap::new()) }
    }

    /// The bare repository for `url` fetched with `credential` (an identifier of the secret,
    /// never its content), such as `factory-system/platform-git`.
    pub fn path(&self, url: &str, credential: &str) -> PathBuf {
        let hash = factory_core::names::stable_hash(format!("{url}\0{credential}").as_bytes());
        let readable: String = url
            .rsplit('/')
            .next()
            .unwrap_or("repo")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(40)
            .collect();
        self.root.join(format!("{readable}-{hash:016x}"))
    }

    fn lock(&self, path: &Path) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(path.to_path_buf()).or_default().clone()
    }

    /// Brings `reference` of `url` up to date in the cache and resolves it. Lists the remote's
    /// refs first and fetches only when the commit is not already cached; a pinned commit that
    /// is cached needs no network at all.
    pub fn sync(&self, url: &str, reference: &Reference, auth: &Auth, credential: &str) -> Result<Synced, SourceError> {
        let path = self.path(url, credential);
        let lock = self.lock(&path);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let repo = open_or_init(&path)?;
        if let Reference::Commit(sha) = reference
            && let Ok(oid) = Oid::from_str(sha)
            && repo.find_commit(oid).is_ok()
        {
            return Ok(Synced { commit: sha.clone(), revision: reference.revision(sha), fetched: false });
        }
        if let Some(remote_oid) = list_remote(&repo, url, reference, auth)? {
            if let Some(commit) = local_commit(&repo, remote_oid) {
                if let Some(local_ref) = reference.local_ref() {
                    repo.reference(&local_ref, commit, true, "factory-operator: listing")
                        .map_err(|source| SourceError::Cache { path: path.display().to_string(), source })?;
                }
                let sha = commit.to_string();
                return Ok(Synced { revision: reference.revision(&sha), commit: sha, fetched: false });
            }
        } else if !matches!(reference, Reference::Commit(_)) {
            return Err(SourceError::ReferenceNotFound { url: url.to_string(), reference: reference.to_string() });
        }
        let fetched = fetch_into(&repo, url, reference, auth)?;
        Ok(Synced { commit: fetched.commit, revision: fetched.revision, fetched: true })
    }

    /// Opens the cached repository of `url` and `credential` (after a [`Self::sync`]).
    pub fn open(&self, url: &str, credential: &str) -> Result<Repository, SourceError> {
        let path = self.path(url, credential);
        Repository::open_bare(&path).map_err(|source| SourceError::Cache { path: path.display().to_string(), source })
    }
}

/// Every ref the remote advertises (name, object id), by one connection and listing; failures
/// are classified as for `reference`.
fn remote_heads(
    repo: &Repository,
    url: &str,
    auth: &Auth,
    reference: &Reference,
) -> Result<Vec<(String, Oid)>, SourceError> {
    let mut remote =
        repo.remote_anonymous(url).map_err(|source| SourceError::Fetch { url: url.to_string(), source })?;
    let (cbs, probe) = callbacks(auth);
    let connection = match remote.connect_auth(Direction::Fetch, Some(cbs), None) {
        Ok(c) => c,
        Err(source) => return Err(classify(url, reference, auth, &probe, source)),
    };
    let heads = connection.list().map_err(|source| SourceError::Fetch { url: url.to_string(), source })?;
    Ok(heads.iter().map(|h| (h.name().to_string(), h.oid())).collect())
}

/// The object id the remote advertises for `reference` (peeled for annotated tags).
fn list_remote(repo: &Repository, url: &str, reference: &Reference, auth: &Auth) -> Result<Option<Oid>, SourceError> {
    let wanted = match reference {
        Reference::Branch(name) => format!("refs/heads/{name}"),
        Reference::Tag(name) => format!("refs/tags/{name}"),
        Reference::Commit(_) => return Ok(None),
    };
    let heads = remote_heads(repo, url, auth, reference)?;
    let peeled = format!("{wanted}^{{}}");
    let find = |name: &str| heads.iter().find(|(n, _)| n == name).map(|(_, oid)| *oid);
    Ok(find(&peeled).or_else(|| find(&wanted)))
}

/// The commit `oid` names (or that an annotated tag `oid` points at), if cached.
fn local_commit(repo: &Repository, oid: Oid) -> Option<Oid> {
    repo.find_object(oid, None).ok()?.peel_to_commit().ok().map(|c| c.id())
}

impl RepoCache {
    /// The branches of `url` (names without `refs/heads/`), by one remote ref listing.
    pub fn branches(&self, url: &str, auth: &Auth, credential: &str) -> Result<Vec<String>, SourceError> {
        let path = self.path(url, credential);
        let lock = self.lock(&path);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let repo = open_or_init(&path)?;
        let heads = remote_heads(&repo, url, auth, &Reference::Branch(String::new()))?;
        Ok(heads.into_iter().filter_map(|(name, _)| name.strip_prefix("refs/heads/").map(str::to_string)).collect())
    }
}
