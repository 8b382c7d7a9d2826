//! Preview environments: created in a team's cicd namespace (by a person or a pipeline, with
//! namespaced rights only), built from a class like a permanent environment plus the one
//! application at the requested ref, and removed with their namespace when they expire or are
//! deleted. The finalizer is released only once the namespace is really gone.

use std::sync::Arc;
use std::time::Duration;

use factory_api::conditions::Reason;
use factory_api::{Factory, PreviewEnvironment, PreviewEnvironmentStatus, PreviewPhase, labels};
use factory_apply::{DriftMode, Engine, PruneMode};
use factory_core::manifests::Manifest;
use factory_core::names::factory_of_cicd;
use factory_core::previews;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use serde_json::json;
use tracing::{info, warn};

use crate::reconcilers::skeleton::{self, RETRY, Reconciler, Report, Verdict};
use crate::services::context::{Context, Read};
use crate::services::error::ReconcileError;
use crate::services::status;
use crate::steps::applications::{self, AppState, HEALTH_POLL};
use crate::steps::baseline::{Baseline, Target, baseline};
use crate::steps::previews::namespace_of;
use crate::steps::pull_requests;
use factory_hosts::CommitState;

/// Finalizer that holds a preview until its namespace is gone.
pub const FINALIZER: &str = "factories.dev/preview-namespace";

/// Reconciles one preview through its finalizer: building it through the skeleton, or
/// removing its namespace once it is deleted.
pub async fn reconcile(preview: Arc<PreviewEnvironment>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let ns = preview.namespace().unwrap_or_default();
    let api: Api<PreviewEnvironment> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, preview, |event| async {
        match event {
            Finalizer::Apply(p) => skeleton::reconcile::<Preview>(p, &ctx).await,
            Finalizer::Cleanup(p) => cleanup(p, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => ReconcileError::Internal(other.to_string()),
    })
}

/// The preview as the skeleton runs it.
pub struct Preview;

impl Reconciler for Preview {
    type Object = PreviewEnvironment;
    const NAME: &'static str = "preview";

    async fn run(
        preview: &PreviewEnvironment,
        ctx: &Context,
        status: &mut PreviewEnvironmentStatus,
    ) -> Result<Report, ReconcileError> {
        let result = run(preview, ctx, status).await;
        if preview.labels().contains_key(labels::PULL_REQUEST) {
            report(preview, ctx, status, &result).await;
        }
        result
    }

    fn failed(status: &mut PreviewEnvironmentStatus, error: &ReconcileError) {
        warn!(%error, "preview failed");
        status.phase = Some(if error.is_permanent() { PreviewPhase::Failed } else { PreviewPhase::Pending });
    }
}

/// Posts the preview's state on its pull request's head: pending while it builds and rolls
/// out, success with its URL, failure with the reason. Posting never fails the reconcile.
async fn report(
    preview: &PreviewEnvironment,
    ctx: &Context,
    status: &PreviewEnvironmentStatus,
    result: &Result<Report, ReconcileError>,
) {
    let place = status.url.clone().or_else(|| status.namespace.as_ref().map(|n| format!("namespace {n}")));
    let (state, description) = match result {
        Ok(report) => match &report.verdict {
            Verdict::Ready(_) => (CommitState::Success, format!("Preview ready: {}", place.unwrap_or_default())),
            // One pending status per head, however the rollout's counts move.
            Verdict::Progressing(_) => (CommitState::Pending, format!("Deploying to {}", place.unwrap_or_default())),
            Verdict::HeldBack { message, .. } => (CommitState::Failure, message.clone()),
            Verdict::Suspended(_) | Verdict::Gone => return,
        },
        Err(e) if e.is_permanent() => (CommitState::Failure, e.to_string()),
        Err(_) => (CommitState::Pending, "Building the preview".to_string()),
    };
    let url = if state == CommitState::Success { status.url.clone() } else { None };
    pull_requests::report(ctx, preview, state, description, url).await;
}

/// The preview's own work.
async fn run(
    preview: &PreviewEnvironment,
    ctx: &Context,
    status: &mut PreviewEnvironmentStatus,
) -> Result<Report, ReconcileError> {
    let cicd = preview.namespace().unwrap_or_default();
    let built = build(preview, ctx, &cicd, status).await?;
    // Looked at again when it expires, and at least every resync.
    let requeue = match built.lifetime.expires {
        Some(expires) => {
            let left = expires.duration_since(Timestamp::now());
            if left.is_negative() {
                info!("expired; deleting");
                let mut report = Report::new(Verdict::Gone, None);
                report.note(EventType::Normal, Reason::Expired, "expired; removing the preview and its namespace");
                Api::<PreviewEnvironment>::namespaced(ctx.client.clone(), &cicd)
                    .delete(&preview.name_any(), &DeleteParams::default())
                    .await?;
                return Ok(report);
            }
            let left = Duration::try_from(left).unwrap_or(Duration::ZERO);
            let warn_in = left.saturating_sub(EXPIRY_WARNING);
            if warn_in.is_zero() {
                expiring(preview, ctx, &cicd, status, expires).await;
            }
            // Looked at again when the warning is due, when it expires, and every resync.
            let next = if warn_in.is_zero() { left } else { warn_in.min(left) };
            next.min(ctx.resync) + Duration::from_millis(200)
        }
        None => ctx.resync,
    };
    let verdict = match (built.suspended, built.application) {
        (Some(why), _) => Verdict::Suspended(why),
        (None, Some(app)) if app.progressing() => {
            status.phase = Some(PreviewPhase::Pending);
            let message = format!("application {} is rolling out: {}", app.status.name, app.problem());
            return Ok(Report::new(Verdict::Progressing(message), Some(requeue.min(HEALTH_POLL))));
        }
        (None, Some(app @ AppState { failed: Some(reason), .. })) => {
            status.phase = Some(PreviewPhase::Pending);
            let message = format!("application {}: {}", app.status.name, app.problem());
            let mut report =
                Report::new(Verdict::HeldBack { reason, message: message.clone() }, Some(requeue.min(RETRY)));
            report.note(EventType::Warning, reason, message);
            return Ok(report);
        }
        (None, _) => {
            let mut message = format!("preview namespace {} is ready", status.namespace.clone().unwrap_or_default());
            if let Some(capped) = &built.lifetime.capped {
                message.push_str(&format!("; {capped}"));
            }
            status.phase = Some(PreviewPhase::Ready);
            Verdict::Ready(message)
        }
    };
    Ok(Report::new(verdict, Some(requeue)))
}

/// How long before a preview expires its team's targets are told.
const EXPIRY_WARNING: Duration = Duration::from_secs(3600);

/// Tells the team's targets, once per expiry time, that the preview expires within the hour.
async fn expiring(
    preview: &PreviewEnvironment,
    ctx: &Context,
    cicd: &str,
    status: &PreviewEnvironmentStatus,
    expires: Timestamp,
) {
    let factory = factory_of_cicd(cicd).unwrap_or(cicd);
    let name = preview.name_any();
    let message = factory_notify::Message {
        event: factory_api::NotificationEvent::PreviewExpiring,
        factory: factory.to_string(),
        object: format!("PreviewEnvironment {cicd}/{name}"),
        summary: format!("preview {name} expires at {expires}"),
        detail: format!(
            "keep it longer with: kubectl annotate previewenvironment -n {cicd} {name} {}=<duration> --overwrite",
            labels::KEEP
        ),
        url: status.url.clone(),
        time: crate::services::notify::now(),
    };
    crate::services::notify::tell(ctx, format!("expiring/{cicd}/{name}/{expires}"), message).await;
}

/// The team factory owning a cicd namespace.
async fn team_of(ctx: &Context, cicd: &str) -> Result<Factory, ReconcileError> {
    let name = factory_of_cicd(cicd).unwrap_or(cicd);
    Api::<Factory>::all(ctx.client.clone())
        .get_opt(name)
        .await?
        .filter(|f| f.spec.factory_type == factory_api::FactoryType::Applications)
        .ok_or_else(|| {
            ReconcileError::InvalidSpec(format!("namespace {cicd} is not the cicd namespace of a team factory"))
        })
}

/// When the preview expires, within what its factory allows ([`previews::lifetime`]).
fn expiry(preview: &PreviewEnvironment, team: &Factory) -> Result<previews::Lifetime, ReconcileError> {
    let policy = team.spec.previews.clone().unwrap_or_default();
    let created = preview.metadata.creation_timestamp.as_ref().map_or_else(Timestamp::now, |t| t.0);
    let keep = preview.annotations().get(labels::KEEP).map(String::as_str);
    previews::lifetime(&policy, &preview.spec, keep, created).map_err(ReconcileError::InvalidSpec)
}

/// What a reconcile of a preview found: when it expires, whether it is suspended, and how its
/// application went.
struct Built {
    lifetime: previews::Lifetime,
    /// Why nothing was applied, when the preview or its factory is suspended.
    suspended: Option<String>,
    /// The application, once applied (or tried).
    application: Option<AppState>,
}

/// Builds the preview, unless it or its factory is suspended (it expires all the same).
async fn build(
    preview: &PreviewEnvironment,
    ctx: &Context,
    cicd: &str,
    status: &mut PreviewEnvironmentStatus,
) -> Result<Built, ReconcileError> {
    let team = team_of(ctx, cicd).await?;
    let factory = team.name_any();
    let lifetime = expiry(preview, &team)?;
    status.expires_at = lifetime.expires.map(Time);
    let namespace = namespace_of(&factory, &preview.name_any());
    status.namespace = Some(namespace.clone());
    if let Some(why) = status::suspension(preview.spec.suspend, Some(&team)) {
        return Ok(Built {
            lifetime,
            suspended: Some(format!("{why} (the preview still expires)")),
            application: None,
        });
    }
    let app =
        team.spec.applications.iter().flatten().find(|a| a.name == preview.spec.application).cloned().ok_or_else(
            || {
                ReconcileError::InvalidSpec(format!(
                    "factory {factory} has no application {}",
                    preview.spec.application
                ))
            },
        )?;
    let policy = team.spec.previews.clone().unwrap_or_default();
    let class =
        previews::class(&factory, &policy, preview.spec.class.as_deref()).map_err(ReconcileError::InvalidSpec)?;
    let origin = Manifest {
        file: format!("PreviewEnvironment {cicd}/{}", preview.name_any()),
        line: 0,
        document: 0,
        object: json!(null),
    };
    let target =
        Target { namespace: &namespace, class: &class, environment: "preview", kind: "preview", protected: false };
    let Baseline { mut desired, account, .. } = baseline(ctx, &team, &target, &origin, Read::Api).await?;
    // The people a preview is for may work in it (`previews.access`, default `edit`).
    let owners = team.spec.owners.clone().unwrap_or_default();
    let grants = previews::access(&policy, &owners);
    desired.extend(
        factory_core::objects::access_bindings(&factory, &namespace, &grants)
            .into_iter()
            .map(|object| Manifest { object, ..origin.clone() }),
    );
    // Reachable at a URL of the platform's making, when the application says what serves it.
    status.url = None;
    if let (Some(ingress), Some(expose)) = (&policy.ingress, &app.expose) {
        let host = factory_core::pull_requests::host(ingress, &factory, &app.name, &preview.name_any());
        let object = factory_core::pull_requests::ingress(ingress, expose, &namespace, &host);
        desired.push(Manifest { object, ..origin.clone() });
        status.url = Some(factory_core::pull_requests::url(ingress, &host));
    }
    let client = ctx.impersonating_platform(&account.namespace, &account.name)?;
    let engine_labels = std::collections::BTreeMap::from([(
        labels::APPLIED_BY.to_string(),
        format!("environment.preview.{}", preview.name_any()),
    )]);
    let outcome = Engine::new(client, ctx.resolver.clone(), engine_labels)
        .run(&desired, &status.inventory, PruneMode::Enabled, DriftMode::Correct)
        .await?;
    applications::wait_for_new_rights(ctx, &outcome, &factory, &namespace).await;
    status.inventory = outcome.inventory;

    // The one application, at the preview's ref.
    let mut app = app;
    app.source.git_ref = Some(preview.spec.git_ref.clone());
    let app_target = applications::Target {
        factory: &factory,
        namespace: &namespace,
        class: &class,
        environment: "preview",
        drift: factory_api::DriftPolicy::Correct,
        releases: false,
        promotion: None,
    };
    let applied = applications::apply(ctx, &app_target, &app, status.application.as_ref()).await;
    status.source_revision = applied.status.last_applied_revision.clone();
    status.reconcile.last_applied_revision = applied.status.last_applied_revision.clone();
    status.reconcile.last_attempted_revision = applied.status.last_attempted_revision.clone();
    status.application = Some(applied.status.clone());
    Ok(Built { lifetime, suspended: None, application: Some(applied) })
}

/// Deletes the preview's namespace and holds the finalizer until it is gone.
async fn cleanup(preview: Arc<PreviewEnvironment>, ctx: &Context) -> Result<Action, ReconcileError> {
    let cicd = preview.namespace().unwrap_or_default();
    let factory = factory_of_cicd(&cicd).unwrap_or(&cicd).to_string();
    let namespace = namespace_of(&factory, &preview.name_any());
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    match namespaces.get_opt(&namespace).await? {
        None => {
            info!(%namespace, "preview namespace gone; releasing the preview");
            if preview.labels().contains_key(labels::PULL_REQUEST) {
                let said = format!("Preview removed: namespace {namespace} is gone");
                pull_requests::report(ctx, &preview, CommitState::Success, said, None).await;
            }
            Ok(Action::await_change())
        }
        Some(ns) => {
            // Only a namespace this preview made: never another environment's.
            let ours = ns.labels().get(labels::NAMESPACE_KIND).is_some_and(|k| k == "preview")
                && ns.labels().get(labels::FACTORY).is_some_and(|f| *f == factory);
            if !ours {
                warn!(%namespace, "not a preview namespace of this factory; leaving it");
                return Ok(Action::await_change());
            }
            if ns.metadata.deletion_timestamp.is_none() {
                namespaces.delete(&namespace, &DeleteParams::background()).await?;
                status::event(
                    ctx,
                    preview.as_ref(),
                    EventType::Normal,
                    Reason::Deleting,
                    &format!("deleting namespace {namespace}"),
                )
                .await;
            }
            Err(ReconcileError::Waiting(format!("namespace {namespace} is being deleted")))
        }
    }
}
