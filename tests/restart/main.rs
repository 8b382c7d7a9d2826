//! The real operator binary SIGKILLed in the middle of applying, in the middle of pruning and
//! in the middle of a promotion, then restarted: it converges with no lost, duplicated or
//! orphaned objects, and each environment runs exactly one release. Its own test
//! binary, so that no other operator runs against this control plane.

#[path = "../platform/fixture.rs"]
#[allow(dead_code)]
mod fixture;

use std::time::Duration;

use factory_testkit::eventually;
use factory_testkit::operator::OperatorProcess;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use serde_json::json;

use factory_api::{Environment, HealthState, Release, ReleaseImage, ReleaseSpec};
use factory_integration_tests::{bulk_config_maps, test_name, testdata, testdata_tree};
use fixture::{Apps, Platform};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::PostParams;

const OBJECTS: usize = 400;

async fn count(p: &Platform) -> usize {
    let api: Api<ConfigMap> = Api::namespaced(p.ctx.client.clone(), &format!("{}-bulk", p.ctx.prefix));
    let list = api.list(&ListParams::default().labels("app.kubernetes.io/managed-by=factory-operator")).await;
    list.map(|l| l.items.len()).unwrap_or(0)
}

/// Waits until `done` holds for the count, polling fast.
async fn when(p: &Platform, what: &str, done: impl Fn(usize) -> bool) -> usize {
    for _ in 0..2000 {
        let n = count(p).await;
        if done(n) {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what} (count {})", count(p).await);
}

#[tokio::test]
async fn killed_mid_apply_and_mid_prune_the_operator_converges() {
    let p = Platform::without_operator(test_name!()).await;
    let x = p.ctx.prefix.clone();
    p.repo.write("cluster/bulk.yaml", &bulk_config_maps(&x, 0..OBJECTS)).expect("write");
    p.repo.commit("bulk").expect("commit");
    p.create_factory(json!({"factories": null, "environmentClasses": null})).await;

    // Kill as soon as the first objects are written.
    let mut operator = OperatorProcess::start("operator-1");
    let seen = when(&p, "the first applied objects", |n| n > 0).await;
    operator.kill();
    let after_kill = count(&p).await;
    eprintln!("killed after {seen}..{after_kill} of {OBJECTS} objects were applied");
    assert!(after_kill < OBJECTS, "the kill came too late to be mid-apply ({after_kill} of {OBJECTS})");

    let mut operator = OperatorProcess::start("operator-2");
    let f = p.wait_ready("True", "Reconciled").await;
    let inventory = f.status.expect("status").inventory;
    assert_eq!(inventory.len(), OBJECTS + 1, "every object once in the inventory");
    let mut keys: Vec<String> = inventory.iter().map(factory_core_key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), OBJECTS + 1, "no duplicated inventory entries");
    assert_eq!(count(&p).await, OBJECTS, "every object exists");

    // Kill in the middle of pruning half of them.
    p.repo.write("cluster/bulk.yaml", &bulk_config_maps(&x, 0..OBJECTS / 2)).expect("write");
    p.repo.commit("halve").expect("commit");
    p.poke().await;
    let seen = when(&p, "pruning to start", |n| n < OBJECTS).await;
    operator.kill();
    let after_kill = count(&p).await;
    eprintln!("killed after pruning started ({seen}..{after_kill} left)");
    assert!(after_kill > OBJECTS / 2, "the kill came too late to be mid-prune ({after_kill} left)");

    let operator = OperatorProcess::start("operator-3");
    eventually("pruning to finish after the restart", Duration::from_secs(60), || async {
        anyhow::Ok((count(&p).await == OBJECTS / 2).then_some(()))
    })
    .await
    .expect("converged");
    let f = p.wait_ready("True", "Reconciled").await;
    assert_eq!(f.status.expect("status").inventory.len(), OBJECTS / 2 + 1, "nothing orphaned in the inventory");
    drop(operator);

    // One operator at a time against this control plane: the promotion scenario follows.
    killed_mid_promotion_each_environment_runs_one_release().await;
}

/// Digest of a release's image, one hex digit repeated.
fn digest(digit: char) -> String {
    format!("registry.example.com/shop/web@sha256:{}", digit.to_string().repeat(64))
}

/// What environment `env` of `shop` runs of web, and whether it is healthy.
async fn runs(p: &Platform, shop: &str, env: &str) -> Option<(String, bool)> {
    let e = Api::<Environment>::all(p.ctx.client.clone()).get(&format!("{shop}-{env}")).await.ok()?;
    let app = e.status?.applications.into_iter().find(|a| a.name == "web")?;
    Some((app.release?.name, app.health.is_some_and(|h| h.state == HealthState::Healthy)))
}

/// Release 1 runs in test and stage; release 2 is recorded and the operator is SIGKILLed as
/// soon as test's Deployment starts rolling it out. Restarted, it finishes: test and stage run
/// release 2, healthy, and each environment's Deployment carries exactly its release's digest.
async fn killed_mid_promotion_each_environment_runs_one_release() {
    let p = Platform::without_operator("killed_mid_promotion_each_environment_runs_one_release").await;
    let x = p.ctx.prefix.clone();
    for (path, content) in testdata_tree("platform/applications/platform", &[]).files() {
        p.repo.write(path, content).expect("write");
    }
    let apps = Apps::serve().await;
    let web = testdata("platform/delivery/web/deployment.yaml", &[("pod_labels", "")]);
    let repo = apps.repo("web", &[("deploy/base/deployment.yaml", &web)]);
    let sha = repo.head().expect("head");
    let factory = testdata("platform/delivery/factories/shop.yaml", &[("prefix", &x), ("url", &apps.url("web"))]);
    let shop = format!("{x}-shop");
    let mut operator = OperatorProcess::start("operator-4");
    p.start_with(&[("shop", &factory)], json!({"cluster": null})).await;
    let release = |digit: char| {
        let spec = ReleaseSpec {
            application: "web".into(),
            revision: sha.clone(),
            images: vec![ReleaseImage { name: "web".into(), reference: digest(digit) }],
            pipeline_run: None,
        };
        Release::new(&format!("web-{digit}"), spec)
    };
    let releases: Api<Release> = Api::namespaced(p.ctx.client.clone(), &format!("{shop}-cicd"));
    releases.create(&PostParams::default(), &release('1')).await.expect("release 1");
    for env in ["test", "stage"] {
        eventually(&format!("release 1 healthy in {env}"), Duration::from_secs(120), || async {
            anyhow::Ok((runs(&p, &shop, env).await == Some(("web-1".into(), true))).then_some(()))
        })
        .await
        .expect("release 1");
    }

    releases.create(&PostParams::default(), &release('2')).await.expect("release 2");
    let deployments: Api<Deployment> = Api::namespaced(p.ctx.client.clone(), &format!("{shop}-test"));
    let image = |d: Deployment| d.spec.template.spec.map(|s| s.containers[0].image.clone().unwrap_or_default());
    for _ in 0..3000 {
        let current = deployments.get_opt("web").await.ok().flatten().and_then(image);
        if current == Some(digest('2')) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    operator.kill();
    let mid = runs(&p, &shop, "test").await;
    eprintln!("killed while test rolled out release 2 (test's status then: {mid:?})");
    assert_ne!(mid, Some(("web-2".into(), true)), "the kill came too late to be mid-promotion");

    let _operator = OperatorProcess::start("operator-5");
    for env in ["test", "stage"] {
        eventually(&format!("release 2 healthy in {env}"), Duration::from_secs(120), || async {
            anyhow::Ok((runs(&p, &shop, env).await == Some(("web-2".into(), true))).then_some(()))
        })
        .await
        .expect("release 2 after the restart");
        let live: Api<Deployment> = Api::namespaced(p.ctx.client.clone(), &format!("{shop}-{env}"));
        let d = live.get("web").await.expect("web");
        assert_eq!(image(d.clone()), Some(digest('2')), "{env} runs exactly its release");
        let status = d.status.expect("status");
        assert_eq!((status.replicas, status.updated_replicas), (Some(1), Some(1)), "{env}: no pod of release 1 left");
    }
    let (prod, _) = runs(&p, &shop, "prod").await.unwrap_or_default();
    assert!(prod.is_empty(), "prod waits for an approval: {prod}");
}

/// An entry's identity, version included: two entries for one object would be a duplicate.
fn factory_core_key(e: &factory_api::InventoryEntry) -> String {
    format!("{}/{}/{}/{}", e.api_version, e.kind, e.namespace.clone().unwrap_or_default(), e.name)
}
