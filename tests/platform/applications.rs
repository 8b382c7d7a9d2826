//! Application repositories are applied into the team's environments as the team's service
//! account: ordinary objects land; a cluster-scoped object, an escalating binding or a change
//! to the platform's baseline fails that revision with the object named, nothing of it applied.

use std::time::Duration;

use factory_api::Environment;
use factory_testkit::eventually;
use factory_testkit::git::Repo;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::json;

use factory_integration_tests::{test_name, testdata};

use crate::fixture::{Apps, Platform};

async fn app_error(envs: &Api<Environment>, name: &str, expected: &[&str]) -> String {
    let result = eventually(&format!("{name}: application error {expected:?}"), Duration::from_secs(60), || async {
        let e = envs.get(name).await?;
        let error = e.status.and_then(|s| s.applications.into_iter().next()).map(|a| a.error).unwrap_or_default();
        anyhow::Ok(expected.iter().all(|x| error.contains(x)).then_some(error))
    })
    .await;
    match result {
        Ok(error) => error,
        Err(e) => panic!(
            "{e}\nlast status: {:#?}",
            envs.get(name)
                .await
                .ok()
                .and_then(|e| e.status)
                .map(|s| (s.reconcile.conditions, s.applications.into_iter().map(|a| a.error).collect::<Vec<_>>()))
        ),
    }
}

#[tokio::test]
async fn applications_are_applied_as_the_team_and_refused_objects_fail_cleanly() {
    let p = Platform::serving(test_name!(), "platform/applications/platform").await;
    let x = p.ctx.prefix.clone();
    let apps = Apps::serve().await;
    let cart = apps.repo(
        "cart",
        &[
            ("deploy/base/config.yaml", &testdata("platform/applications/cart/configmap-cart-config.yaml", &[])),
            (
                "deploy/environments/prod/extra.yaml",
                &testdata("platform/applications/cart/configmap-cart-prod-only.yaml", &[]),
            ),
        ],
    );
    let shop = testdata("platform/applications/factories/shop.yaml", &[("prefix", &x), ("url", &apps.url("cart"))]);
    p.start_with(&[("shop", &shop)], json!({"cluster": null})).await;

    cart_is_applied_in_each_environment_as_the_team(&p).await;
    a_cluster_scoped_object_is_refused_and_nothing_of_its_revision_applied(&p, &cart).await;
    escalation_and_weakening_the_baseline_are_refused(&p, &cart).await;
    a_fixed_revision_is_applied_again(&p, &cart).await;
    a_signed_push_reaches_every_environment_at_once(&p, &cart, &apps.url("cart")).await;
}

/// The ConfigMaps of `namespace`.
fn cms(p: &Platform, namespace: &str) -> Api<ConfigMap> {
    Api::namespaced(p.ctx.client.clone(), namespace)
}

/// Base plus each environment's own layer, labelled as the application's.
async fn cart_is_applied_in_each_environment_as_the_team(p: &Platform) {
    let x = &p.ctx.prefix;
    let (test_ns, prod_ns) = (format!("{x}-shop-test"), format!("{x}-shop-prod"));
    eventually("cart's config in both environments", Duration::from_secs(90), || async {
        let t = cms(p, &test_ns).get_opt("cart-config").await?;
        let p = cms(p, &prod_ns).get_opt("cart-prod-only").await?;
        anyhow::Ok(t.zip(p).map(|(t, _)| t))
    })
    .await
    .map(|t| assert_eq!(t.data.unwrap_or_default().get("env").map(String::as_str), Some("test")))
    .expect("applied");
    assert!(cms(p, &test_ns).get_opt("cart-prod-only").await.expect("get").is_none(), "prod-only config stays in prod");
    let cm = cms(p, &test_ns).get("cart-config").await.expect("cm");
    assert_eq!(cm.labels().get("factories.dev/applied-by").map(String::as_str), Some("application.cart"));
}

/// A cluster-scoped object: refused by RBAC as the team; the good object beside it is not
/// applied.
async fn a_cluster_scoped_object_is_refused_and_nothing_of_its_revision_applied(p: &Platform, cart: &Repo) {
    let x = &p.ctx.prefix;
    let test_ns = format!("{x}-shop-test");
    let envs: Api<Environment> = Api::all(p.ctx.client.clone());
    cart.write(
        "deploy/base/escape.yaml",
        &testdata("platform/applications/cart/escape-clusterrole.yaml", &[("prefix", x)]),
    )
    .expect("write");
    cart.commit("escape").expect("commit");
    crate::fixture::poke(&envs, &test_ns).await;
    let error =
        app_error(&envs, &test_ns, &["Forbidden", &format!("ClusterRole {x}-cart-escape"), "deploy/base/escape.yaml"])
            .await;
    assert!(error.contains("system:serviceaccount:"), "refused as the team's account: {error}");
    assert!(
        cms(p, &test_ns).get_opt("cart-new").await.expect("get").is_none(),
        "nothing of a refused revision is applied"
    );
    let env = envs.get(&test_ns).await.expect("env");
    assert!(
        env.status
            .expect("status")
            .reconcile
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == "Forbidden")
    );
}

/// Binding cluster-admin inside its own namespace (escalation) and overwriting the platform's
/// baseline network policy (the admission policy): each refused, named in the status.
async fn escalation_and_weakening_the_baseline_are_refused(p: &Platform, cart: &Repo) {
    let x = &p.ctx.prefix;
    let test_ns = format!("{x}-shop-test");
    let envs: Api<Environment> = Api::all(p.ctx.client.clone());
    let refused = [
        ("escape-rolebinding-to-cluster-admin.yaml", "escalate", ["Forbidden", "RoleBinding", "escalate"]),
        (
            "escape-networkpolicy-default-deny.yaml",
            "weaken the baseline",
            ["Forbidden", "NetworkPolicy", "owned by factory-operator"],
        ),
    ];
    for (fixture, message, expected) in refused {
        let content = testdata(&format!("platform/applications/cart/{fixture}"), &[]);
        cart.write("deploy/base/escape.yaml", &content).expect("write");
        cart.commit(message).expect("commit");
        crate::fixture::poke(&envs, &test_ns).await;
        app_error(&envs, &test_ns, &expected).await;
    }
}

/// Fixed: applied again, and the objects of the refused revisions never appeared.
async fn a_fixed_revision_is_applied_again(p: &Platform, cart: &Repo) {
    let x = &p.ctx.prefix;
    let test_ns = format!("{x}-shop-test");
    let envs: Api<Environment> = Api::all(p.ctx.client.clone());
    cart.remove("deploy/base/escape.yaml").expect("rm");
    cart.commit("fixed").expect("commit");
    crate::fixture::poke(&envs, &test_ns).await;
    eventually("cart healthy again", Duration::from_secs(60), || async {
        let e = envs.get(&test_ns).await?;
        let ok = e.status.is_some_and(|s| {
            s.applications.iter().all(|a| a.error.is_empty())
                && s.reconcile.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
        });
        anyhow::Ok(ok.then_some(()))
    })
    .await
    .expect("recovered");
}

/// A signed push webhook for the application repository reaches its environments at once.
async fn a_signed_push_reaches_every_environment_at_once(p: &Platform, cart: &Repo, url: &str) {
    let x = &p.ctx.prefix;
    let (test_ns, prod_ns) = (format!("{x}-shop-test"), format!("{x}-shop-prod"));
    cart.write("deploy/base/config.yaml", &testdata("platform/applications/cart/configmap-cart-config-v2.yaml", &[]))
        .expect("write");
    cart.commit("version 2").expect("commit");
    let body = serde_json::to_vec(&json!({"ref": "refs/heads/main", "repository": {"clone_url": url}})).expect("json");
    let signature = {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(factory_testkit::operator::WEBHOOK_SECRET.as_bytes())
            .expect("key");
        mac.update(&body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    let (code, text) = factory_testkit::http::post(
        factory_testkit::operator::webhook_addr(),
        "/hooks/git",
        &[("X-Hub-Signature-256", signature)],
        &body,
    )
    .await
    .expect("webhook");
    assert_eq!(code, 202, "{text}");
    eventually("version 2 in test and prod", Duration::from_secs(10), || async {
        let t = cms(p, &test_ns).get("cart-config").await?.data.unwrap_or_default();
        let p = cms(p, &prod_ns).get("cart-config").await?.data.unwrap_or_default();
        anyhow::Ok(
            (t.get("version").map(String::as_str) == Some("2") && p.get("version").map(String::as_str) == Some("2"))
                .then_some(()),
        )
    })
    .await
    .expect("the push reached both environments");
}

use kube::ResourceExt;
