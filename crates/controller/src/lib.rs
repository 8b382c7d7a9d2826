//! The factory-operator controller: command-line flags, logging, the connection to the API
//! server, and the reconcilers, one module per resource.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Parser, ValueEnum};
use factory_api::{Environment, Factory, PreviewEnvironment};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::discovery::Discovery;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

mod admission;
pub mod application;
mod backoff;
pub mod context;
mod credentials;
pub mod environment;
pub mod error;
pub mod events;
pub mod health;
pub mod images;
pub mod leader;
pub mod metrics;
pub mod pipelines;
pub mod platform;
pub mod preview;
mod source;
pub mod status;
pub mod team;
pub mod triggers;
pub mod watches;
pub mod webhook;

pub use context::Context;
pub use error::ReconcileError;
use watches::SharedWatch;

/// Command-line flags of `factory-operator`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "factory-operator",
    version,
    about = "Runs factories: namespaces, RBAC, quotas, policies and pipelines from git"
)]
pub struct Args {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "FACTORY_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax, such as `info` or `factory_controller=debug`.
    #[arg(long, default_value = "info", env = "FACTORY_LOG")]
    pub log: String,
    /// Where git repositories are cached.
    #[arg(long, default_value = "/tmp/factory-operator/git", env = "FACTORY_GIT_CACHE")]
    pub git_cache: PathBuf,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, default_value = "0.0.0.0:8080", env = "FACTORY_METRICS_ADDR")]
    pub metrics_addr: String,
    /// Address of the webhook receiver (`POST /hooks/git`).
    #[arg(long, default_value = "0.0.0.0:9292", env = "FACTORY_WEBHOOK_ADDR")]
    pub webhook_addr: String,
    /// Shared secret of the webhook receiver: HMAC key (GitHub, Gitea) or token (GitLab).
    /// The receiver is off without it.
    #[arg(long, env = "FACTORY_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Check the connection and the installed CRDs, print what was found and exit.
    #[arg(long)]
    pub check: bool,
    /// Run reconcilers only while holding the Lease `factory-operator`, so several replicas are safe.
    #[arg(long, env = "FACTORY_LEADER_ELECT")]
    pub leader_elect: bool,
    /// How often environments, previews and team factories are re-applied when nothing changed
    /// (drift correction), ±10%. Each costs a read and a dry-run per object: a large fleet on a
    /// small API server needs a longer interval (docs/benchmarks.md).
    #[arg(long, default_value = "5m", value_parser = parse_interval, env = "FACTORY_RESYNC_INTERVAL")]
    pub resync_interval: Duration,
    /// Reconciles each controller (factories, environments, previews) runs at once.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..), env = "FACTORY_CONCURRENT_RECONCILES")]
    pub concurrent_reconciles: u16,
    /// Namespace of the team factories' own service accounts, where no tenant holds any right
    /// (the chart creates it and lets the operator impersonate the accounts in it).
    #[arg(long, default_value = factory_api::DEFAULT_TENANT_NAMESPACE, env = "FACTORY_TENANT_NAMESPACE")]
    pub tenant_namespace: String,
    /// Namespace of the leader Lease (in a pod: its own namespace).
    #[arg(long, default_value = "factory-system", env = "POD_NAMESPACE")]
    pub leader_election_namespace: String,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let d = factory_core::duration::parse(text).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(10) {
        return Err("must be at least 10s".into());
    }
    Ok(d)
}

/// This process's identity for leader election: the pod name (or host name) and the process id.
fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .or_else(|_| std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()))
        .unwrap_or_else(|_| "factory-operator".into());
    format!("{host}_{}", std::process::id())
}

/// How logs are written.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn init_logging(args: &Args) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log).context("invalid --log filter")?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot initialise logging: {e}"))
}

/// Connects to the cluster (in-cluster config or `KUBECONFIG`), checks that the
/// `factories.dev` API is served, and runs the reconcilers until SIGTERM or Ctrl-C.
pub async fn run(args: Args) -> Result<()> {
    init_logging(&args)?;
    let config = kube::Config::infer().await.context("finding cluster credentials (in-cluster or KUBECONFIG)")?;
    let client = Client::try_from(config.clone()).context("building the Kubernetes client")?;
    let version = client.apiserver_version().await.context("reading the API server version")?;
    info!(server = %version.git_version, "connected to the Kubernetes API");
    let kinds = served_kinds(&client, factory_api::GROUP).await?;
    if args.check {
        println!(
            "Kubernetes {} serves {}/{}: {}",
            version.git_version,
            factory_api::GROUP,
            factory_api::VERSION,
            kinds.join(", ")
        );
        return Ok(());
    }
    let mut ctx = Context::new(config, args.git_cache.clone()).context("building the reconcile context")?;
    ctx.resync = args.resync_interval;
    ctx.tenant_namespace = args.tenant_namespace.clone();
    let ctx = Arc::new(ctx);
    let webhook = match (&args.webhook_secret, &args.webhook_addr) {
        (Some(secret), addr) if !secret.is_empty() => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the webhook receiver to {addr}"))?;
            info!(%addr, "webhook receiver listening on /hooks/git");
            Some((listener, secret.clone()))
        }
        _ => {
            info!("webhook receiver disabled (no --webhook-secret)");
            None
        }
    };
    let metrics = tokio::net::TcpListener::bind(&args.metrics_addr)
        .await
        .with_context(|| format!("binding the metrics endpoint to {}", args.metrics_addr))?;
    info!(addr = %args.metrics_addr, "serving /metrics, /healthz and /readyz");
    let leader = args.leader_elect.then(|| leader::Config::new(&args.leader_election_namespace, &identity()));
    let options = Options { webhook, metrics: Some(metrics), leader, concurrency: args.concurrent_reconciles };
    run_controllers(ctx, options, shutdown_signal()).await?;
    info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
    info!("shutting down: finishing reconciles in flight");
}

/// How long reconciles in flight may take to finish after SIGTERM (the chart gives the pod 60 s).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Reconciles each controller runs at once, unless told otherwise. Unbounded, a cold start of
/// 1,000 environments held them all in memory at once (729 MiB) while the API server, not the
/// operator, set the pace.
pub const DEFAULT_CONCURRENCY: u16 = 16;

/// How long a team factory's summary waits for more of its environments and previews to
/// change: at 2,000 environments a cold start wrote each summary 12 times (2,509 status writes).
const SUMMARY_WINDOW: Duration = Duration::from_secs(1);

/// Optional parts of the runtime.
pub struct Options {
    /// The webhook receiver's listener and shared secret; `None` disables it.
    pub webhook: Option<(tokio::net::TcpListener, String)>,
    /// The listener for `/metrics`, `/healthz` and `/readyz`; `None` disables them.
    pub metrics: Option<tokio::net::TcpListener>,
    /// Leader election; `None` runs the reconcilers at once (a single replica).
    pub leader: Option<leader::Config>,
    /// Reconciles each controller runs at once.
    pub concurrency: u16,
}

impl Default for Options {
    fn default() -> Self {
        Self { webhook: None, metrics: None, leader: None, concurrency: DEFAULT_CONCURRENCY }
    }
}

/// Runs every reconciler (and the webhook receiver) until `shutdown` resolves; reconciles in
/// flight finish first. With leader election, the health endpoints answer at once and the
/// rest starts once this process leads; losing the lease stops everything with an error (the
/// process exits, and its restart becomes a standby).
pub async fn run_controllers(
    ctx: Arc<Context>,
    options: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    let metrics_server = {
        let (metrics, health) = (ctx.metrics.clone(), ctx.health.clone());
        async move {
            if let Some(listener) = options.metrics {
                if let Err(e) = axum::serve(listener, metrics::router(metrics, health)).await {
                    warn!(error = %e, "metrics server stopped");
                }
            } else {
                std::future::pending::<()>().await;
            }
        }
    };
    let metrics_task = tokio::spawn(metrics_server);
    // Every replica receives pushes: the receiver only annotates factories, the leader reconciles.
    let receiver_task = options.webhook.map(|(listener, secret)| {
        let router = webhook::router(webhook::Receiver { secret, ctx: ctx.clone() });
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                warn!(error = %e, "webhook receiver stopped");
            }
        })
    });
    tokio::pin!(shutdown);
    let mut leadership = match options.leader {
        Some(config) => tokio::select! {
            held = leader::acquire(ctx.client.clone(), config) => Some(held),
            _ = &mut shutdown => {
                metrics_task.abort();
                receiver_task.iter().for_each(|t| t.abort());
                return Ok(());
            }
        },
        None => None,
    };
    ctx.metrics.leader.set(1);
    ctx.health.set_leading(true);
    let lost = async {
        match leadership.as_mut() {
            Some(l) => l.lost().await,
            None => std::future::pending().await,
        }
    };
    let result = lead(ctx.clone(), options.concurrency, shutdown, lost).await;
    ctx.metrics.leader.set(0);
    ctx.health.set_leading(false);
    if let Some(l) = leadership {
        l.release().await;
    }
    metrics_task.abort();
    receiver_task.iter().for_each(|t| t.abort());
    result
}

/// The reconcilers, until `shutdown` or `lost`.
async fn lead(
    ctx: Arc<Context>,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send,
    lost: impl std::future::Future<Output = ()> + Send,
) -> Result<()> {
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let stopped = |tx: &tokio::sync::broadcast::Sender<()>| {
        let mut rx = tx.subscribe();
        async move {
            let _ = rx.recv().await;
        }
    };
    if let Err(e) = install_admission_policies(&ctx).await {
        warn!(error = %e, "could not install the admission policies; protected environments are not guarded");
    }
    let ctx_previews = ctx.clone();
    let config = controller::Config::default().concurrency(concurrency);
    // One watch per kind, shared (`watches`). Each controller's own objects trigger it on their
    // inputs only, never on its own status writes (`triggers`); the other kinds trigger it on
    // what the reconciles they trigger read.
    let factories = SharedWatch::<Factory>::new();
    let environments = SharedWatch::<Environment>::new();
    let previews_watch = SharedWatch::<PreviewEnvironment>::new();
    let (factory_store, env_store, preview_store) = (factories.store(), environments.store(), previews_watch.store());
    ctx.set_stores(context::Stores {
        factories: factory_store.clone(),
        environments: environments.cached(),
        previews: previews_watch.cached(),
    });
    // Ready (`/readyz`) once every cache holds its first list.
    let listed = {
        let (health, caches) =
            (ctx.health.clone(), (factories.cached(), environments.cached(), previews_watch.cached()));
        tokio::spawn(async move {
            if caches.0.listed_state().await.is_some()
                && caches.1.listed_state().await.is_some()
                && caches.2.listed_state().await.is_some()
            {
                health.set_listed();
            }
        })
    };
    let _stop_listed = AbortOnDrop(vec![listed.abort_handle()]);
    let secret_factories = factory_store.clone();
    let (factory_own, factory_for_envs) = (factories.subscribe(), factories.subscribe());
    let (env_own, preview_own) = (environments.subscribe(), previews_watch.subscribe());
    // Factories to reconcile because something they summarise or follow changed, sent by the
    // other watches once their stores hold the change: a platform factory's new revision (its
    // team factories apply the platform's pipeline templates at that revision); and, gathered
    // over `SUMMARY_WINDOW`, an environment's or a preview's readiness (their team factory's
    // summary).
    let (factory_tx, factory_rx) = futures::channel::mpsc::unbounded::<ObjectRef<Factory>>();
    let (summary_tx, summary_rx) = futures::channel::mpsc::unbounded::<ObjectRef<Factory>>();
    let watch_tasks = [
        tokio::spawn(factories.run(Api::all(ctx.client.clone()), factory_tx, {
            let mut revisions = triggers::Revisions::new(factory_store.clone());
            move |event| match event {
                watcher::Event::Apply(f) | watcher::Event::InitApply(f) => revisions.teams_to_update(f),
                _ => Vec::new(),
            }
        })),
        tokio::spawn(environments.run(Api::all(ctx.client.clone()), summary_tx.clone(), {
            let mut summaries = watches::Changes::new(triggers::environment_summary);
            let metrics = ctx.metrics.clone();
            move |event| {
                if let watcher::Event::Delete(env) = event {
                    metrics.forget_environment(&env.name_any());
                }
                summary_trigger(event, &mut summaries, |e: &Environment| Some(e.spec.factory.clone()))
            }
        })),
        tokio::spawn(previews_watch.run(Api::all(ctx.client.clone()), summary_tx, {
            let mut summaries = watches::Changes::new(triggers::preview_summary);
            move |event| summary_trigger(event, &mut summaries, |pv: &PreviewEnvironment| team_of_cicd(pv.namespace()))
        })),
    ];
    let _stop_watches = AbortOnDrop(watch_tasks.iter().map(tokio::task::JoinHandle::abort_handle).collect());

    let platform =
        Controller::for_shared_stream(watches::changed(factory_own, triggers::inputs::<Factory>), factory_store)
            .with_config(config.clone())
            .reconcile_on(factory_rx)
            .reconcile_on(watches::coalesced(summary_rx, SUMMARY_WINDOW))
            // A PipelineRun of an application updates its team factory's view of runs (the watch
            // retries while Tekton is absent and picks it up once installed).
            .watches_stream_with(
                runs_labelled(&ctx.client, factory_core::runs::APPLICATION_LABEL),
                factory_of_run,
                pipelines::pipeline_run_resource(),
            )
            // A shared image's build updates its platform factory's view of the image.
            .watches_stream_with(
                runs_labelled(&ctx.client, factory_api::labels::IMAGE),
                factory_of_run,
                pipelines::pipeline_run_resource(),
            )
            .trigger_backoff(backoff::WatchBackoff::default())
            .graceful_shutdown_on(stopped(&stop_tx))
            .run(platform::reconcile, error_policy, ctx.clone())
            .for_each(log_result);

    let factory_envs = env_store.clone();
    let secret_envs = env_store.clone();
    let secrets: Api<PartialObjectMeta<Secret>> = Api::all(ctx.client.clone());
    let env = Controller::for_shared_stream(watches::changed(env_own, triggers::inputs::<Environment>), env_store)
        .with_config(config.clone())
        // A factory's change (a new platform revision, a team factory's spec) re-reconciles
        // its environments: all of them for a platform factory, its own for a team factory.
        .watches_shared_stream(
            watches::changed(factory_for_envs, triggers::factory_for_environments),
            move |factory: Arc<Factory>| {
                let name = factory.name_any();
                let platform = factory.spec.factory_type == factory_api::FactoryType::Environments;
                factory_envs
                    .state()
                    .into_iter()
                    .filter(|e| platform || e.spec.factory == name)
                    .map(|e| ObjectRef::from_obj(e.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        // A credential's source Secret changed: re-deliver it. Metadata only: the operator
        // never caches Secret contents.
        .watches_stream(watcher::watcher(secrets, watcher::Config::default()).touched_objects(), move |secret| {
            credential_targets(&secret, &secret_factories, &secret_envs)
        })
        .trigger_backoff(backoff::WatchBackoff::default())
        .graceful_shutdown_on(stopped(&stop_tx))
        .run(environment::reconcile, error_policy, ctx)
        .for_each(log_result);

    let previews = Controller::for_shared_stream(
        watches::changed(preview_own, triggers::inputs::<PreviewEnvironment>),
        preview_store,
    )
    .with_config(config)
    .trigger_backoff(backoff::WatchBackoff::default())
    .graceful_shutdown_on(stopped(&stop_tx))
    .run(preview::reconcile, error_policy, ctx_previews)
    .for_each(log_result);

    let all = futures::future::join3(platform, env, previews);
    tokio::pin!(all);
    tokio::select! {
        _ = shutdown => {
            let _ = stop_tx.send(());
            // Reconciles in flight may finish, but not forever: one stuck on an unreachable API
            // server must not keep the process (and the lease) past the pod's grace period.
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut all).await.is_err() {
                warn!(seconds = SHUTDOWN_GRACE.as_secs(), "reconciles still running at the shutdown deadline; stopping anyway");
            }
        }
        _ = lost => {
            // Another process may already lead: stop at once rather than finish in-flight work.
            anyhow::bail!("lost the leader lease; exiting so that a restart waits as a standby");
        }
        _ = &mut all => {}
    }
    Ok(())
}

/// Applies the operator's cluster-wide objects — ValidatingAdmissionPolicies and their bindings,
/// the ClusterRole aggregating previews into `edit`/`admin` — with server-side apply, so a newer
/// operator updates them.
pub async fn install_admission_policies(ctx: &Context) -> Result<(), factory_apply::ApplyError> {
    let objects =
        factory_core::admission::policies().into_iter().chain(factory_core::render::operator_cluster_roles()).collect();
    admission::install(ctx.client.clone(), ctx.resolver.clone(), objects).await
}

/// The team factory whose summary an environment or preview `event` changes, if it does.
fn summary_trigger<K: kube::Resource<DynamicType = ()>>(
    event: &watcher::Event<K>,
    summaries: &mut watches::Changes<K>,
    team: impl Fn(&K) -> Option<String>,
) -> Option<ObjectRef<Factory>> {
    let object = match event {
        watcher::Event::Apply(o) | watcher::Event::InitApply(o) if summaries.changed(o) => o,
        watcher::Event::Delete(o) => {
            summaries.forget(o);
            o
        }
        _ => return None,
    };
    team(object).map(|name| ObjectRef::new(&name))
}

/// Aborts the watch tasks when the reconcilers stop.
struct AbortOnDrop(Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::AbortHandle::abort);
    }
}

/// The environments that receive a copy of `secret`.
fn credential_targets(
    secret: &PartialObjectMeta<Secret>,
    factories: &Store<Factory>,
    environments: &Store<Environment>,
) -> Vec<ObjectRef<Environment>> {
    let (ns, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
    let mut targets = Vec::new();
    for factory in factories.state() {
        for credential in factory.spec.credentials.iter().flatten() {
            if credential.from.namespace.as_deref() == Some(ns.as_str()) && credential.from.name == name {
                targets.push(credential.to.factory.clone());
            }
        }
    }
    if targets.is_empty() {
        return Vec::new();
    }
    environments
        .state()
        .into_iter()
        .filter(|e| targets.contains(&e.spec.factory))
        .map(|e| ObjectRef::from_obj(e.as_ref()))
        .collect()
}

/// PipelineRuns carrying `label`, as a stream of changed objects. Tekton is optional: while its
/// CRDs are absent this watch fails, so it retries on its own backoff and its errors are logged
/// here and dropped — a controller applies one backoff to all its watches, and these errors
/// must not slow the others down.
fn runs_labelled(
    client: &Client,
    label: &str,
) -> impl futures::Stream<Item = Result<kube::api::DynamicObject, watcher::Error>> + Send + 'static {
    let resource = pipelines::pipeline_run_resource();
    let api = Api::<kube::api::DynamicObject>::all_with(client.clone(), &resource);
    watcher::watcher(api, watcher::Config::default().labels(label)).default_backoff().touched_objects().filter_map(
        |event| async move {
            match event {
                Ok(run) => Some(Ok(run)),
                Err(e) => {
                    tracing::debug!(error = %e, "PipelineRun watch (Tekton may not be installed)");
                    None
                }
            }
        },
    )
}

/// The factory owning the cicd namespace a PipelineRun is in (`<factory>-cicd`).
fn factory_of_run(run: kube::api::DynamicObject) -> Option<ObjectRef<Factory>> {
    team_of_cicd(run.namespace()).map(|name| ObjectRef::new(&name))
}

/// The team factory whose cicd namespace (`<factory>-cicd`) `namespace` is.
fn team_of_cicd(namespace: Option<String>) -> Option<String> {
    namespace.and_then(|ns| ns.strip_suffix("-cicd").map(str::to_string))
}

async fn log_result<T, E: std::fmt::Display>(result: Result<T, E>) {
    if let Err(e) = result {
        warn!(error = %e, "reconcile loop");
    }
}

fn error_policy<K>(_object: Arc<K>, error: &ReconcileError, _ctx: Arc<Context>) -> Action {
    warn!(%error, "reconcile error; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// The kinds an API group serves, or an error saying how to install it.
async fn served_kinds(client: &Client, name: &str) -> Result<Vec<String>> {
    let discovery = Discovery::new(client.clone()).filter(&[name]).run().await.context("API discovery")?;
    let group = discovery.groups().find(|g| g.name() == name).with_context(|| {
        format!("the {name} API is not served: install the CRDs first (kubectl apply --server-side -f crds/)")
    })?;
    Ok(group.recommended_resources().into_iter().map(|(r, _)| r.kind).collect())
}
