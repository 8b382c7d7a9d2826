//! Fetching one reference of a remote repository into a local bare repository.

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;

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
    },
}

impl std::fmt::Debug for Auth {
    // Never print a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("Auth::None"),
            Auth::Basic { username, .. } => write!(f, "Auth::Basic {{ username: {username:?}, password: <redacted> }}"),
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
    let cache_err = |source| SourceError::Cache { path: cache.display().to_string(), source };
    let repo = match Repository::open_bare(cache) {
        Ok(repo) => repo,
        Err(_) => Repository::init_bare(cache).map_err(cache_err)?,
    };
    fetch_into(&repo, url, reference, auth)
}

/// Remote callbacks that answer a credential request once; libgit2 asks again after a
/// rejected credential, and answering once turns a wrong token into one clear error instead
/// of a loop. The counter tells [`classify`] how often it was asked.
pub(crate) fn callbacks(auth: &Auth) -> (RemoteCallbacks<'_>, Rc<Cell<u32>>) {
    let attempts = Rc::new(Cell::new(0u32));
    let counter = attempts.clone();
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(move |_url, username, _allowed| {
        counter.set(counter.get() + 1);
        match auth {
            Auth::Basic { username: user, password } if counter.get() == 1 => {
                Cred::userpass_plaintext(username.unwrap_or(user), password)
            }
            Auth::Basic { .. } => Err(git2::Error::from_str("credentials were rejected")),
            Auth::None => Err(git2::Error::from_str("the server asks for credentials and none are configured")),
        }
    });
    (callbacks, attempts)
}

/// Turns a git2 failure into an authentication, not-found or fetch error.
pub(crate) fn classify(
    url: &str,
    reference: &Reference,
    auth: &Auth,
    attempts: u32,
    source: git2::Error,
) -> SourceError {
    // Asked for credentials with none configured, or asked again after ours: refused.
    let rejected = match auth {
        Auth::None => attempts >= 1,
        Auth::Basic { .. } => attempts >= 2,
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
    let (cbs, attempts) = callbacks(auth);
    let mut options = FetchOptions::new();
    options.remote_callbacks(cbs);
    options.download_tags(git2::AutotagOption::None);

    let refspecs: Vec<String> = match reference.refspec() {
        Some(spec) => vec![spec],
        // A bare commit cannot be asked for by every server: fetch the branches and tags.
        None => vec!["+refs/heads/*:refs/factory/heads/*".into(), "+refs/tags/*:refs/factory/tags/*".into()],
    };
    if let Err(source) = remote.fetch(&refspecs, Some(&mut options), None) {
        return Err(classify(url, reference, auth, attempts.get(), source));
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
