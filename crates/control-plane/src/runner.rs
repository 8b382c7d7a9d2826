//! Starting, checking and stopping one local control plane.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::binaries::Binaries;
use crate::certs::{Authority, service_account_keys};
use crate::error::{Error, io};
use crate::process::Process;
use crate::{crds, kubeconfig, kwok, ports};

/// Whether the components outlive the process that started them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Killed when the starting process exits, however it exits (test binaries).
    TiedToOwner,
    /// Left running; stopped later through the state file (`cargo xtask control-plane stop`).
    Detached,
}

/// How to start a control plane.
#[derive(Debug, Clone)]
pub struct Options {
    /// Directory for certificates, kubeconfigs, logs, CRD files and the state file.
    pub dir: PathBuf,
    /// Whether components outlive the starting process.
    pub lifetime: Lifetime,
    /// Install the factories.dev CRDs.
    pub install_crds: bool,
    /// Install the Tekton Pipelines and Triggers CRDs.
    pub install_tekton: bool,
    /// Run workloads: the workload controllers, kube-scheduler and kwok with its fake nodes,
    /// so Deployments, StatefulSets, DaemonSets, Jobs and CronJobs really roll out.
    pub workloads: bool,
}

impl Options {
    /// Everything installed and running, components tied to this process.
    pub fn for_tests(dir: PathBuf) -> Self {
        Self { dir, lifetime: Lifetime::TiedToOwner, install_crds: true, install_tekton: true, workloads: true }
    }
}

/// What a detached control plane leaves behind so that later commands can find it.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    server: String,
    version: String,
    processes: Vec<(String, i32, PathBuf)>,
    etcd_data: PathBuf,
}

/// The controllers kube-controller-manager runs: enough for namespace deletion, owner-reference
/// garbage collection, service accounts and their tokens, quotas and aggregated ClusterRoles;
/// with workloads, [`WORKLOAD_CONTROLLERS`] too.
pub const CONTROLLERS: &[&str] = &[
    "namespace-controller",
    "garbage-collector-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "resourcequota-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "validatingadmissionpolicy-status-controller",
];

/// The controllers that turn workloads into pods (kwok runs them, kube-scheduler places them).
pub const WORKLOAD_CONTROLLERS: &[&str] = &[
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "daemonset-controller",
    "job-controller",
    "cronjob-controller",
];

const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A running control plane.
#[derive(Debug)]
pub struct ControlPlane {
    /// Its directory.
    pub dir: PathBuf,
    /// Admin kubeconfig (`system:masters`).
    pub kubeconfig: PathBuf,
    /// API server URL, `https://127.0.0.1:<port>`.
    pub server: String,
    /// `kube-apiserver --version`, such as `Kubernetes v1.37.2`.
    pub version: String,
    /// The binaries it runs.
    pub binaries: Binaries,
    processes: Vec<Process>,
    etcd_data: PathBuf,
    /// How kube-apiserver was started, to start it again (fault tests).
    apiserver: Option<(Vec<String>, Lifetime)>,
}

impl ControlPlane {
    /// Builds missing binaries, then starts etcd, kube-apiserver and kube-controller-manager,
    /// waits until each is ready and installs the CRDs. `progress` receives one line per step.
    pub fn start(options: &Options, progress: &dyn Fn(&str)) -> Result<Self, Error> {
        let binaries = Binaries::ensure(progress)?;
        let dir = &options.dir;
        let _ = fs::remove_dir_all(dir);
        for sub in ["pki", "logs"] {
            io(fs::create_dir_all(dir.join(sub)), || format!("creating {}", dir.join(sub).display()))?;
        }
        let pki = dir.join("pki");
        let ca = Authority::generate()?;
        ca.pair.write(&pki, "ca")?;
        let localhost = [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))];
        ca.serving(&["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"], &localhost)?
            .write(&pki, "apiserver")?;
        let (sa_private, sa_public) = service_account_keys()?;
        for (name, body) in [("sa.key", &sa_private), ("sa.pub", &sa_public)] {
            io(fs::write(pki.join(name), body), || format!("writing {name}"))?;
        }
        let version = component_version(&binaries.kube_apiserver)?;

        let etcd_data = etcd_data_dir(dir);
        let _ = fs::remove_dir_all(&etcd_data);
        let mut plane = Self {
            dir: dir.clone(),
            kubeconfig: dir.join("kubeconfig"),
            server: String::new(),
            version,
            binaries,
            processes: Vec::new(),
            etcd_data,
            apiserver: None,
        };
        let started = Instant::now();
        let etcd_url = plane.start_etcd(options.lifetime)?;
        progress(&format!("etcd ready at {etcd_url} ({:.1}s)", started.elapsed().as_secs_f64()));
        plane.start_apiserver(options.lifetime, &etcd_url, &ca)?;
        progress(&format!("{} ready at {} ({:.1}s)", plane.version, plane.server, started.elapsed().as_secs_f64()));
        // CRDs before the controller-manager, so that its quota and garbage-collector monitors
        // know every kind from their first discovery (object-count quotas on our kinds).
        plane.install_crds(options)?;
        progress(&format!("CRDs established ({:.1}s)", started.elapsed().as_secs_f64()));
        plane.start_controller_manager(options, &ca)?;
        progress(&format!("kube-controller-manager ready ({:.1}s)", started.elapsed().as_secs_f64()));
        if options.workloads {
            plane.start_workloads(options.lifetime, &ca)?;
            progress(&format!(
                "kube-scheduler and kwok ready, {} fake nodes ({:.1}s)",
                kwok::NODES,
                started.elapsed().as_secs_f64()
            ));
        }
        plane.save_state()?;
        Ok(plane)
    }

    /// Finds a detached control plane started earlier from `dir`.
    pub fn attach(dir: &Path) -> Result<Self, Error> {
        let path = dir.join("state.json");
        let text = fs::read_to_string(&path).map_err(|_| Error::NotRunning(dir.to_path_buf()))?;
        let state: State = serde_json::from_str(&text).map_err(|_| Error::NotRunning(dir.to_path_buf()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            kubeconfig: dir.join("kubeconfig"),
            server: state.server,
            version: state.version,
            binaries: Binaries::in_cache(),
            processes: state.processes.into_iter().map(|(n, pgid, log)| Process::adopt(&n, pgid, log)).collect(),
            etcd_data: state.etcd_data,
            apiserver: None,
        })
    }

    /// Whether the API server answers `/readyz`.
    pub fn is_ready(&self) -> bool {
        self.kubectl_output(&["get", "--raw", "/readyz"]).is_ok_and(|out| out.trim() == "ok")
    }

    /// Names of components that have exited.
    pub fn exited(&mut self) -> Vec<String> {
        self.processes.iter_mut().filter_map(|p| p.exited().map(|s| format!("{} ({s})", p.name))).collect()
    }

    /// Stops every component (controller-manager, API server, etcd) and removes etcd's data.
    pub fn stop(&mut self) {
        for process in self.processes.iter_mut().rev() {
            process.stop(Duration::from_secs(10));
        }
        self.processes.clear();
        let _ = fs::remove_dir_all(&self.etcd_data);
        let _ = fs::remove_file(self.dir.join("state.json"));
    }

    /// The last `lines` lines of every component's log, for a failing test's output.
    pub fn logs_tail(&self, lines: usize) -> String {
        self.processes
            .iter()
            .map(|p| format!("----- {} ({}) -----\n{}\n", p.name, p.log.display(), p.tail(lines)))
            .collect()
    }

    /// A `kubectl` command using the admin kubeconfig.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(&self.binaries.kubectl);
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// Runs kubectl with the admin kubeconfig; returns stdout, or an error with stderr.
    pub fn kubectl_output(&self, args: &[&str]) -> Result<String, Error> {
        let out = io(self.kubectl().args(args).output(), || "running kubectl".into())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(Error::Kubectl { args: args.join(" "), output: String::from_utf8_lossy(&out.stderr).into_owned() })
        }
    }

    /// Writes a kubeconfig that authenticates as `user` in `groups` with a client certificate
    /// signed by this control plane's CA; returns its path. The API server's RBAC applies.
    pub fn user_kubeconfig(&self, user: &str, groups: &[&str]) -> Result<PathBuf, Error> {
        let pki = self.dir.join("pki");
        let ca = Authority::load(&pki, "ca")?;
        let users = self.dir.join("users");
        io(fs::create_dir_all(&users), || format!("creating {}", users.display()))?;
        let safe: String = user.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        let path = users.join(format!("{safe}.kubeconfig"));
        kubeconfig::write(&path, &self.server, &ca.pair.cert_pem, &ca.client(user, groups)?)?;
        Ok(path)
    }

    fn start_etcd(&mut self, lifetime: Lifetime) -> Result<String, Error> {
        let (client, peer) = (ports::free()?, ports::free()?);
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let args: Vec<String> = [
            "--name=default".to_string(),
            format!("--data-dir={}", self.etcd_data.display()),
            format!("--listen-client-urls={client_url}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=default={peer_url}"),
            // A throw-away store: durability on power loss is not needed, speed is.
            "--unsafe-no-fsync=true".to_string(),
            "--quota-backend-bytes=8589934592".to_string(),
            "--log-level=warn".to_string(),
        ]
        .into();
        let log = self.dir.join("logs/etcd.log");
        let mut process =
            Process::spawn("etcd", &self.binaries.etcd.clone(), &args, &log, lifetime, Some(&self.etcd_data.clone()))?;
        let health = format!("127.0.0.1:{client}");
        let result = wait_until(&mut process, START_TIMEOUT, || etcd_healthy(&health));
        self.processes.push(process);
        result.map(|()| client_url)
    }

    fn start_apiserver(&mut self, lifetime: Lifetime, etcd_url: &str, ca: &Authority) -> Result<(), Error> {
        let port = ports::free()?;
        self.server = format!("https://127.0.0.1:{port}");
        let pki = self.dir.join("pki");
        let p = |name: &str| pki.join(name).display().to_string();
        let args: Vec<String> = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", p("")),
            format!("--tls-cert-file={}", p("apiserver.crt")),
            format!("--tls-private-key-file={}", p("apiserver.key")),
            format!("--client-ca-file={}", p("ca.crt")),
            format!("--service-account-key-file={}", p("sa.pub")),
            format!("--service-account-signing-key-file={}", p("sa.key")),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            "--api-audiences=https://kubernetes.default.svc.cluster.local".into(),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--authorization-mode=RBAC".into(),
            "--allow-privileged=true".into(),
            // No kubelets exist; do not wait for them or for an endpoint IP on the host.
            "--endpoint-reconciler-type=none".into(),
            "--v=1".into(),
        ];
        kubeconfig::write(
            &self.kubeconfig,
            &self.server,
            &ca.pair.cert_pem,
            &ca.client("factory-admin", &["system:masters"])?,
        )?;
        self.apiserver = Some((args, lifetime));
        self.spawn_apiserver()
    }

    fn spawn_apiserver(&mut self) -> Result<(), Error> {
        let Some((args, lifetime)) = self.apiserver.clone() else { return Err(Error::NotRunning(self.dir.clone())) };
        let log = self.dir.join("logs/kube-apiserver.log");
        let mut process =
            Process::spawn("kube-apiserver", &self.binaries.kube_apiserver.clone(), &args, &log, lifetime, None)?;
        let result = wait_until(&mut process, START_TIMEOUT, || self.is_ready());
        self.processes.push(process);
        result
    }

    /// SIGKILLs kube-apiserver, waits `down`, and starts it again on the same address with
    /// the same etcd (fault tests); returns once it is ready.
    pub fn restart_apiserver(&mut self, down: Duration) -> Result<(), Error> {
        if let Some(i) = self.processes.iter().position(|p| p.name == "kube-apiserver") {
            let mut process = self.processes.remove(i);
            process.kill();
        }
        std::thread::sleep(down);
        self.spawn_apiserver()?;
        self.save_state()
    }

    /// Writes a kubeconfig for `component`, authenticated as `user` in `groups`; returns its path.
    fn component_kubeconfig(
        &self,
        component: &str,
        ca: &Authority,
        user: &str,
        groups: &[&str],
    ) -> Result<String, Error> {
        let path = self.dir.join(format!("{component}.kubeconfig"));
        kubeconfig::write(&path, &self.server, &ca.pair.cert_pem, &ca.client(user, groups)?)?;
        Ok(path.display().to_string())
    }

    fn start_controller_manager(&mut self, options: &Options, ca: &Authority) -> Result<(), Error> {
        let pki = self.dir.join("pki");
        let k = self.component_kubeconfig("kube-controller-manager", ca, "system:kube-controller-manager", &[])?;
        let mut controllers = CONTROLLERS.to_vec();
        if options.workloads {
            controllers.extend(WORKLOAD_CONTROLLERS);
        }
        let args: Vec<String> = vec![
            format!("--kubeconfig={k}"),
            format!("--authentication-kubeconfig={k}"),
            format!("--authorization-kubeconfig={k}"),
            format!("--controllers={}", controllers.join(",")),
            format!("--service-account-private-key-file={}", pki.join("sa.key").display()),
            format!("--root-ca-file={}", pki.join("ca.crt").display()),
            // Each controller acts as its own service account, as in a production cluster.
            "--use-service-account-credentials=true".into(),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", ports::free()?),
            // Notice namespace and quota changes quickly: tests wait on them.
            "--concurrent-namespace-syncs=4".into(),
            // No aggregated API servers here: skip the front-proxy CA lookup it would log about.
            "--authentication-skip-lookup=true".into(),
            "--v=1".into(),
        ];
        let log = self.dir.join("logs/kube-controller-manager.log");
        let mut process = Process::spawn(
            "kube-controller-manager",
            &self.binaries.kube_controller_manager.clone(),
            &args,
            &log,
            options.lifetime,
            None,
        )?;
        // The service-account controller creating `default` in `default` proves it is working.
        let result = wait_until(&mut process, START_TIMEOUT, || {
            self.kubectl_output(&["get", "serviceaccount", "default", "-n", "default", "-o", "name"]).is_ok()
        });
        self.processes.push(process);
        result
    }

    /// Starts kube-scheduler and kwok, then creates kwok's fake nodes and waits until they are Ready.
    fn start_workloads(&mut self, lifetime: Lifetime, ca: &Authority) -> Result<(), Error> {
        let k = self.component_kubeconfig("kube-scheduler", ca, "system:kube-scheduler", &[])?;
        let port = ports::free()?;
        let args: Vec<String> = vec![
            format!("--kubeconfig={k}"),
            format!("--authentication-kubeconfig={k}"),
            format!("--authorization-kubeconfig={k}"),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            "--authentication-skip-lookup=true".into(),
            "--v=1".into(),
        ];
        let log = self.dir.join("logs/kube-scheduler.log");
        let mut process =
            Process::spawn("kube-scheduler", &self.binaries.kube_scheduler.clone(), &args, &log, lifetime, None)?;
        let result =
            wait_until(&mut process, START_TIMEOUT, || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        self.processes.push(process);
        result?;

        // kwok stands in for every kubelet: it writes node and pod status, so it gets the
        // rights of the control plane's own components.
        let k = self.component_kubeconfig("kwok", ca, "kwok", &["system:masters"])?;
        let stages = kwok::write_stages(&self.dir)?;
        let port = ports::free()?;
        let args: Vec<String> = vec![
            format!("--kubeconfig={k}"),
            format!("--config={}", stages.display()),
            "--manage-all-nodes=false".into(),
            format!("--manage-nodes-with-annotation-selector={}=fake", kwok::NODE_ANNOTATION),
            "--cidr=10.0.1.0/24".into(),
            "--node-ip=10.0.0.2".into(),
            format!("--server-address=127.0.0.1:{port}"),
            format!("--node-port={port}"),
        ];
        let log = self.dir.join("logs/kwok.log");
        let mut process = Process::spawn("kwok", &self.binaries.kwok.clone(), &args, &log, lifetime, None)?;
        let nodes = self.dir.join("kwok-nodes.yaml");
        io(fs::write(&nodes, kwok::nodes()), || format!("writing {}", nodes.display()))?;
        let nodes = nodes.display().to_string();
        // The API server taints a new node not-ready; the node lifecycle controller, which
        // would lift the taint once kwok reports the node Ready, does not run here (it would
        // also need kwok's heartbeats), so the taint is lifted once the node is Ready.
        let taint = format!("{}:NoSchedule-", "node.kubernetes.io/not-ready");
        let result = wait_until(&mut process, START_TIMEOUT, || {
            self.kubectl_output(&["apply", "--server-side", "--field-manager=factory-control-plane", "-f", &nodes])
                .is_ok()
                && self.kubectl_output(&["wait", "--for=condition=Ready", "node", "--all", "--timeout=1s"]).is_ok()
                && self.kubectl_output(&["taint", "nodes", "--all", &taint]).is_ok_and(|_| {
                    self.kubectl_output(&["get", "nodes", "-o", "jsonpath={.items[*].spec.taints}"])
                        .is_ok_and(|t| t.trim().is_empty())
                })
        });
        self.processes.push(process);
        result
    }

    /// Installs Tekton's CRDs and aggregated roles into a control plane started without them
    /// (tests of "Tekton installed later").
    pub fn install_tekton(&self) -> Result<(), Error> {
        let options = Options { install_crds: false, install_tekton: true, ..Options::for_tests(self.dir.clone()) };
        self.install_crds(&options)
    }

    fn install_crds(&self, options: &Options) -> Result<(), Error> {
        let crd_dir = self.dir.join(if options.install_crds { "crds" } else { "crds-later" });
        let mut files = Vec::new();
        if options.install_crds {
            files.extend(crds::write_ours(&crd_dir)?);
        }
        if options.install_tekton {
            files.extend(crds::write_tekton(&crd_dir, &crate::binaries::cache_dir().join("tekton-crds"))?);
        }
        if files.is_empty() {
            return Ok(());
        }
        let dir = crd_dir.display().to_string();
        self.kubectl_output(&["apply", "--server-side", "--field-manager=factory-control-plane", "-f", &dir])?;
        self.kubectl_output(&["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"])?;
        Ok(())
    }

    fn save_state(&self) -> Result<(), Error> {
        let state = State {
            server: self.server.clone(),
            version: self.version.clone(),
            processes: self.processes.iter().map(|p| (p.name.clone(), p.pgid, p.log.clone())).collect(),
            etcd_data: self.etcd_data.clone(),
        };
        let path = self.dir.join("state.json");
        let text = serde_json::to_string_pretty(&state).unwrap_or_default();
        io(fs::write(&path, text), || format!("writing {}", path.display()))
    }
}

/// etcd's data directory: in memory (`/dev/shm`) when available, since its speed decides the
/// API server's.
fn etcd_data_dir(dir: &Path) -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        let tag: String =
            dir.display().to_string().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        // The process id keeps a control plane apart from the previous run of the same test
        // binary, whose watchdog may still be removing its data directory.
        shm.join(format!("factory-etcd{tag}-{}", std::process::id()))
    } else {
        dir.join("etcd-data")
    }
}

/// `<binary> --version`, trimmed.
fn component_version(binary: &Path) -> Result<String, Error> {
    let out = io(Command::new(binary).arg("--version").output(), || format!("running {} --version", binary.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn etcd_healthy(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n").is_err() {
        return false;
    }
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}

/// Polls `ready` until it holds, the process exits, or `timeout` passes.
fn wait_until(process: &mut Process, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(status) = process.exited() {
            return Err(Error::Exited {
                component: process.name.clone(),
                status,
                log: process.log.clone(),
                tail: process.tail(40),
            });
        }
        if Instant::now() > deadline {
            return Err(Error::NotReady {
                component: process.name.clone(),
                seconds: timeout.as_secs(),
                log: process.log.clone(),
                tail: process.tail(40),
            });
        }
        std::thread::sleep(Duration::from_millis(150));
    }
}
