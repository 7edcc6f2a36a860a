//! Components of the manifest language beyond the basics: schema normalization, decoders of
//! CSV, XML, gzip and zip responses, JWT and selective authentication.

use std::sync::Arc;

use cdk::testing::http::{MockServer, Request, ResponseTemplate};
use serde_json::{Value, json};

use crate::*;

#[tokio::test(flavor = "multi_thread")]
async fn schema_normalization_default_casts_to_the_schema() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/items",
        json_response(json!({"data": [
            {"id": "1", "price": "9.50", "count": 3.9, "flag": "yes", "tags": "solo", "note": 42, "keep": "x"},
            {"id": 2, "price": 7, "count": "many", "flag": "maybe", "tags": ["a"], "note": null, "keep": 1}
        ]})),
    )
    .await;
    let schema = r#"schema_loader:
  type: InlineSchemaLoader
  schema:
    type: object
    properties:
      id: {type: integer}
      price: {type: [number, "null"]}
      count: {type: integer}
      flag: {type: boolean}
      tags: {type: array, items: {type: [string, "null"]}}
      note: {type: [string, "null"]}"#;
    let yaml = one_stream("/items", "", "", schema).replace(
        "field_path: [data]",
        "field_path: [data]\n        schema_normalization: Default",
    );
    let out = manifest(&yaml).read(&config_for(&server), &["items"]);
    out.assert_success();
    assert_eq!(
        out.records_of("items"),
        vec![
            &json!({"id": 1, "price": 9.5, "count": 3, "flag": true, "tags": ["solo"], "note": "42", "keep": "x"}),
            &json!({"id": 2, "price": 7.0, "count": "many", "flag": "maybe", "tags": ["a"], "note": null, "keep": 1}),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grouping_partition_router_batches_partitions() {
    let server = MockServer::start().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    serve(&server, "/items", move |r: &Request| {
        let ids = query(r, "ids").unwrap_or_default();
        s.lock().unwrap().push(ids.clone());
        let data: Vec<Value> = ids
            .split(',')
            .map(|i| json!({"id": i.trim_start_matches('k').parse::<i64>().unwrap()}))
            .collect();
        json_response(json!({ "data": data }))
    })
    .await;
    let router = r#"partition_router:
  type: GroupingPartitionRouter
  group_size: 2
  underlying_partition_router:
    type: ListPartitionRouter
    cursor_field: key
    values: [k1, k2, k3, k1, k4]"#;
    let yaml = one_stream(
        "/items",
        "request_parameters:\n  ids: \"{{ stream_partition['key'] | join(',') }}\"",
        router,
        "",
    );
    let out = manifest(&yaml).read(&config_for(&server), &["items"]);
    out.assert_success();
    let mut got = ids(&out, "items");
    got.sort();
    assert_eq!(got, vec![1, 2, 3, 4]);
    let mut requests = seen.lock().unwrap().clone();
    requests.sort();
    assert_eq!(requests, vec!["k1,k2", "k3,k4"]);

    let with_option = yaml.replace(
        "    values: [k1, k2, k3, k1, k4]",
        "    values: [k1]\n          request_option: {type: RequestOption, inject_into: request_parameter, field_name: key}",
    );
    let out = manifest(&with_option).read(&config_for(&server), &["items"]);
    let (message, _) = trace_error(&out);
    assert!(
        message.contains(
            "GroupingPartitionRouter at /streams/0/retriever/partition_router: request options"
        ),
        "{message}"
    );
}

/// As in airbyte-cdk, the batches of a GroupingPartitionRouter share one (global) cursor: the
/// state has no per-partition entries, and every batch resumes from the global cursor.
#[tokio::test(flavor = "multi_thread")]
async fn grouped_partitions_share_a_global_cursor() {
    let server = MockServer::start().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    serve(&server, "/items", move |r: &Request| {
        let ids = query(r, "ids").unwrap_or_default();
        let since = query(r, "since").unwrap_or_default();
        s.lock().unwrap().push(format!("{ids}@{since}"));
        let data: Vec<Value> = ids
            .split(',')
            .map(|i| {
                let n: i64 = i.trim_start_matches('k').parse().unwrap();
                json!({"id": n, "updated_at": format!("2024-01-0{n}T00:00:00Z")})
            })
            .filter(|r| r["updated_at"].as_str().unwrap() >= since.as_str())
            .collect();
        json_response(json!({ "data": data }))
    })
    .await;
    let router = r#"partition_router:
  type: GroupingPartitionRouter
  group_size: 2
  underlying_partition_router:
    type: ListPartitionRouter
    cursor_field: key
    values: [k1, k2, k3]"#;
    let cursor = r#"incremental_sync:
  type: DatetimeBasedCursor
  cursor_field: updated_at
  datetime_format: "%Y-%m-%dT%H:%M:%SZ"
  start_datetime: "2024-01-01T00:00:00Z"
  start_time_option: {type: RequestOption, inject_into: request_parameter, field_name: since}"#;
    let m = manifest(&one_stream(
        "/items",
        "request_parameters:\n  ids: \"{{ stream_partition['key'] | join(',') }}\"",
        router,
        cursor,
    ));
    let config = config_for(&server);
    let out = m.read_incremental(&config, &["items"], None);
    out.assert_success();
    let last = states(&out, "items").pop().unwrap();
    assert_eq!(last["use_global_cursor"], json!(true), "{last}");
    assert_eq!(last["state"], json!({"updated_at": "2024-01-03T00:00:00Z"}));
    assert!(last.get("states").is_none(), "{last}");

    seen.lock().unwrap().clear();
    let again = m.read_incremental(&config, &["items"], Some(&out.final_state()));
    again.assert_success();
    let mut requests = seen.lock().unwrap().clone();
    requests.sort();
    assert_eq!(
        requests,
        vec!["k1,k2@2024-01-03T00:00:00Z", "k3@2024-01-03T00:00:00Z"]
    );
    assert_eq!(ids(&again, "items"), vec![3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_authenticator_signs_each_request() {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
    let server = MockServer::start().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    serve(&server, "/items", move |r: &Request| {
        let auth = r
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        s.lock().unwrap().push(auth);
        json_response(json!({"data": [{"id": 1}]}))
    })
    .await;
    let auth = r#"authenticator:
  type: JwtAuthenticator
  secret_key: "{{ config['secret'] }}"
  algorithm: HS256
  token_duration: 600
  header_prefix: Bearer
  jwt_headers: {kid: key-1}
  jwt_payload: {iss: "{{ config['issuer'] }}", aud: api}
  additional_jwt_payload: {scope: read}"#;
    let yaml = one_stream("/items", auth, "", "");
    let config = json!({"base_url": server.uri(), "secret": "s3cr3t-signing-key", "issuer": "me@example.com"});
    let out = manifest(&yaml).read(&config, &["items"]);
    out.assert_success();
    let header = seen.lock().unwrap()[0].clone();
    let token = header.strip_prefix("Bearer ").expect("Bearer prefix");
    let h = decode_header(token).unwrap();
    assert_eq!(h.alg, Algorithm::HS256);
    assert_eq!(h.kid.as_deref(), Some("key-1"));
    assert_eq!(h.typ.as_deref(), Some("JWT"));
    let mut v = Validation::new(Algorithm::HS256);
    v.set_audience(&["api"]);
    v.set_issuer(&["me@example.com"]);
    let claims = decode::<Value>(
        token,
        &DecodingKey::from_secret(b"s3cr3t-signing-key").unwrap(),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["scope"], "read");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    assert_eq!(claims["nbf"], claims["iat"]);
    assert!(!out.stdout.contains("s3cr3t-signing-key"));

    // RS256 with a PEM private key (a throwaway test key) verifies with its public key.
    let rsa = yaml.replace("algorithm: HS256", "algorithm: RS256");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures");
    let private = std::fs::read_to_string(fixtures.join("jwt_test_rsa.pem")).unwrap();
    let public = std::fs::read(fixtures.join("jwt_test_rsa.pub")).unwrap();
    let rsa_config =
        json!({"base_url": server.uri(), "secret": private, "issuer": "me@example.com"});
    let out = manifest(&rsa).read(&rsa_config, &["items"]);
    out.assert_success();
    let header = seen.lock().unwrap().last().unwrap().clone();
    let token = header.strip_prefix("Bearer ").expect("Bearer prefix");
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&["api"]);
    let claims = decode::<Value>(token, &DecodingKey::from_rsa_pem(&public).unwrap(), &v)
        .unwrap()
        .claims;
    assert_eq!(claims["iss"], "me@example.com");

    // A key that is not PEM for an RSA algorithm is a clear config error.
    let out = manifest(&rsa).read(&config, &["items"]);
    let (message, _) = trace_error(&out);
    assert!(
        message.contains("the secret key cannot be used for RS256"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn selective_authenticator_follows_the_config() {
    let server = MockServer::start().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    serve(&server, "/items", move |r: &Request| {
        let h = |name: &str| {
            r.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string()
        };
        s.lock()
            .unwrap()
            .push(format!("{} {}", h("authorization"), h("x-api-key")));
        json_response(json!({"data": [{"id": 1}]}))
    })
    .await;
    let auth = r#"authenticator:
  type: SelectiveAuthenticator
  authenticator_selection_path: [credentials, auth_type]
  authenticators:
    token:
      type: BearerAuthenticator
      api_token: "{{ config['credentials']['token'] }}"
    key:
      type: ApiKeyAuthenticator
      api_token: "{{ config['credentials']['key'] }}"
      inject_into: {type: RequestOption, inject_into: header, field_name: X-Api-Key}"#;
    let m = manifest(&one_stream("/items", auth, "", ""));
    let cfg = |creds: Value| json!({"base_url": server.uri(), "credentials": creds});
    m.read(
        &cfg(json!({"auth_type": "token", "token": "t-1"})),
        &["items"],
    )
    .assert_success();
    m.read(&cfg(json!({"auth_type": "key", "key": "k-2"})), &["items"])
        .assert_success();
    assert_eq!(*seen.lock().unwrap(), vec!["Bearer t-1 -", "- k-2"]);

    let out = m.read(&cfg(json!({"auth_type": "oauth"})), &["items"]);
    let (message, _) = trace_error(&out);
    assert!(
        message.contains("the authenticator 'oauth' (from the config at [\"credentials\", \"auth_type\"]) is not among 'authenticators' (key, token)"),
        "{message}"
    );
    let out = m.read(&cfg(json!({})), &["items"]);
    let (message, _) = trace_error(&out);
    assert!(
        message.contains("the config has no value at authenticator_selection_path"),
        "{message}"
    );
}

/// Reads stream `items` with `decoder` (YAML) from a body served as is.
async fn read_decoded(
    body: Vec<u8>,
    content_type: &str,
    decoder: &str,
    field_path: &str,
) -> Vec<Value> {
    let server = MockServer::start().await;
    serve(
        &server,
        "/items",
        cdk::testing::http::ResponseTemplate::new(200).set_body_raw(body, content_type),
    )
    .await;
    let yaml = one_stream("/items", "", decoder, "")
        .replace("field_path: [data]", &format!("field_path: {field_path}"));
    let out = manifest(&yaml).read(&config_for(&server), &["items"]);
    out.assert_success();
    out.records_of("items").into_iter().cloned().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_gzip_zip_and_xml_responses() {
    let csv = b"id;name;note\n1;Ann;n/a\n2;Bob;x\n".to_vec();
    let csv_decoder = "decoder: {type: CsvDecoder, delimiter: ';', set_values_to_none: [n/a]}";
    let expected = vec![
        json!({"id": "1", "name": "Ann", "note": null}),
        json!({"id": "2", "name": "Bob", "note": "x"}),
    ];
    assert_eq!(
        read_decoded(csv.clone(), "text/csv", csv_decoder, "[]").await,
        expected
    );

    // gzip of CSV, sent as a file (no Content-Encoding): the decoder decompresses it.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &csv).unwrap();
    let gz = gz.finish().unwrap();
    let gzip_decoder = "decoder:\n  type: GzipDecoder\n  decoder: {type: CsvDecoder, delimiter: ';', set_values_to_none: [n/a]}";
    assert_eq!(
        read_decoded(gz, "application/gzip", gzip_decoder, "[]").await,
        expected
    );

    // A zip of two JSON Lines files: the records of both, in order.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, text) in [
        ("a.jsonl", "{\"id\": 1}\n{\"id\": 2}\n"),
        ("b.jsonl", "{\"id\": 3}\n"),
    ] {
        zip.start_file(name, stored).unwrap();
        std::io::Write::write_all(&mut zip, text.as_bytes()).unwrap();
    }
    let zipped = zip.finish().unwrap().into_inner();
    let zip_decoder = "decoder:\n  type: ZipfileDecoder\n  decoder: {type: JsonlDecoder}";
    assert_eq!(
        read_decoded(zipped, "application/zip", zip_decoder, "[]").await,
        vec![json!({"id": 1}), json!({"id": 2}), json!({"id": 3})]
    );

    let xml = br#"<?xml version="1.0"?><feed><entry id="7"><title>A &amp; B</title></entry><entry id="8"><title>C</title></entry></feed>"#.to_vec();
    assert_eq!(
        read_decoded(
            xml,
            "application/xml",
            "decoder: {type: XmlDecoder}",
            "[feed, entry]"
        )
        .await,
        vec![
            json!({"@id": "7", "title": "A & B"}),
            json!({"@id": "8", "title": "C"})
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn api_budget_spaces_requests() {
    let server = MockServer::start().await;
    let times = Arc::new(std::sync::Mutex::new(Vec::new()));
    let t = times.clone();
    serve(&server, "/items", move |r: &Request| {
        t.lock().unwrap().push(std::time::Instant::now());
        let k = query(r, "k").unwrap_or_default();
        json_response(json!({"data": [{"id": k.parse::<i64>().unwrap()}]}))
    })
    .await;
    let router = r#"partition_router:
  type: ListPartitionRouter
  cursor_field: k
  values: ["1", "2", "3", "4", "5"]
  request_option: {type: RequestOption, inject_into: request_parameter, field_name: k}"#;
    let budget = |policy: &str| {
        format!(
            "{}api_budget:\n  type: HTTPAPIBudget\n  policies:\n    - {policy}\n",
            one_stream("/items", "", router, "")
        )
    };
    let moving = budget(
        "{type: MovingWindowCallRatePolicy, rates: [{type: Rate, limit: 2, interval: PT1S}], matchers: [{type: HttpRequestRegexMatcher, url_path_pattern: '^/items$'}]}",
    );
    let out = manifest(&moving).read(&config_for(&server), &["items"]);
    out.assert_success();
    assert_eq!(ids(&out, "items").len(), 5);
    let mut at = times.lock().unwrap().clone();
    at.sort();
    assert_eq!(at.len(), 5);
    // No three requests within one second: the fifth waits for the third's window. The
    // times are taken where the server handles each request, which a loaded machine can delay
    // for the first of three more than for the third; without a budget they are milliseconds
    // apart, so half a second still tells.
    for w in at.windows(3) {
        assert!(
            w[2] - w[0] >= std::time::Duration::from_millis(500),
            "{at:?}"
        );
    }

    // A fixed window spent, with no ratelimit-reset header from the API: Airbyte waits out its
    // ten-day first window; this engine says so instead of hanging.
    let fixed =
        budget("{type: FixedWindowCallRatePolicy, period: PT1H, call_limit: 1, matchers: []}");
    let out = manifest(&fixed).read(&config_for(&server), &["items"]);
    let (message, _) = trace_error(&out);
    assert!(
        message.contains("the api_budget allows no call to"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn state_delegating_stream_switches_on_state() {
    let server = MockServer::start().await;
    let hits = Arc::new(std::sync::Mutex::new(Vec::new()));
    for path in ["/all", "/changes"] {
        let h = hits.clone();
        serve(&server, path, move |r: &Request| {
            h.lock().unwrap().push(r.url.path().to_string());
            json_response(json!({"data": [{"id": 1, "updated_at": "2030-01-02T00:00:00Z"}]}))
        })
        .await;
    }
    let stream = |path: &str| {
        format!(
            r#"
      type: DeclarativeStream
      name: items
      primary_key: id
      retriever:
        type: SimpleRetriever
        requester: {{type: HttpRequester, url_base: "{{{{ config['base_url'] }}}}", path: {path}}}
        record_selector: {{type: RecordSelector, extractor: {{type: DpathExtractor, field_path: [data]}}}}
      incremental_sync:
        type: DatetimeBasedCursor
        cursor_field: updated_at
        datetime_format: "%Y-%m-%dT%H:%M:%SZ"
        start_datetime: "2020-01-01T00:00:00Z"
        end_datetime: "2030-06-01T00:00:00Z""#
        )
    };
    let yaml = |extra: &str| {
        format!(
            "version: 6.0.0\ntype: DeclarativeSource\ncheck: {{type: CheckStream, stream_names: [items]}}\nstreams:\n  - type: StateDelegatingStream\n    name: items\n{extra}    full_refresh_stream:{}\n    incremental_stream:{}\n",
            stream("/all"),
            stream("/changes")
        )
    };
    let m = manifest(&yaml(""));
    let config = config_for(&server);
    let first = m.read_incremental(&config, &["items"], None);
    first.assert_success();
    let state = first.final_state();
    let again = m.read_incremental(&config, &["items"], Some(&state));
    again.assert_success();
    assert_eq!(*hits.lock().unwrap(), vec!["/all", "/changes"]);

    // A state older than the API's retention period reads the full refresh stream again.
    hits.lock().unwrap().clear();
    let old = json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "items"},
        "stream_state": {"updated_at": "2021-01-01T00:00:00Z"}}}]);
    let retained = manifest(&yaml("    api_retention_period: P30D\n"));
    retained
        .read_incremental(&config, &["items"], Some(&old))
        .assert_success();
    retained
        .read_incremental(&config, &["items"], Some(&state))
        .assert_success();
    assert_eq!(*hits.lock().unwrap(), vec!["/all", "/changes"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamic_streams_from_an_api() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/tables",
        json_response(json!({"tables": [{"name": "alpha", "id": 1}, {"name": "beta", "id": 2}]})),
    )
    .await;
    serve(
        &server,
        "/tables/2/rows",
        json_response(json!({"rows": [{"id": 20}, {"id": 21}]})),
    )
    .await;
    let yaml = r#"version: 6.0.0
type: DeclarativeSource
check: {type: CheckStream, stream_names: [alpha]}
streams: []
dynamic_streams:
  - type: DynamicDeclarativeStream
    name: tables
    stream_template:
      type: DeclarativeStream
      name: placeholder
      primary_key: id
      retriever:
        type: SimpleRetriever
        requester: {type: HttpRequester, url_base: "{{ config['base_url'] }}", path: placeholder}
        record_selector: {type: RecordSelector, extractor: {type: DpathExtractor, field_path: [rows]}}
    components_resolver:
      type: HttpComponentsResolver
      retriever:
        type: SimpleRetriever
        requester: {type: HttpRequester, url_base: "{{ config['base_url'] }}", path: /tables}
        record_selector: {type: RecordSelector, extractor: {type: DpathExtractor, field_path: [tables]}}
      components_mapping:
        - {type: ComponentMappingDefinition, field_path: [name], value: "{{ components_values['name'] }}"}
        - {type: ComponentMappingDefinition, field_path: [retriever, requester, path], value: "/tables/{{ components_values['id'] }}/rows"}
"#;
    let m = manifest(yaml);
    let config = config_for(&server);
    let catalog = m.run().discover(&config);
    catalog.assert_success();
    let names: Vec<String> = catalog
        .catalog()
        .streams
        .iter()
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(names, vec!["alpha", "beta"]);
    let out = m.read(&config, &["beta"]);
    out.assert_success();
    assert_eq!(ids(&out, "beta"), vec![20, 21]);
}

#[tokio::test(flavor = "multi_thread")]
async fn clamping_aligns_slices_to_days() {
    let server = MockServer::start().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    serve(&server, "/items", move |r: &Request| {
        s.lock().unwrap().push(format!(
            "{}..{}",
            query(r, "from").unwrap_or_default(),
            query(r, "to").unwrap_or_default()
        ));
        json_response(json!({"data": []}))
    })
    .await;
    let cursor = r#"incremental_sync:
  type: DatetimeBasedCursor
  cursor_field: updated_at
  datetime_format: "%Y-%m-%dT%H:%M:%SZ"
  start_datetime: "2024-01-01T10:00:00Z"
  end_datetime: "2024-01-04T12:00:00Z"
  step: P1D
  cursor_granularity: PT1S
  clamping: {target: DAY}
  start_time_option: {type: RequestOption, inject_into: request_parameter, field_name: from}
  end_time_option: {type: RequestOption, inject_into: request_parameter, field_name: to}"#;
    let out =
        manifest(&one_stream("/items", "", "", cursor)).read(&config_for(&server), &["items"]);
    out.assert_success();
    let mut got = seen.lock().unwrap().clone();
    got.sort();
    assert_eq!(
        got,
        vec![
            "2024-01-02T00:00:00Z..2024-01-02T23:59:59Z",
            "2024-01-03T00:00:00Z..2024-01-03T23:59:59Z"
        ]
    );
}

/// A first slice clamped up to the next midnight leaves a gap after the start: airbyte-cdk's
/// state stays at the start (its slices never join the interval the state stands for), and so
/// does ours; from a start on a day boundary the state follows the records.
#[tokio::test(flavor = "multi_thread")]
async fn clamping_gap_after_the_start_keeps_the_state() {
    let server = MockServer::start().await;
    serve(&server, "/items", |r: &Request| {
        let (from, to) = (
            query(r, "from").unwrap_or_default(),
            query(r, "to").unwrap_or_default(),
        );
        let data: Vec<Value> = (1..=4)
            .map(|d| json!({"id": d, "updated_at": format!("2024-01-0{d}T06:00:00Z")}))
            .filter(|i| {
                let at = i["updated_at"].as_str().unwrap();
                from.as_str() <= at && at <= to.as_str()
            })
            .collect();
        json_response(json!({ "data": data }))
    })
    .await;
    let cursor = |start: &str| {
        format!(
            r#"incremental_sync:
  type: DatetimeBasedCursor
  cursor_field: updated_at
  datetime_format: "%Y-%m-%dT%H:%M:%SZ"
  start_datetime: "{start}"
  end_datetime: "2024-01-04T12:00:00Z"
  step: P1D
  cursor_granularity: PT1S
  clamping: {{target: DAY}}
  start_time_option: {{type: RequestOption, inject_into: request_parameter, field_name: from}}
  end_time_option: {{type: RequestOption, inject_into: request_parameter, field_name: to}}"#
        )
    };
    let config = config_for(&server);
    let gapped = manifest(&one_stream(
        "/items",
        "",
        "",
        &cursor("2024-01-01T10:00:00Z"),
    ));
    let out = gapped.read_incremental(&config, &["items"], None);
    out.assert_success();
    assert_eq!(ids(&out, "items").len(), 2, "days 2 and 3");
    assert_eq!(
        states(&out, "items").last().unwrap(),
        &json!({"updated_at": "2024-01-01T10:00:00Z"})
    );
    let aligned = manifest(&one_stream(
        "/items",
        "",
        "",
        &cursor("2024-01-01T00:00:00Z"),
    ));
    let out = aligned.read_incremental(&config, &["items"], None);
    out.assert_success();
    assert_eq!(ids(&out, "items").len(), 3, "days 1 to 3");
    assert_eq!(
        states(&out, "items").last().unwrap(),
        &json!({"updated_at": "2024-01-03T06:00:00Z"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn record_expander_emits_nested_items() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/items",
        json_response(json!({"data": [
            {"order": "o1", "lines": [{"id": 1}, {"id": 2}]},
            {"order": "o2", "lines": []},
            {"order": "o3", "lines": [{"id": 3}]}
        ]})),
    )
    .await;
    let yaml = one_stream("/items", "", "", "").replace(
        "field_path: [data]",
        "field_path: [data]\n          record_expander:\n            type: RecordExpander\n            expand_records_from_field: [lines]\n            parent_fields:\n              - {type: ParentFieldPath, parent_path: [order], record_path: [order_id]}",
    );
    let out = manifest(&yaml).read(&config_for(&server), &["items"]);
    out.assert_success();
    assert_eq!(
        out.records_of("items"),
        vec![
            &json!({"id": 1, "order_id": "o1"}),
            &json!({"id": 2, "order_id": "o1"}),
            &json!({"id": 3, "order_id": "o3"})
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn data_feed_stops_at_records_older_than_the_state() {
    let server = MockServer::start().await;
    let pages = Arc::new(std::sync::Mutex::new(Vec::new()));
    let p = pages.clone();
    serve(&server, "/items", move |r: &Request| {
        let page: i64 = query(r, "page").map_or(1, |v| v.parse().unwrap());
        p.lock().unwrap().push(page);
        // Newest first: page 1 has days 9, 8, 7; page 2 days 6, 5, 4; page 3 days 3, 2, 1.
        let data: Vec<Value> = (0..3)
            .map(|i| {
                let day = 10 - ((page - 1) * 3 + i + 1);
                json!({"id": day, "updated_at": format!("2024-01-{day:02}T00:00:00Z")})
            })
            .collect();
        json_response(json!({ "data": data }))
    })
    .await;
    let paginator = r#"paginator:
  type: DefaultPaginator
  pagination_strategy: {type: PageIncrement, page_size: 3, start_from_page: 1}
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: page}"#;
    let cursor = r#"incremental_sync:
  type: DatetimeBasedCursor
  cursor_field: updated_at
  datetime_format: "%Y-%m-%dT%H:%M:%SZ"
  start_datetime: "2024-01-01T00:00:00Z"
  is_data_feed: true"#;
    let m = manifest(&one_stream("/items", "", paginator, cursor));
    let state = json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "items"},
        "stream_state": {"updated_at": "2024-01-05T00:00:00Z"}}}]);
    let out = m.read_incremental(&config_for(&server), &["items"], Some(&state));
    out.assert_success();
    assert_eq!(*pages.lock().unwrap(), vec![1, 2]);
    assert_eq!(ids(&out, "items"), vec![9, 8, 7, 6, 5]);
    assert_eq!(
        states(&out, "items").last().unwrap(),
        &json!({"updated_at": "2024-01-09T00:00:00Z"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn incrementing_count_cursor_keeps_the_largest_id() {
    let server = MockServer::start().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    serve(&server, "/items", move |r: &Request| {
        let since: i64 = query(r, "since_id").map_or(-1, |v| v.parse().unwrap());
        s.lock().unwrap().push(since);
        let data: Vec<Value> = [5, 7, 6]
            .iter()
            .filter(|i| **i > since)
            .map(|i| json!({"id": i}))
            .collect();
        json_response(json!({ "data": data }))
    })
    .await;
    let cursor = r#"incremental_sync:
  type: IncrementingCountCursor
  cursor_field: id
  start_value: "{{ config['first_id'] }}"
  start_value_option: {type: RequestOption, inject_into: request_parameter, field_name: since_id}"#;
    let m = manifest(&one_stream("/items", "", "", cursor));
    let mut config = config_for(&server);
    config["first_id"] = json!(0);
    let catalog = |state: Option<&Value>| {
        let cat = json!({"streams": [{"stream": {"name": "items", "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"],
            "source_defined_cursor": true, "default_cursor_field": ["id"]},
            "sync_mode": "incremental", "cursor_field": ["id"], "destination_sync_mode": "append"}]});
        let out = m.run().read(&config, &cat, state);
        out.assert_protocol();
        out
    };
    let first = catalog(None);
    first.assert_success();
    assert_eq!(ids(&first, "items"), vec![5, 7, 6]);
    assert_eq!(states(&first, "items").last().unwrap(), &json!({"id": 7}));
    let again = catalog(Some(&first.final_state()));
    again.assert_success();
    assert!(ids(&again, "items").is_empty());
    assert_eq!(*seen.lock().unwrap(), vec![0, 7]);
    assert_eq!(states(&again, "items").last().unwrap(), &json!({"id": 7}));

    // With a partition router it is refused, as airbyte-cdk refuses it.
    let router = "partition_router: {type: ListPartitionRouter, cursor_field: k, values: [a, b]}";
    let partitioned = manifest(&one_stream("/items", "", router, cursor));
    let out = partitioned.read(&config, &["items"]);
    let (message, _) = trace_error(&out);
    assert!(
        message.contains("an IncrementingCountCursor with a partition router is not supported")
            && message.contains("/streams/0"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_pagination_reads_again_from_the_first_page() {
    let server = MockServer::start().await;
    let (count, respond) = counting(|n, r: &Request| {
        let page: i64 = query(r, "page").map_or(1, |v| v.parse().unwrap());
        // The first request for page 2 says the pagination must start over.
        if page == 2 && n == 1 {
            return ResponseTemplate::new(400).set_body_json(json!({"error": "cursor expired"}));
        }
        let data: Vec<Value> = if page <= 2 {
            vec![json!({"id": page * 10}), json!({"id": page * 10 + 1})]
        } else {
            vec![]
        };
        json_response(json!({ "data": data }))
    });
    serve(&server, "/items", respond).await;
    let retriever = r#"paginator:
  type: DefaultPaginator
  pagination_strategy: {type: PageIncrement, page_size: 2, start_from_page: 1}
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: page}"#;
    let handler = r#"error_handler:
  type: DefaultErrorHandler
  response_filters:
    - {type: HttpResponseFilter, action: RESET_PAGINATION, error_message_contains: cursor expired}"#;
    let out = manifest(&one_stream("/items", handler, retriever, ""))
        .read(&config_for(&server), &["items"]);
    out.assert_success();
    // Page 1 is read twice (as Airbyte does: its records are emitted again), then pages 2 and 3.
    assert_eq!(ids(&out, "items"), vec![10, 11, 10, 11, 20, 21]);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 5);
}
