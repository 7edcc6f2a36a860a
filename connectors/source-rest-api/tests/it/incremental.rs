//! DatetimeBasedCursor: slicing by step and granularity, start/end request options, the
//! state Airbyte's engine writes, resuming from it, lookback windows, epoch formats, future
//! states and client-side filtering.

use std::sync::{Arc, Mutex};

use cdk::testing::http::{MockServer, Request};
use serde_json::{Value, json};

use crate::*;

/// Items updated at noon on each day of January 2024 (id = day).
fn items() -> Vec<Value> {
    (1..=9)
        .map(|d| json!({"id": d, "updated_at": format!("2024-01-{d:02}T12:00:00Z")}))
        .collect()
}

/// Serves `items()` filtered by `since`/`until` (inclusive, when given); logs the windows.
async fn server() -> (
    MockServer,
    Arc<Mutex<Vec<(Option<String>, Option<String>)>>>,
) {
    let server = MockServer::start().await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    serve(&server, "/items", move |r: &Request| {
        let (since, until) = (query(r, "since"), query(r, "until"));
        l.lock().unwrap().push((since.clone(), until.clone()));
        let data: Vec<Value> = items()
            .into_iter()
            .filter(|i| {
                let u = i["updated_at"].as_str().unwrap();
                since.as_deref().is_none_or(|s| u >= s) && until.as_deref().is_none_or(|t| u <= t)
            })
            .collect();
        json_response(json!({ "data": data }))
    })
    .await;
    (server, log)
}

const CURSOR: &str = r#"incremental_sync:
  type: DatetimeBasedCursor
  cursor_field: updated_at
  datetime_format: "%Y-%m-%dT%H:%M:%SZ"
  start_datetime:
    type: MinMaxDatetime
    datetime: "{{ config['start_date'] }}"
    datetime_format: "%Y-%m-%d"
  end_datetime: "{{ config['end_date'] }}"
  step: P3D
  cursor_granularity: PT1S
  start_time_option: {type: RequestOption, inject_into: request_parameter, field_name: since}
  end_time_option: {type: RequestOption, inject_into: request_parameter, field_name: until}"#;

/// The `items` stream read in 3-day windows on `updated_at` (the `CURSOR` above).
fn windowed() -> Manifest {
    manifest(&one_stream("/items", "", "", CURSOR))
}

fn config(server: &MockServer) -> Value {
    json!({"base_url": server.uri(), "start_date": "2024-01-02", "end_date": "2024-01-08T23:59:59Z"})
}

#[tokio::test(flavor = "multi_thread")]
async fn slices_state_and_resume() {
    let (server, log) = server().await;
    let m = windowed();
    let out = m.read_incremental(&config(&server), &["items"], None);
    out.assert_success();
    let mut got = ids(&out, "items");
    got.sort();
    assert_eq!(got, (2..=8).collect::<Vec<_>>());
    let mut windows = log.lock().unwrap().clone();
    windows.sort();
    let w = |a: &str, b: &str| (Some(a.to_string()), Some(b.to_string()));
    assert_eq!(
        windows,
        vec![
            w("2024-01-02T00:00:00Z", "2024-01-04T23:59:59Z"),
            w("2024-01-05T00:00:00Z", "2024-01-07T23:59:59Z"),
            w("2024-01-08T00:00:00Z", "2024-01-08T23:59:59Z"),
        ]
    );
    let st = states(&out, "items");
    assert_eq!(
        st.last(),
        Some(&json!({"updated_at": "2024-01-08T12:00:00Z"}))
    );
    assert!(st.len() >= 2, "a state per completed slice: {st:?}");
    // Every state is one Airbyte writes: the cursor field and a value in datetime_format.
    for s in &st {
        assert_eq!(s.as_object().unwrap().len(), 1, "{s}");
    }

    // A second read resumes from the state and reads only what is at or after it.
    log.lock().unwrap().clear();
    let state = out.final_state();
    let again = m.read_incremental(&config(&server), &["items"], Some(&state));
    again.assert_success();
    assert_eq!(ids(&again, "items"), vec![8]);
    let first = log.lock().unwrap().iter().filter_map(|w| w.0.clone()).min();
    assert_eq!(first.as_deref(), Some("2024-01-08T12:00:00Z"));
    assert_eq!(
        states(&again, "items").last(),
        Some(&json!({"updated_at": "2024-01-08T12:00:00Z"}))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn future_state_reads_nothing_and_keeps_the_state() {
    let (server, log) = server().await;
    let m = windowed();
    let future = json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "items"}, "stream_state": {"updated_at": "2999-01-01T00:00:00Z"}}}]);
    let out = m.read_incremental(&config(&server), &["items"], Some(&future));
    out.assert_success();
    assert!(out.records_of("items").is_empty());
    assert!(
        log.lock().unwrap().is_empty(),
        "no request for an empty window"
    );
    assert_eq!(
        states(&out, "items"),
        vec![json!({"updated_at": "2999-01-01T00:00:00Z"})]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_first_sync_states_the_start() {
    let (server, _) = server().await;
    let m = windowed();
    let mut cfg = config(&server);
    cfg["start_date"] = json!("2024-02-01");
    cfg["end_date"] = json!("2024-02-02T00:00:00Z");
    let out = m.read_incremental(&cfg, &["items"], None);
    out.assert_success();
    assert!(out.records_of("items").is_empty());
    assert_eq!(
        states(&out, "items").last(),
        Some(&json!({"updated_at": "2024-02-01T00:00:00Z"}))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lookback_window_rereads_before_the_state() {
    let (server, log) = server().await;
    let m = manifest(&one_stream(
        "/items",
        "",
        "",
        &format!("{CURSOR}\n  lookback_window: P2D"),
    ));
    let state = json!({"updated_at": "2024-01-07T00:00:00Z"});
    let out = m.read_incremental(&config(&server), &["items"], Some(&json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "items"}, "stream_state": state}}])));
    out.assert_success();
    let first = log.lock().unwrap().iter().filter_map(|w| w.0.clone()).min();
    assert_eq!(first.as_deref(), Some("2024-01-05T00:00:00Z"));
    let mut got = ids(&out, "items");
    got.sort();
    assert_eq!(got, vec![5, 6, 7, 8]);
}

#[tokio::test(flavor = "multi_thread")]
async fn full_refresh_of_an_incremental_stream_reads_from_the_start() {
    let (server, _) = server().await;
    let m = windowed();
    let out = m.read(&config(&server), &["items"]);
    out.assert_success();
    assert_eq!(out.records_of("items").len(), 7);
    assert_eq!(
        states(&out, "items"),
        vec![json!({"__ab_no_cursor_state_message": true})]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn epoch_formats_and_cursor_datetime_formats() {
    let server = MockServer::start().await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    serve(&server, "/events", move |r: &Request| {
        l.lock().unwrap().push((query(r, "from"), query(r, "to")));
        // Cursor values in milliseconds, one in seconds-with-text.
        json_response(json!({"data": [
            {"id": 1, "updated_at": 1704196800000i64},
            {"id": 2, "updated_at": "2024-01-03 00:00:00"}
        ]}))
    })
    .await;
    let cursor = r#"incremental_sync:
  type: DatetimeBasedCursor
  cursor_field: updated_at
  datetime_format: "%s"
  cursor_datetime_formats: ["%ms", "%Y-%m-%d %H:%M:%S"]
  start_datetime: "{{ config['start'] }}"
  end_datetime: "{{ config['end'] }}"
  start_time_option: {type: RequestOption, inject_into: request_parameter, field_name: from}
  end_time_option: {type: RequestOption, inject_into: request_parameter, field_name: to}"#;
    let m = manifest(&one_stream("/events", "", "", cursor));
    let cfg = json!({"base_url": server.uri(), "start": "1704067200", "end": "1704412800"});
    let out = m.read_incremental(&cfg, &["items"], None);
    out.assert_success();
    assert_eq!(
        log.lock().unwrap()[0],
        (Some("1704067200".into()), Some("1704412800".into()))
    );
    // The state is in datetime_format (%s): 2024-01-03T00:00:00Z.
    assert_eq!(
        states(&out, "items").last(),
        Some(&json!({"updated_at": "1704240000"}))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_side_incremental_filters_old_records() {
    let server = MockServer::start().await;
    serve(&server, "/items", |_: &Request| {
        json_response(json!({ "data": items() }))
    })
    .await;
    let cursor = r#"incremental_sync:
  type: DatetimeBasedCursor
  cursor_field: updated_at
  datetime_format: "%Y-%m-%dT%H:%M:%SZ"
  start_datetime: "2024-01-01T00:00:00Z"
  is_client_side_incremental: true"#;
    let m = manifest(&one_stream("/items", "", "", cursor));
    let state = json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "items"}, "stream_state": {"updated_at": "2024-01-06T12:00:00Z"}}}]);
    let out = m.read_incremental(&json!({"base_url": server.uri()}), &["items"], Some(&state));
    out.assert_success();
    assert_eq!(ids(&out, "items"), vec![6, 7, 8, 9]);
    assert_eq!(
        states(&out, "items").last(),
        Some(&json!({"updated_at": "2024-01-09T12:00:00Z"}))
    );
}
