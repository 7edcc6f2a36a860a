//! `cdk new`: the rendered files (snapshots), members of a cdk workspace, and standalone
//! connectors generated outside any workspace that build and pass their acceptance suites.

use std::path::{Path, PathBuf};
use std::process::Command;

const CDK: &str = env!("CARGO_BIN_EXE_cdk");

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `cdk new ARGS` in `dir`, however it ends.
fn try_new(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(CDK)
        .arg("new")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn new(dir: &Path, args: &[&str]) -> String {
    let out = try_new(dir, args);
    assert!(
        out.status.success(),
        "cdk new {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
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
    let cdk = workspace_root().join("cdk").canonicalize().unwrap();
    files
        .into_iter()
        // The image recipe is this repository's, checked below.
        .filter(|(p, _)| p != "Dockerfile" && p != ".dockerignore")
        .map(|(p, c)| {
            format!(
                "--- {p}\n{}",
                c.replace(&cdk.display().to_string(), "<cdk>")
            )
        })
        .collect()
}

/// Outside a cdk workspace: standalone crates, with this repository's image recipe.
#[test]
fn renders_each_template() {
    let dir = tempfile::tempdir().unwrap();
    let printed = new(dir.path(), &["source-open-weather"]);
    assert!(
        printed.contains("next:\n  cd source-open-weather\n  cargo test\n"),
        "{printed}"
    );
    new(dir.path(), &["destination-lake-box"]);
    new(dir.path(), &["source-shop-api", "--kind", "declarative"]);
    let root = workspace_root();
    for (file, original) in [
        ("Dockerfile", "connectors/Dockerfile"),
        (".dockerignore", ".dockerignore"),
    ] {
        let written = std::fs::read_to_string(dir.path().join("source-open-weather").join(file));
        assert_eq!(
            written.unwrap(),
            std::fs::read_to_string(root.join(original)).unwrap()
        );
    }
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
    let out = try_new(dir.path(), &["Weather"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a connector name"));
    new(dir.path(), &["source-x"]);
    let again = try_new(dir.path(), &["source-x"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists and is not empty"));
    // An empty folder is fine; a non-empty one with --force too.
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    new(dir.path(), &["source-y", "--path", "empty"]);
    new(dir.path(), &["source-x", "--force"]);
}

/// Inside a cdk workspace: a member crate inheriting the workspace's settings, listed in
/// `members` with its path from the root, even when generated from a subfolder.
#[test]
fn joins_a_cdk_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = "[workspace]\nmembers = [\n    \"cdk\",\n]\n\n[workspace.dependencies]\ncdk = { path = \"cdk\" }\n";
    std::fs::write(dir.path().join("Cargo.toml"), manifest).unwrap();
    std::fs::create_dir(dir.path().join("connectors")).unwrap();
    let printed = new(
        &dir.path().join("connectors"),
        &["source-x", "--path", "source-x"],
    );
    assert!(
        printed.contains("next:\n  cargo test -p source-x\n"),
        "{printed}"
    );
    let members = std::fs::read_to_string(dir.path().join("Cargo.toml")).unwrap();
    assert!(
        members.contains("    \"connectors/source-x\",\n"),
        "{members}"
    );
    let crate_manifest =
        std::fs::read_to_string(dir.path().join("connectors/source-x/Cargo.toml")).unwrap();
    assert!(
        crate_manifest.contains("cdk.workspace = true"),
        "{crate_manifest}"
    );
    assert!(!dir.path().join("connectors/source-x/Dockerfile").exists());
    // This workspace has no `dist` profile: the builds it is told of use `release`.
    let readme = std::fs::read_to_string(dir.path().join("connectors/source-x/README.md")).unwrap();
    assert!(
        readme.contains("cargo build --profile release -p source-x\n")
            && readme.contains("--prebuilt target/release/source-x ")
            && !readme.contains("dist"),
        "{readme}"
    );
    assert!(
        printed.contains("cargo build --profile release -p source-x && "),
        "{printed}"
    );

    // A workspace with the profile (as this repository): `dist`.
    let manifest = format!("{manifest}\n[profile.dist]\ninherits = \"release\"\n");
    std::fs::write(dir.path().join("Cargo.toml"), manifest).unwrap();
    new(
        &dir.path().join("connectors"),
        &["destination-y", "--path", "destination-y"],
    );
    let readme =
        std::fs::read_to_string(dir.path().join("connectors/destination-y/README.md")).unwrap();
    assert!(
        readme.contains("cargo build --profile dist -p destination-y\n"),
        "{readme}"
    );
}

/// Standalone connectors generated outside any workspace compile against this cdk and pass
/// their own tests (the acceptance suites), offline with this checkout's lockfile. Built in a
/// separate target dir (the outer cargo holds the main one), shared by both crates.
#[test]
fn generated_rust_connectors_pass_their_tests() {
    let root = workspace_root();
    let dir = tempfile::tempdir().unwrap();
    // <target>/debug/deps/it-… → <target>/template-check
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().join("template-check");
    for name in ["source-weather", "destination-box"] {
        new(dir.path(), &[name]);
        let crate_dir = dir.path().join(name);
        std::fs::copy(root.join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
        let out = Command::new(env!("CARGO"))
            .args(["test", "--offline", "--quiet"])
            .current_dir(&crate_dir)
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name} failed its tests:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
