//! Prometheus metrics: a small fixed set, labelled by controller and reason, served with the
//! health endpoints on `--metrics-addr`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use factory_api::conditions::Reason;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::services::health::Health;

/// Labels of reconcile outcomes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `factory` or `environment`.
    pub controller: String,
    /// `Reconciled` or the failure's reason.
    pub reason: String,
}

/// Labels naming one controller.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// `factory` or `environment`.
    pub controller: String,
}

/// Labels naming one object.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    /// Kind of the object (`Environment`).
    pub kind: String,
    /// Its name.
    pub name: String,
}

/// Labels of one git sync.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FetchLabels {
    /// `fetched` (objects downloaded), `unchanged` (a ref listing showed nothing new) or the
    /// failure's reason.
    pub outcome: String,
}

/// Labels naming one factory.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FactoryLabels {
    /// The factory's name.
    pub factory: String,
}

/// Labels of something sent outside the cluster.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SentLabels {
    /// The notification's event (`failure`), or the commit status's state (`success`).
    pub kind: String,
    /// `sent`, `failed` (given up after retries), or `dropped` (the queue was full).
    pub outcome: String,
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    /// Reconciles by controller and outcome reason.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// Reconcile durations by controller.
    pub duration: Family<ControllerLabels, Histogram>,
    /// Objects created or updated, by controller.
    pub applied: Family<ControllerLabels, Counter>,
    /// Objects pruned, by controller.
    pub pruned: Family<ControllerLabels, Counter>,
    /// Objects changed by hand and left as found (`driftPolicy: Report`), per environment.
    pub drifted: Family<ObjectLabels, Gauge>,
    /// Git syncs by outcome, with their duration.
    pub git_fetch: Family<FetchLabels, Histogram>,
    /// kustomize and helm renders by outcome (`hit` from the cache, `rendered`, `failed`), with
    /// their duration (a wait for a render worker included).
    pub render: Family<FetchLabels, Histogram>,
    /// Preview environments that exist, by team factory.
    pub previews_active: Family<FactoryLabels, Gauge>,
    /// 1 while this process holds the leader lease (or runs without leader election).
    pub leader: Gauge,
    /// Notifications by event and outcome.
    pub notifications: Family<SentLabels, Counter>,
    /// Commit statuses posted on git hosts, by state and outcome.
    pub commit_statuses: Family<SentLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("factory_operator");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let duration = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 14))
        });
        let applied = Family::<ControllerLabels, Counter>::default();
        let pruned = Family::<ControllerLabels, Counter>::default();
        let drifted = Family::<ObjectLabels, Gauge>::default();
        let git_fetch = Family::<FetchLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        let render = Family::<FetchLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let previews_active = Family::<FactoryLabels, Gauge>::default();
        let leader = Gauge::default();
        registry.register("reconciles", "Reconciles by controller and outcome reason", reconciles.clone());
        registry.register("reconcile_duration_seconds", "Time spent in one reconcile", duration.clone());
        registry.register("objects_applied", "Objects created or updated", applied.clone());
        registry.register("objects_pruned", "Objects deleted because they left git", pruned.clone());
        registry.register(
            "drifted_objects",
            "Objects changed by hand and left as found (driftPolicy: Report)",
            drifted.clone(),
        );
        registry.register(
            "git_fetch_duration_seconds",
            "Git syncs (ref listing, and a fetch when something is new) by outcome",
            git_fetch.clone(),
        );
        registry.register(
            "render_duration_seconds",
            "kustomize and helm renders by outcome: hit (from the cache), rendered or failed",
            render.clone(),
        );
        registry.register(
            "previews_active",
            "Preview environments that exist, by team factory",
            previews_active.clone(),
        );
        registry.register("leader", "1 while this process is the leader", leader.clone());
        let notifications = Family::<SentLabels, Counter>::default();
        let commit_statuses = Family::<SentLabels, Counter>::default();
        registry.register(
            "notifications",
            "Notifications to webhook targets by event and outcome",
            notifications.clone(),
        );
        registry.register(
            "commit_statuses",
            "Commit statuses posted on git hosts by state and outcome",
            commit_statuses.clone(),
        );
        Self {
            registry,
            reconciles,
            duration,
            applied,
            pruned,
            drifted,
            git_fetch,
            render,
            previews_active,
            leader,
            notifications,
            commit_statuses,
        }
    }
}

impl Metrics {
    /// Records one finished reconcile.
    pub fn reconciled(&self, controller: &str, reason: Reason, took: Duration, applied: usize, pruned: usize) {
        let c = ControllerLabels { controller: controller.into() };
        self.reconciles
            .get_or_create(&ReconcileLabels { controller: controller.into(), reason: reason.as_str().into() })
            .inc();
        self.duration.get_or_create(&c).observe(took.as_secs_f64());
        self.applied.get_or_create(&c).inc_by(applied as u64);
        self.pruned.get_or_create(&c).inc_by(pruned as u64);
    }

    /// Counts one thing sent outside the cluster in `family`.
    pub fn sent(family: &Family<SentLabels, Counter>, kind: &str, outcome: &str) {
        family.get_or_create(&SentLabels { kind: kind.into(), outcome: outcome.into() }).inc();
    }

    /// Records one render (or cache answer) of kustomize or helm.
    pub fn observe_render(&self, outcome: &str, took: Duration) {
        self.render.get_or_create(&FetchLabels { outcome: outcome.into() }).observe(took.as_secs_f64());
    }

    /// Drops the series of Environment `name` (it was deleted): a gauge left behind would
    /// report drift in an environment that no longer exists.
    pub fn forget_environment(&self, name: &str) {
        self.drifted.remove(&ObjectLabels { kind: "Environment".into(), name: name.into() });
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// `/metrics`, `/healthz` (the process runs) and `/readyz` ([`Health::ready`]).
pub fn router(metrics: Arc<Metrics>, health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state((metrics, health))
}

async fn readyz(State((_, health)): State<(Arc<Metrics>, Arc<Health>)>) -> (StatusCode, String) {
    match health.ready().await {
        Ok(()) => (StatusCode::OK, "ok".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
    }
}

async fn serve_metrics(State((metrics, _)): State<(Arc<Metrics>, Arc<Health>)>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        metrics.encode(),
    )
}
