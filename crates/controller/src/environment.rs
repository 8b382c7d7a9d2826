//! Environments: one namespace each, carrying its class baseline from the platform factory
//! (the class and every class it extends, at the platform's applied revision) and the team
//! factory's service account rights. The namespace is never deleted by the operator.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use factory_api::conditions::{DRIFTED, reasons};
use factory_api::{DriftPolicy, Environment, Factory, labels};
use factory_apply::{DriftMode, Engine, Outcome, PruneMode};
use factory_core::conditions::{self, Status};
use factory_core::manifests::{self, Manifest};
use factory_core::render;
use factory_source::Reference;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use tracing::{info, instrument, warn};

use crate::context::{Context, Read};
use crate::credentials;
use crate::error::ReconcileError;
use crate::source::checkout_at;
use crate::status;

/// When an environment whose applications failed is tried again.
const APPLICATION_RETRY: Duration = Duration::from_secs(30);

struct Applied {
    revision: String,
    outcome: Outcome,
    applications: Vec<factory_api::environment::ApplicationStatus>,
    /// Events about applications removed from the factory (pruned, orphaned or not yet pruned).
    removals: Vec<(EventType, &'static str, String)>,
}

/// Reconciles one Environment.
#[instrument(skip_all, fields(environment = %env.name_any()))]
pub async fn reconcile(env: Arc<Environment>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let mut new_status = env.status.clone().unwrap_or_default();
    new_status.observed_generation = env.metadata.generation;
    let drift = env.spec.drift_policy.unwrap_or_default();
    let started = std::time::Instant::now();
    let team = ctx.factory(&env.spec.factory, Read::Store).await;
    if let Some(why) = status::suspension(env.spec.suspend, team.as_ref().ok().and_then(Option::as_deref)) {
        status::suspended(&mut new_status.conditions, env.metadata.generation, &why);
        ctx.metrics.reconciled("environment", reasons::SUSPENDED, started.elapsed(), 0, 0);
        status::write(&Api::all(ctx.client.clone()), env.as_ref(), env.status.as_ref(), new_status).await?;
        // Resuming (its spec or its factory's) triggers the next reconcile.
        return Ok(Action::await_change());
    }
    let (is_orphaned, result) = match team {
        Ok(Some(team)) => (!listed_in(&team, &env), run(&env, &team, &ctx, &new_status.inventory, drift).await),
        Ok(None) => {
            (new_status.orphaned, Err(ReconcileError::Waiting(format!("factory {} does not exist", env.spec.factory))))
        }
        Err(e) => (new_status.orphaned, Err(e.into())),
    };
    if is_orphaned && !new_status.orphaned {
        let note = format!(
            "removed from factory {}'s spec; namespace {} is left in place and still maintained",
            env.spec.factory, env.spec.namespace
        );
        status::event(&ctx, env.as_ref(), EventType::Warning, reasons::ORPHANED, &note).await;
    }
    new_status.orphaned = is_orphaned;
    match &result {
        Ok(applied) => {
            let o = &applied.outcome;
            // The condition says what is, not what this run did: a message that changed on every
            // run (counts of this run's writes) would make each status write trigger another.
            let message = format!(
                "applied {} into namespace {}: {} objects",
                applied.revision,
                env.spec.namespace,
                o.inventory.len()
            );
            let what_changed = format!(
                "{message} ({} created, {} updated, {} unchanged, {} pruned)",
                o.created.len(),
                o.updated.len(),
                o.unchanged,
                o.pruned.len()
            );
            let failed: Vec<String> = applied
                .applications
                .iter()
                .filter(|a| !a.error.is_empty())
                .map(|a| format!("application {}: {}", a.name, a.error))
                .collect();
            new_status.applications = applied.applications.clone();
            for (kind, reason, note) in &applied.removals {
                status::event(&ctx, env.as_ref(), *kind, reason, note).await;
            }
            let orphaned: Vec<&str> =
                applied.applications.iter().filter(|a| a.orphaned).map(|a| a.name.as_str()).collect();
            let message = if orphaned.is_empty() {
                message
            } else {
                format!("{message}; removed applications left in place: {}", orphaned.join(", "))
            };
            if failed.is_empty() {
                status::succeeded(&mut new_status.conditions, env.metadata.generation, &message);
            } else {
                let reason = applied
                    .applications
                    .iter()
                    .find(|a| !a.error.is_empty())
                    .map(|a| a.error.split(':').next().unwrap_or("ApplicationFailed").to_string())
                    .unwrap_or_default();
                let text = format!("{message}; {}", failed.join("; "));
                warn!(applications = %failed.join("; "), "applications held back");
                status::held_back(&mut new_status.conditions, env.metadata.generation, &reason, &text);
                status::event(&ctx, env.as_ref(), EventType::Warning, &reason, &failed.join("; ")).await;
            }
            new_status.last_applied_revision = Some(applied.revision.clone());
            new_status.last_attempted_revision = Some(applied.revision.clone());
            new_status.objects = i32::try_from(o.inventory.len()).ok();
            new_status.inventory = o.inventory.clone();
            let now = status::now();
            let gauge = crate::metrics::ObjectLabels { kind: "Environment".into(), name: env.name_any() };
            let reported = if drift == DriftPolicy::Report { o.drifted.len() } else { 0 };
            ctx.metrics.drifted.get_or_create(&gauge).set(i64::try_from(reported).unwrap_or(i64::MAX));
            if drift == DriftPolicy::Report && !o.drifted.is_empty() {
                let drifted = format!("changed by hand, left as found: {}", o.drifted.join(", "));
                conditions::set(
                    &mut new_status.conditions,
                    DRIFTED,
                    Status::True,
                    reasons::DRIFT_DETECTED,
                    status::bounded(&drifted, 4096),
                    env.metadata.generation,
                    &now,
                );
                status::event(&ctx, env.as_ref(), EventType::Warning, reasons::DRIFT_DETECTED, &drifted).await;
            } else {
                conditions::remove(&mut new_status.conditions, DRIFTED);
                if !o.drifted.is_empty() {
                    let note = format!("corrected hand-made changes: {}", o.drifted.join(", "));
                    status::event(&ctx, env.as_ref(), EventType::Normal, reasons::DRIFT_DETECTED, &note).await;
                }
            }
            if o.wrote() {
                info!(%message, "reconciled");
                status::event(&ctx, env.as_ref(), EventType::Normal, "Applied", &what_changed).await;
            }
        }
        Err(error) => {
            status::failed(&mut new_status.conditions, env.metadata.generation, error);
            status::report_failure(&ctx, env.as_ref(), error).await;
        }
    }
    status::record(&ctx, "environment", result.as_ref().map(|a| &a.outcome), started.elapsed());
    status::write(&Api::all(ctx.client.clone()), env.as_ref(), env.status.as_ref(), new_status).await?;
    Ok(match result {
        Err(e) if !e.is_permanent() => Action::requeue(Duration::from_secs(10)),
        // An application that failed is tried again sooner than the resync: its own status
        // write no longer triggers another reconcile (`triggers`).
        Ok(applied) if applied.applications.iter().any(|a| !a.error.is_empty()) => Action::requeue(APPLICATION_RETRY),
        _ => Action::requeue(crate::platform::jitter(ctx.resync, &env.name_any())),
    })
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

async fn run(
    env: &Environment,
    team: &Factory,
    ctx: &Context,
    previous: &[factory_api::InventoryEntry],
    drift: DriftPolicy,
) -> Result<Applied, ReconcileError> {
    let spec = &env.spec;
    let environment = short_name(env);
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
    let Baseline { revision: applied, mut desired, platform, account } =
        baseline(ctx, team, &target, &origin, Read::Store).await?;
    let quota: BTreeMap<String, String> = spec.quota.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
    render::apply_quota(&mut desired, &quota, &spec.namespace, &origin);
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
            let kubeconfig = remote_kubeconfig(&client, &namespace, &secret_ref.name).await?;
            let remote = ctx.remote(&kubeconfig).await.map_err(|why| ReconcileError::Credentials {
                namespace: namespace.clone(),
                name: secret_ref.name.clone(),
                why,
            })?;
            Engine::new(remote.client, remote.resolver, engine_labels)
        }
        None => Engine::new(client, ctx.resolver.clone(), engine_labels),
    };
    let mode = match drift {
        DriftPolicy::Correct => DriftMode::Correct,
        DriftPolicy::Report => DriftMode::Report,
    };
    let outcome = engine.run(&desired, previous, PruneMode::Enabled, mode).await?;

    // The team's applications, each as the team's account, after the baseline is in place.
    let apps = team.spec.applications.as_ref().is_some_and(|a| !a.is_empty());
    if apps && spec.kubeconfig_secret_ref.is_none() {
        crate::application::wait_for_new_rights(ctx, &outcome, &spec.factory, &spec.namespace).await;
    }
    let mut applications = Vec::new();
    let mut removals = Vec::new();
    let previous_apps = env.status.as_ref().map(|s| s.applications.as_slice()).unwrap_or_default();
    let policy = team.spec.application_removal.unwrap_or_default();
    for before in previous_apps {
        let current = team.spec.applications.iter().flatten().any(|a| a.name == before.name && a.config.is_some());
        if current {
            continue;
        }
        let removal = crate::application::remove(ctx, &spec.factory, &spec.namespace, policy, before).await;
        applications.extend(removal.status);
        removals.extend(removal.note);
    }
    for app in team.spec.applications.iter().flatten().filter(|a| a.config.is_some()) {
        let before = env.status.as_ref().and_then(|s| s.applications.iter().find(|a| a.name == app.name));
        if spec.kubeconfig_secret_ref.is_some() {
            // The team's account lives in the home cluster; applying its content elsewhere
            // needs an identity there, which this version does not set up. Say so.
            let mut status = before.cloned().unwrap_or_default();
            status.name = app.name.clone();
            status.error = "Unsupported: applications are not applied into environments of another cluster yet".into();
            applications.push(status);
            continue;
        }
        let target = crate::application::Target::environment(env, &environment);
        applications.push(crate::application::apply(ctx, &target, app, before).await);
    }
    Ok(Applied { revision: applied, outcome, applications, removals })
}

/// Where a baseline goes: a permanent environment or a preview.
pub(crate) struct Target<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// Environment class.
    pub class: &'a str,
    /// Short name (`prod`, or the preview's name).
    pub environment: &'a str,
    /// `permanent` or `preview`.
    pub kind: &'a str,
    /// Label the namespace protected.
    pub protected: bool,
}

/// A class baseline rendered for a target, with what applying it needs.
pub(crate) struct Baseline {
    /// The platform revision it comes from.
    pub revision: String,
    /// The namespace and the class objects in it.
    pub desired: Vec<Manifest>,
    /// The platform factory.
    pub platform: Arc<Factory>,
    /// The platform's account, to apply as.
    pub account: factory_api::factory::ServiceAccountReference,
}

/// The platform factory that built a team factory, at the revision it last applied.
pub(crate) struct PlatformAt {
    /// The platform factory.
    pub platform: Arc<Factory>,
    /// Its name.
    pub name: String,
    /// The revision it applied, `<branch>@sha1:<sha>`.
    pub applied: String,
    /// That revision's commit.
    pub commit: String,
    /// Its repository.
    pub source: factory_api::GitSource,
    /// Its account, to apply as.
    pub account: factory_api::factory::ServiceAccountReference,
}

/// Finds the platform factory that built `team` (label `factories.dev/platform`) and the
/// revision it applied; waits (as an error) while there is none yet.
pub(crate) async fn platform_of(ctx: &Context, team: &Factory, read: Read) -> Result<PlatformAt, ReconcileError> {
    let factory = team.name_any();
    let name = team
        .labels()
        .get(labels::PLATFORM)
        .cloned()
        .ok_or_else(|| ReconcileError::Waiting(format!("factory {factory} was not built by a platform factory")))?;
    let platform = ctx
        .factory(&name, read)
        .await?
        .ok_or_else(|| ReconcileError::Waiting(format!("platform factory {name} does not exist")))?;
    let applied =
        platform.status.as_ref().and_then(|s| s.last_applied_revision.clone()).ok_or_else(|| {
            ReconcileError::Waiting(format!("platform factory {name} has not applied a revision yet"))
        })?;
    let commit = applied.rsplit(':').next().unwrap_or_default().to_string();
    let (Some(source), Some(account)) = (platform.spec.source.clone(), platform.spec.service_account.clone()) else {
        return Err(ReconcileError::Waiting(format!("platform factory {name} has no source")));
    };
    Ok(PlatformAt { platform, name, applied, commit, source, account })
}

/// Renders the class baseline of `target` for team factory `team`: the platform factory that
/// built it, its applied commit read from the cache, the class chain, variables, labels.
pub(crate) async fn baseline(
    ctx: &Context,
    team: &Factory,
    target: &Target<'_>,
    origin: &Manifest,
    read: Read,
) -> Result<Baseline, ReconcileError> {
    let factory = team.name_any();
    let PlatformAt { platform, name: platform_name, applied, commit, source, account } =
        platform_of(ctx, team, read).await?;
    let classes = platform.spec.environment_classes.clone().unwrap_or_default();
    let paths = factory_core::baseline::class_paths(&classes, target.class)
        .map_err(|why| ReconcileError::InvalidSpec(format!("platform factory {platform_name}: {why}")))?;
    let reader = ctx.impersonating_platform(&account.namespace, &account.name)?;
    let paths = paths.into_iter().map(Some).collect();
    let checkout = checkout_at(ctx, &source, &reader, &account.namespace, Reference::Commit(commit), paths).await?;
    let core_target = factory_core::baseline::Target {
        factory: &factory,
        platform: &platform_name,
        namespace: target.namespace,
        class: target.class,
        environment: target.environment,
        kind: target.kind,
        protected: target.protected,
        tenant_namespace: &ctx.tenant_namespace,
    };
    let vars = factory_core::baseline::vars(&platform.spec.variables, &core_target);
    let mut class_manifests = Vec::new();
    let mut errors = Vec::new();
    for files in &checkout.files {
        match manifests::load(files, &vars) {
            Ok(m) => class_manifests.extend(m),
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(ReconcileError::Load(errors));
    }
    let shared = team.spec.shared.clone().unwrap_or_default();
    let desired = factory_core::baseline::objects(&core_target, &shared, class_manifests, origin);
    Ok(Baseline { revision: applied, desired, platform, account })
}

/// The kubeconfig in key `value` (or `value.yaml`) of Secret `namespace/name`.
async fn remote_kubeconfig(client: &kube::Client, namespace: &str, name: &str) -> Result<String, ReconcileError> {
    let err =
        |why: String| ReconcileError::Credentials { namespace: namespace.to_string(), name: name.to_string(), why };
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| err(e.to_string()))?
        .ok_or_else(|| err("not found".into()))?;
    let data = secret.data.unwrap_or_default();
    let value = data
        .get("value")
        .or_else(|| data.get("value.yaml"))
        .ok_or_else(|| err("needs a `value` key holding a kubeconfig".into()))?;
    String::from_utf8(value.0.clone()).map_err(|_| err("the kubeconfig is not UTF-8".into()))
}

/// The environment's short name (`prod`): its label, else its namespace without the factory prefix.
pub fn short_name(env: &Environment) -> String {
    factory_core::names::environment_short_name(env)
}
