//! The *dereference* step for git: credentials from a Secret, sync through the shared cache,
//! and the files under the configured paths. Blocking git work runs on the blocking pool.

use factory_api::{GitRef, GitSource};
use factory_core::manifests::SourceFile;
use factory_source::{Auth, Limits, Reference, Synced, holds_any, path_id, read_paths};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::services::context::Context;
use crate::services::error::ReconcileError;

/// The paths a checkout reads, each handed a [`Slot`] to find its files by afterwards.
#[derive(Debug, Default, Clone)]
pub struct Paths(Vec<Option<String>>);

/// Where one requested path's files are in a [`Checkout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(usize);

impl Paths {
    /// Asks for `path` (`None` reads nothing, and its slot holds no files).
    pub fn add(&mut self, path: Option<String>) -> Slot {
        self.0.push(path);
        Slot(self.0.len() - 1)
    }
}

impl From<Vec<String>> for Paths {
    fn from(paths: Vec<String>) -> Self {
        Self(paths.into_iter().map(Some).collect())
    }
}

/// A synced revision and the files read from it.
pub struct Checkout {
    /// The revision, such as `main@sha1:<sha>`.
    pub synced: Synced,
    /// Files under each requested path, in the order the paths were given.
    pub files: Vec<Vec<SourceFile>>,
    /// The git object id of each requested path (a content hash), in the same order.
    pub ids: Vec<Option<String>>,
    /// The requested paths, in the same order.
    pub paths: Vec<Option<String>>,
    /// Whether each requested path holds a kustomization at its root, in the same order.
    pub kustomized: Vec<bool>,
    /// Where the commit is cached: the repository's URL and the credential it was fetched with.
    pub origin: (String, String),
}

impl Checkout {
    /// The files under the path of `slot`.
    pub fn files(&self, slot: Slot) -> &[SourceFile] {
        self.files.get(slot.0).map(Vec::as_slice).unwrap_or_default()
    }

    /// Whether the path of `slot` holds a kustomization at its root.
    pub fn kustomized(&self, slot: Slot) -> bool {
        self.kustomized.get(slot.0).copied().unwrap_or(false)
    }

    /// The path of `slot`.
    pub fn path(&self, slot: Slot) -> Option<&str> {
        self.paths.get(slot.0).and_then(Option::as_deref)
    }

    /// The git object id of the path of `slot` (a content hash), if it exists.
    pub fn id(&self, slot: Slot) -> Option<String> {
        self.ids.get(slot.0).cloned().flatten()
    }
}

/// Which revision a `GitRef` asks for; a missing ref means branch `main`.
pub fn reference(git_ref: Option<&GitRef>) -> Reference {
    match git_ref {
        Some(GitRef { commit: Some(c), .. }) => Reference::Commit(c.clone()),
        Some(GitRef { tag: Some(t), .. }) => Reference::Tag(t.clone()),
        Some(GitRef { branch: Some(b), .. }) => Reference::Branch(b.clone()),
        _ => Reference::Branch("main".into()),
    }
}

/// Reads the credentials Secret of `source`, if any, as `reader` — the factory's own identity,
/// so a spec can name only a Secret its factory may read itself (never the operator's
/// reach). `default_namespace` applies when the reference names none.
async fn auth(reader: &Client, source: &GitSource, default_namespace: &str) -> Result<(Auth, String), ReconcileError> {
    let Some(secret_ref) = &source.secret_ref else { return Ok((Auth::None, String::new())) };
    let namespace = secret_ref.namespace.clone().unwrap_or_else(|| default_namespace.to_string());
    let err =
        |why: String| ReconcileError::Credentials { namespace: namespace.clone(), name: secret_ref.name.clone(), why };
    let secret = Api::<Secret>::namespaced(reader.clone(), &namespace)
        .get_opt(&secret_ref.name)
        .await
        .map_err(|e| err(factory_apply::api_message(&e)))?
        .ok_or_else(|| err("not found".into()))?;
    let data = secret.data.unwrap_or_default();
    let text = |key: &str| data.get(key).map(|b| String::from_utf8_lossy(&b.0).trim().to_string());
    let username = text("username").unwrap_or_else(|| "git".into());
    let auth = match (text("identity"), text("known_hosts"), text("password").or_else(|| text("token"))) {
        (Some(private_key), Some(known_hosts), _) => {
            Auth::Ssh { username, private_key: format!("{private_key}\n"), known_hosts }
        }
        (Some(_), None, _) => return Err(err("an `identity` needs `known_hosts` beside it".into())),
        (None, _, Some(password)) => Auth::Basic { username, password, ca: text("ca.crt") },
        _ => {
            return Err(err(
                "needs `password` or `token` (HTTPS; `username` and `ca.crt` are optional), or `identity` and `known_hosts` (SSH)"
                    .into(),
            ));
        }
    };
    Ok((auth, format!("{namespace}/{}", secret_ref.name)))
}

/// Syncs `source` and reads the files under `paths` (an unset path reads nothing); its
/// credentials are read as `reader` ([`auth`]).
pub async fn checkout(
    ctx: &Context,
    source: &GitSource,
    reader: &Client,
    default_namespace: &str,
    paths: Paths,
) -> Result<Checkout, ReconcileError> {
    checkout_at(ctx, source, reader, default_namespace, reference(source.git_ref.as_ref()), paths).await
}

/// Like [`checkout`], at an explicit reference (a commit already applied elsewhere is read
/// from the shared cache without touching the network).
pub async fn checkout_at(
    ctx: &Context,
    source: &GitSource,
    reader: &Client,
    default_namespace: &str,
    reference: Reference,
    paths: Paths,
) -> Result<Checkout, ReconcileError> {
    let (auth, credential) = auth(reader, source, default_namespace).await?;
    let repos = ctx.repos.clone();
    let url = source.url.clone();
    let metrics = ctx.metrics.clone();
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let synced = repos.sync(&url, &reference, &auth, &credential);
        let outcome = match &synced {
            Ok(s) if s.fetched => "fetched",
            Ok(_) => "unchanged",
            Err(e) => e.reason().as_str(),
        };
        metrics
            .git_fetch
            .get_or_create(&crate::services::metrics::FetchLabels { outcome: outcome.into() })
            .observe(started.elapsed().as_secs_f64());
        let synced = synced?;
        let repo = repos.open(&url, &credential)?;
        let mut files = Vec::with_capacity(paths.0.len());
        let mut ids = Vec::with_capacity(paths.0.len());
        let mut kustomized = Vec::with_capacity(paths.0.len());
        for path in &paths.0 {
            kustomized.push(match path {
                Some(path) => holds_any(&repo, &synced.commit, path, &factory_tools::KUSTOMIZATION_FILES)?,
                None => false,
            });
            files.push(match path {
                Some(path) => read_paths(&repo, &synced.commit, &[path.as_str()], Limits::default())?,
                None => Vec::new(),
            });
            ids.push(match path {
                Some(path) => path_id(&repo, &synced.commit, path)?,
                None => None,
            });
        }
        Ok::<_, ReconcileError>(Checkout { synced, files, ids, paths: paths.0, kustomized, origin: (url, credential) })
    })
    .await
    .map_err(|e| ReconcileError::Internal(e.to_string()))?
}

/// The branches of `source`'s repository, by one remote ref listing.
pub async fn branches(
    ctx: &Context,
    source: &GitSource,
    reader: &Client,
    default_namespace: &str,
) -> Result<Vec<String>, ReconcileError> {
    let (auth, credential) = auth(reader, source, default_namespace).await?;
    let repos = ctx.repos.clone();
    let url = source.url.clone();
    tokio::task::spawn_blocking(move || repos.branches(&url, &auth, &credential).map_err(ReconcileError::from))
        .await
        .map_err(|e| ReconcileError::Internal(e.to_string()))?
}
