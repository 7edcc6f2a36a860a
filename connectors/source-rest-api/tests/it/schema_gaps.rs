//! Fields of the manifest schema that were once refused: `truncated_list_retriever`,
//! JWT algorithms and keys, `profile_assertion`, `config_normalization_rules`,
//! `lazy_read_pointer`, a pagination strategy's `decoder`, and
//! `allow_catalog_defined_cursor_field`.

use super::*;

/// `record_expander` with a `truncated_list_retriever` reading `/orders/{id}/lines`, paginated.
fn truncated_manifest() -> String {
    let expander = r#"field_path: [data]
          record_expander:
            type: RecordExpander
            expand_records_from_field: [lines, data]
            truncation_indicator_path: [lines, has_more]
            parent_fields:
              - {type: ParentFieldPath, parent_path: [id], record_path: [order_id]}
            truncated_list_retriever:
              type: SimpleRetriever
              requester:
                type: HttpRequester
                url_base: "{{ config['base_url'] }}"
                path: "/orders/{{ stream_slice['parent_record']['id'] }}/lines"
                http_method: GET
              record_selector:
                type: RecordSelector
                extractor: {type: DpathExtractor, field_path: [data]}
              paginator:
                type: DefaultPaginator
                page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: after}
                pagination_strategy:
                  type: CursorPagination
                  cursor_value: "{{ response.next }}"
                  stop_condition: "{{ not response.next }}""#;
    one_stream("/orders", "", "", "").replace("field_path: [data]", expander)
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_lists_are_fetched_once_per_truncated_record() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/orders",
        json_response(json!({"data": [
            {"id": "o1", "lines": {"has_more": false, "data": [{"n": 1}]}},
            {"id": "o2", "lines": {"has_more": true, "total_count": 3, "data": [{"n": 2}]}},
            {"id": "o3", "lines": {"has_more": true, "total_count": 1, "data": [{"n": 9}]}},
        ]})),
    )
    .await;
    serve(&server, "/orders/o2/lines", |r: &Request| {
        match query(r, "after").as_deref() {
            None => json_response(json!({"data": [{"n": 2}, {"n": 3}], "next": "c2"})),
            Some(_) => json_response(json!({"data": [{"n": 4}], "next": null})),
        }
    })
    .await;
    // The complete list of o3 comes back empty: its embedded items are the fallback.
    serve(
        &server,
        "/orders/o3/lines",
        json_response(json!({"data": []})),
    )
    .await;
    let out = manifest(&truncated_manifest()).read(&config_for(&server), &["items"]);
    out.assert_success();
    assert_eq!(
        out.records_of("items"),
        vec![
            &json!({"n": 1, "order_id": "o1"}),
            &json!({"n": 2, "order_id": "o2"}),
            &json!({"n": 3, "order_id": "o2"}),
            &json!({"n": 4, "order_id": "o2"}),
            &json!({"n": 9, "order_id": "o3"}),
        ]
    );
    let requests: Vec<String> = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| format!("{}?{}", r.url.path(), r.url.query().unwrap_or("")))
        .collect();
    assert_eq!(
        requests,
        vec![
            "/orders?",
            "/orders/o2/lines?",
            "/orders/o2/lines?after=c2",
            "/orders/o3/lines?"
        ]
    );
    // o3 reports one item in total and got none fetched: warned once.
    let warned = out
        .logs()
        .iter()
        .filter(|l| l.message.contains("returned 0 record(s)"))
        .count();
    assert_eq!(warned, 1, "{}", out.describe());
}

#[test]
fn truncated_list_retriever_refuses_what_airbyte_refuses() {
    let yaml = truncated_manifest().replace(
        "            truncation_indicator_path: [lines, has_more]\n",
        "",
    );
    let out = manifest(&yaml)
        .run()
        .check(&json!({"base_url": "http://127.0.0.1:9"}));
    let status = out.connection_status();
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or("")
            .contains("`truncation_indicator_path` is required"),
        "{}",
        out.describe()
    );
    let yaml = truncated_manifest().replace(
        "              paginator:\n",
        "              partition_router: {type: ListPartitionRouter, values: [a], cursor_field: x}\n              paginator:\n",
    );
    let out = manifest(&yaml)
        .run()
        .check(&json!({"base_url": "http://127.0.0.1:9"}));
    let status = out.connection_status();
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or("")
            .contains("`partition_router` is not supported on `truncated_list_retriever`"),
        "{}",
        out.describe()
    );
}

/// The Authorization headers a JWT-authenticated read of `/items` sent, with `algorithm`,
/// the key in `config['secret']` and `extra` YAML on the authenticator.
async fn jwt_tokens(algorithm: &str, key: &str, extra: &str, config_extra: Value) -> Vec<String> {
    let server = MockServer::start().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    serve(&server, "/items", move |r: &Request| {
        let auth = r.headers.get("authorization").and_then(|v| v.to_str().ok());
        s.lock().unwrap().push(auth.unwrap_or_default().to_string());
        json_response(json!({"data": [{"id": 1}]}))
    })
    .await;
    let auth = format!(
        "authenticator:\n  type: JwtAuthenticator\n  secret_key: \"{{{{ config['secret'] }}}}\"\n  algorithm: {algorithm}\n  jwt_payload: {{iss: me}}\n{extra}"
    );
    let mut config = json!({"base_url": server.uri(), "secret": key});
    if let (Value::Object(c), Value::Object(e)) = (&mut config, config_extra) {
        c.extend(e);
    }
    let out = manifest(&one_stream("/items", &auth, "", "")).read(&config, &["items"]);
    out.assert_success();
    assert!(!out.stdout.contains("open-sesame"), "the passphrase leaked");
    seen.lock().unwrap().clone()
}

fn fixture(name: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures");
    std::fs::read_to_string(dir.join(name)).unwrap()
}

/// The signing input, the raw signature and the decoded header and claims of a token.
fn jws_parts(token: &str) -> (String, Vec<u8>, Value, Value) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let json = |p: &str| serde_json::from_slice::<Value>(&b64.decode(p).unwrap()).unwrap();
    (
        format!("{}.{}", parts[0], parts[1]),
        b64.decode(parts[2]).unwrap(),
        json(parts[0]),
        json(parts[1]),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_es256k_and_es512_verify_with_their_public_keys() {
    use k256::ecdsa::signature::Verifier as _;
    use k256::pkcs8::DecodePublicKey as _;
    let tokens = jwt_tokens("ES256K", &fixture("jwt_test_secp256k1.pem"), "", json!({})).await;
    let (input, sig, header, claims) = jws_parts(&tokens[0]);
    assert_eq!(header, json!({"alg": "ES256K", "typ": "JWT"}));
    assert_eq!(claims["iss"], "me");
    assert_eq!(sig.len(), 64);
    let public =
        k256::ecdsa::VerifyingKey::from_public_key_pem(&fixture("jwt_test_secp256k1.pub")).unwrap();
    let sig = k256::ecdsa::Signature::from_slice(&sig).unwrap();
    public
        .verify(input.as_bytes(), &sig)
        .expect("ES256K signature verifies");

    // P-521 from a SEC1 `EC PRIVATE KEY`: 66-byte r and s.
    let tokens = jwt_tokens("ES512", &fixture("jwt_test_p521.pem"), "", json!({})).await;
    let (input, sig, header, _) = jws_parts(&tokens[0]);
    assert_eq!(header["alg"], "ES512");
    assert_eq!(sig.len(), 132);
    let public =
        p521::ecdsa::VerifyingKey::from_public_key_pem(&fixture("jwt_test_p521.pub")).unwrap();
    let sig = p521::ecdsa::Signature::from_slice(&sig).unwrap();
    public
        .verify(input.as_bytes(), &sig)
        .expect("ES512 signature verifies");
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_passphrase_decrypts_an_encrypted_pkcs8_key() {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
    let tokens = jwt_tokens(
        "RS256",
        &fixture("jwt_test_rsa_encrypted.pem"),
        "  passphrase: \"{{ config['pass'] }}\"",
        json!({"pass": "open-sesame"}),
    )
    .await;
    let public = fixture("jwt_test_rsa.pub");
    let claims = decode::<Value>(
        &tokens[0],
        &DecodingKey::from_rsa_pem(public.as_bytes()).unwrap(),
        &Validation::new(Algorithm::RS256),
    )
    .unwrap()
    .claims;
    assert_eq!(claims["iss"], "me");

    // An OpenSSL traditional encrypted PEM (`Proc-Type: 4,ENCRYPTED`, AES-256-CBC).
    let tokens = jwt_tokens(
        "RS256",
        &fixture("jwt_test_rsa_legacy.pem"),
        "  passphrase: \"{{ config['pass'] }}\"",
        json!({"pass": "open-sesame"}),
    )
    .await;
    decode::<Value>(
        &tokens[0],
        &DecodingKey::from_rsa_pem(public.as_bytes()).unwrap(),
        &Validation::new(Algorithm::RS256),
    )
    .expect("the legacy-encrypted key signs");

    // A wrong passphrase is a config error naming the decryption.
    let server = MockServer::start().await;
    serve(&server, "/items", json_response(json!({"data": []}))).await;
    let auth = "authenticator:\n  type: JwtAuthenticator\n  secret_key: \"{{ config['secret'] }}\"\n  algorithm: RS256\n  passphrase: wrong";
    let config = json!({"base_url": server.uri(), "secret": fixture("jwt_test_rsa_encrypted.pem")});
    let out = manifest(&one_stream("/items", auth, "", "")).read(&config, &["items"]);
    let (message, failure) = trace_error(&out);
    assert!(
        message.contains("the passphrase-protected secret key cannot be decrypted"),
        "{message}"
    );
    assert_eq!(failure, Some(FailureType::ConfigError));
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth_profile_assertion_sends_a_jwt_bearer_grant() {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
    let server = MockServer::start().await;
    let forms = Arc::new(std::sync::Mutex::new(Vec::new()));
    let f = forms.clone();
    serve_post(&server, "/token", move |r: &Request| {
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&r.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        f.lock().unwrap().push(form);
        json_response(json!({"access_token": "at-1", "expires_in": 3600}))
    })
    .await;
    let auths = Arc::new(std::sync::Mutex::new(Vec::new()));
    let a = auths.clone();
    serve(&server, "/items", move |r: &Request| {
        let auth = r.headers.get("authorization").and_then(|v| v.to_str().ok());
        a.lock().unwrap().push(auth.unwrap_or_default().to_string());
        json_response(json!({"data": [{"id": 1}]}))
    })
    .await;
    let auth = r#"authenticator:
  type: OAuthAuthenticator
  token_refresh_endpoint: "{{ config['base_url'] }}/token"
  client_id: ignored-in-this-flow
  client_secret: ignored-too
  scopes: [read]
  use_profile_assertion: true
  profile_assertion:
    type: JwtAuthenticator
    secret_key: "{{ config['secret'] }}"
    algorithm: HS256
    jwt_payload: {iss: client-7, aud: "{{ config['base_url'] }}/token"}"#;
    let config = json!({"base_url": server.uri(), "secret": "assertion-key"});
    let out = manifest(&one_stream("/items", auth, "", "")).read(&config, &["items"]);
    out.assert_success();
    let forms = forms.lock().unwrap().clone();
    assert_eq!(forms.len(), 1);
    let keys: Vec<&str> = forms[0].iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, vec!["grant_type", "assertion"]);
    assert_eq!(forms[0][0].1, "urn:ietf:params:oauth:grant-type:jwt-bearer");
    let mut v = Validation::new(Algorithm::HS256);
    v.set_audience(&[format!("{}/token", server.uri())]);
    let claims = decode::<Value>(
        &forms[0][1].1,
        &DecodingKey::from_secret(b"assertion-key").unwrap(),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["iss"], "client-7");
    assert_eq!(*auths.lock().unwrap(), vec!["Bearer at-1"]);

    // The flow without its assertion is refused as airbyte-cdk refuses it.
    let cut = auth.find("\n  profile_assertion:").unwrap();
    let yaml = one_stream("/items", &auth[..cut], "", "");
    let out = manifest(&yaml).read(&config, &["items"]);
    let (message, _) = trace_error(&out);
    assert!(
        message.contains("'profile_assertion' is required"),
        "{message}"
    );
}

/// A manifest whose `config_normalization_rules` migrate `old_key` to `api_key`, derive
/// `host` from `base_url`, and validate the JSON string at `filters`.
fn normalized_manifest() -> String {
    let yaml = one_stream(
        "/items",
        "request_headers: {X-Key: \"{{ config['api_key'] }}\"}",
        "",
        "",
    )
    .replace("{{ config['base_url'] }}", "{{ config['host'] }}");
    format!(
        r#"{yaml}
spec:
  type: Spec
  connection_specification:
    type: object
    properties:
      base_url: {{type: string}}
  config_normalization_rules:
    type: ConfigNormalizationRules
    config_migrations:
      - type: ConfigMigration
        description: old_key is now api_key
        transformations:
          - type: ConfigAddFields
            fields: [{{path: [api_key], value: "{{{{ config['old_key'] }}}}"}}]
            condition: "{{{{ config.get('old_key') is not none }}}}"
          - type: ConfigRemoveFields
            field_pointers: [[old_key]]
    transformations:
      - type: ConfigAddFields
        fields: [{{path: [host], value: "{{{{ config['base_url'] }}}}/v2"}}]
    validations:
      - type: DpathValidator
        field_path: [filters]
        validation_strategy:
          type: ValidateAdheresToSchema
          base_schema: {{type: object, required: [status]}}
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn config_normalization_rules_migrate_transform_and_validate() {
    let server = MockServer::start().await;
    let keys = Arc::new(std::sync::Mutex::new(Vec::new()));
    let k = keys.clone();
    serve(&server, "/v2/items", move |r: &Request| {
        let key = r.headers.get("x-key").and_then(|v| v.to_str().ok());
        k.lock().unwrap().push(key.unwrap_or_default().to_string());
        json_response(json!({"data": [{"id": 1}]}))
    })
    .await;
    let m = manifest(&normalized_manifest());
    let config =
        json!({"base_url": server.uri(), "old_key": "k-1", "filters": "{\"status\": \"open\"}"});
    let out = m.read(&config, &["items"]);
    out.assert_success();
    assert_eq!(ids(&out, "items"), vec![1]);
    assert_eq!(*keys.lock().unwrap(), vec!["k-1"]);
    // The migrated config (not the transformed one) is announced once.
    let migrated: Vec<Value> = controls(&out)
        .into_iter()
        .map(|c| c["connectorConfig"]["config"].clone())
        .collect();
    assert_eq!(
        migrated,
        vec![
            json!({"base_url": server.uri(), "api_key": "k-1", "filters": "{\"status\": \"open\"}"})
        ]
    );
    // An already migrated config is not announced again.
    let config = json!({"base_url": server.uri(), "api_key": "k-2", "filters": {"status": "x"}});
    let out = m.read(&config, &["items"]);
    out.assert_success();
    assert!(controls(&out).is_empty(), "{}", out.describe());
    assert_eq!(*keys.lock().unwrap(), vec!["k-1", "k-2"]);

    // A config breaking a validation fails check with the schema's reason.
    let bad = json!({"base_url": server.uri(), "api_key": "k", "filters": "{\"state\": 1}"});
    let out = m.run().check(&bad);
    let message = out.connection_status().message.clone().unwrap_or_default();
    assert!(
        message.contains("JSON schema validation error") && message.contains("status"),
        "{}",
        out.describe()
    );
    let bad = json!({"base_url": server.uri(), "api_key": "k", "filters": "not json"});
    let out = m.read(&bad, &["items"]);
    let (message, failure) = trace_error(&out);
    assert!(
        message.contains("Invalid JSON string: not json"),
        "{message}"
    );
    assert_eq!(failure, Some(FailureType::ConfigError));
    assert_eq!(
        keys.lock().unwrap().len(),
        2,
        "no request with an invalid config"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lazy_read_pointer_reads_the_first_child_page_from_the_parent() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/projects",
        json_response(json!({"data": [
            {"id": "p1", "issues": {"data": [{"id": 1}], "next": "c2"}},
            {"id": "p2", "issues": {"data": [{"id": 3}], "next": null}},
            {"id": "p3"},
        ]})),
    )
    .await;
    serve(&server, "/projects/p1/issues", |r: &Request| {
        assert_eq!(query(r, "after").as_deref(), Some("c2"));
        json_response(json!({"data": [{"id": 2}], "next": null}))
    })
    .await;
    let yaml = r##"version: 6.0.0
type: DeclarativeSource
check: {type: CheckStream, stream_names: [issues]}
definitions:
  requester: {type: HttpRequester, url_base: "{{ config['base_url'] }}", http_method: GET}
  selector:
    type: RecordSelector
    extractor: {type: DpathExtractor, field_path: [data]}
streams:
  - type: DeclarativeStream
    name: issues
    primary_key: [id]
    retriever:
      type: SimpleRetriever
      requester:
        $ref: "#/definitions/requester"
        path: "/projects/{{ stream_partition['project_id'] }}/issues"
      record_selector: {$ref: "#/definitions/selector"}
      paginator:
        type: DefaultPaginator
        page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: after}
        pagination_strategy:
          type: CursorPagination
          cursor_value: "{{ response.next }}"
          stop_condition: "{{ not response.next }}"
      partition_router:
        type: SubstreamPartitionRouter
        parent_stream_configs:
          - type: ParentStreamConfig
            parent_key: id
            partition_field: project_id
            lazy_read_pointer: [issues]
            stream:
              type: DeclarativeStream
              name: projects
              primary_key: [id]
              retriever:
                type: SimpleRetriever
                requester: {$ref: "#/definitions/requester", path: /projects}
                record_selector: {$ref: "#/definitions/selector"}
"##;
    let out = manifest(yaml).read(&config_for(&server), &["issues"]);
    out.assert_success();
    let mut got = ids(&out, "issues");
    got.sort();
    assert_eq!(got, vec![1, 2, 3]);
    let requests: Vec<String> = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| format!("{}?{}", r.url.path(), r.url.query().unwrap_or("")))
        .collect();
    // p3 embeds nothing: an empty first page, no request.
    assert_eq!(requests, vec!["/projects?", "/projects/p1/issues?after=c2"]);

    let wildcard = yaml.replace("lazy_read_pointer: [issues]", "lazy_read_pointer: [\"*\"]");
    let out = manifest(&wildcard).read(&config_for(&server), &["issues"]);
    let (message, _) = trace_error(&out);
    assert!(
        message.contains("wildcard in 'lazy_read_pointer' is not supported"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_decoder_on_cursor_pagination_is_ignored_as_airbyte_ignores_it() {
    let server = MockServer::start().await;
    serve(&server, "/items", |r: &Request| {
        match query(r, "after").as_deref() {
            None => json_response(json!({"data": [{"id": 1}], "next": "c2"})),
            Some(_) => json_response(json!({"data": [{"id": 2}], "next": null})),
        }
    })
    .await;
    let paginator = r#"paginator:
  type: DefaultPaginator
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: after}
  pagination_strategy:
    type: CursorPagination
    cursor_value: "{{ response.next }}"
    stop_condition: "{{ not response.next }}"
    decoder: {type: XmlDecoder}"#;
    let ids = read_ids(
        &config_for(&server),
        &one_stream("/items", "", paginator, ""),
    );
    assert_eq!(ids, vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn allow_catalog_defined_cursor_field_uses_the_catalogs_cursor() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/items",
        json_response(json!({"data": [
            {"id": 1, "updated_at": "2024-01-05T00:00:00Z", "created_at": "2024-01-02T00:00:00Z"},
            {"id": 2, "updated_at": "2024-01-03T00:00:00Z", "created_at": "2024-01-04T00:00:00Z"},
        ]})),
    )
    .await;
    let cursor = r#"incremental_sync:
  type: DatetimeBasedCursor
  cursor_field: updated_at
  allow_catalog_defined_cursor_field: true
  datetime_format: "%Y-%m-%dT%H:%M:%SZ"
  start_datetime: "2024-01-01T00:00:00Z"
  end_datetime: "2024-01-10T00:00:00Z""#;
    let m = manifest(&one_stream("/items", "", "", cursor));
    let config = config_for(&server);
    let discovered = m.run().discover(&config);
    let stream = &discovered.catalog().streams[0];
    assert_eq!(stream.source_defined_cursor, Some(false));
    assert_eq!(
        stream.default_cursor_field,
        Some(vec!["updated_at".to_string()])
    );

    let with_cursor = |field: Value| {
        json!({"streams": [{"stream": {"name": "items", "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"]},
            "sync_mode": "incremental", "cursor_field": field, "destination_sync_mode": "append"}]})
    };
    let out = m
        .run()
        .read(&config, &with_cursor(json!(["created_at"])), None);
    out.assert_success();
    assert_eq!(
        states(&out, "items").last(),
        Some(&json!({"created_at": "2024-01-04T00:00:00Z"}))
    );
    // Without a pick the manifest's cursor field is used; a nested one is refused.
    let out = m.run().read(&config, &with_cursor(json!([""])), None);
    out.assert_success();
    assert_eq!(
        states(&out, "items").last(),
        Some(&json!({"updated_at": "2024-01-05T00:00:00Z"}))
    );
    let out = m.run().read(&config, &with_cursor(json!(["a", "b"])), None);
    let (message, _) = trace_error(&out);
    assert!(
        message.contains("does not support nested cursor_field"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn snake_case_and_flattening_transformations() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/items",
        json_response(json!({"data": [
            {"id": 1, "UserName": "a", "Meta": {"CreatedAt": "t"}, "attrs": {"x": 1, "y": 2}, "tags": ["p", "q"]}
        ]})),
    )
    .await;
    let transformations = r#"transformations:
  - type: KeysToSnakeCase
  - type: DpathFlattenFields
    field_path: [attrs]
    delete_origin_value: true
    key_transformation: {type: KeyTransformation, prefix: "attr_"}
  - type: FlattenFields"#;
    let out = manifest(&one_stream("/items", "", "", transformations))
        .read(&config_for(&server), &["items"]);
    out.assert_success();
    assert_eq!(
        out.records_of("items"),
        vec![
            &json!({"id": 1, "user_name": "a", "meta.created_at": "t", "attr_x": 1, "attr_y": 2, "tags.0": "p", "tags.1": "q"})
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn request_body_graphql_is_sent_as_a_json_query() {
    let server = MockServer::start().await;
    let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let bs = bodies.clone();
    serve_post(&server, "/graphql", move |r: &Request| {
        bs.lock()
            .unwrap()
            .push(serde_json::from_slice::<Value>(&r.body).unwrap());
        json_response(json!({"data": [{"id": 1}]}))
    })
    .await;
    let body = r#"request_body:
  type: RequestBodyGraphQL
  value:
    query: "query { items(owner: \"{{ config['owner'] }}\") { id } }"
    variables: {first: 10}"#;
    let yaml =
        one_stream("/graphql", body, "", "").replace("http_method: GET", "http_method: POST");
    let mut config = config_for(&server);
    config["owner"] = json!("me");
    let ids = read_ids(&config, &yaml);
    assert_eq!(ids, vec![1]);
    assert_eq!(
        *bodies.lock().unwrap(),
        vec![json!({"query": "query { items(owner: \"me\") { id } }", "variables": {"first": 10}})]
    );
}

/// `items` plus a `ConditionalStreams` stream `extra` (when `config['extra']`) and dynamic
/// streams `t_<id>` reading `/t/<id>` for each of `config['tables']`, with `check`.
fn conditional_manifest(check: &str) -> String {
    let base = one_stream("/items", "", "", "");
    let template = |name: &str, path: &str| {
        format!(
            r#"{{type: DeclarativeStream, name: {name}, retriever: {{type: SimpleRetriever,
          requester: {{type: HttpRequester, url_base: "{{{{ config['base_url'] }}}}", path: "{path}"}},
          record_selector: {{type: RecordSelector, extractor: {{type: DpathExtractor, field_path: [data]}}}}}}}}"#
        )
    };
    let base = base.replacen(
        "check:\n  type: CheckStream\n  stream_names: [items]\n",
        &format!("check:\n{check}\n"),
        1,
    );
    format!(
        r#"{base}  - type: ConditionalStreams
    condition: "{{{{ config.get('extra', False) }}}}"
    streams:
      - {extra}
dynamic_streams:
  - type: DynamicDeclarativeStream
    name: tables
    stream_template: {tmpl}
    components_resolver:
      type: ConfigComponentsResolver
      stream_config: {{type: StreamConfig, configs_pointer: [tables]}}
      components_mapping:
        - {{type: ComponentMappingDefinition, field_path: [name], value: "t_{{{{ components_values['id'] }}}}"}}
        - {{type: ComponentMappingDefinition, field_path: [retriever, requester, path], value: "/t/{{{{ components_values['id'] }}}}"}}
"#,
        extra = template("extra", "/extra"),
        tmpl = template("x", "/x"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_streams_and_dynamic_stream_checks() {
    let server = MockServer::start().await;
    for path in ["/items", "/extra", "/t/1", "/t/2"] {
        serve(&server, path, json_response(json!({"data": [{"id": 1}]}))).await;
    }
    serve(&server, "/t/3", ResponseTemplate::new(401)).await;
    let mut config = config_for(&server);
    config["tables"] = json!([{"id": 1}, {"id": 2}]);
    let check = "  type: CheckStream\n  stream_names: [items]\n  dynamic_streams_check_configs:\n    - {type: DynamicStreamCheckConfig, dynamic_stream_name: tables, stream_count: 1}";
    let m = manifest(&conditional_manifest(check));
    let names = |out: &Captured| -> Vec<String> {
        out.catalog()
            .streams
            .iter()
            .map(|s| s.name.clone())
            .collect()
    };
    assert_eq!(
        names(&m.run().discover(&config)),
        vec!["items", "t_1", "t_2"]
    );
    config["extra"] = json!(true);
    assert_eq!(
        names(&m.run().discover(&config)),
        vec!["items", "extra", "t_1", "t_2"]
    );
    let out = m.read(&config, &["extra"]);
    out.assert_success();
    assert_eq!(ids(&out, "extra"), vec![1]);

    // The dynamic check reads the first generated stream only: t_3 (refused) is second.
    config["tables"] = json!([{"id": 1}, {"id": 3}]);
    let out = m.run().check(&config);
    assert_eq!(
        out.connection_status().status,
        cdk::protocol::ConnectionStatus::Succeeded,
        "{}",
        out.describe()
    );
    let all = check.replace(", stream_count: 1", "");
    let out = manifest(&conditional_manifest(&all)).run().check(&config);
    let message = out.connection_status().message.clone().unwrap_or_default();
    assert!(message.contains("t_3"), "{}", out.describe());
    let unknown = check.replace("dynamic_stream_name: tables", "dynamic_stream_name: nope");
    let out = manifest(&conditional_manifest(&unknown))
        .run()
        .check(&config);
    let message = out.connection_status().message.clone().unwrap_or_default();
    assert!(
        message.contains("Dynamic stream nope is not found in manifest."),
        "{message}"
    );

    // CheckDynamicStream reads the first streams, static then dynamic.
    let first = "  type: CheckDynamicStream\n  stream_count: 4";
    let out = manifest(&conditional_manifest(first)).run().check(&config);
    let message = out.connection_status().message.clone().unwrap_or_default();
    assert!(message.contains("t_3"), "{}", out.describe());
    let first = "  type: CheckDynamicStream\n  stream_count: 3";
    let out = manifest(&conditional_manifest(first)).run().check(&config);
    assert_eq!(
        out.connection_status().status,
        cdk::protocol::ConnectionStatus::Succeeded,
        "{}",
        out.describe()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_time_from_response_reads_the_wait_from_the_body() {
    let server = MockServer::start().await;
    let times = Arc::new(std::sync::Mutex::new(Vec::new()));
    let t = times.clone();
    let (_, respond) = counting(move |n, _| {
        t.lock().unwrap().push(std::time::Instant::now());
        match n {
            0 => ResponseTemplate::new(429).set_body_json(json!({"error": {"retry_in": 0.4}})),
            _ => json_response(json!({"data": [{"id": 1}]})),
        }
    });
    serve(&server, "/items", respond).await;
    let handler = r#"error_handler:
  type: DefaultErrorHandler
  backoff_strategies:
    - type: WaitTimeFromResponse
      wait_time_in_seconds: "{{ response.error.retry_in }}"
      max_waiting_time_in_seconds: 5"#;
    let yaml = one_stream("/items", handler, "", "");
    assert_eq!(read_ids(&config_for(&server), &yaml), vec![1]);
    let at = times.lock().unwrap().clone();
    assert_eq!(at.len(), 2);
    assert!(
        at[1] - at[0] >= std::time::Duration::from_millis(400),
        "{at:?}"
    );

    // A wait at or over the maximum stops the stream.
    let server = MockServer::start().await;
    serve(
        &server,
        "/items",
        ResponseTemplate::new(429).set_body_json(json!({"error": {"retry_in": 60}})),
    )
    .await;
    let out = manifest(&yaml).read(&config_for(&server), &["items"]);
    let (message, failure) = trace_error(&out);
    assert!(
        message.contains("longer than the connector is allowed to wait"),
        "{message}"
    );
    assert_eq!(failure, Some(FailureType::TransientError));
}

#[tokio::test(flavor = "multi_thread")]
async fn combined_extractor_unions_or_takes_the_first_match() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/both",
        json_response(json!({"issues": [{"id": 1}], "pulls": [{"id": 2}, {"id": 3}]})),
    )
    .await;
    serve(&server, "/paged", |r: &Request| {
        match query(r, "offset").as_deref() {
            None => json_response(json!({"data": [null, {"id": 4}]})),
            _ => json_response(json!({"data": [{"id": 5}]})),
        }
    })
    .await;
    let combined = |mode: &str, paths: &str, extra: &str| {
        format!(
            "extractor:\n          type: CombinedExtractor\n          mode: {mode}\n{extra}          extractors:\n{paths}"
        )
    };
    let dpath = |p: &str| format!("            - {{type: DpathExtractor, field_path: {p}}}\n");
    let yaml = |path: &str, extractor: String, retriever: &str| {
        one_stream(path, "", retriever, "").replace(
            "extractor:\n          type: DpathExtractor\n          field_path: [data]",
            extractor.trim_end(),
        )
    };
    let union = combined("union", &(dpath("[issues]") + &dpath("[pulls]")), "");
    assert_eq!(
        read_ids(&config_for(&server), &yaml("/both", union, "")),
        vec![1, 2, 3]
    );
    let first = combined(
        "first_match",
        &(dpath("[missing]") + &dpath("[pulls]") + &dpath("[issues]")),
        "",
    );
    assert_eq!(
        read_ids(&config_for(&server), &yaml("/both", first, "")),
        vec![2, 3]
    );

    // Dropped empty records still count toward the page size, as airbyte-cdk counts them.
    let paginator = r#"paginator:
  type: DefaultPaginator
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: offset}
  pagination_strategy: {type: OffsetIncrement, page_size: 2}"#;
    let skipping = combined(
        "first_match",
        &dpath("[data]"),
        "          skip_empty_records: true\n",
    );
    assert_eq!(
        read_ids(&config_for(&server), &yaml("/paged", skipping, paginator)),
        vec![4, 5]
    );

    // A union (nested too) under an OffsetIncrement is refused, as airbyte-cdk refuses it: the
    // offset would move by the records of all the parts.
    let nested = "            - type: CombinedExtractor\n              extractors: [{type: DpathExtractor, field_path: [data]}]\n";
    for parts in [dpath("[data]"), nested.to_string()] {
        for mode in ["union", "first_match"] {
            if mode == "first_match" && !parts.contains("CombinedExtractor") {
                continue;
            }
            let union = yaml("/paged", combined(mode, &parts, ""), paginator);
            let out = manifest(&union).read(&config_for(&server), &["items"]);
            let (message, failure) = trace_error(&out);
            assert!(
                message.contains("mode \"union\" is not supported with an OffsetIncrement"),
                "{mode} {parts}: {message}"
            );
            assert_eq!(failure, Some(FailureType::ConfigError));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn union_partition_router_reads_each_value_once() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/repos",
        json_response(json!({"data": [{"name": "b"}, {"name": "c"}]})),
    )
    .await;
    for (repo, id) in [("a", 1), ("b", 2), ("c", 3)] {
        serve(
            &server,
            &format!("/issues/{repo}"),
            json_response(json!({"data": [{"id": id}]})),
        )
        .await;
    }
    let router = r#"partition_router:
  type: UnionPartitionRouter
  partition_field: repo
  partition_routers:
    - {type: ListPartitionRouter, cursor_field: repo, values: [a, b]}
    - type: SubstreamPartitionRouter
      parent_stream_configs:
        - type: ParentStreamConfig
          parent_key: name
          partition_field: repo
          stream:
            type: DeclarativeStream
            name: repos
            retriever:
              type: SimpleRetriever
              requester: {type: HttpRequester, url_base: "{{ config['base_url'] }}", path: /repos}
              record_selector: {type: RecordSelector, extractor: {type: DpathExtractor, field_path: [data]}}"#;
    let yaml = one_stream("/issues/{{ stream_partition['repo'] }}", "", router, "");
    let mut got = read_ids(&config_for(&server), &yaml);
    got.sort();
    assert_eq!(got, vec![1, 2, 3]);
    let mut paths: Vec<String> = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| r.url.path().to_string())
        .filter(|p| p.starts_with("/issues"))
        .collect();
    paths.sort();
    assert_eq!(paths, vec!["/issues/a", "/issues/b", "/issues/c"]);

    let mismatch = one_stream(
        "/issues/{{ stream_partition['repo'] }}",
        "",
        &router.replace(
            "partition_field: repo\n          stream:",
            "partition_field: other\n          stream:",
        ),
        "",
    );
    let out = manifest(&mismatch).read(&config_for(&server), &["items"]);
    let (message, _) = trace_error(&out);
    assert!(message.contains("but a child emits 'other'"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamic_schema_loader_builds_the_schema_from_an_endpoint() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/fields",
        json_response(json!({"data": [{"fields": [
            {"name": "id", "type": "int"},
            {"name": "title", "type": "text"},
            {"name": "tags", "type": "list"},
            {"name": "secret", "type": "text"},
            {"name": "when"}
        ]}]})),
    )
    .await;
    let loader = r#"schema_loader:
  type: DynamicSchemaLoader
  retriever:
    type: SimpleRetriever
    requester: {type: HttpRequester, url_base: "{{ config['base_url'] }}", path: /fields}
    record_selector: {type: RecordSelector, extractor: {type: DpathExtractor, field_path: [data]}}
  schema_filter: {type: RecordFilter, condition: "{{ 'secret' not in record }}"}
  schema_type_identifier:
    type: SchemaTypeIdentifier
    schema_pointer: [fields]
    key_pointer: [name]
    type_pointer: [type]
    types_mapping:
      - {type: TypesMap, current_type: int, target_type: integer}
      - {type: TypesMap, current_type: text, target_type: string}
      - {type: TypesMap, current_type: list, target_type: {type: ComplexFieldType, field_type: array, items: string}}"#;
    let m = manifest(&one_stream("/items", "", "", loader));
    let out = m.run().discover(&config_for(&server));
    let schema = serde_json::to_value(&out.catalog().streams[0].json_schema).unwrap();
    assert_eq!(
        schema,
        json!({
            "$schema": "https://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": true,
            "properties": {
                "id": {"type": ["null", "integer"]},
                "title": {"type": ["null", "string"]},
                "tags": {"type": ["null", "array"], "items": {"type": ["null", "string"]}},
                "when": {"type": ["null", "string"]}
            }
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_session_token_authenticator_validates_or_logs_in() {
    let server = MockServer::start().await;
    serve(&server, "/api/validate", |r: &Request| {
        let token = r.headers.get("x-session").and_then(|v| v.to_str().ok());
        ResponseTemplate::new(if token == Some("good") { 200 } else { 401 })
    })
    .await;
    let logins = Arc::new(std::sync::Mutex::new(Vec::new()));
    let l = logins.clone();
    serve_post(&server, "/api/login", move |r: &Request| {
        l.lock()
            .unwrap()
            .push(serde_json::from_slice::<Value>(&r.body).unwrap());
        json_response(json!({"token": "tok-1"}))
    })
    .await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    serve(&server, "/api/items", move |r: &Request| {
        let token = r.headers.get("x-session").and_then(|v| v.to_str().ok());
        s.lock()
            .unwrap()
            .push(token.unwrap_or_default().to_string());
        json_response(json!({"data": [{"id": 1}]}))
    })
    .await;
    let auth = r#"authenticator:
  type: LegacySessionTokenAuthenticator
  header: X-Session
  login_url: /login
  validate_session_url: /validate
  session_token: "{{ config['token'] }}"
  session_token_response_key: token
  username: "{{ config['user'] }}"
  password: "{{ config['pass'] }}""#;
    let yaml = one_stream("/items", auth, "", "").replace(
        "url_base: \"{{ config['base_url'] }}\"",
        "url_base: \"{{ config['base_url'] }}/api\"",
    );
    let config =
        |token: &str| json!({"base_url": server.uri(), "token": token, "user": "u", "pass": "p"});
    assert_eq!(read_ids(&config("good"), &yaml), vec![1]);
    assert!(logins.lock().unwrap().is_empty());
    assert_eq!(read_ids(&config("stale"), &yaml), vec![1]);
    assert_eq!(
        *logins.lock().unwrap(),
        vec![json!({"username": "u", "password": "p"})]
    );
    assert_eq!(*seen.lock().unwrap(), vec!["good", "tok-1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_config_overrides_apply_to_the_check_only() {
    let server = MockServer::start().await;
    for path in ["/eu/items", "/us/items"] {
        serve(&server, path, json_response(json!({"data": [{"id": 1}]}))).await;
    }
    let yaml = one_stream("/{{ config['region'] }}/items", "", "", "").replacen(
        "  stream_names: [items]\n",
        "  stream_names: [items]\n  config_overrides: {region: eu}\n",
        1,
    );
    let m = manifest(&yaml);
    let mut config = config_for(&server);
    config["region"] = json!("us");
    let out = m.run().check(&config);
    assert_eq!(
        out.connection_status().status,
        cdk::protocol::ConnectionStatus::Succeeded,
        "{}",
        out.describe()
    );
    m.read(&config, &["items"]).assert_success();
    let paths: Vec<String> = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| r.url.path().to_string())
        .collect();
    assert_eq!(paths, vec!["/eu/items", "/us/items"]);

    let reserved = yaml.replace("{region: eu}", "{__airbyte_check_stream_names: [x]}");
    let out = manifest(&reserved).run().check(&config);
    let message = out
        .trace_errors()
        .first()
        .map(|e| e.message.clone())
        .or_else(|| out.connection_status().message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("reserved config key"),
        "{}",
        out.describe()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_groups_block_simultaneous_reads() {
    let server = MockServer::start().await;
    let times = Arc::new(std::sync::Mutex::new(Vec::new()));
    for path in ["/items", "/others"] {
        let t = times.clone();
        serve(&server, path, move |_: &Request| {
            t.lock().unwrap().push(std::time::Instant::now());
            json_response(json!({"data": [{"id": 1}]}))
                .set_delay(std::time::Duration::from_millis(400))
        })
        .await;
    }
    let base = one_stream("/items", "", "", "");
    let start = base.find("  - type: DeclarativeStream").unwrap();
    let second = base[start..]
        .replace("name: items", "name: others")
        .replace("path: /items", "path: /others");
    let yaml = format!(
        "{base}{second}stream_groups:\n  shared:\n    streams:\n      - {{type: DeclarativeStream, name: items}}\n      - {{type: DeclarativeStream, name: others}}\n    action: {{type: BlockSimultaneousSyncsAction}}\n"
    );
    let out = manifest(&yaml).read(&config_for(&server), &["items", "others"]);
    out.assert_success();
    assert_eq!(
        out.records_of("items").len() + out.records_of("others").len(),
        2
    );
    let mut at = times.lock().unwrap().clone();
    at.sort();
    assert_eq!(at.len(), 2);
    assert!(
        at[1] - at[0] >= std::time::Duration::from_millis(400),
        "{at:?}"
    );
}
