//! Team pipelines are applied into the cicd namespace as the team, validated by Tekton's real
//! schemas, and the factory's status aggregates the PipelineRuns of all its applications
//! (written the way Tekton would, since no Tekton controller runs here).

use std::time::Duration;

use factory_api::Factory;
use factory_testkit::eventually;
use factory_testkit::git::{GitHttpServer, GitRoot};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::fixture::Platform;

const PIPELINE: &str = "apiVersion: tekton.dev/v1\nkind: Pipeline\nmetadata: {name: build}\nspec:\n  params: [{name: application, type: string}, {name: revision, type: string}, {name: environment, type: string}]\n  tasks:\n  - name: build\n    taskSpec:\n      steps:\n      - {name: build, image: busybox, script: 'echo build'}\n";

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "tekton.dev".into(),
        version: "v1".into(),
        api_version: "tekton.dev/v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

#[tokio::test]
async fn pipelines_are_applied_and_runs_of_all_applications_are_summarised() {
    let p =
        Platform::new("pipelines_are_applied_and_runs_of_all_applications_are_summarised", &[], "cluster-admin").await;
    let x = p.ctx.prefix.clone();
    let apps = GitRoot::new().expect("root");
    let ci = apps.repo("ci", &[(".tekton/pipeline.yaml", PIPELINE)]).expect("repo");
    let first = ci.head().expect("head");
    let server = GitHttpServer::start(apps.path().to_path_buf(), None).await.expect("server");
    let app = |name: &str| {
        format!("  - name: {name}\n    source: {{url: '{}'}}\n    pipelines: {{path: .tekton/}}\n", server.url("ci"))
    };
    p.repo
        .write("factories/shop.yaml", &format!(
            "apiVersion: factories.dev/v1alpha1\nkind: Factory\nmetadata: {{name: {x}-shop}}\nspec:\n  type: Applications\n  applications:\n{}{}{}",
            app("cart").replace(".tekton/}", ".tekton/, runOnChange: {pipeline: build, environment: test}}"), app("search"), app("checkout")))
        .expect("write");
    p.repo.commit("shop").expect("commit");
    p.create_factory(json!({"cluster": null})).await;
    p.wait_ready("True", "Reconciled").await;

    let cicd = format!("{x}-shop-cicd");
    let pipelines: Api<DynamicObject> =
        Api::namespaced_with(p.ctx.client.clone(), &cicd, &resource("Pipeline", "pipelines"));
    let pipeline = eventually("the pipeline in the cicd namespace", Duration::from_secs(60), || async {
        anyhow::Ok(pipelines.get_opt("build").await?)
    })
    .await
    .expect("applied");
    assert!(
        pipeline
            .metadata
            .labels
            .unwrap_or_default()
            .get("factories.dev/applied-by")
            .is_some_and(|v| v.starts_with("application."))
    );

    // Opt-in: the operator started a run for cart's revision, with the params and labels.
    let runs: Api<DynamicObject> =
        Api::namespaced_with(p.ctx.client.clone(), &cicd, &resource("PipelineRun", "pipelineruns"));
    let started = format!("cart-{}", &first[..12]);
    let run = eventually("the run started for cart", Duration::from_secs(60), || async {
        anyhow::Ok(runs.get_opt(&started).await?)
    })
    .await
    .expect("started");
    let params = run.data["spec"]["params"].clone();
    assert_eq!(
        params,
        json!([{"name": "application", "value": "cart"}, {"name": "revision", "value": first}, {"name": "environment", "value": "test"}])
    );
    assert_eq!(run.metadata.labels.unwrap_or_default().get("factories.dev/revision"), Some(&first));

    // Three applications, three runs in three states, statuses written the way Tekton would;
    // cart's run is the one the operator started.
    for (app, state, reason) in
        [("cart", "True", "Succeeded"), ("search", "False", "Failed"), ("checkout", "Unknown", "Running")]
    {
        let name = if app == "cart" { started.clone() } else { format!("{app}-1") };
        if app != "cart" {
            let run: DynamicObject =
                serde_json::from_value(json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
                "metadata": {"name": name, "labels": {"factories.dev/application": app, "tekton.dev/pipeline": "build",
                    "factories.dev/revision": "0123abc", "factories.dev/environment": "test"}},
                "spec": {"pipelineRef": {"name": "build"}, "params": [{"name": "revision", "value": "0123abc"}]}}))
                .expect("run");
            runs.create(&PostParams::default(), &run).await.expect("create run");
        }
        let status = json!({"status": {"startTime": "2026-01-01T00:00:00Z", "conditions": [{"type": "Succeeded", "status": state,
            "reason": reason, "message": format!("{app} {reason}"), "lastTransitionTime": "2026-01-01T00:01:00Z"}]}});
        runs.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("status");
    }
    let factories: Api<Factory> = Api::all(p.ctx.client.clone());
    let view = eventually("the aggregated view", Duration::from_secs(60), || async {
        let f = factories.get(&format!("{x}-shop")).await?;
        let done = |r: &factory_api::factory::RunsSummary| {
            r.succeeded == 1 && r.failed == 1 && r.running == 1 && r.latest.iter().any(|l| l.result == "Running")
        };
        anyhow::Ok(f.status.and_then(|s| s.runs).filter(done))
    })
    .await
    .expect("summarised");
    let apps: Vec<(&str, &str)> = view.latest.iter().map(|r| (r.application.as_str(), r.result.as_str())).collect();
    assert_eq!(apps, [("cart", "Succeeded"), ("checkout", "Running"), ("search", "Failed")]);
    assert!(view.latest.iter().all(|r| r.environment == "test" && r.pipeline == "build"));
    assert_eq!(view.latest[0].revision, first, "cart's run builds the revision the operator saw");
    assert!(view.last_failure.clone().is_some_and(|f| f.contains("search-1") && f.contains("search Failed")));

    // `kubectl factory runs` prints one table across the applications, and JSON on request.
    let loaded = kubectl_factory::runs::load(&p.ctx.client, &format!("{x}-shop")).await.expect("runs");
    let mut table = Vec::new();
    kubectl_factory::runs::print(&loaded, kubectl_factory::Output::Table, &mut table).expect("print");
    let table = String::from_utf8(table).expect("utf8");
    assert!(table.starts_with("APPLICATION"), "{table}");
    assert!(table.contains("search-1") && table.contains("1 succeeded, 1 failed, 1 running"), "{table}");
    let mut out = Vec::new();
    kubectl_factory::runs::print(&loaded, kubectl_factory::Output::Json, &mut out).expect("json");
    let parsed: serde_json::Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(parsed["failed"], 1);
    let missing = kubectl_factory::runs::load(&p.ctx.client, "no-such-factory").await.expect_err("error");
    assert!(missing.to_string().contains("not found"), "{missing}");
}
