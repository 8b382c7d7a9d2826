//! Previews of pull requests, as a team factory keeps them: one per open pull request its
//! policy selects, following the head commit, deleted when the pull request closes (or
//! leaves the selection). A pull request refused by the preview cap is told so on its head.

use std::time::Duration;

use factory_api::factory::Application;
use factory_api::{Factory, PreviewEnvironment, PullRequestPreviews, labels};
use factory_core::pull_requests::{self, Skipped};
use factory_hosts::{CommitState, CommitStatus, PullRequest};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::services::context::Context;
use crate::services::error::ReconcileError;
use crate::services::hosts;
use factory_core::names::factory_of_cicd;

/// When a host that could not be asked is asked again.
const AFTER_ERROR: Duration = Duration::from_secs(10);

/// What keeping the pull-request previews found: notes for status, and when to list again.
#[derive(Default)]
pub struct Kept {
    /// Notes for the factory's Ready message (refusals, skipped pull requests, host errors).
    pub notes: Vec<String>,
    /// When the soonest listing is due.
    pub next: Option<Duration>,
}

/// Keeps the pull-request previews of every application of `factory` with `pullRequests`.
/// Previews of an application that no longer has it are deleted; a host that cannot be asked
/// deletes nothing.
pub async fn keep(factory: &Factory, ctx: &Context, cicd: &str) -> Result<Kept, ReconcileError> {
    let api: Api<PreviewEnvironment> = Api::namespaced(ctx.client.clone(), cicd);
    let existing: Vec<_> =
        ctx.previews_in(cicd).await?.into_iter().filter(|p| p.labels().contains_key(labels::PULL_REQUEST)).collect();
    let mut kept = Kept::default();
    let apps: Vec<&Application> = factory.spec.applications.iter().flatten().filter(|a| a.deploys()).collect();
    for gone in existing.iter().filter(|p| {
        let app = p.spec.application.as_str();
        !apps.iter().any(|a| a.name == app && a.pull_requests.is_some())
    }) {
        info!(preview = %gone.name_any(), "its application has no pull-request previews any more; deleting");
        delete(&api, &gone.name_any()).await?;
    }
    for app in apps {
        let Some(policy) = &app.pull_requests else { continue };
        let mine: Vec<&PreviewEnvironment> =
            existing.iter().filter(|p| p.spec.application == app.name).map(AsRef::as_ref).collect();
        match application(factory, ctx, &api, app, policy, &mine).await {
            Ok((notes, next)) => {
                kept.notes.extend(notes);
                kept.next = Some(kept.next.map_or(next, |n| n.min(next)));
            }
            Err(why) => {
                warn!(application = %app.name, %why, "pull requests not kept");
                kept.notes.push(format!("pull requests of {}: {why}", app.name));
                kept.next = Some(kept.next.map_or(AFTER_ERROR, |n| n.min(AFTER_ERROR)));
            }
        }
    }
    Ok(kept)
}

/// One application: lists its open pull requests and makes the previews match.
async fn application(
    factory: &Factory,
    ctx: &Context,
    api: &Api<PreviewEnvironment>,
    app: &Application,
    policy: &PullRequestPreviews,
    existing: &[&PreviewEnvironment],
) -> Result<(Vec<String>, Duration), String> {
    let access = app.host.as_ref().ok_or("pullRequests needs host")?;
    let host = ctx.hosts.host(ctx, factory, app, access).await.map_err(|e| e.to_string())?;
    let open = ctx.hosts.open_pulls(&host, factory, app, policy).await.map_err(|e| e.to_string())?;
    let mut notes = Vec::new();
    let mut forks = Vec::new();
    let mut wanted = Vec::new();
    for pr in &open.pulls {
        match pull_requests::selects(policy, &pr.head_branch, &pr.labels, pr.from_fork) {
            Ok(()) => wanted.push(pr),
            Err(Skipped::Fork) => forks.push(format!("#{}", pr.number)),
            // Unlabelled pull requests and other branches are simply not asked for.
            Err(_) => {}
        }
    }
    if !forks.is_empty() {
        notes.push(format!("{}: no preview for {} {}", app.name, forks.join(", "), Skipped::Fork.as_str()));
    }
    let factory_name = factory.name_any();
    for pr in wanted.iter().copied() {
        let name = pull_requests::preview_name(&app.name, pr.number);
        match existing.iter().find(|p| p.name_any() == name) {
            Some(preview) if preview.spec.git_ref.commit.as_deref() == Some(pr.head_sha.as_str()) => {}
            Some(_) => {
                info!(preview = %name, head = %pr.head_sha, "pull request has a new head");
                let patch = json!({"spec": {"ref": {"commit": pr.head_sha, "branch": null, "tag": null}}});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(|e| e.to_string())?;
            }
            None => match api.create(&PostParams::default(), &preview(factory, app, pr, &name)?).await {
                Ok(_) => info!(preview = %name, number = pr.number, "pull request preview created"),
                // The shared store had not seen it yet: made by the reconcile before this one.
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("exceeded quota") => {
                    let max = factory.spec.previews.as_ref().and_then(|p| p.max).unwrap_or(10);
                    let why =
                        format!("No preview: factory {factory_name} already has its {max} previews (previews.max)");
                    notes.push(format!("{}: #{} {}", app.name, pr.number, why.to_lowercase()));
                    let status = CommitStatus {
                        state: CommitState::Failure,
                        context: pull_requests::status_context(&factory_name),
                        description: why,
                        target_url: None,
                    };
                    if let Err(e) = ctx.hosts.report(&ctx.metrics, &host, &pr.head_sha, status).await {
                        notes.push(format!("{}: #{}: {e}", app.name, pr.number));
                    }
                }
                Err(e) => return Err(e.to_string()),
            },
        }
    }
    for gone in existing
        .iter()
        .filter(|p| !wanted.iter().any(|pr| pull_requests::preview_name(&app.name, pr.number) == p.name_any()))
    {
        info!(preview = %gone.name_any(), "pull request closed or no longer selected; deleting its preview");
        delete(api, &gone.name_any()).await.map_err(|e| e.to_string())?;
    }
    Ok((notes, open.next))
}

/// The preview of `pr`: named from its number; the branch only in an annotation, as written.
fn preview(factory: &Factory, app: &Application, pr: &PullRequest, name: &str) -> Result<PreviewEnvironment, String> {
    serde_json::from_value(json!({
        "apiVersion": PreviewEnvironment::api_version(&()), "kind": "PreviewEnvironment",
        "metadata": {"name": name, "namespace": factory_core::names::cicd_namespace(&factory.name_any()),
                     "labels": {labels::PULL_REQUEST: pr.number.to_string(), labels::APPLICATION: app.name,
                                labels::MANAGED_BY: labels::MANAGED_BY_VALUE},
                     "annotations": {labels::PULL_REQUEST_BRANCH: pr.head_branch}},
        "spec": {"application": app.name, "ref": {"commit": pr.head_sha}}
    }))
    .map_err(|e| e.to_string())
}

async fn delete(api: &Api<PreviewEnvironment>, name: &str) -> Result<(), kube::Error> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Posts `state` and `description` (and `url`) on the head commit of pull-request preview
/// `preview`, once per change; a host that cannot be reached is logged, and the next
/// reconcile posts again.
pub async fn report(
    ctx: &Context,
    preview: &PreviewEnvironment,
    state: CommitState,
    description: String,
    url: Option<String>,
) {
    let cicd = preview.namespace().unwrap_or_default();
    let (Some(factory), Some(sha)) = (factory_of_cicd(&cicd), preview.spec.git_ref.commit.as_deref()) else {
        return;
    };
    let status = CommitStatus { state, context: pull_requests::status_context(factory), description, target_url: url };
    hosts::post(ctx, factory, &preview.spec.application, sha, status).await;
}
