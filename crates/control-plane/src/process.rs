//! Running a component as a child process with its output in a log file.
//!
//! Each component runs in a process group of its own, so a terminal's Ctrl-C reaches the
//! owner (xtask, a test binary) and not the component; the owner stops it. With
//! [`Lifetime::TiedToOwner`] a small shell watchdog holds a pipe from the owner and kills the
//! component when the pipe closes: when the owner exits, however it exits (a panic, SIGKILL),
//! nothing is left running.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::Lifetime;
use crate::error::{Error, io};

/// The watchdog: runs the command in the background and kills it when stdin reaches EOF.
/// `CLEANUP_DIR`, when set, is removed after the component exits (etcd's in-memory data). A
/// component that has not stopped 10 s after SIGTERM gets SIGKILL: kube-apiserver can hang in
/// its graceful shutdown once etcd, stopped at the same moment, is gone.
const WATCHDOG: &str = r#""$0" "$@" </dev/null & child=$!
cleanup() {
  kill -TERM $child 2>/dev/null
  i=0; while [ $i -lt 50 ] && kill -0 $child 2>/dev/null; do sleep 0.2; i=$((i+1)); done
  kill -KILL $child 2>/dev/null; wait $child
  [ -n "$CLEANUP_DIR" ] && rm -rf "$CLEANUP_DIR"
}
trap 'cleanup; exit 143' TERM
read -r _ignored || true
cleanup"#;

/// A running component.
#[derive(Debug)]
pub struct Process {
    /// Component name, such as `kube-apiserver`.
    pub name: String,
    /// Its log file (stdout and stderr).
    pub log: PathBuf,
    /// Process group id: the component's pid, or the watchdog's.
    pub pgid: i32,
    child: Option<Child>,
    keepalive: Option<ChildStdin>,
}

impl Process {
    /// Starts `program args…`, logging to `log`.
    /// With [`Lifetime::TiedToOwner`], `cleanup` is removed once the component has exited.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
        lifetime: Lifetime,
        cleanup: Option<&Path>,
    ) -> Result<Self, Error> {
        Self::spawn_with_env(name, program, args, &[], log, lifetime, cleanup)
    }

    /// Like [`Process::spawn`], with `env` added to the component's environment.
    pub fn spawn_with_env(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, &std::ffi::OsStr)],
        log: &Path,
        lifetime: Lifetime,
        cleanup: Option<&Path>,
    ) -> Result<Self, Error> {
        use std::os::unix::process::CommandExt;
        let out = io(File::create(log), || format!("creating {}", log.display()))?;
        let err = io(out.try_clone(), || format!("opening {}", log.display()))?;
        let mut cmd = match lifetime {
            Lifetime::TiedToOwner => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(WATCHDOG).arg(program).args(args).stdin(Stdio::piped());
                c.env("CLEANUP_DIR", cleanup.map(Path::as_os_str).unwrap_or_default());
                c
            }
            Lifetime::Detached => {
                let mut c = Command::new(program);
                c.args(args).stdin(Stdio::null());
                c
            }
        };
        cmd.envs(env.iter().copied()).stdout(out).stderr(err).process_group(0);
        let mut child = io(cmd.spawn(), || format!("starting {} ({})", name, program.display()))?;
        let keepalive = child.stdin.take();
        Ok(Self {
            name: name.to_string(),
            log: log.to_path_buf(),
            pgid: i32::try_from(child.id()).unwrap_or(i32::MAX),
            child: Some(child),
            keepalive,
        })
    }

    /// A handle on a detached component started by an earlier process (xtask `stop`).
    pub fn adopt(name: &str, pgid: i32, log: PathBuf) -> Self {
        Self { name: name.to_string(), log, pgid, child: None, keepalive: None }
    }

    /// `Some(status)` when the component has exited.
    pub fn exited(&mut self) -> Option<String> {
        match &mut self.child {
            Some(child) => child.try_wait().ok().flatten().map(|s| s.to_string()),
            None => (!group_alive(self.pgid)).then(|| "gone".to_string()),
        }
    }

    /// The last `lines` lines of the log.
    pub fn tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// Stops the component: SIGTERM to its process group, SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        drop(self.keepalive.take());
        let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            let gone = match &mut self.child {
                Some(child) => child.try_wait().ok().flatten().is_some() && !group_alive(self.pgid),
                None => !group_alive(self.pgid),
            };
            if gone {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGKILL);
        if let Some(child) = &mut self.child {
            let _ = child.wait();
        }
    }

    /// Kills the component at once with SIGKILL (fault tests).
    pub fn kill(&mut self) {
        let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGKILL);
        if let Some(child) = &mut self.child {
            let _ = child.wait();
        }
    }
}

fn group_alive(pgid: i32) -> bool {
    killpg(Pid::from_raw(pgid), None).is_ok()
}

/// The last `lines` lines of a file, or a note saying it could not be read.
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
