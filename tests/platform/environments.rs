//! Environment classes: every environment namespace gets its class's baseline (and what the
//! class extends) from the platform repository; class changes propagate; drift is corrected
//! or, with `driftPolicy: Report`, reported.

use std::time::Duration;

use factory_api::Environment;
use factory_testkit::eventually;
use k8s_openapi::api::core::v1::{ConfigMap, LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use factory_integration_tests::{Tree, test_name, testdata, testdata_tree};

use crate::fixture::Platform;

/// The classes `base` and `prod` (which the tests make extend `base`).
fn classes() -> Tree {
    testdata_tree("platform/environments/classes-base-and-prod", &[])
}

async fn environment(p: &Platform, short: &str, class: &str, extra: serde_json::Value) -> String {
    let x = &p.ctx.prefix;
    let name = format!("{x}-shop-{short}");
    let mut spec = json!({"factory": format!("{x}-shop"), "namespace": name, "class": class});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    let env: Environment =
        serde_json::from_value(json!({"apiVersion": "factories.dev/v1alpha1", "kind": "Environment",
        "metadata": {"name": name}, "spec": spec}))
        .expect("environment");
    Api::<Environment>::all(p.ctx.client.clone())
        .create(&PostParams::default(), &env)
        .await
        .expect("create environment");
    name
}

/// A team factory `<prefix>-shop` in git, and the platform factory with classes `base` and
/// `class` (at `path`, extending base), Ready.
async fn with_team_and_classes(p: &Platform, class: &str, path: &str) {
    let x = &p.ctx.prefix;
    p.repo
        .write("factories/shop.yaml", &testdata("common/factories/shop-without-environments.yaml", &[("prefix", x)]))
        .expect("write");
    p.repo.commit("team factory").expect("commit");
    p.create_factory(json!({"cluster": null, "environmentClasses": [
        {"name": "base", "path": "classes/base/"},
        {"name": class, "path": path, "extends": ["base"]}]}))
        .await;
    p.wait_ready("True", "Reconciled").await;
}

async fn wait_env(p: &Platform, name: &str, type_: &str, status: &str, reason: &str) -> Environment {
    let api: Api<Environment> = Api::all(p.ctx.client.clone());
    let result = eventually(&format!("{name} {type_}={status} ({reason})"), Duration::from_secs(60), || async {
        let env = api.get(name).await?;
        let ok = env.status.as_ref().is_some_and(|s| {
            s.reconcile.observed_generation == env.metadata.generation
                && s.reconcile.conditions.iter().any(|c| c.type_ == type_ && c.status == status && c.reason == reason)
        });
        anyhow::Ok(ok.then_some(env))
    })
    .await;
    match result {
        Ok(env) => env,
        Err(e) => panic!("{e}\nlast status: {:#?}", api.get(name).await.ok().and_then(|e| e.status)),
    }
}

#[tokio::test]
async fn environments_get_their_class_baseline_and_follow_the_platform() {
    let p = Platform::serving(test_name!(), "platform/environments/classes-base-and-prod").await;
    with_team_and_classes(&p, "prod", "classes/prod/").await;

    let envs = each_environment_gets_its_class_its_labels_and_the_teams_rights(&p).await;
    a_class_change_in_git_reaches_every_environment_of_the_class(&p, &envs).await;
    drift_is_corrected_or_reported_as_each_environment_asks(&p, &envs).await;
    the_operator_is_ready_and_the_drift_gauge_goes_with_its_environment(&p, &envs).await;
}

/// The environments of the scenario: `test` (class base) and `prod` (class prod, protected,
/// `driftPolicy: Report`).
struct Envs {
    test: String,
    prod: String,
}

/// The value of `key` in the class's `platform-defaults` ConfigMap in `env`.
async fn platform_defaults(p: &Platform, env: &str, key: &str) -> Option<String> {
    let api: Api<ConfigMap> = Api::namespaced(p.ctx.client.clone(), env);
    api.get("platform-defaults").await.expect("configmap").data.unwrap_or_default().get(key).cloned()
}

/// An environment of an undefined class stalls naming it; the others get their namespace
/// labels, base objects with the class's own versions winning, and the team's rights.
async fn each_environment_gets_its_class_its_labels_and_the_teams_rights(p: &Platform) -> Envs {
    let x = p.ctx.prefix.clone();
    let test = environment(p, "test", "base", json!({})).await;
    let prod = environment(p, "prod", "prod", json!({"protected": true, "driftPolicy": "Report"})).await;
    let missing = environment(p, "other", "gold", json!({})).await;
    wait_env(p, &test, "Ready", "True", "Reconciled").await;
    wait_env(p, &prod, "Ready", "True", "Reconciled").await;
    let stalled = wait_env(p, &missing, "Stalled", "True", "InvalidSpec").await;
    let message = &stalled
        .status
        .expect("status")
        .reconcile
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("ready")
        .message
        .clone();
    assert!(message.contains("class gold is not defined"), "{message}");

    let client = p.ctx.client.clone();
    let ns = Api::<Namespace>::all(client.clone()).get(&prod).await.expect("prod namespace");
    let labels = ns.metadata.labels.expect("labels");
    for (k, v) in [
        ("pod-security.kubernetes.io/enforce", "restricted"),
        ("factories.dev/factory", &format!("{x}-shop")),
        ("factories.dev/environment", "prod"),
        ("factories.dev/class", "prod"),
        ("factories.dev/protected", "true"),
        ("factories.dev/namespace-kind", "permanent"),
        ("app.kubernetes.io/managed-by", "factory-operator"),
    ] {
        assert_eq!(labels.get(k).map(String::as_str), Some(v), "label {k} on {prod}");
    }
    // Base objects everywhere; prod's own versions win where it overrides.
    for env in [&test, &prod] {
        Api::<LimitRange>::namespaced(client.clone(), env).get("defaults").await.expect("limit range");
        Api::<NetworkPolicy>::namespaced(client.clone(), env).get("default-deny").await.expect("network policy");
        let rb =
            Api::<RoleBinding>::namespaced(client.clone(), env).get("factory-tenant").await.expect("tenant rights");
        let subject = rb.subjects.expect("subjects").remove(0);
        assert_eq!(
            (subject.namespace.as_deref(), subject.name),
            (Some(factory_api::DEFAULT_TENANT_NAMESPACE), format!("{x}-shop")),
            "the team's account lives out of its members' reach"
        );
    }
    let quota = |env: String| {
        let api: Api<ResourceQuota> = Api::namespaced(client.clone(), &env);
        async move {
            api.get("environment")
                .await
                .expect("quota")
                .spec
                .and_then(|s| s.hard)
                .and_then(|h| h.get("requests.cpu").cloned())
        }
    };
    assert_eq!(quota(test.clone()).await.map(|q| q.0), Some("4".into()));
    assert_eq!(quota(prod.clone()).await.map(|q| q.0), Some("16".into()));
    assert_eq!(platform_defaults(p, &test, "environment").await.as_deref(), Some("test"));
    assert_eq!(platform_defaults(p, &prod, "tier").await.as_deref(), Some("critical"));

    Envs { test, prod }
}

async fn a_class_change_in_git_reaches_every_environment_of_the_class(p: &Platform, envs: &Envs) {
    let (client, test, prod) = (p.ctx.client.clone(), &envs.test, &envs.prod);
    p.repo
        .write("classes/base/limits.yaml", &testdata("platform/environments/limits-smaller-cpu.yaml", &[]))
        .expect("write");
    p.repo.commit("smaller default cpu").expect("commit");
    p.poke().await;
    for env in [test, prod] {
        let api: Api<LimitRange> = Api::namespaced(client.clone(), env);
        eventually(&format!("new limits in {env}"), Duration::from_secs(60), || async {
            let lr = api.get("defaults").await?;
            let cpu = lr
                .spec
                .and_then(|s| s.limits.into_iter().next())
                .and_then(|l| l.default)
                .and_then(|d| d.get("cpu").cloned());
            anyhow::Ok((cpu.map(|c| c.0) == Some("250m".into())).then_some(()))
        })
        .await
        .expect("class change propagated");
    }
}

/// Drift: corrected in test (`Correct`, the default), reported and left in prod (`Report`).
async fn drift_is_corrected_or_reported_as_each_environment_asks(p: &Platform, envs: &Envs) {
    let (client, test, prod) = (p.ctx.client.clone(), &envs.test, &envs.prod);
    let tamper = json!({"data": {"tier": "tampered"}});
    for env in [test, prod] {
        Api::<ConfigMap>::namespaced(client.clone(), env)
            .patch("platform-defaults", &PatchParams::default(), &Patch::Merge(&tamper))
            .await
            .expect("tamper");
    }
    let poke = json!({"metadata": {"annotations": {"factories.dev/requested-at": "drift"}}});
    for env in [test, prod] {
        Api::<Environment>::all(client.clone())
            .patch(env, &PatchParams::default(), &Patch::Merge(&poke))
            .await
            .expect("poke");
    }
    let drifted = wait_env(p, prod, "Drifted", "True", "DriftDetected").await;
    let message = drifted
        .status
        .expect("status")
        .reconcile
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Drifted")
        .expect("drifted")
        .message;
    assert!(message.contains("ConfigMap") && message.contains("platform-defaults"), "{message}");
    assert_eq!(platform_defaults(p, prod, "tier").await.as_deref(), Some("tampered"), "Report leaves drift in place");
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), test);
    eventually("drift corrected in test", Duration::from_secs(30), || async {
        let data = api.get("platform-defaults").await?.data.unwrap_or_default();
        anyhow::Ok((data.get("tier").map(String::as_str) == Some("standard")).then_some(()))
    })
    .await
    .expect("Correct puts it back");
}

/// Ready: the caches have listed and the API server answers; the drift gauge reports prod's
/// drift and goes with the Environment.
async fn the_operator_is_ready_and_the_drift_gauge_goes_with_its_environment(p: &Platform, envs: &Envs) {
    let (client, prod) = (p.ctx.client.clone(), &envs.prod);
    let (status, text) =
        factory_testkit::http::get(factory_testkit::operator::metrics_addr(), "/readyz").await.expect("readyz");
    assert_eq!((status, text.as_str()), (200, "ok"));
    let series = format!("factory_operator_drifted_objects{{kind=\"Environment\",name=\"{prod}\"}}");
    let metrics = || async {
        let (status, text) = factory_testkit::http::get(factory_testkit::operator::metrics_addr(), "/metrics").await?;
        anyhow::ensure!(status == 200, "/metrics answered {status}");
        anyhow::Ok(text)
    };
    eventually("prod's drift gauge", Duration::from_secs(30), || async {
        anyhow::Ok(metrics().await?.contains(&format!("{series} 1")).then_some(()))
    })
    .await
    .expect("gauge set");
    Api::<Environment>::all(client.clone()).delete(prod, &Default::default()).await.expect("delete Environment");
    eventually("prod's drift gauge removed", Duration::from_secs(30), || async {
        anyhow::Ok((!metrics().await?.contains(&series)).then_some(()))
    })
    .await
    .expect("no series for a deleted environment");
}

#[tokio::test]
async fn a_new_environment_whose_class_is_refused_keeps_only_its_namespace() {
    // The first apply into a new namespace is validated by writing (no dry-run first): one
    // refused object must roll back the rest, as a refused dry-run would have written nothing.
    let (base, broken) = (classes(), testdata_tree("platform/environments/class-broken", &[]));
    let files = [base.files(), broken.files()].concat();
    let p = Platform::with_files(test_name!(), &files, "cluster-admin").await;
    with_team_and_classes(&p, "broken", "classes/broken/").await;

    let env = environment(&p, "broken", "broken", json!({})).await;
    // Refused by the write and rolled back: reported as a validation failure, as a refused
    // dry-run would be (ApplyFailed would mean the API server failed to answer).
    let envs: Api<Environment> = Api::all(p.ctx.client.clone());
    let ready = eventually("the environment refused", Duration::from_secs(60), || async {
        let e = envs.get(&env).await?;
        let ready = e.status.and_then(|s| s.reconcile.conditions.into_iter().find(|c| c.type_ == "Ready"));
        anyhow::Ok(ready.filter(|c| c.status == "False" && c.reason == "ValidationFailed"))
    })
    .await
    .expect("refused");
    assert!(
        ready.message.contains("ConfigMap") && ready.message.contains("classes/broken/bad.yaml"),
        "{}",
        ready.message
    );
    let client = p.ctx.client.clone();
    Api::<Namespace>::all(client.clone()).get(&env).await.expect("the namespace stays");
    // Rolled back: none of the class's other objects, nor the tenant's rights.
    eventually("the refused revision rolled back", Duration::from_secs(30), || async {
        let left = (
            Api::<ConfigMap>::namespaced(client.clone(), &env).get_opt("good").await?,
            Api::<LimitRange>::namespaced(client.clone(), &env).get_opt("defaults").await?,
            Api::<NetworkPolicy>::namespaced(client.clone(), &env).get_opt("default-deny").await?,
            Api::<RoleBinding>::namespaced(client.clone(), &env).get_opt("factory-tenant").await?,
        );
        anyhow::Ok(matches!(left, (None, None, None, None)).then_some(()))
    })
    .await
    .expect("nothing of the refused revision left");

    // Fixed in git: the environment converges.
    p.repo.remove("classes/broken/bad.yaml").expect("rm");
    p.repo.commit("fix the class").expect("commit");
    p.poke().await;
    wait_env(&p, &env, "Ready", "True", "Reconciled").await;
    Api::<ConfigMap>::namespaced(client.clone(), &env).get("good").await.expect("applied once fixed");
    assert!(Api::<ConfigMap>::namespaced(client, &env).get_opt("bad").await.expect("get").is_none());
}
