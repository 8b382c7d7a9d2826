//! The pinned versions of every external component the control plane is built from.

/// `k8s.io/kubernetes` module version: kube-apiserver, kube-controller-manager, kube-scheduler and kubectl.
pub const KUBERNETES: &str = "v1.37.2";
/// Version of the `k8s.io/*` staging modules that `KUBERNETES` lists as `v0.0.0`.
pub const KUBERNETES_STAGING: &str = "v0.37.2";
/// `go.etcd.io/etcd/server/v3` version; the one Kubernetes v1.37 is tested with (hack/lib/etcd.sh).
pub const ETCD: &str = "v3.7.0";
/// `sigs.k8s.io/kwok` version: fake nodes and the pod lifecycle (its `kustomize/stage` stages).
pub const KWOK: &str = "v0.8.0";
/// `github.com/tektoncd/pipeline` module version whose `config/300-crds` are installed.
pub const TEKTON_PIPELINE: &str = "v1.10.0";
/// `github.com/tektoncd/triggers` module version whose `config/300-*.yaml` CRDs are installed.
pub const TEKTON_TRIGGERS: &str = "v0.34.0";
/// `helm.sh/helm/v3` version used to lint and render the chart.
pub const HELM: &str = "v3.22.0";
/// `sigs.k8s.io/kustomize/kustomize/v5` version that renders kustomizations (v5.8.2 and later
/// need a newer Go than the one this project builds with).
pub const KUSTOMIZE: &str = "v5.8.1";
/// `code.gitea.io/gitea` version: the git host (repositories over HTTPS, pull requests, commit
/// statuses, webhooks) of the pull-request tests and the demo.
pub const GITEA: &str = "v1.26.0";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_ships_the_tools_the_tests_build() {
        let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Dockerfile"))
            .expect("the Dockerfile at the workspace root");
        assert!(dockerfile.contains(&format!("ARG KUSTOMIZE_VERSION={KUSTOMIZE}\n")), "kustomize {KUSTOMIZE}");
        assert!(dockerfile.contains(&format!("ARG HELM_VERSION={HELM}\n")), "helm {HELM}");
    }
}
