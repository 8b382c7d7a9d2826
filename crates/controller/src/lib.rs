//! The factory-operator controller: command-line flags, logging, the connection to the API
//! server, and the reconcilers, one module per resource.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Parser, ValueEnum};
use factory_api::{Environment, Factory};
use futures::StreamExt;
use kube::discovery::Discovery;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

pub mod context;
pub mod environment;
pub mod error;
pub mod platform;
mod source;
pub mod status;

pub use context::Context;
pub use error::ReconcileError;

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
    /// Check the connection and the installed CRDs, print what was found and exit.
    #[arg(long)]
    pub check: bool,
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
    let ctx = Arc::new(Context::new(config, args.git_cache.clone()).context("building the reconcile context")?);
    run_controllers(ctx, shutdown_signal()).await;
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

/// Runs every reconciler until `shutdown` resolves; reconciles in flight finish first.
pub async fn run_controllers(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let stopped = |tx: &tokio::sync::broadcast::Sender<()>| {
        let mut rx = tx.subscribe();
        async move {
            let _ = rx.recv().await;
        }
    };
    let factories: Api<Factory> = Api::all(ctx.client.clone());
    let platform = Controller::new(factories.clone(), watcher::Config::default())
        .graceful_shutdown_on(stopped(&stop_tx))
        .run(platform::reconcile, error_policy, ctx.clone())
        .for_each(log_result);

    let environments: Api<Environment> = Api::all(ctx.client.clone());
    let env_controller = Controller::new(environments, watcher::Config::default());
    let store = env_controller.store();
    // A factory's change (a new platform revision, a team factory's spec) re-reconciles its
    // environments: all of them for a platform factory, its own for a team factory.
    let env = env_controller
        .watches(factories, watcher::Config::default(), move |factory: Factory| {
            let name = factory.name_any();
            let platform = factory.spec.factory_type == factory_api::FactoryType::Environments;
            store
                .state()
                .into_iter()
                .filter(|e| platform || e.spec.factory == name)
                .map(|e| ObjectRef::from_obj(e.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(stopped(&stop_tx))
        .run(environment::reconcile, error_policy, ctx)
        .for_each(log_result);

    let both = futures::future::join(platform, env);
    tokio::pin!(both);
    tokio::select! {
        _ = shutdown => {
            let _ = stop_tx.send(());
            both.await;
        }
        _ = &mut both => {}
    }
}

async fn log_result<T, E: std::fmt::Display>(result: Result<T, E>) {
    if let Err(e) = result {
        warn!(error = %e, "reconcile loop");
    }
}

fn error_policy<K>(_object: Arc<K>, error: &ReconcileError, _ctx: Arc<Context>) -> Action {
    warn!(%error, "reconcile error; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// The kinds an API group serves, or an error saying how to install it.
async fn served_kinds(client: &Client, name: &str) -> Result<Vec<String>> {
    let discovery = Discovery::new(client.clone()).filter(&[name]).run().await.context("API discovery")?;
    let group = discovery.groups().find(|g| g.name() == name).with_context(|| {
        format!("the {name} API is not served: install the CRDs first (kubectl apply --server-side -f crds/)")
    })?;
    Ok(group.recommended_resources().into_iter().map(|(r, _)| r.kind).collect())
}
