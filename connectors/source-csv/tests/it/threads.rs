//! Rows parsed on their own thread give byte-for-byte the records of the single-threaded read.

use cdk::protocol::SyncMode;
use cdk::testing::Run;
use serde_json::json;

use crate::{BIN, catalog, config, put};

/// Every Airbyte type, nulls, misfits, quoted newlines, Unicode, a skipped ragged row, and a
/// 1 MB value, over enough rows for many hand-overs and a partial last one.
fn mixed_file() -> String {
    let mut text = String::from("id,amount,flag,label,day,at_tz,at_local,clock,blob\n");
    let big = "é".repeat(512 * 1024);
    for i in 0..5_003u32 {
        let row = match i % 7 {
            0 => format!(
                "{i},{}.25,true,plain,2024-01-02,2024-01-02T03:04:05+02:00,2024-01-02T03:04:05,03:04:05,x\n",
                i
            ),
            1 => format!("{i},,false,,,,,,\n"),
            2 => format!(
                "{i},not-a-number,maybe,\"multi\nline, \"\"quoted\"\"\",2024-13-40,yesterday,never,25:61,\"{{\"\"k\"\":1}}\"\n"
            ),
            3 => format!(
                "{i},-1e300,TRUE,日本語 ✓ \u{1F600},1999-12-31,1999-12-31T23:59:59Z,1999-12-31T23:59:59.123456,23:59:59.5,\\\n"
            ),
            4 => format!("{i},1,0,ragged\n"),
            5 if i % 1000 == 5 => format!("{i},0,1,big,2000-01-01,,,,{big}\n"),
            _ => format!(
                "{i},{i}.0,false,\u{7f}\u{1},2000-02-29,2000-02-29T00:00:00-05:30,2000-02-29T12:00:00,12:00,\"\"\n"
            ),
        };
        text.push_str(&row);
    }
    text
}

/// The RECORD lines of a read, with `emitted_at` (a clock reading) blanked.
fn records(threads: &str, config: &serde_json::Value, catalog: &serde_json::Value) -> Vec<String> {
    let run = Run::new(BIN)
        .env("SOURCE_CSV_THREADS", threads)
        .read(config, catalog, None);
    run.assert_success().assert_protocol();
    run.stdout
        .lines()
        .filter(|l| l.starts_with(r#"{"type":"RECORD""#))
        .map(without_stamp)
        .collect()
}

fn without_stamp(line: &str) -> String {
    const KEY: &str = r#""emitted_at":"#;
    let Some(at) = line.find(KEY) else {
        return line.to_string();
    };
    let rest = &line[at + KEY.len()..];
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    format!("{}{}", &line[..at + KEY.len()], &rest[digits..])
}

#[test]
fn threaded_rows_are_byte_identical_to_single_threaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = put(dir.path(), "mixed.csv", mixed_file(), 0);
    let config = config(&path, json!({"ignore_errors_on_fields_mismatch": true}));
    let mut catalog = catalog(&config, SyncMode::FullRefresh);
    let typed = |t: &str| json!({"type": ["null", t]});
    let at =
        |a: &str| json!({"type": ["null", "string"], "format": "date-time", "airbyte_type": a});
    catalog["streams"][0]["stream"]["json_schema"]["properties"] = json!({
        "id": {"type": ["null", "integer"]},
        "amount": typed("number"),
        "flag": typed("boolean"),
        "label": typed("string"),
        "day": {"type": ["null", "string"], "format": "date"},
        "at_tz": at("timestamp_with_timezone"),
        "at_local": at("timestamp_without_timezone"),
        "clock": {"type": ["null", "string"], "format": "time", "airbyte_type": "time_without_timezone"},
        "blob": typed("string"),
    });
    let single = records("1", &config, &catalog);
    let threaded = records("2", &config, &catalog);
    assert_eq!(
        single.len(),
        5_003 - 5_003 / 7 - 1,
        "every row but the ragged ones"
    );
    assert!(
        single.iter().any(|l| l.contains("\"changes\"")),
        "misfits are in the file"
    );
    assert!(
        single.iter().any(|l| l.len() > 1 << 20),
        "the 1 MB value is read"
    );
    assert_eq!(single.len(), threaded.len(), "same number of records");
    for (i, (a, b)) in single.iter().zip(&threaded).enumerate() {
        assert!(a == b, "record {i} differs:\n{:.300}\n{:.300}", a, b);
    }
}

#[test]
fn a_bad_row_deep_in_the_file_fails_the_read_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("a,b\n");
    for i in 0..3_000 {
        text.push_str(&format!("{i},x\n"));
    }
    text.push_str("ragged\n1,y\n");
    let path = put(dir.path(), "bad.csv", &text, 0);
    let good = config(&path, json!({"ignore_errors_on_fields_mismatch": true}));
    let catalog = catalog(&good, SyncMode::FullRefresh);
    let strict = config(&path, json!({}));
    let messages: Vec<String> = ["1", "2"]
        .iter()
        .map(|threads| {
            let run = Run::new(BIN)
                .env("SOURCE_CSV_THREADS", threads)
                .read(&strict, &catalog, None);
            run.assert_failure().assert_protocol();
            let errors = run.trace_errors();
            run.ensure(!errors.is_empty(), "the read names its error");
            format!(
                "{} records, then: {}",
                run.records_of("items").len(),
                errors[0].message
            )
        })
        .collect();
    assert!(messages[0].starts_with("3000 records"), "{}", messages[0]);
    assert!(messages[0].contains("line 3002"), "{}", messages[0]);
    assert_eq!(messages[0], messages[1]);
}
