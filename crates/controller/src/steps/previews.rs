//! Preview environments as a team factory keeps them: one per branch matching
//! `previews.branches`, and the namespace each preview gets.

use factory_api::{Factory, PreviewEnvironment, labels};
use factory_core::names::sanitize_label;
use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::info;

use crate::services::context::Context;
use crate::services::error::ReconcileError;

/// Keeps one preview per branch matching `previews.branches` for every application with
/// config: creates missing ones, deletes those whose branch is gone. Only previews this
/// function made (label `factories.dev/branch`) are ever deleted here. Returns notes for status
/// (such as a preview refused by the cap).
pub async fn branch_previews(factory: &Factory, ctx: &Context, cicd: &str) -> Result<Vec<String>, ReconcileError> {
    let Some(pattern) = factory.spec.previews.as_ref().and_then(|p| p.branches.clone()) else { return Ok(Vec::new()) };
    let api: Api<PreviewEnvironment> = Api::namespaced(ctx.client.clone(), cicd);
    let existing = api.list(&ListParams::default().labels(labels::BRANCH_PREVIEW)).await?;
    let mut wanted = Vec::new();
    let mut notes = Vec::new();
    for app in factory.spec.applications.iter().flatten().filter(|a| a.deploys()) {
        let reader = ctx.tenant(&factory.name_any())?;
        let branches = crate::services::source::branches(ctx, &app.source, &reader, cicd).await?;
        for branch in branches.into_iter().filter(|b| factory_core::names::glob_match(&pattern, b)) {
            let name = factory_core::names::branch_preview_name(&app.name, &branch);
            wanted.push(name.clone());
            if existing.items.iter().any(|p| p.name_any() == name) {
                continue;
            }
            let preview: PreviewEnvironment = serde_json::from_value(json!({
                "apiVersion": PreviewEnvironment::api_version(&()), "kind": "PreviewEnvironment",
                "metadata": {"name": name, "namespace": cicd,
                             "labels": {labels::BRANCH_PREVIEW: "true", labels::MANAGED_BY: labels::MANAGED_BY_VALUE},
                             "annotations": {labels::BRANCH_PREVIEW: branch}},
                "spec": {"application": app.name, "ref": {"branch": branch}}
            }))
            .map_err(|e| ReconcileError::Internal(e.to_string()))?;
            match api.create(&kube::api::PostParams::default(), &preview).await {
                Ok(_) => info!(%name, %branch, "branch preview created"),
                Err(kube::Error::Api(s)) if s.code == 403 => {
                    notes.push(format!("preview for branch {branch} refused: {}", s.message))
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    for gone in existing.items.iter().filter(|p| !wanted.contains(&p.name_any())) {
        info!(preview = %gone.name_any(), "branch gone; deleting its preview");
        api.delete(&gone.name_any(), &kube::api::DeleteParams::default()).await?;
    }
    Ok(notes)
}

/// The namespace of preview `name` of factory `factory`: a DNS-1123 label, unique per preview.
pub fn namespace_of(factory: &str, name: &str) -> String {
    sanitize_label(&format!("{factory}-pv-{name}"), 63)
}
