//! The baseline of one environment or preview namespace: the namespace itself with the
//! operator's labels, the class chain's manifests placed in it, the tenant's binding and the
//! team's shared defaults. Pure; the reconcilers and `kubectl factory plan` both use it.

use std::collections::BTreeMap;

use factory_api::factory::{EnvironmentClass, SharedDefaults};
use factory_api::labels;
use serde_json::{Value, json};

use crate::manifests::Manifest;
use crate::objects;

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
    let chain = class_chain(class, &extends);
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
    ns_labels.extend(objects::factory_labels(target.factory));
    ns_labels.insert(labels::ENVIRONMENT.into(), target.environment.into());
    ns_labels.insert(labels::CLASS.into(), target.class.into());
    ns_labels.insert(labels::NAMESPACE_KIND.into(), target.kind.into());
    ns_labels.insert(labels::PLATFORM.into(), target.platform.into());
    if target.protected {
        ns_labels.insert(labels::PROTECTED.into(), "true".into());
    }
    let mut desired = environment_objects(target.namespace, &ns_labels, class_manifests, origin);
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
    let mut out = objects::access_bindings(&env.factory, &env.namespace, &env.access);
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

/// The file in each application layer that holds values for the application's chart.
pub const HELM_VALUES: &str = "values.yaml";

/// The values files of an application's chart: the `values.yaml` of each of its `layers`
/// (base, class, environment) that `exists`, in that order, so later layers win.
pub fn helm_values_files(layers: &[String], exists: impl Fn(&str) -> bool) -> Vec<String> {
    layers.iter().map(|layer| format!("{}/{HELM_VALUES}", layer.trim_end_matches('/'))).filter(|f| exists(f)).collect()
}

/// Whether `path` is a layer's values file (for an application with a chart: not a manifest).
pub fn is_helm_values(path: &str) -> bool {
    path.rsplit('/').next() == Some(HELM_VALUES)
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

/// The Pod Security admission label every namespace of a team gets.
pub const POD_SECURITY_ENFORCE: &str = "pod-security.kubernetes.io/enforce";

/// Its value unless a class sets another: tenants run under the `restricted` standard.
pub const DEFAULT_POD_SECURITY: &str = "restricted";

/// Class names in the order their manifests apply: every class a class extends comes before
/// it (depth first, each once). Unknown names are skipped; cycles are caught by validation.
pub fn class_chain(class: &str, extends: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    fn visit(name: &str, extends: &BTreeMap<String, Vec<String>>, out: &mut Vec<String>, depth: usize) {
        if depth > 16 || out.iter().any(|c| c == name) || !extends.contains_key(name) {
            return;
        }
        for parent in &extends[name] {
            visit(parent, extends, out, depth + 1);
        }
        if !out.iter().any(|c| c == name) {
            out.push(name.to_string());
        }
    }
    let mut out = Vec::new();
    visit(class, extends, &mut out, 0);
    out
}

/// Places class manifests into `namespace`: namespaced objects get it as their namespace; a
/// `Namespace` manifest (for labels such as Pod Security) is renamed to it and merged with
/// `namespace_labels`. Later manifests of the same object replace earlier ones, so a class
/// overrides what it extends. The environment's Namespace always comes first.
pub fn environment_objects(
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    classes: Vec<Manifest>,
    origin: &Manifest,
) -> Vec<Manifest> {
    let mut ns =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": namespace_labels}});
    let mut by_key: Vec<(String, Manifest)> = Vec::new();
    for mut m in classes {
        if m.kind() == "Namespace" && !m.api_version().contains('/') {
            let labels = m.object.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
            let annotations = m.object.pointer("/metadata/annotations").cloned();
            if let (Some(target), Some(extra)) =
                (ns.pointer_mut("/metadata/labels").and_then(Value::as_object_mut), labels.as_object())
            {
                for (k, v) in extra {
                    // The operator's own labels win over a class's.
                    target.entry(k.clone()).or_insert(v.clone());
                }
            }
            if let (Some(meta), Some(a)) = (ns.get_mut("metadata").and_then(Value::as_object_mut), annotations) {
                meta.insert("annotations".into(), a);
            }
            continue;
        }
        if let Some(meta) = m.object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), namespace.into());
        }
        let key = format!("{}/{}/{}", m.api_version(), m.kind(), m.name());
        match by_key.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = m,
            None => by_key.push((key, m)),
        }
    }
    if let Some(meta) = ns.get_mut("metadata").and_then(Value::as_object_mut) {
        let labels = meta.entry("labels").or_insert(json!({}));
        // Secure by default: a class that says nothing about Pod Security gets `restricted`.
        if let Some(map) = labels.as_object_mut() {
            map.entry(POD_SECURITY_ENFORCE).or_insert(json!(DEFAULT_POD_SECURITY));
        }
    }
    let mut out =
        vec![Manifest { file: origin.file.clone(), line: origin.line, document: origin.document, object: ns }];
    out.extend(by_key.into_iter().map(|(_, m)| m));
    out
}

/// Merges `overrides` into the `spec.hard` of every ResourceQuota among `objects`; adds a
/// ResourceQuota `environment-quota` when the class has none.
pub fn apply_quota(
    objects: &mut Vec<Manifest>,
    overrides: &BTreeMap<String, String>,
    namespace: &str,
    origin: &Manifest,
) {
    if overrides.is_empty() {
        return;
    }
    let mut found = false;
    for m in objects.iter_mut().filter(|m| m.kind() == "ResourceQuota") {
        found = true;
        let hard = m.object.pointer_mut("/spec/hard").and_then(Value::as_object_mut);
        match hard {
            Some(hard) => {
                for (k, v) in overrides {
                    hard.insert(k.clone(), Value::String(v.clone()));
                }
            }
            None => m.object["spec"] = json!({"hard": overrides}),
        }
    }
    if !found {
        objects.push(Manifest {
            object: json!({"apiVersion": "v1", "kind": "ResourceQuota",
                "metadata": {"name": "environment-quota", "namespace": namespace}, "spec": {"hard": overrides}}),
            ..origin.clone()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(object: Value) -> Manifest {
        Manifest { file: "classes/base/objects.yaml".into(), line: 1, document: 1, object }
    }

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
    fn class_chain_puts_parents_first_once() {
        let ext: BTreeMap<String, Vec<String>> = [
            ("base".to_string(), vec![]),
            ("secure".to_string(), vec!["base".to_string()]),
            ("prod".to_string(), vec!["base".to_string(), "secure".to_string()]),
        ]
        .into();
        assert_eq!(class_chain("prod", &ext), ["base", "secure", "prod"]);
        assert_eq!(class_chain("missing", &ext), Vec::<String>::new());
    }

    #[test]
    fn class_objects_land_in_the_environment_namespace_and_later_classes_win() {
        let base = manifest(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "defaults"}, "data": {"a": "base"}}),
        );
        let prod = manifest(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "defaults"}, "data": {"a": "prod"}}),
        );
        let ns = manifest(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "${namespace}",
            "labels": {"pod-security.kubernetes.io/enforce": "restricted", labels::FACTORY: "spoofed"}}}));
        let own = BTreeMap::from([(labels::FACTORY.to_string(), "shop".to_string())]);
        let out = environment_objects("shop-prod", &own, vec![ns, base, prod.clone()], &prod);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].object["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(out[0].object["metadata"]["labels"][labels::FACTORY], "shop");
        assert_eq!((out[1].namespace(), &out[1].object["data"]["a"]), (Some("shop-prod"), &json!("prod")));
    }

    #[test]
    fn quota_overrides_merge_into_class_quotas() {
        let origin = Manifest { file: "x".into(), line: 0, document: 0, object: Value::Null };
        let mut objects = vec![Manifest {
            object: json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
                           "spec": {"hard": {"requests.cpu": "4", "pods": "10"}}}),
            ..origin.clone()
        }];
        let overrides = BTreeMap::from([("requests.cpu".to_string(), "8".to_string())]);
        apply_quota(&mut objects, &overrides, "ns", &origin);
        assert_eq!(objects[0].object["spec"]["hard"], json!({"requests.cpu": "8", "pods": "10"}));
        let mut none = Vec::new();
        apply_quota(&mut none, &overrides, "ns", &origin);
        assert_eq!(none[0].name(), "environment-quota");
    }
}
