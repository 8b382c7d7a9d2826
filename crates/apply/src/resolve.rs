//! Kinds to API resources through discovery, cached and refreshed when a kind is missing
//! (a CRD installed after start-up is picked up without a restart).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::ApiResource;
use kube::discovery::{Discovery, Scope};
use tokio::sync::RwLock;

use crate::ApplyError;

/// A served kind.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The resource to address it with.
    pub resource: ApiResource,
    /// Whether objects of the kind live in namespaces.
    pub namespaced: bool,
}

#[derive(Default)]
struct Cache {
    // Shared: every object of a revision holds its kind's resolution (17,000 at 10,000
    // environments), one copy per kind is enough.
    kinds: HashMap<(String, String), Arc<Resolved>>,
    // What a chart's `.Capabilities` says: the server's version and what it serves.
    kube_version: String,
    api_versions: Vec<String>,
    refreshed: Option<Instant>,
}

/// Discovery, cached. Shared by all reconcilers.
pub struct Resolver {
    client: Client,
    cache: RwLock<Cache>,
}

/// Refresh at most this often on a miss, so a stream of unknown kinds cannot flood discovery.
const MIN_REFRESH: Duration = Duration::from_secs(2);
/// How long "not served" is believed for an optional integration.
const OPTIONAL_REFRESH: Duration = Duration::from_secs(30);

impl Resolver {
    /// A resolver using `client` (the operator's own identity) for discovery.
    pub fn new(client: Client) -> Self {
        Self { client, cache: RwLock::new(Cache::default()) }
    }

    /// The resource serving `api_version`/`kind`, refreshing discovery once on a miss.
    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<Option<Arc<Resolved>>, ApplyError> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(found) = self.cache.read().await.kinds.get(&key) {
            return Ok(Some(found.clone()));
        }
        self.refresh(false).await?;
        Ok(self.cache.read().await.kinds.get(&key).cloned())
    }

    /// Whether `api_version`/`kind` is served, for optional integrations (Tekton, Triggers):
    /// a miss re-runs discovery at most every 30 s, so asking on every reconcile stays cheap.
    pub async fn is_served(&self, api_version: &str, kind: &str) -> Result<bool, ApplyError> {
        let key = (api_version.to_string(), kind.to_string());
        {
            let cache = self.cache.read().await;
            if cache.kinds.contains_key(&key) {
                return Ok(true);
            }
            if cache.refreshed.is_some_and(|t| t.elapsed() < OPTIONAL_REFRESH) {
                return Ok(false);
            }
        }
        self.refresh(false).await?;
        Ok(self.cache.read().await.kinds.contains_key(&key))
    }

    /// The API server's version and every served group/version and group/version/kind (as
    /// `helm template --api-versions` takes them), from the last discovery.
    pub async fn capabilities(&self) -> Result<(String, Vec<String>), ApplyError> {
        if self.cache.read().await.refreshed.is_none() {
            self.refresh(false).await?;
        }
        let cache = self.cache.read().await;
        Ok((cache.kube_version.clone(), cache.api_versions.clone()))
    }

    /// Re-runs discovery; with `force`, even if it ran a moment ago (after installing CRDs).
    pub async fn refresh(&self, force: bool) -> Result<(), ApplyError> {
        let mut cache = self.cache.write().await;
        if !force && cache.refreshed.is_some_and(|t| t.elapsed() < MIN_REFRESH) {
            return Ok(());
        }
        let discovery = Discovery::new(self.client.clone()).run().await.map_err(ApplyError::Discovery)?;
        let mut kinds = HashMap::new();
        let mut api_versions = std::collections::BTreeSet::new();
        for group in discovery.groups() {
            for version in group.versions() {
                for (resource, caps) in group.versioned_resources(version) {
                    api_versions.insert(resource.api_version.clone());
                    api_versions.insert(format!("{}/{}", resource.api_version, resource.kind));
                    let namespaced = matches!(caps.scope, Scope::Namespaced);
                    kinds.insert(
                        (resource.api_version.clone(), resource.kind.clone()),
                        Arc::new(Resolved { resource: resource.clone(), namespaced }),
                    );
                }
            }
        }
        cache.kinds = kinds;
        cache.api_versions = api_versions.into_iter().collect();
        if cache.kube_version.is_empty() {
            cache.kube_version =
                self.client.apiserver_version().await.map(|v| v.git_version).map_err(ApplyError::Discovery)?;
        }
        cache.refreshed = Some(Instant::now());
        Ok(())
    }
}

/// Impersonation as request headers on a shared client: one connection pool and TLS state for
/// every account the operator acts as, instead of a client (and its connections) per account.
#[derive(Clone)]
struct Impersonate {
    base: Client,
    user: http::HeaderValue,
    groups: Vec<http::HeaderValue>,
}

impl tower::Service<http::Request<kube::client::Body>> for Impersonate {
    type Response = http::Response<kube::client::Body>;
    type Error = kube::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, kube::Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), kube::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<kube::client::Body>) -> Self::Future {
        let headers = request.headers_mut();
        headers.insert("Impersonate-User", self.user.clone());
        for group in &self.groups {
            headers.append("Impersonate-Group", group.clone());
        }
        let base = self.base.clone();
        Box::pin(async move { base.send(request).await })
    }
}

/// `base` acting as service account `namespace/name`, sharing `base`'s connections. Without
/// `extra_group` the API server derives the account's groups itself, so only impersonating the
/// account must be allowed; with it, the account's own groups are sent too, and impersonating
/// those groups must be allowed as well (`system:authenticated` is always added by the server).
pub fn impersonating_client(
    base: &Client,
    namespace: &str,
    name: &str,
    extra_group: Option<&str>,
) -> Result<Client, kube::Error> {
    let value = |text: String| {
        http::HeaderValue::from_str(&text)
            .map_err(|e| kube::Error::Service(format!("invalid impersonation header {text}: {e}").into()))
    };
    let user = value(format!("system:serviceaccount:{namespace}:{name}"))?;
    let groups = match extra_group {
        Some(group) => vec![
            value("system:serviceaccounts".into())?,
            value(format!("system:serviceaccounts:{namespace}"))?,
            value(group.to_string())?,
        ],
        None => Vec::new(),
    };
    Ok(Client::new(Impersonate { base: base.clone(), user, groups }, base.default_namespace().to_string()))
}
