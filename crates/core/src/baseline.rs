//! The baseline of one environment or preview namespace: the namespace itself with the
//! operator's labels, the class chain's manifests placed in it, the tenant's binding and the
//! team's shared defaults. Pure; the reconcilers and `kubectl factory plan` both use it.

use std::collections::BTreeMap;

use factory_api::factory::{EnvironmentClass, SharedDefaults};
use factory_api::labels;
use serde_json::json;

use crate::manifests::Manifest;
use crate::render;

/// Where a baseline goes.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The team factory.
    pub factory: &'a str,
    /// The platform factory that built it.
    pub platform: &'a str,
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
    /// Namespace of the team factory's own account ([`crate::identity`]).
    pub tenant_namespace: &'a str,
}

/// The repository paths of `class` and every class it extends, parents first; an error
/// naming the defined classes when `class` is not one of them.
pub fn class_paths(classes: &[EnvironmentClass], class: &str) -> Result<Vec<String>, String> {
    let extends: BTreeMap<String, Vec<String>> =
        classes.iter().map(|c| (c.name.clone(), c.extends.clone().unwrap_or_default())).collect();
    let chain = render::class_chain(class, &extends);
    if chain.is_empty() {
        return Err(format!(
            "class {class} is not defined (defined: {})",
            extends.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(chain.iter().filter_map(|name| classes.iter().find(|c| &c.name == name).map(|c| c.path.clone())).collect())
}

/// The variables class manifests are loaded with: the platform's own, then the target's.
pub fn vars(platform_vars: &BTreeMap<String, String>, target: &Target<'_>) -> BTreeMap<String, String> {
    let mut vars = platform_vars.clone();
    vars.insert("factory".into(), target.factory.into());
    vars.insert("platform".into(), target.platform.into());
    vars.insert("namespace".into(), target.namespace.into());
    vars.insert("environment".into(), target.environment.into());
    vars.insert("class".into(), target.class.into());
    vars
}

/// The baseline objects of `target` from its loaded class manifests.
pub fn objects(
    target: &Target<'_>,
    shared: &SharedDefaults,
    class_manifests: Vec<Manifest>,
    origin: &Manifest,
) -> Vec<Manifest> {
    let mut ns_labels = shared.labels.clone();
    ns_labels.extend(render::factory_labels(target.factory));
    ns_labels.insert(labels::ENVIRONMENT.into(), target.environment.into());
    ns_labels.insert(labels::CLASS.into(), target.class.into());
    ns_labels.insert(labels::NAMESPACE_KIND.into(), target.kind.into());
    ns_labels.insert(labels::PLATFORM.into(), target.platform.into());
    if target.protected {
        ns_labels.insert(labels::PROTECTED.into(), "true".into());
    }
    let mut desired = render::environment_objects(target.namespace, &ns_labels, class_manifests, origin);
    desired.push(Manifest {
        object: crate::identity::tenant_role_binding(target.factory, target.namespace, target.tenant_namespace),
        ..origin.clone()
    });
    if !shared.config.is_empty() {
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "factory-defaults", "namespace": target.namespace}, "data": shared.config});
        desired.push(Manifest { object, ..origin.clone() });
    }
    desired
}

/// The RBAC of a permanent environment beside its class baseline: a RoleBinding per access
/// grant, and the binding of its deploy account (`deploy-<environment>` of the cicd namespace)
/// where pipelines may deploy ([`crate::identity::deploys_to`]) and the namespace is in the
/// factory's own cluster.
pub fn environment_bindings(
    env: &factory_api::environment::EnvironmentSpec,
    environment: &str,
    owners: &factory_api::factory::Owners,
) -> Vec<serde_json::Value> {
    let mut out = render::access_bindings(&env.factory, &env.namespace, &env.access);
    if env.kubeconfig_secret_ref.is_none() && crate::identity::deploys_to(owners, env.protected, &env.access) {
        out.push(crate::pipelines::deployer_binding(&env.factory, &env.namespace, environment));
    }
    out
}

/// An application's configuration layers in a repository: `<config>/base`,
/// `<config>/classes/<class>`, `<config>/environments/<environment>`, later ones winning.
pub fn application_paths(config: &str, class: &str, environment: &str) -> Vec<String> {
    let root = config.trim_end_matches('/');
    vec![format!("{root}/base"), format!("{root}/classes/{class}"), format!("{root}/environments/{environment}")]
}

/// The variables an application's configuration is loaded with.
pub fn application_vars(
    factory: &str,
    environment: &str,
    namespace: &str,
    class: &str,
    app: &str,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("factory".to_string(), factory.to_string()),
        ("environment".to_string(), environment.to_string()),
        ("namespace".to_string(), namespace.to_string()),
        ("class".to_string(), class.to_string()),
        ("application".to_string(), app.to_string()),
    ])
}

/// Merges loaded layers (later objects replace earlier ones with the same identity) and places
/// everything in `namespace`; a cluster-scoped kind keeps no namespace and is refused by RBAC
/// (application layers), or by the platform's own rights (the `cicd` class).
pub fn layered_objects(layers: Vec<Vec<Manifest>>, namespace: &str) -> Vec<Manifest> {
    let mut desired: Vec<Manifest> = Vec::new();
    for mut m in layers.into_iter().flatten() {
        if let Some(meta) = m.object.get_mut("metadata").and_then(serde_json::Value::as_object_mut) {
            meta.insert("namespace".into(), namespace.into());
        }
        let key = format!("{}/{}/{}", m.api_version(), m.kind(), m.name());
        desired.retain(|d| format!("{}/{}/{}", d.api_version(), d.kind(), d.name()) != key);
        desired.push(m);
    }
    desired
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, extends: &[&str]) -> EnvironmentClass {
        EnvironmentClass {
            name: name.into(),
            path: format!("classes/{name}"),
            extends: Some(extends.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn class_paths_follow_the_chain_and_name_what_is_defined() {
        let classes = [class("base", &[]), class("prod", &["base"])];
        assert_eq!(class_paths(&classes, "prod").unwrap(), ["classes/base", "classes/prod"]);
        assert_eq!(class_paths(&classes, "nope").unwrap_err(), "class nope is not defined (defined: base, prod)");
    }

    #[test]
    fn later_layers_win_and_everything_lands_in_the_namespace() {
        let m = |data: &str| Manifest {
            file: "f".into(),
            line: 1,
            document: 1,
            object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"v": data}}),
        };
        let out = layered_objects(vec![vec![m("base")], vec![], vec![m("prod")]], "shop-prod");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].object["data"]["v"], "prod");
        assert_eq!(out[0].namespace(), Some("shop-prod"));
    }
}
