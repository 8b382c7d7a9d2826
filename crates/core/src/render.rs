//! Rendering: spec and repository content in, desired objects out. No I/O.

use std::collections::BTreeMap;

use factory_api::labels;
use serde_json::{Value, json};

use crate::baseline::{DEFAULT_POD_SECURITY, POD_SECURITY_ENFORCE};
use crate::identity;
use crate::manifests::Manifest;
use crate::names::cicd_namespace;
use crate::objects::{derived, factory_labels};

/// Previews a team factory may have at once when its spec does not say.
pub const DEFAULT_MAX_PREVIEWS: i64 = 10;

/// ClusterRoles the operator installs: the built-in `edit` and `admin` roles gain
/// PreviewEnvironments through role aggregation (owners of a cicd namespace hold them through
/// [`crate::identity::OWNER_ROLE`]).
pub fn operator_cluster_roles() -> Vec<Value> {
    vec![
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "factories.dev:previews-edit", "labels": {
            "rbac.authorization.k8s.io/aggregate-to-edit": "true",
            "rbac.authorization.k8s.io/aggregate-to-admin": "true",
            "app.kubernetes.io/managed-by": "factory-operator"}},
        "rules": [{"apiGroups": [factory_api::GROUP], "resources": ["previewenvironments"],
                   "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}]}),
        crate::pipelines::triggers_cluster_role(),
        // Everyone who may look at a namespace may see its releases and approvals.
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "factories.dev:releases-view", "labels": {
            "rbac.authorization.k8s.io/aggregate-to-view": "true",
            "rbac.authorization.k8s.io/aggregate-to-edit": "true",
            "rbac.authorization.k8s.io/aggregate-to-admin": "true",
            "app.kubernetes.io/managed-by": "factory-operator"}},
        "rules": [{"apiGroups": [factory_api::GROUP], "resources": ["releases", "approvals"],
                   "verbs": ["get", "list", "watch"]}]}),
        // Granted per environment (`access: [{clusterRole: factory-approver}]`): who may let
        // a release in. Not aggregated into `edit` or `admin`: approving is its own right.
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": APPROVER_ROLE, "labels": {"app.kubernetes.io/managed-by": "factory-operator"}},
        "rules": [{"apiGroups": [factory_api::GROUP], "resources": ["approvals"],
                   "verbs": ["get", "list", "watch", "create"]},
                  {"apiGroups": [factory_api::GROUP], "resources": ["releases"],
                   "verbs": ["get", "list", "watch"]}]}),
    ]
}

/// The ClusterRole whose holders in an environment may approve releases into it.
pub const APPROVER_ROLE: &str = "factory-approver";

/// A definition the platform factory cannot build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{object}: {why}")]
pub struct RenderError {
    /// The offending object and its location.
    pub object: String,
    /// What is wrong.
    pub why: String,
}

/// What the platform factory `platform` builds from one team Factory definition of its
/// repository: the Factory itself (labelled with its platform), its cicd namespace, the
/// service account its content will be applied as (in `tenant_namespace`, out of its members'
/// reach; [`crate::identity`]) and that account's `admin` in the cicd namespace — never
/// cluster-wide — the owners' role there, and the accounts its pipelines run as
/// ([`crate::pipelines::cicd_objects`]), with the platform's shared `images`.
pub fn team_factory(
    platform: &str,
    definition: &Manifest,
    images: &BTreeMap<String, String>,
    tenant_namespace: &str,
) -> Result<Vec<Manifest>, RenderError> {
    let err = |why: &str| RenderError { object: definition.to_string(), why: why.to_string() };
    if definition.api_version() != format!("{}/{}", factory_api::GROUP, factory_api::VERSION)
        || definition.kind() != "Factory"
    {
        return Err(err("the factories path may only hold factories.dev/v1alpha1 Factory objects"));
    }
    if definition.object.pointer("/spec/type").and_then(Value::as_str) != Some("Applications") {
        return Err(err("a platform factory builds only factories of type Applications"));
    }
    let spec: factory_api::FactorySpec =
        serde_json::from_value(definition.object.get("spec").cloned().unwrap_or(Value::Null))
            .map_err(|e| err(&format!("spec: {e}")))?;
    let owners = spec.owners.clone().unwrap_or_default();
    let name = definition.name().to_string();
    let mut factory = definition.object.clone();
    if let Some(meta) = factory.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("namespace");
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        if let Some(map) = labels.as_object_mut() {
            map.insert(labels::PLATFORM.into(), platform.into());
        }
    }
    let cicd = cicd_namespace(&name);
    let mut ns_labels = factory_labels(&name);
    ns_labels.insert(labels::NAMESPACE_KIND.into(), "cicd".into());
    ns_labels.insert(labels::PLATFORM.into(), platform.into());
    ns_labels.insert(POD_SECURITY_ENFORCE.into(), DEFAULT_POD_SECURITY.into());
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cicd, "labels": ns_labels}});
    let mut out = vec![
        derived(definition, factory),
        derived(definition, namespace),
        derived(definition, identity::tenant_account(&name, tenant_namespace)),
        derived(definition, identity::tenant_role_binding(&name, &cicd, tenant_namespace)),
    ];
    // The preview cap is enforced at admission by the API server's own object-count quota.
    let max = spec.previews.as_ref().and_then(|p| p.max).map_or(DEFAULT_MAX_PREVIEWS, i64::from);
    out.push(derived(
        definition,
        json!({"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "previews", "namespace": cicd, "labels": factory_labels(&name)},
            "spec": {"hard": {"count/previewenvironments.factories.dev": max.to_string()}}}),
    ));
    // Owners run pipelines and manage previews in the cicd namespace with namespaced rights
    // that let them assume no other identity.
    if let Some(binding) = identity::owner_binding(&name, &cicd, &owners) {
        out.push(derived(definition, identity::owner_role(&name, &cicd)));
        out.push(derived(definition, binding));
    }
    // Members read their factory, its environments and its releases (`kubectl factory`).
    let templates = spec.environments.clone().unwrap_or_default();
    let env_names: Vec<String> = templates.iter().map(|e| e.name.clone()).collect();
    let members = identity::member_subjects(&owners, &templates);
    out.extend(
        identity::member_read_access(&name, &cicd, &env_names, &members).into_iter().map(|o| derived(definition, o)),
    );
    let deploy_to: Vec<String> = spec
        .environments
        .iter()
        .flatten()
        .filter(|e| identity::deploys_to(&owners, e.protected.unwrap_or(false), &e.access))
        .map(|e| e.name.clone())
        .collect();
    let triggers =
        spec.applications.iter().flatten().any(|a| a.pipelines.as_ref().is_some_and(|p| p.on_push.is_some()));
    out.extend(
        crate::pipelines::cicd_objects(&name, &deploy_to, triggers, images, &owners)
            .into_iter()
            .map(|object| derived(definition, object)),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(object: Value) -> Manifest {
        Manifest { file: "factories/shop.yaml".into(), line: 1, document: 1, object }
    }

    #[test]
    fn a_team_factory_gets_namespace_account_and_namespaced_rights_only() {
        let def = manifest(json!({"apiVersion": "factories.dev/v1alpha1", "kind": "Factory",
            "metadata": {"name": "shop"}, "spec": {"type": "Applications"}}));
        let objects = team_factory("platform", &def, &BTreeMap::new(), "factory-tenants").unwrap();
        let kinds: Vec<&str> = objects.iter().map(Manifest::kind).collect();
        assert_eq!(kinds, ["Factory", "Namespace", "ServiceAccount", "RoleBinding", "ResourceQuota"]);
        assert_eq!(objects[4].object["spec"]["hard"]["count/previewenvironments.factories.dev"], "10");
        assert_eq!(objects[0].object["metadata"]["labels"][labels::PLATFORM], "platform");
        assert_eq!(objects[1].name(), "shop-cicd");
        assert_eq!(objects[2].namespace(), Some("factory-tenants"), "out of the team's reach");
        assert_eq!(objects[3].namespace(), Some("shop-cicd"));
        assert_eq!(objects[3].object["roleRef"]["kind"], "ClusterRole");
        assert!(objects.iter().all(|o| o.kind() != "ClusterRoleBinding"));
    }

    #[test]
    fn owners_get_their_role_and_deploy_accounts_only_where_they_write() {
        let def = manifest(json!({"apiVersion": "factories.dev/v1alpha1", "kind": "Factory",
            "metadata": {"name": "shop"}, "spec": {"type": "Applications", "owners": {"groups": ["team-shop"]},
            "environments": [{"name": "test", "access": [{"clusterRole": "edit"}]},
                             {"name": "stage", "access": [{"clusterRole": "view"}]},
                             {"name": "prod", "protected": true, "access": [{"clusterRole": "edit"}]}]}}));
        let objects = team_factory("platform", &def, &BTreeMap::new(), "factory-tenants").unwrap();
        let named = |kind: &str| -> Vec<String> {
            objects.iter().filter(|o| o.kind() == kind).map(|o| o.name().to_string()).collect()
        };
        assert_eq!(named("ServiceAccount"), ["shop", "deploy-test"]);
        assert_eq!(named("Role"), [crate::identity::OWNER_ROLE]);
        let owners = objects.iter().find(|o| o.kind() == "RoleBinding" && o.name() == crate::identity::OWNER_ROLE);
        assert_eq!(owners.map(|o| o.object["roleRef"]["kind"].clone()), Some(json!("Role")), "not the built-in edit");
    }

    #[test]
    fn a_cicd_namespace_without_a_cicd_class_gets_the_builtin_baseline() {
        let origin = manifest(json!({"kind": "Factory", "metadata": {"name": "shop"}}));
        let builtin = cicd_class_objects("shop-cicd", None, &origin);
        let kinds: Vec<&str> = builtin.iter().map(Manifest::kind).collect();
        assert_eq!(kinds, ["ResourceQuota", "LimitRange", "NetworkPolicy"]);
        assert_eq!(builtin[0].object["spec"]["hard"]["services.nodeports"], "0");
        assert!(builtin.iter().all(|m| m.namespace() == Some("shop-cicd") && m.file == "factories/shop.yaml"));
        let class = manifest(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ci"}}));
        let own = cicd_class_objects("shop-cicd", Some(vec![class]), &origin);
        assert_eq!(own.iter().map(Manifest::kind).collect::<Vec<_>>(), ["ConfigMap"], "a cicd class replaces it");
    }

    #[test]
    fn only_team_factories_can_be_built() {
        let platform = manifest(json!({"apiVersion": "factories.dev/v1alpha1", "kind": "Factory",
            "metadata": {"name": "other"}, "spec": {"type": "Environments"}}));
        assert!(
            team_factory("platform", &platform, &BTreeMap::new(), "factory-tenants")
                .unwrap_err()
                .why
                .contains("only factories of type Applications")
        );
        let cm = manifest(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}));
        assert!(team_factory("platform", &cm, &BTreeMap::new(), "factory-tenants").is_err());
    }
}

/// The `Environment` objects a team factory materialises from its `spec.environments`, with
/// defaults filled in: namespace `<factory>-<name>`, class `base`, access granted to the
/// factory's owner groups unless a grant names its own.
pub fn team_environments(factory: &str, spec: &factory_api::FactorySpec) -> Vec<Value> {
    let owners = spec.owners.clone().unwrap_or_default();
    spec.environments
        .iter()
        .flatten()
        .map(|e| {
            let namespace =
                e.namespace.clone().unwrap_or_else(|| crate::names::environment_namespace(factory, &e.name));
            let access: Vec<Value> = e
                .access
                .iter()
                .map(|a| {
                    let groups = if a.groups.is_empty() { owners.groups.clone() } else { a.groups.clone() };
                    json!({"clusterRole": a.cluster_role, "groups": groups})
                })
                .collect();
            let mut labels = factory_labels(factory);
            labels.insert(labels::ENVIRONMENT.into(), e.name.clone());
            let mut environment = json!({
                "apiVersion": format!("{}/{}", factory_api::GROUP, factory_api::VERSION),
                "kind": "Environment",
                "metadata": {"name": crate::names::environment_object_name(factory, &e.name), "labels": labels},
                "spec": {
                    "factory": factory,
                    "namespace": namespace,
                    "class": e.class.clone().unwrap_or_else(|| "base".into()),
                    "protected": e.protected.unwrap_or(false),
                    "driftPolicy": e.drift_policy.unwrap_or_default(),
                    "access": access,
                    "quota": e.quota,
                },
            });
            if let Some(promotion) = &e.promotion {
                environment["spec"]["promotion"] = json!(promotion);
            }
            environment
        })
        .collect()
}

/// The baseline of a team's cicd namespace: the objects of the platform's `cicd` class (and
/// the classes it extends) placed in it, `Namespace` documents skipped (the cicd namespace
/// itself is rendered by [`team_factory`]); or, for a platform that defines no `cicd` class
/// (`None`), [`default_cicd_baseline`] — a cicd namespace never runs without limits.
pub fn cicd_class_objects(namespace: &str, class_manifests: Option<Vec<Manifest>>, origin: &Manifest) -> Vec<Manifest> {
    let Some(class_manifests) = class_manifests else {
        return default_cicd_baseline(namespace).into_iter().map(|object| derived(origin, object)).collect();
    };
    let objects = class_manifests.into_iter().filter(|m| m.kind() != "Namespace" || m.api_version().contains('/'));
    crate::objects::layered_objects(vec![objects.collect()], namespace)
}

/// The conservative baseline of a cicd namespace whose platform defines no `cicd` class: a
/// quota (no NodePorts or LoadBalancers, bounded CPU, memory, pods and claims), container
/// defaults so that pods fit it, and a policy admitting traffic from the namespace itself
/// only. Egress stays open: pipelines fetch sources and push images.
pub fn default_cicd_baseline(namespace: &str) -> Vec<Value> {
    let meta = |name: &str| json!({"name": name, "namespace": namespace});
    vec![
        json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta("factory-cicd-quota"),
            "spec": {"hard": {"requests.cpu": "4", "requests.memory": "8Gi", "limits.cpu": "8", "limits.memory": "16Gi",
                "pods": "50", "services.nodeports": "0", "services.loadbalancers": "0", "persistentvolumeclaims": "20",
                "requests.storage": "100Gi"}}}),
        json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": meta("factory-cicd-defaults"),
            "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m", "memory": "512Mi"},
                "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("factory-cicd-ingress"),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [{"podSelector": {}}]}]}}),
    ]
}

#[cfg(test)]
mod team_tests {
    use super::*;

    #[test]
    fn environments_get_defaults_and_owner_groups() {
        let spec: factory_api::FactorySpec = serde_json::from_value(json!({"type": "Applications",
            "owners": {"groups": ["team-shop"]},
            "environments": [{"name": "test", "access": [{"clusterRole": "edit"}]},
                             {"name": "prod", "class": "prod", "protected": true, "namespace": "shop-live",
                              "access": [{"clusterRole": "view", "groups": ["auditors"]}]}]}))
        .unwrap();
        let envs = team_environments("shop", &spec);
        assert_eq!(envs[0]["metadata"]["name"], "shop-test");
        assert_eq!(envs[0]["spec"]["namespace"], "shop-test");
        assert_eq!(envs[0]["spec"]["class"], "base");
        assert_eq!(envs[0]["spec"]["access"][0]["groups"][0], "team-shop");
        assert_eq!(envs[1]["spec"]["namespace"], "shop-live");
        assert_eq!(envs[1]["spec"]["protected"], true);
        assert_eq!(envs[1]["spec"]["access"][0]["groups"][0], "auditors");
    }
}
