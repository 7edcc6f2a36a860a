//! The two engines: ours (the workspace's `source-rest-api` binary) and Airbyte's (the venv's
//! `source-declarative-manifest`, made on first use), each run as a process on files.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The airbyte-cdk version compared against.
pub const CDK_VERSION: &str = "7.39.1";

/// The venv with airbyte-cdk installed (`CDK_AIRBYTE_CDK_VENV` names another), made when
/// missing. Fails, saying why, where python3 or PyPI cannot be had.
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("CDK_AIRBYTE_CDK_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            Path::new(&home).join(format!(".cache/cdk-venvs/airbyte-cdk-{CDK_VERSION}"))
        });
    let bin = venv.join("bin/source-declarative-manifest");
    if bin.exists() {
        return venv;
    }
    let lock = venv.with_extension("lock");
    std::fs::create_dir_all(venv.parent().expect("the venv has a parent")).expect("venv dir");
    // One test makes it; concurrent ones wait on the lock.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 9>'{lock}'; flock 9; [ -x '{bin}' ] && exit 0; \
             python3 -m venv '{venv}' && '{venv}/bin/pip' install -q --disable-pip-version-check \
             'airbyte-cdk=={CDK_VERSION}'",
            lock = lock.display(),
            bin = bin.display(),
            venv = venv.display()
        ))
        .output()
        .expect("cannot run sh to make the airbyte-cdk venv");
    assert!(
        out.status.success() && bin.exists(),
        "could not install airbyte-cdk=={CDK_VERSION} into {} (PyPI not reachable, or python3 \
         without venv?): {}\n{}",
        venv.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    venv
}

/// Our binary, built beside this test executable by the workspace build.
pub fn ours() -> PathBuf {
    let exe = std::env::current_exe().expect("cannot locate the test executable");
    let dir = exe
        .ancestors()
        .nth(2)
        .expect("the test executable is not in target/<profile>/deps");
    let path = dir.join("source-rest-api");
    assert!(
        path.is_file(),
        "{} is not built: run the parity tests with `cargo test --workspace` (or `cargo build \
         -p source-rest-api` first)",
        path.display()
    );
    path
}

/// A command's JSON messages on stdout (other lines dropped), LOG messages left out.
pub fn messages(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["type"] != "LOG")
        .collect()
}

/// Runs `program args`, returning its messages, or everything it printed when it failed.
pub fn run(mut cmd: Command) -> Result<Vec<Value>, String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let msgs = messages(&out.stdout);
    let error = msgs
        .iter()
        .find(|m| m["type"] == "TRACE" && m["trace"]["type"] == "ERROR");
    match error {
        // `CDK_PARITY_TRACE=1` adds the engine's internal message and stack trace.
        Some(e) if std::env::var_os("CDK_PARITY_TRACE").is_some() => Err(format!(
            "{}\n{}\n{}",
            e["trace"]["error"]["message"].as_str().unwrap_or_default(),
            e["trace"]["error"]["internal_message"]
                .as_str()
                .unwrap_or_default(),
            e["trace"]["error"]["stack_trace"]
                .as_str()
                .unwrap_or_default()
        )),
        Some(e) => Err(e["trace"]["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()),
        None if !out.status.success() => Err(format!(
            "{shown} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
        None => Ok(msgs),
    }
}

/// Writes `value` as JSON into `dir/name`.
pub fn write_json(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).expect("write json");
    path
}

/// The directory of the harness's fixtures (`integration_tests/parity`).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("parity")
}

/// Where `a` and `b` differ, as JSON pointers with both values.
pub fn diff(at: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let null = Value::Null;
                let (va, vb) = (x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null));
                if x.contains_key(k) != y.contains_key(k) {
                    out.push(format!("{at}/{k}: ours {va} / theirs {vb}"));
                } else {
                    diff(&format!("{at}/{k}"), va, vb, out);
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                diff(&format!("{at}/{i}"), va, vb, out);
            }
        }
        _ if a != b => out.push(format!("{at}: ours {a} / theirs {b}")),
        _ => {}
    }
}
