//! Every `kubectl factory` command, run as a user runs it (the control plane's kubectl finding
//! the plugin on PATH) against the real API server: status, validate, plan (platform and
//! application), preview create/list/delete and reconcile.

use std::time::Duration;

use factory_api::Environment;
use factory_testkit::eventually;
use factory_testkit::git::Repo;
use kube::api::Api;
use serde_json::json;

use factory_integration_tests::{test_name, testdata};

use crate::fixture::{Apps, Platform};

#[tokio::test]
async fn every_plugin_command_works_against_the_cluster() {
    let files: &[(&str, &str)] = &[
        ("classes/base/limits.yaml", &testdata("platform/cli/classes/base/limits.yaml", &[])),
        ("classes/preview/ttl.yaml", &testdata("platform/cli/classes/preview/ttl.yaml", &[])),
    ];
    let p = Platform::with_files(test_name!(), files, "cluster-admin").await;
    let x = p.ctx.prefix.clone();
    let apps = Apps::serve().await;
    let cart =
        apps.repo("cart", &[("deploy/base/config.yaml", &testdata("platform/cli/cart/deploy/base/config.yaml", &[]))]);
    let keep = testdata("platform/cli/cluster/tools.yaml", &[("prefix", &x)]);
    p.repo.write("cluster/tools.yaml", &keep).expect("write");
    p.repo.write("cluster/old.yaml", &testdata("platform/cli/cluster/old.yaml", &[("prefix", &x)])).expect("write");
    let shop = crate::fixture::team_with_cart(&x, "shop", &apps.url("cart"), "  previews: {max: 3}\n");
    p.start_with(&[("shop", &shop)], json!({"environmentClasses": [{"name": "base", "path": "classes/base/"}, {"name": "preview", "path": "classes/preview/", "extends": ["base"]}]})).await;
    let shop = format!("{x}-shop");
    let envs: Api<Environment> = Api::all(p.ctx.client.clone());
    eventually("the test environment with cart applied", Duration::from_secs(90), || async {
        let e = envs.get(&format!("{shop}-test")).await?;
        let applied = e
            .status
            .is_some_and(|s| s.applications.iter().any(|a| a.name == "cart" && a.last_applied_revision.is_some()));
        anyhow::Ok(applied.then_some(()))
    })
    .await
    .expect("cart applied");

    let root = p.repo.work_tree().display().to_string();

    status_prints_the_tree(&p).await;
    validate_names_the_broken_file(&p, &root).await;
    plan_shows_the_platforms_changes_and_writes_nothing(&p, &root, &keep).await;
    plan_shows_an_applications_change_in_each_environment(&p, &cart).await;
    previews_are_created_listed_and_deleted(&p).await;
    reconcile_annotates_the_factory(&p).await;
}

/// `status`: the factory and its environments as a tree, or as JSON.
async fn status_prints_the_tree(p: &Platform) {
    let shop = format!("{}-shop", p.ctx.prefix);
    let (code, out, err) = p.ctx.kubectl_factory(&["status", &shop]).expect("status");
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("NAME") && out.contains(&format!("└─ {shop}-test")), "{out}");
    let (_, json_out, _) = p.ctx.kubectl_factory(&["status", &shop, "-o", "json"]).expect("status json");
    let tree: serde_json::Value = serde_json::from_str(&json_out).expect("json");
    assert_eq!(tree[0]["children"][0]["kind"], "Environment");
}

/// `validate`: the checkout as it is, then with a broken file (exit non-zero, file and line named).
async fn validate_names_the_broken_file(p: &Platform, root: &str) {
    let (code, out, err) = p.ctx.kubectl_factory(&["validate", root]).expect("validate");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("platform repository valid"), "{out}");
    p.repo.write("cluster/broken.yaml", &testdata("platform/cli/cluster-broken.yaml", &[])).expect("write");
    let (code, out, _) = p.ctx.kubectl_factory(&["validate", root]).expect("validate");
    assert_ne!(code, 0);
    assert!(out.contains("cluster/broken.yaml") && out.contains("INVALID"), "{out}");
    p.repo.remove("cluster/broken.yaml").expect("remove");
}

/// `plan` (platform): one object changed, one new, one removed, and a class change reaching the
/// environment; a plan writes nothing; as the repository is in git, nothing to do.
async fn plan_shows_the_platforms_changes_and_writes_nothing(p: &Platform, root: &str, keep: &str) {
    let (x, shop) = (&p.ctx.prefix, format!("{}-shop", p.ctx.prefix));
    p.repo.write("cluster/tools.yaml", &keep.replace("a: '1'", "a: '2'")).expect("write");
    p.repo.write("cluster/new.yaml", &testdata("platform/cli/cluster/new.yaml", &[("prefix", x)])).expect("write");
    p.repo.remove("cluster/old.yaml").expect("remove");
    p.repo
        .write("classes/base/limits.yaml", &testdata("platform/cli/class-base-limits-gold.yaml", &[]))
        .expect("write");
    let (code, out, err) = p.ctx.kubectl_factory(&["plan", &p.name, root, "--detailed-exitcode"]).expect("plan");
    assert_eq!(code, 2, "changes → exit 2: {out}{err}");
    assert!(out.contains(&format!("~ change   ConfigMap {x}-tools/keep  (data.a)")), "{out}");
    assert!(out.contains(&format!("+ create   ConfigMap {x}-tools/new")), "{out}");
    assert!(out.contains(&format!("- prune    ConfigMap {x}-tools/old")), "{out}");
    assert!(out.contains(&format!("Environment {shop}-test:")), "{out}");
    assert!(out.contains(&format!("~ change   ConfigMap {shop}-test/class-settings  (data.tier)")), "{out}");
    // A plan writes nothing.
    let live = p
        .ctx
        .kubectl(&["get", "configmap", "keep", "-n", &format!("{x}-tools"), "-o", "jsonpath={.data.a}"])
        .expect("get");
    assert_eq!(live, "1");
    // As the repository is in git: nothing to do.
    p.repo.git(&["checkout", "--", "."]).expect("reset");
    p.repo.git(&["clean", "-fdq"]).expect("clean");
    let (code, out, err) = p.ctx.kubectl_factory(&["plan", &p.name, root, "--detailed-exitcode"]).expect("plan");
    assert_eq!(code, 0, "no changes → exit 0: {out}{err}");
    assert!(out.contains("plan: ") && !out.contains("+ create") && !out.contains("~ change"), "{out}");
}

/// `plan` (application): the team's change to its config, in each of its environments.
async fn plan_shows_an_applications_change_in_each_environment(p: &Platform, cart: &Repo) {
    let shop = format!("{}-shop", p.ctx.prefix);
    cart.write("deploy/base/config.yaml", &testdata("platform/cli/cart/deploy/base/config-debug.yaml", &[]))
        .expect("write");
    let cart_root = cart.work_tree().display().to_string();
    let (code, out, err) =
        p.ctx.kubectl_factory(&["plan", &shop, &cart_root, "--application", "cart", "-o", "json"]).expect("plan app");
    assert_eq!(code, 0, "{err}");
    let plans: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(plans[0]["target"], format!("Environment {shop}-test"));
    assert_eq!(plans[0]["changes"][0]["change"], "Change", "{out}");
    assert_eq!(plans[0]["changes"][0]["details"], json!(["data.level"]));
    let (code, _, err) = p.ctx.kubectl_factory(&["plan", &shop, &cart_root]).expect("plan without app");
    assert_ne!(code, 0);
    assert!(err.contains("--application"), "{err}");
}

/// `preview create`, `list` and `delete`.
async fn previews_are_created_listed_and_deleted(p: &Platform) {
    let shop = format!("{}-shop", p.ctx.prefix);
    let (code, out, err) = p
        .ctx
        .kubectl_factory(&[
            "preview",
            "create",
            "pr-1",
            "--factory",
            &shop,
            "--application",
            "cart",
            "--branch",
            "main",
            "--ttl",
            "2h",
        ])
        .expect("create");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pr-1 created"), "{out}");
    eventually("the preview listed Ready", Duration::from_secs(90), || async {
        let (_, out, _) = p.ctx.kubectl_factory(&["preview", "list", "--factory", &shop]).expect("list");
        anyhow::Ok(
            (out.contains("pr-1") && out.contains(&format!("{shop}-pv-pr-1")) && out.contains("True")).then_some(()),
        )
    })
    .await
    .expect("listed");
    let (code, out, err) = p.ctx.kubectl_factory(&["preview", "delete", "pr-1", "--factory", &shop]).expect("delete");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("deleted"), "{out}");
    let (code, _, err) = p
        .ctx
        .kubectl_factory(&["preview", "create", "pr-2", "--factory", &shop, "--application", "cart"])
        .expect("create");
    assert_ne!(code, 0);
    assert!(err.contains("--branch"), "says what is missing: {err}");
}

/// `reconcile`: the annotation the operator reacts to.
async fn reconcile_annotates_the_factory(p: &Platform) {
    let shop = format!("{}-shop", p.ctx.prefix);
    let (code, out, err) = p.ctx.kubectl_factory(&["reconcile", &shop]).expect("reconcile");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("reconcile requested"), "{out}");
    let annotated = p
        .ctx
        .kubectl(&["get", "factory", &shop, "-o", "jsonpath={.metadata.annotations.factories\\.dev/requested-at}"])
        .expect("get");
    assert!(!annotated.is_empty());
    let (code, _, err) = p.ctx.kubectl_factory(&["reconcile", "no-such-factory"]).expect("reconcile");
    assert_ne!(code, 0);
    assert!(err.contains("no-such-factory"), "{err}");
}
