//! The operator's reconcilers, run once per test binary against its control plane, in a
//! thread of their own with their own runtime (tests' runtimes come and go), logging to
//! `logs/factory-operator.log` of the control plane. Running the library rather than a
//! prebuilt binary guarantees the tests exercise the code just compiled.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use factory_controller::{Context, Options, run_controllers};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::cluster::{OPERATOR_LOG, control_plane, say};

/// The shared secret of the test operator's webhook receiver.
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";

struct Running {
    log: PathBuf,
    webhook: std::net::SocketAddr,
    metrics: std::net::SocketAddr,
}

static OPERATOR: OnceLock<Result<Running, String>> = OnceLock::new();

/// Starts the reconcilers (once per test binary) as the cluster admin, with the webhook
/// receiver on a loopback port. Panics, with the reason, if they cannot start.
pub fn ensure_operator() {
    let started = OPERATOR.get_or_init(|| {
        let (kubeconfig, dir) = {
            let plane = control_plane().lock().unwrap_or_else(|p| p.into_inner());
            (plane.kubeconfig.clone(), plane.dir.clone())
        };
        let log = dir.join(OPERATOR_LOG);
        let file = std::fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let filter = tracing_subscriber::EnvFilter::new("info,factory_controller=debug,factory_apply=debug");
        let _ =
            tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(Arc::new(file)).try_init();
        let git_cache = dir.join("operator-git-cache");
        let tools = render_tools(&git_cache)?;
        type Addrs = (std::net::SocketAddr, std::net::SocketAddr);
        let (tx, rx) = std::sync::mpsc::channel::<Result<Addrs, String>>();
        std::thread::Builder::new()
            .name("factory-operator".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let config = async {
                        let kc = Kubeconfig::read_from(&kubeconfig).map_err(|e| e.to_string())?;
                        kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                            .await
                            .map_err(|e| e.to_string())
                    };
                    let ctx = match config.await.and_then(|c| Context::new(c, git_cache).map_err(|e| e.to_string())) {
                        Ok(mut ctx) => {
                            ctx.set_tools(tools, 2);
                            Arc::new(ctx)
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let bind = || async {
                        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
                        let addr = l.local_addr().map_err(|e| e.to_string())?;
                        Ok::<_, String>((l, addr))
                    };
                    let (webhook, metrics) = match (bind().await, bind().await) {
                        (Ok(w), Ok(m)) => (w, m),
                        (Err(e), _) | (_, Err(e)) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = tx.send(Ok((webhook.1, metrics.1)));
                    let options = Options {
                        webhook: Some((webhook.0, WEBHOOK_SECRET.to_string())),
                        metrics: Some(metrics.0),
                        leader: None,
                        ..Options::default()
                    };
                    if let Err(e) = run_controllers(ctx, options, std::future::pending()).await {
                        eprintln!("in-process operator stopped: {e:#}");
                    }
                });
            })
            .map_err(|e| e.to_string())?;
        let (webhook, metrics) = rx.recv().map_err(|e| e.to_string())??;
        say(&format!("factory-operator reconcilers running, logging to {}", log.display()));
        Ok(Running { log, webhook, metrics })
    });
    if let Err(e) = started {
        panic!("the operator could not start: {e}");
    }
}

/// Limits of the tests' renders: low enough that the hostile-input tests reach them quickly.
pub const RENDER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Most bytes of one render's output in the tests.
pub const RENDER_MAX_BYTES: u64 = 1024 * 1024;

/// kustomize and helm as the tests' operators run them: the binaries built into the cache
/// (built now if missing), the tests' limits.
fn render_tools(git_cache: &std::path::Path) -> Result<factory_tools::Config, String> {
    let kustomize = factory_control_plane::binaries::kustomize(&|line| say(line)).map_err(|e| e.to_string())?;
    let helm = factory_control_plane::binaries::helm(&|line| say(line)).map_err(|e| e.to_string())?;
    let mut config = factory_controller::services::context::tools_config(git_cache, kustomize, helm);
    config.limits.timeout = RENDER_TIMEOUT;
    config.limits.max_output_bytes = RENDER_MAX_BYTES;
    Ok(config)
}

/// The address of the test operator's webhook receiver.
pub fn webhook_addr() -> std::net::SocketAddr {
    ensure_operator();
    match OPERATOR.get() {
        Some(Ok(running)) => running.webhook,
        _ => panic!("the operator is not running"),
    }
}

/// The address of the test operator's `/metrics` endpoint.
pub fn metrics_addr() -> std::net::SocketAddr {
    ensure_operator();
    match OPERATOR.get() {
        Some(Ok(running)) => running.metrics,
        _ => panic!("the operator is not running"),
    }
}

/// The last lines of the operator's log.
pub fn operator_log_tail(lines: usize) -> String {
    match OPERATOR.get() {
        Some(Ok(running)) => factory_control_plane::process::tail(&running.log, lines),
        _ => String::from("(operator not started)"),
    }
}

/// The real `factory-operator` binary as a child process, for tests that kill and restart it.
pub struct OperatorProcess {
    process: factory_control_plane::process::Process,
}

impl OperatorProcess {
    /// Starts `target/<profile>/factory-operator` against this binary's control plane.
    /// Panics, saying how to build it, when it is missing.
    pub fn start(name: &str) -> Self {
        Self::start_with(name, &[])
    }

    /// Like [`OperatorProcess::start`], with more flags (which may override the defaults).
    pub fn start_with(name: &str, extra: &[&str]) -> Self {
        let kubeconfig = control_plane().lock().unwrap_or_else(|p| p.into_inner()).kubeconfig.clone();
        Self::start_as(name, &kubeconfig, extra)
    }

    /// Like [`OperatorProcess::start_with`], with the identity of `kubeconfig` (such as a
    /// service account token's) instead of the admin's.
    pub fn start_as(name: &str, kubeconfig: &std::path::Path, extra: &[&str]) -> Self {
        let exe = std::env::current_exe().unwrap_or_default();
        let bin = exe.parent().and_then(|deps| deps.parent()).map(|d| d.join("factory-operator")).unwrap_or_default();
        assert!(
            bin.is_file(),
            "{} is missing: build it with `cargo build -p factory-controller` (`cargo xtask test` builds every binary first)",
            bin.display()
        );
        let plane = control_plane().lock().unwrap_or_else(|p| p.into_inner());
        let tools = render_tools(&plane.dir.join("operator-git-cache")).unwrap_or_else(|e| panic!("{e}"));
        let log = plane.dir.join(format!("logs/{name}.log"));
        // The operator finds the cluster through KUBECONFIG, set by a one-line shell wrapper.
        let args = vec![
            "-c".to_string(),
            format!("KUBECONFIG={} exec \"$0\" \"$@\"", kubeconfig.display()),
            bin.display().to_string(),
            format!("--git-cache={}", plane.dir.join("operator-git-cache").display()),
            format!("--kustomize={}", tools.kustomize.display()),
            format!("--helm={}", tools.helm.display()),
            "--log=info,factory_apply=debug".to_string(),
            "--metrics-addr=127.0.0.1:0".to_string(),
        ];
        // A flag given in `extra` replaces the default of the same name.
        let flag = |a: &str| a.split('=').next().unwrap_or_default().to_string();
        let mut args: Vec<String> =
            args.into_iter().filter(|a| !extra.iter().any(|e| a.starts_with("--") && flag(e) == flag(a))).collect();
        args.extend(extra.iter().map(|a| a.to_string()));
        let process = factory_control_plane::process::Process::spawn(
            name,
            std::path::Path::new("sh"),
            &args,
            &log,
            factory_control_plane::Lifetime::TiedToOwner,
            None,
        )
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        say(&format!("{name}: {} running, logging to {}", bin.display(), log.display()));
        Self { process }
    }

    /// SIGKILL, no chance to finish anything.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn stop(&mut self, grace: std::time::Duration) {
        self.process.stop(grace);
    }

    /// The last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.tail(lines)
    }
}
