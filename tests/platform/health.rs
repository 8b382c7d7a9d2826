//! An application is Ready in an environment only once what it applied is healthy: its
//! Deployment rolled out on kwok's nodes. A rollout whose pods fail (kwok's chaos stage) is
//! Progressing until the application's `healthTimeout`, then Degraded naming the Deployment;
//! a fixed revision makes it Healthy again.

use std::time::Duration;

use factory_api::{Environment, HealthState};
use factory_testkit::eventually;
use factory_testkit::git::Repo;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use serde_json::json;

use factory_integration_tests::{test_name, testdata};

use crate::fixture::{Apps, Platform};

/// Labels kwok's chaos stage fails a pod for.
const FAILING: &str = ", pod-container-running-failed.stage.kwok.x-k8s.io: \"true\"";

fn deployment(tag: &str, pod_labels: &str) -> String {
    testdata("platform/health/web/deployment.yaml", &[("tag", tag), ("pod_labels", pod_labels)])
}

#[tokio::test]
async fn an_application_is_ready_only_once_its_workloads_are_healthy() {
    let p = Platform::serving(test_name!(), "platform/applications/platform").await;
    let x = p.ctx.prefix.clone();
    let apps = Apps::serve().await;
    let web = apps.repo("web", &[("deploy/base/deployment.yaml", &deployment("1.0.0", ""))]);
    let shop = testdata("platform/health/factories/shop.yaml", &[("prefix", &x), ("url", &apps.url("web"))]);
    p.start_with(&[("shop", &shop)], json!({"cluster": null})).await;
    let env = format!("{x}-shop-test");

    the_environment_progresses_while_the_deployment_rolls_out_then_is_ready(&p, &env).await;
    a_rollout_whose_pods_fail_is_degraded_after_the_timeout(&p, &web, &env).await;
    a_fixed_revision_is_healthy_again(&p, &web, &env).await;
}

/// The Environment's Ready condition (status, reason, message) and the application's health.
async fn observed(p: &Platform, env: &str) -> anyhow::Result<(String, String, String, Option<HealthState>, String)> {
    let e = Api::<Environment>::all(p.ctx.client.clone()).get(env).await?;
    let status = e.status.unwrap_or_default();
    let ready = status.reconcile.conditions.iter().find(|c| c.type_ == "Ready");
    let (ready_status, reason, ready_message) =
        ready.map(|c| (c.status.clone(), c.reason.clone(), c.message.clone())).unwrap_or_default();
    let health = status.applications.iter().find(|a| a.name == "web").and_then(|a| a.health.clone());
    let (state, message) = health.map(|h| (Some(h.state), h.message)).unwrap_or_default();
    Ok((ready_status, reason, ready_message, state, message))
}

async fn wait_for(
    p: &Platform,
    env: &str,
    what: &str,
    seconds: u64,
    reason: &str,
    state: HealthState,
) -> (String, String) {
    let result = eventually(what, Duration::from_secs(seconds), || async {
        let (_, r, message, s, health) = observed(p, env).await?;
        anyhow::Ok((r == reason && s == Some(state)).then_some((message, health)))
    })
    .await;
    match result {
        Ok(found) => found,
        Err(e) => panic!("{e}\nlast seen: {:?}", observed(p, env).await.ok()),
    }
}

/// Ready=False, reason Progressing, naming the Deployment and what it lacks; then Ready once
/// both replicas are available — and not before.
async fn the_environment_progresses_while_the_deployment_rolls_out_then_is_ready(p: &Platform, env: &str) {
    let (message, health) = wait_for(p, env, "web rolling out", 90, "Progressing", HealthState::Progressing).await;
    let ns = env;
    assert!(message.contains("application web is rolling out"), "{message}");
    assert!(health.starts_with(&format!("Deployment {ns}/web: ")), "{health}");
    let (message, health) = wait_for(p, env, "web healthy", 60, "Reconciled", HealthState::Healthy).await;
    assert!(health.is_empty() && message.starts_with("applied "), "{message} / {health}");
    let deployment = Api::<Deployment>::namespaced(p.ctx.client.clone(), ns).get("web").await.expect("web");
    let available = deployment.status.and_then(|s| s.available_replicas);
    assert_eq!(available, Some(2), "Ready only once both replicas are available");
}

/// Pods that fail keep the Deployment short of available replicas: Progressing until the
/// application's 15 s healthTimeout, then Degraded (Ready=False, Stalled) naming it.
async fn a_rollout_whose_pods_fail_is_degraded_after_the_timeout(p: &Platform, web: &Repo, env: &str) {
    web.write("deploy/base/deployment.yaml", &deployment("1.1.0", FAILING)).expect("write");
    web.commit("web 1.1.0: its pods fail").expect("commit");
    p.poke_environment(env).await;
    let (_, health) = wait_for(p, env, "web 1.1.0 rolling out", 60, "Progressing", HealthState::Progressing).await;
    assert!(health.starts_with(&format!("Deployment {env}/web: ")), "{health}");
    let (message, health) = wait_for(p, env, "web 1.1.0 degraded", 60, "Degraded", HealthState::Degraded).await;
    assert!(health.starts_with(&format!("not healthy within 15s: Deployment {env}/web: ")), "{health}");
    assert!(message.contains("application web: not healthy within 15s"), "{message}");
}

/// A new revision starts its deadline again, and rolls out.
async fn a_fixed_revision_is_healthy_again(p: &Platform, web: &Repo, env: &str) {
    web.write("deploy/base/deployment.yaml", &deployment("1.1.1", "")).expect("write");
    web.commit("web 1.1.1: fixed").expect("commit");
    p.poke_environment(env).await;
    wait_for(p, env, "web 1.1.1 healthy", 90, "Reconciled", HealthState::Healthy).await;
}
