//! Team pipelines: each application's Tekton objects (its `pipelines` path, such as `.tekton/`)
//! applied into the team's cicd namespace as the team's service account, and the aggregated
//! view of the team's PipelineRuns. Tekton runs the builds; the operator only writes and reads
//! Tekton objects. Without Tekton the rest of the factory reconciles and the view says why it
//! is empty.

use std::collections::BTreeMap;

use factory_api::environment::ApplicationStatus;
use factory_api::factory::RunsSummary;
use factory_api::{Factory, labels};
use factory_apply::{DriftMode, Engine, PruneMode};
use factory_core::manifests::{self, Manifest};
use factory_core::names::cicd_namespace;
use factory_core::render::TENANT_SERVICE_ACCOUNT;
use factory_core::runs;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};

use crate::context::Context;
use crate::error::ReconcileError;
use crate::source::checkout;

/// Tekton's PipelineRun, storage version `tekton.dev/v1`.
pub fn pipeline_run_resource() -> ApiResource {
    ApiResource {
        group: "tekton.dev".into(),
        version: "v1".into(),
        api_version: "tekton.dev/v1".into(),
        kind: "PipelineRun".into(),
        plural: "pipelineruns".into(),
    }
}

/// Applies every application's pipelines into the cicd namespace; returns one status each.
pub async fn apply(ctx: &Context, factory: &Factory, previous: &[ApplicationStatus]) -> Vec<ApplicationStatus> {
    let mut out = Vec::new();
    for app in factory.spec.applications.iter().flatten() {
        let Some(path) = app.pipelines.as_ref().map(|p| p.path.clone()) else { continue };
        let mut status = previous
            .iter()
            .find(|s| s.name == app.name)
            .cloned()
            .unwrap_or_else(|| ApplicationStatus { name: app.name.clone(), ..Default::default() });
        match apply_one(ctx, factory, &app.name, &app.source, &path, &status.inventory).await {
            Ok((revision, inventory)) => {
                let new_revision = status.last_applied_revision.as_deref() != Some(revision.as_str());
                let run = app.pipelines.as_ref().and_then(|p| p.run_on_change.as_ref()).filter(|_| new_revision);
                if let Some(run) = run
                    && let Err(e) = start_run(ctx, factory, &app.name, &revision, run).await
                {
                    status.error = format!("{}: starting a run: {e}", e.reason());
                    out.push(status);
                    continue;
                }
                status.last_applied_revision = Some(revision.clone());
                status.last_attempted_revision = Some(revision);
                status.inventory = inventory;
                status.error.clear();
            }
            Err(e) => status.error = format!("{}: {e}", e.reason()),
        }
        out.push(status);
    }
    out
}

async fn apply_one(
    ctx: &Context,
    factory: &Factory,
    app: &str,
    source: &factory_api::GitSource,
    path: &str,
    previous: &[factory_api::InventoryEntry],
) -> Result<(String, Vec<factory_api::InventoryEntry>), ReconcileError> {
    let team = factory.name_any();
    let cicd = cicd_namespace(&team);
    let checkout = checkout(ctx, source, &cicd, vec![Some(path.to_string())]).await?;
    let vars = BTreeMap::from([
        ("factory".to_string(), team.clone()),
        ("application".to_string(), app.to_string()),
        ("namespace".to_string(), cicd.clone()),
    ]);
    let mut desired: Vec<Manifest> = manifests::load(&checkout.files[0], &vars).map_err(ReconcileError::Load)?;
    for m in &mut desired {
        if let Some(meta) = m.object.get_mut("metadata").and_then(serde_json::Value::as_object_mut) {
            meta.insert("namespace".into(), cicd.clone().into());
        }
    }
    let client = ctx.impersonating(&cicd, TENANT_SERVICE_ACCOUNT)?;
    let engine_labels = BTreeMap::from([
        (labels::APPLIED_BY.to_string(), format!("application.{app}")),
        (runs::APPLICATION_LABEL.to_string(), app.to_string()),
    ]);
    let outcome = Engine::new(client, ctx.resolver.clone(), engine_labels)
        .run(&desired, previous, PruneMode::Enabled, DriftMode::Correct)
        .await?;
    Ok((checkout.synced.revision, outcome.inventory))
}

/// Starts `run.pipeline` for `revision` of `app` as the team's account. The run's name comes
/// from the revision, so a repeated reconcile never starts it twice.
async fn start_run(
    ctx: &Context,
    factory: &Factory,
    app: &str,
    revision: &str,
    run: &factory_api::factory::RunOnChange,
) -> Result<(), ReconcileError> {
    let cicd = cicd_namespace(&factory.name_any());
    let sha = revision.rsplit(':').next().unwrap_or(revision);
    let name = factory_core::names::sanitize_label(&format!("{app}-{}", &sha[..sha.len().min(12)]), 63);
    let object: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {"name": name, "namespace": cicd, "labels": {
            runs::APPLICATION_LABEL: app, runs::REVISION_LABEL: sha, runs::ENVIRONMENT_LABEL: run.environment,
            "tekton.dev/pipeline": run.pipeline, labels::MANAGED_BY: labels::MANAGED_BY_VALUE}},
        "spec": {"pipelineRef": {"name": run.pipeline}, "params": [
            {"name": "application", "value": app}, {"name": "revision", "value": sha},
            {"name": "environment", "value": run.environment}]}
    }))
    .map_err(|e| ReconcileError::Internal(e.to_string()))?;
    let client = ctx.impersonating(&cicd, TENANT_SERVICE_ACCOUNT)?;
    let api: Api<DynamicObject> = Api::namespaced_with(client, &cicd, &pipeline_run_resource());
    match api.create(&kube::api::PostParams::default(), &object).await {
        Ok(_) => {
            tracing::info!(%name, %app, %revision, "pipeline run started");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The aggregated view of the team's PipelineRuns (those labelled with an application).
pub async fn summary(ctx: &Context, factory: &Factory) -> RunsSummary {
    let cicd = cicd_namespace(&factory.name_any());
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &cicd, &pipeline_run_resource());
    match api.list(&ListParams::default().labels(runs::APPLICATION_LABEL)).await {
        Ok(list) => {
            let values: Vec<serde_json::Value> =
                list.items.iter().filter_map(|o| serde_json::to_value(o).ok()).collect();
            runs::summarise(&values, k8s_openapi::jiff::Timestamp::now())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => RunsSummary {
            unavailable: Some("pipelines are unavailable: Tekton (tekton.dev/v1 PipelineRun) is not installed".into()),
            ..Default::default()
        },
        Err(e) => {
            RunsSummary { unavailable: Some(format!("pipeline runs could not be read: {e}")), ..Default::default() }
        }
    }
}
