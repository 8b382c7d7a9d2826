//! A real Gitea on loopback: repositories over HTTPS with a token, pull requests, commit
//! statuses and signed webhooks, for the pull-request tests and the demo. Built from its Go
//! module into the cache (`factory_control_plane::binaries::gitea`), with SQLite, its
//! certificate signed by a CA of its own, and tied to the process that starts it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use factory_control_plane::Lifetime;
use factory_control_plane::certs::Authority;
use factory_control_plane::process::Process;
use serde_json::{Value, json};

use crate::git::{GitRoot, Repo};

/// The administrator every repository belongs to.
pub const ADMIN: &str = "factory";

/// What the webhooks the tests add send.
const HOOK_EVENTS: [&str; 4] = ["push", "pull_request", "pull_request_sync", "pull_request_label"];

/// A running Gitea.
pub struct Gitea {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// The CA its certificate chains to (PEM): what a client puts in `ca.crt`.
    pub ca_pem: String,
    /// That CA as a file, for the `git` command (`http.sslCAInfo`).
    pub ca_file: PathBuf,
    /// An API token of [`ADMIN`] (all scopes).
    pub token: String,
    client: reqwest::Client,
    process: Process,
}

impl Gitea {
    /// Starts Gitea with its state in `dir` (emptied first), building it on first use.
    pub fn start(dir: &Path, lifetime: Lifetime, progress: &dyn Fn(&str)) -> Result<Self> {
        let binary = factory_control_plane::binaries::gitea(progress)?;
        let options = binary.parent().context("gitea's directory")?.join("options");
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir.join("custom"))?;
        let authority = Authority::generate()?;
        let serving = authority.serving(&["localhost"], &["127.0.0.1".parse()?])?;
        serving.write(dir, "tls")?;
        let ca_file = dir.join("ca.crt");
        std::fs::write(&ca_file, &authority.pair.cert_pem)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let url = format!("https://127.0.0.1:{port}");
        let config = dir.join("app.ini");
        std::fs::write(&config, app_ini(dir, &options, port))?;
        let run = |args: &[&str]| -> Result<String> {
            let out = std::process::Command::new(&binary)
                .args(["--config", &config.display().to_string()])
                .args(args)
                .env("GITEA_WORK_DIR", dir)
                .env("HOME", dir)
                .output()
                .with_context(|| format!("running {}", binary.display()))?;
            if !out.status.success() {
                bail!("gitea {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stdout));
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        run(&["migrate"])?;
        let password = format!("pw-{:x}", std::process::id() as u64 * 7919 + port as u64);
        run(&[
            "admin",
            "user",
            "create",
            "--admin",
            "--username",
            ADMIN,
            "--password",
            &password,
            "--email",
            "factory@example.invalid",
            "--must-change-password=false",
        ])?;
        // Gitea reads its work directory from the environment; the watchdog passes it on.
        let process = Process::spawn_with_env(
            "gitea",
            &binary,
            &["--config".to_string(), config.display().to_string(), "web".to_string()],
            &[("GITEA_WORK_DIR", dir.as_os_str()), ("HOME", dir.as_os_str())],
            &dir.join("gitea.log"),
            lifetime,
            None,
        )?;
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(authority.pair.cert_pem.as_bytes())?)
            .timeout(Duration::from_secs(20))
            .build()?;
        let mut gitea =
            Self { url, ca_pem: authority.pair.cert_pem.clone(), ca_file, token: String::new(), client, process };
        // Start-up waits on one runtime of its own (callers are not inside one).
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        gitea.wait_ready(&runtime)?;
        gitea.token = gitea.create_token(&runtime, &password)?;
        Ok(gitea)
    }

    fn wait_ready(&mut self, runtime: &tokio::runtime::Runtime) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.process.exited() {
                bail!("gitea exited during start-up ({status}):\n{}", self.process.tail(30));
            }
            let healthy = runtime.block_on(async {
                let answer = self.client.get(format!("{}/api/healthz", self.url)).send().await;
                answer.is_ok_and(|a| a.status().is_success())
            });
            if healthy {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("gitea did not answer within 60 s:\n{}", self.process.tail(30));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn create_token(&self, runtime: &tokio::runtime::Runtime, password: &str) -> Result<String> {
        runtime.block_on(async {
            let answer = self
                .client
                .post(format!("{}/api/v1/users/{ADMIN}/tokens", self.url))
                .basic_auth(ADMIN, Some(password))
                .json(&json!({"name": "factory-tests", "scopes": ["all"]}))
                .send()
                .await?;
            let body: Value = answer.error_for_status()?.json().await?;
            body["sha1"].as_str().map(str::to_string).context("no token in Gitea's answer")
        })
    }

    /// The clone URL of repository `name`.
    pub fn clone_url(&self, name: &str) -> String {
        format!("{}/{ADMIN}/{name}.git", self.url)
    }

    /// Creates repository `name` on Gitea from `files` (pushed to `main` by `git` over HTTPS
    /// with the token); the returned work tree pushes there.
    pub async fn repo(&self, root: &GitRoot, name: &str, files: &[(&str, &str)]) -> Result<Repo> {
        let repo = root.repo(name, files)?;
        self.publish(&repo).await?;
        Ok(repo)
    }

    /// Creates a private repository named like `repo` on Gitea and pushes `repo`'s current
    /// branch there; every later push of `repo` goes there.
    pub async fn publish(&self, repo: &Repo) -> Result<()> {
        let body = json!({"name": repo.name, "private": true, "default_branch": "main"});
        self.api("POST", "/user/repos", Some(body)).await?;
        let authed = self.clone_url(&repo.name).replacen("https://", &format!("https://{ADMIN}:{}@", self.token), 1);
        repo.publish_to(&authed, &self.ca_file)
    }

    /// Creates user `user` (when missing) and forks `repo` as that user; returns the fork's
    /// clone URL. The administrator's token may push to it.
    pub async fn fork_as(&self, user: &str, repo: &str) -> Result<String> {
        let body = json!({"username": user, "email": format!("{user}@example.invalid"),
            "password": format!("{user}-pw-0123456789"), "must_change_password": false});
        if let Err(e) = self.api("POST", "/admin/users", Some(body)).await
            && !e.to_string().contains("422")
        {
            return Err(e);
        }
        // The repositories are private: the user may read (and so fork) this one.
        let read = json!({"permission": "read"});
        self.api("PUT", &format!("/repos/{ADMIN}/{repo}/collaborators/{user}"), Some(read)).await?;
        self.api_as(user, "POST", &format!("/repos/{ADMIN}/{repo}/forks"), Some(json!({}))).await?;
        Ok(format!("{}/{user}/{repo}.git", self.url))
    }

    /// Opens a pull request of `user`'s fork's `branch` into `base` of `repo`, as `user`.
    pub async fn open_pull_from_fork(&self, user: &str, repo: &str, branch: &str, base: &str) -> Result<u64> {
        let body = json!({"head": format!("{user}:{branch}"), "base": base, "title": format!("{user}: {branch}")});
        let answer = self.api_as(user, "POST", &format!("/repos/{ADMIN}/{repo}/pulls"), Some(body)).await?;
        answer["number"].as_u64().context("no number in Gitea's answer")
    }

    /// Opens a pull request of `head` into `base`; returns its number.
    pub async fn open_pull(&self, repo: &str, head: &str, base: &str, title: &str) -> Result<u64> {
        let body = json!({"head": head, "base": base, "title": title});
        let answer = self.api("POST", &format!("/repos/{ADMIN}/{repo}/pulls"), Some(body)).await?;
        answer["number"].as_u64().context("no number in Gitea's answer")
    }

    /// Closes pull request `number` without merging.
    pub async fn close_pull(&self, repo: &str, number: u64) -> Result<()> {
        self.api("PATCH", &format!("/repos/{ADMIN}/{repo}/pulls/{number}"), Some(json!({"state": "closed"}))).await?;
        Ok(())
    }

    /// Merges pull request `number` (a merge commit on its base).
    pub async fn merge_pull(&self, repo: &str, number: u64) -> Result<()> {
        self.api("POST", &format!("/repos/{ADMIN}/{repo}/pulls/{number}/merge"), Some(json!({"Do": "merge"}))).await?;
        Ok(())
    }

    /// Puts label `label` (created when missing) on pull request `number`.
    pub async fn label_pull(&self, repo: &str, number: u64, label: &str) -> Result<()> {
        let labels = self.api("GET", &format!("/repos/{ADMIN}/{repo}/labels"), None).await?;
        let existing = labels.as_array().into_iter().flatten().find(|l| l["name"] == label).map(|l| l["id"].clone());
        let id = match existing {
            Some(id) => id,
            None => {
                let body = json!({"name": label, "color": "#00aabb"});
                self.api("POST", &format!("/repos/{ADMIN}/{repo}/labels"), Some(body)).await?["id"].clone()
            }
        };
        self.api("POST", &format!("/repos/{ADMIN}/{repo}/issues/{number}/labels"), Some(json!({"labels": [id]})))
            .await?;
        Ok(())
    }

    /// The newest status of each context on commit `sha`: (context, state, description, target URL).
    pub async fn statuses(&self, repo: &str, sha: &str) -> Result<Vec<(String, String, String, String)>> {
        let combined = self.api("GET", &format!("/repos/{ADMIN}/{repo}/commits/{sha}/status"), None).await?;
        let text = |s: &Value, key: &str| s[key].as_str().unwrap_or_default().to_string();
        Ok(combined["statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| (text(s, "context"), text(s, "status"), text(s, "description"), text(s, "target_url")))
            .collect())
    }

    /// Adds a webhook to `repo` sending pushes and pull-request events to `url`, signed with
    /// `secret`; returns its id.
    pub async fn add_webhook(&self, repo: &str, url: &str, secret: &str) -> Result<u64> {
        let body = json!({
            "type": "gitea", "active": true, "branch_filter": "*",
            "config": {"url": url, "content_type": "json", "secret": secret}, "events": HOOK_EVENTS
        });
        let answer = self.api("POST", &format!("/repos/{ADMIN}/{repo}/hooks"), Some(body)).await?;
        answer["id"].as_u64().context("no id in Gitea's answer")
    }

    /// Turns webhook `id` of `repo` off or on (to lose events on purpose).
    pub async fn set_webhook_active(&self, repo: &str, id: u64, active: bool) -> Result<()> {
        // An edit without its events would leave the hook sending pushes only.
        let body = json!({"active": active, "events": HOOK_EVENTS});
        self.api("PATCH", &format!("/repos/{ADMIN}/{repo}/hooks/{id}"), Some(body)).await?;
        Ok(())
    }

    /// Calls Gitea's API as [`ADMIN`]; the answer's JSON (`null` when empty).
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        self.call(None, method, path, body).await
    }

    /// Calls Gitea's API as `user` (the administrator's token with Gitea's `Sudo` header).
    pub async fn api_as(&self, user: &str, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        self.call(Some(user), method, path, body).await
    }

    async fn call(&self, sudo: Option<&str>, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}/api/v1{path}", self.url);
        let mut request =
            self.client.request(method.parse()?, &url).header("authorization", format!("token {}", self.token));
        if let Some(user) = sudo {
            request = request.header("sudo", user);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.with_context(|| format!("{method} {url}"))?;
        let status = answer.status();
        let text = answer.text().await?;
        if !status.is_success() {
            bail!("{method} {url}: {status}: {text}");
        }
        Ok(if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text)? })
    }

    /// The end of Gitea's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.tail(lines)
    }

    /// Stops Gitea.
    pub fn stop(&mut self) {
        self.process.stop(Duration::from_secs(10));
    }
}

impl Drop for Gitea {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Gitea's configuration: HTTPS on loopback, SQLite, no SSH, no mail, no registration, and
/// webhooks allowed to loopback (where the operator's receiver listens).
fn app_ini(dir: &Path, options: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true\nAPP_NAME = factory-operator git host\nRUN_MODE = prod\nWORK_PATH = {d}\n\
         [server]\nPROTOCOL = https\nHTTP_ADDR = 127.0.0.1\nHTTP_PORT = {port}\nROOT_URL = https://127.0.0.1:{port}/\n\
         CERT_FILE = {d}/tls.crt\nKEY_FILE = {d}/tls.key\nDISABLE_SSH = true\nOFFLINE_MODE = true\n\
         LFS_START_SERVER = false\nAPP_DATA_PATH = {d}/data\n\
         STATIC_ROOT_PATH = {static_root}\n\
         [database]\nDB_TYPE = sqlite3\nPATH = {d}/data/gitea.db\n\
         [repository]\nROOT = {d}/repositories\nDEFAULT_BRANCH = main\n\
         [security]\nINSTALL_LOCK = true\nSECRET_KEY = factory-operator-tests-only-secret-key\n\
         [service]\nDISABLE_REGISTRATION = true\n\
         [webhook]\nALLOWED_HOST_LIST = loopback\nDELIVER_TIMEOUT = 5\n\
         [log]\nMODE = console\nLEVEL = Warn\n\
         [session]\nPROVIDER = memory\n[cache]\nADAPTER = memory\n\
         [indexer]\nREPO_INDEXER_ENABLED = false\n[mailer]\nENABLED = false\n\
         [cron.update_checker]\nENABLED = false\n",
        // Its locales and licences: `options/` beside the binary.
        static_root = options.parent().unwrap_or(options).display()
    )
}

static SHARED: std::sync::OnceLock<Result<Gitea, String>> = std::sync::OnceLock::new();

/// This test binary's Gitea, started on first use beside its control plane and stopped when
/// the binary exits. Panics with the reason, and how to get Gitea, when it cannot start.
pub fn shared() -> &'static Gitea {
    let gitea = SHARED.get_or_init(|| {
        let dir = {
            let plane = crate::cluster::control_plane().lock().unwrap_or_else(|p| p.into_inner());
            plane.dir.join("gitea")
        };
        crate::cluster::say(&format!("starting Gitea for this test binary in {}", dir.display()));
        // Its start-up waits with a runtime of its own: not inside a test's.
        std::thread::spawn(move || {
            Gitea::start(&dir, Lifetime::TiedToOwner, &|line| crate::cluster::say(&format!("  · {line}")))
                .map_err(|e| format!("{e:#}"))
        })
        .join()
        .unwrap_or_else(|_| Err("Gitea's start-up panicked".into()))
    });
    match gitea {
        Ok(gitea) => gitea,
        Err(e) => panic!(
            "Gitea could not start: {e}\nBuild it with `cargo xtask control-plane build` (needs Go 1.26+, a C \
             compiler for SQLite and the Go module proxy), or run the whole suite with `cargo xtask test`."
        ),
    }
}
