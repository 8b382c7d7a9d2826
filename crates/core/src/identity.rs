//! Who acts for a team and what each identity may do. Pure.
//!
//! The rule every function here serves: no identity a team member can assume — by
//! impersonation, a token request, or a Pod, TaskRun, PipelineRun or EventListener naming it —
//! holds a right the member lacks. So the team factory's own account (which holds `admin` in
//! every namespace of the team, prod included) lives in the operator-owned tenant namespace,
//! where no tenant holds any right; the owners get [`OWNER_ROLE`] in their cicd namespace instead
//! of `edit` (which carries `impersonate` and running pods as any account there); and a deploy
//! account exists only for an environment its pipelines' starters may already write.

use factory_api::factory::{AccessGrant, Owners};
use serde_json::{Value, json};

use crate::objects::factory_labels;

/// ClusterRole bound to a team factory's account in each namespace of its team.
pub const TENANT_CLUSTER_ROLE: &str = "admin";
/// Role of a team factory's owners in its cicd namespace (and its RoleBinding's name).
pub const OWNER_ROLE: &str = "factory-owner";
/// ClusterRoles whose holders may write a namespace; a deploy account needs the owners to hold one.
const WRITING_ROLES: [&str; 2] = ["edit", "admin"];

/// The service account team factory `factory`'s content is applied as: named after the
/// factory, in `tenant_namespace`.
pub fn tenant_account(factory: &str, tenant_namespace: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": factory, "namespace": tenant_namespace, "labels": factory_labels(factory)}})
}

/// The RoleBinding giving team factory `factory`'s account `admin` in `namespace`.
pub fn tenant_role_binding(factory: &str, namespace: &str, tenant_namespace: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "factory-tenant", "namespace": namespace, "labels": factory_labels(factory)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": TENANT_CLUSTER_ROLE},
        "subjects": [{"kind": "ServiceAccount", "name": factory, "namespace": tenant_namespace}]})
}

/// RBAC subjects for the owners: their groups, then their users.
pub fn owner_subjects(owners: &Owners) -> Vec<Value> {
    let groups =
        owners.groups.iter().map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}));
    let users =
        owners.users.iter().map(|u| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": u}));
    groups.chain(users).collect()
}

/// Who may read a team factory's own objects: its owners and every group an environment grants
/// a role to (approvers among them), as RBAC subjects.
pub fn member_subjects(owners: &Owners, environments: &[factory_api::factory::EnvironmentTemplate]) -> Vec<Value> {
    let mut subjects = owner_subjects(owners);
    for group in environments.iter().flat_map(|e| &e.access).flat_map(|a| &a.groups) {
        let subject = json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group});
        if !subjects.contains(&subject) {
            subjects.push(subject);
        }
    }
    subjects
}

/// Read access for the team's members (`subjects`) to what `kubectl factory` shows them: the
/// Factory and its Environment objects (cluster-scoped, by name: `get` only) and the releases
/// and approvals in the cicd namespace. Empty without subjects.
pub fn member_read_access(factory: &str, cicd: &str, environments: &[String], subjects: &[Value]) -> Vec<Value> {
    if subjects.is_empty() {
        return Vec::new();
    }
    let role = format!("factories.dev:factory:{factory}");
    let objects: Vec<String> = environments.iter().map(|e| crate::names::environment_object_name(factory, e)).collect();
    vec![
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": role, "labels": factory_labels(factory)},
            "rules": [
                {"apiGroups": [factory_api::GROUP], "resources": ["factories"], "resourceNames": [factory], "verbs": ["get"]},
                {"apiGroups": [factory_api::GROUP], "resources": ["environments"], "resourceNames": objects, "verbs": ["get"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": role, "labels": factory_labels(factory)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": subjects}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "factory-members-releases", "namespace": cicd, "labels": factory_labels(factory)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "factories.dev:releases-view"},
            "subjects": subjects}),
    ]
}

/// The owners' Role in the cicd namespace: run and read pipelines, manage previews and the
/// team's own CI Secrets (webhook and registry credentials), read pods, logs and events.
/// Deliberately not `edit`: no `impersonate`, no `serviceaccounts/token`, no pods of their
/// own, no RoleBindings — every account of the cicd namespace holds at most these rights.
pub fn owner_role(factory: &str, cicd: &str) -> Value {
    let read = ["get", "list", "watch"];
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": OWNER_ROLE, "namespace": cicd, "labels": factory_labels(factory)},
        "rules": [
            {"apiGroups": [factory_api::GROUP], "resources": ["previewenvironments"],
             "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
            // Releases are records: owners (and their CI) add them, nobody rewrites them.
            {"apiGroups": [factory_api::GROUP], "resources": ["releases"], "verbs": ["get", "list", "watch", "create"]},
            {"apiGroups": ["tekton.dev"], "resources": ["pipelineruns", "taskruns"],
             "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
            {"apiGroups": ["tekton.dev"], "resources": ["pipelines", "tasks", "customruns"], "verbs": read},
            {"apiGroups": ["triggers.tekton.dev"],
             "resources": ["eventlisteners", "triggerbindings", "triggertemplates", "triggers", "interceptors"], "verbs": read},
            {"apiGroups": [""], "resources": ["secrets"],
             "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
            {"apiGroups": [""], "resources": ["pods", "pods/log", "configmaps", "services", "endpoints",
                "persistentvolumeclaims", "serviceaccounts", "resourcequotas", "limitranges", "events"], "verbs": read},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": read}]})
}

/// The binding of [`owner_role`] to the owners; `None` when the factory names none.
pub fn owner_binding(factory: &str, cicd: &str, owners: &Owners) -> Option<Value> {
    let subjects = owner_subjects(owners);
    (!subjects.is_empty()).then(|| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": OWNER_ROLE, "namespace": cicd, "labels": factory_labels(factory)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": OWNER_ROLE},
            "subjects": subjects})
    })
}

/// Whether pipelines may deploy to an environment: it is not protected (changes to a
/// protected environment come through the factory's git alone) and every owner — whoever may
/// start a pipeline — already may write it (`edit` or `admin` granted to all owner groups;
/// grants without groups go to the owners). Owners named as users get no access grants, so
/// a factory with owner users deploys to no environment from pipelines.
pub fn deploys_to(owners: &Owners, protected: bool, access: &[AccessGrant]) -> bool {
    if protected || !owners.users.is_empty() {
        return false;
    }
    let writers: Vec<&String> = access
        .iter()
        .filter(|a| WRITING_ROLES.contains(&a.cluster_role.as_str()))
        .flat_map(|a| {
            if a.groups.is_empty() { owners.groups.iter().collect::<Vec<_>>() } else { a.groups.iter().collect() }
        })
        .collect();
    owners.groups.iter().all(|g| writers.contains(&g))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(groups: &[&str]) -> Owners {
        Owners { groups: groups.iter().map(|g| g.to_string()).collect(), users: Vec::new() }
    }

    fn grant(role: &str, groups: &[&str]) -> AccessGrant {
        AccessGrant { cluster_role: role.into(), groups: groups.iter().map(|g| g.to_string()).collect() }
    }

    #[test]
    fn deploy_accounts_only_where_every_owner_already_writes() {
        let team = owners(&["team-shop"]);
        assert!(deploys_to(&team, false, &[grant("edit", &[])]));
        assert!(deploys_to(&team, false, &[grant("admin", &["team-shop", "ops"])]));
        assert!(!deploys_to(&team, false, &[grant("view", &[])]), "view does not write");
        assert!(!deploys_to(&team, false, &[grant("edit", &["ops"])]), "ops writes, the owners do not");
        assert!(!deploys_to(&team, true, &[grant("edit", &[])]), "protected: only through git");
        assert!(!deploys_to(&owners(&["a", "b"]), false, &[grant("edit", &["a"])]), "b may start pipelines too");
        let with_user = Owners { users: vec!["alice".into()], ..team };
        assert!(!deploys_to(&with_user, false, &[grant("edit", &[])]), "users get no grants");
    }

    #[test]
    fn owners_hold_no_verb_that_assumes_another_identity() {
        let role = owner_role("shop", "shop-cicd");
        let rules = role["rules"].as_array().expect("rules");
        let list = |rule: &Value, key: &str| -> Vec<String> {
            rule[key].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect()
        };
        for rule in rules {
            let (verbs, resources) = (list(rule, "verbs"), list(rule, "resources"));
            for verb in ["impersonate", "bind", "escalate", "*"] {
                assert!(!verbs.iter().any(|v| v == verb), "{verb} in {rule}");
            }
            for resource in ["serviceaccounts/token", "rolebindings", "roles", "pods/exec", "*"] {
                assert!(!resources.iter().any(|r| r == resource), "{resource} in {rule}");
            }
            let writes = verbs.iter().any(|v| v == "create" || v == "patch" || v == "update");
            assert!(!(writes && resources.iter().any(|r| r == "pods" || r == "serviceaccounts")), "{rule}");
        }
        let binding = owner_binding("shop", "shop-cicd", &owners(&["team-shop"])).expect("binding");
        assert_eq!(binding["roleRef"]["kind"], "Role");
        assert!(owner_binding("shop", "shop-cicd", &Owners::default()).is_none());
    }

    #[test]
    fn the_factory_account_lives_in_the_tenant_namespace() {
        let binding = tenant_role_binding("shop", "shop-prod", factory_api::DEFAULT_TENANT_NAMESPACE);
        assert_eq!(binding["subjects"][0]["namespace"], factory_api::DEFAULT_TENANT_NAMESPACE);
        assert_eq!(binding["subjects"][0]["name"], "shop");
        assert_eq!(tenant_account("shop", "t")["metadata"]["namespace"], "t");
    }
}
