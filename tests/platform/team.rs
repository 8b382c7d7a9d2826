//! Team factories: environments materialised from the spec with their access and quota; the
//! tenant boundary tried as the owner group and as the factory's service account through the
//! real RBAC; a protected environment outlives its removal from the spec and its factory.

use std::time::Duration;

use factory_api::{Environment, Factory};
use factory_testkit::eventually;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ResourceQuota};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use factory_integration_tests::{test_name, testdata};

use crate::fixture::Platform;

/// The team factories `<prefix>-shop` (as `variant`) and `<prefix>-cart`.
fn factory(variant: &str, x: &str) -> String {
    testdata(&format!("platform/team/factories/{variant}.yaml"), &[("prefix", x)])
}

fn object<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("test object")
}

/// The request must be refused by the API server with 403; returns its message.
async fn refused<T: std::fmt::Debug>(what: &str, result: Result<T, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(s)) if s.code == 403 => s.message,
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

async fn tries_to_cross(who: &str, client: &Client, x: &str) {
    let crb: ClusterRoleBinding = object(json!({"metadata": {"name": format!("{x}-{who}-escape")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}]}));
    let m = refused(
        &format!("{who}: ClusterRoleBinding"),
        Api::<ClusterRoleBinding>::all(client.clone()).create(&PostParams::default(), &crb).await,
    )
    .await;
    assert!(m.contains("clusterrolebindings"), "{m}");

    let cm: ConfigMap = object(json!({"metadata": {"name": format!("{who}-was-here")}}));
    let m = refused(
        &format!("{who}: write into another factory"),
        Api::<ConfigMap>::namespaced(client.clone(), &format!("{x}-cart-test"))
            .create(&PostParams::default(), &cm)
            .await,
    )
    .await;
    assert!(m.contains(&format!("{x}-cart-test")), "{m}");

    let raise = json!({"spec": {"hard": {"requests.cpu": "1000"}}});
    let m = refused(
        &format!("{who}: raise own quota"),
        Api::<ResourceQuota>::namespaced(client.clone(), &format!("{x}-shop-test"))
            .patch("environment", &PatchParams::default(), &Patch::Merge(&raise))
            .await,
    )
    .await;
    assert!(m.contains("resourcequotas"), "{m}");

    let relabel = json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}});
    let m = refused(
        &format!("{who}: relabel own namespace"),
        Api::<Namespace>::all(client.clone())
            .patch(&format!("{x}-shop-test"), &PatchParams::default(), &Patch::Merge(&relabel))
            .await,
    )
    .await;
    assert!(m.contains("namespaces"), "{m}");

    let m = refused(
        &format!("{who}: delete prod"),
        Api::<Namespace>::all(client.clone()).delete(&format!("{x}-shop-prod"), &DeleteParams::default()).await,
    )
    .await;
    assert!(m.contains("namespaces"), "{m}");
}

#[tokio::test]
async fn team_environments_hold_the_tenant_boundary_and_outlive_their_factory() {
    let p = Platform::serving(test_name!(), "platform/team/platform").await;
    let x = p.ctx.prefix.clone();
    p.repo.write("factories/shop.yaml", &factory("shop", &x)).expect("write");
    p.repo.write("factories/cart.yaml", &factory("cart", &x)).expect("write");
    p.repo.commit("two teams").expect("commit");
    p.create_factory(json!({"cluster": null})).await;
    p.wait_ready("True", "Reconciled").await;

    the_team_gets_its_three_environments_ready(&p).await;
    shared_defaults_access_and_quota_reach_each_environment(&p).await;
    let alice = members_and_the_team_account_stay_within_their_rights(&p).await;
    admission_guards_what_rbac_alone_cannot(&p, &alice).await;
    an_environment_dropped_from_the_spec_is_orphaned_not_deleted(&p).await;
    deleting_the_team_factory_never_deletes_its_permanent_environments(&p).await;
}

async fn the_team_gets_its_three_environments_ready(p: &Platform) {
    let x = p.ctx.prefix.clone();
    let client = p.ctx.client.clone();
    let factories: Api<Factory> = Api::all(client.clone());
    let shop_name = format!("{x}-shop");
    eventually("shop's three environments Ready", Duration::from_secs(90), || async {
        let f = factories.get(&shop_name).await?;
        let counts = f.status.and_then(|s| s.environments);
        anyhow::Ok(counts.filter(|c| c.total == 3 && c.ready == 3).map(|_| ()))
    })
    .await
    .expect("environments ready");
    let table = p.ctx.kubectl(&["get", "factory", &shop_name]).expect("kubectl get");
    assert!(table.lines().nth(1).is_some_and(|l| l.contains("Applications") && l.contains("True")), "{table}");
}

/// Shared defaults in every environment (labels and the factory-defaults ConfigMap), access per
/// environment and the prod quota override.
async fn shared_defaults_access_and_quota_reach_each_environment(p: &Platform) {
    let x = p.ctx.prefix.clone();
    let client = p.ctx.client.clone();
    for env in ["test", "stage", "prod"] {
        let ns = format!("{x}-shop-{env}");
        let labels =
            Api::<Namespace>::all(client.clone()).get(&ns).await.expect("ns").metadata.labels.unwrap_or_default();
        assert_eq!(labels.get("cost-center").map(String::as_str), Some("shop"), "{ns}");
        let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns).get("factory-defaults").await.expect("defaults");
        assert_eq!(cm.data.unwrap_or_default().get("team").map(String::as_str), Some("shop"));
    }

    let rb = Api::<RoleBinding>::namespaced(client.clone(), &format!("{x}-shop-test"))
        .get("factory-access-edit")
        .await
        .expect("edit");
    assert_eq!(rb.subjects.expect("subjects")[0].name, format!("{x}-team-shop"));
    Api::<RoleBinding>::namespaced(client.clone(), &format!("{x}-shop-prod"))
        .get("factory-access-view")
        .await
        .expect("view");
    let quota = Api::<ResourceQuota>::namespaced(client.clone(), &format!("{x}-shop-prod"))
        .get("environment")
        .await
        .expect("quota");
    assert_eq!(
        quota.spec.and_then(|s| s.hard).and_then(|h| h.get("requests.cpu").cloned()).map(|q| q.0),
        Some("8".into())
    );
}

/// The owner group may work in its own environment, and nowhere else; neither may the factory's
/// service account, which holds admin in its namespaces but cannot grant more than it holds.
async fn members_and_the_team_account_stay_within_their_rights(p: &Platform) -> Client {
    let x = p.ctx.prefix.clone();
    let alice = p.ctx.client_as_user("alice", &[&format!("{x}-team-shop")]).await.expect("alice");
    let cm: ConfigMap = object(json!({"metadata": {"name": "alice-config"}}));
    eventually("alice's edit rights", Duration::from_secs(30), || async {
        anyhow::Ok(
            Api::<ConfigMap>::namespaced(alice.clone(), &format!("{x}-shop-test"))
                .create(&PostParams::default(), &cm)
                .await
                .ok()
                .map(|_| ()),
        )
    })
    .await
    .expect("owner writes in own test environment");
    tries_to_cross("alice", &alice, &x).await;
    let tenant = p
        .ctx
        .client_as_service_account(factory_api::DEFAULT_TENANT_NAMESPACE, &format!("{x}-shop"))
        .await
        .expect("tenant");
    tries_to_cross("tenant", &tenant, &x).await;
    let escalate: RoleBinding = object(json!({"metadata": {"name": "escalate"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": format!("{x}-shop"), "namespace": factory_api::DEFAULT_TENANT_NAMESPACE}]}));
    let m = refused(
        "tenant: bind cluster-admin in own namespace",
        Api::<RoleBinding>::namespaced(tenant.clone(), &format!("{x}-shop-test"))
            .create(&PostParams::default(), &escalate)
            .await,
    )
    .await;
    assert!(m.contains("escalat") || m.contains("not currently held"), "{m}");

    alice
}

/// Native admission guards what RBAC alone cannot: the owner's `edit` would allow changing the
/// baseline network policy, and a cluster administrator could delete prod.
async fn admission_guards_what_rbac_alone_cannot(p: &Platform, alice: &Client) {
    let x = p.ctx.prefix.clone();
    let client = p.ctx.client.clone();
    let open = json!({"spec": {"policyTypes": []}});
    let netpol =
        Api::<k8s_openapi::api::networking::v1::NetworkPolicy>::namespaced(alice.clone(), &format!("{x}-shop-test"));
    let m = refused(
        "alice: weaken the baseline network policy",
        netpol.patch("default-deny", &PatchParams::default(), &Patch::Merge(&open)).await,
    )
    .await;
    assert!(m.contains("owned by factory-operator"), "{m}");
    let m = refused(
        "alice: delete the baseline network policy",
        netpol.delete("default-deny", &DeleteParams::default()).await,
    )
    .await;
    assert!(m.contains("owned by factory-operator"), "{m}");
    let m = refused(
        "admin: delete the protected prod namespace",
        Api::<Namespace>::all(client.clone()).delete(&format!("{x}-shop-prod"), &DeleteParams::default()).await,
    )
    .await;
    assert!(m.contains("protected permanent environment"), "{m}");
}

/// Removing prod from the spec (after unprotecting it, as the API demands) leaves it in place.
async fn an_environment_dropped_from_the_spec_is_orphaned_not_deleted(p: &Platform) {
    let x = p.ctx.prefix.clone();
    let client = p.ctx.client.clone();
    let factories: Api<Factory> = Api::all(client.clone());
    let shop_name = format!("{x}-shop");
    p.repo.write("factories/shop.yaml", &factory("shop-prod-unprotected", &x)).expect("write");
    p.repo.commit("unprotect prod").expect("commit");
    p.poke().await;
    p.wait_ready("True", "Reconciled").await;
    p.repo.write("factories/shop.yaml", &factory("shop-without-prod", &x)).expect("write");
    p.repo.commit("drop prod").expect("commit");
    p.poke().await;
    p.wait_ready("True", "Reconciled").await;
    let envs: Api<Environment> = Api::all(client.clone());
    let prod = format!("{x}-shop-prod");
    eventually("prod orphaned", Duration::from_secs(60), || async {
        let e = envs.get(&prod).await?;
        anyhow::Ok(e.status.filter(|s| s.orphaned).map(|_| ()))
    })
    .await
    .expect("orphaned, not deleted");
    assert!(Api::<Namespace>::all(client.clone()).get_opt(&prod).await.expect("get").is_some(), "prod namespace stays");
    eventually("the factory counts it as orphaned", Duration::from_secs(60), || async {
        let f = factories.get(&shop_name).await?;
        anyhow::Ok(f.status.and_then(|s| s.environments).filter(|c| c.total == 2 && c.orphaned == 1).map(|_| ()))
    })
    .await
    .expect("counted");
}

/// Deleting the team factory (by removing it from the platform repository) deletes its cicd
/// namespace but never its permanent environments.
async fn deleting_the_team_factory_never_deletes_its_permanent_environments(p: &Platform) {
    let x = p.ctx.prefix.clone();
    let client = p.ctx.client.clone();
    let factories: Api<Factory> = Api::all(client.clone());
    let shop_name = format!("{x}-shop");
    let envs: Api<Environment> = Api::all(client.clone());
    p.repo.remove("factories/shop.yaml").expect("rm");
    p.repo.commit("shop leaves").expect("commit");
    p.poke().await;
    p.wait_ready("True", "Reconciled").await;
    eventually("the shop factory gone", Duration::from_secs(60), || async {
        anyhow::Ok(factories.get_opt(&shop_name).await?.is_none().then_some(()))
    })
    .await
    .expect("factory pruned");
    for env in ["test", "stage", "prod"] {
        let ns = format!("{x}-shop-{env}");
        let live = Api::<Namespace>::all(client.clone()).get_opt(&ns).await.expect("get");
        assert!(live.is_some_and(|n| n.metadata.deletion_timestamp.is_none()), "{ns} must survive its factory");
        assert!(envs.get_opt(&ns).await.expect("get").is_some_and(|e| e.name_any() == ns), "Environment {ns} stays");
    }
}
