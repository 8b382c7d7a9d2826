//! `crds/` and the chart's copy must be exactly what the Rust types generate.

use std::path::PathBuf;

#[test]
fn checked_in_crds_match_the_rust_types() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    check(&root.join("crds"));
    check(&root.join("charts/factory-operator/crds"));
    let reference = std::fs::read_to_string(root.join("docs/crd-reference.md")).unwrap_or_default();
    assert!(
        reference == factory_api::crd::reference_markdown(),
        "docs/crd-reference.md is stale: run `cargo xtask crdgen` and commit the result"
    );
}

fn check(dir: &std::path::Path) {
    let mut expected_files = Vec::new();
    for crd in factory_api::crd::all() {
        let name = factory_api::crd::file_name(&crd);
        let path = dir.join(&name);
        let generated = factory_api::crd::to_yaml(&crd).expect("CRD serialises");
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            generated == checked_in,
            "{}/{name} is stale or missing: run `cargo xtask crdgen` and commit the result",
            dir.display()
        );
        expected_files.push(name);
    }
    let mut present: Vec<String> = std::fs::read_dir(dir)
        .expect("the CRD directory exists")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    present.sort();
    expected_files.sort();
    assert_eq!(present, expected_files, "{} holds files the types no longer generate", dir.display());
}
