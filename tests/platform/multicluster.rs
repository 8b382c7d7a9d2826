//! An environment that lives in another cluster, reached through a kubeconfig Secret: its
//! namespace and class baseline land there, and nothing of it lands here.

use std::time::Duration;

use factory_api::Environment;
use factory_testkit::cluster::second_cluster;
use factory_testkit::eventually;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, Secret};
use kube::api::{Api, PostParams};
use serde_json::json;

use factory_integration_tests::{test_name, testdata};

use crate::fixture::Platform;

#[tokio::test]
async fn an_environment_in_a_second_cluster_is_built_there() {
    let p = Platform::serving(test_name!(), "platform/multicluster/platform").await;
    let x = p.ctx.prefix.clone();
    p.repo
        .write("factories/shop.yaml", &testdata("common/factories/shop-without-environments.yaml", &[("prefix", &x)]))
        .expect("write");
    p.repo.commit("team").expect("commit");
    p.create_factory(json!({"cluster": null})).await;
    p.wait_ready("True", "Reconciled").await;

    let (kubeconfig, remote) = second_cluster().await.expect("second cluster");
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "edge-cluster"}, "stringData": {"value": kubeconfig}}))
            .expect("secret");
    Api::<Secret>::namespaced(p.ctx.client.clone(), &p.system)
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
    let name = format!("{x}-shop-edge");
    let env: Environment =
        serde_json::from_value(json!({"apiVersion": "factories.dev/v1alpha1", "kind": "Environment",
        "metadata": {"name": name}, "spec": {"factory": format!("{x}-shop"), "namespace": name, "class": "base",
            "protected": true, "kubeconfigSecretRef": {"namespace": p.system, "name": "edge-cluster"}}}))
        .expect("env");
    let envs: Api<Environment> = Api::all(p.ctx.client.clone());
    envs.create(&PostParams::default(), &env).await.expect("environment");

    let remote_limits: Api<LimitRange> = Api::namespaced(remote.clone(), &name);
    eventually("the class baseline in the second cluster", Duration::from_secs(60), || async {
        anyhow::Ok(remote_limits.get_opt("defaults").await?.map(|_| ()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let ns = Api::<Namespace>::all(remote.clone()).get(&name).await.expect("remote namespace");
    assert_eq!(ns.metadata.labels.and_then(|l| l.get("factories.dev/environment").cloned()).as_deref(), Some("edge"));
    assert!(
        Api::<Namespace>::all(p.ctx.client.clone()).get_opt(&name).await.expect("get").is_none(),
        "nothing lands in the home cluster"
    );
    eventually("Ready", Duration::from_secs(30), || async {
        let e = envs.get(&name).await?;
        anyhow::Ok(
            e.status
                .is_some_and(|s| s.reconcile.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                .then_some(()),
        )
    })
    .await
    .expect("ready");

    // Protected there as here: the operator installed its admission policies in that cluster.
    // The same delete of an unprotected namespace goes through, so the refusal is the policy's.
    let namespaces = Api::<Namespace>::all(remote.clone());
    let scratch = format!("{x}-scratch");
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": scratch}})).expect("ns"))
        .await
        .expect("scratch namespace");
    namespaces.delete(&scratch, &Default::default()).await.expect("an unprotected namespace may be deleted");
    // A new policy takes a moment to reach the API server's admission plugin: dry-run until it has.
    let dry_run = kube::api::DeleteParams { dry_run: true, ..Default::default() };
    eventually("the protection in force in the second cluster", Duration::from_secs(30), || async {
        anyhow::Ok(namespaces.delete(&name, &dry_run).await.is_err().then_some(()))
    })
    .await
    .expect("admission policy installed there");
    match namespaces.delete(&name, &Default::default()).await {
        Err(kube::Error::Api(s)) => assert!(
            s.reason == "Forbidden" && s.message.contains("is a protected permanent environment and is never deleted"),
            "{s:?}"
        ),
        other => panic!("the second cluster's admin deleted protected environment {name}: {other:?}"),
    }
}
