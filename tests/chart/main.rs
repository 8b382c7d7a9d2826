//! The Helm chart: `helm lint --strict`; `helm template` applied with server-side apply and
//! strict field validation, so the API server's real schemas judge every object; `deploy/` is
//! what the chart renders; and the real operator binary, running with nothing but the chart's
//! RBAC (a token of the chart's service account), builds a platform factory, a team factory,
//! its environment and an application — least privilege that is also enough. Its own test
//! binary: the operator here must be the only one.

#[path = "../platform/fixture.rs"]
#[allow(dead_code)]
mod fixture;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use factory_api::Environment;
use factory_testkit::eventually;
use factory_testkit::operator::OperatorProcess;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, PostParams};
use serde_json::json;

use factory_integration_tests::{test_name, testdata};
use fixture::{Apps, Platform};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn helm() -> PathBuf {
    factory_control_plane::binaries::helm(&|line| eprintln!("  · {line}")).expect(
        "Helm is built from helm.sh/helm/v3 with the machine's Go toolchain (`cargo xtask control-plane build`)",
    )
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn the_chart_lints_strictly_and_deploy_is_what_it_renders() {
    let chart = root().join("charts/factory-operator");
    for values in [None, Some(chart.join("ci/webhook-values.yaml"))] {
        let mut cmd = Command::new(helm());
        cmd.args(["lint", "--strict"]).arg(&chart);
        if let Some(v) = &values {
            cmd.arg("-f").arg(v);
        }
        let (ok, out) = run(&mut cmd);
        assert!(ok, "helm lint --strict: {out}");
    }
    // The schema refuses what the chart cannot run with.
    let (ok, out) = run(Command::new(helm())
        .args(["lint", "--strict", "--set", "replicaCount=2,leaderElection.enabled=false"])
        .arg(&chart));
    assert!(!ok && out.contains("leaderElection"), "two replicas without leader election must be refused: {out}");
    let xtask = root().join("target/debug/xtask");
    assert!(
        xtask.is_file(),
        "{} is missing: `cargo build -p xtask` (`cargo xtask test` builds every binary)",
        xtask.display()
    );
    let (ok, out) = run(Command::new(xtask).current_dir(root()).args(["deploy", "--check"]));
    assert!(ok, "deploy/ is stale: {out}");
}

#[tokio::test]
async fn the_operator_runs_with_only_the_charts_rbac() {
    let p = Platform::without_operator(test_name!()).await;
    let x = p.ctx.prefix.clone();
    let release_ns = p.ctx.name("factory-system");
    Api::<Namespace>::all(p.ctx.client.clone())
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": release_ns}})).expect("ns"))
        .await
        .expect("release namespace");

    // Render with every optional part on and apply strictly. ServiceMonitor's CRD (Prometheus
    // Operator) is not served here, so that one document is left to `helm lint`.
    let chart = root().join("charts/factory-operator");
    let fullname = p.ctx.name("factory-operator");
    let (ok, rendered) = run(Command::new(helm())
        .args(["template", "factory-operator"])
        .arg(&chart)
        .args(["--namespace", &release_ns, "--kube-version", "1.37.2", "-f"])
        .arg(chart.join("ci/webhook-values.yaml"))
        .args(["--set", &format!("fullnameOverride={fullname}")])
        .args([
            "--set",
            &format!("platformServiceAccounts[0].namespace={},platformServiceAccounts[0].name=platform", p.system),
        ]));
    assert!(ok, "helm template: {rendered}");
    let documents: Vec<&str> =
        rendered.split("\n---").filter(|d| d.contains("kind:") && !d.contains("kind: ServiceMonitor")).collect();
    let file = std::env::temp_dir().join(format!("{x}-chart.yaml"));
    std::fs::write(&file, documents.join("\n---")).expect("write");
    let applied = p
        .ctx
        .kubectl(&[
            "apply",
            "--server-side",
            "--validate=strict",
            "--field-manager=helm-test",
            "-f",
            &file.display().to_string(),
        ])
        .expect("every chart object passes the API server's strict validation");
    assert!(
        applied.contains("deployment.apps/") && applied.contains("clusterrole.rbac.authorization.k8s.io/"),
        "{applied}"
    );

    // What the chart's account may not do, asked of the API server's authorizer.
    let account = format!("system:serviceaccount:{release_ns}:{fullname}");
    let groups = vec![
        "system:serviceaccounts".to_string(),
        format!("system:serviceaccounts:{release_ns}"),
        "system:authenticated".into(),
    ];
    let reviews: Api<SubjectAccessReview> = Api::all(p.ctx.client.clone());
    let allowed = |verb: &str, group: &str, resource: &str, name: &str, ns: &str| {
        let review: SubjectAccessReview = serde_json::from_value(json!({"spec": {"user": account, "groups": groups,
            "resourceAttributes": {"verb": verb, "group": group, "resource": resource, "name": name, "namespace": ns}}}))
        .expect("review");
        let reviews = reviews.clone();
        async move {
            reviews.create(&PostParams::default(), &review).await.expect("review").status.is_some_and(|s| s.allowed)
        }
    };
    for (verb, group, resource, name, ns) in [
        ("create", "rbac.authorization.k8s.io", "clusterrolebindings", "", ""),
        ("create", "rbac.authorization.k8s.io", "rolebindings", "", p.system.as_str()),
        ("create", "", "configmaps", "", p.system.as_str()),
        ("create", "", "namespaces", "", ""),
        ("delete", "", "secrets", "x", p.system.as_str()),
        ("impersonate", "", "serviceaccounts", "default", p.system.as_str()),
        // Team accounts only in the tenant namespace: never an account of a team's own namespaces.
        ("impersonate", "", "serviceaccounts", "factory", "any-team-cicd"),
        ("impersonate", "", "serviceaccounts", "deploy-prod", "any-team-cicd"),
        ("impersonate", "", "groups", "system:masters", ""),
        ("impersonate", "", "users", "admin", ""),
        ("patch", "rbac.authorization.k8s.io", "clusterroles", "cluster-admin", ""),
    ] {
        assert!(!allowed(verb, group, resource, name, ns).await, "{account} may {verb} {resource}/{name} in '{ns}'");
    }
    for (verb, group, resource, name, ns) in [
        ("impersonate", "", "serviceaccounts", "platform", p.system.as_str()),
        ("impersonate", "", "serviceaccounts", "any-team", factory_api::DEFAULT_TENANT_NAMESPACE),
        ("impersonate", "", "groups", "factories.dev:platform", ""),
        ("list", "factories.dev", "factories", "", ""),
    ] {
        assert!(allowed(verb, group, resource, name, ns).await, "{account} may not {verb} {resource}/{name} in '{ns}'");
    }

    // A token of that account, and the real operator with it.
    let token = p
        .ctx
        .kubectl(&["create", "token", &fullname, "-n", &release_ns, "--duration=1h"])
        .expect("token")
        .trim()
        .to_string();
    let admin = std::fs::read_to_string(p.ctx.admin_kubeconfig()).expect("admin kubeconfig");
    let mut config: serde_yaml::Value = serde_yaml::from_str(&admin).expect("yaml");
    config["users"] = serde_yaml::from_str(&format!("[{{name: chart, user: {{token: '{token}'}}}}]")).expect("users");
    if let Some(contexts) = config["contexts"].as_sequence_mut() {
        for c in contexts {
            c["context"]["user"] = "chart".into();
        }
    }
    let kubeconfig = std::env::temp_dir().join(format!("{x}-chart.kubeconfig"));
    std::fs::write(&kubeconfig, serde_yaml::to_string(&config).expect("yaml")).expect("write kubeconfig");
    let _operator = OperatorProcess::start_as(
        "chart-operator",
        &kubeconfig,
        &["--leader-elect", &format!("--leader-election-namespace={release_ns}")],
    );

    // A platform factory, a team factory with an environment, and an application in it.
    let apps = Apps::serve().await;
    apps.repo("cart", &[("deploy/base/config.yaml", &testdata("common/cart/configmap-cart-config.yaml", &[]))]);
    p.repo
        .write("cluster/ns.yaml", &testdata("chart/cluster/namespace-shared.yaml", &[("prefix", &x)]))
        .expect("write");
    p.repo
        .write("classes/base/cm.yaml", &testdata("common/platform-base/classes/base/limits.yaml", &[]))
        .expect("write");
    p.start_with(&[("shop", &fixture::team_with_cart(&x, "shop", &apps.url("cart"), ""))], json!({})).await;
    let envs: Api<Environment> = Api::all(p.ctx.client.clone());
    eventually("the team environment with its application", Duration::from_secs(90), || async {
        let e = envs.get(&format!("{x}-shop-test")).await?;
        let s = e.status.unwrap_or_default();
        let ready = s.reconcile.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
        let app =
            s.applications.iter().any(|a| a.name == "cart" && a.error.is_empty() && a.last_applied_revision.is_some());
        anyhow::Ok((ready && app).then_some(()))
    })
    .await
    .expect("built with the chart's rights only");
    Api::<ConfigMap>::namespaced(p.ctx.client.clone(), &format!("{x}-shop-test"))
        .get("cart-config")
        .await
        .expect("applied");
    let lease = p
        .ctx
        .kubectl(&["get", "lease", "factory-operator", "-n", &release_ns, "-o", "jsonpath={.spec.holderIdentity}"])
        .expect("lease");
    assert!(!lease.is_empty(), "the chart's operator holds the lease");
}
