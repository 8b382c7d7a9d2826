//! `cargo xtask`: developer tasks. Run `cargo xtask --help`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use factory_control_plane::{Binaries, ControlPlane, Lifetime, Options, versions};

mod bench;
mod bench_pull_requests;
mod crdgen;
mod demo;
mod deploy;
mod signals;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Developer tasks for factory-operator")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run the operator on a local control plane against the repositories in examples/, print
    /// what it built, and keep it running until Ctrl-C.
    Demo {
        /// Exit after printing instead of waiting for Ctrl-C (CI).
        #[arg(long)]
        exit: bool,
    },
    /// Build, start, stop or inspect the local control plane (etcd, kube-apiserver, kube-controller-manager).
    #[command(name = "control-plane", subcommand)]
    ControlPlane(PlaneCommand),
    /// Regenerate the CRD YAML in crds/ from the Rust types (`--check` fails if it is stale).
    Crdgen {
        /// Compare instead of writing; exit non-zero when crds/ differs from the types.
        #[arg(long)]
        check: bool,
    },
    /// Measure the operator at scale against in-run baselines; appends to docs/benchmarks.md.
    Bench {
        /// Environment counts to measure, comma-separated.
        #[arg(long, default_value = "100,1000", value_delimiter = ',')]
        sizes: Vec<usize>,
        /// Measure the cold converge, a no-change resync and the baselines only (for the
        /// largest sizes, where every later phase reconciles every environment again).
        #[arg(long)]
        cold_only: bool,
        /// Instead of the sizes: this many pull requests on Gitea, each timed from opened to
        /// its preview Ready and its success status posted, against the application's own rollout.
        #[arg(long)]
        pull_requests: Option<usize>,
    },
    /// Regenerate deploy/ (the chart rendered as plain YAML); `--check` fails if it is stale.
    Deploy {
        /// Compare instead of writing.
        #[arg(long)]
        check: bool,
    },
    /// Build whatever is missing, then run every test, unit and integration.
    Test {
        /// Extra arguments passed to `cargo test`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum PlaneCommand {
    /// Build the control-plane binaries, Helm and kustomize from their Go modules into the cache (no-op when cached).
    Build,
    /// Start a control plane in the background; writes target/control-plane/kubeconfig.
    Start,
    /// Stop the control plane started by `start`.
    Stop,
    /// Say whether the control plane is running and ready.
    Status,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap_or_else(|_| PathBuf::from("."))
}

fn plane_dir() -> PathBuf {
    workspace_root().join("target/control-plane")
}

fn progress(line: &str) {
    eprintln!("  · {line}");
}

/// A client with the identity of the kubeconfig at `path`.
pub(crate) async fn client_for(path: &std::path::Path) -> Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Task::ControlPlane(PlaneCommand::Build) => build(),
        Task::ControlPlane(PlaneCommand::Start) => start(),
        Task::ControlPlane(PlaneCommand::Stop) => {
            let mut plane = ControlPlane::attach(&plane_dir())?;
            plane.stop();
            eprintln!("control plane stopped");
            Ok(())
        }
        Task::ControlPlane(PlaneCommand::Status) => {
            let mut plane = ControlPlane::attach(&plane_dir())?;
            let exited = plane.exited();
            let ready = plane.is_ready();
            println!("server:     {}", plane.server);
            println!("version:    {}", plane.version);
            println!("kubeconfig: {}", plane.kubeconfig.display());
            println!("ready:      {ready}");
            if !exited.is_empty() {
                println!("exited:     {}", exited.join(", "));
            }
            if ready && exited.is_empty() { Ok(()) } else { bail!("control plane is not healthy") }
        }
        Task::Crdgen { check } => {
            let root = workspace_root();
            crdgen::run(&[root.join("crds"), root.join("charts/factory-operator/crds")], check)
        }
        Task::Deploy { check } => {
            let helm = factory_control_plane::binaries::helm(&progress)?;
            deploy::run(&helm, &workspace_root(), check)
        }
        Task::Test { args } => test(&args),
        Task::Demo { exit } => demo::run(&workspace_root(), exit),
        Task::Bench { sizes, cold_only, pull_requests } => {
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(workspace_root())
                .args(["build", "--release", "--locked", "-p", "factory-controller"])
                .status()
                .context("building the operator")?;
            if !status.success() {
                bail!("cargo build failed ({status})");
            }
            match pull_requests {
                Some(rounds) => bench_pull_requests::run(&workspace_root(), rounds.max(1)),
                None => bench::run(&workspace_root(), &sizes, cold_only),
            }
        }
    }
}

fn build() -> Result<()> {
    let started = Instant::now();
    let cached = Binaries::in_cache().all_present();
    let bins = Binaries::ensure(&progress)?;
    let helm = factory_control_plane::binaries::helm(&progress)?;
    let kustomize = factory_control_plane::binaries::kustomize(&progress)?;
    let gitea = factory_control_plane::binaries::gitea(&progress)?;
    eprintln!(
        "control-plane binaries {} in {:.1}s (Kubernetes {}, etcd {}, kwok {}, Helm {}, kustomize {}, Gitea {}):\n  {}\n  {}\n  {}\n  {}\n  {}\n  {}\n  {}\n  {}\n  {}",
        if cached { "already cached" } else { "built" },
        started.elapsed().as_secs_f64(),
        versions::KUBERNETES,
        versions::ETCD,
        versions::KWOK,
        versions::HELM,
        versions::KUSTOMIZE,
        versions::GITEA,
        bins.kube_apiserver.display(),
        bins.kube_controller_manager.display(),
        bins.kube_scheduler.display(),
        bins.kubectl.display(),
        bins.etcd.display(),
        bins.kwok.display(),
        helm.display(),
        kustomize.display(),
        gitea.display()
    );
    Ok(())
}

fn start() -> Result<()> {
    let dir = plane_dir();
    if let Ok(mut old) = ControlPlane::attach(&dir) {
        eprintln!("stopping the control plane started earlier from {}", dir.display());
        old.stop();
    }
    let started = Instant::now();
    let options = Options {
        dir: dir.clone(),
        lifetime: Lifetime::Detached,
        install_crds: true,
        install_tekton: true,
        workloads: true,
    };
    let plane = ControlPlane::start(&options, &progress)?;
    eprintln!("control plane ready in {:.1}s: {}", started.elapsed().as_secs_f64(), plane.version);
    println!(
        "\nUse it with:\n  export KUBECONFIG={}\n  export PATH={}:$PATH\n  kubectl get factories,environments,previewenvironments -A\n\nStop it with: cargo xtask control-plane stop",
        plane.kubeconfig.display(),
        plane.binaries.kubectl.parent().map(|p| p.display().to_string()).unwrap_or_default()
    );
    Ok(())
}

fn test(extra: &[String]) -> Result<()> {
    build().context("building the control plane for the integration tests")?;
    // Tests that kill and restart the operator run its real binary: build every binary first.
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(workspace_root())
        .args(["build", "--workspace", "--bins", "--locked"])
        .status()
        .context("building the binaries")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    let mut child = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(workspace_root())
        .args(["test", "--workspace", "--locked"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .context("running cargo test")?;
    // Pass the output through as it comes, and add up libtest's per-binary summaries.
    let mut totals = Totals::default();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading cargo test output")?;
            println!("{line}");
            totals.add(&line);
        }
    }
    let status = child.wait().context("waiting for cargo test")?;
    println!("\nall test binaries: {} passed, {} failed", totals.passed, totals.failed);
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    if totals.passed == 0 {
        bail!("no test ran");
    }
    // The README's first command, end to end, non-interactively.
    if extra.is_empty() {
        println!("\nthe demo, end to end (cargo xtask demo --exit):");
        demo::run(&workspace_root(), true).context("cargo xtask demo --exit failed")?;
        println!("demo: ok");
    }
    Ok(())
}

/// Sums of libtest's `test result: ok. N passed; M failed; …` lines.
#[derive(Default)]
struct Totals {
    passed: u64,
    failed: u64,
}

impl Totals {
    fn add(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("test result: ") else { return };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(count)) = (words.next(), words.next()) else { continue };
            let Ok(count) = count.parse::<u64>() else { continue };
            match label {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                _ => {}
            }
        }
    }
}
