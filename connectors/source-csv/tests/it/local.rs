//! Local files: quoting, line ends, BOM, globs and compression.

use serde_json::json;

use crate::{config, gzip, put, read, rows, zstd};

#[test]
fn quoted_fields_hold_delimiters_quotes_and_newlines() {
    let dir = tempfile::tempdir().unwrap();
    let path = put(
        dir.path(),
        "q.csv",
        "id,text\n1,\"a, b\"\n2,\"say \"\"hi\"\"\"\n3,\"two\nlines\"\n4,\"\"\n5,plain\n",
        0,
    );
    let run = read(&config(&path, json!({})));
    assert_eq!(
        rows(&run),
        [
            json!({"id": 1, "text": "a, b"}),
            json!({"id": 2, "text": "say \"hi\""}),
            json!({"id": 3, "text": "two\nlines"}),
            json!({"id": 4, "text": ""}),
            json!({"id": 5, "text": "plain"}),
        ]
    );
}

#[test]
fn bom_and_crlf_line_ends_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let path = put(
        dir.path(),
        "w.csv",
        "\u{feff}id,name\r\n1,a\r\n2,\"b\r\nc\"\r\n",
        0,
    );
    let run = read(&config(&path, json!({})));
    assert_eq!(
        rows(&run),
        [
            json!({"id": 1, "name": "a"}),
            json!({"id": 2, "name": "b\r\nc"})
        ]
    );
}

#[test]
fn a_glob_reads_every_matching_file_oldest_first_with_file_columns() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "b.csv", "id\n2\n", 5);
    put(dir.path(), "a.csv", "id\n1\n", 10);
    put(dir.path(), "sub/c.csv", "id\n3\n", 1);
    put(dir.path(), "other.txt", "id\n9\n", 1);
    let run = read(&config(dir.path().join("*.csv"), json!({})));
    let records = run.records_of("items");
    let got: Vec<_> = records
        .iter()
        .map(|r| (r["id"].clone(), r["_ab_source_file_url"].clone()))
        .collect();
    assert_eq!(
        got,
        [
            (
                json!(2),
                json!(dir.path().join("b.csv").display().to_string())
            ),
            (
                json!(1),
                json!(dir.path().join("a.csv").display().to_string())
            ),
        ]
    );
    assert_eq!(
        records[0]["_ab_source_file_last_modified"],
        json!("2024-01-01T00:05:00.000000Z")
    );
    let all = read(&config(dir.path().join("**/*.csv"), json!({})));
    assert_eq!(all.records_of("items").len(), 3, "** crosses directories");
}

#[test]
fn gzip_zstd_and_bzip2_files_are_streamed_by_extension() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let text = |from: u32| format!("id,v\n{from},x\n{},y\n", from + 1);
    put(dir.path(), "f1.csv.gz", gzip(&text(1)), 1);
    put(dir.path(), "f2.csv.zst", zstd(&text(3)), 2);
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(text(5).as_bytes()).unwrap();
    put(dir.path(), "f3.csv.bz2", bz.finish().unwrap(), 3);
    // A gzip file made of two members (as `cat a.gz b.gz` gives) is read whole.
    let mut two = gzip("id,v\n7,z\n");
    two.extend(gzip("8,w\n"));
    put(dir.path(), "f4.csv.gz", two, 4);
    let run = read(&config(dir.path().join("f*"), json!({})));
    let ids: Vec<_> = rows(&run)
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7, 8]);
}

#[test]
fn a_large_file_streams_in_flat_memory_and_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("id,payload\n");
    for i in 0..200_000 {
        text.push_str(&format!("{i},\"row {i}, with a comma\"\n"));
    }
    let path = put(dir.path(), "big.csv.gz", gzip(&text), 0);
    let run = read(&config(&path, json!({})));
    let records = run.records_of("items");
    assert_eq!(records.len(), 200_000);
    assert_eq!(
        records[199_999]["payload"],
        json!("row 199999, with a comma")
    );
}
