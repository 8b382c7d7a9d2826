//! Checking a git server's TLS certificate against the CA a credentials Secret names
//! (`ca.crt`), for hosts whose certificates no public root signs.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// Whether the leaf certificate `leaf_der` chains to one of the PEM certificates in `ca_pem`
/// and names `host`. The error says why not.
pub(crate) fn verify(ca_pem: &str, leaf_der: &[u8], host: &str) -> Result<(), String> {
    let cas: Vec<CertificateDer<'_>> = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("ca.crt is not PEM: {e}"))?;
    if cas.is_empty() {
        return Err("ca.crt holds no certificate".into());
    }
    let anchors = cas
        .iter()
        .map(|ca| webpki::anchor_from_trusted_cert(ca).map(|a| a.to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("ca.crt: {e}"))?;
    let leaf = CertificateDer::from(leaf_der);
    let cert = webpki::EndEntityCert::try_from(&leaf).map_err(|e| format!("the server's certificate: {e}"))?;
    cert.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &[],
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map_err(|e| format!("{e:?}"))?;
    let name = ServerName::try_from(host).map_err(|e| format!("{host}: {e}"))?;
    cert.verify_is_valid_for_subject_name(&name).map_err(|e| format!("{e:?}"))
}
