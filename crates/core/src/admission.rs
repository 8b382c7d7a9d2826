//! The operator's native admission policies (ValidatingAdmissionPolicy, no webhook server):
//! protected environment namespaces cannot be deleted, and what the operator applied for the
//! platform (baselines, rights, quotas, network policies) cannot be changed by anyone but the
//! platform's own account, cluster administrators and Kubernetes' own controllers.

use serde_json::{Value, json};

/// The group the operator adds when it impersonates a platform factory's account; only the
/// operator can impersonate it, so only platform content carries it.
pub const PLATFORM_GROUP: &str = "factories.dev:platform";

/// CEL: the request comes from someone allowed to change operator-owned objects.
const PRIVILEGED: &str = "'system:masters' in request.userInfo.groups || 'factories.dev:platform' in request.userInfo.groups || request.userInfo.username.startsWith('system:serviceaccount:kube-system:') || request.userInfo.username == 'system:kube-controller-manager'";

fn policy(name: &str, rules: Value, match_conditions: Value, validations: Value) -> [Value; 2] {
    let labels =
        json!({"app.kubernetes.io/managed-by": "factory-operator", "app.kubernetes.io/part-of": "factory-operator"});
    [
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name, "labels": labels},
            "spec": {"failurePolicy": "Fail", "matchConstraints": {"resourceRules": rules},
                     "matchConditions": match_conditions, "validations": validations}}),
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name, "labels": labels},
            "spec": {"policyName": name, "validationActions": ["Deny"]}}),
    ]
}

/// Every policy and its binding.
pub fn policies() -> Vec<Value> {
    let protected = policy(
        "factories.dev-protected-environments",
        json!([{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE"], "resources": ["namespaces"]}]),
        json!([{"name": "protected", "expression":
            "has(oldObject.metadata.labels) && oldObject.metadata.labels.exists(k, k == 'factories.dev/protected') && oldObject.metadata.labels['factories.dev/protected'] == 'true'"}]),
        json!([{"expression": "false", "reason": "Forbidden",
            "messageExpression": "'namespace ' + oldObject.metadata.name + ' is a protected permanent environment and is never deleted; a cluster administrator must remove the label factories.dev/protected first'"}]),
    );
    let owned = policy(
        "factories.dev-operator-owned-objects",
        json!([{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["UPDATE", "DELETE"], "resources": ["*"], "scope": "Namespaced"}]),
        json!([
            {"name": "operator-owned", "expression":
                "has(oldObject.metadata.labels) && oldObject.metadata.labels.exists(k, k == 'factories.dev/applied-by') && (oldObject.metadata.labels['factories.dev/applied-by'].startsWith('environment.') || oldObject.metadata.labels['factories.dev/applied-by'].startsWith('factory.'))"},
            {"name": "not-privileged", "expression": format!("!({PRIVILEGED})")},
        ]),
        json!([{"expression": "false", "reason": "Forbidden",
            "messageExpression": "oldObject.kind + ' ' + oldObject.metadata.name + ' is owned by factory-operator (applied by ' + oldObject.metadata.labels['factories.dev/applied-by'] + '); change it in the platform repository'"}]),
    );
    let labels = policy(
        "factories.dev-namespace-labels",
        json!([{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["namespaces"]}]),
        json!([
            {"name": "managed", "expression":
                "has(oldObject.metadata.labels) && oldObject.metadata.labels.exists(k, k == 'app.kubernetes.io/managed-by') && oldObject.metadata.labels['app.kubernetes.io/managed-by'] == 'factory-operator'"},
            {"name": "not-privileged", "expression": format!("!({PRIVILEGED})")},
        ]),
        json!([{"reason": "Forbidden",
            "expression": "oldObject.metadata.labels.all(k, !(k.startsWith('factories.dev/') || k.startsWith('pod-security.kubernetes.io/') || k.startsWith('app.kubernetes.io/')) || (has(object.metadata.labels) && k in object.metadata.labels && object.metadata.labels[k] == oldObject.metadata.labels[k])) && (!has(object.metadata.labels) || object.metadata.labels.all(k, !(k.startsWith('factories.dev/') || k.startsWith('pod-security.kubernetes.io/') || k.startsWith('app.kubernetes.io/')) || k in oldObject.metadata.labels))",
            "message": "the labels factories.dev/*, pod-security.kubernetes.io/* and app.kubernetes.io/* of a factory namespace are owned by factory-operator"}]),
    );
    protected.into_iter().chain(owned).chain(labels).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_has_a_binding_that_denies() {
        let all = policies();
        let names: Vec<&str> = all.iter().filter_map(|p| p["metadata"]["name"].as_str()).collect();
        assert_eq!(all.len(), 6);
        for pair in all.chunks(2) {
            assert_eq!(pair[0]["kind"], "ValidatingAdmissionPolicy");
            assert_eq!(pair[1]["spec"]["policyName"], pair[0]["metadata"]["name"]);
            assert_eq!(pair[1]["spec"]["validationActions"], json!(["Deny"]));
        }
        assert!(names.contains(&"factories.dev-protected-environments"));
    }
}
