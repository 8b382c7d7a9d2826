//! Certificates for a local control plane: a CA, the API server's serving certificate,
//! client certificates (admin, controller-manager, any test user) and the service-account
//! signing key pair.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::error::{Error, io};

/// A PEM certificate with its PEM private key.
#[derive(Debug, Clone)]
pub struct CertPair {
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Private key, PEM (PKCS#8).
    pub key_pem: String,
}

impl CertPair {
    /// Writes `<stem>.crt` and `<stem>.key` into `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(), Error> {
        for (ext, body) in [("crt", &self.cert_pem), ("key", &self.key_pem)] {
            let path = dir.join(format!("{stem}.{ext}"));
            io(std::fs::write(&path, body), || format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

/// The certificate authority of one control plane. It signs the serving certificate and
/// every client certificate, and the API server trusts client certificates it signed.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate and key.
    pub pair: CertPair,
}

impl Authority {
    /// A new self-signed CA.
    pub fn generate() -> Result<Self, Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = name("factory-operator local control plane CA", &[]);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key)?;
        let pair = CertPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() };
        Ok(Self { issuer: Issuer::new(params, key), pair })
    }

    /// Loads a CA written earlier by [`CertPair::write`].
    pub fn load(dir: &Path, stem: &str) -> Result<Self, Error> {
        let read = |ext: &str| {
            let path = dir.join(format!("{stem}.{ext}"));
            io(std::fs::read_to_string(&path), || format!("reading {}", path.display()))
        };
        let (cert_pem, key_pem) = (read("crt")?, read("key")?);
        let key = KeyPair::from_pem(&key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
        Ok(Self { issuer, pair: CertPair { cert_pem, key_pem } })
    }

    /// A serving certificate for the given DNS names and IP addresses.
    pub fn serving(&self, dns: &[&str], ips: &[std::net::IpAddr]) -> Result<CertPair, Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        params.subject_alt_names.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.distinguished_name = name("kube-apiserver", &[]);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// A client certificate: the API server authenticates it as user `user` (CN) in `groups` (O).
    pub fn client(&self, user: &str, groups: &[&str]) -> Result<CertPair, Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(user, groups);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

fn name(common_name: &str, organizations: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    for org in organizations {
        dn.push(DnType::OrganizationName, *org);
    }
    dn
}

/// A key pair for signing service-account tokens: (private PEM, public PEM).
pub fn service_account_keys() -> Result<(String, String), Error> {
    let key = KeyPair::generate()?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}
