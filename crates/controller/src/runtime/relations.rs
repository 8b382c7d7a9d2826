//! Which objects a change of another kind concerns: the team factory whose summary an
//! environment or preview changes, the environments a credential Secret is copied into, and
//! the factory a PipelineRun belongs to, the environments a Release or an Approval concerns.

use factory_api::{Environment, Factory, FactoryType, labels};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use crate::services::{tekton, watches};

/// The team factory whose summary an environment or preview `event` changes, if it does.
pub(super) fn summary_trigger<K: kube::Resource<DynamicType = ()>>(
    event: &watcher::Event<K>,
    summaries: &mut watches::Changes<K>,
    team: impl Fn(&K) -> Option<String>,
) -> Option<ObjectRef<Factory>> {
    let object = match event {
        watcher::Event::Apply(o) | watcher::Event::InitApply(o) if summaries.changed(o) => o,
        watcher::Event::Delete(o) => {
            summaries.forget(o);
            o
        }
        _ => return None,
    };
    team(object).map(|name| ObjectRef::new(&name))
}

/// The environments of team factory `team`.
pub(super) fn environments_of_team(
    team: Option<String>,
    environments: &Store<Environment>,
) -> Vec<ObjectRef<Environment>> {
    let Some(team) = team else { return Vec::new() };
    environments_of_any(&[team], environments)
}

/// The environments of any of the team factories `teams`.
fn environments_of_any(teams: &[String], environments: &Store<Environment>) -> Vec<ObjectRef<Environment>> {
    environments
        .state()
        .into_iter()
        .filter(|e| teams.contains(&e.spec.factory))
        .map(|e| ObjectRef::from_obj(e.as_ref()))
        .collect()
}

/// The environments a change of `factory` concerns: a team factory's own; for a platform
/// factory, those of the team factories it built (labelled `factories.dev/platform`).
pub(super) fn environments_of_factory(
    factory: &Factory,
    factories: &Store<Factory>,
    environments: &Store<Environment>,
) -> Vec<ObjectRef<Environment>> {
    let name = factory.name_any();
    let teams: Vec<String> = if factory.spec.factory_type == FactoryType::Environments {
        factories
            .state()
            .into_iter()
            .filter(|f| f.labels().get(labels::PLATFORM) == Some(&name))
            .map(|f| f.name_any())
            .collect()
    } else {
        vec![name]
    };
    environments_of_any(&teams, environments)
}

/// The environment whose namespace is `namespace`.
pub(super) fn environment_in(
    namespace: Option<String>,
    environments: &Store<Environment>,
) -> Option<ObjectRef<Environment>> {
    let namespace = namespace?;
    environments.state().into_iter().find(|e| e.spec.namespace == namespace).map(|e| ObjectRef::from_obj(e.as_ref()))
}

/// The environments that receive a copy of `secret`.
pub(super) fn credential_targets(
    secret: &PartialObjectMeta<Secret>,
    factories: &Store<Factory>,
    environments: &Store<Environment>,
) -> Vec<ObjectRef<Environment>> {
    let (ns, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
    let mut targets = Vec::new();
    for factory in factories.state() {
        for credential in factory.spec.credentials.iter().flatten() {
            if credential.from.namespace.as_deref() == Some(ns.as_str()) && credential.from.name == name {
                targets.push(credential.to.factory.clone());
            }
        }
    }
    if targets.is_empty() {
        return Vec::new();
    }
    environments_of_any(&targets, environments)
}

/// PipelineRuns carrying `label`, as a stream of changed objects. Tekton is optional: while its
/// CRDs are absent this watch fails, so it retries on its own backoff and its errors are logged
/// here and dropped — a controller applies one backoff to all its watches, and these errors
/// must not slow the others down.
pub(super) fn runs_labelled(
    client: &Client,
    label: &str,
) -> impl futures::Stream<Item = Result<kube::api::DynamicObject, watcher::Error>> + Send + 'static {
    let resource = tekton::pipeline_run_resource();
    let api = Api::<kube::api::DynamicObject>::all_with(client.clone(), &resource);
    watcher::watcher(api, watcher::Config::default().labels(label)).default_backoff().touched_objects().filter_map(
        |event| async move {
            match event {
                Ok(run) => Some(Ok(run)),
                Err(e) => {
                    tracing::debug!(error = %e, "PipelineRun watch (Tekton may not be installed)");
                    None
                }
            }
        },
    )
}

/// The factory owning the cicd namespace a PipelineRun is in (`<factory>-cicd`).
pub(super) fn factory_of_run(run: kube::api::DynamicObject) -> Option<ObjectRef<Factory>> {
    team_of_cicd(run.namespace()).map(|name| ObjectRef::new(&name))
}

/// The team factory whose cicd namespace (`<factory>-cicd`) `namespace` is.
pub(super) fn team_of_cicd(namespace: Option<String>) -> Option<String> {
    namespace.and_then(|ns| factory_core::names::factory_of_cicd(&ns).map(str::to_string))
}
