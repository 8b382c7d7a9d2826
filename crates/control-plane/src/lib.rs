//! A real, local Kubernetes control plane: `etcd`, `kube-apiserver`,
//! `kube-controller-manager`, `kube-scheduler` and kwok's fake nodes, built from their Go modules with the machine's Go toolchain,
//! cached outside the repository, and started on loopback with generated certificates.
//!
//! Used by `cargo xtask control-plane`, `cargo xtask demo` and the test harness
//! (`factory-testkit`). Nothing here is a fake: the API server is the real one.

pub mod binaries;
pub mod certs;
pub mod crds;
mod error;
pub mod kubeconfig;
pub mod kwok;
mod ports;
pub mod process;
mod runner;
pub mod versions;

pub use binaries::Binaries;
pub use error::Error;
pub use runner::{ControlPlane, Lifetime, Options};

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
