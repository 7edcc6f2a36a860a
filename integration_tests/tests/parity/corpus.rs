//! Published low-code manifests (`parity/corpus/*.yaml`, from Airbyte's PyPI wheels, versions
//! in `VERSIONS.tsv`) and the harness's own (`parity/manifests`): `spec` and `discover` (with a minimal config satisfying the spec, made
//! by Airbyte's side) must be identical on both engines for every manifest ours loads; the ones
//! ours refuses must be listed in `REFUSED` with their reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::engines::{self, diff, run, write_json};

/// Manifests our engine does not load, with a part of its refusal message. Listed ones may
/// load (then they must match); unlisted refusals fail the test. Empty: every manifest of the
/// corpus loads.
const REFUSED: &[(&str, &str)] = &[];

/// What one engine answered for one manifest.
#[derive(Debug)]
struct Answers {
    spec: Result<Value, String>,
    config: Value,
    catalog: Result<Value, String>,
}

/// The `.yaml` files of `parity/<dir>`, sorted.
fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let dir = engines::fixtures().join(dir);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    paths
}

fn name(path: &Path) -> String {
    path.file_stem()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

fn only(msgs: Result<Vec<Value>, String>, kind: &str, field: &str) -> Result<Value, String> {
    let msgs = msgs?;
    msgs.iter()
        .find(|m| m["type"] == kind)
        .map(|m| m[field].clone())
        .ok_or_else(|| format!("no {kind} message in {msgs:?}"))
}

/// Airbyte's answers for every manifest, from one Python process (`corpus_driver.py`).
fn theirs(paths: &[PathBuf], out: &Path) -> BTreeMap<String, Answers> {
    let venv = engines::venv();
    let driver = engines::fixtures().join("corpus_driver.py");
    let status = Command::new(venv.join("bin/python"))
        .arg(&driver)
        .arg(out)
        .args(paths)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("cannot run the corpus driver");
    assert!(status.success(), "{} failed: {status}", driver.display());
    paths
        .iter()
        .map(|p| {
            let n = name(p);
            let file = out.join(format!("{n}.json"));
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let r: Value = serde_json::from_str(&text).expect("driver output is JSON");
            let fail = |what: &str| {
                r["error"]
                    .as_str()
                    .map(|e| format!("{what}: {e}"))
                    .unwrap_or_else(|| format!("{what}: no answer"))
            };
            let list = |k: &str| r[k].as_array().cloned().ok_or_else(|| fail(k));
            let answers = Answers {
                spec: only(list("spec"), "SPEC", "spec"),
                config: r["config"].clone(),
                catalog: only(list("discover"), "CATALOG", "catalog"),
            };
            (n, answers)
        })
        .collect()
}

/// Our answers for one manifest, with the config Airbyte's side made.
fn ours(path: &Path, config: &Value, dir: &Path) -> Answers {
    let bin = engines::ours();
    let with_manifest = |cmd: &str| {
        let mut c = Command::new(&bin);
        c.arg(cmd).arg("--manifest-path").arg(path);
        c
    };
    let spec = only(run(with_manifest("spec")), "SPEC", "spec");
    let config_path = write_json(dir, &format!("{}-config.json", name(path)), config);
    let mut discover = with_manifest("discover");
    discover.arg("--config").arg(config_path);
    let catalog = only(run(discover), "CATALOG", "catalog");
    Answers {
        spec,
        config: config.clone(),
        catalog,
    }
}

/// The catalog's streams by name, so their order does not matter.
pub(crate) fn by_name(catalog: &Value) -> BTreeMap<String, Value> {
    catalog["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                s.clone(),
            )
        })
        .collect()
}

/// Protocol booleans whose `false` and absence mean the same: the two engines' serializers
/// differ on which they write (Airbyte's writes `supportsDBT: false`, `is_file_based: false`
/// and leaves `source_defined_cursor` out; ours the other way round).
const FALSE_IS_ABSENT: [&str; 4] = [
    "supportsDBT",
    "supportsNormalization",
    "is_file_based",
    "source_defined_cursor",
];

/// `value` without the [`FALSE_IS_ABSENT`] keys that are `false`, at the top of it or of each
/// catalog stream.
pub(crate) fn plain(mut value: Value) -> Value {
    let strip = |v: &mut Value| {
        if let Some(m) = v.as_object_mut() {
            m.retain(|k, v| !(FALSE_IS_ABSENT.contains(&k.as_str()) && *v == Value::Bool(false)));
        }
    };
    strip(&mut value);
    if let Some(streams) = value["streams"].as_array_mut() {
        streams.iter_mut().for_each(strip);
    }
    value
}

/// The differences of one manifest's answers (empty when identical).
fn compare(ours: &Answers, theirs: &Answers) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let their_spec = theirs
        .spec
        .clone()
        .map_err(|e| format!("theirs: spec: {e}"))?;
    let our_spec = ours.spec.clone().map_err(|e| format!("spec: {e}"))?;
    diff("spec", &plain(our_spec), &plain(their_spec), &mut out);
    let their_catalog = theirs
        .catalog
        .clone()
        .map_err(|e| format!("theirs: discover: {e}"))?;
    let our_catalog = ours.catalog.clone().map_err(|e| format!("discover: {e}"))?;
    let (a, b) = (by_name(&plain(our_catalog)), by_name(&plain(their_catalog)));
    diff(
        "catalog",
        &serde_json::to_value(&a).expect("json"),
        &serde_json::to_value(&b).expect("json"),
        &mut out,
    );
    Ok(out)
}

#[test]
fn published_manifests_spec_and_discover_as_airbyte() {
    let mut paths = yaml_files("corpus");
    assert!(
        paths.len() >= 20,
        "the corpus has {} manifests",
        paths.len()
    );
    // The harness's own manifests (`reads.rs`) too.
    paths.extend(yaml_files("manifests"));
    let dir = tempfile::tempdir().expect("temp dir");
    let theirs = theirs(&paths, dir.path());
    let mut report = Vec::new();
    let mut failures = Vec::new();
    let mut loaded = 0;
    for path in &paths {
        let n = name(path);
        let t = &theirs[&n];
        let o = ours(path, &t.config, dir.path());
        let refused = REFUSED.iter().find(|(r, _)| *r == n);
        match compare(&o, t) {
            Ok(d) if d.is_empty() => {
                loaded += 1;
                let stale = if refused.is_some() {
                    " (loads now: take it off REFUSED)"
                } else {
                    ""
                };
                report.push(format!("{n}: identical{stale}"));
            }
            Ok(d) => {
                loaded += 1;
                report.push(format!("{n}: DIFFERS\n    {}", d.join("\n    ")));
                failures.push(n);
            }
            Err(e) if e.starts_with("theirs") => {
                report.push(format!("{n}: Airbyte's engine fails: {e}"));
                failures.push(n);
            }
            Err(e) => match refused {
                Some((_, why)) if e.contains(why) => {
                    report.push(format!("{n}: refused (listed): {e}"))
                }
                _ => {
                    report.push(format!("{n}: REFUSED (not listed): {e}"));
                    failures.push(n);
                }
            },
        }
    }
    let report = report.join("\n");
    eprintln!("{loaded} of {} manifests load\n{report}", paths.len());
    assert!(failures.is_empty(), "mismatches: {failures:?}\n{report}");
}
