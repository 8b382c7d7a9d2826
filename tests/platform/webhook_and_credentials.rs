//! A signed push webhook reconciles the factories using that repository at once; a bad
//! signature is refused. Credentials are delivered into chosen environments, follow their
//! source, and are removed with their entry; no secret value reaches status or Events.

use std::time::{Duration, Instant};

use factory_api::{Environment, Factory};
use factory_testkit::operator::{WEBHOOK_SECRET, webhook_addr};
use factory_testkit::{eventually, http};
use futures::TryStreamExt;
use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use sha2::Sha256;

use factory_integration_tests::{test_name, testdata};

use crate::fixture::Platform;

fn sign(body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn a_signed_push_reconciles_at_once_and_a_bad_signature_is_refused() {
    let p = Platform::new(test_name!()).await;
    let x = p.ctx.prefix.clone();
    p.repo
        .write("cluster/cm.yaml", &testdata("platform/webhook_and_credentials/cluster/hooked.yaml", &[("prefix", &x)]))
        .expect("write");
    p.repo.commit("first").expect("commit");
    p.create_factory(json!({"factories": null, "environmentClasses": null})).await;
    p.wait_ready("True", "Reconciled").await;

    p.repo
        .write("cluster/cm.yaml", &testdata("platform/webhook_and_credentials/cluster/pushed.yaml", &[("prefix", &x)]))
        .expect("write");
    p.repo.commit("second").expect("commit");
    let payload = json!({"ref": "refs/heads/main", "repository": {"clone_url": p.http.url("platform"), "html_url": "https://example.invalid/x"}});
    let body = serde_json::to_vec(&payload).expect("json");

    // A wrong signature is refused and triggers nothing.
    let (status, text) = http::post(
        webhook_addr(),
        "/hooks/git",
        &[("X-Hub-Signature-256", sign(&body, "wrong")), ("X-GitHub-Event", "push".into())],
        &body,
    )
    .await
    .expect("post");
    assert_eq!(status, 401, "{text}");
    let (status, _) = http::post(webhook_addr(), "/hooks/git", &[], &body).await.expect("post");
    assert_eq!(status, 401, "unsigned payloads are refused");

    // The poll interval is 10 minutes: only the webhook can make this fast. The object's
    // creation is seen by a watch opened first (not by polling, which would add its interval).
    let cms: Api<ConfigMap> = Api::namespaced(p.ctx.client.clone(), &format!("{x}-hooked"));
    let config = watcher::Config::default().fields("metadata.name=pushed");
    let mut events = std::pin::pin!(watcher(cms, config));
    while !matches!(events.try_next().await.expect("watch"), Some(watcher::Event::InitDone)) {}
    let started = Instant::now();
    let (status, text) = http::post(
        webhook_addr(),
        "/hooks/git",
        &[("X-Hub-Signature-256", sign(&body, WEBHOOK_SECRET)), ("X-GitHub-Event", "push".into())],
        &body,
    )
    .await
    .expect("post");
    assert_eq!(status, 202, "{text}");
    assert!(text.contains(&p.name), "the factory using the repository is triggered: {text}");
    let applied = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.try_next().await.expect("watch") {
            if matches!(event, watcher::Event::Apply(_)) {
                return;
            }
        }
    })
    .await;
    applied.expect("the pushed object within 10 s of the webhook");
    let took = started.elapsed();
    eprintln!("webhook → object applied in {took:?}");
    // Alone it takes about 0.2 s; 2 s leaves room for CI's two busy cores and is still 300
    // times faster than the poll could be.
    assert!(took < Duration::from_secs(2), "webhook reconcile took {took:?}, more than 2 s");
}

#[tokio::test]
async fn credentials_are_delivered_updated_and_removed_without_leaking() {
    let p = Platform::serving(test_name!(), "common/platform-base").await;
    let x = p.ctx.prefix.clone();
    let client = p.ctx.client.clone();
    p.repo
        .write("factories/shop.yaml", &testdata("common/factories/shop-without-environments.yaml", &[("prefix", &x)]))
        .expect("write");
    p.repo.commit("team").expect("commit");
    // The source lives in the platform's own namespace, which tenants cannot read.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &p.system);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "shop-db"},
            "stringData": {"password": "hunter2-original"}}))
            .expect("secret"),
        )
        .await
        .expect("source secret");
    let credential = json!([{"name": "db", "from": {"namespace": p.system, "name": "shop-db"},
        "to": {"factory": format!("{x}-shop"), "environments": ["prod"]}}]);
    p.create_factory(json!({"cluster": null, "credentials": credential})).await;
    p.wait_ready("True", "Reconciled").await;
    let envs: Api<Environment> = Api::all(client.clone());
    for short in ["test", "prod"] {
        let name = format!("{x}-shop-{short}");
        let env: Environment =
            serde_json::from_value(json!({"apiVersion": "factories.dev/v1alpha1", "kind": "Environment",
            "metadata": {"name": name}, "spec": {"factory": format!("{x}-shop"), "namespace": name, "class": "base"}}))
            .expect("env");
        envs.create(&PostParams::default(), &env).await.expect("environment");
    }
    let prod: Api<Secret> = Api::namespaced(client.clone(), &format!("{x}-shop-prod"));
    let password =
        |s: Secret| s.data.and_then(|d| d.get("password").map(|b| String::from_utf8_lossy(&b.0).into_owned()));
    eventually("credential in prod", Duration::from_secs(60), || async {
        anyhow::Ok(prod.get_opt("db").await?.and_then(password).filter(|p| p == "hunter2-original"))
    })
    .await
    .expect("delivered");
    let test: Api<Secret> = Api::namespaced(client.clone(), &format!("{x}-shop-test"));
    eventually("test environment ready", Duration::from_secs(60), || async {
        let e = envs.get(&format!("{x}-shop-test")).await?;
        anyhow::Ok(
            e.status
                .is_some_and(|s| s.reconcile.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                .then_some(()),
        )
    })
    .await
    .expect("test ready");
    assert!(test.get_opt("db").await.expect("get").is_none(), "only the chosen environments get it");

    // An update of the source propagates without any other change.
    secrets
        .patch(
            "shop-db",
            &PatchParams::default(),
            &Patch::Merge(&json!({"stringData": {"password": "hunter2-rotated"}})),
        )
        .await
        .expect("rotate");
    eventually("rotated credential", Duration::from_secs(60), || async {
        anyhow::Ok(prod.get_opt("db").await?.and_then(password).filter(|p| p == "hunter2-rotated"))
    })
    .await
    .expect("propagated");

    // Removing the entry removes the copy.
    p.factories()
        .patch(&p.name, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"credentials": null}})))
        .await
        .expect("remove credential");
    eventually("copy removed", Duration::from_secs(60), || async {
        anyhow::Ok(prod.get_opt("db").await?.is_none().then_some(()))
    })
    .await
    .expect("removed");

    // No secret value anywhere in status or Events.
    let statuses = format!(
        "{:?} {:?}",
        Api::<Factory>::all(client.clone()).get(&p.name).await.expect("factory").status,
        envs.get(&format!("{x}-shop-prod")).await.expect("env").status
    );
    let events = Api::<Event>::all(client.clone()).list(&ListParams::default()).await.expect("events");
    let notes: String = events.items.iter().filter_map(|e| e.message.clone()).collect();
    for leaked in ["hunter2-original", "hunter2-rotated"] {
        assert!(!statuses.contains(leaked) && !notes.contains(leaked), "{leaked} leaked");
    }
}

#[tokio::test]
async fn a_team_push_triggers_its_own_factory_only() {
    let p = Platform::new(test_name!()).await;
    let x = p.ctx.prefix.clone();
    let team = |name: &str, url: &str| {
        testdata(
            "platform/webhook_and_credentials/factories/team-with-hook.yaml",
            &[("prefix", &x), ("name", name), ("url", url)],
        )
    };
    p.repo.write("factories/shop.yaml", &team("shop", "https://git.example.invalid/shop/cart.git")).expect("write");
    p.repo.write("factories/other.yaml", &team("other", "https://git.example.invalid/other/api.git")).expect("write");
    p.repo.commit("teams").expect("commit");
    p.create_factory(json!({"cluster": null})).await;
    p.wait_ready("True", "Reconciled").await;
    for (name, token) in [("shop", "shop-token"), ("other", "other-token")] {
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": "hook"}, "stringData": {"token": token}}))
                .expect("secret");
        Api::<Secret>::namespaced(p.ctx.client.clone(), &format!("{x}-{name}-cicd"))
            .create(&PostParams::default(), &secret)
            .await
            .expect("webhook secret");
    }
    let push = |url: &str| {
        serde_json::to_vec(&json!({"ref": "refs/heads/main", "repository": {"clone_url": url}})).expect("json")
    };
    let post = |path: String, body: Vec<u8>, key: &'static str| async move {
        let headers = [("X-Hub-Signature-256", sign(&body, key)), ("X-GitHub-Event", "push".into())];
        http::post(webhook_addr(), &path, &headers, &body).await.expect("post")
    };
    let shop_push = push("https://git.example.invalid/shop/cart.git");

    // Signed with shop's own secret, at shop's address: shop is reconciled.
    let (status, text) = post(format!("/hooks/git/{x}-shop"), shop_push.clone(), "shop-token").await;
    assert_eq!((status, text.contains(&format!("{x}-shop"))), (202, true), "{text}");
    // The same key reaches no other factory: not at another team's address…
    let other_push = push("https://git.example.invalid/other/api.git");
    let (status, text) = post(format!("/hooks/git/{x}-other"), other_push, "shop-token").await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("bad GitHub signature"), "{text}");
    // …not at the shared address…
    let (status, text) = post("/hooks/git".into(), shop_push, "shop-token").await;
    assert_eq!(status, 401, "{text}");
    // …and a push of a repository shop does not use, at shop's address, triggers nothing.
    let (status, text) = post(format!("/hooks/git/{x}-shop"), push(&p.http.url("platform")), "shop-token").await;
    assert_eq!((status, text.trim()), (202, "{\"triggered\":[]}"), "{text}");
}
