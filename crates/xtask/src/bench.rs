//! `cargo xtask bench`: the operator at scale on the local control plane, with its baselines
//! measured in the same run. For each size: a generated platform repository with one team
//! factory per 10 environments and a class baseline of 8 objects; the real operator binary
//! builds it. Measured: cold converge, objects per second, API requests and writes (from
//! kube-apiserver's own counters), peak RSS, writes of a no-change resync, time and writes of
//! a one-file change, restart → first write. Baselines on the same control plane: (a) a minimal
//! server-side-apply client at the best of three concurrencies, (b) `kubectl apply
//! --server-side`, both applying the same rendered objects under other names.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use factory_api::conditions::READY;
use factory_api::{Environment, Factory};
use factory_control_plane::{ControlPlane, Lifetime, Options};
use factory_testkit::git::{GitDaemon, GitRoot};
use futures::StreamExt;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

/// Environments per team factory.
const ENVS_PER_TEAM: usize = 10;

/// The bench application: one ConfigMap.
const APP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-config}\ndata: {release: '1'}\n";

const CLASS: &str = "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: quota}\nspec:\n  hard: {requests.cpu: '4', requests.memory: 8Gi, pods: '50', services.nodeports: '0'}\n---\napiVersion: v1\nkind: LimitRange\nmetadata: {name: defaults}\nspec:\n  limits:\n  - type: Container\n    default: {cpu: 200m, memory: 128Mi}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: default-deny}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: allow-same-namespace}\nspec:\n  podSelector: {}\n  ingress: [{from: [{podSelector: {}}]}]\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: allow-dns}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{ports: [{protocol: UDP, port: 53}]}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: platform-info}\ndata: {environment: '${environment}', class: '${class}'}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: app}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: app-reader}\nrules: [{apiGroups: [''], resources: [configmaps], verbs: [get, list]}]\n";

pub(crate) struct Operator {
    child: Child,
    metrics: String,
}

impl Operator {
    /// Kills the process and waits for it.
    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn start(bin: &Path, kubeconfig: &Path, dir: &Path, log: &str, resync: &str) -> Result<Self> {
        Self::start_with(bin, kubeconfig, dir, log, resync, &[])
    }

    /// Like [`Operator::start`], with more arguments (a webhook receiver).
    pub(crate) fn start_with(
        bin: &Path,
        kubeconfig: &Path,
        dir: &Path,
        log: &str,
        resync: &str,
        extra: &[String],
    ) -> Result<Self> {
        let log = std::fs::File::create(dir.join(log))?;
        // A free port for its /metrics, to read its reconcile counts.
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.to_string();
        // BENCH_OPERATOR_WRAPPER runs the operator under a profiler (say `heaptrack -o <file>`);
        // its memory figures are then the profiler's process, not the operator's.
        let mut command = match std::env::var("BENCH_OPERATOR_WRAPPER") {
            Ok(wrapper) => {
                let mut words = wrapper.split_whitespace();
                let mut c = Command::new(words.next().unwrap_or("env"));
                c.args(words).arg(bin);
                c
            }
            Err(_) => Command::new(bin),
        };
        let child = command
            .env("KUBECONFIG", kubeconfig)
            .env("MALLOC_ARENA_MAX", malloc_arenas())
            .arg(format!("--git-cache={}", dir.join("git-cache").display()))
            .arg(format!("--metrics-addr={metrics}"))
            .arg(format!("--resync-interval={resync}"))
            .arg(format!(
                "--kustomize={}",
                factory_control_plane::binaries::kustomize(&|l| eprintln!("  · {l}"))?.display()
            ))
            .arg(format!("--helm={}", factory_control_plane::binaries::helm(&|l| eprintln!("  · {l}"))?.display()))
            .arg(
                std::env::var("BENCH_OPERATOR_LOG")
                    .map(|l| format!("--log={l}"))
                    .unwrap_or_else(|_| "--log=warn".into()),
            )
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting factory-operator")?;
        Ok(Self { child, metrics })
    }

    /// The operator's own `/metrics`, as text.
    fn scrape(&self) -> String {
        use std::io::{Read, Write};
        let mut text = String::new();
        if let Ok(mut stream) = std::net::TcpStream::connect(&self.metrics) {
            let request = format!("GET /metrics HTTP/1.0\r\nHost: {}\r\n\r\n", self.metrics);
            if stream.write_all(request.as_bytes()).is_ok() {
                let _ = stream.read_to_string(&mut text);
            }
        }
        text
    }

    /// Renders so far: (answered from the cache, run, seconds spent running them).
    fn renders(&self) -> (f64, f64, f64) {
        let text = self.scrape();
        let value = |prefix: &str| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
                .sum()
        };
        let name = "factory_operator_render_duration_seconds";
        (
            value(&format!("{name}_count{{outcome=\"hit\"}}")),
            value(&format!("{name}_count{{outcome=\"rendered\"}}")),
            value(&format!("{name}_sum{{outcome=\"rendered\"}}")),
        )
    }

    /// Reconciles so far by controller, from the operator's own `/metrics`.
    fn reconciles(&self) -> BTreeMap<String, f64> {
        let text = self.scrape();
        let mut out = BTreeMap::new();
        for line in text.lines().filter(|l| l.starts_with("factory_operator_reconciles_total{")) {
            let controller =
                line.split("controller=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("").to_string();
            let value: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
            *out.entry(controller).or_insert(0.0) += value;
        }
        out
    }

    /// Peak resident set size in MiB (VmHWM).
    fn peak_rss_mib(&self) -> f64 {
        self.status_mib("VmHWM:")
    }

    /// Resident set size now, in MiB (VmRSS).
    fn rss_mib(&self) -> f64 {
        self.status_mib("VmRSS:")
    }

    /// A memory line of the process's `/proc/<pid>/status`, in MiB.
    fn status_mib(&self, key: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The request verbs that write.
const WRITE_VERBS: [&str; 5] = ["POST", "PUT", "PATCH", "APPLY", "DELETE"];

/// kube-apiserver's request counters by verb and resource (subresource included); writes only,
/// dry-runs excluded, when `writes_only`, else every request with dry-runs named apart.
/// The operator's `MALLOC_ARENA_MAX`: the image's (Dockerfile), two arenas rather than eight per
/// core, unless the environment sets another.
fn malloc_arenas() -> String {
    std::env::var("MALLOC_ARENA_MAX").unwrap_or_else(|_| "2".into())
}

fn requests_by_resource(plane: &ControlPlane, writes_only: bool) -> BTreeMap<String, f64> {
    let metrics = plane.kubectl_output(&["get", "--raw", "/metrics"]).unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in metrics.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        let label = |name: &str| {
            line.split(&format!("{name}=\"")).nth(1).and_then(|r| r.split('"').next()).unwrap_or("").to_string()
        };
        let verb = label("verb");
        // A server-side dry-run (validation) writes nothing to etcd.
        let dry_run = line.contains("dry_run=\"All\"");
        let write = WRITE_VERBS.contains(&verb.as_str());
        if writes_only && (!write || dry_run) {
            continue;
        }
        let value: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let key = format!(
            "{verb}{} {}{}",
            if dry_run { " (dry-run)" } else { "" },
            label("resource"),
            match label("subresource") {
                s if s.is_empty() => s,
                s => format!("/{s}"),
            }
        );
        *out.entry(key).or_insert(0.0) += value;
    }
    out
}

/// [`requests_by_resource`], writes only.
fn writes_by_resource(plane: &ControlPlane) -> BTreeMap<String, f64> {
    requests_by_resource(plane, true)
}

/// What grew between two [`writes_by_resource`] readings, largest first, at most `limit` entries.
fn grown(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, limit: usize) -> String {
    let mut d: Vec<(String, f64)> = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect();
    d.sort_by(|a, b| b.1.total_cmp(&a.1));
    d.iter().take(limit).map(|(k, v)| format!("{k} {v:.0}")).collect::<Vec<_>>().join(", ")
}

/// kube-apiserver's request counters: (all requests, writes). Dry-runs count as requests, not writes.
fn requests(plane: &ControlPlane) -> (f64, f64) {
    let by = requests_by_resource(plane, false);
    let all = by.values().sum();
    let writes = by
        .iter()
        .filter(|(key, _)| {
            !key.contains("(dry-run)") && key.split(' ').next().is_some_and(|verb| WRITE_VERBS.contains(&verb))
        })
        .map(|(_, v)| v)
        .sum();
    (all, writes)
}

pub(crate) fn ready(conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> bool {
    conditions.iter().any(|c| c.type_ == READY && c.status == "True")
}

/// Waits until `n` Environments are Ready at a platform revision ending in `commit`. One watch,
/// not repeated lists: at 10,000 environments a list is tens of megabytes the API server would
/// serve while being measured.
async fn all_ready(client: &Client, n: usize, commit: &str, timeout: Duration) -> Result<()> {
    use futures::TryStreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let events = watcher(Api::<Environment>::all(client.clone()), watcher::Config::default()).applied_objects();
    let mut events = std::pin::pin!(events);
    let mut done = std::collections::HashSet::new();
    let wait = async {
        while let Some(env) = events.try_next().await? {
            let s = env.status.clone().unwrap_or_default();
            let name = env.metadata.name.clone().unwrap_or_default();
            if ready(&s.reconcile.conditions) && s.reconcile.last_applied_revision.is_some_and(|r| r.ends_with(commit))
            {
                done.insert(name);
            } else {
                done.remove(&name);
            }
            if done.len() >= n {
                return Ok(());
            }
        }
        bail!("the watch of Environments ended")
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(result) => result,
        Err(_) => bail!("not all {n} environments Ready after {}s", timeout.as_secs()),
    }
}

/// The objects one environment gets, rendered as the operator renders them, in `namespace`.
fn rendered(namespace: &str, team: &str, env: &str) -> Result<Vec<Value>> {
    let vars = BTreeMap::from([
        ("environment".to_string(), env.to_string()),
        ("class".to_string(), "base".to_string()),
        ("namespace".to_string(), namespace.to_string()),
        ("factory".to_string(), team.to_string()),
        ("platform".to_string(), "platform".to_string()),
    ]);
    let files = [factory_core::manifests::SourceFile { path: "classes/base/all.yaml".into(), content: CLASS.into() }];
    let manifests = factory_core::manifests::load(&files, &vars).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let target = factory_core::baseline::Target {
        factory: team,
        platform: "platform",
        namespace,
        class: "base",
        environment: env,
        kind: "permanent",
        protected: false,
        tenant_namespace: factory_api::DEFAULT_TENANT_NAMESPACE,
    };
    let origin = factory_core::manifests::Manifest { file: "bench".into(), line: 0, document: 0, object: Value::Null };
    let mut out: Vec<Value> = factory_core::baseline::objects(&target, &Default::default(), manifests, &origin)
        .into_iter()
        .map(|m| m.object)
        .collect();
    out.push(factory_core::pipelines::deployer_binding(team, namespace, env));
    Ok(out)
}

fn resource(object: &Value) -> (ApiResource, bool) {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "NetworkPolicy" => "networkpolicies".to_string(),
        other => format!("{}s", other.to_lowercase()),
    };
    let namespaced = kind != "Namespace";
    (
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: api_version.into(),
            kind: kind.into(),
            plural,
        },
        namespaced,
    )
}

/// One preview of the first team factory's application: (create → Ready, delete → its
/// namespace gone, which includes kube-controller-manager emptying the namespace).
async fn preview_round(client: &Client, round: usize) -> Result<(Duration, Duration)> {
    use factory_api::PreviewEnvironment;
    let api: Api<PreviewEnvironment> = Api::namespaced(client.clone(), "t0000-cicd");
    let name = format!("bench-{round}");
    let preview: PreviewEnvironment = serde_json::from_value(json!({"apiVersion": "factories.dev/v1alpha1",
        "kind": "PreviewEnvironment", "metadata": {"name": name},
        "spec": {"application": "app", "ref": {"branch": "main"}, "class": "base"}}))?;
    let started = Instant::now();
    api.create(&Default::default(), &preview).await?;
    let namespace = loop {
        let p = api.get(&name).await?;
        let s = p.status.unwrap_or_default();
        if ready(&s.reconcile.conditions) {
            break s.namespace.unwrap_or_default();
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("preview {name} not Ready after 300 s: {:?}", s.reconcile.conditions);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let to_ready = started.elapsed();
    let deleted = Instant::now();
    api.delete(&name, &Default::default()).await?;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    while namespaces.get_opt(&namespace).await?.is_some() {
        if deleted.elapsed() > Duration::from_secs(300) {
            bail!("namespace {namespace} still there 300 s after its preview was deleted");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((to_ready, deleted.elapsed()))
}

/// Baseline (a): the same objects with server-side apply at `concurrency`; namespaces first.
/// `validate`: each phase is dry-run in full before it is written, as the operator validates.
async fn raw_apply(client: &Client, objects: &[Value], concurrency: usize, validate: bool) -> Result<Duration> {
    let started = Instant::now();
    let write = PatchParams::apply("bench-baseline").force();
    let passes: &[(bool, bool)] = if validate {
        &[(true, true), (true, false), (false, true), (false, false)]
    } else {
        &[(true, false), (false, false)]
    };
    for &(phase, dry_run) in passes {
        let params = if dry_run { write.clone().dry_run() } else { write.clone() };
        let batch: Vec<&Value> = objects.iter().filter(|o| (o["kind"] == "Namespace") == phase).collect();
        let results: Vec<Result<(), kube::Error>> = futures::stream::iter(batch)
            .map(|o| {
                let params = params.clone();
                async move {
                    let (ar, namespaced) = resource(o);
                    let name = o["metadata"]["name"].as_str().unwrap_or_default().to_string();
                    let api: Api<DynamicObject> = if namespaced {
                        Api::namespaced_with(
                            client.clone(),
                            o["metadata"]["namespace"].as_str().unwrap_or_default(),
                            &ar,
                        )
                    } else {
                        Api::all_with(client.clone(), &ar)
                    };
                    api.patch(&name, &params, &Patch::Apply(o)).await.map(|_| ())
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
            bail!("baseline apply failed: {e}");
        }
    }
    Ok(started.elapsed())
}

/// The same environments' objects under a name prefix (a cold apply for each baseline).
fn baseline_objects(prefix: &str, teams: usize) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for t in 0..teams {
        for e in 0..ENVS_PER_TEAM {
            let team = format!("{prefix}{t:04}");
            let env = format!("e{e}");
            out.extend(rendered(&format!("{team}-{env}"), &team, &env)?);
        }
    }
    Ok(out)
}

/// Runs the benchmark for each size; appends a report to `docs/benchmarks.md`.
pub fn run(root: &Path, sizes: &[usize], cold_only: bool) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let mut report = String::new();
    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string()))
            .map(|kb| format!("{} GiB RAM", kb.parse::<u64>().unwrap_or(0) / 1024 / 1024))
            .unwrap_or_default()
    );
    let _ = writeln!(
        report,
        "\n## Run of {} (`cargo xtask bench --sizes {}{}`, commit {})\n",
        k8s_openapi::jiff::Timestamp::now(),
        sizes.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        if cold_only { " --cold-only" } else { "" },
        measured_commit(root)
    );
    let _ = writeln!(
        report,
        "Machine: {machine}; Kubernetes {}; etcd {}; release build of the operator, run with `MALLOC_ARENA_MAX={}` (the image's setting unless the environment says otherwise).\n",
        factory_control_plane::versions::KUBERNETES,
        factory_control_plane::versions::ETCD,
        malloc_arenas()
    );
    // Each size is appended as soon as it is measured: a larger size failing keeps the others.
    for &size in sizes {
        // Ctrl-C or SIGTERM drops the size being measured, stopping what it started.
        let section = runtime.block_on(async {
            tokio::select! {
                section = one(root, size, cold_only) => section,
                signal = crate::signals::stop_signal() => bail!("{}: the benchmark stopped", signal?),
            }
        })?;
        println!("{section}");
        report.push_str(&section);
        append(root, &std::mem::take(&mut report))?;
    }
    Ok(())
}

/// The platform factory's account, `platform-system/platform`, bound to cluster-admin.
pub(crate) fn platform_account(plane: &ControlPlane) -> Result<()> {
    plane.kubectl_output(&["create", "namespace", "platform-system"])?;
    plane.kubectl_output(&["create", "serviceaccount", "platform", "-n", "platform-system"])?;
    plane.kubectl_output(&[
        "create",
        "clusterrolebinding",
        "platform",
        "--clusterrole=cluster-admin",
        "--serviceaccount=platform-system:platform",
    ])?;
    Ok(())
}

/// The commit measured: `git rev-parse --short HEAD`, with `-dirty` when the tree has changes.
pub(crate) fn measured_commit(root: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(root)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{head}-dirty") } else { head }
}

pub(crate) fn append(root: &Path, report: &str) -> Result<()> {
    let path = root.join("docs/benchmarks.md");
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        "# Benchmarks\n\nEvery figure comes from `cargo xtask bench`; baselines are measured in the same run on the same control plane, and every figure is also given as a ratio to its baseline.\n".into()
    });
    text.push_str(report);
    std::fs::write(&path, text)?;
    eprintln!("appended to {}", path.display());
    Ok(())
}

/// What the phases after the cold converge measured.
struct Later {
    change_time: Duration,
    change_writes: f64,
    change_detail: String,
    first_write: Duration,
    restart_converge: Duration,
    previews: Vec<(Duration, Duration)>,
    rss: f64,
    render: RenderPhase,
}

/// The class turned into a kustomize overlay with the same output, against a plain commit that
/// changes nothing applied either.
struct RenderPhase {
    plain: Duration,
    kustomized: Duration,
    writes: f64,
    hits: f64,
    renders: f64,
    render_seconds: f64,
}

async fn one(root: &Path, environments: usize, cold_only: bool) -> Result<String> {
    let teams = environments.div_ceil(ENVS_PER_TEAM);
    // Every environment is re-applied once per resync interval (a read and a dry-run per
    // object). This API server serves about 13 environment reconciles a second: 10,000
    // environments every 5 minutes (33 a second) would never let a cold converge finish.
    let resync = if environments >= 5000 { "30m" } else { "5m" };
    let bin = root.join("target/release/factory-operator");
    let dir = root.join(format!("target/bench/{environments}"));
    std::fs::create_dir_all(&dir)?;
    eprintln!("== {environments} environments ({teams} team factories × {ENVS_PER_TEAM})");
    let options = Options {
        dir: dir.join("control-plane"),
        lifetime: Lifetime::TiedToOwner,
        install_crds: true,
        install_tekton: false,
        // Environments without workloads: the benchmark measures the operator, not pods.
        workloads: false,
    };
    let mut plane = ControlPlane::start(&options, &|l| eprintln!("  · {l}"))?;
    let client = crate::client_for(&plane.kubeconfig).await?;

    // The platform repository.
    let git = GitRoot::new()?;
    let daemon = GitDaemon::start(git.path())?;
    // One application, in the first team factory only: previews need one.
    git.repo("app", &[("deploy/base/config.yaml", APP)])?;
    let mut files: Vec<(String, String)> = vec![("classes/base/all.yaml".into(), CLASS.into())];
    for t in 0..teams {
        let envs: Vec<String> = (0..ENVS_PER_TEAM).map(|e| format!("{{name: e{e}}}")).collect();
        let app = if t == 0 {
            format!(
                "  applications: [{{name: app, source: {{url: '{}'}}, config: {{path: deploy/}}}}]\n  previews: {{class: base}}\n",
                daemon.url("app")
            )
        } else {
            String::new()
        };
        files.push((
            format!("factories/t{t:04}.yaml"),
            format!("apiVersion: factories.dev/v1alpha1\nkind: Factory\nmetadata: {{name: t{t:04}}}\nspec:\n  type: Applications\n  environments: [{}]\n{app}", envs.join(", ")),
        ));
    }
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let repo = git.repo("platform", &refs)?;
    platform_account(&plane)?;
    let factory: Factory = serde_json::from_value(json!({"apiVersion": "factories.dev/v1alpha1", "kind": "Factory",
        "metadata": {"name": "platform"},
        "spec": {"type": "Environments", "source": {"url": daemon.url("platform"), "interval": "1h"},
                 "serviceAccount": {"namespace": "platform-system", "name": "platform"},
                 "factories": {"path": "factories/"}, "environmentClasses": [{"name": "base", "path": "classes/base/"}]}}))?;

    // Cold converge.
    let (req0, writes0) = requests(&plane);
    let all0 = requests_by_resource(&plane, false);
    let mut operator = Operator::start(&bin, &plane.kubeconfig, &dir, "operator.log", resync)?;
    let started = Instant::now();
    Api::<Factory>::all(client.clone())
        .patch("platform", &PatchParams::apply("bench").force(), &Patch::Apply(&factory))
        .await?;
    let head = repo.head()?;
    all_ready(&client, environments, &head, Duration::from_secs(3600)).await?;
    let cold = started.elapsed();
    let (req1, writes1) = requests(&plane);
    let all1 = requests_by_resource(&plane, false);
    let cold_detail = grown(&all0, &all1, 8);
    eprintln!("  cold converge requests: {}", grown(&all0, &all1, usize::MAX));
    let cold_reconciles = operator.reconciles();
    let cold_reconciles = cold_reconciles.iter().map(|(c, n)| format!("{c} {n:.0}")).collect::<Vec<_>>().join(", ");
    eprintln!("  cold converge reconciles: {cold_reconciles}");
    let per_env = rendered("x", "t", "e")?.len();
    // Per environment, per team factory (cicd namespace, account, bindings, quota), plus the
    // first team's application in each of its environments.
    let objects = environments * per_env + teams * 6 + ENVS_PER_TEAM;
    let converged_rss = operator.rss_mib();
    eprintln!(
        "  cold converge {:.1}s, operator peak RSS so far {:.0} MiB, {converged_rss:.0} MiB now",
        cold.as_secs_f64(),
        operator.peak_rss_mib()
    );

    // Steady state: once the operator is quiet (no status or object written for 5 s), a resync
    // of everything (the platform factory poked) should write nothing.
    let quiet = Instant::now();
    let mut last = requests(&plane).1;
    let mut still = Instant::now();
    while still.elapsed() < Duration::from_secs(5) && quiet.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = requests(&plane).1;
        if now > last {
            still = Instant::now();
        }
        last = now;
    }
    let (_, w_before) = requests(&plane);
    let by_before = writes_by_resource(&plane);
    let platform_runs = || operator.reconciles().get("factory").copied().unwrap_or(0.0);
    let runs_before = platform_runs();
    let poke = json!({"metadata": {"annotations": {"factories.dev/requested-at": "bench-resync"}}});
    Api::<Factory>::all(client.clone()).patch("platform", &PatchParams::default(), &Patch::Merge(&poke)).await?;
    // The platform factory's full resync (every object read and dry-run) is counted once it
    // ends: the window covers it (up to as long as the cold converge took), then the rest.
    let poked = Instant::now();
    while platform_runs() <= runs_before && poked.elapsed() < cold.max(Duration::from_secs(60)) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let platform_resync = (platform_runs() > runs_before).then(|| poked.elapsed());
    let platform_objects =
        Api::<Factory>::all(client.clone()).get("platform").await?.status.and_then(|s| s.objects).unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(5).max(cold / 4)).await;
    let (_, w_after) = requests(&plane);
    let steady_writes = w_after - w_before;
    let steady_detail = grown(&by_before, &writes_by_resource(&plane), 8);
    eprintln!(
        "  resync writes: {steady_detail}; platform resync {}; operator peak RSS so far {:.0} MiB",
        platform_resync.map_or_else(|| "not finished".to_string(), |t| format!("{:.1}s", t.as_secs_f64())),
        operator.peak_rss_mib()
    );

    // The phases after the cold converge, unless `--cold-only` (the largest sizes, where
    // each phase reconciles every environment again).
    let later = if cold_only {
        None
    } else {
        // One file changes: one object per environment.
        let (_, w0) = requests(&plane);
        let by0 = writes_by_resource(&plane);
        let changed = Instant::now();
        repo.write("classes/base/all.yaml", &CLASS.replace("class: '${class}'", "class: '${class}', changed: 'yes'"))?;
        let head = repo.commit("one file")?;
        Api::<Factory>::all(client.clone())
            .patch(
                "platform",
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"annotations": {"factories.dev/requested-at": "bench-change"}}})),
            )
            .await?;
        all_ready(&client, environments, &head, Duration::from_secs(3600)).await?;
        let change_time = changed.elapsed();
        let (_, w1) = requests(&plane);
        let change_writes = w1 - w0;
        let change_detail = grown(&by0, &writes_by_resource(&plane), 8);
        eprintln!("  change {:.1}s, writes: {change_detail}", change_time.as_secs_f64());
        let rss_after_change = operator.peak_rss_mib();

        // Restart → first write: a change made while the operator is down.
        operator.stop();
        repo.write("classes/base/all.yaml", CLASS)?;
        let head = repo.commit("while down")?;
        let (_, w_down) = requests(&plane);
        let restarted = Instant::now();
        operator = Operator::start(&bin, &plane.kubeconfig, &dir, "operator-restart.log", resync)?;
        let first_write = loop {
            let (_, w) = requests(&plane);
            if w > w_down + 1.0 {
                break restarted.elapsed();
            }
            if restarted.elapsed() > Duration::from_secs(600) {
                bail!("no write within 600 s of the restart");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        all_ready(&client, environments, &head, Duration::from_secs(3600)).await?;
        let restart_converge = restarted.elapsed();
        eprintln!(
            "  restart: first write {:.1}s, converged {:.1}s",
            first_write.as_secs_f64(),
            restart_converge.as_secs_f64()
        );

        // Rendering: the same class as a kustomize overlay (the same objects), against a plain
        // commit that changes nothing applied either; renders and cache answers from /metrics.
        let poke = |what: &'static str| {
            let client = client.clone();
            async move {
                let patch = json!({"metadata": {"annotations": {"factories.dev/requested-at": what}}});
                Api::<Factory>::all(client).patch("platform", &PatchParams::default(), &Patch::Merge(&patch)).await
            }
        };
        repo.write("classes/base/all.yaml", &format!("# unchanged objects\n{CLASS}"))?;
        let head = repo.commit("plain, nothing applied changes")?;
        let started = Instant::now();
        poke("bench-plain").await?;
        all_ready(&client, environments, &head, Duration::from_secs(3600)).await?;
        let plain = started.elapsed();
        let (hits0, renders0, seconds0) = operator.renders();
        let (_, w0) = requests(&plane);
        repo.write("classes/base/kustomization.yaml", "resources: [all.yaml]\n")?;
        let head = repo.commit("the class as a kustomize overlay")?;
        let started = Instant::now();
        poke("bench-kustomize").await?;
        all_ready(&client, environments, &head, Duration::from_secs(3600)).await?;
        let kustomized = started.elapsed();
        let (_, w1) = requests(&plane);
        let (hits1, renders1, seconds1) = operator.renders();
        let render = RenderPhase {
            plain,
            kustomized,
            writes: w1 - w0,
            hits: hits1 - hits0,
            renders: renders1 - renders0,
            render_seconds: seconds1 - seconds0,
        };
        eprintln!(
            "  kustomize overlay: {:.1}s (plain {:.1}s), {:.0} renders, {:.0} cache answers",
            kustomized.as_secs_f64(),
            plain.as_secs_f64(),
            render.renders,
            render.hits
        );

        // Previews: create → Ready, delete → namespace gone, three rounds.
        let mut previews = Vec::new();
        for round in 0..3 {
            previews.push(preview_round(&client, round).await?);
        }
        Some(Later {
            change_time,
            change_writes,
            change_detail,
            first_write,
            restart_converge,
            previews,
            rss: rss_after_change,
            render,
        })
    };
    let rss = later.as_ref().map_or_else(|| operator.peak_rss_mib(), |l| l.rss);
    drop(operator);

    // Baseline (a): the minimal client, best of three concurrencies.
    let mut raw = Vec::new();
    // Three concurrencies up to 2,000 environments; above, only the one that won every smaller
    // run (each pass at 10,000 environments applies 110,000 objects).
    let concurrencies: &[usize] = if environments <= 2000 { &[8, 32, 64] } else { &[64] };
    for (i, &concurrency) in concurrencies.iter().enumerate() {
        let objects = baseline_objects(&format!("r{i}"), teams)?;
        let took = raw_apply(&client, &objects, concurrency, false).await?;
        eprintln!("  raw server-side apply ×{concurrency}: {:.1}s for {} objects", took.as_secs_f64(), objects.len());
        raw.push((concurrency, took, objects.len()));
    }
    let (best_c, best, raw_objects) = raw.iter().min_by_key(|r| r.1).copied().unwrap_or((0, Duration::ZERO, 0));
    // For reference: what validating first (a dry-run of everything, then the writes) costs
    // this API server, at the best concurrency.
    let validated = raw_apply(&client, &baseline_objects("v", teams)?, best_c, true).await?;
    eprintln!("  raw validating apply ×{best_c}: {:.1}s", validated.as_secs_f64());

    // Baseline (b): kubectl apply --server-side of the same rendered manifests.
    let objects_k = baseline_objects("k", teams)?;
    let manifests = dir.join("kubectl");
    let _ = std::fs::remove_dir_all(&manifests);
    std::fs::create_dir_all(&manifests)?;
    let (namespaces, rest): (Vec<&Value>, Vec<&Value>) = objects_k.iter().partition(|o| o["kind"] == "Namespace");
    let yaml = |objs: &[&Value]| {
        objs.iter().map(|o| serde_yaml::to_string(o).unwrap_or_default()).collect::<Vec<_>>().join("---\n")
    };
    std::fs::write(manifests.join("0-namespaces.yaml"), yaml(&namespaces))?;
    std::fs::write(manifests.join("1-objects.yaml"), yaml(&rest))?;
    let kubectl_started = Instant::now();
    for file in ["0-namespaces.yaml", "1-objects.yaml"] {
        let path = manifests.join(file).display().to_string();
        plane.kubectl_output(&["apply", "--server-side", "--field-manager=bench-kubectl", "-f", &path])?;
    }
    let kubectl = kubectl_started.elapsed();
    drop(daemon);
    plane.stop();

    let (r, w) = (req1 - req0, writes1 - writes0);
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### {environments} environments ({teams} team factories × {ENVS_PER_TEAM}, {per_env} objects each; {objects} objects; `--resync-interval={resync}`)\n"
    );
    let _ = writeln!(s, "| Measure | Value | Baseline | Ratio |\n|---|---|---|---|");
    let _ = writeln!(
        s,
        "| Cold converge, all Ready | {:.1} s | raw SSA client ×{best_c}: {:.1} s ({raw_objects} objects) | {:.2}× |",
        cold.as_secs_f64(),
        best.as_secs_f64(),
        ratio(cold, best)
    );
    let _ = writeln!(
        s,
        "| Cold converge vs kubectl | {:.1} s | `kubectl apply --server-side`: {:.1} s | {:.2}× |",
        cold.as_secs_f64(),
        kubectl.as_secs_f64(),
        ratio(cold, kubectl)
    );
    let _ = writeln!(
        s,
        "| Cold converge vs a raw client that validates first (reference) | {:.1} s | dry-run of every object, then the writes, ×{best_c}: {:.1} s | {:.2}× |",
        cold.as_secs_f64(),
        validated.as_secs_f64(),
        ratio(cold, validated)
    );
    let _ = writeln!(
        s,
        "| Objects per second | {:.0} | raw: {:.0} | {:.2}× |",
        objects as f64 / cold.as_secs_f64(),
        raw_objects as f64 / best.as_secs_f64(),
        (objects as f64 / cold.as_secs_f64()) / (raw_objects as f64 / best.as_secs_f64().max(1e-9))
    );
    let _ = writeln!(
        s,
        "| API requests during cold converge (all clients, from kube-apiserver's counters) | {r:.0} ({w:.0} writes) | objects: {objects} | {:.1} requests per object |",
        r / objects as f64
    );
    let _ = writeln!(s, "| Largest request counts of the cold converge | {cold_detail} | | |");
    let _ = writeln!(
        s,
        "| Operator reconciles during the cold converge | {cold_reconciles} | {environments} environments, {teams} team factories | |"
    );
    let _ = writeln!(s, "| Writes of a resync with nothing changed | {steady_writes:.0} ({steady_detail}) | 0 | |");
    let resync_time = platform_resync.map_or_else(
        || format!("not finished within {:.0} s", cold.max(Duration::from_secs(60)).as_secs_f64()),
        |t| format!("{:.1} s", t.as_secs_f64()),
    );
    let _ = writeln!(
        s,
        "| The platform factory's resync with nothing changed (its {platform_objects} objects read and dry-run), time | {resync_time} | | |"
    );
    let _ = writeln!(s, "| Operator peak RSS (VmHWM) | {rss:.0} MiB | target 150 MiB at 10,000 | |");
    let _ = writeln!(s, "| Operator RSS once converged (VmRSS) | {converged_rss:.0} MiB | | |");
    if let Some(l) = &later {
        let _ = writeln!(
            s,
            "| One file changed (1 object in each environment): time | {:.1} s | | |",
            l.change_time.as_secs_f64()
        );
        let _ = writeln!(
            s,
            "| One file changed: writes | {:.0} ({}) | {environments} objects changed | {:.2} writes per changed object |",
            l.change_writes,
            l.change_detail,
            l.change_writes / environments as f64
        );
        let _ = writeln!(s, "| Restart → first write | {:.1} s | | |", l.first_write.as_secs_f64());
        let mut ready: Vec<f64> = l.previews.iter().map(|p| p.0.as_secs_f64()).collect();
        let mut gone: Vec<f64> = l.previews.iter().map(|p| p.1.as_secs_f64()).collect();
        ready.sort_by(f64::total_cmp);
        gone.sort_by(f64::total_cmp);
        let rounds = |v: &[f64]| v.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            s,
            "| Preview create → Ready (median of 3) | {:.1} s ({} s) | | |",
            ready[ready.len() / 2],
            rounds(&ready)
        );
        let _ = writeln!(
            s,
            "| Preview delete → namespace gone (median of 3) | {:.1} s ({} s) | | |",
            gone[gone.len() / 2],
            rounds(&gone)
        );
        let _ = writeln!(
            s,
            "| Restart → converged on a change made while down | {:.1} s | | |",
            l.restart_converge.as_secs_f64()
        );
        let r = &l.render;
        let _ = writeln!(
            s,
            "| The class made a kustomize overlay (same objects): converge | {:.1} s | a plain commit changing nothing applied: {:.1} s | {:.2}× |",
            r.kustomized.as_secs_f64(),
            r.plain.as_secs_f64(),
            ratio(r.kustomized, r.plain)
        );
        let looked_up = r.hits + r.renders;
        let _ = writeln!(
            s,
            "| Kustomize renders for that commit / cache answers / hit rate | {:.0} / {:.0} / {:.1}% | {environments} environments + the platform | |",
            r.renders,
            r.hits,
            100.0 * r.hits / looked_up.max(1.0)
        );
        let _ = writeln!(
            s,
            "| Time in kustomize (all renders of that commit) / writes | {:.0} ms / {:.0} | | |\n",
            1000.0 * r.render_seconds,
            r.writes
        );
    } else {
        let _ = writeln!(s, "| One-file change, restart, previews | not measured (`--cold-only`) | | |\n");
    }
    let _ = writeln!(
        s,
        "Raw client runs: {}.\n",
        raw.iter().map(|(c, d, _)| format!("×{c} {:.1} s", d.as_secs_f64())).collect::<Vec<_>>().join(", ")
    );
    Ok(s)
}
