//! Previews from pull requests on a real Gitea (HTTPS with its own CA, a token, signed
//! webhooks): a pull request opened gets a preview and a success status with its URL; a push
//! moves the preview to the new head; a webhook lost on purpose is caught up by the listing;
//! another user's fork gets nothing; a pull request over the cap is refused on its head; a
//! failing rollout is a failure with the reason; closing or merging removes the namespace and
//! says so. A branch name full of shell and YAML metacharacters changes nothing: previews are
//! named from the number. Two notification targets on loopback (one Slack-shaped, one generic
//! and signed, the first request answered 503) get exactly one message per event; a release's
//! rollout is posted on its commit.

use std::time::{Duration, Instant};

use factory_api::{PreviewEnvironment, Release, ReleaseSpec};
use factory_testkit::eventually;
use factory_testkit::git::{GitRoot, Repo};
use factory_testkit::gitea::{self, Gitea};
use factory_testkit::operator::{WEBHOOK_SECRET, webhook_addr};
use factory_testkit::receiver::Receiver;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, PostParams};
use serde_json::json;

use factory_integration_tests::{test_name, testdata};

use crate::fixture::Platform;

/// The HMAC key of the generic notification target.
const AUDIT_KEY: &str = "audit-key";

/// Labels kwok's chaos stage fails a pod for.
const FAILING: &str = ", pod-container-running-failed.stage.kwok.x-k8s.io: \"true\"";

fn deployment(tag: &str, pod_labels: &str) -> String {
    testdata("platform/health/web/deployment.yaml", &[("tag", tag), ("pod_labels", pod_labels)])
}

struct World<'a> {
    p: Platform,
    receiver: Receiver,
    gitea: &'a Gitea,
    repo: Repo,
    name: String,
    context: String,
    cicd: String,
    previews: Api<PreviewEnvironment>,
    _root: GitRoot,
}

#[tokio::test]
async fn pull_requests_get_previews_and_hear_back_on_gitea() {
    let w = world(test_name!()).await;
    let first = an_opened_pull_request_gets_a_ready_preview_and_a_success_status_with_its_url(&w).await;
    a_push_moves_the_preview_to_the_new_head(&w, first).await;
    let hook = w.gitea.add_webhook(&w.name, &format!("http://{}/hooks/git", webhook_addr()), WEBHOOK_SECRET).await;
    let hook = hook.expect("webhook");
    let second = a_lost_webhook_is_caught_up_by_the_listing_and_any_branch_name_is_safe(&w, hook).await;
    a_pull_request_from_a_fork_gets_no_preview_and_no_status(&w).await;
    let third = a_pull_request_over_the_cap_is_refused_on_its_head(&w).await;
    a_failing_rollout_is_a_failure_with_the_reason(&w, first).await;
    closing_removes_the_namespace_and_says_so_and_frees_a_place(&w, first, third).await;
    merging_removes_the_preview_too(&w, second).await;
    each_event_was_notified_exactly_once_signed(&w, &[first, second, third]).await;
    a_releases_rollout_is_posted_on_its_commit(&w).await;
}

async fn world(test: &str) -> World<'static> {
    let gitea = gitea::shared();
    let p = Platform::serving(test, "platform/previews/platform").await;
    let x = p.ctx.prefix.clone();
    let root = GitRoot::new().expect("root");
    let name = format!("{x}-web");
    let files = [
        ("deploy/base/deployment.yaml", deployment("1.0.0", "")),
        ("deploy/base/service.yaml", testdata("platform/pull_requests/web/service.yaml", &[])),
        ("api/base/config.yaml", testdata("platform/pull_requests/api/config.yaml", &[])),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let repo = gitea.repo(&root, &name, &files).await.expect("repository on Gitea");
    let shop =
        testdata("platform/pull_requests/factories/shop.yaml", &[("prefix", &x), ("url", &gitea.clone_url(&name))]);
    let classes = json!([{"name": "base", "path": "classes/base/"},
        {"name": "preview", "path": "classes/preview/", "extends": ["base"]}]);
    p.start_with(&[("shop", &shop)], json!({"cluster": null, "environmentClasses": classes})).await;
    let cicd = format!("{x}-shop-cicd");
    // The team's credentials for Gitea (git over HTTPS and the API): its token and CA.
    let receiver = Receiver::start(1).await.expect("notification receiver");
    let (chat, audit) = (format!("{}/chat", receiver.url), format!("{}/audit", receiver.url));
    let secrets: Api<Secret> = Api::namespaced(p.ctx.client.clone(), &cicd);
    let gitea_secret = [("username", gitea::ADMIN), ("token", gitea.token.as_str()), ("ca.crt", gitea.ca_pem.as_str())];
    let secret_list = [
        ("gitea", &gitea_secret[..]),
        ("chat", &[("url", chat.as_str())][..]),
        ("audit", &[("url", audit.as_str()), ("secret", AUDIT_KEY)][..]),
    ];
    for (name, data) in secret_list {
        let secret = Secret {
            metadata: kube::api::ObjectMeta { name: Some(name.to_string()), ..Default::default() },
            data: Some(data.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect()),
            ..Default::default()
        };
        eventually("the cicd namespace takes the Secret", Duration::from_secs(60), || async {
            secrets.create(&PostParams::default(), &secret).await.map(|_| Some(()))
        })
        .await
        .expect("secret");
    }
    let previews = Api::namespaced(p.ctx.client.clone(), &cicd);
    World { context: format!("factory/{x}-shop/preview"), p, receiver, gitea, repo, name, cicd, previews, _root: root }
}

/// The newest status of the factory's context on `sha`: (state, description, URL).
async fn status(w: &World<'_>, sha: &str) -> anyhow::Result<Option<(String, String, String)>> {
    let all = w.gitea.statuses(&w.name, sha).await?;
    Ok(all.into_iter().find(|(c, ..)| *c == w.context).map(|(_, s, d, u)| (s, d, u)))
}

async fn wait_status(w: &World<'_>, sha: &str, state: &str, seconds: u64) -> (String, String) {
    let what = format!("status {state} on {sha}");
    let found = eventually(&what, Duration::from_secs(seconds), || async {
        Ok::<_, anyhow::Error>(status(w, sha).await?.filter(|(s, ..)| s == state).map(|(_, d, u)| (d, u)))
    })
    .await;
    match found {
        Ok(found) => found,
        Err(e) => panic!(
            "{e}\nlast status: {:?}\nfactory: {:?}",
            status(w, sha).await,
            w.p.factories().get(&format!("{}-shop", w.p.ctx.prefix)).await.ok().and_then(|f| f.status)
        ),
    }
}

/// The head commit and the namespace of pull request `number`'s preview.
async fn head_and_namespace(w: &World<'_>, number: u64) -> (String, String) {
    let pv = w.previews.get(&format!("web-pr-{number}")).await.expect("its preview");
    let sha = pv.spec.git_ref.commit.clone().expect("head");
    (sha, pv.status.and_then(|s| s.namespace).expect("namespace"))
}

/// Waits until namespace `ns` is gone, then until `sha`'s status says so (it said something
/// else before: "Preview ready", or a failure).
async fn wait_gone(w: &World<'_>, sha: &str, ns: &str) {
    let namespaces: Api<Namespace> = Api::all(w.p.ctx.client.clone());
    eventually(&format!("namespace {ns} gone"), Duration::from_secs(90), || async {
        anyhow::Ok(namespaces.get_opt(ns).await?.is_none().then_some(()))
    })
    .await
    .expect("namespace deleted");
    let removed = format!("Preview removed: namespace {ns} is gone");
    let found = eventually(&format!("{sha} says {removed:?}"), Duration::from_secs(30), || async {
        anyhow::Ok(status(w, sha).await?.filter(|(s, d, _)| s == "success" && *d == removed))
    })
    .await;
    if let Err(e) = found {
        panic!("{e}; last status: {:?}", status(w, sha).await);
    }
}

async fn preview_at(w: &World<'_>, name: &str, sha: &str, seconds: u64) -> PreviewEnvironment {
    let what = format!("preview {name} Ready at {sha}");
    eventually(&what, Duration::from_secs(seconds), || async {
        let pv = w.previews.get_opt(name).await?;
        anyhow::Ok(pv.filter(|pv| {
            let s = pv.status.clone().unwrap_or_default();
            s.reconcile.last_applied_revision.as_deref() == Some(&format!("sha1:{sha}"))
                && s.reconcile.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
        }))
    })
    .await
    .expect("preview ready")
}

/// Commits `deployment` on a new branch `branch` from main and opens a pull request of it.
async fn open(w: &World<'_>, branch: &str, tag: &str) -> (u64, String) {
    w.repo.checkout("main").expect("main");
    w.repo.branch(branch).expect("branch");
    w.repo.write("deploy/base/deployment.yaml", &deployment(tag, "")).expect("write");
    let sha = w.repo.commit(&format!("{branch}: {tag}")).expect("commit");
    let number = w.gitea.open_pull(&w.name, branch, "main", &format!("web {tag}")).await.expect("pull request");
    (number, sha)
}

async fn an_opened_pull_request_gets_a_ready_preview_and_a_success_status_with_its_url(w: &World<'_>) -> u64 {
    let started = Instant::now();
    let (number, sha) = open(w, "feature/a", "1.1.0").await;
    let name = format!("web-pr-{number}");
    let pv = preview_at(w, &name, &sha, 120).await;
    let (description, url) = wait_status(w, &sha, "success", 30).await;
    eprintln!("pull request opened -> preview Ready and status posted: {:?}", started.elapsed());
    let x = &w.p.ctx.prefix;
    let expected = format!("https://{name}.{x}-shop.preview.example.test/");
    assert_eq!(pv.status.as_ref().and_then(|s| s.url.clone()), Some(expected.clone()));
    assert_eq!(url, expected, "the status links to the preview");
    assert!(description.starts_with("Preview ready: https://"), "{description}");
    let ns = pv.status.and_then(|s| s.namespace).expect("namespace");
    let ingress = Api::<Ingress>::namespaced(w.p.ctx.client.clone(), &ns).get("preview").await.expect("ingress");
    let spec = ingress.spec.expect("spec");
    assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
    assert_eq!(spec.tls.unwrap_or_default()[0].secret_name.as_deref(), Some("preview-tls"));
    let deployment = Api::<Deployment>::namespaced(w.p.ctx.client.clone(), &ns).get("web").await.expect("web");
    let image = deployment.spec.template.spec.and_then(|s| s.containers[0].image.clone());
    assert_eq!(image.as_deref(), Some("registry.example.com/shop/web:1.1.0"), "the pull request's head");
    number
}

async fn a_push_moves_the_preview_to_the_new_head(w: &World<'_>, number: u64) {
    w.repo.checkout("feature/a").expect("branch");
    w.repo.write("deploy/base/deployment.yaml", &deployment("1.2.0", "")).expect("write");
    let sha = w.repo.commit("feature/a: 1.2.0").expect("commit");
    let pv = preview_at(w, &format!("web-pr-{number}"), &sha, 90).await;
    assert_eq!(pv.spec.git_ref.commit.as_deref(), Some(sha.as_str()));
    wait_status(w, &sha, "success", 30).await;
}

async fn a_lost_webhook_is_caught_up_by_the_listing_and_any_branch_name_is_safe(w: &World<'_>, hook: u64) -> u64 {
    // Signed wrongly, a pull-request event is refused before anything reads it.
    let body = serde_json::to_vec(&json!({"action": "opened", "number": 99,
        "repository": {"clone_url": w.gitea.clone_url(&w.name)}}))
    .expect("json");
    let (code, text) = factory_testkit::http::post(
        webhook_addr(),
        "/hooks/git",
        &[("X-Gitea-Signature", "00".repeat(32)), ("X-Gitea-Event", "pull_request".into())],
        &body,
    )
    .await
    .expect("post");
    assert_eq!((code, text.trim()), (401, "refused: bad Gitea signature"));

    w.gitea.set_webhook_active(&w.name, hook, false).await.expect("webhook off");
    // Every shell and YAML metacharacter git allows in a branch name.
    let branch = "feat/$(touch${IFS}pwned);'\"{a}|&<>#!%,=`id`";
    let (number, sha) = open(w, branch, "2.0.0").await;
    let name = format!("web-pr-{number}");
    // The listing runs every 10 s: the preview comes without any event.
    let pv = preview_at(w, &name, &sha, 120).await;
    let annotations = pv.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations.get("factories.dev/pull-request-branch").map(String::as_str), Some(branch));
    assert_eq!(pv.status.and_then(|s| s.namespace), Some(format!("{}-shop-pv-{name}", w.p.ctx.prefix)));
    wait_status(w, &sha, "success", 30).await;
    w.gitea.set_webhook_active(&w.name, hook, true).await.expect("webhook on");
    number
}

async fn a_pull_request_over_the_cap_is_refused_on_its_head(w: &World<'_>) -> u64 {
    let (number, sha) = open(w, "feature/c", "3.0.0").await;
    let (description, _) = wait_status(w, &sha, "failure", 60).await;
    let x = &w.p.ctx.prefix;
    assert_eq!(description, format!("No preview: factory {x}-shop already has its 2 previews (previews.max)"));
    assert!(w.previews.get_opt(&format!("web-pr-{number}")).await.expect("get").is_none());
    number
}

async fn a_failing_rollout_is_a_failure_with_the_reason(w: &World<'_>, number: u64) {
    w.repo.checkout("feature/a").expect("branch");
    w.repo.write("deploy/base/deployment.yaml", &deployment("1.3.0", FAILING)).expect("write");
    let sha = w.repo.commit("feature/a: a release whose pods fail").expect("commit");
    let (description, url) = wait_status(w, &sha, "failure", 120).await;
    assert!(description.contains("not healthy within 20s") && description.contains("/web"), "{description}");
    assert!(url.is_empty(), "a failure links nowhere: {url}");
    let _ = number;
}

async fn closing_removes_the_namespace_and_says_so_and_frees_a_place(w: &World<'_>, first: u64, third: u64) {
    let (sha, ns) = head_and_namespace(w, first).await;
    w.gitea.close_pull(&w.name, first).await.expect("close");
    wait_gone(w, &sha, &ns).await;
    // The place it held goes to the pull request refused before.
    let refused = w.gitea.api("GET", &format!("/repos/{}/{}/pulls/{third}", gitea::ADMIN, w.name), None).await;
    let head = refused.expect("pull request")["head"]["sha"].as_str().map(str::to_string).expect("head");
    preview_at(w, &format!("web-pr-{third}"), &head, 120).await;
    let _ = &w.cicd;
}

/// A notification the receiver accepted.
#[derive(Debug)]
struct Delivered {
    event: String,
    object: String,
    value: serde_json::Value,
    signature: Option<String>,
    body: Vec<u8>,
}

/// Every preview got one "expiring" message (its life is 30 minutes), the failed rollout one
/// "failure", each signed on the generic target; the Slack target got the failure only; the
/// 503 the first request got was retried, not counted twice.
async fn each_event_was_notified_exactly_once_signed(w: &World<'_>, numbers: &[u64]) {
    let cicd = &w.cicd;
    let mut expected: Vec<(String, String)> = numbers
        .iter()
        .map(|n| ("preview-expiring".to_string(), format!("PreviewEnvironment {cicd}/web-pr-{n}")))
        .collect();
    expected.push(("failure".to_string(), format!("PreviewEnvironment {cicd}/web-pr-{}", numbers[0])));
    expected.sort();
    let delivered = |path: &str| -> Vec<Delivered> {
        w.receiver
            .received()
            .into_iter()
            .filter(|r| r.path == path && r.answered == 202)
            .map(|r| {
                let value: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
                Delivered {
                    event: r.headers.get("x-factory-event").cloned().unwrap_or_default(),
                    object: value["object"].as_str().unwrap_or_default().to_string(),
                    value,
                    signature: r.headers.get("x-factory-signature-256").cloned(),
                    body: r.body,
                }
            })
            .collect()
    };
    let seen = eventually("every notification delivered", Duration::from_secs(60), || async {
        let mut got: Vec<(String, String)> = delivered("/audit").into_iter().map(|d| (d.event, d.object)).collect();
        got.sort();
        anyhow::Ok((got.len() >= expected.len()).then_some(got))
    })
    .await
    .expect("notifications");
    assert_eq!(seen, expected, "exactly one message per event");
    use hmac::Mac;
    for Delivered { event, object, value, signature, body } in delivered("/audit") {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(AUDIT_KEY.as_bytes()).expect("key");
        mac.update(&body);
        let wanted = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(signature.as_deref(), Some(wanted.as_str()), "{event} {object} is signed");
        assert_eq!(value["factory"], format!("{}-shop", w.p.ctx.prefix));
    }
    let chat = delivered("/chat");
    assert_eq!(chat.len(), 1, "the Slack target takes failures only: {chat:?}");
    let Delivered { event, value, signature, .. } = &chat[0];
    assert_eq!(event, "failure");
    assert!(signature.is_none(), "no key, no signature");
    let text = value["text"].as_str().unwrap_or_default();
    assert!(text.starts_with(":x: *") && text.contains(&format!("web-pr-{}", numbers[0])), "{text}");
    let refused = w.receiver.received().iter().filter(|r| r.answered == 503).count();
    assert_eq!(refused, 1, "the first request was refused once and retried");
}

/// A release of `api` (the same repository, delivered by releases) is posted on its commit
/// under the environment's own context: success once healthy in test.
async fn a_releases_rollout_is_posted_on_its_commit(w: &World<'_>) {
    w.repo.checkout("main").expect("main");
    let sha = w.repo.head().expect("head");
    let releases: Api<Release> = Api::namespaced(w.p.ctx.client.clone(), &w.cicd);
    let release = Release::new(
        "api-1",
        ReleaseSpec {
            application: "api".into(),
            revision: format!("main@sha1:{sha}"),
            images: vec![],
            pipeline_run: None,
        },
    );
    releases.create(&PostParams::default(), &release).await.expect("release");
    let context = format!("factory/{}-shop/test", w.p.ctx.prefix);
    let found = eventually("the release's status on its commit", Duration::from_secs(90), || async {
        let all = w.gitea.statuses(&w.name, &sha).await?;
        anyhow::Ok(all.into_iter().find(|(c, s, ..)| *c == context && s == "success"))
    })
    .await
    .expect("release status");
    assert_eq!(found.2, "Release api-1 is healthy in test");
}

/// A pull request from another user's fork: the factory does not allow forks, so its code is
/// never deployed — no preview, nothing posted on its head — and the factory says why.
async fn a_pull_request_from_a_fork_gets_no_preview_and_no_status(w: &World<'_>) {
    let fork = w.gitea.fork_as("outsider", &w.name).await.expect("fork");
    w.repo.checkout("main").expect("main");
    w.repo.branch("outsider-work").expect("branch");
    w.repo.write("deploy/base/deployment.yaml", &deployment("6.6.6", "")).expect("write");
    w.repo.git(&["commit", "--quiet", "-am", "from a fork"]).expect("commit");
    let sha = w.repo.head().expect("head");
    let authed = fork.replacen("https://", &format!("https://{}:{}@", gitea::ADMIN, w.gitea.token), 1);
    w.repo.git(&["push", "--quiet", &authed, "outsider-work"]).expect("push to the fork");
    // The branch exists only in the fork: main's repository never had it.
    w.repo.git(&["push", "--quiet", "origin", "--delete", "outsider-work"]).expect("delete the base's copy");
    let number = w.gitea.open_pull_from_fork("outsider", &w.name, "outsider-work", "main").await.expect("pull request");
    let factories = w.p.factories();
    let shop = format!("{}-shop", w.p.ctx.prefix);
    let said = format!("web: no preview for #{number} from forks (allowForks is false)");
    eventually("the factory says why the fork gets nothing", Duration::from_secs(60), || async {
        let f = factories.get(&shop).await?;
        anyhow::Ok(crate::fixture::ready_message(&f).contains(&said).then_some(()))
    })
    .await
    .expect("noted");
    assert!(w.previews.get_opt(&format!("web-pr-{number}")).await.expect("get").is_none(), "no preview");
    assert_eq!(status(w, &sha).await.expect("statuses"), None, "nothing posted on a fork's head");
    w.gitea.close_pull(&w.name, number).await.expect("close");
}

/// Merged is closed too: the preview of the pull request with the hostile branch goes, and its
/// head hears so.
async fn merging_removes_the_preview_too(w: &World<'_>, number: u64) {
    let (sha, ns) = head_and_namespace(w, number).await;
    w.gitea.merge_pull(&w.name, number).await.expect("merge");
    wait_gone(w, &sha, &ns).await;
}
