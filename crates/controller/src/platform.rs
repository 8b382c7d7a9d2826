//! The platform factory (`type: Environments`): fetch the platform repository, load the cluster
//! path and the team factory definitions, build what each team factory needs, validate the
//! whole revision, apply it as the factory's service account, prune what left git, and say so.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use factory_api::conditions::reasons;
use factory_api::factory::ServiceAccountReference;
use factory_api::{Factory, FactoryStatus, FactoryType, labels};
use factory_apply::{Desired, DriftMode, Engine, Outcome, PruneMode};
use factory_core::manifests::{self, Manifest};
use factory_core::{duration, render, validate};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tracing::{info, instrument};

use crate::context::Context;
use crate::error::ReconcileError;
use crate::source::checkout;
use crate::status;

/// The environment class applied to every team's cicd namespace, when the platform defines it.
const CICD_CLASS: &str = "cicd";

/// Default poll interval of a source.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// What one successful run applied.
struct Applied {
    revision: String,
    outcome: Outcome,
    /// Why pruning was held back; the factory is not Ready while there are any.
    notes: Vec<String>,
    /// What else the message should say without holding the factory back (shared images).
    info: Vec<String>,
}

/// Reconciles one Factory; team factories (`Applications`) are handed to [`crate::team`].
#[instrument(skip_all, fields(factory = %factory.name_any()))]
pub async fn reconcile(factory: Arc<Factory>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    if factory.spec.factory_type != FactoryType::Environments {
        return crate::team::reconcile(factory, ctx).await;
    }
    let interval = factory
        .spec
        .source
        .as_ref()
        .and_then(|s| s.interval.as_deref())
        .and_then(|i| duration::parse(i).ok())
        .unwrap_or(DEFAULT_INTERVAL);
    let mut new_status = factory.status.clone().unwrap_or_default();
    new_status.observed_generation = factory.metadata.generation;
    if factory.spec.suspend {
        status::suspended(&mut new_status.conditions, factory.metadata.generation, "spec.suspend is true");
        status::write(&Api::all(ctx.client.clone()), factory.as_ref(), factory.status.as_ref(), new_status).await?;
        return Ok(Action::await_change());
    }
    let started = std::time::Instant::now();
    let result = run(&factory, &ctx, &mut new_status).await;
    match &result {
        Ok(applied) => {
            let o = &applied.outcome;
            let mut message = format!(
                "applied revision {}: {} objects ({} created, {} updated, {} unchanged, {} pruned)",
                applied.revision,
                o.inventory.len(),
                o.created.len(),
                o.updated.len(),
                o.unchanged,
                o.pruned.len()
            );
            // An inventory too large for the status is not written: the previous one stays, so
            // nothing is pruned on its account, and the factory says so.
            let oversize = factory_core::inventory::too_large_for_status(&o.inventory).map(|size| {
                format!(
                    "the inventory of {} objects takes {} KiB, more than a status may hold ({} KiB): it is not recorded, so objects that leave git from now on are not pruned; split the factories path across several platform factories",
                    o.inventory.len(),
                    size / 1024,
                    factory_core::inventory::STATUS_BUDGET / 1024
                )
            });
            for note in applied.notes.iter().chain(&applied.info).chain(&oversize) {
                message.push_str("; ");
                message.push_str(note);
            }
            if let Some(why) = &oversize {
                status::held_back(
                    &mut new_status.conditions,
                    factory.metadata.generation,
                    reasons::INVENTORY_TOO_LARGE,
                    &message,
                );
                status::event(&ctx, factory.as_ref(), EventType::Warning, reasons::INVENTORY_TOO_LARGE, why).await;
            } else if applied.notes.is_empty() {
                status::succeeded(&mut new_status.conditions, factory.metadata.generation, &message);
            } else {
                // Applied, but pruning was held back: not Ready until someone looks.
                status::held_back(
                    &mut new_status.conditions,
                    factory.metadata.generation,
                    reasons::PRUNE_SKIPPED,
                    &message,
                );
            }
            new_status.last_applied_revision = Some(applied.revision.clone());
            new_status.objects = i32::try_from(o.inventory.len()).ok();
            if oversize.is_none() {
                new_status.inventory = o.inventory.clone();
            }
            if o.wrote() {
                info!(%message, "reconciled");
                status::event(&ctx, factory.as_ref(), EventType::Normal, "Applied", &message).await;
            }
            if !o.pruned.is_empty() {
                let note = format!("pruned {}", o.pruned.join(", "));
                status::event(&ctx, factory.as_ref(), EventType::Normal, "Pruned", &note).await;
            }
            if !applied.notes.is_empty() && o.pruned.is_empty() {
                status::event(
                    &ctx,
                    factory.as_ref(),
                    EventType::Warning,
                    reasons::PRUNE_SKIPPED,
                    &applied.notes.join("; "),
                )
                .await;
            }
        }
        Err(error) => {
            status::failed(&mut new_status.conditions, factory.metadata.generation, error);
            status::report_failure(&ctx, factory.as_ref(), error).await;
        }
    }
    status::record(&ctx, "factory", result.as_ref().map(|a| &a.outcome), started.elapsed());
    status::write(&Api::all(ctx.client.clone()), factory.as_ref(), factory.status.as_ref(), new_status).await?;
    Ok(match result {
        Ok(_) => Action::requeue(jitter(interval, &factory.name_any())),
        Err(e) if e.is_permanent() => Action::requeue(jitter(interval, &factory.name_any())),
        Err(_) => Action::requeue(Duration::from_secs(10).min(interval)),
    })
}

/// Spreads polls of many objects over ±10% of the interval.
pub(crate) fn jitter(interval: Duration, name: &str) -> Duration {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let seed = name.bytes().fold(u64::from(nanos), |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let span = interval.as_millis() as u64 / 5;
    if span == 0 {
        return interval;
    }
    Duration::from_millis(interval.as_millis() as u64 - span / 2 + seed % span)
}

async fn run(factory: &Factory, ctx: &Context, status: &mut FactoryStatus) -> Result<Applied, ReconcileError> {
    let name = factory.name_any();
    let spec = &factory.spec;
    let problems = validate::factory(&name, spec);
    if !problems.is_empty() {
        return Err(ReconcileError::InvalidSpec(
            problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        ));
    }
    let (Some(source), Some(account)) = (&spec.source, &spec.service_account) else {
        return Err(ReconcileError::InvalidSpec("source and serviceAccount are required".into()));
    };
    let cluster = spec.cluster.clone();
    let factories = spec.factories.clone();
    let classes = spec.environment_classes.clone().unwrap_or_default();
    let images = spec.images.clone();
    // Paths read, in order: cluster, factories, the classes, the pipeline templates, then (with
    // images) the build pipelines, each image's context and the CA bundle (for their ids).
    let mut paths = vec![cluster.as_ref().map(|p| p.path.clone()), factories.as_ref().map(|p| p.path.clone())];
    paths.extend(classes.iter().map(|c| Some(c.path.clone())));
    let templates_at = paths.len();
    paths.push(spec.pipeline_templates.as_ref().map(|p| p.path.clone()));
    let images_at = paths.len();
    if let Some(images) = &images {
        paths.push(Some(images.path.clone()));
        paths.extend(images.images.iter().map(|i| Some(i.context.clone())));
        paths.push(images.ca_path.clone());
    }
    // Its git Secret is read with its own rights, like everything it applies.
    let (reader, secrets_namespace) = ctx.identity(factory)?;
    let checkout = checkout(ctx, source, &reader, &secrets_namespace, paths).await?;
    status.last_attempted_revision = Some(checkout.synced.revision.clone());

    let mut vars: BTreeMap<String, String> = spec.variables.clone();
    vars.insert("factory".into(), name.clone());
    // Objects are handed to the engine as they are rendered: a revision building a thousand
    // team factories is never held parsed all at once.
    let engine = engine(ctx, &name, account)?;
    let mut desired = Desired::default();
    let mut load_errors = Vec::new();
    for manifest in load(&checkout.files[0], &vars, &mut load_errors) {
        engine.prepare(&mut desired, &manifest).await?;
    }
    // Classes are applied per environment; here they only have to parse.
    let mut class_vars = vars.clone();
    for key in ["namespace", "environment", "class"] {
        class_vars.insert(key.into(), "validation".into());
    }
    for files in &checkout.files[2..templates_at] {
        load(files, &class_vars, &mut load_errors);
    }
    // Templates and image pipelines are applied elsewhere (where Tekton may be absent); here
    // they only have to parse, so a broken one fails the revision that broke it.
    let mut tekton_vars = vars.clone();
    tekton_vars.insert("namespace".into(), "validation".into());
    tekton_vars.insert("platform".into(), name.clone());
    let tekton_end = if images.is_some() { images_at + 1 } else { images_at };
    for files in &checkout.files[templates_at..tekton_end] {
        load(files, &tekton_vars, &mut load_errors);
    }
    if let Some(images) = &images {
        // The platform's own cicd namespace, where its images are built.
        let namespace = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": factory_core::names::cicd_namespace(&name),
            "labels": {labels::NAMESPACE_KIND: "cicd", labels::PLATFORM: name, labels::PART_OF: name}}});
        let manifest =
            Manifest { file: format!("Factory {name} spec.images"), line: 0, document: 0, object: namespace };
        engine.prepare(&mut desired, &manifest).await?;
        crate::images::observe(ctx, factory, images, status).await;
    }
    let references = factory_core::images::references(&status.images);
    // A class named `cicd` is the baseline of every team's cicd namespace; without one, the
    // built-in conservative baseline is (`render::default_cicd_baseline`).
    let cicd_defined = classes.iter().any(|c| c.name == CICD_CLASS);
    let cicd_files: Vec<&[factory_core::manifests::SourceFile]> =
        factory_core::baseline::class_paths(&classes, CICD_CLASS)
            .unwrap_or_default()
            .iter()
            .filter_map(|path| classes.iter().position(|c| &c.path == path))
            .map(|i| checkout.files[2 + i].as_slice())
            .collect();
    let mut render_errors = Vec::new();
    let mut cicd_errors = Vec::new();
    // One file of definitions at a time, for the same reason.
    for file in &checkout.files[1] {
        for definition in load(std::slice::from_ref(file), &vars, &mut load_errors) {
            match render::team_factory(&name, &definition, &references, &ctx.tenant_namespace) {
                Ok(objects) => {
                    for object in &objects {
                        engine.prepare(&mut desired, object).await?;
                    }
                }
                Err(e) => render_errors.push(e),
            }
            let team = definition.name();
            let cicd = factory_core::names::cicd_namespace(team);
            let target = factory_core::baseline::Target {
                factory: team,
                platform: &name,
                namespace: &cicd,
                class: CICD_CLASS,
                environment: CICD_CLASS,
                kind: "cicd",
                protected: false,
                tenant_namespace: &ctx.tenant_namespace,
            };
            let team_vars = factory_core::baseline::vars(&spec.variables, &target);
            let mut class_manifests = Vec::new();
            for files in &cicd_files {
                class_manifests.extend(load(files, &team_vars, &mut cicd_errors));
            }
            for object in &render::cicd_class_objects(&cicd, cicd_defined.then_some(class_manifests), &definition) {
                engine.prepare(&mut desired, object).await?;
            }
        }
    }
    // Every file that does not load, in one report.
    if !load_errors.is_empty() {
        return Err(ReconcileError::Load(load_errors));
    }
    if !cicd_errors.is_empty() {
        return Err(ReconcileError::Load(cicd_errors));
    }
    if !render_errors.is_empty() {
        return Err(ReconcileError::Render(render_errors));
    }

    // A configured path that became empty is far more often a mistake than a wish to delete
    // everything it held: without `allowEmpty`, nothing is pruned.
    let mut notes = Vec::new();
    for (spec_path, files) in [(&cluster, &checkout.files[0]), (&factories, &checkout.files[1])] {
        if let Some(p) = spec_path
            && files.is_empty()
            && !p.allow_empty
        {
            notes.push(format!(
                "path {} is empty or missing: nothing was pruned (set allowEmpty: true to allow it)",
                p.path
            ));
        }
    }
    let prune = if notes.is_empty() { PruneMode::Enabled } else { PruneMode::Disabled };

    let outcome = engine.apply(desired, &status.inventory, prune, DriftMode::Correct).await?;
    let mut info = Vec::new();
    if let Some(images) = &images {
        let ids = &checkout.ids[images_at + 1..];
        let revision = crate::images::Revision {
            spec: images,
            files: &checkout.files[images_at],
            context_ids: ids[..images.images.len()].to_vec(),
            ca_id: ids.last().cloned().flatten(),
            url: &source.url,
            revision: &checkout.synced.revision,
        };
        info.extend(crate::images::build(ctx, factory, account, revision, status).await);
    } else {
        status.images.clear();
    }
    Ok(Applied { revision: checkout.synced.revision, outcome, notes, info })
}

/// The manifests of `files`, or none, with what failed to load added to `errors`.
fn load(
    files: &[factory_core::manifests::SourceFile],
    vars: &BTreeMap<String, String>,
    errors: &mut Vec<factory_core::manifests::LoadError>,
) -> Vec<Manifest> {
    manifests::load(files, vars).unwrap_or_else(|e| {
        errors.extend(e);
        Vec::new()
    })
}

fn engine(ctx: &Context, factory: &str, account: &ServiceAccountReference) -> Result<Engine, ReconcileError> {
    let client = ctx.impersonating_platform(&account.namespace, &account.name)?;
    let labels = BTreeMap::from([(labels::APPLIED_BY.to_string(), format!("factory.{factory}"))]);
    Ok(Engine::new(client, ctx.resolver.clone(), labels))
}
