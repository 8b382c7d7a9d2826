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
use factory_core::manifests::{self, Manifest};
use factory_core::names::cicd_namespace;
use factory_core::render::TENANT_SERVICE_ACCOUNT;
use kube::ResourceExt;

use crate::context::Context;
use crate::error::ReconcileError;
use crate::source::checkout;

/// Applies `app` into `env`; returns its new status (with the error, if any).
pub async fn apply(
    ctx: &Context,
    env: &Environment,
    environment: &str,
    app: &Application,
    previous: Option<&ApplicationStatus>,
) -> ApplicationStatus {
    let mut status =
        previous.cloned().unwrap_or_else(|| ApplicationStatus { name: app.name.clone(), ..Default::default() });
    match run(ctx, env, environment, app, &status).await {
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
    env: &Environment,
    environment: &str,
    app: &Application,
    status: &ApplicationStatus,
) -> Result<(String, Vec<factory_api::InventoryEntry>), (Option<String>, ReconcileError)> {
    let spec = &env.spec;
    let Some(config) = &app.config else { return Ok((String::new(), Vec::new())) };
    let root = config.path.trim_end_matches('/');
    let paths = vec![
        Some(format!("{root}/base")),
        Some(format!("{root}/classes/{}", spec.class)),
        Some(format!("{root}/environments/{environment}")),
    ];
    let tenant_ns = cicd_namespace(&spec.factory);
    let checkout = checkout(ctx, &app.source, &tenant_ns, paths).await.map_err(|e| (None, e))?;
    let revision = checkout.synced.revision.clone();
    let fail = |e| (Some(revision.clone()), e);
    let vars = BTreeMap::from([
        ("factory".to_string(), spec.factory.clone()),
        ("environment".to_string(), environment.to_string()),
        ("namespace".to_string(), spec.namespace.clone()),
        ("class".to_string(), spec.class.clone()),
        ("application".to_string(), app.name.clone()),
    ]);
    let mut desired: Vec<Manifest> = Vec::new();
    for files in &checkout.files {
        let loaded = manifests::load(files, &vars).map_err(|e| fail(ReconcileError::Load(e)))?;
        for mut m in loaded {
            // Everything lands in this environment's namespace; a cluster-scoped kind keeps no
            // namespace and is refused by RBAC.
            if let Some(meta) = m.object.get_mut("metadata").and_then(serde_json::Value::as_object_mut) {
                meta.insert("namespace".into(), spec.namespace.clone().into());
            }
            let key = format!("{}/{}/{}", m.api_version(), m.kind(), m.name());
            desired.retain(|d| format!("{}/{}/{}", d.api_version(), d.kind(), d.name()) != key);
            desired.push(m);
        }
    }
    let client = ctx.impersonating(&tenant_ns, TENANT_SERVICE_ACCOUNT).map_err(|e| fail(e.into()))?;
    let engine_labels = BTreeMap::from([
        (labels::APPLIED_BY.to_string(), format!("application.{}", app.name)),
        (labels::FACTORY.to_string(), spec.factory.clone()),
    ]);
    let engine = Engine::new(client, ctx.resolver.clone(), engine_labels);
    let drift = match spec.drift_policy.unwrap_or_default() {
        factory_api::DriftPolicy::Correct => DriftMode::Correct,
        factory_api::DriftPolicy::Report => DriftMode::Report,
    };
    let outcome =
        engine.run(&desired, &status.inventory, PruneMode::Enabled, drift).await.map_err(|e| fail(e.into()))?;
    tracing::debug!(environment = %env.name_any(), application = %app.name, created = outcome.created.len(), "application applied");
    Ok((revision, outcome.inventory))
}
