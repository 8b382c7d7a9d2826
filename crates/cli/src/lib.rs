//! The `kubectl factory` plugin: commands, each in a module of its own.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use kube::Client;

mod local;
pub mod plan;
pub mod preview;
pub mod reconcile;
pub mod releases;
pub mod runs;
pub mod status;
pub mod suspend;
pub mod tools;
pub mod validate;

/// `kubectl factory`: inspect and drive factory-operator.
#[derive(Parser, Debug)]
#[command(name = "kubectl factory", version, about = "Inspect and drive factory-operator factories")]
pub struct Cli {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    /// The `kustomize` binary `validate` and `plan` render kustomizations with (as the operator's
    /// `--kustomize`).
    #[arg(long, default_value = "kustomize", env = "FACTORY_KUSTOMIZE", global = true)]
    pub kustomize: PathBuf,
    /// The `helm` binary `validate` and `plan` render charts with (as the operator's `--helm`).
    #[arg(long, default_value = "helm", env = "FACTORY_HELM", global = true)]
    pub helm: PathBuf,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A human-readable table or tree.
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Plugin commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show factories, their environments and previews, with readiness and revision.
    Status {
        /// Only this factory.
        factory: Option<String>,
    },
    /// Show the latest pipeline run of every application and pipeline of a team factory.
    Runs {
        /// The team factory.
        factory: String,
    },
    /// Render a local checkout and show what applying it would create, change and prune, for
    /// the factory and every environment it touches (server-side dry-run).
    Plan {
        /// The factory in the cluster whose repository DIR is a checkout of.
        factory: String,
        /// The checkout.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// For a team factory: the application whose repository DIR is.
        #[arg(long)]
        application: Option<String>,
        /// Dry-run as yourself instead of as the factory's service account (needs no
        /// impersonation rights, but RBAC answers for you, not for the factory).
        #[arg(long)]
        as_self: bool,
        /// Namespace of the team factories' accounts, as the operator's `--tenant-namespace`.
        #[arg(long, default_value = factory_api::DEFAULT_TENANT_NAMESPACE)]
        tenant_namespace: String,
        /// Exit with status 2 when the plan would change something (for CI).
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Check a local checkout of a platform or application repository offline; exits non-zero
    /// on any error (for pull-request checks).
    Validate {
        /// The checkout.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// A Factory manifest saying where things are; without it, the layout of `examples/`.
        #[arg(long)]
        factory: Option<PathBuf>,
        /// With a team Factory: the application whose repository DIR is.
        #[arg(long)]
        application: Option<String>,
    },
    /// Create, delete or list preview environments.
    #[command(subcommand)]
    Preview(PreviewCommand),
    /// Ask for an immediate reconcile of a factory (and its environments).
    Reconcile {
        /// The factory.
        factory: String,
    },
    /// Stop reconciling: nothing is applied, pruned or started until `resume`. A team
    /// factory's environments and previews stop with it (previews still expire).
    Suspend(SuspendArgs),
    /// Reconcile again what `suspend` stopped.
    Resume(SuspendArgs),
    /// Record a release (for an outside CI; build runs record their own).
    #[command(subcommand)]
    Release(ReleaseCommand),
    /// Show which release of each application runs in which environment, and what waits.
    Releases {
        /// The team factory.
        factory: String,
        /// Only this application.
        application: Option<String>,
    },
    /// Let a release into an environment: an Approval in its namespace (RBAC decides who may),
    /// checked against the environment's promotion policy. Also how to roll back.
    Promote {
        /// The application.
        application: String,
        /// The team factory.
        #[arg(long)]
        factory: String,
        /// The environment (short name).
        #[arg(long = "to")]
        environment: String,
        /// The release; defaults to what the environment's `from` runs, else the newest.
        #[arg(long)]
        release: Option<String>,
    },
    /// Approve a release for a protected environment (the same as `promote`).
    Approve {
        /// The application.
        application: String,
        /// The team factory.
        #[arg(long)]
        factory: String,
        /// The environment (short name).
        #[arg(long = "env")]
        environment: String,
        /// The release; defaults to what the environment's `from` runs.
        #[arg(long)]
        release: Option<String>,
    },
}

/// `kubectl factory release …`.
#[derive(Subcommand, Debug)]
pub enum ReleaseCommand {
    /// Record a release of an application: a revision of its configuration and image digests.
    Create {
        /// The application.
        application: String,
        /// The team factory.
        #[arg(long)]
        factory: String,
        /// The commit of the configuration (`<sha>` or `main@sha1:<sha>`).
        #[arg(long)]
        revision: String,
        /// An image as `NAME=REPOSITORY@sha256:DIGEST`; repeat for several.
        #[arg(long = "image")]
        images: Vec<String>,
    },
}

/// What `kubectl factory suspend|resume` acts on.
#[derive(clap::Args, Debug)]
pub struct SuspendArgs {
    /// `NAME` of a factory, or `KIND NAME` with KIND factory, environment or preview.
    #[arg(required = true, num_args = 1..=2)]
    what: Vec<String>,
    /// For a preview: its team factory.
    #[arg(long)]
    factory: Option<String>,
}

/// `kubectl factory preview …`.
#[derive(Subcommand, Debug)]
pub enum PreviewCommand {
    /// Create a preview of an application at a branch, tag or commit.
    Create {
        /// Preview name (a DNS label).
        name: String,
        /// The team factory.
        #[arg(long)]
        factory: String,
        /// The application.
        #[arg(long)]
        application: String,
        /// Branch to follow.
        #[arg(long, conflicts_with_all = ["tag", "commit"], required_unless_present_any = ["tag", "commit"])]
        branch: Option<String>,
        /// Tag to build.
        #[arg(long, conflicts_with = "commit")]
        tag: Option<String>,
        /// Commit to build.
        #[arg(long)]
        commit: Option<String>,
        /// Lifetime (Go duration, 10m to 720h); defaults to the factory's.
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Delete a preview; its namespace goes with it.
    Delete {
        /// Preview name.
        name: String,
        /// The team factory.
        #[arg(long)]
        factory: String,
    },
    /// List previews.
    List {
        /// Only this team factory's.
        #[arg(long)]
        factory: Option<String>,
    },
}

/// Writes `value` as JSON or YAML, or as the human-readable form `table` writes.
pub fn render<T: serde::Serialize + ?Sized>(
    value: &T,
    output: Output,
    out: &mut dyn Write,
    table: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    match output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(value)?)?,
        Output::Yaml => write!(out, "{}", serde_yaml::to_string(value)?)?,
        Output::Table => table(out)?,
    }
    Ok(())
}

/// Writes rows as aligned columns (the first row is the header), or `none` when there are
/// no rows below the header.
pub fn write_table_or<const N: usize>(rows: &[[String; N]], none: &str, out: &mut dyn Write) -> Result<()> {
    if rows.len() <= 1 {
        writeln!(out, "{none}")?;
        return Ok(());
    }
    write_table(rows, out)
}

/// Writes rows as aligned columns (the first row is the header).
pub fn write_table<const N: usize>(rows: &[[String; N]], out: &mut dyn Write) -> Result<()> {
    let widths: Vec<usize> = (0..N).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        writeln!(out, "{}", line.join("   ").trim_end())?;
    }
    Ok(())
}

/// How a command ended when it did not fail: success, or "there are changes" for
/// `plan --detailed-exitcode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Done,
    /// Exit 2: the plan would change something.
    Changes,
}

/// Runs a command against the cluster of the current kubeconfig, writing to `out`.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<Outcome> {
    if let Command::Validate { dir, factory, application } = &cli.command {
        let layout = validate::layout(dir, factory.as_deref(), application.as_deref())?;
        let tools = tools::Renderer::new(dir, cli.kustomize.clone(), cli.helm.clone())?;
        let report = validate::check(dir, &layout, &tools);
        validate::print(&report, cli.output, out)?;
        if !report.errors.is_empty() {
            anyhow::bail!("{} errors in {}", report.errors.len(), dir.display());
        }
        return Ok(Outcome::Done);
    }
    let config =
        kube::Config::infer().await.context("finding the cluster (check KUBECONFIG and the current context)")?;
    let client = Client::try_from(config.clone()).context("connecting to the cluster")?;
    match cli.command {
        Command::Status { factory } => {
            let tree = status::load(&client, factory.as_deref()).await?;
            status::print(&tree, cli.output, out)?;
        }
        Command::Runs { factory } => {
            let view = runs::load(&client, &factory).await?;
            runs::print(&view, cli.output, out)?;
        }
        Command::Plan { factory, dir, application, as_self, tenant_namespace, detailed_exitcode } => {
            let tools = tools::Renderer::new(&dir, cli.kustomize.clone(), cli.helm.clone())?;
            let request = plan::Request {
                factory: &factory,
                root: &dir,
                tools: &tools,
                application: application.as_deref(),
                as_self,
                tenant_namespace: &tenant_namespace,
            };
            let plans = plan::plan(client.clone(), &request).await?;
            plan::print(&plans, cli.output, out)?;
            if detailed_exitcode && plan::has_changes(&plans) {
                return Ok(Outcome::Changes);
            }
        }
        Command::Preview(PreviewCommand::Create { name, factory, application, branch, tag, commit, ttl }) => {
            let reference = match (&branch, &tag, &commit) {
                (Some(b), _, _) => ("branch", b.as_str()),
                (_, Some(t), _) => ("tag", t.as_str()),
                (_, _, Some(c)) => ("commit", c.as_str()),
                _ => anyhow::bail!("say which revision with --branch, --tag or --commit"),
            };
            let new = preview::NewPreview {
                name: &name,
                factory: &factory,
                application: &application,
                reference,
                ttl: ttl.as_deref(),
            };
            writeln!(out, "{}", preview::create(&client, &new).await?)?;
        }
        Command::Preview(PreviewCommand::Delete { name, factory }) => {
            writeln!(out, "{}", preview::delete(&client, &factory, &name).await?)?;
        }
        Command::Preview(PreviewCommand::List { factory }) => {
            let rows = preview::list(&client, factory.as_deref()).await?;
            preview::print(&rows, cli.output, out)?;
        }
        Command::Reconcile { factory } => writeln!(out, "{}", reconcile::reconcile(&client, &factory).await?)?,
        Command::Suspend(args) => {
            writeln!(out, "{}", suspend::run(&client, &args.what, args.factory.as_deref(), true).await?)?
        }
        Command::Resume(args) => {
            writeln!(out, "{}", suspend::run(&client, &args.what, args.factory.as_deref(), false).await?)?
        }
        Command::Release(ReleaseCommand::Create { application, factory, revision, images }) => {
            writeln!(out, "{}", releases::create(&client, &factory, &application, &revision, &images).await?)?
        }
        Command::Releases { factory, application } => {
            let view = releases::load(&client, &factory, application.as_deref()).await?;
            releases::print(&view, cli.output, out)?;
        }
        Command::Promote { application, factory, environment, release }
        | Command::Approve { application, factory, environment, release } => {
            let done = releases::promote(&client, &factory, &application, &environment, release.as_deref()).await?;
            writeln!(out, "{done}")?
        }
        Command::Validate { .. } => {}
    }
    Ok(Outcome::Done)
}
