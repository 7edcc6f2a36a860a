//! Cursor incremental: Airbyte's state shapes, `cursor_record_count` keeping rows that share
//! the last cursor value, null cursors, views, and resuming from intermediate states.

use std::collections::BTreeSet;

use cdk::protocol::{AirbyteStateMessage, SyncMode};
use cdk::testing::{Captured, Run};
use serde_json::{Value, json};

use crate::{BIN, config, configure, database, discover};

fn ids(run: &Captured, stream: &str) -> Vec<i64> {
    run.records_of(stream)
        .iter()
        .map(|r| r["id"].as_i64().expect("id"))
        .collect()
}

fn state_file(state: &AirbyteStateMessage) -> Value {
    let mut s = state.clone();
    s.source_stats = None;
    json!([s])
}

fn stream_state(state: &AirbyteStateMessage) -> &Value {
    state
        .stream
        .as_ref()
        .and_then(|s| s.stream_state.as_ref())
        .expect("a stream state")
}

#[tokio::test]
async fn rows_sharing_the_last_cursor_are_neither_lost_nor_repeated_forever() {
    let db = database("incr").await;
    db.execute(
        "CREATE TABLE events (id serial PRIMARY KEY, updated_at timestamp, v text);
         INSERT INTO events (updated_at, v)
           SELECT '2024-01-01'::timestamp + ((i - 1) / 5) * interval '1 hour', 'v' || i
           FROM generate_series(1, 50) i;",
    )
    .await;
    let cfg = config(&db, json!({"sync_checkpoint_records": 7}));
    let catalog = discover(&cfg);
    let configured = configure(
        &catalog,
        &[("events", SyncMode::Incremental, Some("updated_at"))],
    );

    // First sync: the initial load in ctid order, its states carrying the cursor state to
    // switch to, then that cursor state.
    let first = Run::new(BIN).read(&cfg, &configured, None);
    first.assert_success().assert_protocol();
    assert_eq!(ids(&first, "events"), (1..=50).collect::<Vec<_>>());
    let states = first.states_of("events");
    assert!(states.len() >= 8, "{} states", states.len());
    let ctid = stream_state(states[0]);
    assert_eq!(ctid["state_type"], "ctid");
    assert_eq!(ctid["version"], 2);
    assert!(ctid["relation_filenode"].is_i64());
    let last = stream_state(states[states.len() - 1]);
    assert_eq!(
        last,
        &json!({"state_type": "cursor_based", "version": 2, "stream_name": "events",
            "stream_namespace": "public", "cursor_field": ["updated_at"],
            "cursor": "2024-01-01T09:00:00.000000", "cursor_record_count": 5})
    );
    assert_eq!(ctid["incremental_state"], *last);

    // New rows: three more at the last cursor value, ten later, two without a cursor.
    db.execute(
        "INSERT INTO events (updated_at, v) SELECT '2024-01-01 09:00', 'same' FROM generate_series(1, 3);
         INSERT INTO events (updated_at, v)
           SELECT '2024-01-02'::timestamp + i * interval '1 minute', 'later' FROM generate_series(1, 10) i;
         INSERT INTO events (updated_at, v) VALUES (NULL, 'null cursor'), (NULL, 'null cursor');",
    )
    .await;
    let second = Run::new(BIN).read(&cfg, &configured, Some(&first.final_state()));
    second.assert_success().assert_protocol();
    let got = ids(&second, "events");
    // The 8 rows at the old cursor (5 again, at least once) and the 10 later ones.
    let expected: BTreeSet<i64> = (46..=63).collect();
    assert_eq!(
        got.iter().copied().collect::<BTreeSet<_>>(),
        expected,
        "{got:?}"
    );
    assert!(
        !got.contains(&64) && !got.contains(&65),
        "null cursors are not read again"
    );
    let end = stream_state(second.states_of("events").last().expect("a state"));
    assert_eq!(end["cursor"], "2024-01-02T00:10:00.000000");
    assert_eq!(end["cursor_record_count"], 1);

    // Nothing new: nothing read, and the same state again.
    let third = Run::new(BIN).read(&cfg, &configured, Some(&second.final_state()));
    third.assert_success().assert_protocol();
    assert_eq!(ids(&third, "events"), Vec::<i64>::new());
    assert_eq!(
        stream_state(third.states_of("events")[0]),
        end,
        "the state stays where it was"
    );

    // Resuming from each intermediate state of the second read loses nothing after it.
    let states = second.states_of("events");
    for (i, state) in states.iter().enumerate() {
        let resumed = Run::new(BIN).read(&cfg, &configured, Some(&state_file(state)));
        resumed.assert_success();
        let after = records_after_state(&second, i);
        let again: BTreeSet<i64> = ids(&resumed, "events").into_iter().collect();
        for id in after {
            resumed.ensure(
                again.contains(&id),
                &format!("row {id} lost resuming from state #{i}"),
            );
        }
    }
}

/// Ids of records that came after the `index`-th state of a run.
fn records_after_state(run: &Captured, index: usize) -> Vec<i64> {
    let mut seen = 0;
    let mut out = Vec::new();
    for m in &run.messages {
        match m {
            cdk::protocol::AirbyteMessage::State { .. } => seen += 1,
            cdk::protocol::AirbyteMessage::Record { record } if seen > index => {
                out.push(record.data["id"].as_i64().expect("id"))
            }
            _ => {}
        }
    }
    out
}

#[tokio::test]
async fn views_read_by_cursor_from_the_start_and_numeric_cursors_stay_exact() {
    let db = database("incr_view").await;
    db.execute(
        "CREATE TABLE prices (id int PRIMARY KEY, amount numeric(30, 10));
         INSERT INTO prices SELECT i, 100000000000000000 + i / 10.0 FROM generate_series(1, 20) i;
         CREATE VIEW expensive AS SELECT * FROM prices WHERE id > 5;",
    )
    .await;
    let cfg = config(&db, json!({"sync_checkpoint_records": 4}));
    let catalog = discover(&cfg);
    let view = catalog
        .streams
        .iter()
        .find(|s| s.name == "expensive")
        .unwrap();
    assert_eq!(view.is_resumable, Some(false));
    assert_eq!(view.source_defined_primary_key, None);
    let configured = configure(
        &catalog,
        &[("expensive", SyncMode::Incremental, Some("amount"))],
    );
    let first = Run::new(BIN).read(&cfg, &configured, None);
    first.assert_success().assert_protocol();
    assert_eq!(ids(&first, "expensive"), (6..=20).collect::<Vec<_>>());
    let end = stream_state(first.states_of("expensive").last().unwrap()).clone();
    assert_eq!(end["state_type"], "cursor_based");
    assert_eq!(end["cursor"], "100000000000000002.0000000000");
    db.execute("INSERT INTO prices VALUES (21, 100000000000000002.0000000001)")
        .await;
    let second = Run::new(BIN).read(&cfg, &configured, Some(&first.final_state()));
    second.assert_success();
    assert_eq!(ids(&second, "expensive"), vec![21]);
}

#[tokio::test]
async fn a_cursor_that_cannot_be_one_is_a_config_error() {
    let db = database("incr_bad").await;
    db.execute("CREATE TABLE t (id int, doc jsonb); INSERT INTO t VALUES (1, '{}')")
        .await;
    let cfg = config(&db, json!({}));
    let catalog = discover(&cfg);
    for (cursor, expected) in [("doc", "cannot be a cursor"), ("nope", "is not a column")] {
        let configured = configure(&catalog, &[("t", SyncMode::Incremental, Some(cursor))]);
        let run = Run::new(BIN).read(&cfg, &configured, None);
        run.assert_failure().assert_protocol();
        let errors = run.trace_errors();
        run.ensure(
            errors.iter().any(|e| {
                e.internal_message
                    .as_deref()
                    .unwrap_or("")
                    .contains(expected)
                    || e.message.contains(expected)
            }),
            &format!("expected an error containing {expected:?}"),
        );
    }
}
