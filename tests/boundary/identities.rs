//! No identity a member can assume holds a right she lacks; prod and its credentials stay out
//! of her reach by every path.

use std::collections::BTreeSet;
use std::time::Duration;

use factory_api::DEFAULT_TENANT_NAMESPACE;
use factory_testkit::eventually;
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest};
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::discovery::ApiResource;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use factory_integration_tests::testdata;

use crate::world::{World, allowed, object, refused};

/// A service account of the team, by namespace and name.
type Account = (String, String);

fn dry_run() -> PostParams {
    PostParams { dry_run: true, ..Default::default() }
}

fn tekton(client: &Client, namespace: &str, kind: &str) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: "tekton.dev".into(),
        version: "v1".into(),
        api_version: "tekton.dev/v1".into(),
        kind: kind.into(),
        plural: format!("{}s", kind.to_lowercase()),
    };
    Api::namespaced_with(client.clone(), namespace, &resource)
}

fn pipeline_runs(client: &Client, namespace: &str) -> Api<DynamicObject> {
    tekton(client, namespace, "PipelineRun")
}

fn task_runs(client: &Client, namespace: &str) -> Api<DynamicObject> {
    tekton(client, namespace, "TaskRun")
}

/// A Pod that meets the `restricted` standard, running as `account`.
fn pod_as(account: &str) -> Pod {
    object(json!({"metadata": {"name": "assume"}, "spec": {"serviceAccountName": account,
        "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1"],
            "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}}))
}

fn pipeline_run_as(account: &str) -> DynamicObject {
    object(json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "metadata": {"name": "assume"},
        "spec": {"pipelineRef": {"name": "ci"}, "taskRunTemplate": {"serviceAccountName": account}}}))
}

fn task_run_as(account: &str) -> DynamicObject {
    object(json!({"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "metadata": {"name": "assume"},
        "spec": {"serviceAccountName": account,
                 "taskSpec": {"steps": [{"name": "s", "image": "busybox", "script": "true"}]}}}))
}

/// Alice's attempt at one path: `Some(path)` when it went through, else the refusal's reason
/// checked to be the RBAC verb and resource named.
fn attempt<T>(path: &'static str, who: &str, result: Result<T, kube::Error>, reason: &str) -> Option<&'static str> {
    match result {
        Ok(_) => Some(path),
        Err(e) => {
            let m = refused(&format!("alice: {path} as {who}"), Err::<(), _>(e));
            assert!(m.contains(&format!("User \"alice\" cannot {reason}")), "{path} as {who}: {m}");
            None
        }
    }
}

/// Every way to act as `account` — impersonation, a token, a Pod, a TaskRun, a PipelineRun
/// naming it — tried by the cluster admin (each must work: the control) and by alice. Returns
/// the paths that worked for alice: through any of them she holds the account's rights, which
/// must then stay within hers.
async fn try_to_assume(w: &World, account: &Account) -> Vec<&'static str> {
    let (ns, name) = account;
    let admin = w.admin();
    let who = format!("{ns}/{name}");
    let mut worked = Vec::new();

    // Impersonation: the admin's impersonated request authenticates as the account.
    let as_admin = factory_apply::impersonating_client(&admin, ns, name, None).expect("client");
    let review = allowed(
        &format!("admin impersonates {who}"),
        Api::<SelfSubjectReview>::all(as_admin).create(&PostParams::default(), &SelfSubjectReview::default()).await,
    );
    let user = review.status.and_then(|s| s.user_info).and_then(|u| u.username).unwrap_or_default();
    assert_eq!(user, format!("system:serviceaccount:{ns}:{name}"));
    // Alice's needs an impersonation verb: legacy `impersonate`, or 1.37's constrained
    // `impersonate-on:serviceaccount:<verb>`, which the API server names when both are missing.
    let as_alice = factory_apply::impersonating_client(&w.alice, ns, name, None).expect("client");
    let result =
        Api::<SelfSubjectReview>::all(as_alice).create(&PostParams::default(), &SelfSubjectReview::default()).await;
    worked.extend(attempt("impersonation", &who, result, "impersonate"));

    // A token for it.
    let request: TokenRequest = object(json!({"spec": {"audiences": [], "expirationSeconds": 600}}));
    let tokens = |c: &Client| Api::<ServiceAccount>::namespaced(c.clone(), ns);
    allowed::<TokenRequest>(
        &format!("admin requests a token for {who}"),
        tokens(&admin).create_subresource("token", name, &PostParams::default(), &request).await,
    );
    let result =
        tokens(&w.alice).create_subresource::<_, TokenRequest>("token", name, &PostParams::default(), &request).await;
    worked.extend(attempt("token", &who, result, "create resource \"serviceaccounts/token\""));

    // A Pod, a TaskRun and a PipelineRun naming it (dry-run: admission runs, nothing is kept).
    let pods = |c: &Client| Api::<Pod>::namespaced(c.clone(), ns);
    allowed(&format!("admin runs a pod as {who}"), pods(&admin).create(&dry_run(), &pod_as(name)).await);
    let result = pods(&w.alice).create(&dry_run(), &pod_as(name)).await;
    worked.extend(attempt("pod", &who, result, "create resource \"pods\""));
    for (path, kind, api, run) in [
        ("taskrun", "taskruns", task_runs as fn(&Client, &str) -> Api<DynamicObject>, task_run_as(name)),
        ("pipelinerun", "pipelineruns", pipeline_runs, pipeline_run_as(name)),
    ] {
        allowed(&format!("admin creates a {kind} as {who}"), api(&admin, ns).create(&dry_run(), &run).await);
        let result = api(&w.alice, ns).create(&dry_run(), &run).await;
        worked.extend(attempt(path, &who, result, &format!("create resource \"{kind}\"")));
    }
    worked
}

/// What the probes ask: verb, API group, resource (with subresource), namespace ("" cluster-wide).
fn probes(w: &World, preview: &str) -> Vec<(String, String, String, String)> {
    let namespaces = [
        w.ns("cicd"),
        w.ns("test"),
        w.ns("prod"),
        preview.to_string(),
        DEFAULT_TENANT_NAMESPACE.into(),
        format!("{}-other-test", w.x),
    ];
    let namespaced = [
        ("get", "", "secrets"),
        ("list", "", "secrets"),
        ("create", "", "configmaps"),
        ("patch", "", "configmaps"),
        ("delete", "", "configmaps"),
        ("create", "apps", "deployments"),
        ("create", "", "pods"),
        ("create", "", "pods/exec"),
        ("create", "rbac.authorization.k8s.io", "rolebindings"),
        ("create", "", "serviceaccounts/token"),
        ("impersonate", "", "serviceaccounts"),
        ("create", "tekton.dev", "pipelineruns"),
        ("create", "tekton.dev", "taskruns"),
        ("create", "factories.dev", "previewenvironments"),
        ("patch", "", "resourcequotas"),
    ];
    let mut out = Vec::new();
    for ns in &namespaces {
        for (verb, group, resource) in namespaced {
            out.push((verb.into(), group.into(), resource.into(), ns.clone()));
        }
    }
    for (verb, group, resource) in [
        ("delete", "", "namespaces"),
        ("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
        ("list", "triggers.tekton.dev", "clusterinterceptors"),
        ("list", "", "secrets"),
    ] {
        out.push((verb.into(), group.into(), resource.into(), String::new()));
    }
    out
}

/// Whether `user` in `groups` may do `probe`, by the API server's own authorizer.
async fn may(admin: &Client, user: &str, groups: &[String], probe: &(String, String, String, String)) -> bool {
    let (verb, group, resource) = (&probe.0, &probe.1, &probe.2);
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    let review: SubjectAccessReview = object(json!({"spec": {"user": user, "groups": groups,
        "resourceAttributes": {"verb": verb, "group": group, "resource": resource, "subresource": subresource,
                               "namespace": probe.3}}}));
    Api::<SubjectAccessReview>::all(admin.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("subject access review")
        .status
        .is_some_and(|s| s.allowed)
}

#[tokio::test]
async fn no_identity_a_member_can_assume_holds_a_right_the_member_lacks() {
    let w = World::new("no_identity_a_member_can_assume_holds_a_right_the_member_lacks", "").await;
    w.wait_cart("test").await;
    let admin = w.admin();
    let (cicd, test, prod) = (w.ns("cicd"), w.ns("test"), w.ns("prod"));
    crate::previews::create(&w, "pv", json!({}), json!({})).await;
    crate::previews::wait(&w, "pv", "True", "is ready").await;
    let preview = w.ns("pv-pv");

    // The accounts there are. The team factory's own (admin in every team namespace, prod
    // included) lives in the operator's tenant namespace, not in the team's.
    let mut accounts: Vec<Account> = Vec::new();
    for ns in [&cicd, &test, &prod, &preview] {
        let listed = eventually(&format!("the default account of {ns}"), Duration::from_secs(30), || async {
            let list = Api::<ServiceAccount>::namespaced(admin.clone(), ns).list(&ListParams::default()).await?;
            let names: BTreeSet<String> = list.items.iter().map(|a| a.name_any()).collect();
            anyhow::Ok(names.contains("default").then_some(names))
        })
        .await
        .expect("service accounts");
        if ns == &cicd {
            let expected: BTreeSet<String> =
                ["default", "deploy-test", factory_core::pipelines::TRIGGERS_SERVICE_ACCOUNT].map(String::from).into();
            assert_eq!(listed, expected, "no factory account and no deploy-prod in {cicd}");
        }
        accounts.extend(listed.into_iter().map(|n| (ns.clone(), n)));
    }
    let tenant: Account = (DEFAULT_TENANT_NAMESPACE.into(), format!("{}-shop", w.x));
    allowed("the factory's account", Api::<ServiceAccount>::namespaced(admin.clone(), &tenant.0).get(&tenant.1).await);
    accounts.push(tenant.clone());

    // Every path to each account; those alice can act as are compared with her, right by right.
    let mut assumable = Vec::new();
    for account in &accounts {
        let worked = try_to_assume(&w, account).await;
        let (ns, name) = account;
        if ns == &cicd {
            // Her role in cicd is the factory's: she runs pipelines, and nothing else assumes.
            assert!(worked.iter().all(|p| *p == "taskrun" || *p == "pipelinerun"), "{ns}/{name}: {worked:?}");
        }
        if ns == &prod || account == &tenant {
            assert!(worked.is_empty(), "alice acts as {ns}/{name} by {worked:?}");
        }
        if !worked.is_empty() {
            assumable.push(account.clone());
        }
    }
    assert!(
        assumable.contains(&(cicd.clone(), "deploy-test".into())),
        "alice runs pipelines: {assumable:?} (else the comparison below proves nothing)"
    );

    let alice_groups = vec![format!("{}-shop-team", w.x), "system:authenticated".to_string()];
    let probes = probes(&w, &preview);
    let mut violations = Vec::new();
    let mut positives = 0;
    for (ns, name) in &assumable {
        let user = format!("system:serviceaccount:{ns}:{name}");
        let groups = vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ];
        for probe in &probes {
            if may(&admin, &user, &groups, probe).await {
                positives += 1;
                if !may(&admin, "alice", &alice_groups, probe).await {
                    violations.push(format!(
                        "{ns}/{name} may {} {}/{} in '{}'; alice may not",
                        probe.0, probe.1, probe.2, probe.3
                    ));
                }
            }
        }
    }
    assert!(violations.is_empty(), "identities alice can assume hold rights she lacks:\n{}", violations.join("\n"));
    // The comparison is not vacuous: the deploy account writes test, the listener reads cicd's Secrets.
    let deployer = format!("system:serviceaccount:{cicd}:deploy-test");
    let sa_groups = vec!["system:serviceaccounts".to_string(), format!("system:serviceaccounts:{cicd}")];
    let writes_test = ("create".to_string(), "apps".to_string(), "deployments".to_string(), test.clone());
    assert!(may(&admin, &deployer, &sa_groups, &writes_test).await);
    let writes_prod = ("create".to_string(), "apps".to_string(), "deployments".to_string(), prod.clone());
    assert!(!may(&admin, &deployer, &sa_groups, &writes_prod).await);
    eprintln!(
        "boundary: {} accounts, {} alice can run workloads as, {} probes each, {positives} rights held, 0 beyond hers",
        accounts.len(),
        assumable.len(),
        probes.len()
    );
}

#[tokio::test]
async fn a_member_cannot_write_prod_or_read_its_credentials() {
    let w = World::new("a_member_cannot_write_prod_or_read_its_credentials", "").await;
    w.wait_cart("test").await;
    let (cicd, prod) = (w.ns("cicd"), w.ns("prod"));
    let admin = w.admin();

    // The delivered credential: there for the platform, not for alice (view in prod).
    let secrets = |c: &Client| Api::<Secret>::namespaced(c.clone(), &prod);
    eventually("the credential delivered to prod", Duration::from_secs(60), || async {
        anyhow::Ok(secrets(&admin).get_opt("db").await?.map(|_| ()))
    })
    .await
    .expect("delivered");
    let m = refused("alice reads prod's credential", secrets(&w.alice).get("db").await);
    assert!(m.contains("User \"alice\" cannot get resource \"secrets\"") && m.contains(&prod), "{m}");
    allowed(
        "alice reads prod's ConfigMaps (view)",
        Api::<ConfigMap>::namespaced(w.alice.clone(), &prod).list(&ListParams::default()).await,
    );

    // Writing prod: the factory's own account may (changes to prod come through git)…
    let cm: ConfigMap = object(json!({"metadata": {"name": "by-hand"}}));
    let tenant = factory_apply::impersonating_client(&admin, DEFAULT_TENANT_NAMESPACE, &format!("{}-shop", w.x), None)
        .expect("tenant");
    allowed(
        "the factory's account writes prod",
        Api::<ConfigMap>::namespaced(tenant, &prod).create(&dry_run(), &cm).await,
    );
    // …alice may not.
    let m = refused(
        "alice writes prod",
        Api::<ConfigMap>::namespaced(w.alice.clone(), &prod).create(&dry_run(), &cm).await,
    );
    assert!(m.contains("User \"alice\" cannot create resource \"configmaps\""), "{m}");
    // Deleting prod: RBAC stops her; the admission policy stops even the cluster admin.
    let namespaces = |c: &Client| Api::<k8s_openapi::api::core::v1::Namespace>::all(c.clone());
    let dry_delete = kube::api::DeleteParams { dry_run: true, ..Default::default() };
    let m = refused("alice deletes prod", namespaces(&w.alice).delete(&prod, &dry_delete).await);
    assert!(m.contains("User \"alice\" cannot delete resource \"namespaces\""), "{m}");
    let m = refused("the admin deletes prod", namespaces(&admin).delete(&prod, &dry_delete).await);
    assert!(m.contains("is a protected permanent environment and is never deleted"), "{m}");

    // She runs and reads pipelines in cicd (her role there is the factory's, not `edit`)…
    allowed("alice lists runs", pipeline_runs(&w.alice, &cicd).list(&ListParams::default()).await);
    allowed("alice reads pods", Api::<Pod>::namespaced(w.alice.clone(), &cicd).list(&ListParams::default()).await);
    let run: Value = json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "metadata": {"name": "manual"},
        "spec": {"pipelineRef": {"name": "ci"}}});
    allowed("alice starts a run", pipeline_runs(&w.alice, &cicd).create(&dry_run(), &object(run)).await);

    // …and no pipeline deploys to prod: the factory refuses a deploy task aimed at it.
    w.edit_team("runOnChange: {pipeline: ci, environment: test", "runOnChange: {pipeline: ci, environment: prod").await;
    w.cart.write("deploy/base/more.yaml", &testdata("boundary/cart/configmap-more.yaml", &[])).expect("write");
    w.cart.commit("a new revision starts a run").expect("commit");
    w.p.poke().await;
    let shop = format!("{}-shop", w.x);
    let factories = w.factories();
    let error = eventually("the refused deploy task", Duration::from_secs(60), || async {
        let f = factories.get(&shop).await?;
        let error = f.status.unwrap_or_default().pipelines.into_iter().find(|p| p.name == "cart").map(|p| p.error);
        anyhow::Ok(error.filter(|e| e.contains("deploys to prod")))
    })
    .await
    .expect("refused");
    assert!(error.contains("InvalidSpec") && error.contains("has no deploy account"), "{error}");
    let runs = pipeline_runs(&admin, &cicd).list(&ListParams::default()).await.expect("runs");
    assert!(
        runs.items.iter().all(|r| r.labels().get("factories.dev/environment").map(String::as_str) != Some("prod")),
        "no run toward prod was started"
    );
}
