//! Builds `kube-apiserver`, `kube-controller-manager`, `kube-scheduler`, `kubectl`, `etcd` and
//! `kwok` (fake nodes and the pod lifecycle) from their Go modules with the machine's Go toolchain, into a cache outside the repository keyed by
//! version, so that a second run costs nothing.
//!
//! Kubernetes' own `go.mod` points its `k8s.io/*` staging modules at `./staging/...` with
//! `v0.0.0` requirements, which do not resolve outside its repository. We write a tiny module
//! that requires `k8s.io/kubernetes` and maps each of those to the matching published
//! `v0.x.y` release with `replace`.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, io};
use crate::versions;

/// Paths of the control-plane binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `kube-apiserver`.
    pub kube_apiserver: PathBuf,
    /// `kube-controller-manager`.
    pub kube_controller_manager: PathBuf,
    /// `kube-scheduler`: places pods on kwok's nodes.
    pub kube_scheduler: PathBuf,
    /// `kwok`: fake nodes, and pods that run, become ready, complete or fail by its stages.
    pub kwok: PathBuf,
    /// `kubectl`.
    pub kubectl: PathBuf,
    /// `etcd`.
    pub etcd: PathBuf,
}

/// Where built binaries and build modules are cached: `$FACTORY_OPERATOR_CACHE`, else
/// `$XDG_CACHE_HOME/factory-operator`, else `~/.cache/factory-operator`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FACTORY_OPERATOR_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir).join(".cache")
    });
    base.join("factory-operator")
}

/// The Kubernetes commands built from `k8s.io/kubernetes`.
const KUBE_COMMANDS: [&str; 4] = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"];

impl Binaries {
    /// The binaries as they would be in the cache, whether built or not.
    pub fn in_cache() -> Self {
        let kube = cache_dir().join(format!("kubernetes-{}", versions::KUBERNETES)).join("bin");
        let etcd = cache_dir().join(format!("etcd-{}", versions::ETCD)).join("bin");
        Self {
            kube_apiserver: kube.join("kube-apiserver"),
            kube_controller_manager: kube.join("kube-controller-manager"),
            kube_scheduler: kube.join("kube-scheduler"),
            kubectl: kube.join("kubectl"),
            etcd: etcd.join("etcd"),
            kwok: kwok_root().join("bin").join("kwok"),
        }
    }

    fn kubernetes(&self) -> [&PathBuf; 4] {
        [&self.kube_apiserver, &self.kube_controller_manager, &self.kube_scheduler, &self.kubectl]
    }

    /// Whether every binary is already in the cache.
    pub fn all_present(&self) -> bool {
        self.kubernetes().into_iter().chain([&self.etcd, &self.kwok]).all(|p| p.is_file())
    }

    /// Returns the cached binaries, building whichever are missing. `progress` receives one
    /// line per step. Concurrent callers (parallel test binaries) wait on a file lock.
    pub fn ensure(progress: &dyn Fn(&str)) -> Result<Self, Error> {
        let bins = Self::in_cache();
        if bins.all_present() {
            return Ok(bins);
        }
        let cache = cache_dir();
        io(fs::create_dir_all(&cache), || format!("creating {}", cache.display()))?;
        let lock_path = cache.join("build.lock");
        let lock = io(File::create(&lock_path), || format!("creating {}", lock_path.display()))?;
        io(lock.lock(), || format!("locking {}", lock_path.display()))?;
        check_go()?;
        if !bins.kubernetes().iter().all(|p| p.is_file()) {
            build_kubernetes(&cache, progress)?;
        }
        if !bins.etcd.is_file() {
            build_etcd(&cache, progress)?;
        }
        if !bins.kwok.is_file() {
            build_plain(&kwok_root(), KWOK_MODULE, versions::KWOK, KWOK_PACKAGE, "kwok", progress)?;
        }
        Ok(bins)
    }
}

/// kwok's module and command.
pub(crate) const KWOK_MODULE: &str = "sigs.k8s.io/kwok";
const KWOK_PACKAGE: &str = "sigs.k8s.io/kwok/cmd/kwok";

/// Where kwok is built, and its module downloaded for its stages.
pub(crate) fn kwok_root() -> PathBuf {
    cache_dir().join(format!("kwok-{}", versions::KWOK))
}

fn go() -> Command {
    let mut cmd = Command::new("go");
    // Never let `go` download another toolchain: the machine's own must do.
    cmd.env("GOTOOLCHAIN", "local").env("GOFLAGS", "-mod=mod").env("CGO_ENABLED", "0");
    cmd
}

fn check_go() -> Result<(), Error> {
    let out = go().arg("version").output().map_err(|e| Error::GoMissing { detail: e.to_string() })?;
    if !out.status.success() {
        return Err(Error::GoMissing { detail: String::from_utf8_lossy(&out.stderr).into_owned() });
    }
    Ok(())
}

fn run_go(dir: &Path, args: &[&str]) -> Result<String, Error> {
    run_go_with(dir, args, false)
}

/// Runs `go args…` in `dir`, with cgo on when `cgo` (a C compiler is then needed).
fn run_go_with(dir: &Path, args: &[&str], cgo: bool) -> Result<String, Error> {
    let mut cmd = go();
    if cgo {
        cmd.env("CGO_ENABLED", "1");
    }
    let out = io(cmd.args(args).current_dir(dir).output(), || format!("running go {}", args.join(" ")))?;
    if !out.status.success() {
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        return Err(Error::GoCommand {
            command: format!("go {}", args.join(" ")),
            status: out.status.to_string(),
            output: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Downloads a module into the Go module cache and returns the JSON fields we need.
pub(crate) fn download_module(dir: &Path, module: &str, version: &str) -> Result<(PathBuf, PathBuf), Error> {
    let json = run_go(dir, &["mod", "download", "-json", &format!("{module}@{version}")])?;
    let value: serde_json::Value = serde_json::from_str(&json).map_err(|e| Error::GoCommand {
        command: format!("go mod download -json {module}@{version}"),
        status: "unparsable output".into(),
        output: e.to_string(),
    })?;
    let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(PathBuf::from);
    match (field("Dir"), field("GoMod")) {
        (Some(d), Some(m)) => Ok((d, m)),
        _ => Err(Error::GoCommand {
            command: format!("go mod download -json {module}@{version}"),
            status: "no Dir/GoMod in output".into(),
            output: json,
        }),
    }
}

/// The `replace` lines mapping every `k8s.io/*` module required at `v0.0.0` in Kubernetes'
/// go.mod to the published staging release.
pub fn staging_replacements(kubernetes_go_mod: &str, staging_version: &str) -> Vec<String> {
    let mut lines: Vec<String> = kubernetes_go_mod
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (module, version) = (parts.next()?, parts.next()?);
            let module = if module == "require" { version } else { module };
            let version = if module == version { parts.next()? } else { version };
            (module.starts_with("k8s.io/") && version == "v0.0.0")
                .then(|| format!("\t{module} => {module} {staging_version}"))
        })
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    io(fs::write(path, text), || format!("writing {}", path.display()))
}

fn build_kubernetes(cache: &Path, progress: &dyn Fn(&str)) -> Result<(), Error> {
    let root = cache.join(format!("kubernetes-{}", versions::KUBERNETES));
    let module_dir = root.join("module");
    io(fs::create_dir_all(&module_dir), || format!("creating {}", module_dir.display()))?;
    progress(&format!("downloading k8s.io/kubernetes {} from the Go module proxy", versions::KUBERNETES));
    write(&module_dir.join("go.mod"), "module factory-operator/control-plane-build\n\ngo 1.26\n")?;
    let (_, go_mod) = download_module(&module_dir, "k8s.io/kubernetes", versions::KUBERNETES)?;
    let upstream = io(fs::read_to_string(&go_mod), || format!("reading {}", go_mod.display()))?;
    let replaces = staging_replacements(&upstream, versions::KUBERNETES_STAGING);
    write(
        &module_dir.join("go.mod"),
        &format!(
            "// Generated by factory-control-plane: builds Kubernetes commands from the published modules.\n\
             module factory-operator/control-plane-build\n\ngo 1.26\n\nrequire k8s.io/kubernetes {}\n\nreplace (\n{}\n)\n",
            versions::KUBERNETES,
            replaces.join("\n")
        ),
    )?;
    let imports: String = KUBE_COMMANDS.iter().map(|c| format!("\t_ \"k8s.io/kubernetes/cmd/{c}\"\n")).collect();
    write(&module_dir.join("tools.go"), &format!("//go:build tools\n\npackage tools\n\nimport (\n{imports})\n"))?;
    progress("resolving dependencies (go mod tidy)");
    run_go(&module_dir, &["mod", "tidy"])?;
    let version = versions::KUBERNETES;
    let minor = version.split('.').nth(1).unwrap_or("0");
    let ldflags = format!(
        "-s -w -X k8s.io/component-base/version.gitVersion={version} -X k8s.io/component-base/version.gitMajor=1 \
         -X k8s.io/component-base/version.gitMinor={minor} -X k8s.io/component-base/version.gitTreeState=clean \
         -X k8s.io/client-go/pkg/version.gitVersion={version} -X k8s.io/client-go/pkg/version.gitMajor=1 \
         -X k8s.io/client-go/pkg/version.gitMinor={minor}"
    );
    let out = root.join("bin.partial");
    let _ = fs::remove_dir_all(&out);
    io(fs::create_dir_all(&out), || format!("creating {}", out.display()))?;
    progress(&format!("building {} {version} (several minutes on a cold Go cache)", KUBE_COMMANDS.join(", ")));
    let out_arg = format!("{}/", out.display());
    let mut args = vec!["build", "-trimpath", "-ldflags", &ldflags, "-o", &out_arg];
    let packages: Vec<String> = KUBE_COMMANDS.iter().map(|c| format!("k8s.io/kubernetes/cmd/{c}")).collect();
    args.extend(packages.iter().map(String::as_str));
    run_go(&module_dir, &args)?;
    let bin = root.join("bin");
    let _ = fs::remove_dir_all(&bin);
    io(fs::rename(&out, &bin), || format!("moving {} to {}", out.display(), bin.display()))
}

fn build_etcd(cache: &Path, progress: &dyn Fn(&str)) -> Result<(), Error> {
    let root = cache.join(format!("etcd-{}", versions::ETCD));
    build_plain(&root, "go.etcd.io/etcd/server/v3", versions::ETCD, "go.etcd.io/etcd/server/v3", "etcd", progress)
}

/// Helm, built from `helm.sh/helm/v3` into the cache on first use (for chart tests, rendering
/// `deploy/` and rendering applications' charts).
pub fn helm(progress: &dyn Fn(&str)) -> Result<PathBuf, Error> {
    tool("helm", "helm.sh/helm/v3", versions::HELM, "helm.sh/helm/v3/cmd/helm", progress)
}

/// kustomize, built from `sigs.k8s.io/kustomize/kustomize/v5` into the cache on first use (for
/// rendering configuration paths that hold a kustomization).
pub fn kustomize(progress: &dyn Fn(&str)) -> Result<PathBuf, Error> {
    let module = "sigs.k8s.io/kustomize/kustomize/v5";
    tool("kustomize", module, versions::KUSTOMIZE, module, progress)
}

/// Gitea, built from `code.gitea.io/gitea` into the cache on first use (with cgo, for SQLite),
/// next to the `options/` folder of its module, which it reads at run time (locales, licences)
/// because the embedded copy needs a generate step the module does not ship.
pub fn gitea(progress: &dyn Fn(&str)) -> Result<PathBuf, Error> {
    const MODULE: &str = "code.gitea.io/gitea";
    let version = versions::GITEA;
    cached("gitea", version, |root| {
        let module_dir = root.join("module");
        io(fs::create_dir_all(&module_dir), || format!("creating {}", module_dir.display()))?;
        write(&module_dir.join("go.mod"), "module factory-operator/gitea-build\n\ngo 1.26\n")?;
        progress(&format!("downloading {MODULE} {version} from the Go module proxy"));
        let (source, go_mod) = download_module(&module_dir, MODULE, version)?;
        let upstream = io(fs::read_to_string(&go_mod), || format!("reading {}", go_mod.display()))?;
        let recipe = Recipe {
            binary: "gitea",
            module: MODULE,
            version,
            package: MODULE,
            // Gitea's go.mod pins forks with `replace`; a module requiring it must repeat them.
            replaces: module_replacements(&upstream),
            cgo_tags: Some("sqlite sqlite_unlock_notify"),
            ldflags: format!("-s -w -X main.Version={}", version.trim_start_matches('v')),
        };
        let out = build_command(root, &recipe, progress)?;
        copy_tree(&source.join("options"), &out.join("options"))?;
        publish(root, &out)
    })
}

/// The `replace` directives of a go.mod that point at other modules (not local paths).
pub fn module_replacements(go_mod: &str) -> Vec<String> {
    go_mod
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("replace ") && l.contains("=>"))
        .filter(|l| l.split("=>").nth(1).is_some_and(|to| !to.trim().starts_with('.') && !to.trim().starts_with('/')))
        .map(str::to_string)
        .collect()
}

/// Copies a directory tree (the module cache's files are read-only; the copies are not).
fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    io(fs::create_dir_all(to), || format!("creating {}", to.display()))?;
    for entry in io(fs::read_dir(from), || format!("reading {}", from.display()))? {
        let entry = io(entry, || format!("reading {}", from.display()))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if source.is_dir() {
            copy_tree(&source, &target)?;
        } else {
            io(fs::copy(&source, &target), || format!("copying {}", source.display()))?;
            use std::os::unix::fs::PermissionsExt;
            io(fs::set_permissions(&target, fs::Permissions::from_mode(0o644)), || {
                format!("writing {}", target.display())
            })?;
        }
    }
    Ok(())
}

/// A command built from `module@version` into `<cache>/<binary>-<version>/bin`, once.
fn tool(binary: &str, module: &str, version: &str, package: &str, progress: &dyn Fn(&str)) -> Result<PathBuf, Error> {
    cached(binary, version, |root| build_plain(root, module, version, package, binary, progress))
}

/// Builds `package` of `module@version` (no cgo, no replacements) into `<root>/bin/<binary>`.
fn build_plain(
    root: &Path,
    module: &str,
    version: &str,
    package: &str,
    binary: &str,
    progress: &dyn Fn(&str),
) -> Result<(), Error> {
    let recipe =
        Recipe { binary, module, version, package, replaces: Vec::new(), cgo_tags: None, ldflags: "-s -w".into() };
    let out = build_command(root, &recipe, progress)?;
    publish(root, &out)
}

/// `<cache>/<binary>-<version>/bin/<binary>`, made by `build` (given that directory's root)
/// the first time, under a file lock so that concurrent builders build it once.
fn cached(binary: &str, version: &str, build: impl FnOnce(&Path) -> Result<(), Error>) -> Result<PathBuf, Error> {
    let root = cache_dir().join(format!("{binary}-{version}"));
    let bin = root.join("bin").join(binary);
    if bin.is_file() {
        return Ok(bin);
    }
    io(fs::create_dir_all(&root), || format!("creating {}", root.display()))?;
    let lock_path = root.join("build.lock");
    let lock = io(File::create(&lock_path), || format!("creating {}", lock_path.display()))?;
    io(lock.lock(), || format!("locking {}", lock_path.display()))?;
    if !bin.is_file() {
        check_go()?;
        build(&root)?;
    }
    Ok(bin)
}

/// How one command is built from its Go module.
struct Recipe<'a> {
    binary: &'a str,
    module: &'a str,
    version: &'a str,
    package: &'a str,
    /// `replace` lines the generated module repeats.
    replaces: Vec<String>,
    /// Build tags needing cgo, if any.
    cgo_tags: Option<&'a str>,
    ldflags: String,
}

/// Builds the recipe's package through a generated module in `<root>/module` into
/// `<root>/bin.partial/<binary>`; returns that directory ([`publish`] makes it `bin`).
fn build_command(root: &Path, recipe: &Recipe<'_>, progress: &dyn Fn(&str)) -> Result<PathBuf, Error> {
    let Recipe { binary, module, version, package, .. } = recipe;
    let module_dir = root.join("module");
    io(fs::create_dir_all(&module_dir), || format!("creating {}", module_dir.display()))?;
    write(
        &module_dir.join("go.mod"),
        &format!(
            "// Generated by factory-control-plane.\nmodule factory-operator/{binary}-build\n\ngo 1.26\n\nrequire {module} {version}\n\n{}\n",
            recipe.replaces.join("\n")
        ),
    )?;
    write(&module_dir.join("tools.go"), &format!("//go:build tools\n\npackage tools\n\nimport _ \"{package}\"\n"))?;
    progress(&format!("resolving {binary} {version} dependencies"));
    run_go(&module_dir, &["mod", "tidy"])?;
    let out = root.join("bin.partial");
    let _ = fs::remove_dir_all(&out);
    io(fs::create_dir_all(&out), || format!("creating {}", out.display()))?;
    progress(&format!("building {binary} {version}"));
    let target = format!("{}", out.join(binary).display());
    let mut args = vec!["build", "-trimpath"];
    if let Some(tags) = recipe.cgo_tags {
        args.extend(["-tags", tags]);
    }
    args.extend(["-ldflags", &recipe.ldflags, "-o", &target, package]);
    run_go_with(&module_dir, &args, recipe.cgo_tags.is_some())?;
    Ok(out)
}

/// Makes a finished build directory the cache's `bin`: it appears only once complete.
fn publish(root: &Path, out: &Path) -> Result<(), Error> {
    let bin = root.join("bin");
    let _ = fs::remove_dir_all(&bin);
    io(fs::rename(out, &bin), || format!("moving {} to {}", out.display(), bin.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacements_of_other_modules_are_kept_and_local_ones_dropped() {
        let go_mod = "module code.gitea.io/gitea\n\nreplace github.com/a/b => github.com/c/b v1.2.3\n\
                      replace github.com/d/e => ./local/e\nrequire x v1\n";
        assert_eq!(module_replacements(go_mod), vec!["replace github.com/a/b => github.com/c/b v1.2.3"]);
    }

    #[test]
    fn staging_modules_at_v0_0_0_are_replaced_and_others_left_alone() {
        let go_mod = "module k8s.io/kubernetes\n\nrequire (\n\tk8s.io/api v0.0.0\n\tk8s.io/klog/v2 v2.130.1\n\
                      \tgithub.com/x/y v0.0.0\n\tk8s.io/client-go v0.0.0 // indirect\n)\nrequire k8s.io/kubelet v0.0.0\n\
                      replace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n)\n";
        assert_eq!(
            staging_replacements(go_mod, "v0.37.2"),
            vec![
                "\tk8s.io/api => k8s.io/api v0.37.2",
                "\tk8s.io/client-go => k8s.io/client-go v0.37.2",
                "\tk8s.io/kubelet => k8s.io/kubelet v0.37.2",
            ]
        );
    }
}
