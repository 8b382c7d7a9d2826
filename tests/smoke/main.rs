//! Smoke tests of the foundation against a real kube-apiserver, etcd and
//! kube-controller-manager (one control plane for this whole binary) and real git servers.

mod api;
mod cel;
mod cluster;
mod git;
mod plugin;
