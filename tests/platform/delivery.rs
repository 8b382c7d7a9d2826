//! Delivery through the factory: a build run records a release; test runs it as soon as it is
//! recorded, stage once it has been healthy in test for 5 s, prod only once someone granted
//! `factory-approver` there approves it (an owner is refused by RBAC). A release whose rollout
//! fails in test never reaches stage; rolling back is approving an earlier release; bad
//! releases and promotions are refused with their reason, and nothing running changes.

use std::time::{Duration, Instant};

use factory_api::release::ApprovalSpec;
use factory_api::{Approval, Environment, Factory, HealthState, Release, ReleaseSpec};
use factory_testkit::eventually;
use factory_testkit::git::Repo;
use factory_testkit::receiver::Receiver;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

use factory_integration_tests::{test_name, testdata};

use crate::fixture::{Apps, Platform};

const FAILING: &str = ", pod-container-running-failed.stage.kwok.x-k8s.io: \"true\"";

fn config(pod_labels: &str) -> String {
    testdata("platform/delivery/web/deployment.yaml", &[("pod_labels", pod_labels)])
}

/// A digest made of one repeated hex digit.
fn digest(digit: char) -> String {
    format!("sha256:{}", digit.to_string().repeat(64))
}

struct Shop {
    receiver: Receiver,
    name: String,
    cicd: String,
    web: Repo,
    owner: Client,
    approver: Client,
}

impl Shop {
    fn namespace(&self, env: &str) -> String {
        format!("{}-{env}", self.name)
    }
}

#[tokio::test]
async fn a_release_travels_test_stage_prod_with_health_gates_and_approvals() {
    let p = Platform::serving(test_name!(), "platform/applications/platform").await;
    let x = p.ctx.prefix.clone();
    let apps = Apps::serve().await;
    let web = apps.repo("web", &[("deploy/base/deployment.yaml", &config(""))]);
    let factory = testdata("platform/delivery/factories/shop.yaml", &[("prefix", &x), ("url", &apps.url("web"))]);
    p.start_with(&[("shop", &factory)], json!({"cluster": null})).await;
    let owner = p.ctx.client_as_user("olivia", &[&format!("{x}-shop-owners")]).await.expect("owner");
    let approver = p.ctx.client_as_user("arthur", &[&format!("{x}-shop-approvers")]).await.expect("approver");
    let name = format!("{x}-shop");
    let receiver = Receiver::start(0).await.expect("notification receiver");
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "approvers"},
        "stringData": {"url": format!("{}/approvers", receiver.url)}}))
    .expect("secret");
    let secrets: Api<Secret> = Api::namespaced(p.ctx.client.clone(), &format!("{name}-cicd"));
    eventually("the approvers' target", Duration::from_secs(60), || async {
        secrets.create(&PostParams::default(), &secret).await.map(|_| Some(()))
    })
    .await
    .expect("secret");
    let shop = Shop { receiver, cicd: format!("{name}-cicd"), name, web, owner, approver };

    nothing_runs_before_the_first_release(&p, &shop).await;
    let first = a_build_run_records_a_release_that_reaches_test_then_stage(&p, &shop).await;
    prod_waits_for_an_approval_an_owner_may_not_give(&p, &shop, &first).await;
    let failing = a_release_whose_rollout_fails_never_reaches_stage(&p, &shop, &first).await;
    rolling_back_test_is_approving_the_earlier_release(&p, &shop, &first, &failing).await;
    bad_releases_and_promotions_are_refused_and_nothing_changes(&p, &shop, &first).await;
    two_releases_in_quick_succession_end_with_the_newer(&p, &shop).await;
    the_operator_adds_little_to_a_rollout(&p, &shop).await;
    each_wait_for_approval_was_told_once(&shop);
}

/// The summaries of the approval-waiting messages received, in order.
fn approval_messages(shop: &Shop) -> Vec<String> {
    shop.receiver
        .received()
        .iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .filter(|m| m["event"] == "approval-waiting")
        .map(|m| m["summary"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn each_wait_for_approval_was_told_once(shop: &Shop) {
    let all = approval_messages(shop);
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(all.len(), unique.len(), "one message per release waiting: {all:#?}");
    assert_eq!(shop.receiver.received().len(), all.len(), "the target takes ApprovalWaiting only");
}

/// What environment `env` runs of web: (release, health, waiting).
async fn running(
    p: &Platform,
    shop: &Shop,
    env: &str,
) -> anyhow::Result<(Option<String>, Option<HealthState>, String)> {
    let e = Api::<Environment>::all(p.ctx.client.clone()).get(&shop.namespace(env)).await?;
    let app = e.status.and_then(|s| s.applications.into_iter().find(|a| a.name == "web"));
    Ok(app.map(|a| (a.release.map(|r| r.name), a.health.map(|h| h.state), a.waiting)).unwrap_or_default())
}

async fn wait_until_runs(p: &Platform, shop: &Shop, env: &str, release: &str, state: HealthState) {
    let what = format!("{env} runs {release}, {state:?}");
    let result = eventually(&what, Duration::from_secs(90), || async {
        let (r, h, _) = running(p, shop, env).await?;
        anyhow::Ok((r.as_deref() == Some(release) && h == Some(state)).then_some(()))
    })
    .await;
    if let Err(e) = result {
        panic!("{e}\nlast seen: {:?}", running(p, shop, env).await.ok());
    }
}

/// The image of web's container in `env`.
async fn image_in(p: &Platform, shop: &Shop, env: &str) -> String {
    let d = Api::<Deployment>::namespaced(p.ctx.client.clone(), &shop.namespace(env)).get("web").await.expect("web");
    let pod = d.spec.template.spec.expect("pod spec");
    pod.containers[0].image.clone().unwrap_or_default()
}

async fn nothing_runs_before_the_first_release(p: &Platform, shop: &Shop) {
    eventually("test says it waits for a release", Duration::from_secs(90), || async {
        let (release, _, waiting) = running(p, shop, "test").await?;
        anyhow::Ok((release.is_none() && waiting == "no release recorded yet").then_some(()))
    })
    .await
    .expect("waiting");
    let deployments = Api::<Deployment>::namespaced(p.ctx.client.clone(), &shop.namespace("test"));
    assert!(deployments.get_opt("web").await.expect("get").is_none(), "nothing is applied before a release");
}

/// A PipelineRun of web succeeds with `IMAGE_URL`/`IMAGE_DIGEST` results, written as Tekton
/// would: the release is recorded under the run's name, linked from the runs view; test runs
/// its digest at once, stage 5 s after it became healthy in test.
async fn a_build_run_records_a_release_that_reaches_test_then_stage(p: &Platform, shop: &Shop) -> String {
    let sha = shop.web.head().expect("head");
    let run_name = "web-build-1";
    let runs: Api<DynamicObject> = Api::namespaced_with(
        p.ctx.client.clone(),
        &shop.cicd,
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("tekton.dev", "v1", "PipelineRun"),
            "pipelineruns",
        ),
    );
    let run: DynamicObject =
        serde_yaml::from_str(&testdata("platform/delivery/build-run.yaml", &[("name", run_name), ("sha", &sha)]))
            .expect("run");
    runs.create(&PostParams::default(), &run).await.expect("create run");
    let status = json!({"status": {"startTime": "2026-12-04T10:00:00Z", "completionTime": "2026-12-04T10:02:00Z",
        "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded", "lastTransitionTime": "2026-12-04T10:02:00Z"}],
        "results": [{"name": "IMAGE_URL", "value": "registry.example.com/shop/web:main"}, {"name": "IMAGE_DIGEST", "value": digest('a')}]}});
    runs.patch_status(run_name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("run status");

    wait_until_runs(p, shop, "test", run_name, HealthState::Healthy).await;
    assert_eq!(image_in(p, shop, "test").await, format!("registry.example.com/shop/web@{}", digest('a')));
    let release = Api::<Release>::namespaced(p.ctx.client.clone(), &shop.cicd).get(run_name).await.expect("release");
    assert_eq!(release.spec.pipeline_run.as_deref(), Some(run_name));
    let healthy_in_test = release.status.and_then(|s| s.healthy_in.into_iter().find(|h| h.environment == "test"));
    let healthy_in_test = healthy_in_test.expect("recorded healthy in test").since.0;

    wait_until_runs(p, shop, "stage", run_name, HealthState::Healthy).await;
    let stage = Api::<Environment>::all(p.ctx.client.clone()).get(&shop.namespace("stage")).await.expect("stage");
    let since = stage.status.and_then(|s| s.applications.into_iter().find(|a| a.name == "web")).and_then(|a| a.release);
    let entered = since.and_then(|r| r.since).expect("since").0;
    assert!(
        entered.duration_since(healthy_in_test).as_secs_f64() >= 5.0,
        "stage took it {entered} ≥ 5 s after {healthy_in_test}"
    );
    assert_eq!(image_in(p, shop, "stage").await, format!("registry.example.com/shop/web@{}", digest('a')));

    let f = Api::<Factory>::all(p.ctx.client.clone()).get(&shop.name).await.expect("factory");
    let runs_view = f.status.and_then(|s| s.runs).expect("runs");
    assert_eq!(
        runs_view.latest.iter().find(|r| r.name == run_name).and_then(|r| r.release.clone()).as_deref(),
        Some(run_name)
    );
    run_name.to_string()
}

/// prod runs nothing and says the release waits for approval; the approver's approval is
/// accepted and moves it, the same approval from an owner is refused by RBAC.
async fn prod_waits_for_an_approval_an_owner_may_not_give(p: &Platform, shop: &Shop, first: &str) {
    eventually("prod waits for approval", Duration::from_secs(60), || async {
        let (release, _, waiting) = running(p, shop, "prod").await?;
        anyhow::Ok((release.is_none() && waiting == format!("release {first} waits for approval")).then_some(()))
    })
    .await
    .expect("waiting for approval");
    // Those who approve hear it (and, as the test's end checks, once, however often prod looks).
    let summary = format!("release {first} of web waits for approval to enter {}", shop.namespace("prod"));
    eventually("the approvers are told", Duration::from_secs(30), || async {
        anyhow::Ok(approval_messages(shop).contains(&summary).then_some(()))
    })
    .await
    .expect("notified");
    let done =
        kubectl_factory::releases::promote(&shop.approver, &shop.name, "web", "prod", None).await.expect("approve");
    assert_eq!(done, format!("release {first} of web approved for prod ({})", shop.namespace("prod")));
    let refused = kubectl_factory::releases::promote(&shop.owner, &shop.name, "web", "prod", Some(first)).await;
    let why = refused.expect_err("an owner may not approve prod").to_string();
    assert!(
        why.contains("approvals.factories.dev is forbidden: User \"olivia\" cannot create resource \"approvals\""),
        "{why}"
    );
    wait_until_runs(p, shop, "prod", first, HealthState::Healthy).await;
    // The promotion is an Event on the Environment.
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::all(p.ctx.client.clone());
    let prod = shop.namespace("prod");
    eventually("a Promoted event on prod", Duration::from_secs(30), || async {
        let list =
            events.list(&kube::api::ListParams::default().fields(&format!("involvedObject.name={prod}"))).await?;
        let wanted = format!("release {first} of web entered prod at ");
        anyhow::Ok(
            list.items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some("Promoted")
                        && e.message.as_deref().is_some_and(|m| m.starts_with(&wanted))
                })
                .then_some(()),
        )
    })
    .await
    .expect("Promoted event");
}

/// Release 2 is the same configuration with pods kwok fails: test runs it and is Degraded after
/// 15 s; stage keeps release 1 and says why release 2 waits.
async fn a_release_whose_rollout_fails_never_reaches_stage(p: &Platform, shop: &Shop, first: &str) -> String {
    shop.web.write("deploy/base/deployment.yaml", &config(FAILING)).expect("write");
    let sha = shop.web.commit("web: pods that fail").expect("commit");
    // Recorded by a person (an owner) as an outside CI would.
    let done = kubectl_factory::releases::create(
        &shop.owner,
        &shop.name,
        "web",
        &format!("main@sha1:{sha}"),
        &[format!("web=registry.example.com/shop/web@{}", digest('b'))],
    )
    .await
    .expect("an owner records a release");
    let second = done.split_whitespace().nth(1).expect("name").to_string();
    wait_until_runs(p, shop, "test", &second, HealthState::Degraded).await;
    let (release, _, waiting) = running(p, shop, "stage").await.expect("stage");
    assert_eq!(release.as_deref(), Some(first), "stage keeps what was healthy");
    assert_eq!(waiting, format!("release {second} has not been healthy in test yet"));
    // The factory's view (refreshed from the environments within a second or so) says so too.
    let factories = Api::<Factory>::all(p.ctx.client.clone());
    let test = eventually("the factory's view of test", Duration::from_secs(30), || async {
        let f = factories.get(&shop.name).await?;
        let view = f.status.map(|s| s.releases).unwrap_or_default();
        let test = view.first().and_then(|v| v.environments.first()).cloned();
        anyhow::Ok(test.filter(|t| t.health == Some(HealthState::Degraded)))
    })
    .await
    .expect("the view shows test degraded");
    assert_eq!((test.environment.as_str(), test.release.as_deref()), ("test", Some(second.as_str())));
    assert!(test.last_failure.starts_with("not healthy within 15s: Deployment"), "{:?}", test);
    second
}

/// An owner approves release 1 for test (test grants them `factory-approver`): test runs it again.
async fn rolling_back_test_is_approving_the_earlier_release(p: &Platform, shop: &Shop, first: &str, failing: &str) {
    let done = kubectl_factory::releases::promote(&shop.owner, &shop.name, "web", "test", Some(first)).await;
    assert!(done.expect("roll back").starts_with(&format!("release {first} of web approved for test")));
    wait_until_runs(p, shop, "test", first, HealthState::Healthy).await;
    let (_, _, waiting) = running(p, shop, "stage").await.expect("stage");
    assert_eq!(waiting, format!("release {failing} has not been healthy in test yet"));
}

async fn bad_releases_and_promotions_are_refused_and_nothing_changes(p: &Platform, shop: &Shop, first: &str) {
    let sha = shop.web.head().expect("head");
    // Not pinned by digest: refused by the API server, naming the image.
    let tag = kubectl_factory::releases::create(
        &shop.owner,
        &shop.name,
        "web",
        &sha,
        &["web=registry.example.com/shop/web:1.0".into()],
    )
    .await;
    let why = tag.expect_err("a tag is not a digest").to_string();
    assert!(why.contains("image web is not pinned by digest: registry.example.com/shop/web:1.0"), "{why}");
    // An application the factory does not have: recorded, then marked never deployable.
    let releases: Api<Release> = Api::namespaced(shop.owner.clone(), &shop.cicd);
    let stray = Release::new(
        "stray-1",
        ReleaseSpec { application: "search".into(), revision: sha.clone(), images: vec![], pipeline_run: None },
    );
    releases.create(&PostParams::default(), &stray).await.expect("create");
    let message = eventually("stray refused", Duration::from_secs(60), || async {
        let r = releases.get("stray-1").await?;
        let ready = r.status.and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready" && c.status == "False"));
        anyhow::Ok(ready.map(|c| (c.reason, c.message)))
    })
    .await
    .expect("refused");
    assert_eq!(message.0, "InvalidSpec");
    assert!(
        message.1.starts_with(&format!("application search is not an application of factory {}", shop.name)),
        "{}",
        message.1
    );
    // A revision that does not exist: refused once test tries it; test keeps release 1.
    // Creation times are kept to the second, and an approval made in the same second as a
    // release wins: the release must be newer than the roll-back approval to be tried.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let missing = Release::new(
        "web-missing",
        ReleaseSpec { application: "web".into(), revision: "f".repeat(40), images: vec![], pipeline_run: None },
    );
    releases.create(&PostParams::default(), &missing).await.expect("create");
    let reason = eventually("missing revision refused", Duration::from_secs(60), || async {
        let r = releases.get("web-missing").await?;
        anyhow::Ok(
            r.status
                .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready" && c.status == "False"))
                .map(|c| c.reason),
        )
    })
    .await
    .expect("refused");
    assert_eq!(reason, "ReferenceNotFound");
    wait_until_runs(p, shop, "test", first, HealthState::Healthy).await;
    // Skipping stage: refused by the policy, before anything is written.
    let skip = kubectl_factory::releases::promote(&shop.approver, &shop.name, "web", "prod", Some("web-missing")).await;
    let why = skip.expect_err("skipping stage").to_string();
    assert_eq!(
        why,
        "promotion of web-missing to prod refused by its policy: release web-missing has not been healthy in stage yet"
    );
    // An environment of another factory.
    let other = kubectl_factory::releases::promote(&shop.approver, &shop.name, "web", "qa", Some(first)).await;
    assert!(
        other
            .expect_err("no such environment")
            .to_string()
            .contains("has no environment qa (it has: test, stage, prod)")
    );
    // Approving by hand a release of another application is refused by the operator, not run.
    let approvals: Api<Approval> = Api::namespaced(shop.approver.clone(), &shop.namespace("prod"));
    let wrong = Approval::new("stray", ApprovalSpec { application: "web".into(), release: "stray-1".into() });
    approvals.create(&PostParams::default(), &wrong).await.expect("create");
    eventually("prod reports the stray approval", Duration::from_secs(60), || async {
        let (release, _, waiting) = running(p, shop, "prod").await?;
        anyhow::Ok(
            (release.as_deref() == Some(first) && waiting.contains("approval stray names release stray-1"))
                .then_some(()),
        )
    })
    .await
    .expect("prod unchanged");
}

/// Two releases recorded a moment apart: test and stage end with the newer.
async fn two_releases_in_quick_succession_end_with_the_newer(p: &Platform, shop: &Shop) {
    shop.web.write("deploy/base/deployment.yaml", &config("")).expect("write");
    let sha = shop.web.commit("web: healthy again").expect("commit");
    let mut names = Vec::new();
    for digit in ['c', 'd'] {
        let image = format!("web=registry.example.com/shop/web@{}", digest(digit));
        let done =
            kubectl_factory::releases::create(&shop.owner, &shop.name, "web", &sha, &[image]).await.expect("create");
        names.push(done.split_whitespace().nth(1).expect("name").to_string());
        // Creation times are kept to the second: the second release must be newer.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let newer = &names[1];
    wait_until_runs(p, shop, "test", newer, HealthState::Healthy).await;
    wait_until_runs(p, shop, "stage", newer, HealthState::Healthy).await;
    assert_eq!(image_in(p, shop, "stage").await, format!("registry.example.com/shop/web@{}", digest('d')));
    // `kubectl factory releases`, once the factory's view has caught up with stage.
    let view = eventually("the view of stage", Duration::from_secs(30), || async {
        let view = kubectl_factory::releases::load(&p.ctx.client, &shop.name, Some("web")).await?;
        let envs = view.delivery.first().map(|d| d.environments.as_slice()).unwrap_or_default();
        let stage = envs.get(1);
        let prod = envs.get(2);
        let caught_up = stage
            .is_some_and(|s| s.release.as_deref() == Some(newer) && s.health == Some(HealthState::Healthy))
            && prod.is_some_and(|p| p.waiting.contains(&format!("release {newer} waits for approval")));
        anyhow::Ok(caught_up.then_some(view))
    })
    .await
    .expect("view");
    let mut table = Vec::new();
    kubectl_factory::releases::print(&view, kubectl_factory::Output::Table, &mut table).expect("print");
    let table = String::from_utf8(table).expect("utf8");
    assert!(table.starts_with("web:\n  ENVIRONMENT"), "{table}");
    assert!(table.lines().any(|l| l.trim_start().starts_with("prod") && l.contains("waits for approval")), "{table}");
}

/// Polls `probe` every 20 ms until it holds; returns when it first did.
async fn when(what: &str, probe: impl AsyncFn() -> bool) -> Instant {
    let started = Instant::now();
    while !probe().await {
        assert!(started.elapsed() < Duration::from_secs(90), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Instant::now()
}

/// How long the operator itself takes, measured from outside: from a release's creation to
/// test's Deployment carrying its digest, plus from that Deployment being available to test
/// reporting the release healthy; the same from an approval to prod. Printed for
/// docs/benchmarks.md; bounded loosely here (a loaded CI machine is slower).
async fn the_operator_adds_little_to_a_rollout(p: &Platform, shop: &Shop) {
    let sha = shop.web.head().expect("head");
    let image = format!("registry.example.com/shop/web@{}", digest('e'));
    let t0 = Instant::now();
    let done = kubectl_factory::releases::create(&shop.owner, &shop.name, "web", &sha, &[format!("web={image}")])
        .await
        .expect("create");
    let release = done.split_whitespace().nth(1).expect("name").to_string();
    let (test_start, test_end) = timed_rollout(p, shop, "test", &release, &image, t0).await;
    wait_until_runs(p, shop, "stage", &release, HealthState::Healthy).await;
    let t0 = Instant::now();
    kubectl_factory::releases::promote(&shop.approver, &shop.name, "web", "prod", Some(&release))
        .await
        .expect("approve");
    let (prod_start, prod_end) = timed_rollout(p, shop, "prod", &release, &image, t0).await;
    let ms = |d: Duration| d.as_millis();
    let line = format!(
        "release -> test: operator {} ms ({} ms to start the rollout, {} ms to see it healthy); approval -> prod: operator {} ms ({} + {})\n",
        ms(test_start + test_end),
        ms(test_start),
        ms(test_end),
        ms(prod_start + prod_end),
        ms(prod_start),
        ms(prod_end)
    );
    // Kept beside the test's build (a passing test's output is not shown).
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("delivery-timings.txt");
    let mut all = std::fs::read_to_string(&file).unwrap_or_default();
    all.push_str(&line);
    std::fs::write(&file, all).expect("write timings");
    assert!(test_start + test_end < Duration::from_secs(10) && prod_start + prod_end < Duration::from_secs(10));
}

/// In `env`: how long from `t0` until the Deployment carries `image`, and from the Deployment
/// being available until the environment reports `release` healthy.
async fn timed_rollout(
    p: &Platform,
    shop: &Shop,
    env: &str,
    release: &str,
    image: &str,
    t0: Instant,
) -> (Duration, Duration) {
    let deployments = Api::<Deployment>::namespaced(p.ctx.client.clone(), &shop.namespace(env));
    let started = when("the rollout to start", async || {
        deployments
            .get_opt("web")
            .await
            .ok()
            .flatten()
            .and_then(|d| d.spec.template.spec)
            .is_some_and(|s| s.containers[0].image.as_deref() == Some(image))
    })
    .await;
    let available = when("the rollout to finish", async || {
        let Ok(Some(d)) = deployments.get_opt("web").await else { return false };
        let generation = d.metadata.generation;
        d.status.is_some_and(|s| {
            s.observed_generation == generation
                && s.updated_replicas == Some(1)
                && s.available_replicas == Some(1)
                && s.replicas == Some(1)
        })
    })
    .await;
    let healthy = when("the environment to report it", async || {
        running(p, shop, env)
            .await
            .is_ok_and(|(r, h, _)| r.as_deref() == Some(release) && h == Some(HealthState::Healthy))
    })
    .await;
    (started - t0, healthy.saturating_duration_since(available))
}
