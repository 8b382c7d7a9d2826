//! Environments: one namespace each, carrying its class baseline from the platform factory
//! (the class and every class it extends, at the platform's applied revision) and the team
//! factory's service account rights, then the team's applications. The namespace is never
//! deleted by the operator.

use std::collections::BTreeMap;
use std::time::Duration;

use factory_api::conditions::{DRIFTED, Reason};
use factory_api::{DriftPolicy, Environment, EnvironmentStatus, Factory, labels};
use factory_apply::{DriftMode, Engine, Outcome, PruneMode};
use factory_core::conditions::{self, Status};
use factory_core::manifests::Manifest;
use factory_core::names::environment_short_name;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use tracing::{info, warn};

use crate::reconcilers::skeleton::{Reconciler, Report, Verdict};
use crate::services::context::{Context, Read};
use crate::services::error::ReconcileError;
use crate::services::metrics::ObjectLabels;
use crate::services::schedule::jitter;
use crate::services::status::{self, Note};
use crate::steps::applications::{self, AppState, HEALTH_POLL};
use crate::steps::baseline::{Baseline, Target, baseline};
use crate::steps::credentials;

/// When an environment whose applications failed is tried again: its own status write no
/// longer triggers another reconcile (`triggers`), so it must not wait for the resync.
const APPLICATION_RETRY: Duration = Duration::from_secs(30);

/// What one successful run applied.
struct Applied {
    revision: String,
    outcome: Outcome,
    applications: Vec<AppState>,
    /// Events about applications removed from the factory (pruned, orphaned or not yet pruned).
    removals: Vec<Note>,
}

/// The Environment as the skeleton runs it.
pub struct EnvironmentReconciler;

impl Reconciler for EnvironmentReconciler {
    type Object = Environment;
    const NAME: &'static str = "environment";

    fn resync(env: &Environment, ctx: &Context) -> Duration {
        jitter(ctx.resync, &env.name_any())
    }

    async fn run(env: &Environment, ctx: &Context, status: &mut EnvironmentStatus) -> Result<Report, ReconcileError> {
        let team = ctx.factory(&env.spec.factory, Read::Store).await;
        if let Some(why) = status::suspension(env.spec.suspend, team.as_ref().ok().and_then(Option::as_deref)) {
            // Resuming (its spec or its factory's) triggers the next reconcile.
            return Ok(Report::new(Verdict::Suspended(why), None));
        }
        let mut orphaned = Vec::new();
        let team = match team {
            Ok(Some(team)) => team,
            Ok(None) => return Err(ReconcileError::Waiting(format!("factory {} does not exist", env.spec.factory))),
            Err(e) => return Err(e.into()),
        };
        let is_orphaned = !listed_in(&team, env);
        if is_orphaned && !status.orphaned {
            let note = format!(
                "removed from factory {}'s spec; namespace {} is left in place and still maintained",
                env.spec.factory, env.spec.namespace
            );
            orphaned.push(Note::warning(Reason::Orphaned, note));
        }
        status.orphaned = is_orphaned;
        let applied = match apply(env, &team, ctx, &status.inventory).await {
            Ok(applied) => applied,
            Err(e) => {
                // Said once, when it happens, whether or not this run got further.
                for note in &orphaned {
                    status::publish(ctx, env, note).await;
                }
                return Err(e);
            }
        };
        let mut report = report(env, ctx, applied, status);
        report.events.splice(0..0, orphaned);
        Ok(report)
    }
}

/// What an applied environment means for status, Events, the drift gauge and the next look.
fn report(env: &Environment, ctx: &Context, applied: Applied, status: &mut EnvironmentStatus) -> Report {
    let o = &applied.outcome;
    let drift = env.spec.drift_policy.unwrap_or_default();
    // The condition says what is, not what this run did: a message that changed on every run
    // (counts of this run's writes) would make each status write trigger another.
    let message =
        format!("applied {} into namespace {}: {} objects", applied.revision, env.spec.namespace, o.inventory.len());
    let what_changed = format!(
        "{message} ({} created, {} updated, {} unchanged, {} pruned)",
        o.created.len(),
        o.updated.len(),
        o.unchanged,
        o.pruned.len()
    );
    let failed: Vec<(Reason, String)> = applied
        .applications
        .iter()
        .filter_map(|a| a.failed.map(|reason| (reason, format!("application {}: {}", a.status.name, a.problem()))))
        .collect();
    let waiting: Vec<String> = applied
        .applications
        .iter()
        .filter(|a| a.progressing())
        .map(|a| format!("application {} is rolling out: {}", a.status.name, a.problem()))
        .collect();
    let orphaned: Vec<&str> =
        applied.applications.iter().filter(|a| a.status.orphaned).map(|a| a.status.name.as_str()).collect();
    let message = if orphaned.is_empty() {
        message
    } else {
        format!("{message}; removed applications left in place: {}", orphaned.join(", "))
    };
    let requeue = match (failed.is_empty(), waiting.is_empty()) {
        (true, true) => jitter(ctx.resync, &env.name_any()),
        (true, false) => HEALTH_POLL,
        (false, _) => APPLICATION_RETRY,
    };
    // A release waiting for time is looked at again when its time comes.
    let requeue = applied.applications.iter().filter_map(|a| a.recheck).fold(requeue, Duration::min);
    let verdict = match failed.first() {
        None if waiting.is_empty() => Verdict::Ready(message.clone()),
        None => Verdict::Progressing(format!("{message}; {}", waiting.join("; "))),
        Some((reason, _)) => {
            let failures: Vec<&str> = failed.iter().map(|(_, text)| text.as_str()).collect();
            warn!(applications = %failures.join("; "), "applications held back");
            Verdict::HeldBack { reason: *reason, message: format!("{message}; {}", failures.join("; ")) }
        }
    };
    let mut report = Report::new(verdict, Some(requeue)).counting(o);
    report.events.extend(applied.removals);
    report.events.extend(applied.applications.iter().filter_map(|a| a.note.clone()));
    if let Some((reason, _)) = failed.first() {
        let failures: Vec<&str> = failed.iter().map(|(_, text)| text.as_str()).collect();
        report.note(EventType::Warning, *reason, failures.join("; "));
    }
    status.applications = applied.applications.into_iter().map(|a| a.status).collect();
    status.reconcile.last_applied_revision = Some(applied.revision.clone());
    status.reconcile.last_attempted_revision = Some(applied.revision.clone());
    status.objects = i32::try_from(o.inventory.len()).ok();
    let gauge = ObjectLabels { kind: "Environment".into(), name: env.name_any() };
    let reported = if drift == DriftPolicy::Report { o.drifted.len() } else { 0 };
    ctx.metrics.drifted.get_or_create(&gauge).set(i64::try_from(reported).unwrap_or(i64::MAX));
    if drift == DriftPolicy::Report && !o.drifted.is_empty() {
        let drifted = format!("changed by hand, left as found: {}", o.drifted.join(", "));
        conditions::set(
            &mut status.reconcile.conditions,
            DRIFTED,
            Status::True,
            Reason::DriftDetected,
            status::bounded(&drifted, 4096),
            env.metadata.generation,
            &status::now(),
        );
        report.note(EventType::Warning, Reason::DriftDetected, drifted);
    } else {
        conditions::remove(&mut status.reconcile.conditions, DRIFTED);
        if !o.drifted.is_empty() {
            let note = format!("corrected hand-made changes: {}", o.drifted.join(", "));
            report.note(EventType::Normal, Reason::DriftDetected, note);
        }
    }
    if o.wrote() {
        info!(%message, "reconciled");
        report.note(EventType::Normal, Reason::Applied, what_changed);
    }
    status.inventory = applied.outcome.inventory;
    report
}

/// Whether `team`'s spec still lists `env` (an environment dropped from it is orphaned: kept
/// and still maintained, never deleted).
fn listed_in(team: &Factory, env: &Environment) -> bool {
    team.spec
        .environments
        .iter()
        .flatten()
        .any(|e| factory_core::names::environment_object_name(&env.spec.factory, &e.name) == env.name_any())
}

/// Applies the environment's baseline, then its applications.
async fn apply(
    env: &Environment,
    team: &Factory,
    ctx: &Context,
    previous: &[factory_api::InventoryEntry],
) -> Result<Applied, ReconcileError> {
    let spec = &env.spec;
    let environment = environment_short_name(env);
    let origin = Manifest {
        file: format!("Environment {}", env.name_any()),
        line: 0,
        document: 0,
        object: serde_json::Value::Null,
    };
    let target = Target {
        namespace: &spec.namespace,
        class: &spec.class,
        environment: &environment,
        kind: "permanent",
        protected: spec.protected,
    };
    let Baseline { revision, mut desired, platform, account } =
        baseline(ctx, team, &target, &origin, Read::Store).await?;
    let quota: BTreeMap<String, String> = spec.quota.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
    factory_core::baseline::apply_quota(&mut desired, &quota, &spec.namespace, &origin);
    let owners = team.spec.owners.clone().unwrap_or_default();
    desired.extend(
        factory_core::baseline::environment_bindings(spec, &environment, &owners)
            .into_iter()
            .map(|object| Manifest { object, ..origin.clone() }),
    );

    // Credentials are read as the platform's account: RBAC decides which Secrets it may copy.
    let client = ctx.impersonating_platform(&account.namespace, &account.name)?;
    for credential in platform.spec.credentials.iter().flatten() {
        if credential.to.factory != spec.factory || !credential.to.environments.contains(&environment) {
            continue;
        }
        desired.push(credentials::copy(&client, credential, &spec.namespace).await?);
    }

    let engine_labels = BTreeMap::from([(labels::APPLIED_BY.to_string(), format!("environment.{}", env.name_any()))]);
    let engine = match &spec.kubeconfig_secret_ref {
        // Another cluster: the kubeconfig's identity there, read here as the platform's account.
        Some(secret_ref) => {
            let namespace = secret_ref.namespace.clone().unwrap_or_else(|| account.namespace.clone());
            let kubeconfig = credentials::remote_kubeconfig(&client, &namespace, &secret_ref.name).await?;
            let remote = ctx.remote(&kubeconfig).await.map_err(|why| ReconcileError::Credentials {
                namespace: namespace.clone(),
                name: secret_ref.name.clone(),
                why,
            })?;
            Engine::new(remote.client, remote.resolver, engine_labels)
        }
        None => Engine::new(client, ctx.resolver.clone(), engine_labels),
    };
    let mode = DriftMode::from(spec.drift_policy.unwrap_or_default());
    let outcome = engine.run(&desired, previous, PruneMode::Enabled, mode).await?;
    let (applications, removals) = apply_applications(env, team, ctx, &environment, &outcome).await;
    Ok(Applied { revision, outcome, applications, removals })
}

/// The team's applications, each as the team's account, after the baseline (`outcome`) is in
/// place; and the removal of those that left the factory.
async fn apply_applications(
    env: &Environment,
    team: &Factory,
    ctx: &Context,
    environment: &str,
    outcome: &Outcome,
) -> (Vec<AppState>, Vec<Note>) {
    let spec = &env.spec;
    let apps = team.spec.applications.as_ref().is_some_and(|a| !a.is_empty());
    if apps && spec.kubeconfig_secret_ref.is_none() {
        applications::wait_for_new_rights(ctx, outcome, &spec.factory, &spec.namespace).await;
    }
    let mut states = Vec::new();
    let mut removals = Vec::new();
    let previous = env.status.as_ref().map(|s| s.applications.as_slice()).unwrap_or_default();
    let policy = team.spec.application_removal.unwrap_or_default();
    for before in previous {
        let current = team.spec.applications.iter().flatten().any(|a| a.name == before.name && a.deploys());
        if current {
            continue;
        }
        let removal = applications::remove(ctx, &spec.factory, &spec.namespace, policy, before).await;
        states.extend(removal.state);
        removals.extend(removal.note);
    }
    for app in team.spec.applications.iter().flatten().filter(|a| a.deploys()) {
        let before = previous.iter().find(|a| a.name == app.name);
        // A suspension that arrived while this reconcile ran stops it before the next
        // application is fetched and applied (the store holds it before any trigger fires).
        let now = ctx.factory(&spec.factory, Read::Store).await.ok().flatten();
        if status::suspension(spec.suspend, now.as_deref()).is_some() {
            states.extend(before.cloned().map(|status| AppState { status, ..Default::default() }));
            continue;
        }
        if spec.kubeconfig_secret_ref.is_some() {
            // The team's account lives in the home cluster; applying its content elsewhere
            // needs an identity there, which this version does not set up. Say so.
            let mut status = before.cloned().unwrap_or_default();
            status.name = app.name.clone();
            let why = "applications are not applied into environments of another cluster yet";
            states.push(AppState::failing(status, Reason::Unsupported, why));
            continue;
        }
        let target = applications::Target::environment(env, environment);
        states.push(applications::apply(ctx, &target, app, before).await);
    }
    (states, removals)
}
