//! The fault suite, against the real operator binary: kube-apiserver SIGKILLed and restarted in
//! the middle of a reconcile; rapid commits A → B (broken) → C; the operator SIGKILLed between
//! apply and prune, round after round; the git server failing. Each ends converged to the last
//! good revision with no lost, duplicated or orphaned object, and nothing pruned on a failure.
//! (Outage, revoked auth, force-push, one bad document among good ones and an emptied path are
//! in the `platform` binary's failures test.) One test, phase after phase: restarting the API
//! server would disturb any other test of this binary.

#[path = "../platform/fixture.rs"]
#[allow(dead_code)]
mod fixture;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use factory_testkit::cluster::control_plane;
use factory_testkit::eventually;
use factory_testkit::operator::OperatorProcess;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::json;

use factory_integration_tests::{bulk_config_maps, test_name, testdata};
use fixture::Platform;

/// Names of the ConfigMaps the operator manages in the bulk namespace.
async fn managed(p: &Platform) -> BTreeSet<String> {
    let api: Api<ConfigMap> = Api::namespaced(p.ctx.client.clone(), &format!("{}-bulk", p.ctx.prefix));
    let list = api.list(&ListParams::default().labels("app.kubernetes.io/managed-by=factory-operator")).await;
    list.map(|l| l.items.iter().map(|c| c.name_any()).collect()).unwrap_or_default()
}

fn names(range: std::ops::Range<usize>) -> BTreeSet<String> {
    range.map(|i| format!("cm-{i:04}")).collect()
}

/// Waits until Ready at HEAD, then checks cluster and inventory hold exactly `expected`.
async fn converged(p: &Platform, expected: &BTreeSet<String>, phase: &str) {
    let f = p.wait_ready("True", "Reconciled").await;
    let inventory = f.status.expect("status").inventory;
    let configmaps: Vec<&str> = inventory.iter().filter(|e| e.kind == "ConfigMap").map(|e| e.name.as_str()).collect();
    let unique: BTreeSet<String> = configmaps.iter().map(|n| n.to_string()).collect();
    assert_eq!(configmaps.len(), unique.len(), "{phase}: duplicated inventory entries");
    assert_eq!(&unique, expected, "{phase}: inventory");
    assert_eq!(&managed(p).await, expected, "{phase}: cluster (nothing lost, nothing orphaned)");
    eprintln!("{phase}: converged, {} objects", expected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_converges_through_faults() {
    let p = Platform::without_operator(test_name!()).await;
    let x = p.ctx.prefix.clone();
    p.repo.write("cluster/bulk.yaml", &bulk_config_maps(&x, 0..300)).expect("write");
    p.repo.commit("300 objects").expect("commit");
    p.create_factory(json!({"factories": null, "environmentClasses": null})).await;

    // 1. kube-apiserver SIGKILLed while the first revision is being applied, back after 3 s.
    let mut operator = OperatorProcess::start("faults-1");
    eventually("the first objects", Duration::from_secs(60), || async {
        anyhow::Ok((!managed(&p).await.is_empty()).then_some(()))
    })
    .await
    .expect("applying");
    let seen = managed(&p).await.len();
    let started = Instant::now();
    tokio::task::block_in_place(|| {
        control_plane().lock().unwrap_or_else(|e| e.into_inner()).restart_apiserver(Duration::from_secs(3))
    })
    .expect("restart kube-apiserver");
    eprintln!(
        "kube-apiserver killed after {seen} of 300 objects, serving again after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(seen < 300, "the restart came too late to be mid-reconcile ({seen} of 300)");
    converged(&p, &names(0..300), "apiserver restart").await;

    // 2. Rapid commits: A (above), B with a broken document, C dropping 100 and adding 10.
    p.repo.write("cluster/broken.yaml", &testdata("faults/cluster/broken.yaml", &[])).expect("write");
    p.repo.commit("B: broken").expect("commit");
    p.repo.remove("cluster/broken.yaml").expect("rm");
    p.repo.write("cluster/bulk.yaml", &bulk_config_maps(&x, 100..310)).expect("write");
    p.repo.commit("C: good again").expect("commit");
    p.poke().await;
    // Watches broken by the restart come back after the watch backoff (capped at 2 s; kube's
    // default let it grow while the API server was down, and this took 181 s); the reconcile follows.
    let resumed = Instant::now();
    let head = p.repo.head().expect("head");
    eventually("the first reconcile after the restart", Duration::from_secs(60), || async {
        let f = p.factories().get(&p.name).await?;
        let at = f.status.and_then(|s| s.reconcile.last_attempted_revision).is_some_and(|r| r.ends_with(&head));
        anyhow::Ok(at.then_some(()))
    })
    .await
    .expect("watches resumed");
    eprintln!(
        "watch-driven reconciles resumed {:.0}s after the restart's last effects",
        resumed.elapsed().as_secs_f64()
    );
    converged(&p, &names(100..310), "A → B (broken) → C").await;

    // 3. SIGKILL between apply and prune, three rounds: each revision adds 20 and drops 40;
    //    the kill comes as soon as the first new object exists (applied, not yet pruned).
    let mut low = 100;
    let mut high = 310;
    for round in 0..3 {
        low += 40;
        high += 20;
        p.repo.write("cluster/bulk.yaml", &bulk_config_maps(&x, low..high)).expect("write");
        p.repo.commit(&format!("round {round}")).expect("commit");
        p.poke().await;
        let newest = format!("cm-{:04}", high - 1);
        let first_new = format!("cm-{:04}", high - 20);
        eventually("new objects applied", Duration::from_secs(60), || async {
            let m = managed(&p).await;
            anyhow::Ok((m.contains(&first_new) || m.contains(&newest)).then_some(()))
        })
        .await
        .expect("applying");
        operator.kill();
        let left = managed(&p).await;
        eprintln!("round {round}: killed with {} objects present (target {})", left.len(), high - low);
        operator = OperatorProcess::start(&format!("faults-round-{round}"));
    }
    converged(&p, &names(low..high), "repeated SIGKILL between apply and prune").await;

    // 4. The git server fails: the factory says so, nothing is pruned; then it recovers.
    p.http.set_unavailable(true);
    p.repo.write("cluster/bulk.yaml", &bulk_config_maps(&x, low..low + 10)).expect("write");
    p.repo.commit("D: prune most").expect("commit");
    p.poke().await;
    eventually("FetchFailed", Duration::from_secs(60), || async {
        let f = p.factories().get(&p.name).await?;
        let failed = f
            .status
            .is_some_and(|s| s.reconcile.conditions.iter().any(|c| c.type_ == "Ready" && c.reason == "FetchFailed"));
        anyhow::Ok(failed.then_some(()))
    })
    .await
    .expect("fetch failure reported");
    assert_eq!(managed(&p).await, names(low..high), "nothing pruned while git fails");
    p.http.set_unavailable(false);
    p.poke().await;
    converged(&p, &names(low..low + 10), "git recovered").await;
    drop(operator);
}
