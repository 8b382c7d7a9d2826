//! `kubectl factory status` reads the real API and prints the factory tree.

use factory_api::{Environment, Factory, PreviewEnvironment};
use factory_integration_tests::test_name;
use factory_testkit::TestContext;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kubectl_factory::Output;
use kubectl_factory::status::{load, print};
use serde_json::json;

use crate::api::team_factory;

fn ready_status(revision: &str) -> serde_json::Value {
    json!({"status": {"lastAppliedRevision": revision, "conditions": [{"type": "Ready", "status": "True",
        "reason": "Reconciled", "message": "ok", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
}

#[tokio::test]
async fn status_prints_factories_environments_and_previews() {
    let ctx = TestContext::new(test_name!()).await;
    let factory = ctx.name("shop");
    let factories: Api<Factory> = Api::all(ctx.client.clone());
    factories.create(&PostParams::default(), &team_factory(&factory)).await.expect("factory");
    factories
        .patch_status(&factory, &PatchParams::default(), &Patch::Merge(ready_status("main@sha1:abc")))
        .await
        .expect("factory status");

    let envs: Api<Environment> = Api::all(ctx.client.clone());
    let env_name = format!("{factory}-prod");
    let env: Environment =
        serde_json::from_value(json!({"apiVersion": "factories.dev/v1alpha1", "kind": "Environment",
        "metadata": {"name": env_name}, "spec": {"factory": factory, "namespace": env_name, "class": "prod"}}))
        .expect("env");
    envs.create(&PostParams::default(), &env).await.expect("environment");

    let cicd = format!("{factory}-cicd");
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": cicd}})).expect("ns");
    Api::<Namespace>::all(ctx.client.clone()).create(&PostParams::default(), &ns).await.expect("namespace");
    let preview: PreviewEnvironment = serde_json::from_value(json!({"apiVersion": "factories.dev/v1alpha1",
        "kind": "PreviewEnvironment", "metadata": {"name": "login"},
        "spec": {"application": "cart", "ref": {"branch": "feature/login"}}}))
    .expect("preview");
    Api::<PreviewEnvironment>::namespaced(ctx.client.clone(), &cicd)
        .create(&PostParams::default(), &preview)
        .await
        .expect("preview");

    let tree = load(&ctx.client, Some(&factory)).await.expect("load");
    assert_eq!(tree.len(), 1);
    assert_eq!((tree[0].ready.as_str(), tree[0].revision.as_str()), ("True", "main@sha1:abc"));
    let children: Vec<(&str, &str)> = tree[0].children.iter().map(|c| (c.kind.as_str(), c.name.as_str())).collect();
    let preview_name = format!("{cicd}/login");
    assert_eq!(children, [("Environment", env_name.as_str()), ("PreviewEnvironment", preview_name.as_str())]);

    let mut table = Vec::new();
    print(&tree, Output::Table, &mut table).expect("print");
    let table = String::from_utf8(table).expect("utf8");
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains(&format!("└─ {preview_name}")), "{table}");
    let mut json_out = Vec::new();
    print(&tree, Output::Json, &mut json_out).expect("json");
    let parsed: serde_json::Value = serde_json::from_slice(&json_out).expect("valid JSON");
    assert_eq!(parsed[0]["children"][0]["kind"], "Environment");
}
