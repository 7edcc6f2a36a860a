//! source-csv (the bundled sales sample, 60 rows in 3 files) → destination-postgres: typed
//! columns, values equal to the CSV's, and incremental append across three syncs (nothing new,
//! then only a new file's rows).

use std::path::{Path, PathBuf};

use cdk::testing::postgres::TestPostgres;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;

use crate::common::{Sync, write_json};

const SCHEMA: &str = "csv_pipeline";

/// A sale as the CSV says it, typed the way the pipeline should type it.
#[derive(Debug, PartialEq)]
struct Sale {
    order_id: i64,
    ordered_at: DateTime<Utc>,
    customer: String,
    product: String,
    quantity: i64,
    unit_price: f64,
    paid: bool,
    region: String,
    shipped_on: Option<NaiveDate>,
    note: String,
    /// File name the row came from (the end of `_ab_source_file_url`).
    file: String,
}

/// Reads the expected rows straight from the CSV files with the `csv` crate.
fn sales_in(files: &[PathBuf]) -> Vec<Sale> {
    let mut sales = Vec::new();
    for file in files {
        let mut reader = csv::Reader::from_path(file).unwrap();
        for row in reader.records() {
            let r = row.unwrap();
            sales.push(Sale {
                order_id: r[0].parse().unwrap(),
                ordered_at: DateTime::parse_from_rfc3339(&r[1]).unwrap().to_utc(),
                customer: r[2].to_string(),
                product: r[3].to_string(),
                quantity: r[4].parse().unwrap(),
                unit_price: r[5].parse().unwrap(),
                paid: r[6].parse().unwrap(),
                region: r[7].to_string(),
                shipped_on: (!r[8].is_empty()).then(|| r[8].parse().unwrap()),
                // Empty text stays an empty string: only non-text columns turn empty into null.
                note: r[9].to_string(),
                file: file.file_name().unwrap().to_string_lossy().into_owned(),
            });
        }
    }
    sales.sort_by_key(|s| s.order_id);
    sales
}

async fn loaded(client: &tokio_postgres::Client) -> Vec<Sale> {
    let rows = client
        .query(
            &format!(
                "SELECT order_id, ordered_at, customer, product, quantity, unit_price::text,
                        paid, region, shipped_on, note, _ab_source_file_url
                 FROM \"{SCHEMA}\".sales_data ORDER BY order_id, _airbyte_extracted_at"
            ),
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            let url: String = r.get(10);
            Sale {
                order_id: r.get(0),
                ordered_at: r.get(1),
                customer: r.get(2),
                product: r.get(3),
                quantity: r.get(4),
                unit_price: r.get::<_, String>(5).parse().unwrap(),
                paid: r.get(6),
                region: r.get(7),
                shipped_on: r.get(8),
                note: r.get(9),
                file: Path::new(&url)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_files_load_into_typed_postgres_tables_incrementally() {
    let db = TestPostgres::shared().fresh_database("csv_to_pg").await;
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../connectors/source-csv/integration_tests/sample");
    let mut files = Vec::new();
    for month in ["01", "02", "03"] {
        let name = format!("sales_2024_{month}.csv");
        std::fs::copy(sample.join(&name), data.join(&name)).unwrap();
        files.push(data.join(&name));
    }

    let source_config = write_json(
        work.path(),
        "source.json",
        &json!({
            "dataset_name": "sales_data", "format": "csv",
            "url": format!("{}/sales_*.csv", data.display()),
            "provider": {"storage": "local"},
            // Our own CSV options (not source-file's pandas defaults) infer dates and timestamps.
            "csv_options": {}
        }),
    );
    let mut destination = db.connector_config();
    destination["schema"] = json!(SCHEMA);
    let sync = Sync {
        source: "source-csv",
        source_config,
        destination: "destination-postgres",
        destination_config: write_json(work.path(), "destination.json", &destination),
        // No catalog: `cdk sync` discovers and picks incremental append on the file cursor.
        catalog: None,
        output: work.path().join("output"),
    };
    let client = db.connect().await;

    let first = sync.run().await;
    assert_eq!(first.records, 60, "{}", first.stderr);

    // Column types follow the inferred schema (integer → bigint, number → numeric, …).
    let types: Vec<(String, String)> = client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = $1 AND table_name = 'sales_data' ORDER BY column_name",
            &[&SCHEMA],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let type_of = |column: &str| {
        types
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| panic!("no column {column} in {types:?}"))
    };
    assert_eq!(type_of("order_id"), "bigint");
    assert_eq!(type_of("quantity"), "bigint");
    assert_eq!(type_of("unit_price"), "numeric");
    assert_eq!(type_of("paid"), "boolean");
    assert_eq!(type_of("shipped_on"), "date");
    assert_eq!(type_of("ordered_at"), "timestamp with time zone");
    assert_eq!(type_of("customer"), "character varying");
    assert_eq!(type_of("_airbyte_meta"), "jsonb");

    let expected = sales_in(&files);
    assert_eq!(expected.len(), 60);
    assert_eq!(loaded(&client).await, expected);
    let history = &sync.state()[0]["stream"]["stream_state"]["history"];
    assert_eq!(
        history.as_object().map(|h| h.len()),
        Some(3),
        "the kept state should list the three files read: {}",
        sync.state()
    );

    // Same output directory, so the kept state goes back to the source: nothing is new.
    let second = sync.run().await;
    assert_eq!(second.records, 0, "{}", second.stderr);
    assert_eq!(loaded(&client).await, expected);

    // A fourth file: only its rows are read and appended. One timestamp has an offset, one
    // price has no decimals, one note has quotes.
    let april = data.join("sales_2024_04.csv");
    std::fs::write(
        &april,
        "order_id,ordered_at,customer,product,quantity,unit_price,paid,region,shipped_on,note\n\
         61,2024-04-01T08:00:00Z,customer 1,\"Kettle, gooseneck\",1,89.5,true,EU,2024-04-03,\n\
         62,2024-04-02T23:59:59+02:00,customer 2,Tamper,10,12,false,US,,\"a \"\"quoted\"\" note\"\n\
         63,2024-04-03T12:30:00Z,customer 3,Milk jug,2,0.01,true,APAC,2024-04-05,last one\n",
    )
    .unwrap();
    files.push(april);
    let third = sync.run().await;
    assert_eq!(third.records, 3, "{}", third.stderr);
    let expected = sales_in(&files);
    assert_eq!(expected.len(), 63);
    assert_eq!(
        expected[61].ordered_at.to_rfc3339(),
        "2024-04-02T21:59:59+00:00"
    );
    assert_eq!(loaded(&client).await, expected);
}
