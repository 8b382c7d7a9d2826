//! What every reconciler shares: the client, discovery, the git cache and the event recorder.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use factory_api::environment::ApplicationStatus;
use factory_api::{Approval, Environment, Factory, InventoryEntry, PreviewEnvironment, Release};
use factory_apply::Resolver;
use factory_source::RepoCache;
use factory_tools::{Config as ToolsConfig, Tools};
use kube::api::ListParams;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use crate::services::watches::Cached;

/// The default of [`Context::resync`].
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(300);

/// How long after a status write the watch's copy of the object may still lack it (it
/// arrives within milliseconds; this is generous).
pub const STATUS_LAG: Duration = Duration::from_secs(10);

/// The default of `--render-workers`.
pub const DEFAULT_RENDER_WORKERS: u16 = 2;

/// How kustomize and helm run by default: the binaries given, trees and scratch space beside
/// the git cache, default limits, 256 MiB of rendered output kept.
pub fn tools_config(git_cache: &std::path::Path, kustomize: PathBuf, helm: PathBuf) -> ToolsConfig {
    ToolsConfig {
        kustomize,
        helm,
        work_dir: git_cache.join(".render"),
        limits: factory_tools::Limits::default(),
        cache_bytes: 256 * 1024 * 1024,
    }
}

/// Shared state of the reconcilers.
pub struct Context {
    /// The operator's own client.
    pub client: Client,
    /// Discovery, cached.
    pub resolver: Arc<Resolver>,
    /// Git repositories, shared by every factory pointing at the same URL and credential.
    pub repos: Arc<RepoCache>,
    /// Kubernetes Events.
    pub recorder: crate::services::events::Recorder,
    /// Prometheus metrics.
    pub metrics: Arc<crate::services::metrics::Metrics>,
    /// What `/readyz` answers.
    pub health: Arc<crate::services::health::Health>,
    /// How often an environment, preview or team factory is re-applied when nothing triggers it
    /// (hand-made changes are corrected then).
    pub resync: Duration,
    /// Namespace of the team factories' own accounts (`--tenant-namespace`; [`factory_core::identity`]).
    pub tenant_namespace: String,
    /// kustomize and helm, their trees and their output cache.
    pub tools: Arc<Tools>,
    /// Renders running at once (`--render-workers`): the rest wait here, not on a reconcile slot.
    pub render_workers: Arc<tokio::sync::Semaphore>,
    /// Git hosts: pull-request listings and the commit statuses posted.
    pub hosts: Arc<crate::services::hosts::Hosts>,
    /// Notifications to the team factories' webhook targets.
    pub notifier: Arc<crate::services::notify::Notifier>,
    impersonated: Mutex<HashMap<(String, String), Client>>,
    remotes: Mutex<HashMap<String, Remote>>,
    applied: Mutex<HashMap<String, (String, Instant, Applied)>>,
    /// Per object (uid): the resourceVersion our last status write returned, and when.
    written: Mutex<HashMap<String, (String, Instant)>>,
    stores: OnceLock<Stores>,
}

/// The objects of kind `K` in `namespace`: from `cached` once it has listed, else listed
/// (without controllers, as in tests of a single reconcile).
async fn in_namespace<K>(
    cached: Option<&Cached<K>>,
    client: &Client,
    namespace: &str,
) -> Result<Vec<Arc<K>>, kube::Error>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    if let Some(cached) = cached
        && let Some(all) = cached.listed_state().await
    {
        return Ok(all.into_iter().filter(|o| o.namespace().as_deref() == Some(namespace)).collect());
    }
    let listed = Api::<K>::namespaced(client.clone(), namespace).list(&ListParams::default()).await?;
    Ok(listed.items.into_iter().map(Arc::new).collect())
}

/// The objects the controllers' shared watches last delivered (`crate::services::watches`).
#[derive(Clone)]
pub struct Stores {
    /// Every Factory.
    pub factories: Store<Factory>,
    /// Every Environment.
    pub environments: Cached<Environment>,
    /// Every PreviewEnvironment.
    pub previews: Cached<PreviewEnvironment>,
    /// Every Release.
    pub releases: Cached<Release>,
    /// Every Approval.
    pub approvals: Cached<Approval>,
}

/// Where a reconcile reads a factory: the shared store (which the watches update before they
/// trigger anything, so it holds at least what triggered the reconcile), or the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// [`Stores::factories`].
    Store,
    /// A GET.
    Api,
}

/// What a team factory's reconcile applied and recorded on status ([`Context::remember_applied`]).
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// Its Environment objects.
    pub inventory: Vec<InventoryEntry>,
    /// Its pipelines.
    pub pipelines: Vec<ApplicationStatus>,
}

/// A client and discovery for another cluster, keyed by the kubeconfig that reaches it.
#[derive(Clone)]
pub struct Remote {
    /// Client acting with the kubeconfig's identity.
    pub client: Client,
    /// Discovery of that cluster.
    pub resolver: Arc<Resolver>,
}

impl Context {
    /// A context for the cluster of `config`, caching git repositories under `cache_dir`.
    pub fn new(config: kube::Config, cache_dir: PathBuf) -> Result<Self, kube::Error> {
        let client = Client::try_from(config)?;
        let reporter = Reporter { controller: "factory-operator".into(), instance: std::env::var("POD_NAME").ok() };
        Ok(Self {
            resolver: Arc::new(Resolver::new(client.clone())),
            repos: Arc::new(RepoCache::new(cache_dir.clone())),
            recorder: crate::services::events::Recorder::new(client.clone(), reporter),
            metrics: Arc::new(crate::services::metrics::Metrics::default()),
            health: Arc::new(crate::services::health::Health::new(client.clone())),
            resync: DEFAULT_RESYNC,
            tenant_namespace: factory_api::DEFAULT_TENANT_NAMESPACE.to_string(),
            tools: Arc::new(Tools::new(tools_config(&cache_dir, "kustomize".into(), "helm".into()))),
            render_workers: Arc::new(tokio::sync::Semaphore::new(usize::from(DEFAULT_RENDER_WORKERS))),
            hosts: Arc::default(),
            notifier: Arc::default(),
            client,
            impersonated: Mutex::new(HashMap::new()),
            remotes: Mutex::new(HashMap::new()),
            applied: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
            stores: OnceLock::new(),
        })
    }

    /// Runs kustomize and helm as `config` says, `workers` at once.
    pub fn set_tools(&mut self, config: ToolsConfig, workers: usize) {
        self.tools = Arc::new(Tools::new(config));
        self.render_workers = Arc::new(tokio::sync::Semaphore::new(workers.max(1)));
    }

    /// Hands the controllers' stores to the reconcilers (once, when they start).
    pub fn set_stores(&self, stores: Stores) {
        let _ = self.stores.set(stores);
    }

    /// The Environments of team factory `factory`: from the store once it has listed, else
    /// listed (without controllers, as in tests of a single reconcile).
    pub async fn environments_of(&self, factory: &str) -> Result<Vec<Arc<Environment>>, kube::Error> {
        if let Some(cached) = self.stores.get().map(|s| &s.environments)
            && let Some(all) = cached.listed_state().await
        {
            return Ok(all.into_iter().filter(|e| e.spec.factory == factory).collect());
        }
        let selector = format!("{}={factory}", factory_api::labels::FACTORY);
        let listed =
            Api::<Environment>::all(self.client.clone()).list(&ListParams::default().labels(&selector)).await?;
        Ok(listed.items.into_iter().map(Arc::new).collect())
    }

    /// The PreviewEnvironments in `namespace`, like [`Self::environments_of`].
    pub async fn previews_in(&self, namespace: &str) -> Result<Vec<Arc<PreviewEnvironment>>, kube::Error> {
        in_namespace(self.stores.get().map(|s| &s.previews), &self.client, namespace).await
    }

    /// The Releases in `namespace` (a cicd namespace), like [`Self::previews_in`].
    pub async fn releases_in(&self, namespace: &str) -> Result<Vec<Arc<Release>>, kube::Error> {
        in_namespace(self.stores.get().map(|s| &s.releases), &self.client, namespace).await
    }

    /// The Approvals in `namespace` (an environment's), like [`Self::previews_in`].
    pub async fn approvals_in(&self, namespace: &str) -> Result<Vec<Arc<Approval>>, kube::Error> {
        in_namespace(self.stores.get().map(|s| &s.approvals), &self.client, namespace).await
    }

    /// Factory `name`, read as `read` says; a store that does not hold it yet (it is still
    /// listing) is answered by a GET. At 10,000 environments a platform factory's status is
    /// about a megabyte: reading it once per environment reconcile loaded the API server more
    /// than the environments did.
    pub async fn factory(&self, name: &str, read: Read) -> Result<Option<Arc<Factory>>, kube::Error> {
        let store = match (read, self.stores.get()) {
            (Read::Store, Some(s)) => Some(&s.factories),
            _ => None,
        };
        if let Some(found) = store.and_then(|s| s.get(&ObjectRef::new(name))) {
            return Ok(Some(found));
        }
        Ok(Api::<Factory>::all(self.client.clone()).get_opt(name).await?.map(Arc::new))
    }

    /// What `key` recorded as applied if it applied exactly `fingerprint` (a digest of its
    /// inputs) by this process less than `within` ago: a reconcile triggered only to refresh a
    /// summary may skip the apply. What was applied comes from here, not from the object's
    /// status, which a reconcile started right after the last one may not see yet.
    pub fn applied_recently(&self, key: &str, fingerprint: &str, within: Duration) -> Option<Applied> {
        let applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        applied.get(key).filter(|(f, at, _)| f == fingerprint && at.elapsed() < within).map(|(_, _, a)| a.clone())
    }

    /// Records that `key` applied `fingerprint` just now, with the result.
    pub fn remember_applied(&self, key: &str, fingerprint: String, applied: Applied) {
        let entry = (fingerprint, Instant::now(), applied);
        self.applied.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_string(), entry);
    }

    /// Records that a status write of object `uid` returned `resource_version`.
    pub fn remember_written(&self, uid: &str, resource_version: String) {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        written.retain(|_, (_, at)| at.elapsed() < STATUS_LAG);
        written.insert(uid.to_string(), (resource_version, Instant::now()));
    }

    /// Whether the watch's copy of an object (`uid` at `resource_version`) may predate a status
    /// this process wrote: written less than [`STATUS_LAG`] ago, at another resourceVersion.
    pub fn maybe_behind_own_write(&self, uid: &str, resource_version: Option<&str>) -> bool {
        let written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        written.get(uid).is_some_and(|(rv, at)| at.elapsed() < STATUS_LAG && Some(rv.as_str()) != resource_version)
    }

    /// A client for the cluster `kubeconfig` reaches, cached per kubeconfig content (a rotated
    /// Secret gets a new client).
    pub async fn remote(&self, kubeconfig: &str) -> Result<Remote, String> {
        let key = factory_core::inventory::digest(&serde_json::Value::String(kubeconfig.to_string()));
        if let Some(remote) = self.remotes.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(remote.clone());
        }
        let parsed = kube::config::Kubeconfig::from_yaml(kubeconfig).map_err(|e| format!("invalid kubeconfig: {e}"))?;
        let config = kube::Config::from_custom_kubeconfig(parsed, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| format!("unusable kubeconfig: {e}"))?;
        let client = Client::try_from(config).map_err(|e| format!("cannot build a client: {e}"))?;
        let remote = Remote { resolver: Arc::new(Resolver::new(client.clone())), client };
        // Protected environments there are guarded at admission there, before anything is applied.
        crate::services::admission::install(
            remote.client.clone(),
            remote.resolver.clone(),
            factory_core::admission::policies(),
        )
        .await
        .map_err(|e| format!("installing the admission policies in that cluster: {e}"))?;
        self.remotes.lock().unwrap_or_else(|p| p.into_inner()).insert(key, remote.clone());
        Ok(remote)
    }

    /// A client that acts as service account `namespace/name` (impersonation), so that the
    /// API server's RBAC bounds what content applied through it can do. Cached per account.
    pub fn impersonating(&self, namespace: &str, name: &str) -> Result<Client, kube::Error> {
        self.impersonating_with(namespace, name, None)
    }

    /// A client acting as team factory `factory`'s own account (in [`Self::tenant_namespace`]):
    /// everything of the team's repositories is applied, and the Secrets its spec names are
    /// read, with that account's rights.
    pub fn tenant(&self, factory: &str) -> Result<Client, kube::Error> {
        self.impersonating(&self.tenant_namespace, factory)
    }

    /// A client acting as `factory` itself — a platform factory's account, or a team factory's
    /// ([`Self::tenant`]) — and the namespace the Secrets its spec names default to (the
    /// account's namespace, or the team's cicd namespace).
    pub fn identity(&self, factory: &Factory) -> Result<(Client, String), kube::Error> {
        match &factory.spec.service_account {
            Some(account) => {
                Ok((self.impersonating_platform(&account.namespace, &account.name)?, account.namespace.clone()))
            }
            None => {
                let name = factory.name_any();
                Ok((self.tenant(&name)?, factory_core::names::cicd_namespace(&name)))
            }
        }
    }

    /// Like [`Self::impersonating`], for a platform factory's account: the requests also carry
    /// the group [`factory_core::admission::PLATFORM_GROUP`], which the admission policies let
    /// change operator-owned objects and which only the operator can impersonate.
    pub fn impersonating_platform(&self, namespace: &str, name: &str) -> Result<Client, kube::Error> {
        self.impersonating_with(namespace, name, Some(factory_core::admission::PLATFORM_GROUP))
    }

    fn impersonating_with(&self, namespace: &str, name: &str, group: Option<&str>) -> Result<Client, kube::Error> {
        let key = (format!("{namespace}{}", group.map(|g| format!("+{g}")).unwrap_or_default()), name.to_string());
        let mut cache = self.impersonated.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = cache.get(&key) {
            return Ok(client.clone());
        }
        let client = factory_apply::impersonating_client(&self.client, namespace, name, group)?;
        cache.insert(key, client.clone());
        Ok(client)
    }
}
