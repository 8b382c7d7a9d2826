//! Applications in an environment: each application's configuration is read from its
//! repository (`<config>/base/`, `<config>/classes/<class>/`, `<config>/environments/<env>/`,
//! later ones overriding earlier ones) and applied into the environment's namespace **as the
//! team factory's service account**, so the API server's RBAC and the operator's admission
//! policies decide what a team may do. A refused object fails that application's revision
//! before anything of it is written.

use std::collections::BTreeMap;

use factory_api::environment::ApplicationStatus;
use factory_api::factory::Application;
use factory_api::{Environment, labels};
use factory_apply::{DriftMode, Engine, PruneMode};
use factory_core::baseline;
use factory_core::manifests;
use factory_core::names::cicd_namespace;
use factory_core::render::TENANT_SERVICE_ACCOUNT;

use crate::context::Context;
use crate::error::ReconcileError;
use crate::source::checkout;

/// Where an application's configuration goes.
pub struct Target<'a> {
    /// The team factory.
    pub factory: &'a str,
    /// The namespace.
    pub namespace: &'a str,
    /// Environment class of the namespace.
    pub class: &'a str,
    /// Environment short name (`prod`; `preview` for previews).
    pub environment: &'a str,
    /// Drift handling.
    pub drift: factory_api::DriftPolicy,
}

impl<'a> Target<'a> {
    /// The target of a permanent environment.
    pub fn environment(env: &'a Environment, environment: &'a str) -> Self {
        Self {
            factory: &env.spec.factory,
            namespace: &env.spec.namespace,
            class: &env.spec.class,
            environment,
            drift: env.spec.drift_policy.unwrap_or_default(),
        }
    }
}

/// Applies `app` into `target`; returns its new status (with the error, if any).
pub async fn apply(
    ctx: &Context,
    target: &Target<'_>,
    app: &Application,
    previous: Option<&ApplicationStatus>,
) -> ApplicationStatus {
    let mut status =
        previous.cloned().unwrap_or_else(|| ApplicationStatus { name: app.name.clone(), ..Default::default() });
    match run(ctx, target, app, &status).await {
        Ok((revision, inventory)) => {
            status.last_applied_revision = Some(revision.clone());
            status.last_attempted_revision = Some(revision);
            status.inventory = inventory;
            status.error.clear();
        }
        Err((attempted, error)) => {
            if attempted.is_some() {
                status.last_attempted_revision = attempted;
            }
            status.error = format!("{}: {error}", error.reason());
        }
    }
    status
}

async fn run(
    ctx: &Context,
    target: &Target<'_>,
    app: &Application,
    status: &ApplicationStatus,
) -> Result<(String, Vec<factory_api::InventoryEntry>), (Option<String>, ReconcileError)> {
    let environment = target.environment;
    let Some(config) = &app.config else { return Ok((String::new(), Vec::new())) };
    let paths = baseline::application_paths(&config.path, target.class, environment).into_iter().map(Some).collect();
    let tenant_ns = cicd_namespace(target.factory);
    let checkout = checkout(ctx, &app.source, &tenant_ns, paths).await.map_err(|e| (None, e))?;
    let revision = checkout.synced.revision.clone();
    let fail = |e| (Some(revision.clone()), e);
    let vars = baseline::application_vars(target.factory, environment, target.namespace, target.class, &app.name);
    let mut layers = Vec::new();
    for files in &checkout.files {
        layers.push(manifests::load(files, &vars).map_err(|e| fail(ReconcileError::Load(e)))?);
    }
    let desired = baseline::layered_objects(layers, target.namespace);
    let client = ctx.impersonating(&tenant_ns, TENANT_SERVICE_ACCOUNT).map_err(|e| fail(e.into()))?;
    let engine_labels = BTreeMap::from([
        (labels::APPLIED_BY.to_string(), format!("application.{}", app.name)),
        (labels::FACTORY.to_string(), target.factory.to_string()),
    ]);
    let engine = Engine::new(client, ctx.resolver.clone(), engine_labels);
    let drift = match target.drift {
        factory_api::DriftPolicy::Correct => DriftMode::Correct,
        factory_api::DriftPolicy::Report => DriftMode::Report,
    };
    let outcome =
        engine.run(&desired, &status.inventory, PruneMode::Enabled, drift).await.map_err(|e| fail(e.into()))?;
    tracing::debug!(namespace = target.namespace, application = %app.name, created = outcome.created.len(), "application applied");
    Ok((revision, outcome.inventory))
}
