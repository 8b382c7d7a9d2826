//! The shared control plane of a test binary and the per-test context.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use anyhow::Context as _;
use factory_control_plane::{ControlPlane, Options};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Where the in-process operator of a test binary logs, under its control plane's directory.
pub(crate) const OPERATOR_LOG: &str = "logs/factory-operator.log";

static PLANE: OnceLock<Result<Mutex<ControlPlane>, String>> = OnceLock::new();
static WITHOUT_TEKTON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes this test binary's control plane start without Tekton's CRDs. Call it before anything
/// touches the control plane; a test binary that needs it holds only such tests.
pub fn start_without_tekton() {
    WITHOUT_TEKTON.store(true, Ordering::SeqCst);
}

/// The control plane of this test binary, started on first use. Its components are tied to
/// this process and die with it. Panics with the reason, and how to fix it, when it cannot
/// start: an integration test never skips itself.
pub fn control_plane() -> &'static Mutex<ControlPlane> {
    let plane = PLANE.get_or_init(|| {
        let dir = plane_dir();
        say(&format!("starting a control plane for this test binary in {}", dir.display()));
        let mut options = Options::for_tests(dir);
        options.install_tekton = !WITHOUT_TEKTON.load(Ordering::SeqCst);
        ControlPlane::start(&options, &|line| say(&format!("  · {line}")))
            .map(|plane| {
                say(&format!("control plane: {} at {}", plane.version, plane.server));
                Mutex::new(plane)
            })
            .map_err(|e| format!("{e}"))
    });
    match plane {
        Ok(plane) => plane,
        Err(e) => panic!(
            "the test control plane could not start: {e}\n\
             Build it with `cargo xtask control-plane build` (needs Go 1.26+ and the Go module proxy), \
             or run the whole suite with `cargo xtask test`."
        ),
    }
}

static SECOND: OnceLock<Result<Mutex<ControlPlane>, String>> = OnceLock::new();

/// A second, independent control plane for multi-cluster tests (no CRDs installed), started
/// on first use and tied to this process like the first.
pub fn second_control_plane() -> &'static Mutex<ControlPlane> {
    let plane = SECOND.get_or_init(|| {
        let mut dir = plane_dir();
        dir.set_file_name(format!("{}-second", dir.file_name().and_then(|n| n.to_str()).unwrap_or("tests")));
        say(&format!("starting a second control plane in {}", dir.display()));
        let options =
            Options { install_crds: false, install_tekton: false, workloads: false, ..Options::for_tests(dir) };
        ControlPlane::start(&options, &|line| say(&format!("  · {line}"))).map(Mutex::new).map_err(|e| format!("{e}"))
    });
    match plane {
        Ok(plane) => plane,
        Err(e) => panic!("the second control plane could not start: {e}"),
    }
}

/// The admin kubeconfig of the second control plane (its text) and a client for it.
pub async fn second_cluster() -> anyhow::Result<(String, Client)> {
    let path = second_control_plane().lock().unwrap_or_else(|p| p.into_inner()).kubeconfig.clone();
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok((text, client_from(&path).await?))
}

/// Writes to the real stderr, past the test harness's output capture, so that every run
/// shows which control plane it started.
pub(crate) fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// `target/<profile>/control-planes/<test binary>`: kept after the run for its logs.
fn plane_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("target/debug/deps/unknown"));
    let stem = exe.file_stem().and_then(|s| s.to_str()).unwrap_or("tests").to_string();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    profile_dir.join("control-planes").join(stem)
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// One test's view of the shared control plane. Prints the components' recent logs if the
/// test panics while it is alive.
pub struct TestContext {
    /// Admin client (`system:masters`).
    pub client: Client,
    /// Short unique prefix of this test's object names.
    pub prefix: String,
    kubeconfig: PathBuf,
}

impl TestContext {
    /// A context for the test `test` (its name, used in diagnostics).
    pub async fn new(test: &str) -> Self {
        let kubeconfig = lock().kubeconfig.clone();
        let client = client_from(&kubeconfig).await.expect("admin client for the test control plane");
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // Unique across test binaries run against the same cluster and across reruns.
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let prefix = format!("t{:x}{n}", (nanos ^ std::process::id()) % 0xfff);
        eprintln!("test {test}: names prefixed {prefix}");
        Self { client, prefix, kubeconfig }
    }

    /// A unique DNS-1123 name for this test: `<prefix>-<base>`.
    pub fn name(&self, base: &str) -> String {
        format!("{}-{base}", self.prefix)
    }

    /// Path of the admin kubeconfig.
    pub fn admin_kubeconfig(&self) -> &PathBuf {
        &self.kubeconfig
    }

    /// A client authenticated as `user` in `groups` by a client certificate: the real
    /// authentication and RBAC path, exactly as that user would reach the API server.
    pub async fn client_as_user(&self, user: &str, groups: &[&str]) -> anyhow::Result<Client> {
        let path = lock().user_kubeconfig(user, groups)?;
        client_from(&path).await
    }

    /// A client that acts as service account `namespace/name` by impersonation, the way the
    /// operator applies a tenant's content; RBAC judges the service account's rights.
    pub async fn client_as_service_account(&self, namespace: &str, name: &str) -> anyhow::Result<Client> {
        Ok(factory_apply::impersonating_client(&self.client, namespace, name, None)?)
    }

    /// Runs the control plane's kubectl with the admin kubeconfig; returns stdout or the error.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        Ok(lock().kubectl_output(args)?)
    }

    /// Runs `kubectl factory <args>` the way a user does: the control plane's kubectl finds the
    /// `kubectl-factory` binary of this build on PATH. Returns exit code, stdout and stderr.
    pub fn kubectl_factory(&self, args: &[&str]) -> anyhow::Result<(i32, String, String)> {
        let exe = std::env::current_exe()?;
        let bin_dir = exe.parent().and_then(|deps| deps.parent()).map(PathBuf::from).unwrap_or_default();
        anyhow::ensure!(
            bin_dir.join("kubectl-factory").is_file(),
            "{} is missing: build it with `cargo build -p kubectl-factory` (`cargo xtask test` builds every binary first)",
            bin_dir.join("kubectl-factory").display()
        );
        let (kubectl, kubeconfig) = {
            let plane = lock();
            (plane.binaries.kubectl.clone(), plane.kubeconfig.clone())
        };
        let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
        // `validate` and `plan` render with the same kustomize and helm as the tests' operator.
        let kustomize = factory_control_plane::binaries::kustomize(&|line| say(line))?;
        let helm = factory_control_plane::binaries::helm(&|line| say(line))?;
        let out = std::process::Command::new(kubectl)
            .env("KUBECONFIG", kubeconfig)
            .env("PATH", path)
            .env("FACTORY_KUSTOMIZE", kustomize)
            .env("FACTORY_HELM", helm)
            .arg("factory")
            .args(args)
            .output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

impl Drop for TestContext {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let plane = lock();
            eprintln!("test failed; recent control plane logs:\n{}", plane.logs_tail(25));
            let log = plane.dir.join(OPERATOR_LOG);
            if log.exists() {
                eprintln!("----- factory-operator -----\n{}", factory_control_plane::process::tail(&log, 60));
            }
        }
    }
}

fn lock() -> std::sync::MutexGuard<'static, ControlPlane> {
    // A panic while holding the lock must not hide the control plane from later tests.
    control_plane().lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn client_from(path: &PathBuf) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}
