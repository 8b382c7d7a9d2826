//! Team factories (`type: Applications`): materialise one `Environment` per permanent
//! environment of the spec, and summarise them on status. An environment removed from the
//! spec is left in place (its Environment reports itself orphaned); nothing here deletes one.

use std::sync::Arc;
use std::time::Duration;

use factory_api::conditions::{READY, reasons};
use factory_api::factory::{EnvironmentCounts, PreviewCounts};
use factory_api::{Environment, Factory, FactoryStatus, labels};
use factory_apply::{DriftMode, Engine, PruneMode};
use factory_core::manifests::Manifest;
use factory_core::{conditions, render, validate};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::context::Context;
use crate::error::ReconcileError;
use crate::status;

/// Reconciles one team factory.
#[instrument(skip_all, fields(factory = %factory.name_any()))]
pub async fn reconcile(factory: Arc<Factory>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let started = std::time::Instant::now();
    let mut new_status = factory.status.clone().unwrap_or_default();
    new_status.observed_generation = factory.metadata.generation;
    let result = run(&factory, &ctx, &mut new_status).await;
    match &result {
        Ok(message) => {
            status::succeeded(&mut new_status.conditions, factory.metadata.generation, message);
        }
        Err(error) => {
            warn!(%error, reason = error.reason(), "reconcile failed");
            status::failed(&mut new_status.conditions, factory.metadata.generation, error);
            status::event(&ctx, factory.as_ref(), EventType::Warning, error.reason(), &error.to_string()).await;
        }
    }
    let reason = match &result {
        Ok(_) => reasons::RECONCILED,
        Err(e) => e.reason(),
    };
    ctx.metrics.reconciled("team", reason, started.elapsed(), 0, 0);
    write_status(&ctx, &factory, new_status).await?;
    Ok(match result {
        Err(e) if !e.is_permanent() => Action::requeue(Duration::from_secs(10)),
        _ => Action::requeue(Duration::from_secs(300)),
    })
}

async fn run(factory: &Factory, ctx: &Context, status: &mut FactoryStatus) -> Result<String, ReconcileError> {
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
    // Environment objects are the operator's own bookkeeping: written with its identity.
    // Never pruned: a permanent environment outlives its removal from the spec.
    let engine = Engine::new(ctx.client.clone(), ctx.resolver.clone(), Default::default());
    let outcome = engine.run(&desired, &status.inventory, PruneMode::Disabled, DriftMode::Correct).await?;
    if !outcome.created.is_empty() {
        info!(created = ?outcome.created, "environments materialised");
    }
    let wanted: Vec<String> = desired.iter().map(|m| m.name().to_string()).collect();
    status.inventory = outcome.inventory.into_iter().filter(|e| wanted.contains(&e.name)).collect();

    let environments: Api<Environment> = Api::all(ctx.client.clone());
    let mine = environments.list(&ListParams::default().labels(&format!("{}={name}", labels::FACTORY))).await?;
    let mut counts = EnvironmentCounts { total: i32::try_from(wanted.len()).unwrap_or(i32::MAX), ..Default::default() };
    for env in &mine.items {
        let ready = env.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY));
        if !wanted.contains(&env.name_any()) {
            counts.orphaned += 1;
        } else if ready {
            counts.ready += 1;
        }
    }
    status.environments = Some(counts.clone());
    status.previews.get_or_insert_with(PreviewCounts::default);
    Ok(format!(
        "{} environments ({} ready{})",
        counts.total,
        counts.ready,
        if counts.orphaned > 0 { format!(", {} orphaned and left in place", counts.orphaned) } else { String::new() }
    ))
}

async fn write_status(ctx: &Context, factory: &Factory, new: FactoryStatus) -> Result<(), ReconcileError> {
    if factory.status.as_ref() == Some(&new) {
        return Ok(());
    }
    let api: Api<Factory> = Api::all(ctx.client.clone());
    let patch = json!({"apiVersion": Factory::api_version(&()), "kind": Factory::kind(&()), "status": new});
    api.patch_status(
        &factory.name_any(),
        &PatchParams::apply(factory_api::FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}
