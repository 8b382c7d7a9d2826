//! Preview environments: created by a team member with namespaced rights alone, capped at
//! admission by a native object-count quota, built from their class with the application at
//! the requested ref, extended by the keep annotation, and removed with their namespace on
//! expiry or deletion — the finalizer released only once the namespace is gone.

use std::time::Duration;

use factory_api::PreviewEnvironment;
use factory_testkit::eventually;
use k8s_openapi::api::core::v1::{ConfigMap, LimitRange, Namespace};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use factory_integration_tests::{test_name, testdata};

use crate::fixture::{Apps, Platform};

fn preview(name: &str, extra: serde_json::Value) -> PreviewEnvironment {
    let mut spec = json!({"application": "cart", "ref": {"branch": "feature/login"}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(json!({"apiVersion": "factories.dev/v1alpha1", "kind": "PreviewEnvironment",
        "metadata": {"name": name}, "spec": spec}))
    .expect("preview")
}

fn soon(seconds: i64) -> String {
    (k8s_openapi::jiff::Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_secs(seconds)).to_string()
}

/// Makes the platform build team factory `<prefix>-shop` with `previews` and the application
/// `cart` of `apps`; waits for the platform.
async fn shop_with_cart(p: &Platform, apps: &Apps, previews: &str) {
    let x = &p.ctx.prefix;
    let shop = testdata(
        "platform/previews/factories/shop.yaml",
        &[("prefix", x), ("previews", previews), ("url", &apps.url("cart"))],
    );
    let classes = json!([{"name": "base", "path": "classes/base/"},
        {"name": "preview", "path": "classes/preview/", "extends": ["base"]}]);
    p.start_with(&[("shop", &shop)], json!({"cluster": null, "environmentClasses": classes})).await;
}

#[tokio::test]
async fn previews_live_within_their_limits_and_leave_nothing_behind() {
    let p = Platform::serving(test_name!(), "platform/previews/platform").await;
    let x = p.ctx.prefix.clone();
    let apps = Apps::serve().await;
    let main = testdata("platform/previews/cart/configmap-cart-config-main.yaml", &[]);
    let cart = apps.repo("cart", &[("deploy/base/config.yaml", &main)]);
    cart.branch("feature/login").expect("branch");
    cart.write(
        "deploy/base/config.yaml",
        &testdata("platform/previews/cart/configmap-cart-config-feature-login.yaml", &[]),
    )
    .expect("write");
    let feature = cart.commit("login work").expect("commit");
    shop_with_cart(&p, &apps, "{class: preview, ttl: 1h, max: 2}").await;

    // A team member creates previews with namespaced rights in the cicd namespace only.
    let cicd = format!("{x}-shop-cicd");
    let alice = p.ctx.client_as_user("alice", &[&format!("{x}-team")]).await.expect("alice");
    let mine: Api<PreviewEnvironment> = Api::namespaced(alice.clone(), &cicd);
    eventually("alice may create a preview", Duration::from_secs(60), || async {
        mine.create(&PostParams::default(), &preview("login", json!({}))).await.map(|_| Some(()))
    })
    .await
    .expect("created by the owner");
    let admin: Api<PreviewEnvironment> = Api::namespaced(p.ctx.client.clone(), &cicd);
    let ready = eventually("login Ready", Duration::from_secs(90), || async {
        let pv = admin.get("login").await?;
        anyhow::Ok(
            pv.status.filter(|s| s.reconcile.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
        )
    })
    .await
    .expect("preview ready");
    let ns = ready.namespace.clone().expect("namespace on status");
    assert_eq!(ns, format!("{x}-shop-pv-login"));
    assert!(
        ready.source_revision.as_deref().is_some_and(|r| r == format!("feature/login@sha1:{feature}")),
        "{:?}",
        ready.source_revision
    );
    assert!(ready.expires_at.is_some());
    let client = p.ctx.client.clone();
    Api::<LimitRange>::namespaced(client.clone(), &ns).get("defaults").await.expect("base class in the preview");
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns).get("cart-config").await.expect("app config");
    assert_eq!(
        cm.data.unwrap_or_default().get("branch").map(String::as_str),
        Some("feature-login"),
        "the preview's ref is deployed"
    );
    let labels = Api::<Namespace>::all(client.clone()).get(&ns).await.expect("ns").metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("factories.dev/namespace-kind").map(String::as_str), Some("preview"));

    // The cap is enforced at admission, with the API server's own message.
    mine.create(&PostParams::default(), &preview("short", json!({"expiresAt": soon(6)})))
        .await
        .expect("second preview");
    let third = mine.create(&PostParams::default(), &preview("third", json!({}))).await;
    match third {
        Err(kube::Error::Api(s)) => assert!(s.code == 403 && s.message.contains("exceeded quota"), "{s:?}"),
        other => panic!("a preview over the cap must be refused at admission: {other:?}"),
    }

    // Expiry removes the preview and its namespace; the finalizer waits for the namespace.
    let short_ns = format!("{x}-shop-pv-short");
    eventually("short's namespace exists", Duration::from_secs(60), || async {
        anyhow::Ok(Api::<Namespace>::all(client.clone()).get_opt(&short_ns).await?.map(|_| ()))
    })
    .await
    .expect("short built");
    eventually("short expired and gone", Duration::from_secs(90), || async {
        let gone_ns = Api::<Namespace>::all(client.clone()).get_opt(&short_ns).await?.is_none();
        let gone_pv = admin.get_opt("short").await?.is_none();
        anyhow::Ok((gone_ns && gone_pv).then_some(()))
    })
    .await
    .expect("expired");

    // The keep annotation extends an expiry that has passed.
    let kept = {
        let mut pv = preview("kept", json!({"expiresAt": soon(3)}));
        pv.metadata.annotations = Some([("factories.dev/keep".to_string(), "2h".to_string())].into());
        pv
    };
    // kube-controller-manager releases the expired preview's quota asynchronously: retry until it has.
    eventually("room for another preview", Duration::from_secs(60), || async {
        match mine.create(&PostParams::default(), &kept).await {
            Ok(_) => anyhow::Ok(Some(())),
            Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("exceeded quota") => anyhow::Ok(None),
            Err(e) => Err(e.into()),
        }
    })
    .await
    .expect("kept preview");
    eventually("kept Ready", Duration::from_secs(60), || async {
        let pv = admin.get("kept").await?;
        anyhow::Ok(
            pv.status.filter(|s| s.reconcile.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
        )
    })
    .await
    .expect("kept ready");
    tokio::time::sleep(Duration::from_secs(5)).await; // past its own expiresAt, by design of this check
    let still = admin.get("kept").await.expect("kept survives its expiresAt");
    let expires = still.status.and_then(|s| s.expires_at).expect("expiry");
    assert!(
        expires.0 > k8s_openapi::jiff::Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_secs(3600),
        "{expires:?}"
    );

    // Deleting a preview removes its namespace, then the preview.
    mine.delete("login", &DeleteParams::default()).await.expect("delete");
    eventually("login and its namespace gone", Duration::from_secs(90), || async {
        let gone_ns = Api::<Namespace>::all(client.clone()).get_opt(&ns).await?.is_none();
        let gone_pv = admin.get_opt("login").await?.is_none();
        anyhow::Ok((gone_ns && gone_pv).then_some(()))
    })
    .await
    .expect("deleted");
}

#[tokio::test]
async fn branches_matching_the_pattern_get_previews_that_go_with_the_branch() {
    let p = Platform::serving(test_name!(), "platform/previews/platform").await;
    let x = p.ctx.prefix.clone();
    let apps = Apps::serve().await;
    let cart =
        apps.repo("cart", &[("deploy/base/config.yaml", &testdata("common/cart/configmap-cart-config.yaml", &[]))]);
    cart.branch("feature/search").expect("branch");
    cart.checkout("main").expect("checkout");
    cart.branch("hotfix/x").expect("branch");
    shop_with_cart(&p, &apps, "{class: preview, branches: 'feature/*'}").await;

    let cicd = format!("{x}-shop-cicd");
    let previews: Api<PreviewEnvironment> = Api::namespaced(p.ctx.client.clone(), &cicd);
    let name = factory_core::names::branch_preview_name("cart", "feature/search");
    let ready = eventually("a preview for feature/search", Duration::from_secs(90), || async {
        let pv = previews.get_opt(&name).await?;
        anyhow::Ok(
            pv.and_then(|pv| pv.status)
                .filter(|s| s.reconcile.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
        )
    })
    .await
    .expect("branch preview ready");
    assert!(ready.source_revision.is_some_and(|r| r.starts_with("feature/search@sha1:")));
    let all = previews.list(&Default::default()).await.expect("list");
    assert_eq!(all.items.len(), 1, "hotfix/x does not match feature/*");
    let factories: Api<factory_api::Factory> = Api::all(p.ctx.client.clone());
    eventually("the factory counts the preview", Duration::from_secs(60), || async {
        let f = factories.get(&format!("{x}-shop")).await?;
        anyhow::Ok(f.status.and_then(|s| s.previews).filter(|c| c.total == 1 && c.ready == 1).map(|_| ()))
    })
    .await
    .expect("counted");

    // The branch disappears: so do the preview and its namespace.
    cart.delete_branch("feature/search").expect("delete branch");
    let patch = json!({"metadata": {"annotations": {"factories.dev/requested-at": "branch-deleted"}}});
    factories
        .patch(&format!("{x}-shop"), &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .expect("poke");
    let ns = format!("{x}-shop-pv-{name}");
    eventually("the preview and its namespace gone with the branch", Duration::from_secs(90), || async {
        let gone_pv = previews.get_opt(&name).await?.is_none();
        let gone_ns = Api::<Namespace>::all(p.ctx.client.clone()).get_opt(&ns).await?.is_none();
        anyhow::Ok((gone_pv && gone_ns).then_some(()))
    })
    .await
    .expect("removed");
}
