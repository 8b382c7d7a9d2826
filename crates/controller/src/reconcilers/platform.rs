//! The platform factory (`type: Environments`): fetch the platform repository, load the cluster
//! path and the team factory definitions, build what each team factory needs, validate the
//! whole revision, apply it as the factory's service account, prune what left git, and say so.

use std::collections::BTreeMap;
use std::time::Duration;

use factory_api::conditions::Reason;
use factory_api::factory::ServiceAccountReference;
use factory_api::{Factory, FactoryStatus, labels};
use factory_apply::{Desired, DriftMode, Engine, Outcome, PruneMode};
use factory_core::manifests::{self, Manifest};
use factory_core::{duration, render, validate};
use kube::ResourceExt;
use kube::runtime::events::EventType;
use tracing::info;

use crate::reconcilers::skeleton::{Reconciler, Report, Verdict};
use crate::services::context::Context;
use crate::services::error::ReconcileError;
use crate::services::render as tools;
use crate::services::schedule::jitter;
use crate::services::source::{Paths, Slot, checkout};
use crate::steps::images;

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

/// The platform factory as the skeleton runs it.
pub struct Platform;

impl Reconciler for Platform {
    type Object = Factory;
    const NAME: &'static str = "factory";

    fn resync(factory: &Factory, _: &Context) -> Duration {
        jitter(interval(factory), &factory.name_any())
    }

    async fn run(factory: &Factory, ctx: &Context, status: &mut FactoryStatus) -> Result<Report, ReconcileError> {
        if factory.spec.suspend {
            return Ok(Report::new(Verdict::Suspended("spec.suspend is true".into()), None));
        }
        let applied = apply(factory, ctx, status).await?;
        Ok(report(factory, applied, status))
    }
}

/// How often the platform repository is polled.
fn interval(factory: &Factory) -> Duration {
    factory
        .spec
        .source
        .as_ref()
        .and_then(|s| s.interval.as_deref())
        .and_then(|i| duration::parse(i).ok())
        .unwrap_or(DEFAULT_INTERVAL)
}

/// What an applied revision means for status, Events and the next poll.
fn report(factory: &Factory, applied: Applied, status: &mut FactoryStatus) -> Report {
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
    let verdict = if oversize.is_some() {
        Verdict::HeldBack { reason: Reason::InventoryTooLarge, message: message.clone() }
    } else if applied.notes.is_empty() {
        Verdict::Ready(message.clone())
    } else {
        // Applied, but pruning was held back: not Ready until someone looks.
        Verdict::HeldBack { reason: Reason::PruneSkipped, message: message.clone() }
    };
    let mut report = Report::new(verdict, Some(jitter(interval(factory), &factory.name_any()))).counting(o);
    if let Some(why) = &oversize {
        report.note(EventType::Warning, Reason::InventoryTooLarge, why.clone());
    }
    status.reconcile.last_applied_revision = Some(applied.revision.clone());
    status.objects = i32::try_from(o.inventory.len()).ok();
    if o.wrote() {
        info!(%message, "reconciled");
        report.note(EventType::Normal, Reason::Applied, message);
    }
    if !o.pruned.is_empty() {
        report.note(EventType::Normal, Reason::Pruned, format!("pruned {}", o.pruned.join(", ")));
    }
    if !applied.notes.is_empty() && o.pruned.is_empty() {
        report.note(EventType::Warning, Reason::PruneSkipped, applied.notes.join("; "));
    }
    if oversize.is_none() {
        status.inventory = applied.outcome.inventory;
    }
    report
}

/// Where each part of a platform revision is read from.
struct Layout {
    cluster: Slot,
    factories: Slot,
    /// One per environment class, in `spec.environmentClasses` order.
    classes: Vec<Slot>,
    templates: Slot,
    images: Option<ImageSlots>,
}

/// Where the shared images' parts are read from.
struct ImageSlots {
    /// The build Pipelines and Tasks.
    pipelines: Slot,
    /// Each image's context, in `spec.images.images` order (for their ids).
    contexts: Vec<Slot>,
    /// The CA bundle (for its id).
    ca: Slot,
}

impl Layout {
    fn of(spec: &factory_api::FactorySpec, paths: &mut Paths) -> Self {
        let path = |p: &Option<factory_api::PathSpec>| p.as_ref().map(|p| p.path.clone());
        Layout {
            cluster: paths.add(path(&spec.cluster)),
            factories: paths.add(path(&spec.factories)),
            classes: spec.environment_classes.iter().flatten().map(|c| paths.add(Some(c.path.clone()))).collect(),
            templates: paths.add(spec.pipeline_templates.as_ref().map(|p| p.path.clone())),
            images: spec.images.as_ref().map(|images| ImageSlots {
                pipelines: paths.add(Some(images.path.clone())),
                contexts: images.images.iter().map(|i| paths.add(Some(i.context.clone()))).collect(),
                ca: paths.add(images.ca_path.clone()),
            }),
        }
    }
}

async fn apply(factory: &Factory, ctx: &Context, status: &mut FactoryStatus) -> Result<Applied, ReconcileError> {
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
    let mut paths = Paths::default();
    let layout = Layout::of(spec, &mut paths);
    // Its git Secret is read with its own rights, like everything it applies.
    let (reader, secrets_namespace) = ctx.identity(factory)?;
    let mut checkout = checkout(ctx, source, &reader, &secrets_namespace, paths).await?;
    status.reconcile.last_attempted_revision = Some(checkout.synced.revision.clone());
    tools::kustomize(ctx, &mut checkout).await?;

    let mut vars: BTreeMap<String, String> = spec.variables.clone();
    vars.insert("factory".into(), name.clone());
    // Objects are handed to the engine as they are rendered: a revision building a thousand
    // team factories is never held parsed all at once.
    let engine = engine(ctx, &name, account)?;
    let mut desired = Desired::default();
    let mut load_errors = Vec::new();
    for manifest in load(checkout.files(layout.cluster), &vars, &mut load_errors) {
        engine.prepare(&mut desired, &manifest).await?;
    }
    // Classes are applied per environment; here they only have to parse.
    let mut class_vars = vars.clone();
    for key in ["namespace", "environment", "class"] {
        class_vars.insert(key.into(), "validation".into());
    }
    for slot in &layout.classes {
        load(checkout.files(*slot), &class_vars, &mut load_errors);
    }
    // Templates and image pipelines are applied elsewhere (where Tekton may be absent); here
    // they only have to parse, so a broken one fails the revision that broke it.
    let mut tekton_vars = vars.clone();
    tekton_vars.insert("namespace".into(), "validation".into());
    tekton_vars.insert("platform".into(), name.clone());
    let tekton = std::iter::once(layout.templates).chain(layout.images.as_ref().map(|i| i.pipelines));
    for slot in tekton {
        load(checkout.files(slot), &tekton_vars, &mut load_errors);
    }
    if let Some(images) = &images {
        // The platform's own cicd namespace, where its images are built.
        let namespace = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": factory_core::names::cicd_namespace(&name),
            "labels": {labels::NAMESPACE_KIND: "cicd", labels::PLATFORM: name, labels::PART_OF: name}}});
        let manifest =
            Manifest { file: format!("Factory {name} spec.images"), line: 0, document: 0, object: namespace };
        engine.prepare(&mut desired, &manifest).await?;
        images::observe(ctx, factory, images, status).await;
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
            .map(|i| checkout.files(layout.classes[i]))
            .collect();
    let mut render_errors = Vec::new();
    let mut cicd_errors = Vec::new();
    // One file of definitions at a time, for the same reason.
    for file in checkout.files(layout.factories) {
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
    for (spec_path, files) in
        [(&cluster, checkout.files(layout.cluster)), (&factories, checkout.files(layout.factories))]
    {
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
    if let (Some(images), Some(slots)) = (&images, &layout.images) {
        let revision = images::Revision {
            spec: images,
            files: checkout.files(slots.pipelines),
            context_ids: slots.contexts.iter().map(|slot| checkout.id(*slot)).collect(),
            ca_id: checkout.id(slots.ca),
            url: &source.url,
            revision: &checkout.synced.revision,
        };
        info.extend(images::build(ctx, factory, account, revision, status).await);
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
