//! Team factories (`type: Applications`): materialise one `Environment` per permanent
//! environment of the spec, and summarise them on status. An environment removed from the
//! spec is left in place (its Environment reports itself orphaned); nothing here deletes one.

use factory_api::conditions::READY;
use std::sync::Arc;

use factory_api::factory::{Delivery, DeliveryStage, DeliveryStatus, EnvironmentCounts, PreviewCounts};
use factory_api::{Environment, Factory, FactoryStatus, labels};
use factory_apply::{DriftMode, Engine, PruneMode};
use factory_core::manifests::Manifest;
use factory_core::{conditions, render, validate};
use kube::ResourceExt;
use serde_json::json;
use tracing::{debug, info, warn};

use crate::reconcilers::skeleton::{Reconciler, Report, Verdict};
use crate::services::context::{Applied, Context, Read};
use crate::services::error::ReconcileError;
use crate::services::metrics::FactoryLabels;
use crate::services::triggers;
use crate::steps::{pipelines, previews, pull_requests, releases};

/// The team factory as the skeleton runs it.
pub struct Team;

impl Reconciler for Team {
    type Object = Factory;
    const NAME: &'static str = "team";

    async fn run(factory: &Factory, ctx: &Context, status: &mut FactoryStatus) -> Result<Report, ReconcileError> {
        if factory.spec.suspend {
            // Nothing applied, pruned or started: no Environment objects, pipelines, runs or branch previews.
            let why = "spec.suspend is true: its environments and previews are suspended too";
            return Ok(Report::new(Verdict::Suspended(why.into()), None));
        }
        let (message, listing) = summarise(factory, ctx, status).await?;
        // As long as a summary-only reconcile trusts the last apply: a full apply follows; and
        // when the next listing of pull requests is due.
        let again = listing.map_or(ctx.resync, |l| l.min(ctx.resync));
        Ok(Report::new(Verdict::Ready(message), Some(again)))
    }
}

/// Applies and summarises; returns the Ready message and when pull requests are listed next.
async fn summarise(
    factory: &Factory,
    ctx: &Context,
    status: &mut FactoryStatus,
) -> Result<(String, Option<std::time::Duration>), ReconcileError> {
    let name = factory.name_any();
    let problems = validate::factory(&name, &factory.spec);
    if !problems.is_empty() {
        return Err(ReconcileError::InvalidSpec(
            problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        ));
    }
    let origin =
        Manifest { file: format!("Factory {name} spec.environments"), line: 0, document: 0, object: json!(null) };
    let desired: Vec<Manifest> = render::team_environments(&name, &factory.spec)
        .into_iter()
        .map(|object| Manifest { object, ..origin.clone() })
        .collect();
    let wanted: Vec<String> = desired.iter().map(|m| m.name().to_string()).collect();
    // Environments are rendered from the platform's applied revision: until there is one, they
    // would only wait (one reconcile and one status write each, for nothing). The platform's
    // first revision triggers this factory again (`triggers::Revisions`).
    let platform = match factory.labels().get(labels::PLATFORM) {
        Some(platform) => ctx.factory(platform, Read::Store).await?,
        None => None,
    };
    let platform_revision = platform.as_ref().and_then(|p| p.status.as_ref()?.reconcile.last_applied_revision.clone());
    if let (Some(p), None) = (&platform, &platform_revision) {
        return Err(ReconcileError::Waiting(format!(
            "platform factory {} has not applied a revision yet; environments are created from it",
            p.name_any()
        )));
    }
    // Most reconciles of a team factory come from its environments becoming ready: they
    // refresh the summary. Its objects are applied again only when its inputs (spec, labels,
    // annotations such as a reconcile request, the platform's revision, the Environment
    // objects it renders) differ from what this process applied, or once every resync interval.
    let fingerprint = factory_core::inventory::digest(&json!([
        desired.iter().map(|m| &m.object).collect::<Vec<_>>(),
        triggers::inputs(factory),
        platform_revision.unwrap_or_default(),
    ]));
    if let Some(applied) = ctx.applied_recently(&name, &fingerprint, ctx.resync) {
        debug!("applied with these inputs; refreshing the summary only");
        status.inventory = applied.inventory;
        status.pipelines = applied.pipelines;
    } else {
        // Environment objects are the operator's own bookkeeping: written with its identity.
        // Never pruned: a permanent environment outlives its removal from the spec.
        let engine = Engine::new(ctx.client.clone(), ctx.resolver.clone(), Default::default());
        let outcome = engine.run(&desired, &status.inventory, PruneMode::Disabled, DriftMode::Correct).await?;
        if !outcome.created.is_empty() {
            info!(created = ?outcome.created, "environments materialised");
        }
        status.inventory = outcome.inventory.into_iter().filter(|e| wanted.iter().any(|w| *w == e.name)).collect();
        status.pipelines = pipelines::apply(ctx, factory, &status.pipelines).await;
        let applied = Applied { inventory: status.inventory.clone(), pipelines: status.pipelines.clone() };
        ctx.remember_applied(&name, fingerprint, applied);
    }

    let mut counts = EnvironmentCounts { total: i32::try_from(wanted.len()).unwrap_or(i32::MAX), ..Default::default() };
    let environments = ctx.environments_of(&name).await?;
    status.releases = delivery_view(factory, &environments);
    if !status.releases.is_empty()
        && let Err(e) = releases::judge(ctx, factory).await
    {
        warn!(error = %e, "releases could not be judged");
    }
    for env in environments {
        let ready = env.status.as_ref().is_some_and(|s| conditions::is_true(&s.reconcile.conditions, READY));
        if !wanted.contains(&env.name_any()) {
            counts.orphaned += 1;
        } else if ready {
            counts.ready += 1;
        }
    }
    status.environments = Some(counts.clone());

    let cicd = factory_core::names::cicd_namespace(&name);
    let mut notes = previews::branch_previews(factory, ctx, &cicd).await?;
    let pulls = pull_requests::keep(factory, ctx, &cicd).await?;
    notes.extend(pulls.notes);
    let previews = ctx.previews_in(&cicd).await?;
    let soon = k8s_openapi::jiff::Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_secs(3600);
    let mut pc = PreviewCounts { total: i32::try_from(previews.len()).unwrap_or(i32::MAX), ..Default::default() };
    for pv in &previews {
        let s = pv.status.clone().unwrap_or_default();
        if conditions::is_true(&s.reconcile.conditions, READY) {
            pc.ready += 1;
        }
        if s.expires_at.is_some_and(|t| t.0 < soon) {
            pc.expiring += 1;
        }
    }
    status.previews = Some(pc.clone());
    let labels = FactoryLabels { factory: name.clone() };
    ctx.metrics.previews_active.get_or_create(&labels).set(i64::from(pc.total));
    let view = pipelines::summary(ctx, factory).await;
    let pipeline_errors: Vec<String> = status
        .pipelines
        .iter()
        .filter(|p| !p.error.is_empty())
        .map(|p| format!("pipelines of {}: {}", p.name, p.error))
        .collect();
    let runs_note = match &view.unavailable {
        Some(why) => why.clone(),
        None => format!("runs: {} succeeded, {} failed, {} running", view.succeeded, view.failed, view.running),
    };
    status.runs = Some(view);
    let mut message = format!(
        "{} environments ({} ready{}), {} previews ({} ready, {} expiring within an hour)",
        counts.total,
        counts.ready,
        if counts.orphaned > 0 { format!(", {} orphaned and left in place", counts.orphaned) } else { String::new() },
        pc.total,
        pc.ready,
        pc.expiring
    );
    message.push_str("; ");
    message.push_str(&runs_note);
    for note in notes.into_iter().chain(pipeline_errors) {
        message.push_str("; ");
        message.push_str(&note);
    }
    Ok((message, pulls.next))
}

/// For each application delivered by releases, what each of `environments` runs, in the
/// factory's order of environments.
fn delivery_view(factory: &Factory, environments: &[Arc<Environment>]) -> Vec<DeliveryStatus> {
    let delivered = factory.spec.applications.iter().flatten().filter(|a| a.delivery == Some(Delivery::Releases));
    let order = factory.spec.environments.iter().flatten().map(|e| e.name.as_str());
    let by_name = |short: &str| {
        let object = factory_core::names::environment_object_name(&factory.name_any(), short);
        environments.iter().find(|e| e.name_any() == object)
    };
    delivered
        .map(|app| DeliveryStatus {
            application: app.name.clone(),
            environments: order
                .clone()
                .map(|short| {
                    let entry = by_name(short)
                        .and_then(|e| e.status.as_ref())
                        .and_then(|s| s.applications.iter().find(|a| a.name == app.name));
                    let health = entry.and_then(|a| a.health.as_ref());
                    let degraded =
                        health.filter(|h| h.state == factory_api::HealthState::Degraded).map(|h| h.message.clone());
                    DeliveryStage {
                        environment: short.to_string(),
                        release: entry.and_then(|a| a.release.as_ref()).map(|r| r.name.clone()),
                        health: health.map(|h| h.state),
                        waiting: entry.map(|a| a.waiting.clone()).unwrap_or_default(),
                        last_failure: entry
                            .filter(|a| !a.error.is_empty())
                            .map(|a| a.error.clone())
                            .or(degraded)
                            .unwrap_or_default(),
                    }
                })
                .collect(),
        })
        .collect()
}
