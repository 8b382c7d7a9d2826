//! Team pipelines: the platform's default pipeline templates (applied as the platform's
//! account), each application's Tekton objects (its `pipelines` path, such as `.tekton/`) and,
//! where Tekton Triggers is served, its push listener — applied into the team's cicd namespace
//! as the team's service account — and the aggregated view of the team's PipelineRuns. Tekton runs the builds; the operator only writes and reads
//! Tekton objects. Without Tekton the rest of the factory reconciles and the view says why it
//! is empty.

use std::collections::BTreeMap;

use factory_api::environment::ApplicationStatus;
use factory_api::factory::RunsSummary;
use factory_api::{Factory, labels};
use factory_apply::{DriftMode, Engine, PruneMode};
use factory_core::manifests::{self, Manifest};
use factory_core::names::cicd_namespace;
use factory_core::pipelines::{TRIGGERS_API_VERSION, application_triggers};
use factory_core::runs;
use factory_source::Reference;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams};

use crate::services::context::Context;
use crate::services::error::ReconcileError;
use crate::services::source::{Paths, checkout, checkout_at};
use crate::services::tekton::{pipeline_run_resource, served};
use crate::steps::releases;

/// Name of the `status.pipelines` entry for the platform's pipeline templates (not a valid
/// application name, so it cannot collide with one).
pub const TEMPLATES_ENTRY: &str = "platform:templates";

fn previous_or_new(previous: &[ApplicationStatus], name: &str) -> ApplicationStatus {
    previous
        .iter()
        .find(|s| s.name == name)
        .cloned()
        .unwrap_or_else(|| ApplicationStatus { name: name.to_string(), ..Default::default() })
}

/// Applies the platform's templates and every application's pipelines into the cicd namespace;
/// returns one status each.
pub async fn apply(ctx: &Context, factory: &Factory, previous: &[ApplicationStatus]) -> Vec<ApplicationStatus> {
    let mut out = Vec::new();
    if let Some(status) = templates(ctx, factory, previous).await {
        out.push(status);
    }
    let triggers = served(ctx, TRIGGERS_API_VERSION, "EventListener").await;
    for app in factory.spec.applications.iter().flatten() {
        let Some(spec) = app.pipelines.as_ref() else { continue };
        let mut status = previous_or_new(previous, &app.name);
        let on_push = spec.on_push.as_ref().filter(|_| triggers);
        let extra = on_push.map(|p| application_triggers(&factory.name_any(), &app.name, p)).unwrap_or_default();
        match apply_one(ctx, factory, &app.name, &app.source, &spec.path, extra, &status.inventory).await {
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
                if spec.on_push.is_some() && !triggers {
                    status.error = "TriggersUnavailable: Tekton Triggers (triggers.tekton.dev/v1beta1 EventListener) \
                                    is not installed, so pushes start nothing"
                        .into();
                }
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
    extra: Vec<serde_json::Value>,
    previous: &[factory_api::InventoryEntry],
) -> Result<(String, Vec<factory_api::InventoryEntry>), ReconcileError> {
    let team = factory.name_any();
    let cicd = cicd_namespace(&team);
    let client = ctx.tenant(&team)?;
    let checkout = checkout(ctx, source, &client, &cicd, Paths::from(vec![path.to_string()])).await?;
    let vars = BTreeMap::from([
        ("factory".to_string(), team.clone()),
        ("application".to_string(), app.to_string()),
        ("namespace".to_string(), cicd.clone()),
    ]);
    let mut desired: Vec<Manifest> = manifests::load(&checkout.files[0], &vars).map_err(ReconcileError::Load)?;
    let origin = format!("Factory {team} spec.applications[{app}].pipelines.onPush");
    desired.extend(extra.into_iter().map(|object| Manifest { file: origin.clone(), line: 0, document: 0, object }));
    in_namespace(&mut desired, &cicd);
    let engine_labels = BTreeMap::from([
        (labels::APPLIED_BY.to_string(), format!("application.{app}")),
        (runs::APPLICATION_LABEL.to_string(), app.to_string()),
    ]);
    let outcome = Engine::new(client, ctx.resolver.clone(), engine_labels)
        .run(&desired, previous, PruneMode::Enabled, DriftMode::Correct)
        .await?;
    Ok((checkout.synced.revision, outcome.inventory))
}

/// Places every object in `namespace`: the cicd namespace is the only place pipelines go.
fn in_namespace(objects: &mut [Manifest], namespace: &str) {
    for m in objects {
        if let Some(meta) = m.object.get_mut("metadata").and_then(serde_json::Value::as_object_mut) {
            meta.insert("namespace".into(), namespace.into());
        }
    }
}

/// Applies the platform factory's `pipelineTemplates` (at the revision it applied, read from
/// the cache) into the team's cicd namespace as the platform's account. `None` when the
/// platform offers none.
async fn templates(ctx: &Context, factory: &Factory, previous: &[ApplicationStatus]) -> Option<ApplicationStatus> {
    let mut status = previous_or_new(previous, TEMPLATES_ENTRY);
    let platform = match crate::steps::baseline::platform_of(ctx, factory, crate::services::context::Read::Store).await
    {
        Ok(p) => p,
        // Not built by a platform factory, or it has not applied yet: nothing to offer now.
        Err(_) => return previous.iter().find(|s| s.name == TEMPLATES_ENTRY).cloned(),
    };
    let path = platform.platform.spec.pipeline_templates.as_ref()?.path.clone();
    status.last_attempted_revision = Some(platform.applied.clone());
    let team = factory.name_any();
    let cicd = cicd_namespace(&team);
    let result = async {
        let client = ctx.impersonating_platform(&platform.account.namespace, &platform.account.name)?;
        let checkout = checkout_at(
            ctx,
            &platform.source,
            &client,
            &platform.account.namespace,
            Reference::Commit(platform.commit.clone()),
            Paths::from(vec![path]),
        )
        .await?;
        let mut vars = platform.platform.spec.variables.clone();
        vars.extend([
            ("factory".to_string(), team.clone()),
            ("platform".to_string(), platform.name.clone()),
            ("namespace".to_string(), cicd.clone()),
        ]);
        let mut desired = manifests::load(&checkout.files[0], &vars).map_err(ReconcileError::Load)?;
        in_namespace(&mut desired, &cicd);
        let engine_labels = BTreeMap::from([(labels::APPLIED_BY.to_string(), format!("platform.{}", platform.name))]);
        let outcome = Engine::new(client, ctx.resolver.clone(), engine_labels)
            .run(&desired, &status.inventory, PruneMode::Enabled, DriftMode::Correct)
            .await?;
        Ok::<_, ReconcileError>(outcome.inventory)
    }
    .await;
    match result {
        Ok(inventory) => {
            status.inventory = inventory;
            status.last_applied_revision = Some(platform.applied);
            status.error.clear();
        }
        Err(e) => status.error = format!("{}: {e}", e.reason()),
    }
    Some(status)
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
    let mut object = serde_json::json!({
        "apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {"name": name, "namespace": cicd, "labels": {
            runs::APPLICATION_LABEL: app, runs::REVISION_LABEL: sha, runs::ENVIRONMENT_LABEL: run.environment,
            "tekton.dev/pipeline": run.pipeline, labels::MANAGED_BY: labels::MANAGED_BY_VALUE}},
        "spec": {"pipelineRef": {"name": run.pipeline}, "params": [
            {"name": "application", "value": app}, {"name": "revision", "value": sha},
            {"name": "environment", "value": run.environment}]}
    });
    if let Some(task) = &run.deploy_task {
        let owners = factory.spec.owners.clone().unwrap_or_default();
        let target = factory.spec.environments.iter().flatten().find(|e| e.name == run.environment);
        let allowed = target
            .is_some_and(|e| factory_core::identity::deploys_to(&owners, e.protected.unwrap_or(false), &e.access));
        if !allowed {
            return Err(ReconcileError::InvalidSpec(format!(
                "runOnChange.deployTask deploys to {}, which has no deploy account: pipelines deploy only to \
                 environments that are not protected and where every owner holds edit or admin; a protected \
                 environment changes only through the factory's git",
                run.environment
            )));
        }
        // Only the deploying task gets the account whose rights reach the target environment.
        object["spec"]["taskRunSpecs"] = serde_json::json!([{"pipelineTaskName": task,
            "serviceAccountName": factory_core::pipelines::deployer_name(&run.environment)}]);
    }
    let object: DynamicObject = serde_json::from_value(object).map_err(|e| ReconcileError::Internal(e.to_string()))?;
    let client = ctx.tenant(&factory.name_any())?;
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
            releases::record_from_runs(ctx, factory, &values).await;
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
