//! Two real operator binaries with leader election against the real API server: only the
//! leader reconciles; SIGKILLing it hands over within about 15 s (measured and printed); a
//! SIGTERMed leader hands its lease back at once; `/metrics` names the series operators are
//! watched by. Its own test binary, so no other operator runs against this control plane.

#[path = "../platform/fixture.rs"]
#[allow(dead_code)]
mod fixture;

use std::time::{Duration, Instant};

use factory_testkit::eventually;
use factory_testkit::operator::OperatorProcess;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, PostParams};
use serde_json::json;

use factory_integration_tests::testdata;
use fixture::Platform;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases.get_opt("factory-operator").await.ok().flatten().and_then(|l| l.spec?.holder_identity)
}

async fn metrics(port: u16) -> String {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    factory_testkit::http::get(addr, "/metrics").await.map(|(_, body)| body).unwrap_or_default()
}

#[tokio::test]
async fn a_standby_takes_over_from_a_killed_leader_and_metrics_name_the_series() {
    let test = "a_standby_takes_over_from_a_killed_leader_and_metrics_name_the_series";
    let p = Platform::without_operator(test).await;
    let x = p.ctx.prefix.clone();
    let lease_ns = p.ctx.name("leader");
    Api::<Namespace>::all(p.ctx.client.clone())
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": lease_ns}})).expect("ns"))
        .await
        .expect("lease namespace");
    let leases: Api<Lease> = Api::namespaced(p.ctx.client.clone(), &lease_ns);
    let (port_a, port_b, port_c) = (free_port(), free_port(), free_port());
    let flags = |port: u16| {
        vec![
            "--leader-elect".to_string(),
            format!("--leader-election-namespace={lease_ns}"),
            format!("--metrics-addr=127.0.0.1:{port}"),
        ]
    };
    let start = |name: &str, port: u16| {
        let f = flags(port);
        let args: Vec<&str> = f.iter().map(String::as_str).collect();
        OperatorProcess::start_with(name, &args)
    };

    let mut a = start("leader-a", port_a);
    let first = eventually("a leader", Duration::from_secs(60), || async { anyhow::Ok(holder(&leases).await) })
        .await
        .expect("a took the lease");
    let mut b = start("standby-b", port_b);
    // The standby answers health checks, and says it does not lead.
    eventually("the standby's health endpoint", Duration::from_secs(30), || async {
        let (code, _) =
            factory_testkit::http::get(std::net::SocketAddr::from(([127, 0, 0, 1], port_b)), "/healthz").await?;
        anyhow::Ok((code == 200).then_some(()))
    })
    .await
    .expect("standby healthy");
    assert!(metrics(port_b).await.contains("factory_operator_leader 0"), "{}", metrics(port_b).await);
    assert!(metrics(port_a).await.contains("factory_operator_leader 1"));

    // The leader reconciles; the standby only waits.
    p.repo.write("cluster/cm.yaml", &testdata("leader/cluster/cm.yaml", &[("prefix", &x)])).expect("write");
    p.repo.commit("one").expect("commit");
    p.create_factory(json!({"factories": null, "environmentClasses": null})).await;
    p.wait_ready("True", "Reconciled").await;
    assert!(b.log_tail(200).contains("waiting to become the leader"));
    assert!(!b.log_tail(200).contains("became the leader"), "{}", b.log_tail(50));

    // The named series, after a reconcile.
    let scraped = metrics(port_a).await;
    for series in [
        "factory_operator_reconciles_total{controller=\"factory\",reason=\"Reconciled\"}",
        "factory_operator_reconcile_duration_seconds_bucket{",
        "factory_operator_objects_applied_total{controller=\"factory\"}",
        "factory_operator_objects_pruned_total{controller=\"factory\"}",
        "factory_operator_git_fetch_duration_seconds_count{outcome=\"fetched\"}",
        "factory_operator_leader 1",
    ] {
        assert!(scraped.contains(series), "missing {series} in\n{scraped}");
    }

    // SIGKILL the leader: the standby takes over once the lease runs out.
    a.kill();
    let killed = Instant::now();
    let second = eventually("a new leader", Duration::from_secs(40), || async {
        anyhow::Ok(holder(&leases).await.filter(|h| *h != first))
    })
    .await
    .expect("b took over");
    let takeover = killed.elapsed();
    eprintln!("takeover after SIGKILL of the leader: {:.1}s", takeover.as_secs_f64());
    assert!(takeover < Duration::from_secs(17), "takeover took {takeover:?}");
    // The new leader reconciles: a new commit reaches the cluster.
    p.repo.write("cluster/cm2.yaml", &testdata("leader/cluster/configmap-two.yaml", &[("prefix", &x)])).expect("write");
    p.repo.commit("two").expect("commit");
    p.poke().await;
    let configmaps: Api<ConfigMap> = Api::namespaced(p.ctx.client.clone(), &format!("{x}-app"));
    eventually("the new leader applies", Duration::from_secs(60), || async {
        anyhow::Ok(configmaps.get_opt("two").await?)
    })
    .await
    .expect("applied by b");

    // SIGTERM hands the lease back: a third process takes over at once.
    let _c = start("standby-c", port_c);
    eventually("c waiting", Duration::from_secs(30), || async {
        anyhow::Ok(metrics(port_c).await.contains("factory_operator_leader 0").then_some(()))
    })
    .await
    .expect("c up");
    b.stop(Duration::from_secs(20));
    let stopped = Instant::now();
    eventually("c leads", Duration::from_secs(30), || async {
        anyhow::Ok(holder(&leases).await.filter(|h| *h != second && !h.is_empty()))
    })
    .await
    .expect("c took over");
    let handover = stopped.elapsed();
    eprintln!("takeover after SIGTERM of the leader: {:.1}s", handover.as_secs_f64());
    assert!(handover < Duration::from_secs(6), "a released lease is taken at once, took {handover:?}");
}
