//! What runs the reconcilers: one shared watch per kind, the controllers wired to them and to
//! the changes of other kinds that concern them, leader election, the health and metrics
//! endpoints, the webhook receiver, and a bounded shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use factory_api::{Approval, Environment, Factory, PreviewEnvironment, Release};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tracing::warn;

use crate::reconcilers;
use crate::reconcilers::environment::EnvironmentReconciler;
use crate::reconcilers::skeleton;
use crate::services::context::{self, Context};
use crate::services::error::ReconcileError;
use crate::services::watches::{self, SharedWatch};
use crate::services::{backoff, metrics, tekton, triggers};

pub mod leader;
mod relations;
pub mod webhook;

use relations::{
    credential_targets, environment_in, environments_of_factory, environments_of_team, factory_of_run, runs_labelled,
    summary_trigger, team_of_cicd,
};

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
    // Releases and approvals: read by every environment reconcile of an application delivered
    // by releases (from the store, not a LIST each time) and triggering both controllers.
    let (releases, approvals) = (SharedWatch::<Release>::new(), SharedWatch::<Approval>::new());
    let (factory_store, env_store, preview_store) = (factories.store(), environments.store(), previews_watch.store());
    ctx.set_stores(context::Stores {
        factories: factory_store.clone(),
        environments: environments.cached(),
        previews: previews_watch.cached(),
        releases: releases.cached(),
        approvals: approvals.cached(),
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
    let platform_teams = factory_store.clone();
    let (factory_own, factory_for_envs) = (factories.subscribe(), factories.subscribe());
    let (env_own, preview_own) = (environments.subscribe(), previews_watch.subscribe());
    let (releases_for_factories, releases_for_envs) = (releases.subscribe(), releases.subscribe());
    let approvals_for_envs = approvals.subscribe();
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
        // These trigger through their subscribers alone.
        tokio::spawn(releases.run(Api::all(ctx.client.clone()), futures::channel::mpsc::unbounded::<()>().0, |_| [])),
        tokio::spawn(approvals.run(Api::all(ctx.client.clone()), futures::channel::mpsc::unbounded::<()>().0, |_| [])),
        // Notifications go out from the leader, beside its reconciles.
        tokio::spawn(crate::services::notify::Notifier::run(ctx.clone())),
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
                tekton::pipeline_run_resource(),
            )
            // A release is judged by its team factory (an application it does not have).
            .watches_shared_stream(releases_for_factories, |release: Arc<Release>| {
                team_of_cicd(release.namespace()).map(|name| ObjectRef::<Factory>::new(&name))
            })
            // A shared image's build updates its platform factory's view of the image.
            .watches_stream_with(
                runs_labelled(&ctx.client, factory_api::labels::IMAGE),
                factory_of_run,
                tekton::pipeline_run_resource(),
            )
            .trigger_backoff(backoff::WatchBackoff::default())
            .graceful_shutdown_on(stopped(&stop_tx))
            .run(reconcilers::factory::reconcile, error_policy, ctx.clone())
            .for_each(log_result);

    let factory_envs = env_store.clone();
    let secret_envs = env_store.clone();
    let (release_envs, approval_envs) = (env_store.clone(), env_store.clone());
    let secrets: Api<PartialObjectMeta<Secret>> = Api::all(ctx.client.clone());
    let env = Controller::for_shared_stream(watches::changed(env_own, triggers::inputs::<Environment>), env_store)
        .with_config(config.clone())
        // A factory's change (a new platform revision, a team factory's spec) re-reconciles
        // its environments: for a platform factory, those of the team factories it built
        // (another platform's are not its concern), for a team factory, its own.
        .watches_shared_stream(
            watches::changed(factory_for_envs, triggers::factory_for_environments),
            move |factory: Arc<Factory>| environments_of_factory(&factory, &platform_teams, &factory_envs),
        )
        // A credential's source Secret changed: re-deliver it. Metadata only: the operator
        // never caches Secret contents.
        .watches_stream(watcher::watcher(secrets, watcher::Config::default()).touched_objects(), move |secret| {
            credential_targets(&secret, &secret_factories, &secret_envs)
        })
        // A new release, or one that became healthy somewhere, may move every environment of
        // its factory; an approval, the environment whose namespace holds it.
        .watches_shared_stream(releases_for_envs, move |release: Arc<Release>| {
            environments_of_team(team_of_cicd(release.namespace()), &release_envs)
        })
        .watches_shared_stream(approvals_for_envs, move |approval: Arc<Approval>| {
            environment_in(approval.namespace(), &approval_envs)
        })
        .trigger_backoff(backoff::WatchBackoff::default())
        .graceful_shutdown_on(stopped(&stop_tx))
        .run(skeleton::run::<EnvironmentReconciler>, error_policy, ctx)
        .for_each(log_result);

    let previews = Controller::for_shared_stream(
        watches::changed(preview_own, triggers::inputs::<PreviewEnvironment>),
        preview_store,
    )
    .with_config(config)
    .trigger_backoff(backoff::WatchBackoff::default())
    .graceful_shutdown_on(stopped(&stop_tx))
    .run(reconcilers::preview::reconcile, error_policy, ctx_previews)
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
    crate::services::admission::install(ctx.client.clone(), ctx.resolver.clone(), objects).await
}

/// Aborts the watch tasks when the reconcilers stop.
struct AbortOnDrop(Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::AbortHandle::abort);
    }
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
