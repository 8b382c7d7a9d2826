//! The `kubectl factory` plugin: commands, each in a module of its own.

use std::io::Write;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use kube::Client;

pub mod runs;
pub mod status;

/// `kubectl factory`: inspect and drive factory-operator.
#[derive(Parser, Debug)]
#[command(name = "kubectl factory", version, about = "Inspect and drive factory-operator factories")]
pub struct Cli {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
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
}

/// Runs a command against the cluster of the current kubeconfig, writing to `out`.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    let client =
        Client::try_default().await.context("connecting to the cluster (check KUBECONFIG and the current context)")?;
    match cli.command {
        Command::Status { factory } => {
            let tree = status::load(&client, factory.as_deref()).await?;
            status::print(&tree, cli.output, out)
        }
        Command::Runs { factory } => {
            let view = runs::load(&client, &factory).await?;
            runs::print(&view, cli.output, out)
        }
    }
}
