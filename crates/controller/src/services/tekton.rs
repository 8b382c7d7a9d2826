//! Tekton as the operator sees it: where PipelineRuns live and whether Tekton's APIs are
//! served. Tekton is optional; every step that needs it asks here first.

use kube::api::ApiResource;

use crate::services::context::Context;

/// Tekton's PipelineRun, storage version `tekton.dev/v1`.
pub fn pipeline_run_resource() -> ApiResource {
    ApiResource {
        group: "tekton.dev".into(),
        version: "v1".into(),
        api_version: "tekton.dev/v1".into(),
        kind: "PipelineRun".into(),
        plural: "pipelineruns".into(),
    }
}

/// Whether the cluster serves `api_version`/`kind` (discovery, cached).
pub async fn served(ctx: &Context, api_version: &str, kind: &str) -> bool {
    matches!(ctx.resolver.is_served(api_version, kind).await, Ok(true))
}

/// Whether Tekton Pipelines is installed.
pub async fn tekton_served(ctx: &Context) -> bool {
    served(ctx, "tekton.dev/v1", "PipelineRun").await
}
