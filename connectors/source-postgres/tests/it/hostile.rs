//! Identifiers with quotes, spaces, semicolons, upper case and 63 characters are discovered
//! and read, in full refresh and with a hostile cursor column.

use cdk::protocol::SyncMode;
use cdk::testing::Run;
use serde_json::json;

use crate::{BIN, config, configure, database, discover};

#[tokio::test]
async fn hostile_identifiers_are_quoted_everywhere() {
    let db = database("hostile").await;
    let schema = r#"Sch "ema"; DROP TABLE x;--"#;
    let table = r#"Tab'le; SELECT 1 "q""#;
    let column = r#"Col "x"; y"#;
    let long = "L".repeat(63);
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    db.execute(&format!(
        "CREATE SCHEMA {s}; CREATE TABLE {s}.{t} (id int PRIMARY KEY, {c} text, {l} int);
         INSERT INTO {s}.{t} VALUES (1, 'a', 10), (2, 'b', 20), (3, 'c', 30);",
        s = q(schema),
        t = q(table),
        c = q(column),
        l = q(&long),
    ))
    .await;
    let cfg = config(
        &db,
        json!({"schemas": [schema], "sync_checkpoint_records": 1}),
    );
    let catalog = discover(&cfg);
    assert_eq!(catalog.streams.len(), 1);
    let stream = &catalog.streams[0];
    assert_eq!(
        (stream.name.as_str(), stream.namespace.as_deref()),
        (table, Some(schema))
    );
    let props = stream.json_schema["properties"].as_object().unwrap();
    assert!(props.contains_key(column) && props.contains_key(&long));

    for (mode, cursor) in [
        (SyncMode::FullRefresh, None),
        (SyncMode::Incremental, Some(column)),
    ] {
        let configured = configure(&catalog, &[(table, mode, cursor)]);
        let run = Run::new(BIN).read(&cfg, &configured, None);
        run.assert_success().assert_protocol();
        let records = run.records_of(table);
        assert_eq!(records.len(), 3);
        assert_eq!(records[1][column], "b");
        assert_eq!(records[2][long.as_str()], 30);
        // Resume with the hostile cursor value in a state.
        if cursor.is_some() {
            db.execute(&format!(
                "INSERT INTO {}.{} VALUES (4, 'it''s \"d\"; --', 40)",
                q(schema),
                q(table)
            ))
            .await;
            let next = Run::new(BIN).read(&cfg, &configured, Some(&run.final_state()));
            next.assert_success();
            assert_eq!(next.records_of(table).len(), 1);
            let again = Run::new(BIN).read(&cfg, &configured, Some(&next.final_state()));
            again.assert_success();
            assert_eq!(again.records_of(table).len(), 0);
        }
    }
    // The database is intact.
    let n: i64 = db
        .connect()
        .await
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}
