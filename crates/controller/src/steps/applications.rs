//! Applications in an environment: each application's configuration is read from its
//! repository (`<config>/base/`, `<config>/classes/<class>/`, `<config>/environments/<env>/`,
//! later ones overriding earlier ones) and applied into the environment's namespace **as the
//! team factory's service account**, so the API server's RBAC and the operator's admission
//! policies decide what a team may do. A refused object fails that application's revision
//! before anything of it is written. What was applied is then read back: the application is
//! `Healthy` once every object is current, `Progressing` until then, and `Degraded` when an
//! object failed or its `healthTimeout` passed.

use std::collections::BTreeMap;

use factory_api::HealthState;
use factory_api::Release;
use factory_api::conditions::Reason;
use factory_api::environment::ApplicationStatus;
use factory_api::environment::Promotion;
use factory_api::factory::{Application, ApplicationRemoval, Delivery};
use factory_api::{Environment, labels};
use factory_apply::{DriftMode, Engine, PruneMode};
use factory_core::baseline;
use factory_core::delivery;
use factory_core::health::{self, Unhealthy};
use factory_core::manifests;
use factory_core::names::cicd_namespace;
use factory_source::Reference;
use factory_tools::Chart;
use k8s_openapi::jiff::Timestamp;

use crate::services::context::Context;
use crate::services::error::ReconcileError;
use crate::services::render;
use crate::services::source::{Paths, Slot, checkout, checkout_at};
use crate::services::status::Note;
use crate::steps::releases::{self, Chosen};

/// Where an application's configuration goes.
pub struct Target<'a> {
    /// The team factory.
    pub factory: &'a str,
    /// The namespace.
    pub namespace: &'a str,
    /// Environment class of the namespace.
    pub class: &'a str,
    /// Environment short name (`prod`; `preview` for previews).
    pub environment: &'a str,
    /// Drift handling.
    pub drift: factory_api::DriftPolicy,
    /// Whether applications with `delivery: Releases` run releases here (permanent
    /// environments), by `promotion`; previews always run their own ref.
    pub releases: bool,
    /// The environment's promotion policy.
    pub promotion: Option<&'a Promotion>,
}

impl<'a> Target<'a> {
    /// The target of a permanent environment.
    pub fn environment(env: &'a Environment, environment: &'a str) -> Self {
        Self {
            factory: &env.spec.factory,
            namespace: &env.spec.namespace,
            class: &env.spec.class,
            environment,
            drift: env.spec.drift_policy.unwrap_or_default(),
            releases: true,
            promotion: env.spec.promotion.as_ref(),
        }
    }
}

/// How long [`wait_for_rights`] waits for the API server's authorizer to see new bindings.
const RIGHTS_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// When `outcome` (a baseline just applied into `namespace`) wrote a RoleBinding, waits (at
/// most 10 s) until the team factory's account may read ConfigMaps there, asked as that account
/// (SelfSubjectAccessReview). kube-apiserver's RBAC authorizer learns of a new binding from its
/// own watch, a moment after the write: an application applied right after its environment's
/// bindings were created was refused, and waited for the next resync. Returns whether the right
/// is there (the apply goes ahead either way and says why it failed, if it does).
pub async fn wait_for_new_rights(
    ctx: &Context,
    outcome: &factory_apply::Outcome,
    factory: &str,
    namespace: &str,
) -> bool {
    if !["RoleBinding", "ClusterRoleBinding"].iter().any(|k| outcome.kinds_written.contains(*k)) {
        return true;
    }
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let Ok(client) = ctx.tenant(factory) else { return false };
    let api: kube::Api<SelfSubjectAccessReview> = kube::Api::all(client);
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_string()),
                verb: Some("get".into()),
                resource: Some("configmaps".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let started = std::time::Instant::now();
    while started.elapsed() < RIGHTS_WAIT {
        let allowed =
            api.create(&Default::default(), &review).await.ok().and_then(|r| r.status).is_some_and(|s| s.allowed);
        if allowed {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tracing::debug!(%namespace, factory, "the team's account still may not read ConfigMaps here");
    false
}

/// How often a place whose applications are rolling out looks at them again.
pub const HEALTH_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// One application after a reconcile: its status entry, and why it failed if it did.
#[derive(Debug, Clone, Default)]
pub struct AppState {
    /// Its entry in the environment's (or preview's) status; the error says what failed.
    pub status: ApplicationStatus,
    /// The reason of the failure, if any: an error, or `Degraded` when its objects failed to
    /// become healthy.
    pub failed: Option<Reason>,
    /// When to look again: a release waits for time to pass.
    pub recheck: Option<std::time::Duration>,
    /// An Event to publish: a release entered the environment.
    pub note: Option<Note>,
}

impl AppState {
    /// An application that failed for `reason`, keeping what `status` says it last applied.
    pub fn failing(mut status: ApplicationStatus, reason: Reason, message: &str) -> Self {
        status.error = format!("{reason}: {message}");
        Self { status, failed: Some(reason), ..Default::default() }
    }

    /// Applied, and its objects are still rolling out (within its health timeout).
    pub fn progressing(&self) -> bool {
        self.failed.is_none() && self.status.health.as_ref().is_some_and(|h| h.state == HealthState::Progressing)
    }

    /// What is wrong or awaited, for a condition's message: the error, else the health message.
    pub fn problem(&self) -> &str {
        match (&self.status.error, &self.status.health) {
            (error, Some(health)) if error.is_empty() => &health.message,
            (error, _) => error,
        }
    }
}

/// What one application's apply did.
struct Applied {
    revision: String,
    inventory: Vec<factory_api::InventoryEntry>,
    /// Whether anything was written (a new deadline for its health).
    wrote: bool,
    /// Its objects that are not healthy yet.
    unhealthy: Vec<Unhealthy>,
}

/// Applies `app` into `target`; returns its new state.
pub async fn apply(
    ctx: &Context,
    target: &Target<'_>,
    app: &Application,
    previous: Option<&ApplicationStatus>,
) -> AppState {
    let mut status =
        previous.cloned().unwrap_or_else(|| ApplicationStatus { name: app.name.clone(), ..Default::default() });
    let mut recheck = None;
    let release = if target.releases && app.delivery == Some(Delivery::Releases) {
        let current = status.release.as_ref().map(|r| r.name.as_str());
        match releases::choose(ctx, target.factory, target.namespace, target.promotion, &app.name, current).await {
            Ok(Chosen { release: Some(release), waiting, recheck: again }) => {
                status.waiting = waiting;
                recheck = again;
                Some(release)
            }
            Ok(Chosen { release: None, waiting, recheck }) => {
                status.waiting = waiting;
                return AppState { status, recheck, ..Default::default() };
            }
            Err(e) => return AppState::failing(status, e.reason(), &e.to_string()),
        }
    } else {
        status.waiting.clear();
        status.release = None;
        None
    };
    match run(ctx, target, app, &status, release.as_ref()).await {
        Ok(applied) => {
            let changed = applied.wrote || status.last_applied_revision.as_ref() != Some(&applied.revision);
            let timeout = app
                .health_timeout
                .as_deref()
                .and_then(|t| factory_core::duration::parse(t).ok())
                .unwrap_or(health::DEFAULT_TIMEOUT);
            let health = health::assess(&applied.unhealthy, status.health.as_ref(), changed, timeout, Timestamp::now());
            let failed = (health.state == HealthState::Degraded).then_some(Reason::Degraded);
            status.last_applied_revision = Some(applied.revision.clone());
            status.last_attempted_revision = Some(applied.revision);
            status.inventory = applied.inventory;
            status.error.clear();
            let mut note = None;
            if let Some(release) = &release {
                let before = status.release.take();
                let (running, entered) =
                    releases::running(ctx, release, &app.name, target.environment, before, &health).await;
                status.release = Some(running);
                note = entered;
            }
            status.health = Some(health);
            AppState { status, failed, recheck, note }
        }
        Err((attempted, error)) => {
            if attempted.is_some() {
                status.last_attempted_revision = attempted;
            }
            if let Some(release) = release.as_ref().filter(|_| error.reason() == Reason::ReferenceNotFound) {
                // It will never exist: the release is refused, and what runs stays.
                let why =
                    format!("revision {} of application {} does not exist: {error}", release.spec.revision, app.name);
                releases::refuse(ctx, &cicd_namespace(target.factory), release, Reason::ReferenceNotFound, &why).await;
            }
            AppState::failing(status, error.reason(), &error.to_string())
        }
    }
}

async fn run(
    ctx: &Context,
    target: &Target<'_>,
    app: &Application,
    status: &ApplicationStatus,
    release: Option<&Release>,
) -> Result<Applied, (Option<String>, ReconcileError)> {
    let environment = target.environment;
    if app.config.is_none() && app.helm.is_none() {
        return Ok(Applied { revision: String::new(), inventory: Vec::new(), wrote: false, unhealthy: Vec::new() });
    }
    let mut paths = Paths::default();
    let slots: Vec<Slot> = match &app.config {
        Some(config) => baseline::application_paths(&config.path, target.class, environment)
            .into_iter()
            .map(|p| paths.add(Some(p)))
            .collect(),
        None => Vec::new(),
    };
    // The factory's own account reads the git Secret (from the cicd namespace unless named).
    let client = ctx.tenant(target.factory).map_err(|e| (None, e.into()))?;
    let cicd = cicd_namespace(target.factory);
    let mut checkout = match release {
        // A release's own commit, whatever the branch says now.
        Some(release) => {
            let commit = Reference::Commit(delivery::commit(&release.spec.revision).to_string());
            checkout_at(ctx, &app.source, &client, &cicd, commit, paths).await
        }
        None => checkout(ctx, &app.source, &client, &cicd, paths).await,
    }
    .map_err(|e| (None, e))?;
    let revision = checkout.synced.revision.clone();
    let fail = |e| (Some(revision.clone()), e);
    render::kustomize(ctx, &mut checkout).await.map_err(fail)?;
    // A config path that became empty is far more often a mistake (a moved directory, a bad
    // merge) than a wish to delete everything it held: without `allowEmpty`, nothing is pruned.
    if let Some(config) = app.config.as_ref().filter(|_| app.helm.is_none())
        && checkout.files.iter().all(Vec::is_empty)
        && !config.allow_empty
        && !status.inventory.is_empty()
    {
        return Err(fail(ReconcileError::PruneSkipped(format!(
            "config path {} is empty or missing at {revision}: nothing was applied or pruned ({} objects kept; set allowEmpty: true to allow it)",
            config.path,
            status.inventory.len()
        ))));
    }
    let vars = baseline::application_vars(target.factory, environment, target.namespace, target.class, &app.name);
    let mut layers = Vec::new();
    if let Some(helm) = &app.helm {
        let layer_paths: Vec<String> = slots.iter().filter_map(|slot| checkout.path(*slot).map(String::from)).collect();
        let read = |file: &str| slots.iter().any(|slot| checkout.files(*slot).iter().any(|f| f.path == file));
        let values_files = baseline::helm_values_files(&layer_paths, read);
        let chart = Chart {
            path: helm.chart.clone(),
            values_files,
            values: helm.values.clone(),
            release: app.name.clone(),
            namespace: target.namespace.to_string(),
            capabilities: Default::default(),
        };
        layers.push(render::chart(ctx, &checkout, chart).await.map_err(fail)?);
    }
    for slot in &slots {
        let files = checkout.files(*slot);
        let loaded = match &app.helm {
            Some(_) => {
                let plain: Vec<_> = files.iter().filter(|f| !baseline::is_helm_values(&f.path)).cloned().collect();
                manifests::load(&plain, &vars)
            }
            None => manifests::load(files, &vars),
        };
        layers.push(loaded.map_err(|e| fail(ReconcileError::Load(e)))?);
    }
    let mut desired = factory_core::objects::layered_objects(layers, target.namespace);
    if let Some(release) = release {
        delivery::pin_images(&mut desired, &release.spec.images);
    }
    let engine_labels = BTreeMap::from([
        (labels::APPLIED_BY.to_string(), format!("application.{}", app.name)),
        (labels::FACTORY.to_string(), target.factory.to_string()),
    ]);
    let engine = Engine::new(client, ctx.resolver.clone(), engine_labels);
    let drift = DriftMode::from(target.drift);
    let outcome =
        engine.run(&desired, &status.inventory, PruneMode::Enabled, drift).await.map_err(|e| fail(e.into()))?;
    tracing::debug!(namespace = target.namespace, application = %app.name, created = outcome.created.len(), "application applied");
    let unhealthy = engine.unhealthy(&outcome.inventory).await;
    Ok(Applied { revision, wrote: outcome.wrote(), inventory: outcome.inventory, unhealthy })
}

/// What became of an application that left its factory (or lost its `config`) in one place.
pub struct Removal {
    /// Its state from now on: `None` once everything it applied is gone.
    pub state: Option<AppState>,
    /// What happened, for an Event; `None` when nothing did.
    pub note: Option<Note>,
}

/// Removes what `previous` (an application no longer in the factory, or without config)
/// applied into `namespace`, by the factory's `applicationRemoval`: `Prune` deletes it as the
/// team's account, after a dry-run of every deletion (one refused deletion deletes nothing and
/// keeps the entry to try again); `Orphan` leaves it and marks the entry orphaned.
pub async fn remove(
    ctx: &Context,
    factory: &str,
    namespace: &str,
    policy: ApplicationRemoval,
    previous: &ApplicationStatus,
) -> Removal {
    if previous.orphaned || previous.inventory.is_empty() {
        let state = previous.orphaned.then(|| AppState { status: previous.clone(), ..Default::default() });
        return Removal { state, note: None };
    }
    let name = &previous.name;
    let count = previous.inventory.len();
    if policy == ApplicationRemoval::Orphan {
        let mut status = previous.clone();
        status.orphaned = true;
        status.error.clear();
        let note = format!(
            "application {name} was removed from factory {factory}: its {count} objects in {namespace} are left in place (applicationRemoval: Orphan)"
        );
        return Removal {
            state: Some(AppState { status, ..Default::default() }),
            note: Some(Note::warning(Reason::Orphaned, note)),
        };
    }
    let labels = BTreeMap::from([(labels::APPLIED_BY.to_string(), format!("application.{name}"))]);
    let result = match ctx.tenant(factory) {
        Ok(client) => Engine::new(client, ctx.resolver.clone(), labels)
            .run(&[], &previous.inventory, PruneMode::Enabled, DriftMode::Correct)
            .await
            .map_err(ReconcileError::from),
        Err(e) => Err(e.into()),
    };
    // What could not be pruned stays in the entry, to be tried again.
    let (inventory, why) = match result {
        Ok(outcome) if outcome.inventory.is_empty() => {
            let mut note =
                format!("application {name} was removed from factory {factory}: pruned {}", outcome.pruned.join(", "));
            if !outcome.prune_skipped.is_empty() {
                note.push_str(&format!("; left {}", outcome.prune_skipped.join("; ")));
            }
            return Removal { state: None, note: Some(Note::normal(Reason::Pruned, note)) };
        }
        Ok(outcome) => (outcome.inventory, outcome.prune_skipped.join("; ")),
        Err(e) => (previous.inventory.clone(), e.to_string()),
    };
    let message = format!("removed from factory {factory}, not pruned yet: {why}");
    let state = AppState::failing(ApplicationStatus { inventory, ..previous.clone() }, Reason::PruneFailed, &message);
    Removal { state: Some(state), note: Some(Note::warning(Reason::PruneFailed, message)) }
}
