//! The *render* step for kustomize and helm: a layer holding a kustomization becomes
//! `kustomize build`'s output, an application's chart `helm template`'s. Renders run on the
//! blocking pool, at most `--render-workers` at once (a reconcile waiting for a slot holds no
//! other), and their output is cached by input (`factory_tools`).

use std::sync::Arc;

use factory_core::manifests::{self, Manifest, SourceFile};
use factory_tools::{Chart, Rendered, Tools, Tree};

use crate::services::context::Context;
use crate::services::error::ReconcileError;
use crate::services::source::Checkout;

/// Runs `render` with the tree of `checkout`'s commit, on the blocking pool, within the
/// render workers.
async fn with_tree(
    ctx: &Context,
    checkout: &Checkout,
    render: impl FnOnce(&Tools, &Tree<'_>) -> Result<Rendered, factory_tools::RenderError> + Send + 'static,
) -> Result<Rendered, ReconcileError> {
    let _slot =
        ctx.render_workers.clone().acquire_owned().await.map_err(|e| ReconcileError::Internal(e.to_string()))?;
    let tools = ctx.tools.clone();
    let repos = ctx.repos.clone();
    let (url, credential) = checkout.origin.clone();
    let commit = checkout.synced.commit.clone();
    let started = std::time::Instant::now();
    let rendered = tokio::task::spawn_blocking(move || {
        let dir = repos.path(&url, &credential);
        let id = format!("{}-{commit}", dir.file_name().and_then(|n| n.to_str()).unwrap_or("repo"));
        let files = || {
            let repo = repos.open(&url, &credential).map_err(|e| e.to_string())?;
            factory_source::read_tree(&repo, &commit, factory_source::Limits::default()).map_err(|e| e.to_string())
        };
        render(&tools, &Tree { id, files: &files })
    })
    .await
    .map_err(|e| ReconcileError::Internal(e.to_string()))?;
    let outcome = match &rendered {
        Ok(r) if r.cached => "hit",
        Ok(_) => "rendered",
        Err(_) => "failed",
    };
    ctx.metrics.observe_render(outcome, started.elapsed());
    Ok(rendered?)
}

/// Replaces the files of every path of `checkout` that holds a kustomization by one file:
/// `kustomize build`'s output, named `kustomize build <path>` (so a load error names its line
/// there), loaded like any YAML file afterwards.
pub async fn kustomize(ctx: &Context, checkout: &mut Checkout) -> Result<(), ReconcileError> {
    for index in 0..checkout.paths.len() {
        let Some(path) = checkout.paths[index].clone().filter(|_| checkout.kustomized[index]) else { continue };
        let rendered = with_tree(ctx, checkout, move |tools, tree| tools.kustomize(tree, &path)).await?;
        checkout.files[index] = vec![SourceFile { path: rendered.source, content: rendered.text.as_bytes().to_vec() }];
    }
    Ok(())
}

/// The objects of `chart` rendered from `checkout`'s commit.
pub async fn chart(ctx: &Context, checkout: &Checkout, mut chart: Chart) -> Result<Vec<Manifest>, ReconcileError> {
    let (kube_version, api_versions) = ctx.resolver.capabilities().await?;
    chart.capabilities = factory_tools::Capabilities { kube_version, api_versions };
    let chart = Arc::new(chart);
    let rendered = with_tree(ctx, checkout, move |tools, tree| tools.helm(tree, &chart)).await?;
    manifests::load_rendered(&rendered.source, &rendered.text, None).map_err(ReconcileError::Load)
}
