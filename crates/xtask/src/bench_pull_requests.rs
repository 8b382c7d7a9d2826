//! `cargo xtask bench --pull-requests <rounds>`: how long a pull request waits for its preview.
//! On a control plane with workloads (kwok's nodes), Gitea serving the application over HTTPS
//! and the release build of the operator receiving Gitea's signed webhooks (the listing
//! interval is 10 minutes, so only the webhook path is measured): each round opens a pull
//! request and times it until its preview is Ready and the success status is on Gitea; the
//! baseline, in the same run, is the application's own rollout: the same objects applied
//! into a fresh namespace with server-side apply, until the Deployment is available.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use factory_api::{Factory, PreviewEnvironment};
use factory_control_plane::{ControlPlane, Lifetime, Options};
use factory_testkit::git::{GitDaemon, GitRoot};
use factory_testkit::gitea::{self, Gitea};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::bench::{Operator, append, measured_commit, platform_account, ready};

const SECRET: &str = "bench-webhook-secret";

/// Two replicas that meet Pod Security `restricted` (the default of every team namespace).
const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app.kubernetes.io/name: web}\n  template:\n    metadata:\n      labels: {app.kubernetes.io/name: web}\n    spec:\n      securityContext: {runAsNonRoot: true, runAsUser: 10001, seccompProfile: {type: RuntimeDefault}}\n      containers:\n      - name: app\n        image: 'registry.example.com/web:TAG'\n        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}\n";
const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app.kubernetes.io/name: web}\n  ports: [{port: 80}]\n";
const CLASS: &str = "apiVersion: v1\nkind: LimitRange\nmetadata: {name: defaults}\nspec:\n  limits:\n  - type: Container\n    default: {cpu: 100m, memory: 64Mi}\n";

/// Runs `rounds` rounds and appends the report to `docs/benchmarks.md`.
pub fn run(root: &Path, rounds: usize) -> Result<()> {
    // Named before anything runs: the binary measured is built from this tree.
    let commit = measured_commit(root);
    let dir = root.join("target/bench/pull-requests");
    std::fs::create_dir_all(&dir)?;
    let options = Options {
        dir: dir.join("control-plane"),
        lifetime: Lifetime::TiedToOwner,
        install_crds: true,
        install_tekton: false,
        workloads: true,
    };
    let plane = ControlPlane::start(&options, &|l| eprintln!("  · {l}"))?;
    let gitea = Gitea::start(&dir.join("gitea"), Lifetime::TiedToOwner, &|l| eprintln!("  · {l}"))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let section = runtime.block_on(async {
        tokio::select! {
            section = measure(root, &commit, &dir, &plane, &gitea, rounds) => section,
            signal = crate::signals::stop_signal() => bail!("{}: the benchmark stopped", signal?),
        }
    })?;
    println!("{section}");
    append(root, &section)
}

async fn measure(
    root: &Path,
    commit: &str,
    dir: &Path,
    plane: &ControlPlane,
    gitea: &Gitea,
    rounds: usize,
) -> Result<String> {
    let client = crate::client_for(&plane.kubeconfig).await?;
    let git = GitRoot::new()?;
    let daemon = GitDaemon::start(git.path())?;
    let app = gitea
        .repo(
            &git,
            "web",
            &[("deploy/base/deployment.yaml", &DEPLOYMENT.replace("TAG", "1")), ("deploy/base/service.yaml", SERVICE)],
        )
        .await?;
    let team = format!(
        "apiVersion: factories.dev/v1alpha1\nkind: Factory\nmetadata: {{name: shop}}\nspec:\n  type: Applications\n  \
         previews: {{class: base, max: 20, ingress: {{host: '$${{preview}}.preview.example.test'}}}}\n  applications:\n  \
         - name: web\n    source: {{url: '{}', secretRef: {{name: gitea}}}}\n    config: {{path: deploy/}}\n    \
         expose: {{service: web, port: 80}}\n    host: {{provider: Gitea, secretRef: {{name: gitea}}}}\n    \
         pullRequests: {{interval: 10m}}\n",
        gitea.clone_url("web")
    );
    git.repo("platform", &[("classes/base/all.yaml", CLASS), ("factories/shop.yaml", &team)])?;
    platform_account(plane)?;
    let webhook = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let bin = root.join("target/release/factory-operator");
    let mut operator = Operator::start_with(
        &bin,
        &plane.kubeconfig,
        dir,
        "operator.log",
        "5m",
        &[format!("--webhook-addr={webhook}"), format!("--webhook-secret={SECRET}")],
    )?;
    gitea.add_webhook("web", &format!("http://{webhook}/hooks/git"), SECRET).await?;
    let factory: Factory = serde_json::from_value(json!({"apiVersion": "factories.dev/v1alpha1", "kind": "Factory",
        "metadata": {"name": "platform"},
        "spec": {"type": "Environments", "source": {"url": daemon.url("platform"), "interval": "1h"},
                 "serviceAccount": {"namespace": "platform-system", "name": "platform"},
                 "factories": {"path": "factories/"}, "environmentClasses": [{"name": "base", "path": "classes/base/"}]}}))?;
    Api::<Factory>::all(client.clone())
        .patch("platform", &PatchParams::apply("bench").force(), &Patch::Apply(&factory))
        .await?;
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "gitea"},
        "stringData": {"username": gitea::ADMIN, "token": gitea.token, "ca.crt": gitea.ca_pem}}))?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "shop-cicd");
    let started = Instant::now();
    while let Err(e) = secrets.create(&PostParams::default(), &secret).await {
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the team's cicd namespace did not appear: {e}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut ours = Vec::new();
    let mut preview_ready = Vec::new();
    let mut baseline = Vec::new();
    for round in 0..rounds {
        baseline.push(own_rollout(&client, round).await?);
        let (ready_after, status_after) = pull_request(&client, gitea, &app, round).await?;
        preview_ready.push(ready_after);
        ours.push(status_after);
        eprintln!(
            "  round {round}: rollout alone {:.2} s; pull request → preview Ready {:.2} s, → success status {:.2} s",
            baseline[round].as_secs_f64(),
            ready_after.as_secs_f64(),
            status_after.as_secs_f64()
        );
    }
    operator.stop();
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (b, o, r) = (median(&mut baseline), median(&mut ours), median(&mut preview_ready));
    let over = o.as_secs_f64() - b.as_secs_f64();
    Ok(format!(
        "\n## Pull-request previews, run of {} (`cargo xtask bench --pull-requests {rounds}`, commit {})\n\n\
         Gitea {} over HTTPS, its webhooks signed; the operator's release build; a Deployment of 2 replicas on kwok's \
         nodes and a Service, plus the preview's baseline and Ingress. Medians of {rounds} rounds.\n\n\
         | measure | factory-operator | baseline: the application's own rollout (server-side apply, until available) | difference / ratio |\n\
         |---|---|---|---|\n\
         | pull request opened → success status with the URL on Gitea | {:.2} s | {:.2} s | +{:.2} s / {:.2}× (target: under +3 s) |\n\
         | pull request opened → preview Ready | {:.2} s | | |\n",
        k8s_openapi::jiff::Timestamp::now(),
        commit,
        factory_control_plane::versions::GITEA,
        o.as_secs_f64(),
        b.as_secs_f64(),
        over,
        o.as_secs_f64() / b.as_secs_f64().max(0.001),
        r.as_secs_f64(),
    ))
}

/// The baseline: the application's objects applied into a new namespace as the admin, timed
/// until the Deployment has all its replicas available.
async fn own_rollout(client: &Client, round: usize) -> Result<Duration> {
    let namespace = format!("baseline-{round}");
    let started = Instant::now();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}}))?;
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await?;
    let params = PatchParams::apply("bench").force();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let deployment: serde_json::Value = serde_yaml::from_str(&DEPLOYMENT.replace("TAG", &round.to_string()))?;
    deployments.patch("web", &params, &Patch::Apply(&deployment)).await?;
    let service: serde_json::Value = serde_yaml::from_str(SERVICE)?;
    Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), &namespace)
        .patch("web", &params, &Patch::Apply(&service))
        .await?;
    loop {
        let d = deployments.get("web").await?;
        let available = d.status.and_then(|s| s.available_replicas).unwrap_or(0);
        if available >= 2 {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the baseline Deployment in {namespace} is not available after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    Api::<Namespace>::all(client.clone()).delete(&namespace, &Default::default()).await?;
    Ok(took)
}

/// One pull request: opened, timed until its preview is Ready and until the success status is
/// on its head; then closed, and waited for until its namespace is gone.
async fn pull_request(
    client: &Client,
    gitea: &Gitea,
    app: &factory_testkit::git::Repo,
    round: usize,
) -> Result<(Duration, Duration)> {
    let branch = format!("round-{round}");
    app.checkout("main")?;
    app.branch(&branch)?;
    app.write("deploy/base/deployment.yaml", &DEPLOYMENT.replace("TAG", &format!("pr-{round}")))?;
    let sha = app.commit(&branch)?;
    // Let the push's own webhook settle, so the round times the pull request alone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let number = gitea.open_pull("web", &branch, "main", &branch).await?;
    let previews: Api<PreviewEnvironment> = Api::namespaced(client.clone(), "shop-cicd");
    let name = format!("web-pr-{number}");
    let (mut ready_after, mut status_after) = (None, None);
    while ready_after.is_none() || status_after.is_none() {
        if ready_after.is_none()
            && let Some(p) = previews.get_opt(&name).await?
            && p.status.as_ref().is_some_and(|s| {
                ready(&s.reconcile.conditions)
                    && s.reconcile.last_applied_revision.as_deref() == Some(&format!("sha1:{sha}"))
            })
        {
            ready_after = Some(started.elapsed());
        }
        if status_after.is_none() {
            let statuses = gitea.statuses("web", &sha).await?;
            if statuses.iter().any(|(c, s, ..)| c == "factory/shop/preview" && s == "success") {
                status_after = Some(started.elapsed());
            }
        }
        if started.elapsed() > Duration::from_secs(180) {
            bail!("pull request #{number}: no Ready preview and success status after 180 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gitea.close_pull("web", number).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let gone = Instant::now();
    while namespaces.get_opt(&format!("shop-pv-{name}")).await?.is_some() {
        if gone.elapsed() > Duration::from_secs(180) {
            bail!("the namespace of {name} is still there 180 s after its pull request closed");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready_after = ready_after.context("preview Ready")?;
    let status_after = status_after.context("status")?;
    Ok((ready_after, status_after))
}
