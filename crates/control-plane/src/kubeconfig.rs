//! Kubeconfig files with embedded certificates.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::certs::CertPair;
use crate::error::{Error, io};

/// The name of the cluster, context and user entries in generated kubeconfigs.
pub const CONTEXT: &str = "factory-local";

/// Renders a kubeconfig for `server`, trusting `ca_pem`, authenticating with `client`.
pub fn render(server: &str, ca_pem: &str, client: &CertPair) -> String {
    let b64 = |s: &str| STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {CONTEXT}\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: {CONTEXT}\n  user:\n    client-certificate-data: {cert}\n    \
         client-key-data: {key}\ncontexts:\n- name: {CONTEXT}\n  context:\n    cluster: {CONTEXT}\n    user: {CONTEXT}\n\
         current-context: {CONTEXT}\n",
        ca = b64(ca_pem),
        cert = b64(&client.cert_pem),
        key = b64(&client.key_pem),
    )
}

/// Writes a kubeconfig (see [`render`]) to `path`, readable by the owner only.
pub fn write(path: &Path, server: &str, ca_pem: &str, client: &CertPair) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file =
        io(std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path), || {
            format!("writing {}", path.display())
        })?;
    io(file.write_all(render(server, ca_pem, client).as_bytes()), || format!("writing {}", path.display()))
}
