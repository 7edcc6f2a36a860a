//! Parity with Airbyte's source-file 0.5.39 (pip-installed into a venv this test makes or
//! reuses): the same files, configs and configured catalog (our discovered one) given to both,
//! the records compared (fields starting with `_ab_` aside; numbers compared as numbers, so 1.0
//! equals 1).

use std::path::{Path, PathBuf};
use std::process::Command;

use cdk::protocol::SyncMode;
use cdk::testing::Run;
use serde_json::{Value, json};

use crate::{BIN, catalog};

const VERSION: &str = "0.5.39";

/// The venv's `source-file`, made on first use (`CDK_SOURCE_FILE_VENV` names another venv).
fn source_file() -> PathBuf {
    let venv = std::env::var_os("CDK_SOURCE_FILE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            Path::new(&home).join(format!(".cache/cdk-venvs/source-file-{VERSION}"))
        });
    let bin = venv.join("bin/source-file");
    if bin.exists() {
        return bin;
    }
    let lock = venv.with_extension("lock");
    std::fs::create_dir_all(venv.parent().unwrap()).unwrap();
    // One test process makes it; concurrent ones wait on the lock file's creation.
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 9>'{lock}'; flock 9; [ -x '{bin}' ] && exit 0; \
             python3 -m venv '{venv}' && '{venv}/bin/pip' install -q --disable-pip-version-check \
             'airbyte-source-file=={VERSION}'",
            lock = lock.display(),
            bin = bin.display(),
            venv = venv.display()
        ))
        .status()
        .expect("cannot run sh to make the source-file venv");
    assert!(
        status.success() && bin.exists(),
        "could not install airbyte-source-file=={VERSION} into {} (is PyPI reachable? is python3 \
         with venv installed?): {status}",
        venv.display()
    );
    bin
}

/// Runs source-file's `read` with `catalog` (ours, without the `_ab_` columns, which it does
/// not know); the records' data, or the error it reports.
fn theirs(bin: &Path, dir: &Path, config: &Value, catalog: &Value) -> Result<Vec<Value>, String> {
    let config_path = dir.join("theirs-config.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let mut catalog = catalog.clone();
    if let Some(p) = catalog["streams"][0]["stream"]["json_schema"]["properties"].as_object_mut() {
        p.retain(|k, _| !k.starts_with("_ab_"));
    }
    let catalog_path = dir.join("theirs-catalog.json");
    std::fs::write(&catalog_path, catalog.to_string()).unwrap();
    let out = Command::new(bin)
        .args(["read", "--config"])
        .arg(&config_path)
        .arg("--catalog")
        .arg(&catalog_path)
        .output()
        .expect("run source-file");
    let messages: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    if let Some(error) = messages
        .iter()
        .find(|m| m["type"] == "TRACE" && m["trace"]["type"] == "ERROR")
    {
        return Err(error["trace"]["error"]["message"].to_string());
    }
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into());
    }
    Ok(messages
        .into_iter()
        .filter(|m| m["type"] == "RECORD")
        .map(|m| m["record"]["data"].clone())
        .collect())
}

/// Our records for the same config and catalog.
fn ours(config: &Value, catalog: &Value) -> Vec<Value> {
    let run = Run::new(BIN).read(config, catalog, None);
    run.assert_success().assert_protocol();
    run.records_of("items").into_iter().cloned().collect()
}

/// Drops `_ab_*` fields and makes every number a float, so 1 and 1.0 compare equal.
fn normal(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(items) => Value::Array(items.iter().map(normal).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with("_ab_"))
                .map(|(k, v)| (k.clone(), normal(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A case's name, source-file's records (or why it failed), ours.
type Outcome = (String, Result<Vec<Value>, String>, Vec<Value>);

struct Case {
    name: &'static str,
    file: &'static str,
    bytes: Vec<u8>,
    format: &'static str,
    reader_options: Option<&'static str>,
    /// Where source-file fails (a bug of its own), the records pandas' `read_csv` gives.
    pandas_gives: Option<Value>,
}

fn case(name: &'static str, file: &'static str, text: &str, options: Option<&'static str>) -> Case {
    Case {
        name,
        file,
        bytes: text.as_bytes().to_vec(),
        format: "csv",
        reader_options: options,
        pandas_gives: None,
    }
}

fn cases() -> Vec<Case> {
    let mut cases = vec![
        case(
            "defaults: types, empty fields and NA strings",
            "plain.csv",
            "id,name,price,flag,day,mixed,note\n1,alice,1.5,True,2024-01-01,1,\n\
             2,NA,2,false,2024-01-02,x,n/a\n3,,,TRUE,,2,null\n4,\"d, e\",+7,False,x,3,ok\n",
            None,
        ),
        case(
            "sep ; with quotes",
            "semi.csv",
            "a;b;c\n1;\"x;y\";2.5\n2;z;\n",
            Some(r#"{"sep": ";"}"#),
        ),
        case(
            "tab separated",
            "tab.tsv",
            "a\tb\n1\tx,y\n2\tz\n",
            Some(r#"{"sep": "\t"}"#),
        ),
        case(
            "multi-character literal separator",
            "colons.csv",
            "a::b\n1::x\n2::y\n",
            Some(r#"{"sep": "::"}"#),
        ),
        case(
            "whitespace separator with quotes",
            "blanks.txt",
            "a  b\n  1   \"x y\"\n2\ty\n",
            Some(r#"{"sep": "\\s+"}"#),
        ),
        case(
            "header null without names: numbered columns",
            "numbered.csv",
            "1,alice\n2,bob\n",
            Some(r#"{"header": null}"#),
        ),
        case(
            "skiprows int, header row, names replacing it, nrows",
            "skip.csv",
            "junk line\nmore junk\na,b\n1,x\n2,y\n3,z\n",
            Some(r#"{"skiprows": 2, "header": 0, "names": ["k", "v"], "nrows": 2}"#),
        ),
        case(
            "skiprows list and usecols",
            "skiplist.csv",
            "a,b,c\n1,x,9\n2,y,8\n3,z,7\n",
            Some(r#"{"skiprows": [2], "usecols": ["a", "c"]}"#),
        ),
        case(
            "usecols by position",
            "usepos.csv",
            "a,b,c\n1,x,9\n2,y,8\n",
            Some(r#"{"usecols": [0, 2]}"#),
        ),
        case(
            "na_values, keep_default_na, true_values, false_values",
            "na.csv",
            "id,s,ok\n1,NA,oui\n2,nil,non\n3,x,oui\n",
            Some(
                r#"{"na_values": ["nil"], "keep_default_na": false, "true_values": ["oui"], "false_values": ["non"]}"#,
            ),
        ),
        case(
            "na_filter false",
            "nafilter.csv",
            "id,s\n1,NA\n2,\n",
            Some(r#"{"na_filter": false}"#),
        ),
        case(
            "thousands, decimal, dtype",
            "numbers.csv",
            "id;amount;code\n1;\"1.234,5\";007\n2;\"2,0\";010\n",
            Some(
                r#"{"sep": ";", "thousands": ".", "decimal": ",", "dtype": {"code": "str", "id": "float"}}"#,
            ),
        ),
        case(
            "quotechar, escapechar, doublequote",
            "quotes.csv",
            "a,b\n1,'x\\'y'\n2,'p,q'\n",
            Some(r#"{"quotechar": "'", "escapechar": "\\", "doublequote": false}"#),
        ),
        case(
            "quoting none",
            "quotingnone.csv",
            "a,b\n1,\"x\"\n2,y\n",
            Some(r#"{"quoting": 3}"#),
        ),
        case(
            "comment and blank lines",
            "comment.csv",
            "a,b,c\n1,x # note,5\n# whole line\n\n2,y,6\n",
            Some(r##"{"comment": "#"}"##),
        ),
        case(
            "skip_blank_lines false",
            "blank.csv",
            "a,b\n1,x\n\n2,y\n",
            Some(r#"{"skip_blank_lines": false}"#),
        ),
        case(
            "parse_dates",
            "dates.csv",
            "id,when,at\n1,2024-01-02,2024-01-02 03:04:05\n2,2024-02-03,2024-02-03 10:00:00\n",
            Some(r#"{"parse_dates": ["when", "at"]}"#),
        ),
        case(
            "short rows padded with nulls",
            "short.csv",
            "a,b,c\n1,x,2\n3\n",
            None,
        ),
    ];
    // source-file's read turns the catalog's field names into integers when `header` is null,
    // which fails for named columns.
    cases.push(Case {
        pandas_gives: Some(json!([{"id": 1, "name": "alice"}, {"id": 2, "name": "bob"}])),
        ..case(
            "header null and names",
            "noheader.csv",
            "1,alice\n2,bob\n",
            Some(r#"{"header": null, "names": ["id", "name"]}"#),
        )
    });
    // source-file reads in chunks, and pandas refuses skipfooter with chunks.
    cases.push(Case {
        pandas_gives: Some(json!([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}])),
        ..case(
            "skipfooter",
            "footer.csv",
            "a,b\n1,x\n2,y\ntotal,2\n",
            Some(r#"{"skipfooter": 1}"#),
        )
    });
    cases.push(Case {
        name: "encoding latin1",
        file: "latin.csv",
        bytes: b"name,city\ncaf\xe9,M\xfcnchen\n".to_vec(),
        format: "csv",
        reader_options: Some(r#"{"encoding": "latin1"}"#),
        pandas_gives: None,
    });
    cases.push(Case {
        name: "gzip by extension",
        file: "plain.csv.gz",
        bytes: crate::gzip("a,b\n1,x\n2,\n"),
        format: "csv",
        reader_options: None,
        pandas_gives: None,
    });
    cases.push(Case {
        name: "jsonl",
        file: "rows.jsonl",
        bytes: b"{\"a\": 1, \"b\": {\"c\": [1, 2]}}\n{\"a\": 2.5, \"d\": \"x\"}\n".to_vec(),
        format: "jsonl",
        reader_options: None,
        pandas_gives: None,
    });
    cases.push(Case {
        name: "json array",
        file: "rows.json",
        bytes: b"[{\"a\": 1}, {\"a\": 2, \"e\": null}]".to_vec(),
        format: "json",
        reader_options: None,
        pandas_gives: None,
    });
    cases.push(Case {
        name: "json object",
        file: "one.json",
        bytes: b"{\"a\": 1, \"b\": \"x\"}".to_vec(),
        format: "json",
        reader_options: None,
        pandas_gives: None,
    });
    cases.push(Case {
        name: "parquet",
        file: "table.parquet",
        bytes: parquet_bytes(),
        format: "parquet",
        reader_options: None,
        pandas_gives: None,
    });
    cases
}

/// A Parquet file with integers, floats, text, booleans, dates and timestamps, nulls among them.
fn parquet_bytes() -> Vec<u8> {
    use arrow_array::{
        ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
        StringArray, TimestampMicrosecondArray,
    };
    use std::sync::Arc;
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "id",
            Arc::new(Int64Array::from(vec![Some(1), Some(2), None])),
        ),
        ("small", Arc::new(Int32Array::from(vec![1, 2, 3]))),
        (
            "price",
            Arc::new(Float64Array::from(vec![Some(1.5), None, Some(3.0)])),
        ),
        (
            "name",
            Arc::new(StringArray::from(vec![Some("x"), None, Some("z \"q\"")])),
        ),
        ("ok", Arc::new(BooleanArray::from(vec![true, false, true]))),
        (
            "day",
            Arc::new(Date32Array::from(vec![19723, 19724, 19725])),
        ),
        (
            "at",
            Arc::new(TimestampMicrosecondArray::from(vec![
                1_704_103_200_000_000,
                1_704_103_200_500_000,
                1_704_189_600_000_000,
            ])),
        ),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut bytes = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    bytes
}

/// Writes the case's file and reads it with both sources.
fn run_case(bin: &Path, case_dir: &Path, c: &Case) -> Outcome {
    std::fs::create_dir_all(case_dir).unwrap();
    let path = case_dir.join(c.file);
    std::fs::write(&path, &c.bytes).unwrap();
    let mut config = json!({"dataset_name": "items", "format": c.format,
        "url": path.display().to_string(), "provider": {"storage": "local"}});
    if let Some(options) = c.reader_options {
        config["reader_options"] = json!(options);
    }
    let catalog = catalog(&config, SyncMode::FullRefresh);
    let theirs = match (&c.pandas_gives, theirs(bin, case_dir, &config, &catalog)) {
        (Some(pandas), Err(_)) => Ok(pandas.as_array().unwrap().clone()),
        (Some(_), Ok(records)) => Err(format!(
            "source-file was expected to fail, and gave {}",
            Value::from(records)
        )),
        (None, theirs) => theirs,
    };
    (c.name.to_string(), theirs, ours(&config, &catalog))
}

#[test]
fn records_match_airbyte_source_file() {
    let bin = source_file();
    let dir = tempfile::tempdir().unwrap();
    let cases = cases();
    // A few at a time: each source-file process loads pandas (~150 MB).
    let mut results: Vec<Outcome> = Vec::new();
    let bin = bin.as_path();
    for (n, chunk) in cases.chunks(4).enumerate() {
        results.extend(std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let case_dir = dir.path().join(format!("case{n}-{i}"));
                    scope.spawn(move || run_case(bin, &case_dir, c))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        }));
    }
    let mut failures = Vec::new();
    for (name, theirs, ours) in &results {
        let ours: Vec<Value> = ours.iter().map(normal).collect();
        match theirs {
            Ok(theirs) => {
                let theirs: Vec<Value> = theirs.iter().map(normal).collect();
                if theirs != ours {
                    failures.push(format!(
                        "{name}:\n  source-file: {}\n  ours:        {}",
                        Value::from(theirs),
                        Value::from(ours)
                    ));
                }
            }
            Err(e) => failures.push(format!("{name}: source-file failed: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
}
