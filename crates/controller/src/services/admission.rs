//! Installs the operator's ValidatingAdmissionPolicies (`factory_core::admission`) into a
//! cluster: the home cluster at start-up, and every other cluster an environment lives on the
//! first time the operator reaches it, so a protected environment is protected wherever it is.

use std::sync::Arc;

use factory_apply::{ApplyError, DriftMode, Engine, PruneMode, Resolver};
use factory_core::manifests::Manifest;
use kube::Client;
use tracing::info;

/// Applies `objects` (policies, their bindings and whatever cluster-wide objects go with them)
/// with server-side apply as `client`, so a newer operator updates them; prunes nothing.
pub async fn install(
    client: Client,
    resolver: Arc<Resolver>,
    objects: Vec<serde_json::Value>,
) -> Result<(), ApplyError> {
    let origin = "factory-operator admission policies";
    let desired: Vec<Manifest> =
        objects.into_iter().map(|object| Manifest { file: origin.into(), line: 0, document: 0, object }).collect();
    let outcome = Engine::new(client, resolver, Default::default())
        .run(&desired, &[], PruneMode::Disabled, DriftMode::Correct)
        .await?;
    info!(created = outcome.created.len(), updated = outcome.updated.len(), "admission policies in place");
    Ok(())
}
