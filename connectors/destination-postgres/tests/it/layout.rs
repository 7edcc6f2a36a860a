//! The typed table layout: columns and types, `_airbyte_*` columns, values that don't fit,
//! hostile names, schema evolution, raw tables.

use cdk::testing::Run;
use cdk::testing::postgres::TestDatabase;
use serde_json::{Value, json};

use super::*;

/// `(column, type)` of a table, in order.
async fn columns(db: &TestDatabase, schema: &str, table: &str) -> Vec<(String, String)> {
    let client = db.connect().await;
    client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             JOIN pg_class c ON a.attrelid = c.oid JOIN pg_namespace n ON c.relnamespace = n.oid \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&schema, &table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn indexes(db: &TestDatabase, schema: &str, table: &str) -> Vec<String> {
    let client = db.connect().await;
    client
        .query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2 ORDER BY 1",
            &[&schema, &table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn typed_schema() -> Value {
    json!({"type": "object", "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "amount": {"type": "number"},
        "active": {"type": "boolean"},
        "born": {"type": "string", "format": "date"},
        "seen_at": {"type": "string", "format": "date-time"},
        "local_at": {"type": "string", "format": "date-time", "airbyte_type": "timestamp_without_timezone"},
        "opens": {"type": "string", "format": "time", "airbyte_type": "time_without_timezone"},
        "opens_tz": {"type": "string", "format": "time", "airbyte_type": "time_with_timezone"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "address": {"type": "object", "properties": {"city": {"type": "string"}}},
        "either": {"type": ["string", "integer"]},
        "anything": {},
    }})
}

#[tokio::test]
async fn typed_columns_follow_airbyte_mapping_and_values_round_trip() {
    round_trip("binary").await;
}

#[tokio::test]
async fn values_round_trip_through_text_copy_too() {
    round_trip("text").await;
}

async fn round_trip(format: &str) {
    let (db, config) = database(&format!("layout_{format}")).await;
    let cat = catalog("users", typed_schema(), "append", 7, 0);
    let data = json!({
        "id": 1, "name": "Ann\ttab\\slash\nline", "amount": "AMOUNT",
        "active": true, "born": "1980-02-29", "seen_at": "2024-05-01T10:20:30.123456+02:00",
        "local_at": "2024-05-01T10:20:30", "opens": "09:30:00", "opens_tz": "09:30:00+01:00",
        "tags": ["a", "b"], "address": {"city": "Oslo"}, "either": 5, "anything": {"x": [1]},
        "not_in_schema": "dropped"
    });
    let out = Run::new(BIN)
        .env("DESTINATION_POSTGRES_COPY_FORMAT", format)
        .stdin_lines([
            // A number with more precision than an f64, as JSON text.
            record_at("users", data, 1_700_000_000_123)
                .replace("\"AMOUNT\"", "12345678901234567890.123456789"),
            record(
                "users",
                json!({"id": 2, "amount": -0.000001, "born": "0044-03-15 BC",
                       "seen_at": "1969-07-20 20:17:40.5-04:00", "local_at": "1900-01-01T00:00:00.000001",
                       "opens_tz": "23:59:59.999999-03:30", "name": ""}),
            ),
            state("users", 1),
        ])
        .write(&config, &cat);
    out.assert_success().assert_protocol();
    assert_eq!(out.states().len(), 1);

    let cols = columns(&db, "public", "users").await;
    let expected = [
        ("_airbyte_raw_id", "character varying"),
        ("_airbyte_extracted_at", "timestamp with time zone"),
        ("_airbyte_meta", "jsonb"),
        ("_airbyte_generation_id", "bigint"),
        ("active", "boolean"),
        ("address", "jsonb"),
        ("amount", "numeric"),
        ("anything", "jsonb"),
        ("born", "date"),
        ("either", "jsonb"),
        ("id", "bigint"),
        ("local_at", "timestamp without time zone"),
        ("name", "character varying"),
        ("opens", "time without time zone"),
        ("opens_tz", "time with time zone"),
        ("seen_at", "timestamp with time zone"),
        ("tags", "jsonb"),
    ];
    let got: Vec<(&str, &str)> = cols.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(got, expected);

    let client = db.connect().await;
    let row = client
        .query_one(
            "SELECT name, amount::text, active, born::text, seen_at AT TIME ZONE 'UTC', local_at::text, \
             opens::text, opens_tz::text, tags::text, address::text, either::text, anything::text, \
             _airbyte_extracted_at AT TIME ZONE 'UTC', _airbyte_meta::text, _airbyte_generation_id, \
             length(_airbyte_raw_id) FROM users WHERE id = 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Ann\ttab\\slash\nline");
    assert_eq!(row.get::<_, String>(1), "12345678901234567890.123456789");
    assert!(row.get::<_, bool>(2));
    assert_eq!(row.get::<_, String>(3), "1980-02-29");
    assert_eq!(
        row.get::<_, chrono_like::Naive>(4).0,
        "2024-05-01 08:20:30.123456"
    );
    assert_eq!(row.get::<_, String>(5), "2024-05-01 10:20:30");
    assert_eq!(row.get::<_, String>(6), "09:30:00");
    assert_eq!(row.get::<_, String>(7), "09:30:00+01");
    assert_eq!(row.get::<_, String>(8), "[\"a\", \"b\"]");
    assert_eq!(row.get::<_, String>(9), "{\"city\": \"Oslo\"}");
    assert_eq!(row.get::<_, String>(10), "5");
    assert_eq!(row.get::<_, String>(11), "{\"x\": [1]}");
    assert_eq!(
        row.get::<_, chrono_like::Naive>(12).0,
        "2023-11-14 22:13:20.123"
    );
    assert_eq!(
        row.get::<_, String>(13),
        "{\"changes\": [], \"sync_id\": 1007}"
    );
    assert_eq!(row.get::<_, i64>(14), 7);
    assert_eq!(row.get::<_, i32>(15), 36);

    let row = client
        .query_one(
            "SELECT amount::text, born::text, (seen_at AT TIME ZONE 'UTC')::text, local_at::text, \
             opens_tz::text, name FROM users WHERE id = 2",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<String> = (0..6).map(|i| row.get(i)).collect();
    assert_eq!(
        got,
        [
            "-0.000001",
            "0044-03-15 BC",
            "1969-07-21 00:17:40.5",
            "1900-01-01 00:00:00.000001",
            "23:59:59.999999-03:30",
            ""
        ]
    );

    // The load-time defaults of `_airbyte_meta` and `_airbyte_generation_id` are gone
    // afterwards.
    let row = client
        .query_one(
            "SELECT count(*), count(column_default) FROM information_schema.columns \
             WHERE table_name = 'users' AND column_name LIKE '\\_airbyte\\_%'",
            &[],
        )
        .await
        .unwrap();
    let (columns, defaults): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!((columns, defaults), (4, 0));

    let idx = indexes(&db, "public", "users").await;
    assert!(
        idx.iter().any(|i| i.contains("(_airbyte_extracted_at)")),
        "{idx:?}"
    );
}

/// Reads a `timestamp` as text without needing a chrono dependency in the tests.
mod chrono_like {
    use tokio_postgres::types::{FromSql, Type};

    pub struct Naive(pub String);

    impl<'a> FromSql<'a> for Naive {
        fn from_sql(
            _: &Type,
            raw: &'a [u8],
        ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
            let micros = i64::from_be_bytes(raw.try_into()?);
            let secs = micros.div_euclid(1_000_000) + 946_684_800;
            let frac = micros.rem_euclid(1_000_000);
            let days = secs.div_euclid(86_400);
            let s = secs.rem_euclid(86_400);
            let (y, m, d) = civil(days);
            let mut text = format!(
                "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
                s / 3600,
                s / 60 % 60,
                s % 60
            );
            if frac != 0 {
                let f = format!("{frac:06}");
                text.push('.');
                text.push_str(f.trim_end_matches('0'));
            }
            Ok(Naive(text))
        }

        fn accepts(ty: &Type) -> bool {
            *ty == Type::TIMESTAMP
        }
    }

    fn civil(z: i64) -> (i64, i64, i64) {
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        (yoe + era * 400 + i64::from(m <= 2), m, d)
    }
}

#[tokio::test]
async fn values_that_do_not_fit_become_null_with_changes() {
    let (db, config) = database("typecast").await;
    let cat = catalog("t", typed_schema(), "append", 1, 0);
    let bad = json!({
        "id": "99999999999999999999", "name": "nul\u{0}inside", "amount": "not a number",
        "active": "maybe", "born": "2023-02-30", "seen_at": "yesterday",
        "local_at": "300000-01-01T00:00:00", "opens": "25:00", "opens_tz": 5,
        "tags": {"not": "an array"}, "address": [1], "either": "fine", "anything": null
    });
    let mut lines = vec![record("t", bad)];
    // A huge number, given as JSON text the encoder would otherwise pass on.
    lines.push(r#"{"type":"RECORD","record":{"stream":"t","emitted_at":1,"data":{"id":2,"amount":1e200000,"born":"5000-01-01 BC"},"meta":{"changes":[{"field":"x","change":"TRUNCATED","reason":"SOURCE_FIELD_SIZE_LIMITATION"}]}}}"#.to_string());
    lines.push(state("t", 1));
    let out = Run::new(BIN).stdin_lines(&lines).write(&config, &cat);
    out.assert_success();
    let rows = rows(&db, "public", "t", "_airbyte_extracted_at DESC").await;
    assert_eq!(rows.len(), 2, "rows are kept");
    let first = &rows[0];
    for field in [
        "id", "name", "amount", "active", "born", "seen_at", "local_at", "opens", "opens_tz",
        "tags", "address",
    ] {
        assert_eq!(first[field], Value::Null, "{field} must be nulled: {first}");
    }
    assert_eq!(first["either"], json!("fine"));
    let changes: Vec<(String, String)> = first["_airbyte_meta"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["change"], "NULLED");
            (
                c["field"].as_str().unwrap().into(),
                c["reason"].as_str().unwrap().into(),
            )
        })
        .collect();
    let reason = |f: &str| {
        changes
            .iter()
            .find(|(field, _)| field == f)
            .map(|(_, r)| r.as_str())
            .unwrap_or("missing")
            .to_string()
    };
    assert_eq!(reason("id"), "DESTINATION_FIELD_SIZE_LIMITATION");
    assert_eq!(reason("name"), "DESTINATION_TYPECAST_ERROR");
    assert_eq!(reason("born"), "DESTINATION_TYPECAST_ERROR");
    assert_eq!(reason("seen_at"), "DESTINATION_TYPECAST_ERROR");
    assert_eq!(reason("tags"), "DESTINATION_TYPECAST_ERROR");
    assert_eq!(changes.len(), 11, "{changes:?}");
    assert_eq!(first["_airbyte_meta"]["sync_id"], json!(1001));

    let second = &rows[1];
    assert_eq!(second["amount"], Value::Null);
    assert_eq!(second["born"], Value::Null);
    let changes = second["_airbyte_meta"]["changes"].as_array().unwrap();
    assert_eq!(
        changes[0]["reason"], "SOURCE_FIELD_SIZE_LIMITATION",
        "source changes kept first"
    );
    assert!(
        changes[1..]
            .iter()
            .all(|c| c["reason"] == "DESTINATION_FIELD_SIZE_LIMITATION")
    );
    assert_eq!(changes.len(), 3);
}

#[tokio::test]
async fn hostile_stream_and_field_names_load() {
    let (db, config) = database("hostile").await;
    let stream_name = "Robert'); DROP TABLE \"students\"; --";
    let namespace = "my schema\"x";
    let long = "a_really_long_field_name_that_goes_on_and_on_past_the_identifier_limit_of_postgres";
    let schema = json!({"properties": {
        "id": {"type": "integer"},
        "seq": {"type": "integer"},
        "with space": {"type": "string"},
        "with_space": {"type": "string"},
        "\"quoted\"": {"type": "string"},
        "1st": {"type": "string"},
        "café": {"type": "string"},
        "_airbyte_raw_id": {"type": "string"},
        long: {"type": "string"},
        (long.to_string() + "2"): {"type": "string"},
    }});
    for mode in ["append", "append_dedup"] {
        let cat =
            json!({"streams": [stream(stream_name, Some(namespace), schema.clone(), mode, 1, 0)]});
        let mut data = json!({"id": 1, "seq": 1, "with space": "a", "with_space": "b",
            "\"quoted\"": "c", "1st": "d", "café": "e", "_airbyte_raw_id": "f"});
        data[long] = json!("g");
        data[long.to_string() + "2"] = json!("h");
        let line =
            json!({"type": "RECORD", "record": {"stream": stream_name, "namespace": namespace,
            "data": data, "emitted_at": 1}})
            .to_string();
        let out = Run::new(BIN).stdin_lines([line]).write(&config, &cat);
        out.assert_success();
    }
    let rows = rows(
        &db,
        "my_schema_x",
        "Robert____DROP_TABLE__students_____",
        "1",
    )
    .await;
    assert_eq!(rows.len(), 1, "dedup replaced the appended row");
    let row = &rows[0];
    assert_eq!(row["with_space"], "a");
    assert_eq!(row["with_space_1"], "b");
    assert_eq!(row["_quoted_"], "c");
    assert_eq!(row["_1st"], "d");
    assert_eq!(row["cafe"], "e");
    assert_eq!(row["_airbyte_raw_id_1"], "f");
    let long_columns: Vec<&String> = row
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("a_really"))
        .collect();
    assert_eq!(long_columns.len(), 2, "{row}");
    assert!(long_columns.iter().all(|c| c.len() <= 63));
}

#[tokio::test]
async fn schema_changes_add_and_convert_columns_and_keep_removed_ones() {
    let (db, config) = database("evolve").await;
    let v1 = json!({"properties": {
        "id": {"type": "integer"}, "score": {"type": "string"}, "gone": {"type": "string"},
        "blob": {"type": "object"}}});
    let out = Run::new(BIN)
        .stdin_lines([record(
            "t",
            json!({"id": 1, "score": "12", "gone": "x", "blob": {"a": "1"}}),
        )])
        .write(&config, &catalog("t", v1, "append", 1, 0));
    out.assert_success();
    let v2 = json!({"properties": {
        "id": {"type": "integer"}, "score": {"type": "integer"}, "added": {"type": "boolean"},
        "blob": {"type": "string"}}});
    let out = Run::new(BIN)
        .stdin_lines([record(
            "t",
            json!({"id": 2, "score": 13, "added": true, "blob": "text"}),
        )])
        .write(&config, &catalog("t", v2, "append", 2, 0));
    out.assert_success();
    let cols = columns(&db, "public", "t").await;
    let ty = |c: &str| cols.iter().find(|(n, _)| n == c).map(|(_, t)| t.clone());
    assert_eq!(ty("score").as_deref(), Some("bigint"));
    assert_eq!(ty("added").as_deref(), Some("boolean"));
    assert_eq!(ty("gone").as_deref(), Some("character varying"));
    assert_eq!(ty("blob").as_deref(), Some("character varying"));
    let rows = user_fields(&rows(&db, "public", "t", "id").await);
    assert_eq!(
        rows,
        [
            json!({"id": 1, "score": 12, "gone": "x", "added": null, "blob": "{\"a\": \"1\"}"}),
            json!({"id": 2, "score": 13, "gone": null, "added": true, "blob": "text"}),
        ]
    );
}

#[tokio::test]
async fn raw_tables_keep_the_record_json() {
    let (db, mut config) = database("raw").await;
    config["disable_type_dedupe"] = json!(true);
    let out = Run::new(BIN)
        .stdin_lines([
            record(
                "users",
                json!({"id": 1, "name": "a\u{0}b", "nested": {"x": [1, 2]}}),
            ),
            state("users", 1),
        ])
        .write(
            &config,
            &catalog("users", simple_schema(), "append_dedup", 1, 0),
        );
    out.assert_success();
    let cols: Vec<String> = columns(&db, "airbyte_internal", "public_raw__stream_users")
        .await
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(
        cols,
        [
            "_airbyte_raw_id",
            "_airbyte_extracted_at",
            "_airbyte_meta",
            "_airbyte_generation_id",
            "_airbyte_loaded_at",
            "_airbyte_data"
        ]
    );
    let raw = rows(&db, "airbyte_internal", "public_raw__stream_users", "1").await;
    assert_eq!(
        raw[0]["_airbyte_data"],
        json!({"id": 1, "name": "ab", "nested": {"x": [1, 2]}})
    );
    assert_eq!(raw[0]["_airbyte_loaded_at"], Value::Null);
    assert!(
        rows(&db, "public", "users", "1").await.is_empty(),
        "no typed table"
    );
}

/// The schemas whose column type used to differ from destination-s3's Parquet type: an
/// `airbyte_type` without `format`, and a bare `format: time`.
#[tokio::test]
async fn column_types_follow_the_airbyte_type() {
    let (db, config) = database("layout_airbyte_type").await;
    let schema = json!({"type": "object", "properties": {
        "tz": {"type": "string", "airbyte_type": "timestamp_with_timezone"},
        "t": {"type": "string", "airbyte_type": "time_without_timezone"},
        "bare_time": {"type": "string", "format": "time"},
        "maybe_day": {"oneOf": [{"type": "null"}, {"type": "string", "format": "date"}]},
    }});
    let out = Run::new(BIN)
        .stdin_lines([
            record(
                "typed",
                json!({"tz": "2024-02-29T12:00:00+02:00", "t": "12:00:01",
                       "bare_time": "12:00:01+01:00", "maybe_day": "2024-02-29"}),
            ),
            state("typed", 1),
        ])
        .write(&config, &catalog("typed", schema, "append", 1, 0));
    out.assert_success().assert_protocol();
    let cols = columns(&db, "public", "typed").await;
    let user: Vec<(&str, &str)> = cols
        .iter()
        .filter(|(name, _)| !name.starts_with("_airbyte_"))
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        user,
        [
            ("bare_time", "time with time zone"),
            ("maybe_day", "date"),
            ("t", "time without time zone"),
            ("tz", "timestamp with time zone"),
        ]
    );
    let client = db.connect().await;
    let row = client
        .query_one(
            "SELECT tz = '2024-02-29T10:00:00Z'::timestamptz, t::text, bare_time::text, \
             maybe_day::text, _airbyte_meta->'changes' FROM public.typed",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, String>(1), "12:00:01");
    assert_eq!(row.get::<_, String>(2), "12:00:01+01");
    assert_eq!(row.get::<_, String>(3), "2024-02-29");
    assert_eq!(row.get::<_, Value>(4), json!([]));
}
