//! Shared images of a platform factory: their build pipelines applied into the platform's own
//! cicd namespace, a PipelineRun started when an image's definition or the CA bundle changes
//! and once per schedule period, and the last image built published on status (and, by the
//! platform render, in every team's `shared-images` ConfigMap). Tekton builds; we only start.

use std::collections::BTreeMap;

use factory_api::environment::ApplicationStatus;
use factory_api::factory::{ImageStatus, ServiceAccountReference, SharedImages};
use factory_api::{Factory, FactoryStatus, labels};
use factory_apply::{DriftMode, Engine, PruneMode};
use factory_core::images::{self, BuildInput};
use factory_core::manifests::{self, SourceFile};
use factory_core::names::cicd_namespace;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, PostParams};

use crate::services::context::Context;
use crate::services::error::ReconcileError;
use crate::services::tekton::{pipeline_run_resource, tekton_served};

/// Name of the `status.pipelines` entry holding the image pipelines' inventory.
const ENTRY: &str = "images";

/// What one platform revision says about the images.
pub struct Revision<'a> {
    /// The images spec.
    pub spec: &'a SharedImages,
    /// Files under `spec.path`: the build Pipelines and Tasks.
    pub files: &'a [SourceFile],
    /// Git object id of each image's context, in `spec.images` order.
    pub context_ids: Vec<Option<String>>,
    /// Git object id of the CA bundle.
    pub ca_id: Option<String>,
    /// The platform repository's URL.
    pub url: &'a str,
    /// The revision, `<branch>@sha1:<sha>`.
    pub revision: &'a str,
}

/// Refreshes `status.images` from the image PipelineRuns (a list, no writes).
pub async fn observe(ctx: &Context, factory: &Factory, spec: &SharedImages, status: &mut FactoryStatus) {
    let cicd = cicd_namespace(&factory.name_any());
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &cicd, &pipeline_run_resource());
    let runs: Vec<serde_json::Value> = match api.list(&ListParams::default().labels(labels::IMAGE)).await {
        Ok(list) => list.items.iter().filter_map(|o| serde_json::to_value(o).ok()).collect(),
        Err(_) => Vec::new(),
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    status.images = spec
        .images
        .iter()
        .map(|image| {
            let known = status.images.iter().find(|s| s.name == image.name).map(|s| s.definition.clone());
            images::status(&image.name, &known.unwrap_or_default(), &runs, now)
        })
        .collect();
}

/// Applies the build pipelines and starts every build that is due. Returns a note for the
/// factory's message when something here could not be done; the rest of the platform is not
/// held back by it.
pub async fn build(
    ctx: &Context,
    factory: &Factory,
    account: &ServiceAccountReference,
    input: Revision<'_>,
    status: &mut FactoryStatus,
) -> Option<String> {
    if !tekton_served(ctx).await {
        return Some("shared images are not built: Tekton (tekton.dev/v1 PipelineRun) is not installed".into());
    }
    let mut entry = status
        .pipelines
        .iter()
        .find(|p| p.name == ENTRY)
        .cloned()
        .unwrap_or_else(|| ApplicationStatus { name: ENTRY.into(), ..Default::default() });
    let result = apply_and_start(ctx, factory, account, &input, &mut entry, status).await;
    entry.last_attempted_revision = Some(input.revision.to_string());
    let note = match result {
        Ok(()) => {
            entry.last_applied_revision = Some(input.revision.to_string());
            entry.error.clear();
            None
        }
        Err(e) => {
            entry.error = format!("{}: {e}", e.reason());
            Some(format!("shared images: {}", entry.error))
        }
    };
    status.pipelines.retain(|p| p.name != ENTRY);
    status.pipelines.push(entry);
    note
}

async fn apply_and_start(
    ctx: &Context,
    factory: &Factory,
    account: &ServiceAccountReference,
    input: &Revision<'_>,
    entry: &mut ApplicationStatus,
    status: &mut FactoryStatus,
) -> Result<(), ReconcileError> {
    let name = factory.name_any();
    let cicd = cicd_namespace(&name);
    let mut vars = factory.spec.variables.clone();
    vars.insert("factory".into(), name.clone());
    vars.insert("namespace".into(), cicd.clone());
    let mut desired = manifests::load(input.files, &vars).map_err(ReconcileError::Load)?;
    for m in &mut desired {
        if let Some(meta) = m.object.get_mut("metadata").and_then(serde_json::Value::as_object_mut) {
            meta.insert("namespace".into(), cicd.clone().into());
        }
    }
    let client = ctx.impersonating_platform(&account.namespace, &account.name)?;
    let engine_labels = BTreeMap::from([(labels::APPLIED_BY.to_string(), format!("images.{name}"))]);
    let outcome = Engine::new(client.clone(), ctx.resolver.clone(), engine_labels)
        .run(&desired, &entry.inventory, PruneMode::Enabled, DriftMode::Correct)
        .await?;
    entry.inventory = outcome.inventory;

    let schedule = input
        .spec
        .schedule
        .as_deref()
        .and_then(|s| factory_core::duration::parse(s).ok())
        .map_or(images::DEFAULT_SCHEDULE_SECS, |d| d.as_secs());
    let sha = input.revision.rsplit(':').next().unwrap_or(input.revision);
    let api: Api<DynamicObject> = Api::namespaced_with(client, &cicd, &pipeline_run_resource());
    let now = k8s_openapi::jiff::Timestamp::now();
    for (image, context_id) in input.spec.images.iter().zip(&input.context_ids) {
        let definition = images::definition(image, context_id.as_deref(), input.ca_id.as_deref());
        let run_name = images::run_name(&image.name, &definition, schedule, now);
        let build = BuildInput {
            url: input.url,
            revision: sha,
            ca_path: input.spec.ca_path.as_deref().unwrap_or(""),
            definition: &definition,
        };
        let run: DynamicObject = serde_json::from_value(images::build_run(image, &run_name, &cicd, &build))
            .map_err(|e| ReconcileError::Internal(e.to_string()))?;
        match api.create(&PostParams::default(), &run).await {
            Ok(_) => tracing::info!(image = %image.name, run = %run_name, %definition, "image build started"),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        match status.images.iter_mut().find(|s| s.name == image.name) {
            Some(s) => s.definition = definition,
            None => status.images.push(ImageStatus { name: image.name.clone(), definition, ..Default::default() }),
        }
    }
    Ok(())
}
