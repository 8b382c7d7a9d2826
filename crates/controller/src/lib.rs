//! The factory-operator controller: command-line flags, logging and the connection to the API
//! server (here), over four layers that call downward only — [`runtime`] (watches, leader
//! election, endpoints) → [`reconcilers`] (one per kind, one skeleton) → [`steps`]
//! (applications, pipelines, images, credentials, previews, baselines) → [`services`]
//! (context, sources, status and Events, metrics, stores).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Parser, ValueEnum};
use kube::Client;
use kube::discovery::Discovery;
use tracing::info;

pub mod reconcilers;
pub mod runtime;
pub mod services;
pub mod steps;

pub use runtime::{DEFAULT_CONCURRENCY, Options, install_admission_policies, run_controllers};
pub use services::context::Context;
pub use services::error::ReconcileError;

/// Command-line flags of `factory-operator`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "factory-operator",
    version,
    about = "Runs factories: namespaces, RBAC, quotas, policies and pipelines from git"
)]
pub struct Args {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "FACTORY_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax, such as `info` or `factory_controller=debug`.
    #[arg(long, default_value = "info", env = "FACTORY_LOG")]
    pub log: String,
    /// Where git repositories are cached.
    #[arg(long, default_value = "/tmp/factory-operator/git", env = "FACTORY_GIT_CACHE")]
    pub git_cache: PathBuf,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, default_value = "0.0.0.0:8080", env = "FACTORY_METRICS_ADDR")]
    pub metrics_addr: String,
    /// Address of the webhook receiver (`POST /hooks/git`).
    #[arg(long, default_value = "0.0.0.0:9292", env = "FACTORY_WEBHOOK_ADDR")]
    pub webhook_addr: String,
    /// Shared secret of the webhook receiver: HMAC key (GitHub, Gitea) or token (GitLab).
    /// The receiver is off without it.
    #[arg(long, env = "FACTORY_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Check the connection and the installed CRDs, print what was found and exit.
    #[arg(long)]
    pub check: bool,
    /// Run reconcilers only while holding the Lease `factory-operator`, so several replicas are safe.
    #[arg(long, env = "FACTORY_LEADER_ELECT")]
    pub leader_elect: bool,
    /// How often environments, previews and team factories are re-applied when nothing changed
    /// (drift correction), ±10%. Each costs a read and a dry-run per object: a large fleet on a
    /// small API server needs a longer interval (docs/benchmarks.md).
    #[arg(long, default_value = "5m", value_parser = parse_interval, env = "FACTORY_RESYNC_INTERVAL")]
    pub resync_interval: Duration,
    /// Reconciles each controller (factories, environments, previews) runs at once.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..), env = "FACTORY_CONCURRENT_RECONCILES")]
    pub concurrent_reconciles: u16,
    /// Namespace of the team factories' own service accounts, where no tenant holds any right
    /// (the chart creates it and lets the operator impersonate the accounts in it).
    #[arg(long, default_value = factory_api::DEFAULT_TENANT_NAMESPACE, env = "FACTORY_TENANT_NAMESPACE")]
    pub tenant_namespace: String,
    /// The `kustomize` binary (a path, or a name looked up on PATH) that renders paths holding a
    /// kustomization.
    #[arg(long, default_value = "kustomize", env = "FACTORY_KUSTOMIZE")]
    pub kustomize: PathBuf,
    /// The `helm` binary (a path, or a name looked up on PATH) that renders applications' charts.
    #[arg(long, default_value = "helm", env = "FACTORY_HELM")]
    pub helm: PathBuf,
    /// kustomize and helm runs at once; reconciles needing more wait for one to finish.
    #[arg(long, default_value_t = services::context::DEFAULT_RENDER_WORKERS, value_parser = clap::value_parser!(u16).range(1..), env = "FACTORY_RENDER_WORKERS")]
    pub render_workers: u16,
    /// Longest one kustomize or helm run may take before it is stopped.
    #[arg(long, default_value = "30s", value_parser = parse_duration, env = "FACTORY_RENDER_TIMEOUT")]
    pub render_timeout: Duration,
    /// Most bytes of output one render may produce.
    #[arg(long, default_value_t = 16 * 1024 * 1024, env = "FACTORY_RENDER_MAX_BYTES")]
    pub render_max_bytes: u64,
    /// Most objects one render may produce.
    #[arg(long, default_value_t = 5_000, env = "FACTORY_RENDER_MAX_OBJECTS")]
    pub render_max_objects: usize,
    /// Namespace of the leader Lease (in a pod: its own namespace).
    #[arg(long, default_value = "factory-system", env = "POD_NAMESPACE")]
    pub leader_election_namespace: String,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    factory_core::duration::parse(text).map_err(|e| e.to_string())
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let d = factory_core::duration::parse(text).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(10) {
        return Err("must be at least 10s".into());
    }
    Ok(d)
}

/// This process's identity for leader election: the pod name (or host name) and the process id.
fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .or_else(|_| std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()))
        .unwrap_or_else(|_| "factory-operator".into());
    format!("{host}_{}", std::process::id())
}

/// How logs are written.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn init_logging(args: &Args) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log).context("invalid --log filter")?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot initialise logging: {e}"))
}

/// Connects to the cluster (in-cluster config or `KUBECONFIG`), checks that the
/// `factories.dev` API is served, and runs the reconcilers until SIGTERM or Ctrl-C.
pub async fn run(args: Args) -> Result<()> {
    init_logging(&args)?;
    let config = kube::Config::infer().await.context("finding cluster credentials (in-cluster or KUBECONFIG)")?;
    let client = Client::try_from(config.clone()).context("building the Kubernetes client")?;
    let version = client.apiserver_version().await.context("reading the API server version")?;
    info!(server = %version.git_version, "connected to the Kubernetes API");
    let kinds = served_kinds(&client, factory_api::GROUP).await?;
    if args.check {
        println!(
            "Kubernetes {} serves {}/{}: {}",
            version.git_version,
            factory_api::GROUP,
            factory_api::VERSION,
            kinds.join(", ")
        );
        return Ok(());
    }
    let mut ctx = Context::new(config, args.git_cache.clone()).context("building the reconcile context")?;
    ctx.resync = args.resync_interval;
    ctx.tenant_namespace = args.tenant_namespace.clone();
    let mut tools = services::context::tools_config(&args.git_cache, args.kustomize.clone(), args.helm.clone());
    tools.limits = factory_tools::Limits {
        timeout: args.render_timeout,
        max_output_bytes: args.render_max_bytes,
        max_objects: args.render_max_objects,
    };
    ctx.set_tools(tools, usize::from(args.render_workers));
    let ctx = Arc::new(ctx);
    let webhook = match (&args.webhook_secret, &args.webhook_addr) {
        (Some(secret), addr) if !secret.is_empty() => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the webhook receiver to {addr}"))?;
            info!(%addr, "webhook receiver listening on /hooks/git");
            Some((listener, secret.clone()))
        }
        _ => {
            info!("webhook receiver disabled (no --webhook-secret)");
            None
        }
    };
    let metrics = tokio::net::TcpListener::bind(&args.metrics_addr)
        .await
        .with_context(|| format!("binding the metrics endpoint to {}", args.metrics_addr))?;
    info!(addr = %args.metrics_addr, "serving /metrics, /healthz and /readyz");
    let leader = args.leader_elect.then(|| runtime::leader::Config::new(&args.leader_election_namespace, &identity()));
    let options = Options { webhook, metrics: Some(metrics), leader, concurrency: args.concurrent_reconciles };
    run_controllers(ctx, options, shutdown_signal()).await?;
    info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
    info!("shutting down: finishing reconciles in flight");
}

/// The kinds an API group serves, or an error saying how to install it.
async fn served_kinds(client: &Client, name: &str) -> Result<Vec<String>> {
    let discovery = Discovery::new(client.clone()).filter(&[name]).run().await.context("API discovery")?;
    let group = discovery.groups().find(|g| g.name() == name).with_context(|| {
        format!("the {name} API is not served: install the CRDs first (kubectl apply --server-side -f crds/)")
    })?;
    Ok(group.recommended_resources().into_iter().map(|(r, _)| r.kind).collect())
}
