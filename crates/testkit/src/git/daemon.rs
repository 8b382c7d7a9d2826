//! `git daemon` serving a [`GitRoot`](super::GitRoot) over `git://` on loopback.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A running `git daemon` in a process group of its own; the whole group is stopped on drop
/// (`git daemon` runs `git-daemon` as a child, which killing `git` alone left running).
pub struct GitDaemon {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl GitDaemon {
    /// Serves every repository under `root` read-only on a free loopback port.
    pub fn start(root: &Path) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new("git")
            .args(["daemon", "--reuseaddr", "--export-all", "--informative-errors", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", root.display()))
            .arg(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting git daemon: is git installed? (apt-get install git)")?;
        let mut daemon = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = daemon.child.try_wait()? {
                bail!("git daemon exited at start ({status})");
            }
            if Instant::now() > deadline {
                bail!("git daemon did not listen on port {port} within 10s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(daemon)
    }

    /// Its process group (the `git` it started and every process that one started).
    pub fn process_group(&self) -> i32 {
        // The group leader's pid is the group id (`process_group(0)`).
        i32::try_from(self.child.id()).unwrap_or(i32::MAX)
    }

    /// The `git://` URL of repository `name`.
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}.git", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.process_group()), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Whether any process of group `pgid` is still alive (signal 0 reaches none once all are gone).
pub fn group_alive(pgid: i32) -> bool {
    killpg(Pid::from_raw(pgid), None).is_ok()
}
