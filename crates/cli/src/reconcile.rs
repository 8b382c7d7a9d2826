//! `kubectl factory reconcile`: ask the operator for an immediate reconcile.

use anyhow::{Context, Result};
use factory_api::labels;
use kube::Client;
use kube::api::Api;
use serde_json::json;

/// Asks for an immediate reconcile of `factory` (and, through it, its environments) by
/// changing the `factories.dev/requested-at` annotation.
pub async fn reconcile(client: &Client, factory: &str) -> Result<String> {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = json!({"metadata": {"annotations": {labels::REQUESTED_AT: now}}});
    Api::<factory_api::Factory>::all(client.clone())
        .patch(factory, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .with_context(|| format!("annotating factory {factory}"))?;
    Ok(format!("factory.factories.dev/{factory} reconcile requested at {now}"))
}
