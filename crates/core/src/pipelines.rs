//! Rendering for pipelines: the Tekton Triggers objects of an application, the deploy accounts
//! whose rights stop at one environment, and the account Triggers' EventListeners run as. Pure.

use std::collections::BTreeMap;

use factory_api::factory::{OnPush, Owners};
use factory_api::labels;
use serde_json::{Value, json};

use crate::names::cicd_namespace;
use crate::objects::factory_labels;
use crate::runs::{APPLICATION_LABEL, ENVIRONMENT_LABEL, REVISION_LABEL};

/// API version of the Tekton Triggers objects rendered here.
pub const TRIGGERS_API_VERSION: &str = "triggers.tekton.dev/v1beta1";
/// Service account the EventListeners of a team factory run as, in its cicd namespace.
pub const TRIGGERS_SERVICE_ACCOUNT: &str = "factory-triggers";
/// ClusterRole the operator installs for EventListeners: reading cluster interceptors and
/// cluster trigger bindings, and nothing else cluster-wide (Tekton's own role also reads every
/// Secret of the cluster, which a tenant-controlled account must not).
pub const TRIGGERS_CLUSTER_ROLE: &str = "factories.dev:triggers-eventlistener";
/// ConfigMap in every team cicd namespace naming the platform's shared images.
pub const SHARED_IMAGES_CONFIGMAP: &str = "shared-images";

/// The service account that deploys to `environment`: `deploy-<environment>` in the cicd namespace.
pub fn deployer_name(environment: &str) -> String {
    format!("deploy-{environment}")
}

/// The RoleBinding in an environment's namespace that lets its deploy account (and only it)
/// edit that namespace.
pub fn deployer_binding(factory: &str, namespace: &str, environment: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "factory-deployer", "namespace": namespace, "labels": factory_labels(factory)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": deployer_name(environment), "namespace": cicd_namespace(factory)}]})
}

/// The objects in team factory `factory`'s cicd namespace for its pipelines: one deploy account
/// per environment of `deploy_to` (those [`crate::identity::deploys_to`] allows); where any
/// application starts pipelines on push, the EventListeners' account with a namespaced Role
/// and the binding to [`TRIGGERS_CLUSTER_ROLE`]; and the shared image references when the
/// platform has built any. Whoever may start a PipelineRun here may run it as any of these
/// accounts, so none holds a right the owners lack: the listeners' cluster-wide read of
/// interceptors and bindings is bound to the owners too.
pub fn cicd_objects(
    factory: &str,
    deploy_to: &[String],
    triggers: bool,
    images: &BTreeMap<String, String>,
    owners: &Owners,
) -> Vec<Value> {
    let cicd = cicd_namespace(factory);
    let meta = |name: &str| json!({"name": name, "namespace": cicd, "labels": factory_labels(factory)});
    let mut out: Vec<Value> = deploy_to
        .iter()
        .map(|e| json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(&deployer_name(e))}))
        .collect();
    if triggers {
        let subject = json!([{"kind": "ServiceAccount", "name": TRIGGERS_SERVICE_ACCOUNT, "namespace": cicd}]);
        let mut cluster_subjects = vec![subject[0].clone()];
        cluster_subjects.extend(crate::identity::owner_subjects(owners));
        out.push(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(TRIGGERS_SERVICE_ACCOUNT)}));
        out.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta(TRIGGERS_SERVICE_ACCOUNT),
            "rules": [
                {"apiGroups": ["triggers.tekton.dev"], "resources": ["eventlisteners", "triggerbindings", "interceptors", "triggertemplates", "triggers"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["tekton.dev"], "resources": ["pipelineruns"], "verbs": ["create"]},
                {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]}]}));
        out.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta(TRIGGERS_SERVICE_ACCOUNT),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": TRIGGERS_SERVICE_ACCOUNT},
            "subjects": subject}));
        out.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": format!("{TRIGGERS_CLUSTER_ROLE}:{factory}"), "labels": factory_labels(factory)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": TRIGGERS_CLUSTER_ROLE},
            "subjects": cluster_subjects}));
    }
    if !images.is_empty() {
        out.push(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(SHARED_IMAGES_CONFIGMAP), "data": images}),
        );
    }
    out
}

/// The ClusterRole behind [`TRIGGERS_CLUSTER_ROLE`].
pub fn triggers_cluster_role() -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": TRIGGERS_CLUSTER_ROLE, "labels": {labels::MANAGED_BY: labels::MANAGED_BY_VALUE}},
        "rules": [{"apiGroups": ["triggers.tekton.dev"], "resources": ["clustertriggerbindings", "clusterinterceptors"],
                   "verbs": ["get", "list", "watch"]}]})
}

/// The EventListener, TriggerBinding and TriggerTemplate of application `app`: a signed push
/// event (GitHub-style HMAC, checked by Tekton's `github` interceptor) starts `on_push.pipeline`
/// with params and labels `application`, `revision` (the pushed commit) and `environment`.
pub fn application_triggers(factory: &str, app: &str, on_push: &OnPush) -> Vec<Value> {
    let cicd = cicd_namespace(factory);
    let mut object_labels = factory_labels(factory);
    object_labels.insert(APPLICATION_LABEL.into(), app.into());
    let meta = |name: &str| json!({"name": name, "namespace": cicd, "labels": object_labels});
    let binding = format!("{app}-push");
    let secret = on_push.secret_name.clone().unwrap_or_else(|| format!("{app}-webhook"));
    let run = json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {"generateName": format!("{app}-push-"), "labels": {
            APPLICATION_LABEL: app, REVISION_LABEL: "$(tt.params.revision)", ENVIRONMENT_LABEL: on_push.environment,
            "tekton.dev/pipeline": on_push.pipeline, labels::MANAGED_BY: labels::MANAGED_BY_VALUE}},
        "spec": {"pipelineRef": {"name": on_push.pipeline}, "params": [
            {"name": "application", "value": app}, {"name": "revision", "value": "$(tt.params.revision)"},
            {"name": "environment", "value": on_push.environment}]}});
    vec![
        json!({"apiVersion": TRIGGERS_API_VERSION, "kind": "TriggerBinding", "metadata": meta(&binding),
            "spec": {"params": [{"name": "revision", "value": "$(body.after)"}, {"name": "ref", "value": "$(body.ref)"}]}}),
        json!({"apiVersion": TRIGGERS_API_VERSION, "kind": "TriggerTemplate", "metadata": meta(app),
            "spec": {"params": [{"name": "revision"}, {"name": "ref"}], "resourcetemplates": [run]}}),
        json!({"apiVersion": TRIGGERS_API_VERSION, "kind": "EventListener", "metadata": meta(app),
            "spec": {"serviceAccountName": TRIGGERS_SERVICE_ACCOUNT, "triggers": [{
                "name": "push",
                "interceptors": [{"ref": {"name": "github", "kind": "ClusterInterceptor"}, "params": [
                    {"name": "secretRef", "value": {"secretName": secret, "secretKey": "secret"}},
                    {"name": "eventTypes", "value": ["push"]}]}],
                "bindings": [{"ref": binding}],
                "template": {"ref": app}}]}}),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_accounts_reach_their_environment_only() {
        let binding = deployer_binding("shop", "shop-prod", "prod");
        assert_eq!(binding["metadata"]["namespace"], "shop-prod");
        assert_eq!(binding["subjects"][0]["name"], "deploy-prod");
        assert_eq!(binding["subjects"][0]["namespace"], "shop-cicd");
        let objects =
            cicd_objects("shop", &["test".into(), "prod".into()], false, &BTreeMap::new(), &Owners::default());
        let names: Vec<&str> = objects.iter().filter_map(|o| o["metadata"]["name"].as_str()).collect();
        assert_eq!(names, ["deploy-test", "deploy-prod"]);
    }

    #[test]
    fn triggers_get_a_namespaced_role_and_no_secret_reading_cluster_role() {
        let images = BTreeMap::from([("base".to_string(), "reg/base@sha256:1".to_string())]);
        let owners = Owners { groups: vec!["team-shop".into()], users: Vec::new() };
        let objects = cicd_objects("shop", &[], true, &images, &owners);
        let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
        assert_eq!(kinds, ["ServiceAccount", "Role", "RoleBinding", "ClusterRoleBinding", "ConfigMap"]);
        assert_eq!(objects[3]["roleRef"]["name"], TRIGGERS_CLUSTER_ROLE);
        assert_eq!(objects[3]["subjects"][1]["name"], "team-shop", "owners read what the listener reads");
        let role = triggers_cluster_role();
        assert!(!role.to_string().contains("secrets"));
        assert_eq!(objects[4]["data"]["base"], "reg/base@sha256:1");
    }

    #[test]
    fn an_application_gets_a_signed_push_listener() {
        let push = OnPush { pipeline: "build".into(), environment: "test".into(), secret_name: None };
        let objects = application_triggers("shop", "cart", &push);
        let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
        assert_eq!(kinds, ["TriggerBinding", "TriggerTemplate", "EventListener"]);
        let listener = &objects[2]["spec"]["triggers"][0];
        assert_eq!(listener["interceptors"][0]["params"][0]["value"]["secretName"], "cart-webhook");
        assert_eq!(listener["bindings"][0]["ref"], "cart-push");
        let run = &objects[1]["spec"]["resourcetemplates"][0];
        assert_eq!(run["spec"]["pipelineRef"]["name"], "build");
        assert_eq!(run["metadata"]["labels"][APPLICATION_LABEL], "cart");
    }
}
