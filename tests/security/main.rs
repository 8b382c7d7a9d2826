//! The security suite: the Kubernetes Multi-Tenancy Benchmarks checks that apply to namespaces,
//! run as the tenant (the team factory's own account, which holds `admin` in its namespaces)
//! against every kind of namespace the operator creates — cicd, permanent and preview — through
//! the real API server's RBAC, admission policies, Pod Security admission and quota; and hostile
//! repository content (100,000 files) contained end to end. Results: docs/security.md.

#[path = "../platform/fixture.rs"]
#[allow(dead_code)]
mod fixture;

use std::time::Duration;

use factory_api::{Environment, PreviewEnvironment};
use factory_testkit::eventually;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ResourceQuota, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use factory_integration_tests::{test_name, testdata};
use fixture::{Apps, Platform};

fn object<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("object")
}

/// A pod that meets the `restricted` Pod Security Standard; each check breaks one field of it.
fn compliant_pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
                 "containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"],
                     "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}})
}

/// One Pod Security check: its name, the one change to the compliant pod, and what the
/// rejection must name.
type Violation = (&'static str, Box<dyn Fn(&mut Value)>, &'static str);

fn violations() -> Vec<Violation> {
    vec![
        (
            "privileged",
            // The API's own validation forbids privileged with allowPrivilegeEscalation: false,
            // so this pod also leaves allowPrivilegeEscalation unset: the one unavoidable companion.
            Box::new(|p: &mut Value| {
                let sc = &mut p["spec"]["containers"][0]["securityContext"];
                sc["privileged"] = json!(true);
                if let Some(map) = sc.as_object_mut() {
                    map.remove("allowPrivilegeEscalation");
                }
            }),
            "privileged",
        ),
        ("host network", Box::new(|p: &mut Value| p["spec"]["hostNetwork"] = json!(true)), "hostNetwork=true"),
        ("host PID", Box::new(|p: &mut Value| p["spec"]["hostPID"] = json!(true)), "hostPID=true"),
        ("host IPC", Box::new(|p: &mut Value| p["spec"]["hostIPC"] = json!(true)), "hostIPC=true"),
        (
            "hostPath",
            Box::new(|p: &mut Value| {
                p["spec"]["volumes"] = json!([{"name": "h", "hostPath": {"path": "/etc"}}]);
            }),
            "restricted volume type \"hostPath\"",
        ),
        (
            "added capability",
            Box::new(|p: &mut Value| {
                p["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] = json!(["NET_ADMIN"]);
            }),
            "NET_ADMIN",
        ),
        ("run as root", Box::new(|p: &mut Value| p["spec"]["securityContext"]["runAsUser"] = json!(0)), "runAsUser=0"),
        (
            "run as non-root off",
            Box::new(|p: &mut Value| p["spec"]["securityContext"]["runAsNonRoot"] = json!(false)),
            "runAsNonRoot != true",
        ),
        (
            "privilege escalation",
            Box::new(|p: &mut Value| {
                p["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(true);
            }),
            "allowPrivilegeEscalation != false",
        ),
    ]
}

fn refused(result: Result<impl std::fmt::Debug, kube::Error>, what: &str) -> String {
    match result {
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422 => s.message,
        other => panic!("{what} must be refused: {other:?}"),
    }
}

/// Every check, as `tenant`, in `ns` (of kind `kind`); `other` is another team's namespace.
async fn checks(tenant: &Client, admin: &Client, ns: &str, kind: &str, other: &str) -> Vec<String> {
    let mut report = Vec::new();
    let pods: Api<Pod> = Api::namespaced(tenant.clone(), ns);
    // The control: a compliant pod is admitted (so rejections below are for the field alone).
    pods.create(&PostParams::default(), &object(compliant_pod("compliant")))
        .await
        .unwrap_or_else(|e| panic!("{kind} {ns}: a compliant pod must be admitted: {e}"));
    let all: Vec<&str> = violations().iter().map(|(_, _, field)| *field).collect();
    for (check, change, field) in violations() {
        let mut pod = compliant_pod(&format!("bad-{}", check.replace(" ", "-").to_lowercase()));
        change(&mut pod);
        let message = refused(pods.create(&PostParams::default(), &object(pod)).await, &format!("{kind}: {check}"));
        assert!(message.contains("PodSecurity \"restricted") && message.contains(field), "{kind} {check}: {message}");
        let companion = |f: &str| check == "privileged" && f == "allowPrivilegeEscalation != false";
        for other_field in
            all.iter().filter(|f| **f != field && !field.contains(**f) && !f.contains(field) && !companion(f))
        {
            assert!(!message.contains(other_field), "{kind} {check} was refused for {other_field} too: {message}");
        }
        report.push(format!("{kind}: pod with {check} refused ({field})"));
    }

    // Quota covers CPU, memory, ephemeral storage and object counts, and forbids NodePorts.
    let quotas =
        Api::<ResourceQuota>::namespaced(admin.clone(), ns).list(&ListParams::default()).await.expect("quotas");
    let hard: Vec<String> =
        quotas.items.iter().flat_map(|q| q.spec.clone().and_then(|s| s.hard).unwrap_or_default().into_keys()).collect();
    for key in ["requests.cpu", "requests.memory", "requests.ephemeral-storage", "pods", "services.nodeports"] {
        assert!(hard.iter().any(|k| k == key), "{kind} {ns}: quota lacks {key}: {hard:?}");
    }
    let nodeport: Service =
        object(json!({"metadata": {"name": "np"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}));
    let message = refused(
        Api::<Service>::namespaced(tenant.clone(), ns).create(&PostParams::default(), &nodeport).await,
        "a NodePort",
    );
    assert!(message.contains("services.nodeports"), "{message}");
    report.push(format!("{kind}: NodePort refused by quota"));

    // The tenant cannot change its quota or the platform's other objects.
    let quota_name = quotas.items.iter().find(|q| q.name_any() != "previews").map(|q| q.name_any()).expect("a quota");
    let raise = json!({"spec": {"hard": {"requests.cpu": "1000"}}});
    refused(
        Api::<ResourceQuota>::namespaced(tenant.clone(), ns)
            .patch(&quota_name, &PatchParams::default(), &Patch::Merge(&raise))
            .await,
        "raising the quota",
    );
    refused(
        Api::<ResourceQuota>::namespaced(tenant.clone(), ns).delete(&quota_name, &DeleteParams::default()).await,
        "deleting the quota",
    );
    let open = json!({"spec": {"policyTypes": ["Egress"]}});
    refused(
        Api::<NetworkPolicy>::namespaced(tenant.clone(), ns)
            .patch("default-deny", &PatchParams::default(), &Patch::Merge(&open))
            .await,
        "weakening the network policy",
    );
    refused(
        Api::<NetworkPolicy>::namespaced(tenant.clone(), ns).delete("default-deny", &DeleteParams::default()).await,
        "deleting the network policy",
    );
    let relabel = json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}});
    refused(
        Api::<Namespace>::all(tenant.clone()).patch(ns, &PatchParams::default(), &Patch::Merge(&relabel)).await,
        "relaxing Pod Security",
    );
    report.push(format!("{kind}: quota, network policy and namespace labels unchanged by the tenant"));

    // No cluster resources, no other tenant's.
    refused(
        Api::<k8s_openapi::api::core::v1::Node>::all(tenant.clone()).list(&ListParams::default()).await,
        "listing nodes",
    );
    refused(
        Api::<Namespace>::all(tenant.clone())
            .create(&PostParams::default(), &object(json!({"metadata": {"name": format!("{ns}-x")}})))
            .await,
        "creating a namespace",
    );
    refused(
        Api::<k8s_openapi::api::core::v1::PersistentVolume>::all(tenant.clone()).list(&ListParams::default()).await,
        "listing persistent volumes",
    );
    refused(
        Api::<ConfigMap>::namespaced(tenant.clone(), other).list(&ListParams::default()).await,
        "reading another tenant's namespace",
    );
    refused(
        Api::<ConfigMap>::namespaced(tenant.clone(), other)
            .create(&PostParams::default(), &object(json!({"metadata": {"name": "x"}})))
            .await,
        "writing another tenant's namespace",
    );
    report.push(format!("{kind}: no cluster resources, no other tenant's"));
    report
}

#[tokio::test]
async fn multi_tenancy_benchmarks_hold_in_every_namespace_kind() {
    let p = Platform::serving(test_name!(), "security/platform").await;
    let x = p.ctx.prefix.clone();
    let apps = Apps::serve().await;
    apps.repo("cart", &[("deploy/base/cm.yaml", &testdata("security/cart/configmap-cart.yaml", &[]))]);
    let team = |name: &str| {
        let extra = format!("  owners: {{groups: [{x}-{name}]}}\n  previews: {{max: 2}}\n");
        fixture::team_with_cart(&x, name, &apps.url("cart"), &extra)
    };
    let classes = json!([{"name": "base", "path": "classes/base/"},
        {"name": "preview", "path": "classes/preview/", "extends": ["base"]},
        {"name": "cicd", "path": "classes/base/"}]);
    p.start_with(
        &[("shop", &team("shop")), ("other", &team("other"))],
        json!({"cluster": null, "environmentClasses": classes}),
    )
    .await;
    let admin = p.ctx.client.clone();
    let envs: Api<Environment> = Api::all(admin.clone());
    for team in ["shop", "other"] {
        eventually(&format!("{team}-test Ready"), Duration::from_secs(90), || async {
            let e = envs.get(&format!("{x}-{team}-test")).await?;
            anyhow::Ok(
                e.status.filter(|s| s.reconcile.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
            )
        })
        .await
        .expect("environment");
    }
    // A preview, created by an owner with namespaced rights.
    let owner = p.ctx.client_as_user("alice", &[&format!("{x}-shop")]).await.expect("owner");
    let cicd = format!("{x}-shop-cicd");
    Api::<PreviewEnvironment>::namespaced(owner, &cicd)
        .create(
            &PostParams::default(),
            &object(json!({"apiVersion": "factories.dev/v1alpha1", "kind": "PreviewEnvironment",
            "metadata": {"name": "sec"}, "spec": {"application": "cart", "ref": {"branch": "main"}}})),
        )
        .await
        .expect("preview");
    let preview_ns = format!("{x}-shop-pv-sec");
    eventually("the preview's quota in place", Duration::from_secs(90), || async {
        let q = Api::<ResourceQuota>::namespaced(admin.clone(), &preview_ns).get_opt("tenant-quota").await?;
        anyhow::Ok(q.filter(|q| q.status.as_ref().and_then(|s| s.hard.as_ref()).is_some()))
    })
    .await
    .expect("preview built");
    eventually("the cicd class's quota in place", Duration::from_secs(90), || async {
        let q = Api::<ResourceQuota>::namespaced(admin.clone(), &cicd).get_opt("tenant-quota").await?;
        anyhow::Ok(q.filter(|q| q.status.as_ref().and_then(|s| s.hard.as_ref()).is_some()))
    })
    .await
    .expect("cicd baseline");

    let tenant = p
        .ctx
        .client_as_service_account(factory_api::DEFAULT_TENANT_NAMESPACE, &format!("{x}-shop"))
        .await
        .expect("tenant");
    let other = format!("{x}-other-test");
    let mut report = Vec::new();
    for (ns, kind) in [(cicd.clone(), "cicd"), (format!("{x}-shop-test"), "permanent"), (preview_ns.clone(), "preview")]
    {
        report.extend(checks(&tenant, &admin, &ns, kind, &other).await);
    }
    eprintln!("security suite:\n  {}", report.join("\n  "));
    assert_eq!(report.len(), 3 * (violations().len() + 3));
}

/// 100,000 files in a platform repository: the revision is refused with the limit named,
/// nothing of it is applied and nothing already applied is pruned.
#[tokio::test]
async fn a_repository_of_100000_files_is_contained() {
    let p = Platform::new(test_name!()).await;
    let x = p.ctx.prefix.clone();
    p.repo
        .write("cluster/ns.yaml", &testdata("security/cluster/namespace-kept.yaml", &[("prefix", &x)]))
        .expect("write");
    p.repo.commit("one namespace").expect("commit");
    p.create_factory(json!({"factories": null, "environmentClasses": null})).await;
    p.wait_ready("True", "Reconciled").await;

    let started = std::time::Instant::now();
    p.repo.commit_many("cluster/many", 100_000, &testdata("security/configmap-same.yaml", &[])).expect("commit");
    eprintln!("100,000-file commit made in {:.1}s", started.elapsed().as_secs_f64());
    p.poke().await;
    // The commit cannot even be read, so the condition (not lastAttemptedRevision) tells.
    let f = eventually("the revision refused", Duration::from_secs(60), || async {
        let f = p.factories().get(&p.name).await?;
        let refused = f.status.as_ref().is_some_and(|s| {
            s.reconcile
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == "ContentRejected")
        });
        anyhow::Ok(refused.then_some(f))
    })
    .await
    .expect("refused");
    let message = f
        .status
        .clone()
        .unwrap_or_default()
        .reconcile
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(message.contains("files") && message.contains("limit"), "{message}");
    assert!(
        Api::<Namespace>::all(p.ctx.client.clone()).get_opt(&format!("{x}-kept")).await.expect("get").is_some(),
        "nothing pruned"
    );
    let applied = Api::<ConfigMap>::all(p.ctx.client.clone())
        .list(&ListParams::default().fields("metadata.name=same"))
        .await
        .expect("list");
    assert!(applied.items.is_empty(), "nothing of the refused revision applied");
}
