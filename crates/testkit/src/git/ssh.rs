//! `sshd` serving a [`GitRoot`](super::GitRoot) over `ssh://` on loopback, with a generated
//! host key and one authorised client key, so that SSH fetches with key and known_hosts are
//! tested for real. Needs OpenSSH's server (`apt-get install openssh-server`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running `sshd`; stopped on drop.
pub struct GitSshServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The `known_hosts` line for it.
    pub known_hosts: String,
    /// A private key it accepts (PEM).
    pub client_key: String,
    /// A private key it does not accept (PEM).
    pub stranger_key: String,
    user: String,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

const SSHD: &str = "/usr/sbin/sshd";

fn keygen(path: &Path, kind: &[&str]) -> Result<()> {
    let status = Command::new("ssh-keygen")
        .args(kind)
        .args(["-q", "-N", "", "-f"])
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .context("running ssh-keygen: install openssh-client")?;
    if !status.success() {
        bail!("ssh-keygen failed for {}", path.display());
    }
    Ok(())
}

impl GitSshServer {
    /// Serves the repositories under `root` to one key, as the current user.
    pub fn start(root: &Path) -> Result<Self> {
        if !Path::new(SSHD).is_file() {
            bail!("{SSHD} is missing: install OpenSSH's server (apt-get install openssh-server); .ci/run does");
        }
        let dir = tempfile::Builder::new().prefix("factory-sshd-").tempdir()?;
        let d = dir.path();
        keygen(&d.join("host"), &["-t", "ed25519"])?;
        keygen(&d.join("client"), &["-t", "ecdsa", "-b", "256", "-m", "PEM"])?;
        keygen(&d.join("stranger"), &["-t", "ecdsa", "-b", "256", "-m", "PEM"])?;
        std::fs::copy(d.join("client.pub"), d.join("authorized_keys"))?;
        let user = String::from_utf8(Command::new("id").arg("-un").output()?.stdout)?.trim().to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host\nAuthorizedKeysFile {d}/authorized_keys\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile {d}/sshd.pid\nAllowUsers {user}\n\
             LogLevel ERROR\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config)?;
        // sshd insists on its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("sshd.log"))?)
            .spawn()
            .context("starting sshd")?;
        let host_pub = std::fs::read_to_string(d.join("host.pub"))?;
        let mut parts = host_pub.split_whitespace();
        let known_hosts = format!("[127.0.0.1]:{port} {} {}\n", parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let mut server = Self {
            child,
            port,
            known_hosts,
            client_key: std::fs::read_to_string(d.join("client"))?,
            stranger_key: std::fs::read_to_string(d.join("stranger"))?,
            user,
            root: root.to_path_buf(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.try_wait()? {
                let log = std::fs::read_to_string(server._dir.path().join("sshd.log")).unwrap_or_default();
                bail!("sshd exited at start ({status}): {log}");
            }
            if Instant::now() > deadline {
                bail!("sshd did not listen on port {port} within 10s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// The `ssh://` URL of repository `name`.
    pub fn url(&self, name: &str) -> String {
        format!("ssh://{}@127.0.0.1:{}{}/{name}.git", self.user, self.port, self.root.display())
    }
}

impl Drop for GitSshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
