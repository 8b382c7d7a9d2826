//! What kwok needs to stand in for kubelets: its own stages (read from its Go module at the
//! pinned version, never copied into this repository) and the fake nodes it manages.
//!
//! The stages are kwok's "fast" set — a node is Ready at once; a pod is Running and Ready as
//! soon as it is scheduled, completes when its containers would exit (Jobs), and goes when it
//! is deleted — plus its chaos stage `pod-container-running-failed`: a pod labelled
//! `pod-container-running-failed.stage.kwok.x-k8s.io: "true"` fails a moment after it starts,
//! so a rollout can really fail.

use std::fs;
use std::path::{Path, PathBuf};

use crate::binaries::{KWOK_MODULE, download_module, kwok_root};
use crate::error::{Error, io};
use crate::versions;

/// The annotation that hands a node to kwok.
pub const NODE_ANNOTATION: &str = "kwok.x-k8s.io/node";

/// How many fake nodes a control plane gets.
pub const NODES: usize = 2;

/// The stage files used, relative to kwok's `kustomize/stage`.
const STAGES: [&str; 5] = [
    "node/fast/node-initialize.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
    "pod/chaos/pod-container-running-failed.yaml",
];

/// Writes kwok's configuration (its stages, as one multi-document file) into `dir`; returns its path.
pub fn write_stages(dir: &Path) -> Result<PathBuf, Error> {
    let scratch = kwok_root().join("module");
    io(fs::create_dir_all(&scratch), || format!("creating {}", scratch.display()))?;
    let go_mod = scratch.join("go.mod");
    if !go_mod.exists() {
        io(fs::write(&go_mod, "module factory-operator/kwok-stages\n\ngo 1.26\n"), || {
            format!("writing {}", go_mod.display())
        })?;
    }
    let (module, _) = download_module(&scratch, KWOK_MODULE, versions::KWOK)?;
    let mut text = String::new();
    for stage in STAGES {
        let path = module.join("kustomize/stage").join(stage);
        text.push_str("---\n");
        text.push_str(&io(fs::read_to_string(&path), || format!("reading kwok stage {}", path.display()))?);
        text.push('\n');
    }
    let path = dir.join("kwok-stages.yaml");
    io(fs::write(&path, text), || format!("writing {}", path.display()))?;
    Ok(path)
}

/// What each fake node offers: kwok's stage keeps a node's own capacity, and its default
/// lacks `ephemeral-storage`, which LimitRanges commonly request.
const CAPACITY: &str = "{cpu: \"64\", memory: 512Gi, pods: \"250\", ephemeral-storage: 2Ti}";

/// The fake nodes, as one manifest for `kubectl apply`: kwok's node stage makes them Ready.
pub fn nodes() -> String {
    (0..NODES)
        .map(|i| {
            format!(
                "---\napiVersion: v1\nkind: Node\nmetadata:\n  name: kwok-node-{i}\n  annotations:\n    {NODE_ANNOTATION}: fake\n  labels:\n    type: kwok\n    kubernetes.io/hostname: kwok-node-{i}\nstatus:\n  allocatable: {CAPACITY}\n  capacity: {CAPACITY}\n"
            )
        })
        .collect()
}
