//! Git fixtures are served over real transports on loopback and fetched with the operator's
//! own git code; a wrong token is refused.

use factory_source::{Auth, Reference, SourceError, fetch};
use factory_testkit::git::{GitDaemon, GitHttpServer, GitRoot};

fn cache() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[tokio::test]
async fn fixtures_are_fetched_over_git_daemon_and_smart_http() {
    let root = GitRoot::new().expect("git root");
    let repo = root.repo("platform", &[("cluster/roles.yaml", "kind: ClusterRole\n")]).expect("repo");
    let first = repo.head().expect("head");
    repo.tag("v1").expect("tag");
    repo.branch("feature/x").expect("branch");
    repo.write("cluster/more.yaml", "kind: ConfigMap\n").expect("write");
    let feature = repo.commit("on a branch").expect("commit");

    let daemon = GitDaemon::start(root.path()).expect("git daemon");
    let http = GitHttpServer::start(root.path().to_path_buf(), None).await.expect("http server");
    for url in [daemon.url("platform"), http.url("platform")] {
        let dir = cache();
        let url2 = url.clone();
        let path = dir.path().to_path_buf();
        let pinned = first.clone();
        let (main, tag, branch, commit, unknown) = tokio::task::spawn_blocking(move || {
            (
                fetch(&url2, &Reference::Branch("main".into()), &Auth::None, &path),
                fetch(&url2, &Reference::Tag("v1".into()), &Auth::None, &path),
                fetch(&url2, &Reference::Branch("feature/x".into()), &Auth::None, &path),
                fetch(&url2, &Reference::Commit(pinned), &Auth::None, &path),
                fetch(&url2, &Reference::Commit("0".repeat(40)), &Auth::None, &path),
            )
        })
        .await
        .expect("join");
        let main = main.unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(main.commit, first, "{url}");
        assert_eq!(main.revision, format!("main@sha1:{first}"));
        assert_eq!(tag.expect("tag").commit, first, "{url}: the tag is peeled to its commit");
        assert_eq!(branch.expect("branch").commit, feature, "{url}");
        let commit = commit.unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!((commit.commit.as_str(), commit.revision.clone()), (first.as_str(), format!("sha1:{first}")));
        assert!(matches!(unknown, Err(SourceError::ReferenceNotFound { .. })), "{url}: {unknown:?}");
    }
    assert!(http.requests() > 0, "the HTTP fetches went through the test server");

    // A branch deleted on the server is reported as not found.
    repo.delete_branch("feature/x").expect("delete branch");
    let url = daemon.url("platform");
    let dir = cache();
    let gone = tokio::task::spawn_blocking(move || {
        fetch(&url, &Reference::Branch("feature/x".into()), &Auth::None, dir.path())
    })
    .await
    .expect("join");
    assert!(matches!(gone, Err(SourceError::ReferenceNotFound { .. })), "{gone:?}");
}

#[tokio::test]
async fn smart_http_requires_the_token_and_refuses_a_wrong_one() {
    let root = GitRoot::new().expect("git root");
    let repo = root.repo("private", &[("a.yaml", "a: 1\n")]).expect("repo");
    let http = GitHttpServer::start(root.path().to_path_buf(), Some("s3cret".into())).await.expect("server");
    let url = http.url("private");
    let attempt = |auth: Auth| {
        let url = url.clone();
        let dir = cache();
        tokio::task::spawn_blocking(move || fetch(&url, &Reference::Branch("main".into()), &auth, dir.path()))
    };
    let basic = |password: &str| Auth::Basic { username: "git".into(), password: password.into(), ca: None };

    let ok = attempt(basic("s3cret")).await.expect("join").expect("the right token is accepted");
    assert_eq!(ok.commit, repo.head().expect("head"));

    let wrong = attempt(basic("wrong")).await.expect("join");
    let err = wrong.expect_err("a wrong token is refused");
    assert!(matches!(err, SourceError::Authentication { .. }), "{err:?}");
    assert_eq!(err.reason().as_str(), "AuthenticationFailed");
    assert!(!format!("{err} {err:?}").contains("wrong"), "errors never print the secret: {err}");

    let none = attempt(Auth::None).await.expect("join");
    assert!(matches!(none, Err(SourceError::Authentication { .. })), "{none:?}");

    // A force-push moves the branch back, and the next fetch follows it.
    let first = repo.head().expect("head");
    repo.write("b.yaml", "b: 2\n").expect("write");
    let second = repo.commit("second").expect("commit");
    let dir = cache();
    let path = dir.path().to_path_buf();
    let (u1, u2) = (url.clone(), url.clone());
    let before = tokio::task::spawn_blocking({
        let path = path.clone();
        move || fetch(&u1, &Reference::Branch("main".into()), &basic_owned(), &path)
    })
    .await
    .expect("join")
    .expect("fetch");
    assert_eq!(before.commit, second);
    repo.force_push("main", &first).expect("force push");
    let after =
        tokio::task::spawn_blocking(move || fetch(&u2, &Reference::Branch("main".into()), &basic_owned(), &path))
            .await
            .expect("join")
            .expect("fetch after force-push");
    assert_eq!(after.commit, first);

    // An outage is a fetch failure, not an authentication failure.
    http.set_unavailable(true);
    let down = attempt(basic("s3cret")).await.expect("join");
    assert!(matches!(down, Err(SourceError::Fetch { .. })), "{down:?}");
}

fn basic_owned() -> Auth {
    Auth::Basic { username: "git".into(), password: "s3cret".into(), ca: None }
}

#[tokio::test]
async fn ssh_needs_the_right_key_and_a_known_host() {
    let root = GitRoot::new().expect("git root");
    let repo = root.repo("platform", &[("a.yaml", "a: 1\n")]).expect("repo");
    let sshd = factory_testkit::git::GitSshServer::start(root.path()).expect("sshd");
    let url = sshd.url("platform");
    let attempt = |private_key: String, known_hosts: String| {
        let url = url.clone();
        let dir = cache();
        let auth = Auth::Ssh { username: String::new(), private_key, known_hosts };
        tokio::task::spawn_blocking(move || fetch(&url, &Reference::Branch("main".into()), &auth, dir.path()))
    };

    let ok = attempt(sshd.client_key.clone(), sshd.known_hosts.clone())
        .await
        .expect("join")
        .expect("key and known host accepted");
    assert_eq!(ok.commit, repo.head().expect("head"));

    let stranger = attempt(sshd.stranger_key.clone(), sshd.known_hosts.clone()).await.expect("join");
    assert!(matches!(stranger, Err(SourceError::Authentication { .. })), "an unknown key is refused: {stranger:?}");

    let other_host = sshd.known_hosts.replace("[127.0.0.1]", "[10.9.9.9]");
    let unknown = attempt(sshd.client_key.clone(), other_host).await.expect("join");
    let err = unknown.expect_err("a host missing from known_hosts is refused");
    assert!(err.to_string().contains("known_hosts"), "{err}");
    assert!(!format!("{err:?}").contains("PRIVATE KEY"), "errors never print the key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_repository_content_is_contained() {
    use factory_source::{Limits, RepoCache, read_paths};
    let root = GitRoot::new().expect("git root");
    let repo = root.repo("hostile", &[("cluster/ok.yaml", "a: 1\n"), ("shared/real.yaml", "b: 2\n")]).expect("repo");
    let daemon = GitDaemon::start(root.path()).expect("daemon");
    let url = daemon.url("hostile");
    let cache_dir = cache();
    let cache = RepoCache::new(cache_dir.path());
    let read = |cache: &RepoCache| {
        let synced = cache.sync(&url, &Reference::Branch("main".into()), &Auth::None, "").expect("sync");
        let git = cache.open(&url, "").expect("open");
        read_paths(&git, &synced.commit, &["cluster/"], Limits { max_file_bytes: 1024 * 1024, ..Limits::default() })
    };

    // A symlink out of the repository is refused, naming the file.
    std::os::unix::fs::symlink("../../../../etc/passwd", repo.work_tree().join("cluster/escape.yaml"))
        .expect("symlink");
    repo.commit("escape").expect("commit");
    let err = tokio::task::block_in_place(|| read(&cache)).expect_err("refused");
    assert!(
        err.to_string().contains("cluster/escape.yaml") && err.to_string().contains("leaves the repository"),
        "{err}"
    );
    assert_eq!(err.reason().as_str(), "ContentRejected");

    // A file over the size limit is refused before it is read.
    repo.remove("cluster/escape.yaml").expect("rm");
    repo.write("cluster/big.yaml", &"x: 1\n".repeat(300_000)).expect("big");
    repo.commit("big").expect("commit");
    let err = tokio::task::block_in_place(|| read(&cache)).expect_err("refused");
    assert!(err.to_string().contains("cluster/big.yaml") && err.to_string().contains("larger than the limit"), "{err}");

    // A symlink that stays inside is followed; a submodule is never fetched or read.
    repo.remove("cluster/big.yaml").expect("rm");
    std::os::unix::fs::symlink("../shared/real.yaml", repo.work_tree().join("cluster/inside.yaml")).expect("symlink");
    repo.git(&["update-index", "--add", "--cacheinfo", &format!("160000,{},cluster/sub", "1".repeat(40))])
        .expect("gitlink");
    repo.commit("inside link and a submodule").expect("commit");
    let files = tokio::task::block_in_place(|| read(&cache)).expect("read");
    let names: Vec<(&str, &[u8])> = files.iter().map(|f| (f.path.as_str(), f.content.as_slice())).collect();
    assert_eq!(names, [("cluster/inside.yaml", b"b: 2\n".as_slice()), ("cluster/ok.yaml", b"a: 1\n".as_slice())]);
}

#[test]
fn a_stopped_git_daemon_leaves_no_process_behind() {
    let root = GitRoot::new().expect("git root");
    root.repo("r", &[("a.yaml", "kind: ConfigMap\n")]).expect("repo");
    let daemon = GitDaemon::start(root.path()).expect("git daemon");
    let (group, port) = (daemon.process_group(), daemon.port);
    // The daemon serves (git-daemon, a child of the `git` started) before it is stopped…
    assert!(factory_testkit::git::group_alive(group));
    assert!(std::net::TcpStream::connect(("127.0.0.1", daemon.port)).is_ok());
    drop(daemon);
    // …and nothing of its process group outlives it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while factory_testkit::git::group_alive(group) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!factory_testkit::git::group_alive(group), "process group {group} still has a process");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "something still serves port {port}");
}
