//! `cargo xtask demo`: the operator's main job on a laptop. Builds what is missing, starts a
//! local control plane (with Tekton's CRDs) and Gitea, serves `examples/` from Gitea over
//! HTTPS with a token (its webhooks signed), runs the real operator binary, waits until every
//! factory, environment and a preview are Ready, delivers a release, opens a pull request and
//! waits for its preview and commit status, prints the tree, what is in each namespace and the
//! notifications the team's chat received, and stops everything on Ctrl-C (or at once with
//! `--exit`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use factory_api::conditions::READY;
use factory_api::{Environment, Factory, PreviewEnvironment, labels};
use factory_control_plane::{ControlPlane, Lifetime, Options};
use factory_testkit::git::{GitRoot, Repo};
use factory_testkit::gitea::{self, Gitea};
use factory_testkit::receiver::Receiver;

use crate::signals::stop_signal;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// The operator child process; killed when dropped.
struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn say(line: &str) {
    eprintln!("  · {line}");
}

/// Runs the demo; with `exit`, stops after printing (for CI). Ctrl-C or SIGTERM at any point
/// drops the demo, and with it the operator and Gitea (each stopped on drop; the control
/// plane's components and Gitea's watchdog die with this process too): killed by the default
/// signal action instead, a server in a process group of its own would outlive it.
pub fn run(root: &Path, exit: bool) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        tokio::select! {
            result = demo(root, exit) => result,
            signal = stop_signal() => {
                eprintln!("{}: stopping the operator, Gitea and the control plane", signal?);
                Ok(())
            }
        }
    })
}

async fn demo(root: &Path, exit: bool) -> Result<()> {
    let started = Instant::now();
    eprintln!("building the operator and the kubectl plugin");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["build", "--locked", "-p", "factory-controller", "-p", "kubectl-factory"])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    let bin = root.join("target/debug");
    let dir = root.join("target/demo");
    eprintln!("starting a local control plane (Kubernetes, etcd, Tekton CRDs)");
    let options = Options {
        dir: dir.join("control-plane"),
        lifetime: Lifetime::TiedToOwner,
        install_crds: true,
        install_tekton: true,
        workloads: true,
    };
    let mut plane = ControlPlane::start(&options, &say)?;

    eprintln!("starting Gitea and serving examples/ from it over HTTPS, with a token");
    let gitea_dir = dir.join("gitea");
    let gitea = std::thread::spawn(move || Gitea::start(&gitea_dir, Lifetime::TiedToOwner, &|l: &str| say(l)))
        .join()
        .map_err(|_| anyhow::anyhow!("Gitea's start-up panicked"))??;
    let git = GitRoot::new()?;
    let mut storefront = None;
    for (name, path) in [
        ("platform", "examples/platform"),
        ("storefront", "examples/apps/storefront"),
        ("payments", "examples/apps/payments"),
    ] {
        let repo =
            git.repo_from_dir(name, &root.join(path)).with_context(|| format!("creating the {name} repository"))?;
        gitea.publish(&repo).await.with_context(|| format!("pushing {name} to Gitea"))?;
        if name == "storefront" {
            storefront = Some(repo);
        }
    }
    let storefront = storefront.context("the storefront repository")?;
    let base = format!("{}/{}", gitea.url, gitea::ADMIN);
    say(&format!(
        "Gitea at {} (platform.git, storefront.git, payments.git; log {})",
        gitea.url,
        dir.join("gitea/gitea.log").display()
    ));

    let client = crate::client_for(&plane.kubeconfig).await?;
    platform_account(&client).await?;
    // The team's chat: a webhook target on loopback that shows what the factory told it.
    let chat = Receiver::start(0).await?;
    credentials(&client, &gitea, &chat.url).await?;
    let webhook = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    for repo in ["platform", "storefront", "payments"] {
        gitea.add_webhook(repo, &format!("http://{webhook}/hooks/git"), DEMO_WEBHOOK_SECRET).await?;
    }
    say(&format!("Gitea's webhooks, signed, go to the operator at http://{webhook}/hooks/git"));

    // The prod class is a Kustomize overlay and payments-api a Helm chart: the operator renders
    // them with the tools built into the cache.
    let kustomize = factory_control_plane::binaries::kustomize(&|l| say(l))?;
    let helm = factory_control_plane::binaries::helm(&|l| say(l))?;
    eprintln!("running the operator");
    let log_path = dir.join("operator.log");
    let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let _operator = Operator(
        Command::new(bin.join("factory-operator"))
            .env("KUBECONFIG", &plane.kubeconfig)
            .arg(format!("--git-cache={}", dir.join("git-cache").display()))
            .arg(format!("--kustomize={}", kustomize.display()))
            .arg(format!("--helm={}", helm.display()))
            .args(["--metrics-addr=127.0.0.1:0", "--log=info"])
            .arg(format!("--webhook-addr={webhook}"))
            .arg(format!("--webhook-secret={DEMO_WEBHOOK_SECRET}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting target/debug/factory-operator")?,
    );
    say(&format!("logging to {}", log_path.display()));

    let text = std::fs::read_to_string(root.join("examples/platform-factory.yaml"))?.replace("${git}", &base);
    let platform: Factory = serde_yaml::from_str(&text).context("examples/platform-factory.yaml")?;
    Api::<Factory>::all(client.clone())
        .patch("platform", &PatchParams::apply("cargo-xtask-demo").force(), &Patch::Apply(&platform))
        .await
        .context("creating the platform factory")?;
    say("created Factory platform (type Environments)");

    eprintln!("waiting until every factory and environment is Ready");
    wait_ready(&client, Duration::from_secs(240))
        .await
        .with_context(|| format!("the demo did not converge; the operator's log is {}", log_path.display()))?;
    eprintln!("creating a preview of storefront (as `kubectl factory preview create` does)");
    let preview: PreviewEnvironment = serde_json::from_value(json!({
        "apiVersion": "factories.dev/v1alpha1", "kind": "PreviewEnvironment",
        "metadata": {"name": "demo", "namespace": "shop-cicd"},
        "spec": {"application": "storefront", "ref": {"branch": "main"}, "ttl": "24h"}}))?;
    Api::<PreviewEnvironment>::namespaced(client.clone(), "shop-cicd")
        .patch("demo", &PatchParams::apply("cargo-xtask-demo").force(), &Patch::Apply(&preview))
        .await?;
    wait_ready(&client, Duration::from_secs(120)).await?;
    eprintln!("converged in {:.0}s\n", started.elapsed().as_secs_f64());
    rendered(&client).await.context("checking what kustomize and helm rendered")?;
    deliver(&client, &plane, &storefront.head()?).await.context("delivering a release of storefront")?;
    pull_request(&client, &gitea, &storefront).await.context("a pull request of storefront")?;
    show_notifications(&chat);

    let tree = kubectl_factory::status::load(&client, None).await?;
    let mut out = std::io::stdout();
    kubectl_factory::status::print(&tree, kubectl_factory::Output::Table, &mut out)?;
    println!();
    print_namespaces(&client).await?;
    println!(
        "\nExplore it:\n  export KUBECONFIG={}\n  export PATH={}:{}:{}:{}:$PATH\n  kubectl get factories,environments,previewenvironments -A\n  kubectl factory status\n  kubectl factory plan platform examples/platform\n  kubectl factory preview list\n  kubectl get resourcequota,networkpolicy,rolebinding -n shop-prod\n  tail -f {}",
        plane.kubeconfig.display(),
        bin.display(),
        plane.binaries.kubectl.parent().map(|p| p.display().to_string()).unwrap_or_default(),
        kustomize.parent().map(|p| p.display().to_string()).unwrap_or_default(),
        helm.parent().map(|p| p.display().to_string()).unwrap_or_default(),
        log_path.display()
    );
    if !exit {
        println!("\nPress Ctrl-C to stop everything.");
        // Stopped by `run`, which waits for Ctrl-C or SIGTERM beside this.
        std::future::pending::<()>().await;
    }
    eprintln!("stopping the operator, Gitea and the control plane");
    drop(_operator);
    drop(gitea);
    plane.stop();
    Ok(())
}

/// The demo operator's webhook secret (Gitea signs with it).
const DEMO_WEBHOOK_SECRET: &str = "demo-webhook-secret";

/// The Secrets a real platform would deliver from its secret store: the platform's token for
/// Gitea, each team's (`git`: clone, list pull requests, post statuses) in its cicd namespace
/// once the platform has made it, and shop's chat webhook.
async fn credentials(client: &Client, gitea: &Gitea, chat: &str) -> Result<()> {
    let git = json!({"username": gitea::ADMIN, "token": gitea.token, "ca.crt": gitea.ca_pem});
    let secret = |name: &str, namespace: &str, data: &serde_json::Value| -> Result<Secret> {
        Ok(serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace}, "stringData": data}))?)
    };
    let params = PatchParams::apply("cargo-xtask-demo").force();
    let put = |secret: Secret| {
        let client = client.clone();
        let params = params.clone();
        async move {
            let ns = secret.metadata.namespace.clone().unwrap_or_default();
            let name = secret.metadata.name.clone().unwrap_or_default();
            Api::<Secret>::namespaced(client, &ns).patch(&name, &params, &Patch::Apply(&secret)).await
        }
    };
    put(secret("gitea", "platform-system", &git)?).await?;
    say("platform-system/gitea: the platform's token and Gitea's CA");
    let teams = [
        secret("git", "shop-cicd", &git)?,
        secret("chat", "shop-cicd", &json!({"url": format!("{chat}/shop-chat")}))?,
        secret("git", "payments-cicd", &git)?,
    ];
    // The teams' namespaces come with the platform's first revision: written as they appear.
    let client = client.clone();
    tokio::spawn(async move {
        for secret in teams {
            let ns = secret.metadata.namespace.clone().unwrap_or_default();
            let name = secret.metadata.name.clone().unwrap_or_default();
            loop {
                let api = Api::<Secret>::namespaced(client.clone(), &ns);
                if api
                    .patch(&name, &PatchParams::apply("cargo-xtask-demo").force(), &Patch::Apply(&secret))
                    .await
                    .is_ok()
                {
                    say(&format!(
                        "{ns}/{name}: the team's {}",
                        if name == "git" { "token for Gitea" } else { "chat webhook" }
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    Ok(())
}

/// A pull request of storefront: opened on Gitea, it gets a preview at its head (its Ingress
/// from the platform's template) and a success status with the preview's URL on its commit.
async fn pull_request(client: &Client, gitea: &Gitea, storefront: &Repo) -> Result<()> {
    storefront.branch("checkout-redesign")?;
    let config = storefront.work_tree().join("deploy/base/config.yaml");
    let text = std::fs::read_to_string(&config)?;
    storefront.write("deploy/base/config.yaml", &format!("{text}# the redesigned checkout\n"))?;
    let sha = storefront.commit("checkout: redesign")?;
    let started = Instant::now();
    let number = gitea.open_pull("storefront", "checkout-redesign", "main", "Redesign the checkout").await?;
    eprintln!("opened pull request #{number} of storefront on Gitea (head {})", &sha[..12]);
    let name = format!("storefront-pr-{number}");
    let previews: Api<PreviewEnvironment> = Api::namespaced(client.clone(), "shop-cicd");
    let url = loop {
        let ready_now =
            previews.get_opt(&name).await?.and_then(|p| p.status).is_some_and(|s| ready(&s.reconcile.conditions));
        if ready_now {
            let statuses = gitea.statuses("storefront", &sha).await?;
            let done = statuses.into_iter().find(|(c, st, ..)| c == "factory/shop/preview" && st == "success");
            if let Some((.., url)) = done {
                break url;
            }
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("preview {name} is not Ready with a success status on {sha} after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    say(&format!(
        "preview {name} Ready in {:.1}s; Gitea shows on {}: success, \"Preview ready\", {}",
        started.elapsed().as_secs_f64(),
        &sha[..12],
        url
    ));
    Ok(())
}

/// What shop's chat was told (a release waiting for prod's approval, at least).
fn show_notifications(chat: &Receiver) {
    let received = chat.received();
    eprintln!("shop's chat received {} notification(s):", received.len());
    for r in received {
        let text = serde_json::from_slice::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|v| v["text"].as_str().map(str::to_string))
            .unwrap_or_default();
        say(&text);
    }
}

/// A release of storefront travels through shop: recorded (as a build run or an outside CI
/// would), it reaches test at once and stage once healthy in test for 10 s; prod waits for an
/// approval, which an owner may not give and a member of `shop-approvers` does.
async fn deliver(client: &Client, plane: &ControlPlane, sha: &str) -> Result<()> {
    let image = format!("storefront=registry.example.com/shop/storefront@sha256:{}", "5".repeat(64));
    let recorded = kubectl_factory::releases::create(client, "shop", "storefront", sha, &[image]).await?;
    eprintln!("{recorded} (kubectl factory release create)");
    let release = recorded.split_whitespace().nth(1).unwrap_or_default().to_string();
    let runs = |env: &'static str| {
        let release = release.clone();
        let client = client.clone();
        async move {
            let e = Api::<Environment>::all(client).get(&format!("shop-{env}")).await.ok()?;
            let app = e.status?.applications.into_iter().find(|a| a.name == "storefront")?;
            let healthy = app.health.is_some_and(|h| h.state == factory_api::HealthState::Healthy);
            Some(app.release.is_some_and(|r| r.name == release) && healthy)
        }
    };
    for env in ["test", "stage"] {
        wait_for(&format!("{release} healthy in {env}"), Duration::from_secs(120), || runs(env)).await?;
        say(&format!("{release} runs in {env}, healthy"));
    }
    show_releases(client).await?;
    let owner = user_client(plane, "olivia", "team-shop").await?;
    if let Err(e) = kubectl_factory::releases::promote(&owner, "shop", "storefront", "prod", None).await {
        eprintln!("an owner approving prod is refused: {e}");
    }
    let approver = user_client(plane, "arthur", "shop-approvers").await?;
    let approved = kubectl_factory::releases::promote(&approver, "shop", "storefront", "prod", None).await?;
    eprintln!("{approved} (kubectl factory approve, as arthur of shop-approvers)");
    wait_for(&format!("{release} healthy in prod"), Duration::from_secs(120), || runs("prod")).await?;
    show_releases(client).await
}

async fn show_releases(client: &Client) -> Result<()> {
    // The team factory gathers its environments' changes over a second before it writes its view.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let view = kubectl_factory::releases::load(client, "shop", Some("storefront")).await?;
    let mut out = Vec::new();
    kubectl_factory::releases::print(&view, kubectl_factory::Output::Table, &mut out)?;
    eprintln!("kubectl factory releases shop storefront\n{}", String::from_utf8_lossy(&out));
    Ok(())
}

/// A client authenticated as `user` in `group` with a client certificate of the demo's CA.
async fn user_client(plane: &ControlPlane, user: &str, group: &str) -> Result<Client> {
    crate::client_for(&plane.user_kubeconfig(user, &[group])?).await
}

/// Shows (and checks) what the tools rendered: the prod class overlay's annotation on prod's
/// quota, and payments-api's chart with prod's values file in prod only.
async fn rendered(client: &Client) -> Result<()> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, ResourceQuota};
    let quota = Api::<ResourceQuota>::namespaced(client.clone(), "shop-prod").get("environment-quota").await?;
    let tier = quota.annotations().get("platform.example.com/tier").cloned().unwrap_or_default();
    if tier != "prod" {
        bail!("shop-prod's quota lacks the prod class overlay's annotation (found {tier:?})");
    }
    say("kustomize: the prod class overlay annotated shop-prod's quota platform.example.com/tier=prod");
    for (env, replicas, level) in [("payments-test", 1, "debug"), ("payments-prod", 2, "warn")] {
        let deployment = Api::<Deployment>::namespaced(client.clone(), env).get("payments-api").await?;
        let found = deployment.spec.replicas.unwrap_or_default();
        let config = Api::<ConfigMap>::namespaced(client.clone(), env).get("payments-api-config").await?;
        let log = config.data.unwrap_or_default().get("LOG_LEVEL").cloned().unwrap_or_default();
        if found != replicas || log != level {
            bail!("{env}: payments-api has {found} replicas and LOG_LEVEL={log}, not {replicas} and {level}");
        }
        say(&format!("helm: payments-api in {env}: {found} replica(s), LOG_LEVEL={log}"));
    }
    Ok(())
}

/// Polls `probe` until it answers `Some(true)`, at most `timeout`.
async fn wait_for<F, Fut>(what: &str, timeout: Duration, probe: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<bool>>,
{
    let deadline = Instant::now() + timeout;
    while probe().await != Some(true) {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

/// The platform factory's account. In a real cluster it gets exactly what the platform
/// repository needs; the demo binds cluster-admin to keep the example short.
async fn platform_account(client: &Client) -> Result<()> {
    let params = PatchParams::apply("cargo-xtask-demo").force();
    let ns: Namespace = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "platform-system"}}),
    )?;
    Api::<Namespace>::all(client.clone()).patch("platform-system", &params, &Patch::Apply(&ns)).await?;
    let sa: k8s_openapi::api::core::v1::ServiceAccount = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "platform", "namespace": "platform-system"}}),
    )?;
    Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client.clone(), "platform-system")
        .patch("platform", &params, &Patch::Apply(&sa))
        .await?;
    let binding: k8s_openapi::api::rbac::v1::ClusterRoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "demo-platform"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "platform", "namespace": "platform-system"}]}))?;
    Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(client.clone())
        .patch("demo-platform", &params, &Patch::Apply(&binding))
        .await?;
    say("platform-system/platform: the platform factory's service account");
    Ok(())
}

fn ready(conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> bool {
    conditions.iter().any(|c| c.type_ == READY && c.status == "True")
}

/// Waits until the platform and both team factories, every Environment (with its
/// applications applied) and every preview are Ready; prints what is still waiting.
async fn wait_ready(client: &Client, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let mut waiting = Vec::new();
        let factories = Api::<Factory>::all(client.clone()).list(&ListParams::default()).await?.items;
        if factories.len() < 3 {
            waiting.push(format!("{} of 3 factories exist", factories.len()));
        }
        for f in &factories {
            if !ready(&f.status.clone().unwrap_or_default().reconcile.conditions) {
                waiting.push(format!("Factory {}", f.name_any()));
            }
        }
        let envs = Api::<Environment>::all(client.clone()).list(&ListParams::default()).await?.items;
        if envs.len() < 5 {
            waiting.push(format!("{} of 5 environments exist", envs.len()));
        }
        for e in &envs {
            let s = e.status.clone().unwrap_or_default();
            // An application delivered by releases is settled while it waits for one.
            let apps_done = s
                .applications
                .iter()
                .all(|a| a.error.is_empty() && (a.last_applied_revision.is_some() || !a.waiting.is_empty()));
            if !ready(&s.reconcile.conditions) || s.applications.is_empty() || !apps_done {
                waiting.push(format!("Environment {}", e.name_any()));
            }
        }
        for p in Api::<PreviewEnvironment>::all(client.clone()).list(&ListParams::default()).await?.items {
            if !ready(&p.status.clone().unwrap_or_default().reconcile.conditions) {
                waiting.push(format!("PreviewEnvironment {}", p.name_any()));
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        let now = format!("waiting for {}", waiting.join(", "));
        if now != last {
            say(&now);
            last = now;
        }
        if Instant::now() > deadline {
            bail!("timed out {last}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What the operator put into each namespace it manages.
async fn print_namespaces(client: &Client) -> Result<()> {
    let namespaces =
        Api::<Namespace>::all(client.clone()).list(&ListParams::default().labels(labels::FACTORY)).await?.items;
    let kinds: [(&str, &str, &str, &str); 12] = [
        ("", "v1", "ServiceAccount", "serviceaccounts"),
        ("", "v1", "ConfigMap", "configmaps"),
        ("", "v1", "ResourceQuota", "resourcequotas"),
        ("", "v1", "LimitRange", "limitranges"),
        ("", "v1", "Service", "services"),
        ("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies"),
        ("networking.k8s.io", "v1", "Ingress", "ingresses"),
        ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings"),
        ("apps", "v1", "Deployment", "deployments"),
        ("tekton.dev", "v1", "Pipeline", "pipelines"),
        ("tekton.dev", "v1", "Task", "tasks"),
        ("factories.dev", "v1alpha1", "PreviewEnvironment", "previewenvironments"),
    ];
    println!("NAMESPACES AND WHAT IS IN THEM");
    for ns in namespaces {
        let name = ns.name_any();
        let l = ns.labels();
        let what = l.get(labels::NAMESPACE_KIND).cloned().unwrap_or_default();
        let class = l.get(labels::CLASS).map(|c| format!(", class {c}")).unwrap_or_default();
        let protected = if l.contains_key(labels::PROTECTED) { ", protected" } else { "" };
        println!("{name} ({what}{class}{protected})");
        let mut found: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (group, version, kind, plural) in kinds {
            let api_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
            let resource = ApiResource {
                group: group.into(),
                version: version.into(),
                api_version,
                kind: kind.into(),
                plural: plural.into(),
            };
            let list = Api::<DynamicObject>::namespaced_with(client.clone(), &name, &resource)
                .list(&ListParams::default())
                .await;
            // Only what the operator applied (the API server's own defaults are left out).
            let names: Vec<String> = list
                .map(|l| l.items)
                .unwrap_or_default()
                .into_iter()
                .filter(|o| o.labels().contains_key(labels::APPLIED_BY) || kind == "PreviewEnvironment")
                .map(|o| o.name_any())
                .collect();
            if !names.is_empty() {
                found.insert(kind, names);
            }
        }
        for (kind, names) in found {
            println!("  {kind:<20} {}", names.join(", "));
        }
    }
    Ok(())
}
