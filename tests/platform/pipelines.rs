//! Team pipelines are applied into the cicd namespace as the team, validated by Tekton's real
//! schemas, and the factory's status aggregates the PipelineRuns of all its applications
//! (written the way Tekton would, since no Tekton controller runs here).

use std::time::Duration;

use factory_api::Factory;
use factory_testkit::eventually;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

use factory_integration_tests::{test_name, testdata, testdata_tree};

use crate::fixture::{Apps, Platform};

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
    let p = Platform::new(test_name!()).await;
    let x = p.ctx.prefix.clone();
    let apps = Apps::serve().await;
    let ci = apps.repo("ci", &[(".tekton/pipeline.yaml", &testdata("platform/pipelines/app/pipeline.yaml", &[]))]);
    let first = ci.head().expect("head");
    let shop = testdata("platform/pipelines/factories/three-apps.yaml", &[("prefix", &x), ("url", &apps.url("ci"))]);
    p.start_with(&[("shop", &shop)], json!({"cluster": null})).await;

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

/// The platform offers pipeline templates, a deploy account per environment and shared images;
/// a team's application gets its push listener; the deploy account reaches its environment only.
#[tokio::test]
async fn platform_templates_triggers_deploy_accounts_and_shared_images() {
    let test = "platform_templates_triggers_deploy_accounts_and_shared_images";
    let files = testdata_tree("platform/pipelines/platform", &[]);
    let p = Platform::with_files(test, &files.files(), "cluster-admin").await;
    let x = p.ctx.prefix.clone();
    let apps = Apps::serve().await;
    let cart = apps.repo("cart", &[(".tekton/pipeline.yaml", &testdata("platform/pipelines/app/pipeline.yaml", &[]))]);
    let shop =
        testdata("platform/pipelines/factories/shop-with-triggers.yaml", &[("prefix", &x), ("url", &apps.url("cart"))]);
    p.start_with(
        &[("shop", &shop)],
        json!({"cluster": null, "pipelineTemplates": {"path": "pipelines/"},
            "images": {"path": "images/pipeline.yaml", "caPath": "ca/", "schedule": "24h",
                       "images": [{"name": "base", "pipeline": "build-image", "context": "images/base"}]}}),
    )
    .await;

    platform_templates_are_applied_as_the_platform_into_the_teams_cicd(&p).await;
    the_application_gets_its_own_pipeline_and_push_listener(&p).await;
    the_started_run_deploys_as_the_test_environments_account(&p, &cart).await;
    the_deploy_account_writes_its_environment_and_nothing_else(&p).await;
    let first = a_shared_image_build_starts_in_the_platforms_cicd(&p).await;
    a_finished_build_is_published_on_status_and_to_the_team(&p, &first).await;
    a_new_ca_bundle_builds_once_more_and_nothing_new_builds_nothing(&p, &first).await;
}

/// An object of `kind` in the team `shop`'s cicd namespace.
fn in_cicd(p: &Platform, kind: &str, plural: &str) -> Api<DynamicObject> {
    let cicd = format!("{}-shop-cicd", p.ctx.prefix);
    Api::namespaced_with(p.ctx.client.clone(), &cicd, &resource(kind, plural))
}

/// A Tekton Triggers object of `kind` in the team `shop`'s cicd namespace.
fn triggers(p: &Platform, kind: &str, plural: &str) -> Api<DynamicObject> {
    let cicd = format!("{}-shop-cicd", p.ctx.prefix);
    let r = ApiResource {
        group: "triggers.tekton.dev".into(),
        version: "v1beta1".into(),
        api_version: "triggers.tekton.dev/v1beta1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    Api::namespaced_with(p.ctx.client.clone(), &cicd, &r)
}

/// The platform's image builds (PipelineRuns in its own cicd namespace).
fn image_runs(p: &Platform) -> Api<DynamicObject> {
    let platform_cicd = format!("{}-cicd", p.name);
    Api::namespaced_with(p.ctx.client.clone(), &platform_cicd, &resource("PipelineRun", "pipelineruns"))
}

async fn platform_templates_are_applied_as_the_platform_into_the_teams_cicd(p: &Platform) {
    let x = &p.ctx.prefix;
    let template = eventually("the platform's template pipeline", Duration::from_secs(60), || async {
        anyhow::Ok(in_cicd(p, "Pipeline", "pipelines").get_opt("build-scan-deploy").await?)
    })
    .await
    .expect("template applied");
    let applied_by = template.metadata.labels.unwrap_or_default().get("factories.dev/applied-by").cloned();
    assert_eq!(applied_by, Some(format!("platform.{}", p.name)));
    // Objects of one stage are applied concurrently: the Task may land just after the Pipeline.
    let deploy = eventually("the platform's deploy task", Duration::from_secs(30), || async {
        anyhow::Ok(in_cicd(p, "Task", "tasks").get_opt("deploy").await?)
    })
    .await
    .expect("deploy task");
    assert!(deploy.data["spec"]["steps"][0]["args"].to_string().contains(&format!("{x}-shop-$(params.environment)")));
}

/// The application's own pipeline and its push listener (Triggers is served here).
async fn the_application_gets_its_own_pipeline_and_push_listener(p: &Platform) {
    let listener = eventually("cart's EventListener", Duration::from_secs(60), || async {
        anyhow::Ok(triggers(p, "EventListener", "eventlisteners").get_opt("cart").await?)
    })
    .await
    .expect("listener");
    assert_eq!(listener.data["spec"]["serviceAccountName"], "factory-triggers");
    assert_eq!(
        listener.data["spec"]["triggers"][0]["interceptors"][0]["params"][0]["value"]["secretName"],
        "cart-webhook"
    );
    triggers(p, "TriggerBinding", "triggerbindings").get("cart-push").await.expect("binding");
    let template = triggers(p, "TriggerTemplate", "triggertemplates").get("cart").await.expect("template");
    assert_eq!(template.data["spec"]["resourcetemplates"][0]["spec"]["pipelineRef"]["name"], "build-scan-deploy");
    in_cicd(p, "Pipeline", "pipelines").get("build").await.expect("the app's own pipeline");
}

async fn the_started_run_deploys_as_the_test_environments_account(p: &Platform, cart: &factory_testkit::git::Repo) {
    let head = cart.head().expect("head");
    let run = eventually("cart's run", Duration::from_secs(60), || async {
        anyhow::Ok(in_cicd(p, "PipelineRun", "pipelineruns").get_opt(&format!("cart-{}", &head[..12])).await?)
    })
    .await
    .expect("run");
    assert_eq!(
        run.data["spec"]["taskRunSpecs"],
        json!([{"pipelineTaskName": "deploy", "serviceAccountName": "deploy-test"}])
    );
}

/// The deploy account can change its environment and nothing else, through real RBAC.
async fn the_deploy_account_writes_its_environment_and_nothing_else(p: &Platform) {
    let x = &p.ctx.prefix;
    let cicd = format!("{x}-shop-cicd");
    let deployer = p.ctx.client_as_service_account(&cicd, "deploy-test").await.expect("deployer client");
    let cm = |name: &str| -> k8s_openapi::api::core::v1::ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("cm")
    };
    let test_ns = format!("{x}-shop-test");
    let allowed = eventually("deploy-test may write in its environment", Duration::from_secs(60), || async {
        let api = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(deployer.clone(), &test_ns);
        anyhow::Ok(api.create(&PostParams::default(), &cm("release")).await.ok())
    })
    .await;
    assert!(allowed.is_ok(), "the deploy account could not write in its own environment");
    for ns in [format!("{x}-shop-prod"), cicd.clone()] {
        let api = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(deployer.clone(), &ns);
        match api.create(&PostParams::default(), &cm("release")).await {
            Err(kube::Error::Api(s)) => assert!(
                s.reason == "Forbidden" && s.message.contains("cannot create resource \"configmaps\""),
                "{ns}: {s:?}"
            ),
            other => panic!("deploy-test wrote into {ns}: {other:?}"),
        }
    }
}

/// The platform's build pipeline in its own cicd namespace, and a build started.
async fn a_shared_image_build_starts_in_the_platforms_cicd(p: &Platform) -> DynamicObject {
    let client = p.ctx.client.clone();
    let platform_cicd = format!("{}-cicd", p.name);
    let image_runs = image_runs(p);
    Api::<DynamicObject>::namespaced_with(client.clone(), &platform_cicd, &resource("Pipeline", "pipelines"))
        .get("build-image")
        .await
        .expect("image pipeline");
    let first = eventually("the first build of base", Duration::from_secs(60), || async {
        let list = image_runs.list(&kube::api::ListParams::default().labels("factories.dev/image=base")).await?;
        anyhow::Ok(list.items.into_iter().next())
    })
    .await
    .expect("build started");
    let params = first.data["spec"]["params"].as_array().cloned().unwrap_or_default();
    assert!(params.contains(&json!({"name": "context", "value": "images/base"})), "{params:?}");
    assert!(params.contains(&json!({"name": "ca-path", "value": "ca/"})), "{params:?}");

    first
}

/// Tekton finishes the build; the image is published on status and to the team.
async fn a_finished_build_is_published_on_status_and_to_the_team(p: &Platform, first: &DynamicObject) {
    let (x, client, image_runs) = (&p.ctx.prefix, p.ctx.client.clone(), image_runs(p));
    let cicd = format!("{x}-shop-cicd");
    let digest = "sha256:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
    let done = json!({"status": {"startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:05:00Z",
        "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded", "lastTransitionTime": "2026-01-01T00:05:00Z"}],
        "results": [{"name": "IMAGE_URL", "value": "registry.local/base"}, {"name": "IMAGE_DIGEST", "value": digest}]}});
    image_runs.patch_status(&first.name_any(), &PatchParams::default(), &Patch::Merge(&done)).await.expect("status");
    let reference = format!("registry.local/base@{digest}");
    eventually("the image on the platform's status", Duration::from_secs(60), || async {
        let f = p.factories().get(&p.name).await?;
        let images = f.status.map(|s| s.images).unwrap_or_default();
        anyhow::Ok(images.iter().any(|i| i.reference.as_deref() == Some(reference.as_str())).then_some(()))
    })
    .await
    .expect("published");
    p.poke().await;
    let configmaps = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), &cicd);
    eventually("the image in the team's shared-images ConfigMap", Duration::from_secs(60), || async {
        let cm = configmaps.get_opt("shared-images").await?;
        let data = cm.and_then(|c| c.data).unwrap_or_default();
        anyhow::Ok((data.get("base") == Some(&reference)).then_some(()))
    })
    .await
    .expect("delivered");
}

/// A new CA bundle starts the build again, with a new definition; a reconcile with nothing new
/// starts nothing; `kubectl get factories` shows the runs compactly.
async fn a_new_ca_bundle_builds_once_more_and_nothing_new_builds_nothing(p: &Platform, first: &DynamicObject) {
    let x = &p.ctx.prefix;
    let image_runs = image_runs(p);
    p.repo.write("ca/ca.crt", "-----BEGIN CERTIFICATE-----\nrotated\n-----END CERTIFICATE-----\n").expect("write");
    p.repo.commit("rotate the CA").expect("commit");
    p.poke().await;
    let old_definition = first.labels().get("factories.dev/definition").cloned();
    let second = eventually("a build for the new CA", Duration::from_secs(60), || async {
        let list = image_runs.list(&kube::api::ListParams::default().labels("factories.dev/image=base")).await?;
        anyhow::Ok(list.items.into_iter().find(|r| {
            r.metadata.labels.clone().unwrap_or_default().get("factories.dev/definition").cloned() != old_definition
        }))
    })
    .await
    .expect("rebuilt on CA change");
    assert_ne!(second.name_any(), first.name_any());
    // A reconcile with nothing new starts nothing.
    p.poke().await;
    p.wait_ready("True", "Reconciled").await;
    let count =
        image_runs.list(&kube::api::ListParams::default().labels("factories.dev/image=base")).await.expect("list");
    assert_eq!(count.items.len(), 2, "one build per definition");

    // `kubectl get factories` shows the runs compactly.
    let table = p.ctx.kubectl(&["get", "factories", &format!("{x}-shop")]).expect("kubectl");
    assert!(table.contains("RUNS") && table.contains("0 ok, 0 failed, 1 running"), "{table}");
}
