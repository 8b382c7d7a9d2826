//! Previews stay previews — only the classes and the lifetime the platform allows — and
//! serve the team they are for.

use std::time::Duration;

use factory_api::PreviewEnvironment;
use factory_testkit::eventually;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Pod, ResourceQuota};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::world::{World, allowed, object, refused};

/// Creates preview `name` of cart at main as alice, with `spec` and `annotations` added.
pub async fn create(w: &World, name: &str, spec: serde_json::Value, annotations: serde_json::Value) {
    let mut full = json!({"application": "cart", "ref": {"branch": "main"}});
    if let (Some(target), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
        target.extend(extra.clone());
    }
    let preview: PreviewEnvironment =
        object(json!({"apiVersion": "factories.dev/v1alpha1", "kind": "PreviewEnvironment",
        "metadata": {"name": name, "annotations": annotations}, "spec": full}));
    allowed(
        &format!("alice creates preview {name}"),
        Api::<PreviewEnvironment>::namespaced(w.alice.clone(), &w.ns("cicd"))
            .create(&PostParams::default(), &preview)
            .await,
    );
}

/// Waits until preview `name`'s Ready condition has `status` and its message contains `text`.
pub async fn wait(w: &World, name: &str, status: &str, text: &str) -> PreviewEnvironment {
    let api = Api::<PreviewEnvironment>::namespaced(w.admin(), &w.ns("cicd"));
    let result =
        eventually(&format!("preview {name} Ready={status} saying {text:?}"), Duration::from_secs(90), || async {
            let p = api.get(name).await?;
            let ready = p.status.as_ref().and_then(|s| s.reconcile.conditions.iter().find(|c| c.type_ == "Ready"));
            anyhow::Ok(ready.is_some_and(|c| c.status == status && c.message.contains(text)).then_some(p))
        })
        .await;
    match result {
        Ok(p) => p,
        Err(e) => panic!("{e}\nlast status: {:#?}", api.get(name).await.ok().and_then(|p| p.status)),
    }
}

fn lifetime(p: &PreviewEnvironment) -> Option<SignedDuration> {
    let created = p.metadata.creation_timestamp.as_ref()?.0;
    let expires: Timestamp = p.status.as_ref()?.expires_at.as_ref()?.0;
    Some(expires.duration_since(created))
}

async fn poke(w: &World, name: &str) {
    let patch = json!({"metadata": {"annotations": {"factories.dev/requested-at": Timestamp::now().to_string()}}});
    Api::<PreviewEnvironment>::namespaced(w.admin(), &w.ns("cicd"))
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("poke");
}

#[tokio::test]
async fn previews_take_only_the_classes_and_lifetime_allowed_and_serve_their_team() {
    let w = World::new("previews_take_only_the_classes_and_lifetime_allowed_and_serve_their_team", "").await;
    let x = w.x.clone();
    let max = SignedDuration::from_hours(48);

    // The factory's preview class: built, and alice may work inside it.
    create(&w, "ok", json!({}), json!({})).await;
    wait(&w, "ok", "True", "is ready").await;
    let ns = format!("{x}-shop-pv-ok");
    allowed("the preview class's quota", Api::<ResourceQuota>::namespaced(w.admin(), &ns).get("preview-quota").await);
    allowed(
        "alice lists pods in her preview",
        Api::<Pod>::namespaced(w.alice.clone(), &ns).list(&ListParams::default()).await,
    );
    allowed(
        "alice reads events in her preview",
        Api::<Event>::namespaced(w.alice.clone(), &ns).list(&ListParams::default()).await,
    );
    let cm: ConfigMap = object(json!({"metadata": {"name": "tweak"}}));
    allowed(
        "alice changes her preview (edit)",
        Api::<ConfigMap>::namespaced(w.alice.clone(), &ns).create(&PostParams::default(), &cm).await,
    );
    let m = refused(
        "alice's edit stops at her preview's quota",
        Api::<ResourceQuota>::namespaced(w.alice.clone(), &ns)
            .patch("preview-quota", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"hard": {"pods": "500"}}})))
            .await,
    );
    assert!(m.contains("cannot patch resource \"resourcequotas\""), "{m}");

    // Another class: refused, naming the allowed ones; nothing is built.
    create(&w, "wide", json!({"class": "wide"}), json!({})).await;
    let refusal = wait(&w, "wide", "False", "is not allowed").await;
    let ready = refusal
        .status
        .as_ref()
        .and_then(|s| s.reconcile.conditions.iter().find(|c| c.type_ == "Ready"))
        .cloned()
        .expect("Ready");
    assert_eq!(ready.reason, "InvalidSpec");
    assert!(
        ready
            .message
            .contains(&format!("class wide is not allowed for previews of factory {x}-shop (allowed: preview)")),
        "{}",
        ready.message
    );
    assert!(
        Api::<Namespace>::all(w.admin()).get_opt(&format!("{x}-shop-pv-wide")).await.expect("get").is_none(),
        "a refused preview builds nothing"
    );
    create(&w, "base", json!({"class": "base"}), json!({})).await;
    wait(
        &w,
        "base",
        "False",
        &format!("class base is not allowed for previews of factory {x}-shop (allowed: preview)"),
    )
    .await;

    // Suspending a preview cannot keep it past its expiry.
    let soon = (Timestamp::now() + SignedDuration::from_secs(8)).to_string();
    create(&w, "paused", json!({"suspend": true, "expiresAt": soon}), json!({})).await;
    let api = Api::<PreviewEnvironment>::namespaced(w.admin(), &w.ns("cicd"));
    eventually("the suspended preview expires and goes", Duration::from_secs(60), || async {
        anyhow::Ok(api.get_opt("paused").await?.is_none().then_some(()))
    })
    .await
    .expect("expired while suspended");

    // Lifetimes past the platform's maxTTL (48h) are cut to it, and say so.
    create(&w, "forever", json!({}), json!({"factories.dev/keep": "forever"})).await;
    let forever = wait(&w, "forever", "True", "keep: forever is not allowed here").await;
    assert_eq!(lifetime(&forever), Some(max), "{:?}", forever.status);
    create(&w, "long", json!({"ttl": "720h"}), json!({"factories.dev/keep": "100h"})).await;
    let long = wait(&w, "long", "True", "previews here live at most 48h").await;
    assert_eq!(lifetime(&long), Some(max), "{:?}", long.status);
    create(&w, "short", json!({"ttl": "2h"}), json!({})).await;
    let short = wait(&w, "short", "True", "is ready").await;
    assert_eq!(lifetime(&short), Some(SignedDuration::from_hours(2)), "within maxTTL: as asked");
    // `kubectl get` shows when a preview expires (a "date" column printed <invalid> for any future time).
    let table = w.p.ctx.kubectl(&["get", "previewenvironments", "short", "-n", &w.ns("cicd")]).expect("kubectl get");
    let expires =
        short.status.as_ref().and_then(|s| s.expires_at.as_ref()).map(|t| t.0.to_string()).unwrap_or_default();
    assert!(table.contains("EXPIRES") && table.contains(&expires) && !table.contains("<invalid>"), "{table}");

    // The same previews where the platform allows them: the refusals above were the policy's.
    w.edit_team("previews: {maxTTL: 48h}", "previews: {maxTTL: 48h, classes: [preview, wide], allowForever: true}")
        .await;
    for name in ["wide", "forever"] {
        poke(&w, name).await;
    }
    wait(&w, "wide", "True", "is ready").await;
    allowed(
        "the wide class's baseline",
        Api::<ConfigMap>::namespaced(w.admin(), &format!("{x}-shop-pv-wide")).get("no-quota-here").await,
    );
    let api = Api::<PreviewEnvironment>::namespaced(w.admin(), &w.ns("cicd"));
    eventually("forever, now allowed, never expires", Duration::from_secs(60), || async {
        let p = api.get("forever").await?;
        anyhow::Ok(p.status.is_some_and(|s| s.expires_at.is_none()).then_some(()))
    })
    .await
    .expect("forever allowed");
}
