//! Kustomize overlays and Helm charts rendered by the real `kustomize` and `helm`: a platform
//! class and an application's layers as overlays (a base, a patch, a configMapGenerator), a
//! chart with per-environment values, inline values and two vendored dependencies; a values
//! change written only where the output changed; and hostile inputs, each refused with its
//! reason while what was applied stays.

use std::time::Duration;

use factory_api::Environment;
use factory_api::environment::ApplicationStatus;
use factory_testkit::eventually;
use factory_testkit::git::Repo;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;
use serde_json::json;

use factory_integration_tests::{test_name, testdata, testdata_raw, testdata_raw_tree};

use crate::fixture::{Apps, Platform};

/// The data of ConfigMap `name` in `namespace`, once it exists, and its resourceVersion.
async fn config_map(p: &Platform, namespace: &str, name: &str) -> (std::collections::BTreeMap<String, String>, String) {
    let api = Api::<ConfigMap>::namespaced(p.ctx.client.clone(), namespace);
    let found = eventually(&format!("ConfigMap {namespace}/{name}"), Duration::from_secs(90), || async {
        anyhow::Ok(api.get_opt(name).await?)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    (found.data.unwrap_or_default(), found.metadata.resource_version.unwrap_or_default())
}

/// Waits until ConfigMap `name` in `namespace` has `key` = `value`.
async fn wait_value(p: &Platform, namespace: &str, name: &str, key: &str, value: &str) -> String {
    let api = Api::<ConfigMap>::namespaced(p.ctx.client.clone(), namespace);
    let what = format!("ConfigMap {namespace}/{name} {key}={value}");
    let result = eventually(&what, Duration::from_secs(90), || async {
        let found = api.get_opt(name).await?;
        let version = found.as_ref().and_then(|c| c.metadata.resource_version.clone());
        let data = found.and_then(|c| c.data).unwrap_or_default();
        anyhow::Ok((data.get(key).map(String::as_str) == Some(value)).then_some(version.unwrap_or_default()))
    })
    .await;
    match result {
        Ok(version) => version,
        Err(e) => panic!("{e}: last {:?}", api.get_opt(name).await.ok().flatten().and_then(|c| c.data)),
    }
}

/// Application `app`'s status in Environment `env` once `done` holds for it.
async fn wait_app(
    p: &Platform,
    env: &str,
    app: &str,
    what: &str,
    done: impl Fn(&ApplicationStatus) -> bool,
) -> ApplicationStatus {
    let api = Api::<Environment>::all(p.ctx.client.clone());
    let find = |e: Environment| e.status.unwrap_or_default().applications.into_iter().find(|a| a.name == app);
    let result = eventually(&format!("{env}: application {app} {what}"), Duration::from_secs(90), || async {
        anyhow::Ok(find(api.get(env).await?).filter(|a| done(a)))
    })
    .await;
    match result {
        Ok(status) => status,
        Err(e) => panic!("{e}\nlast: {:#?}", api.get(env).await.ok().and_then(find)),
    }
}

#[tokio::test]
async fn overlays_and_charts_render_per_environment_and_a_values_change_writes_only_where_it_changes() {
    let p = Platform::serving(test_name!(), "platform/render/platform").await;
    let x = p.ctx.prefix.clone();
    let apps = Apps::serve().await;
    let web = apps.repo("web", &testdata_raw_tree("platform/render/web").files());
    let charts = apps.repo("charts", &testdata_raw_tree("platform/render/charts").files());
    let shop = testdata(
        "platform/render/factories/shop.yaml",
        &[("prefix", &x), ("web", &apps.url("web")), ("charts", &apps.url("charts"))],
    );
    p.start_with(&[("shop", &shop)], json!({"cluster": null})).await;
    let (test, prod) = (format!("{x}-shop-test"), format!("{x}-shop-prod"));

    // The platform's class is an overlay: its annotation reaches every environment's baseline.
    let policies = Api::<NetworkPolicy>::namespaced(p.ctx.client.clone(), &test);
    let policy = eventually("default-deny from the class overlay", Duration::from_secs(60), || async {
        anyhow::Ok(policies.get_opt("default-deny").await?)
    })
    .await
    .expect("policy");
    let annotations = policy.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations.get("platform.example.com/overlay").map(String::as_str), Some("kustomize"));

    // The application's base and its prod overlay (a patch over `../../base`), with the
    // generated ConfigMap (a file that is not YAML, read from git objects) and the factory's
    // variables substituted in kustomize's output as in plain files.
    let base = wait_value(&p, &test, "web", "stage", "base").await;
    assert!(!base.is_empty());
    wait_value(&p, &prod, "web", "stage", "prod").await;
    let (web_test, _) = config_map(&p, &test, "web").await;
    assert_eq!(web_test.get("environment").map(String::as_str), Some("test"), "{web_test:?}");
    let generated =
        Api::<ConfigMap>::namespaced(p.ctx.client.clone(), &test).list(&Default::default()).await.expect("list");
    let settings =
        generated.items.iter().find(|c| c.metadata.name.as_deref().is_some_and(|n| n.starts_with("settings-")));
    let data = settings.and_then(|c| c.data.clone()).unwrap_or_default();
    assert_eq!(data.get("settings.properties").map(String::as_str), Some("color=blue\nsize=10\n"), "{generated:?}");

    // The chart: base values in test, prod's values file in prod, inline values everywhere;
    // release name and namespace set by the factory, `.Capabilities` from this API server;
    // both vendored dependencies; the pre-install hook as a plain object, the test hook left
    // out; `${HOME}` in the chart's output left to the chart.
    let version = p.ctx.client.apiserver_version().await.expect("version").git_version;
    wait_value(&p, &test, "charts-settings", "greeting", "hello from base").await;
    wait_value(&p, &prod, "charts-settings", "greeting", "hello from prod").await;
    let (settings, _) = config_map(&p, &test, "charts-settings").await;
    let expected = [
        ("team", "shop"),
        ("namespace", test.as_str()),
        ("kubeVersion", version.as_str()),
        ("hasDeployments", "true"),
        ("hasReleases", "true"),
        ("script", "echo ${HOME}"),
    ];
    for (key, value) in expected {
        assert_eq!(settings.get(key).map(String::as_str), Some(value), "{key} in {settings:?}");
    }
    assert_eq!(config_map(&p, &test, "common").await.0.get("from").map(String::as_str), Some("file:// dependency"));
    assert_eq!(config_map(&p, &test, "extra").await.0.get("from").map(String::as_str), Some("charts/ directory"));
    config_map(&p, &test, "charts-pre-install").await;
    let missing = Api::<ConfigMap>::namespaced(p.ctx.client.clone(), &test).get_opt("charts-test").await.expect("get");
    assert!(missing.is_none(), "a test hook is never rendered");

    // A change to prod's values file: prod's ConfigMap is rewritten, test's objects (its
    // output is the same) are not written at all.
    let (_, test_before) = config_map(&p, &test, "charts-settings").await;
    let untouched: Vec<(String, String)> = {
        let mut versions = Vec::new();
        for name in ["common", "extra", "charts-pre-install"] {
            versions.push((name.to_string(), config_map(&p, &test, name).await.1));
        }
        versions
    };
    charts.write("deploy/environments/prod/values.yaml", "greeting: hello again from prod\n").expect("write");
    the_plugin_renders_as_the_operator(&p, &shop, &charts, &web, &test, &prod);
    let head = charts.commit("prod greets again").expect("commit");
    p.poke_environment(&prod).await;
    p.poke_environment(&test).await;
    wait_value(&p, &prod, "charts-settings", "greeting", "hello again from prod").await;
    wait_app(&p, &test, "charts", "applied the new revision", |a| {
        a.last_applied_revision.as_deref().is_some_and(|r| r.ends_with(&head))
    })
    .await;
    let (_, test_after) = config_map(&p, &test, "charts-settings").await;
    assert_eq!(test_before, test_after, "test's output did not change, so nothing was written there");
    for (name, before) in untouched {
        assert_eq!(config_map(&p, &test, &name).await.1, before, "{name} in test was written");
    }
}

/// `kubectl factory plan` of the changed checkout renders as the operator does: only prod's
/// ConfigMap would change; `validate` renders the overlays and the chart offline.
fn the_plugin_renders_as_the_operator(p: &Platform, shop: &str, charts: &Repo, web: &Repo, test: &str, prod: &str) {
    let team = format!("{}-shop", p.ctx.prefix);
    let dir = charts.work_tree().display().to_string();
    let (code, out, err) =
        p.ctx.kubectl_factory(&["plan", &team, &dir, "--application", "charts", "--detailed-exitcode"]).expect("plan");
    assert_eq!(code, 2, "{out}{err}");
    let changes: Vec<&str> = out.lines().filter(|l| l.trim_start().starts_with(['~', '+', '-', '!'])).collect();
    assert_eq!(changes.len(), 1, "{out}");
    assert!(changes[0].contains(&format!("ConfigMap {prod}/charts-settings")), "{out}");
    assert!(out.contains(&format!("Environment {test}:")), "{out}");

    let factory = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(factory.path(), shop).expect("write");
    let file = factory.path().display().to_string();
    let (code, out, err) =
        p.ctx.kubectl_factory(&["validate", &dir, "--factory", &file, "--application", "charts"]).expect("validate");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("application repository valid"), "{out}");
    let web_dir = web.work_tree().display().to_string();
    let (code, out, err) = p.ctx.kubectl_factory(&["validate", &web_dir]).expect("validate");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("application repository valid: 2 files, 4 objects"), "{out}");
}

/// Commits `changes` (path, content) and waits until both applications of the risky factory
/// attempted the new commit and say what each expects, while what they applied stays.
async fn refused(p: &Platform, repo: &Repo, env: &str, changes: &[(&str, String)], kz: &str, hc: &str, reason: &str) {
    for (path, content) in changes {
        repo.write(path, content).expect("write");
    }
    let head = repo.commit("hostile input").expect("commit");
    p.poke_environment(env).await;
    for (app, expected) in [("kz", kz), ("hc", hc)] {
        // Content refused while reading the configured paths fails before a revision is
        // recorded as attempted; its message is this step's own.
        let status = wait_app(p, env, app, &format!("refused: {expected}"), |a| {
            let attempted = a.last_attempted_revision.as_deref().is_some_and(|r| r.ends_with(&head));
            a.error.contains(expected) && (attempted || a.error.starts_with("ContentRejected"))
        })
        .await;
        assert!(status.last_applied_revision.as_deref().is_some_and(|r| !r.ends_with(&head)), "{status:?}");
        assert!(!status.inventory.is_empty(), "the inventory is kept: {status:?}");
    }
    let ready = Api::<Environment>::all(p.ctx.client.clone()).get(env).await.expect("env");
    let conditions = ready.status.unwrap_or_default().reconcile.conditions;
    assert!(
        conditions.iter().any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == reason),
        "{conditions:?}"
    );
    // Nothing pruned, nothing rewritten, nothing new.
    assert_eq!(config_map(p, env, "keep").await.0.get("from").map(String::as_str), Some("kustomize"));
    assert_eq!(config_map(p, env, "hc-keep").await.0.get("from").map(String::as_str), Some("helm"));
    let names: Vec<String> = Api::<ConfigMap>::namespaced(p.ctx.client.clone(), env)
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    assert_eq!(names, ["hc-keep", "keep"], "nothing else was applied");
}

#[tokio::test]
async fn hostile_overlays_and_charts_are_refused_with_their_reason_and_nothing_is_applied_or_pruned() {
    let p = Platform::serving(test_name!(), "platform/applications/platform").await;
    let x = p.ctx.prefix.clone();
    let apps = Apps::serve().await;
    let repo = apps.repo("risky", &testdata_raw_tree("platform/render/hostile/repo").files());
    let risky = testdata("platform/render/hostile/factory.yaml", &[("prefix", &x), ("url", &apps.url("risky"))]);
    p.start_with(&[("risky", &risky)], json!({"cluster": null})).await;
    let env = format!("{x}-risky-test");
    config_map(&p, &env, "keep").await;
    config_map(&p, &env, "hc-keep").await;
    let hostile = |name: &str| testdata_raw(&format!("platform/render/hostile/{name}"));
    let (kustomization, chart) = ("deploy/base/kustomization.yaml", "chart/Chart.yaml");
    let template = "chart/templates/configmap.yaml";
    let good_chart = testdata_raw("platform/render/hostile/repo/chart/Chart.yaml");
    let good_template = testdata_raw("platform/render/hostile/repo/chart/templates/configmap.yaml");

    // Each step: what is committed, then what kz (the overlay) and hc (the chart) are refused with.
    let steps = [
        // A remote base; a chart dependency from a chart repository.
        (
            vec![(kustomization, hostile("remote.kustomization.yaml")), (chart, hostile("url-dependency.Chart.yaml"))],
            "https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.0.0 is remote",
            "dependency redis from https://charts.bitnami.com/bitnami is remote",
        ),
        // An exec function as a generator; a template that runs until the time limit.
        (
            vec![
                (kustomization, hostile("exec.kustomization.yaml")),
                ("deploy/base/generator.yaml", hostile("exec.generator.yaml")),
                (chart, good_chart),
                (template, hostile("loop.template.yaml")),
            ],
            "deploy/base/generator.yaml: plugin example.com/v1 Generator would run a program",
            "helm on chart chart/ ran longer than 5s and was stopped",
        ),
        // A base outside the repository; output over the size limit.
        (
            vec![(kustomization, hostile("escape.kustomization.yaml")), (template, hostile("huge.template.yaml"))],
            "deploy/base/kustomization.yaml: ../../../../../../etc leaves the repository",
            "output is larger than the limit of 1048576 bytes",
        ),
    ];
    for (changes, kz, hc) in steps {
        refused(&p, &repo, &env, &changes, kz, hc, "RenderFailed").await;
    }
    // A file the kustomization reads is a symlink out of the repository: refused when the
    // overlay's path is read, and by the tree the chart renders from (nothing of it reaches the
    // disk); the chart is good again otherwise.
    std::os::unix::fs::symlink("/etc/passwd", repo.work_tree().join("deploy/base/leak.properties")).expect("symlink");
    let why = "deploy/base/leak.properties: symlink to /etc/passwd leaves the repository";
    refused(
        &p,
        &repo,
        &env,
        &[(kustomization, hostile("symlink.kustomization.yaml")), (template, good_template)],
        why,
        why,
        "ContentRejected",
    )
    .await;
}
