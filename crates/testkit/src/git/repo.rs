//! Repositories made by tests with the real `git` command: a bare repository that servers
//! publish, and a work tree that commits and pushes to it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// A directory of bare repositories (`<name>.git`), the root that servers publish.
pub struct GitRoot {
    dir: tempfile::TempDir,
}

impl GitRoot {
    /// A new, empty root in a temporary directory, removed on drop.
    pub fn new() -> Result<Self> {
        Ok(Self { dir: tempfile::Builder::new().prefix("factory-git-").tempdir()? })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Creates repository `name` whose first commit on `main` holds `files` (path, content).
    pub fn repo(&self, name: &str, files: &[(&str, &str)]) -> Result<Repo> {
        let repo = Repo::init(self.path(), name)?;
        for (path, content) in files {
            repo.write(path, content)?;
        }
        repo.commit("initial content")?;
        Ok(repo)
    }

    /// Creates repository `name` from a directory tree (for example one under `examples/`).
    pub fn repo_from_dir(&self, name: &str, source: &Path) -> Result<Repo> {
        let repo = Repo::init(self.path(), name)?;
        copy_tree(source, &repo.work)?;
        repo.commit(&format!("import {}", source.display()))?;
        Ok(repo)
    }
}

/// One repository: a bare repository under a [`GitRoot`] and a work tree that pushes to it.
pub struct Repo {
    /// Repository name; servers publish it as `<name>.git`.
    pub name: String,
    /// The bare repository.
    pub bare: PathBuf,
    work: PathBuf,
}

impl Repo {
    fn init(root: &Path, name: &str) -> Result<Self> {
        let bare = root.join(format!("{name}.git"));
        let work = root.join("work").join(name);
        std::fs::create_dir_all(&work)?;
        git(root, &["init", "--quiet", "--bare", "--initial-branch=main", &bare.display().to_string()])?;
        git(&work, &["init", "--quiet", "--initial-branch=main"])?;
        git(&work, &["remote", "add", "origin", &bare.display().to_string()])?;
        Ok(Self { name: name.to_string(), bare, work })
    }

    /// The work tree.
    pub fn work_tree(&self) -> &Path {
        &self.work
    }

    /// Writes a file in the work tree (not committed yet).
    pub fn write(&self, path: &str, content: &str) -> Result<()> {
        let full = self.work.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&full, content).with_context(|| format!("writing {}", full.display()))
    }

    /// Removes a file or directory from the work tree (not committed yet).
    pub fn remove(&self, path: &str) -> Result<()> {
        let full = self.work.join(path);
        if full.is_dir() {
            std::fs::remove_dir_all(&full)?
        } else {
            std::fs::remove_file(&full)?
        }
        Ok(())
    }

    /// Runs any `git` command in the work tree (for content no helper makes: symlinks,
    /// submodule entries); returns its output.
    pub fn git(&self, args: &[&str]) -> Result<String> {
        git(&self.work, args)
    }

    /// Commits everything in the work tree and pushes the current branch; returns the commit SHA.
    pub fn commit(&self, message: &str) -> Result<String> {
        git(&self.work, &["add", "--all"])?;
        git(&self.work, &["commit", "--quiet", "--allow-empty", "-m", message])?;
        git(&self.work, &["push", "--quiet", "origin", "HEAD"])?;
        self.head()
    }

    /// Commits `count` files `<dir>/f<i>.yaml`, all with `content`, without writing them to the
    /// work tree (a tree object built with `git mktree`, for hostile-size repositories), and
    /// pushes. A later [`Repo::commit`] removes them again, since the work tree lacks them.
    pub fn commit_many(&self, dir: &str, count: usize, content: &str) -> Result<String> {
        let blob = git_stdin(&self.work, &["hash-object", "-w", "--stdin"], content)?.trim().to_string();
        let listing: String = (0..count).map(|i| format!("100644 blob {blob}\tf{i:06}.yaml\n")).collect();
        let tree = git_stdin(&self.work, &["mktree"], &listing)?.trim().to_string();
        git(&self.work, &["read-tree", &format!("--prefix={}/", dir.trim_end_matches('/')), &tree])?;
        git(&self.work, &["commit", "--quiet", "-m", &format!("{count} files under {dir}")])?;
        git(&self.work, &["push", "--quiet", "origin", "HEAD"])?;
        self.head()
    }

    /// Makes `url` (a git host over HTTPS, credentials in the URL, its CA in `ca_file`) the
    /// remote every later push goes to, and pushes the current branch there.
    pub fn publish_to(&self, url: &str, ca_file: &Path) -> Result<()> {
        git(&self.work, &["remote", "set-url", "origin", url])?;
        git(&self.work, &["config", "http.sslCAInfo", &ca_file.display().to_string()])?;
        git(&self.work, &["push", "--quiet", "origin", "HEAD"]).map(|_| ())
    }

    /// Pushes branch `branch` of the work tree (after commits made on it).
    pub fn push(&self, branch: &str) -> Result<()> {
        git(&self.work, &["push", "--quiet", "origin", branch]).map(|_| ())
    }

    /// The SHA of the work tree's HEAD.
    pub fn head(&self) -> Result<String> {
        Ok(git(&self.work, &["rev-parse", "HEAD"])?.trim().to_string())
    }

    /// Creates branch `name` at HEAD, switches to it and pushes it.
    pub fn branch(&self, name: &str) -> Result<()> {
        git(&self.work, &["checkout", "--quiet", "-b", name])?;
        git(&self.work, &["push", "--quiet", "origin", name])?;
        Ok(())
    }

    /// Switches the work tree to an existing branch.
    pub fn checkout(&self, name: &str) -> Result<()> {
        git(&self.work, &["checkout", "--quiet", name]).map(|_| ())
    }

    /// Tags HEAD with an annotated tag and pushes it.
    pub fn tag(&self, name: &str) -> Result<()> {
        git(&self.work, &["tag", "-a", "-m", name, name])?;
        git(&self.work, &["push", "--quiet", "origin", name]).map(|_| ())
    }

    /// Deletes branch `name` on the server.
    pub fn delete_branch(&self, name: &str) -> Result<()> {
        git(&self.work, &["push", "--quiet", "origin", "--delete", name]).map(|_| ())
    }

    /// Moves branch `branch` on the server to `commit`, rewriting history (a force-push), and
    /// resets the work tree to it.
    pub fn force_push(&self, branch: &str, commit: &str) -> Result<()> {
        git(&self.work, &["checkout", "--quiet", branch])?;
        git(&self.work, &["reset", "--quiet", "--hard", commit])?;
        git(&self.work, &["push", "--quiet", "--force", "origin", &format!("{commit}:refs/heads/{branch}")]).map(|_| ())
    }
}

/// Runs `git` in `dir` with a fixed identity and no user or system configuration.
fn git(dir: &Path, args: &[&str]) -> Result<String> {
    run_git(dir, args, None)
}

/// Like [`git`], feeding `input` on stdin.
fn git_stdin(dir: &Path, args: &[&str], input: &str) -> Result<String> {
    run_git(dir, args, Some(input))
}

fn run_git(dir: &Path, args: &[&str], input: Option<&str>) -> Result<String> {
    use std::io::Write;
    let mut child = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        // The repository's own `http.sslCAInfo` (a test git host's CA) must win.
        .env_remove("GIT_SSL_CAINFO")
        .env_remove("GIT_SSL_CAPATH")
        .env("GIT_AUTHOR_NAME", "Factory Tests")
        .env("GIT_AUTHOR_EMAIL", "tests@factories.invalid")
        .env("GIT_COMMITTER_NAME", "Factory Tests")
        .env("GIT_COMMITTER_EMAIL", "tests@factories.invalid")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running git: is git installed? (apt-get install git)")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.unwrap_or_default().as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("git {} failed in {}: {}", args.join(" "), dir.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
