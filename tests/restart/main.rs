//! The real operator binary SIGKILLed in the middle of applying and in the middle of pruning,
//! then restarted: it converges with no lost, duplicated or orphaned objects. Its own test
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

use factory_integration_tests::{bulk_config_maps, test_name};
use fixture::Platform;

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

    let _operator = OperatorProcess::start("operator-3");
    eventually("pruning to finish after the restart", Duration::from_secs(60), || async {
        anyhow::Ok((count(&p).await == OBJECTS / 2).then_some(()))
    })
    .await
    .expect("converged");
    let f = p.wait_ready("True", "Reconciled").await;
    assert_eq!(f.status.expect("status").inventory.len(), OBJECTS / 2 + 1, "nothing orphaned in the inventory");
}

/// An entry's identity, version included: two entries for one object would be a duplicate.
fn factory_core_key(e: &factory_api::InventoryEntry) -> String {
    format!("{}/{}/{}/{}", e.api_version, e.kind, e.namespace.clone().unwrap_or_default(), e.name)
}
