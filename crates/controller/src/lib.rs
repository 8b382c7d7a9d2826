//! The factory-operator controller: command-line flags, logging, the connection to the API
//! server and the start-up checks. Reconcilers are added here as the API grows.

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use kube::Client;
use kube::discovery::Discovery;
use tracing::info;

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

/// Connects to the cluster (in-cluster config or `KUBECONFIG`) and checks that the
/// `factories.dev` API is served.
pub async fn run(args: Args) -> Result<()> {
    init_logging(&args)?;
    let client = Client::try_default().await.context("connecting to the Kubernetes API (in-cluster or KUBECONFIG)")?;
    let version = client.apiserver_version().await.context("reading the API server version")?;
    info!(server = %version.git_version, "connected to the Kubernetes API");
    let kinds = served_kinds(&client, factory_api::GROUP).await?;
    info!(group = factory_api::GROUP, kinds = ?kinds, "factories.dev API is served");
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
    bail!("no reconcilers are enabled in this build yet; use --check to verify the installation")
}

/// The kinds an API group serves, or an error saying how to install it.
async fn served_kinds(client: &Client, name: &str) -> Result<Vec<String>> {
    let discovery = Discovery::new(client.clone()).filter(&[name]).run().await.context("API discovery")?;
    let group = discovery.groups().find(|g| g.name() == name).with_context(|| {
        format!("the {name} API is not served: install the CRDs first (kubectl apply --server-side -f crds/)")
    })?;
    Ok(group.recommended_resources().into_iter().map(|(r, _)| r.kind).collect())
}
