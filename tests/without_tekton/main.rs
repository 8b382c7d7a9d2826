//! A cluster without Tekton: a team factory still reconciles everything else and says that
//! pipelines are unavailable; once Tekton's CRDs are installed, the same running operator
//! applies the pipelines and reads runs. Its own test binary, whose control plane starts
//! without Tekton.

#[path = "../platform/fixture.rs"]
#[allow(dead_code)]
mod fixture;

use std::time::Duration;

use factory_api::Factory;
use factory_testkit::{control_plane, eventually};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::json;

use factory_integration_tests::{test_name, testdata};
use fixture::{Apps, Platform};

#[tokio::test]
async fn pipelines_wait_for_tekton_and_everything_else_does_not() {
    factory_testkit::cluster::start_without_tekton();
    let p = Platform::serving(test_name!(), "without_tekton/platform").await;
    let x = p.ctx.prefix.clone();
    let apps = Apps::serve().await;
    apps.repo("ci", &[(".tekton/pipeline.yaml", &testdata("without_tekton/ci/.tekton/pipeline.yaml", &[]))]);
    let shop = testdata("without_tekton/factories/shop.yaml", &[("prefix", &x), ("url", &apps.url("ci"))]);
    let images = json!({"path": "images/pipeline.yaml",
        "images": [{"name": "base", "pipeline": "build-image", "context": "images/base"}]});
    // The platform is Ready without Tekton and says its images are not built.
    let platform = p.start_with(&[("shop", &shop)], json!({"cluster": null, "images": images})).await;
    let ready = platform.status.unwrap_or_default().reconcile.conditions.into_iter().find(|c| c.type_ == "Ready");
    assert!(ready.is_some_and(|c| c.message.contains("shared images are not built: Tekton")));

    let factories: Api<Factory> = Api::all(p.ctx.client.clone());
    let shop = format!("{x}-shop");
    let status = eventually("environments ready, pipelines unavailable", Duration::from_secs(90), || async {
        let s = factories.get(&shop).await?.status.unwrap_or_default();
        let envs_ready = s.environments.as_ref().is_some_and(|e| e.total == 1 && e.ready == 1);
        let unavailable = s.runs.as_ref().and_then(|r| r.unavailable.clone()).is_some_and(|u| u.contains("Tekton"));
        anyhow::Ok((envs_ready && unavailable).then_some(s))
    })
    .await
    .expect("the rest reconciles without Tekton");
    assert!(status.pipelines.iter().any(|p| p.error.contains("UnknownKind")), "{:?}", status.pipelines);

    // Tekton arrives; the same operator picks it up without a restart.
    control_plane().lock().unwrap_or_else(|e| e.into_inner()).install_tekton().expect("install tekton");
    let poke = json!({"metadata": {"annotations": {"factories.dev/requested-at": "tekton-installed"}}});
    factories.patch(&shop, &PatchParams::default(), &Patch::Merge(&poke)).await.expect("poke");
    let pipeline = ApiResource {
        group: "tekton.dev".into(),
        version: "v1".into(),
        api_version: "tekton.dev/v1".into(),
        kind: "Pipeline".into(),
        plural: "pipelines".into(),
    };
    let pipelines: Api<DynamicObject> =
        Api::namespaced_with(p.ctx.client.clone(), &format!("{x}-shop-cicd"), &pipeline);
    eventually("pipelines applied and runs readable", Duration::from_secs(90), || async {
        let applied = pipelines.get_opt("build").await.ok().flatten().is_some();
        let s = factories.get(&shop).await?.status.unwrap_or_default();
        let readable = s.runs.as_ref().is_some_and(|r| r.unavailable.is_none());
        anyhow::Ok((applied && readable).then_some(()))
    })
    .await
    .expect("Tekton picked up");
    // And the platform starts building its image.
    p.poke().await;
    let runs: Api<DynamicObject> = Api::namespaced_with(
        p.ctx.client.clone(),
        &format!("{}-cicd", p.name),
        &ApiResource { kind: "PipelineRun".into(), plural: "pipelineruns".into(), ..pipeline.clone() },
    );
    eventually("the image build started", Duration::from_secs(90), || async {
        let list = runs.list(&kube::api::ListParams::default().labels("factories.dev/image=base")).await?;
        anyhow::Ok((!list.items.is_empty()).then_some(()))
    })
    .await
    .expect("images built once Tekton is there");
}
