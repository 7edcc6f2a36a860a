//! `cdk new`: the rendered files (snapshots), and generated Rust connectors that build and pass
//! the acceptance suite in a workspace of their own.

use std::path::{Path, PathBuf};
use std::process::Command;

const CDK: &str = env!("CARGO_BIN_EXE_cdk");

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn new(dir: &Path, args: &[&str]) {
    let out = Command::new(CDK)
        .arg("new")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cdk new {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file under `dir`, as `--- path` headers and contents.
fn listing(dir: &Path) -> String {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), root, out);
            } else {
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                out.push((rel, std::fs::read_to_string(e.path()).unwrap()));
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|(p, c)| format!("--- {p}\n{c}"))
        .collect()
}

#[test]
fn renders_each_template() {
    let dir = tempfile::tempdir().unwrap();
    new(dir.path(), &["source-open-weather"]);
    new(dir.path(), &["destination-lake-box"]);
    new(dir.path(), &["source-shop-api", "--kind", "declarative"]);
    for name in [
        "source-open-weather",
        "destination-lake-box",
        "source-shop-api",
    ] {
        let text = listing(&dir.path().join(name));
        assert!(
            !text.contains("{{name}}") && !text.contains("{{type_name}}"),
            "{text}"
        );
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn refuses_bad_names_and_existing_folders() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(CDK)
        .args(["new", "Weather"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a connector name"));
    new(dir.path(), &["source-x"]);
    let again = Command::new(CDK)
        .args(["new", "source-x"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

/// The generated Rust connectors compile against this cdk and pass their own tests (the
/// acceptance suites). Built in a separate target dir: the outer cargo holds the main one.
#[test]
fn generated_rust_connectors_pass_their_tests() {
    let root = workspace_root();
    let dir = tempfile::tempdir().unwrap();
    new(dir.path(), &["source-weather"]);
    new(dir.path(), &["destination-box"]);
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let shared = &manifest[manifest.find("[workspace.package]").unwrap()..];
    let shared = &shared[..shared.find("[profile").unwrap_or(shared.len())];
    let cdk_path = root.join("cdk");
    let shared = shared.replace(
        "cdk = { path = \"cdk\" }",
        &format!("cdk = {{ path = \"{}\" }}", cdk_path.display()),
    );
    let workspace = format!(
        "[workspace]\nresolver = \"3\"\nmembers = [\"source-weather\", \"destination-box\"]\n\n{shared}\n[profile.dev]\ndebug = \"line-tables-only\"\n"
    );
    std::fs::write(dir.path().join("Cargo.toml"), workspace).unwrap();
    std::fs::copy(root.join("Cargo.lock"), dir.path().join("Cargo.lock")).unwrap();
    // <target>/debug/deps/it-… → <target>/template-check
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().join("template-check");
    let out = Command::new(env!("CARGO"))
        .args(["test", "--offline", "--quiet"])
        .current_dir(dir.path())
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "generated connectors failed their tests:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
