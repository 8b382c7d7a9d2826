//! Releases: recording one for every successful build run, judging whether each can be
//! deployed, choosing the one an environment runs (`factory_core::delivery`), and writing down
//! where a release became healthy — what the next environment's promotion gate reads.

use factory_api::conditions::{READY, Reason};
use factory_api::environment::Promotion;
use factory_api::{ApplicationHealth, Approval, Factory, HealthState, Release, RunningRelease, labels};
use factory_core::delivery::{self, Decision};
use factory_core::names::cicd_namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::services::context::Context;
use crate::services::error::ReconcileError;
use crate::services::status::Note;
use factory_hosts::{CommitState, CommitStatus};

/// Records a Release for each successful build run of `runs` (PipelineRuns of `factory`'s cicd
/// namespace, as JSON) that has none yet, named after the run.
pub async fn record_from_runs(ctx: &Context, factory: &Factory, runs: &[Value]) {
    let cicd = cicd_namespace(&factory.name_any());
    let api: Api<Release> = Api::namespaced(ctx.client.clone(), &cicd);
    for (name, spec) in runs.iter().filter_map(delivery::release_from_run) {
        let mut release = Release::new(&name, spec);
        release.metadata.labels =
            Some([(labels::APPLICATION.to_string(), release.spec.application.clone())].into_iter().collect());
        match api.create(&PostParams::default(), &release).await {
            Ok(_) => tracing::info!(release = %name, application = %release.spec.application, "release recorded"),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => tracing::warn!(release = %name, error = %e, "release could not be recorded"),
        }
    }
}

/// Says on each Release of `factory` whether it can be deployed: one naming an application
/// the factory does not have never will be.
pub async fn judge(ctx: &Context, factory: &Factory) -> Result<(), ReconcileError> {
    let cicd = cicd_namespace(&factory.name_any());
    let api: Api<Release> = Api::namespaced(ctx.client.clone(), &cicd);
    let apps: Vec<&str> = factory.spec.applications.iter().flatten().map(|a| a.name.as_str()).collect();
    for release in api.list(&ListParams::default()).await?.items {
        let ready = release.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == READY));
        if ready.is_some_and(|c| c.reason == Reason::ReferenceNotFound.as_str()) {
            continue;
        }
        let known = apps.contains(&release.spec.application.as_str());
        let (status, reason, message) = if known {
            ("True", Reason::Reconciled, "deployable".to_string())
        } else {
            let message = format!(
                "application {} is not an application of factory {} (it has: {})",
                release.spec.application,
                factory.name_any(),
                apps.join(", ")
            );
            ("False", Reason::InvalidSpec, message)
        };
        if ready.is_some_and(|c| c.status == status && c.message == message) {
            continue;
        }
        set_ready(&api, &release, status, reason, &message).await?;
    }
    Ok(())
}

/// Marks `release` as never deployable: its revision does not exist.
pub async fn refuse(ctx: &Context, cicd: &str, release: &Release, reason: Reason, message: &str) {
    let api: Api<Release> = Api::namespaced(ctx.client.clone(), cicd);
    if let Err(e) = set_ready(&api, release, "False", reason, message).await {
        tracing::warn!(release = %release.name_any(), error = %e, "could not mark the release refused");
    }
}

async fn set_ready(
    api: &Api<Release>,
    release: &Release,
    status: &str,
    reason: Reason,
    message: &str,
) -> Result<(), kube::Error> {
    let condition = json!({
        "type": READY, "status": status, "reason": reason.as_str(), "message": message,
        "lastTransitionTime": Time(Timestamp::now()), "observedGeneration": release.metadata.generation,
    });
    let patch =
        json!({"apiVersion": "factories.dev/v1alpha1", "kind": "Release", "status": {"conditions": [condition]}});
    let params = PatchParams::apply(factory_api::FIELD_MANAGER).force();
    api.patch_status(&release.name_any(), &params, &Patch::Apply(&patch)).await.map(|_| ())
}

/// The release an environment runs of one application, and what waits.
pub struct Chosen {
    /// The Release to run, if any.
    pub release: Option<Release>,
    /// What the next release waits for (or why an approval was not honoured).
    pub waiting: String,
    /// When to look again, for a release waiting for time.
    pub recheck: Option<std::time::Duration>,
}

/// Chooses the release of `application` that `namespace` (environment `environment` of
/// `factory`) runs under `promotion`, given the one it runs now.
pub async fn choose(
    ctx: &Context,
    factory: &str,
    namespace: &str,
    promotion: Option<&Promotion>,
    application: &str,
    current: Option<&str>,
) -> Result<Chosen, ReconcileError> {
    let cicd = cicd_namespace(factory);
    let mine = |app: &str| app == application;
    // From the shared watches' stores: an environment rolling out looks again every second.
    let releases: Vec<Release> =
        ctx.releases_in(&cicd).await?.iter().filter(|r| mine(&r.spec.application)).map(|r| (**r).clone()).collect();
    let approvals: Vec<Approval> = ctx
        .approvals_in(namespace)
        .await?
        .iter()
        .filter(|a| mine(&a.spec.application))
        .map(|a| (**a).clone())
        .collect();
    let now = Timestamp::now();
    let Decision { release, waiting, recheck_at, awaiting_approval } =
        delivery::choose(promotion, &releases, &approvals, current, now);
    if let Some(waiting_for) = awaiting_approval {
        awaits_approval(ctx, factory, namespace, application, &waiting_for).await;
    }
    let release = release.and_then(|name| releases.into_iter().find(|r| r.name_any() == name));
    let recheck = recheck_at.and_then(|at| std::time::Duration::try_from(at.duration_since(now)).ok());
    Ok(Chosen { release, waiting, recheck })
}

/// Tells the team's targets, once, that `release` of `application` waits for an approval to
/// enter the environment in `namespace`.
async fn awaits_approval(ctx: &Context, factory: &str, namespace: &str, application: &str, release: &str) {
    let message = factory_notify::Message {
        event: factory_api::NotificationEvent::ApprovalWaiting,
        factory: factory.to_string(),
        object: format!("Release {}/{release}", cicd_namespace(factory)),
        summary: format!("release {release} of {application} waits for approval to enter {namespace}"),
        detail: format!(
            "approve it with: kubectl factory approve {application} --factory {factory} --env <environment> --release {release}"
        ),
        url: None,
        time: crate::services::notify::now(),
    };
    let key = format!("approval/{namespace}/{application}/{release}");
    crate::services::notify::tell(ctx, key, message).await;
}

/// What `environment` runs of `application` now that `release` was applied (it ran `before`),
/// with a `Promoted` note when the release is new there; once it is healthy, that is written
/// on the Release for the next environment's gate.
pub async fn running(
    ctx: &Context,
    release: &Release,
    application: &str,
    environment: &str,
    before: Option<RunningRelease>,
    health: &ApplicationHealth,
) -> (RunningRelease, Option<Note>) {
    report(ctx, release, application, environment, health).await;
    let name = release.name_any();
    let entered = before.as_ref().is_none_or(|r| r.name != name).then(|| {
        let from = before.as_ref().map(|r| format!(" (was {})", r.name)).unwrap_or_default();
        let message =
            format!("release {name} of {application} entered {environment} at {}{from}", release.spec.revision);
        Note::normal(Reason::Promoted, message)
    });
    let since = before.filter(|r| r.name == name).and_then(|r| r.since).unwrap_or_else(|| Time(Timestamp::now()));
    if health.state == HealthState::Healthy
        && let Some(healthy_since) = &health.since
    {
        healthy_in(ctx, release, environment, healthy_since).await;
    }
    let running = RunningRelease {
        revision: release.spec.revision.clone(),
        images: release.spec.images.iter().map(|i| format!("{}={}", i.name, i.reference)).collect(),
        since: Some(since),
        name,
    };
    (running, entered)
}

/// Posts how `release` is doing in `environment` on its commit, where the application names
/// its git host: pending while it rolls out, success once healthy, failure with the reason.
async fn report(ctx: &Context, release: &Release, application: &str, environment: &str, health: &ApplicationHealth) {
    let Some(cicd) = release.namespace() else { return };
    let Some(factory) = factory_core::names::factory_of_cicd(&cicd) else { return };
    let name = release.name_any();
    let (state, description) = match health.state {
        HealthState::Healthy => (CommitState::Success, format!("Release {name} is healthy in {environment}")),
        HealthState::Progressing => (CommitState::Pending, format!("Release {name} is rolling out in {environment}")),
        HealthState::Degraded => (CommitState::Failure, format!("Release {name} in {environment}: {}", health.message)),
    };
    let context = factory_core::pull_requests::release_context(factory, environment);
    let status = CommitStatus { state, context, description, target_url: None };
    let sha = delivery::commit(&release.spec.revision);
    crate::services::hosts::post(ctx, factory, application, sha, status).await;
}

/// Writes down that `release` is healthy in `environment` since `since`, unless it already says
/// so. Each environment writes its own entry (server-side apply, one field manager per
/// environment), so environments never overwrite each other.
pub async fn healthy_in(ctx: &Context, release: &Release, environment: &str, since: &Time) {
    let known = release.status.as_ref().is_some_and(|s| s.healthy_in.iter().any(|h| h.environment == environment));
    if known {
        return;
    }
    let Some(namespace) = release.namespace() else { return };
    let api: Api<Release> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({"apiVersion": "factories.dev/v1alpha1", "kind": "Release",
        "status": {"healthyIn": [{"environment": environment, "since": since}]}});
    let params = PatchParams::apply(&format!("{}.{environment}", factory_api::FIELD_MANAGER)).force();
    match api.patch_status(&release.name_any(), &params, &Patch::Apply(&patch)).await {
        Ok(_) => tracing::info!(release = %release.name_any(), environment, "release healthy"),
        Err(e) => tracing::warn!(release = %release.name_any(), environment, error = %e, "could not record health"),
    }
}
