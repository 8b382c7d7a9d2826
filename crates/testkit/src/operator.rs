//! The operator's reconcilers, run once per test binary against its control plane, in a
//! thread of their own with their own runtime (tests' runtimes come and go), logging to
//! `logs/factory-operator.log` of the control plane. Running the library rather than a
//! prebuilt binary guarantees the tests exercise the code just compiled.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use factory_controller::{Context, run_controllers};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::cluster::{control_plane, say};

static OPERATOR: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Starts the reconcilers (once per test binary) as the cluster admin. Panics, with the
/// reason, if they cannot start.
pub fn ensure_operator() {
    let started = OPERATOR.get_or_init(|| {
        let (kubeconfig, dir) = {
            let plane = control_plane().lock().unwrap_or_else(|p| p.into_inner());
            (plane.kubeconfig.clone(), plane.dir.clone())
        };
        let log = dir.join("logs/factory-operator.log");
        let file = std::fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let filter = tracing_subscriber::EnvFilter::new("info,factory_controller=debug,factory_apply=debug");
        let _ =
            tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(Arc::new(file)).try_init();
        let git_cache = dir.join("operator-git-cache");
        let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
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
                        Ok(ctx) => Arc::new(ctx),
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = tx.send(Ok(()));
                    run_controllers(ctx, std::future::pending()).await;
                });
            })
            .map_err(|e| e.to_string())?;
        rx.recv().map_err(|e| e.to_string())??;
        say(&format!("factory-operator reconcilers running, logging to {}", log.display()));
        Ok(log)
    });
    if let Err(e) = started {
        panic!("the operator could not start: {e}");
    }
}

/// The last lines of the operator's log.
pub fn operator_log_tail(lines: usize) -> String {
    match OPERATOR.get() {
        Some(Ok(log)) => factory_control_plane::process::tail(log, lines),
        _ => String::from("(operator not started)"),
    }
}
