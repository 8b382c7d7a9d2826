//! An environment's class baseline: the platform factory that built a team factory, its
//! applied revision read from the cache, the class chain rendered for one namespace. Used by
//! permanent environments, previews and the team's pipeline templates.

use std::sync::Arc;

use factory_api::Factory;
use factory_api::labels;
use factory_core::manifests::{self, Manifest};
use factory_source::Reference;
use kube::ResourceExt;

use crate::services::context::{Context, Read};
use crate::services::error::ReconcileError;
use crate::services::render;
use crate::services::source::{Paths, checkout_at};

/// Where a baseline goes: a permanent environment or a preview.
pub struct Target<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// Environment class.
    pub class: &'a str,
    /// Short name (`prod`, or the preview's name).
    pub environment: &'a str,
    /// `permanent` or `preview`.
    pub kind: &'a str,
    /// Label the namespace protected.
    pub protected: bool,
}

/// A class baseline rendered for a target, with what applying it needs.
pub struct Baseline {
    /// The platform revision it comes from.
    pub revision: String,
    /// The namespace and the class objects in it.
    pub desired: Vec<Manifest>,
    /// The platform factory.
    pub platform: Arc<Factory>,
    /// The platform's account, to apply as.
    pub account: factory_api::factory::ServiceAccountReference,
}

/// The platform factory that built a team factory, at the revision it last applied.
pub struct PlatformAt {
    /// The platform factory.
    pub platform: Arc<Factory>,
    /// Its name.
    pub name: String,
    /// The revision it applied, `<branch>@sha1:<sha>`.
    pub applied: String,
    /// That revision's commit.
    pub commit: String,
    /// Its repository.
    pub source: factory_api::GitSource,
    /// Its account, to apply as.
    pub account: factory_api::factory::ServiceAccountReference,
}

/// Finds the platform factory that built `team` (label `factories.dev/platform`) and the
/// revision it applied; waits (as an error) while there is none yet.
pub async fn platform_of(ctx: &Context, team: &Factory, read: Read) -> Result<PlatformAt, ReconcileError> {
    let factory = team.name_any();
    let name = team
        .labels()
        .get(labels::PLATFORM)
        .cloned()
        .ok_or_else(|| ReconcileError::Waiting(format!("factory {factory} was not built by a platform factory")))?;
    let platform = ctx
        .factory(&name, read)
        .await?
        .ok_or_else(|| ReconcileError::Waiting(format!("platform factory {name} does not exist")))?;
    let applied =
        platform.status.as_ref().and_then(|s| s.reconcile.last_applied_revision.clone()).ok_or_else(|| {
            ReconcileError::Waiting(format!("platform factory {name} has not applied a revision yet"))
        })?;
    let commit = applied.rsplit(':').next().unwrap_or_default().to_string();
    let (Some(source), Some(account)) = (platform.spec.source.clone(), platform.spec.service_account.clone()) else {
        return Err(ReconcileError::Waiting(format!("platform factory {name} has no source")));
    };
    Ok(PlatformAt { platform, name, applied, commit, source, account })
}

/// Renders the class baseline of `target` for team factory `team`: the platform factory that
/// built it, its applied commit read from the cache, the class chain, variables, labels.
pub async fn baseline(
    ctx: &Context,
    team: &Factory,
    target: &Target<'_>,
    origin: &Manifest,
    read: Read,
) -> Result<Baseline, ReconcileError> {
    let factory = team.name_any();
    let PlatformAt { platform, name: platform_name, applied, commit, source, account } =
        platform_of(ctx, team, read).await?;
    let classes = platform.spec.environment_classes.clone().unwrap_or_default();
    let paths = factory_core::baseline::class_paths(&classes, target.class)
        .map_err(|why| ReconcileError::InvalidSpec(format!("platform factory {platform_name}: {why}")))?;
    let reader = ctx.impersonating_platform(&account.namespace, &account.name)?;
    let paths = Paths::from(paths);
    let mut checkout = checkout_at(ctx, &source, &reader, &account.namespace, Reference::Commit(commit), paths).await?;
    render::kustomize(ctx, &mut checkout).await?;
    let core_target = factory_core::baseline::Target {
        factory: &factory,
        platform: &platform_name,
        namespace: target.namespace,
        class: target.class,
        environment: target.environment,
        kind: target.kind,
        protected: target.protected,
        tenant_namespace: &ctx.tenant_namespace,
    };
    let vars = factory_core::baseline::vars(&platform.spec.variables, &core_target);
    let mut class_manifests = Vec::new();
    let mut errors = Vec::new();
    for files in &checkout.files {
        match manifests::load(files, &vars) {
            Ok(m) => class_manifests.extend(m),
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(ReconcileError::Load(errors));
    }
    let shared = team.spec.shared.clone().unwrap_or_default();
    let desired = factory_core::baseline::objects(&core_target, &shared, class_manifests, origin);
    Ok(Baseline { revision: applied, desired, platform, account })
}
