//! Writes (or checks) the CRD YAML in `crds/` (and the chart's copy) from the types in `factory-api`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Regenerates every CRD file in each of `dirs`, or with `check` reports which ones are stale.
pub fn run(dirs: &[PathBuf], check: bool) -> Result<()> {
    let mut stale = Vec::new();
    for dir in dirs {
        write_dir(dir, check, &mut stale)?;
    }
    if let Some(root) = dirs.first().and_then(|d| d.parent()) {
        let path = root.join("docs/crd-reference.md");
        let reference = factory_api::crd::reference_markdown();
        if std::fs::read_to_string(&path).unwrap_or_default() != reference {
            if check {
                stale.push(path.display().to_string());
            } else {
                std::fs::write(&path, reference).with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    if !stale.is_empty() {
        bail!("stale CRDs (run `cargo xtask crdgen`): {}", stale.join(", "));
    }
    Ok(())
}

fn write_dir(dir: &Path, check: bool, stale: &mut Vec<String>) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for crd in factory_api::crd::all() {
        let path = dir.join(factory_api::crd::file_name(&crd));
        let yaml = factory_api::crd::to_yaml(&crd)?;
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == yaml {
            continue;
        }
        if check {
            stale.push(path.display().to_string());
        } else {
            std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
