//! Fetching one reference of a remote repository into a local bare repository.

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;

use base64::Engine as _;
use git2::{Cred, ErrorClass, ErrorCode, FetchOptions, RemoteCallbacks, Repository};

use crate::{Reference, SourceError};

/// Credentials for a repository.
#[derive(Clone, Default)]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// HTTP Basic: a user name and a password or token.
    Basic {
        /// User name (many servers accept any with a token).
        username: String,
        /// Password or token.
        password: String,
        /// PEM certificates the server's TLS certificate may chain to, instead of the
        /// system's roots (a private host); the Secret's `ca.crt`.
        ca: Option<String>,
    },
    /// SSH with a private key; the server's host key must be in `known_hosts`.
    Ssh {
        /// User name, usually `git`.
        username: String,
        /// Private key, PEM or OpenSSH format, unencrypted.
        private_key: String,
        /// `known_hosts` lines; plain host names (`host` or `[host]:port`), not hashed ones.
        known_hosts: String,
    },
}

impl std::fmt::Debug for Auth {
    // Never print a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("Auth::None"),
            Auth::Basic { username, .. } => write!(f, "Auth::Basic {{ username: {username:?}, password: <redacted> }}"),
            Auth::Ssh { username, .. } => write!(f, "Auth::Ssh {{ username: {username:?}, private_key: <redacted> }}"),
        }
    }
}

/// What a fetch resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Full commit SHA.
    pub commit: String,
    /// Revision string for status, such as `main@sha1:<sha>`.
    pub revision: String,
}

/// Fetches `reference` of `url` into the bare repository at `cache` (created when missing)
/// and resolves it to a commit. No hooks run and submodules are never fetched.
pub fn fetch(url: &str, reference: &Reference, auth: &Auth, cache: &Path) -> Result<Fetched, SourceError> {
    fetch_into(&open_or_init(cache)?, url, reference, auth)
}

/// The bare repository at `path`, created when missing.
pub(crate) fn open_or_init(path: &Path) -> Result<Repository, SourceError> {
    Repository::open_bare(path)
        .or_else(|_| Repository::init_bare(path))
        .map_err(|source| SourceError::Cache { path: path.display().to_string(), source })
}

/// Remote callbacks that answer a credential request once; libgit2 asks again after a
/// rejected credential, and answering once turns a wrong token into one clear error instead
/// of a loop. The counter tells [`classify`] how often it was asked.
pub(crate) fn callbacks(auth: &Auth) -> (RemoteCallbacks<'_>, Rc<Probe>) {
    let probe = Rc::new(Probe::default());
    let counter = probe.clone();
    let refused = probe.clone();
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(move |_url, username, _allowed| {
        let counter = &counter.attempts;
        counter.set(counter.get() + 1);
        match auth {
            Auth::Basic { username: user, password, .. } if counter.get() == 1 => {
                Cred::userpass_plaintext(username.unwrap_or(user), password)
            }
            Auth::Ssh { username: user, private_key, .. } if counter.get() == 1 => {
                Cred::ssh_key_from_memory(username.unwrap_or(user), None, private_key, None)
            }
            Auth::Basic { .. } | Auth::Ssh { .. } => Err(git2::Error::from_str("credentials were rejected")),
            Auth::None => Err(git2::Error::from_str("the server asks for credentials and none are configured")),
        }
    });
    callbacks.certificate_check(move |cert, host| match (auth, cert.as_hostkey()) {
        (Auth::Ssh { known_hosts, .. }, Some(hostkey)) => {
            let key =
                hostkey.hostkey().map(|k| base64::engine::general_purpose::STANDARD.encode(k)).unwrap_or_default();
            if known_host(known_hosts, host, &key) {
                Ok(git2::CertificateCheckStatus::CertificateOk)
            } else {
                // libgit2 replaces our message with its own; keep ours for the error.
                let why = format!("the host key of {host} is not in known_hosts");
                refused.hostkey_refused.replace(Some(why.clone()));
                Err(git2::Error::from_str(&why))
            }
        }
        (_, Some(_)) => Err(git2::Error::from_str("an SSH server needs SSH credentials with known_hosts")),
        (Auth::Basic { ca: Some(ca), .. }, None) => match cert.as_x509() {
            Some(x509) => match crate::tls::verify(ca, x509.data(), host) {
                Ok(()) => Ok(git2::CertificateCheckStatus::CertificateOk),
                Err(why) => {
                    let why = format!("the TLS certificate of {host} does not chain to ca.crt: {why}");
                    refused.hostkey_refused.replace(Some(why.clone()));
                    Err(git2::Error::from_str(&why))
                }
            },
            None => Ok(git2::CertificateCheckStatus::CertificatePassthrough),
        },
        // TLS: libgit2's own verification against the system's roots.
        _ => Ok(git2::CertificateCheckStatus::CertificatePassthrough),
    });
    (callbacks, probe)
}

/// What the callbacks saw, for telling an authentication failure from any other.
#[derive(Default)]
pub(crate) struct Probe {
    /// How often credentials were asked for.
    pub attempts: Cell<u32>,
    /// Why the server's host key or TLS certificate was refused, if it was.
    pub hostkey_refused: std::cell::RefCell<Option<String>>,
}

/// Whether `known_hosts` lists `key` (base64) for `host` (`host` or `[host]:port` entries).
pub(crate) fn known_host(known_hosts: &str, host: &str, key: &str) -> bool {
    known_hosts.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).any(|line| {
        let mut fields = line.split_whitespace();
        let (Some(hosts), Some(_type), Some(listed)) = (fields.next(), fields.next(), fields.next()) else {
            return false;
        };
        let names_host = hosts.split(',').any(|h| {
            let h = h.strip_prefix('[').and_then(|rest| rest.split_once("]:").map(|(name, _)| name)).unwrap_or(h);
            h.eq_ignore_ascii_case(host)
        });
        names_host && listed == key
    })
}

/// Turns a git2 failure into an authentication, not-found or fetch error.
pub(crate) fn classify(
    url: &str,
    reference: &Reference,
    auth: &Auth,
    probe: &Probe,
    source: git2::Error,
) -> SourceError {
    if let Some(why) = probe.hostkey_refused.borrow().clone() {
        return SourceError::Authentication { url: url.to_string(), message: why };
    }
    let attempts = probe.attempts.get();
    // Asked for credentials with none configured, or asked again after ours: refused.
    let rejected = match auth {
        Auth::None => attempts >= 1,
        Auth::Basic { .. } | Auth::Ssh { .. } => attempts >= 2,
    };
    if rejected
        || source.code() == ErrorCode::Auth
        || (source.class() == ErrorClass::Http && source.message().contains("401"))
    {
        return SourceError::Authentication { url: url.to_string(), message: source.message().to_string() };
    }
    if reference.refspec().is_some() && source.message().contains("couldn't find remote ref") {
        return SourceError::ReferenceNotFound { url: url.to_string(), reference: reference.to_string() };
    }
    SourceError::Fetch { url: url.to_string(), source }
}

/// Fetches `reference` into `repo` and resolves it.
pub(crate) fn fetch_into(
    repo: &Repository,
    url: &str,
    reference: &Reference,
    auth: &Auth,
) -> Result<Fetched, SourceError> {
    let mut remote =
        repo.remote_anonymous(url).map_err(|source| SourceError::Fetch { url: url.to_string(), source })?;
    let (cbs, probe) = callbacks(auth);
    let mut options = FetchOptions::new();
    options.remote_callbacks(cbs);
    options.download_tags(git2::AutotagOption::None);

    let refspecs: Vec<String> = match reference.refspec() {
        Some(spec) => vec![spec],
        // A bare commit cannot be asked for by every server: fetch the branches and tags, and
        // the heads of pull requests (a fork's commits are only there: `refs/pull/<n>/head` on
        // GitHub and Gitea, `refs/merge-requests/<n>/head` on GitLab).
        None => vec![
            "+refs/heads/*:refs/factory/heads/*".into(),
            "+refs/tags/*:refs/factory/tags/*".into(),
            "+refs/pull/*:refs/factory/pull/*".into(),
            "+refs/merge-requests/*:refs/factory/merge-requests/*".into(),
        ],
    };
    if let Err(source) = remote.fetch(&refspecs, Some(&mut options), None) {
        return Err(classify(url, reference, auth, &probe, source));
    }
    let not_found = || SourceError::ReferenceNotFound { url: url.to_string(), reference: reference.to_string() };
    let commit = match (reference, reference.local_ref()) {
        (_, Some(local)) => repo.find_reference(&local).and_then(|r| r.peel_to_commit()).map_err(|_| not_found())?,
        (Reference::Commit(sha), None) => {
            let oid = git2::Oid::from_str(sha).map_err(|_| not_found())?;
            repo.find_commit(oid).map_err(|_| not_found())?
        }
        _ => return Err(not_found()),
    };
    let sha = commit.id().to_string();
    Ok(Fetched { revision: reference.revision(&sha), commit: sha })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_match_host_and_key() {
        let lines = "# comment\n[127.0.0.1]:2222 ssh-ed25519 AAAAkey1\ngit.example.com,10.0.0.1 ssh-rsa AAAAkey2\n";
        assert!(known_host(lines, "127.0.0.1", "AAAAkey1"));
        assert!(known_host(lines, "GIT.example.com", "AAAAkey2"));
        assert!(known_host(lines, "10.0.0.1", "AAAAkey2"));
        assert!(!known_host(lines, "127.0.0.1", "AAAAkey2"), "another key for the host");
        assert!(!known_host(lines, "evil.example.com", "AAAAkey2"), "another host");
    }
}
