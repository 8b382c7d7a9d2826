//! Object builders every renderer shares: the team labels, access bindings, manifests derived
//! from another, and layered manifests placed in one namespace. A leaf: it imports no other
//! rendering module.

use std::collections::BTreeMap;

use factory_api::labels;
use serde_json::{Value, json};

use crate::manifests::Manifest;

/// The labels on everything that belongs to team factory `factory`.
pub fn factory_labels(factory: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::FACTORY.to_string(), factory.to_string()),
        (labels::PART_OF.to_string(), factory.to_string()),
    ])
}

/// `object`, located where `from` is (the file and line a user is pointed to).
pub fn derived(from: &Manifest, object: Value) -> Manifest {
    Manifest { file: from.file.clone(), line: from.line, document: from.document, object }
}

/// RoleBindings granting each access entry's ClusterRole to its groups in `namespace`.
pub fn access_bindings(factory: &str, namespace: &str, access: &[factory_api::factory::AccessGrant]) -> Vec<Value> {
    access
        .iter()
        .filter(|a| !a.groups.is_empty())
        .map(|a| {
            let subjects: Vec<Value> = a
                .groups
                .iter()
                .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
                .collect();
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": format!("factory-access-{}", crate::names::sanitize_label(&a.cluster_role, 40)),
                             "namespace": namespace, "labels": factory_labels(factory)},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": a.cluster_role},
                "subjects": subjects})
        })
        .collect()
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
