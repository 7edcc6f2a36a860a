//! The kit's destination suite, in each table layout.

use cdk::testing::acceptance::{DestinationReader, DestinationSuite};
use cdk::testing::postgres::TestDatabase;
use serde_json::{Value, json};

use super::{BIN, database, rows, user_fields};

enum Layout {
    Typed,
    Raw,
}

struct Reader {
    db: TestDatabase,
    layout: Layout,
}

#[cdk::async_trait]
impl DestinationReader for Reader {
    async fn read(&self, stream: &str) -> Result<Vec<Value>, String> {
        Ok(match self.layout {
            Layout::Typed => user_fields(&rows(&self.db, "public", stream, "1").await),
            Layout::Raw => {
                let table = format!("public_raw__stream_{stream}");
                rows(&self.db, "airbyte_internal", &table, "1")
                    .await
                    .into_iter()
                    .map(|r| r["_airbyte_data"].clone())
                    .collect()
            }
        })
    }
}

async fn run(extra: Value, layout: Layout, supports_dedup: bool) {
    let (db, mut config) = database("acceptance").await;
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let suite = DestinationSuite {
        bin: BIN.into(),
        config,
        supports_dedup,
        ..DestinationSuite::default()
    };
    let report = suite.run(&Reader { db, layout }).await;
    println!("{}", report.table());
    report.assert_all_passed();
}

#[tokio::test]
async fn typed_tables_pass_the_destination_suite() {
    run(json!({}), Layout::Typed, true).await;
}

#[tokio::test]
async fn flattened_tables_pass_the_destination_suite() {
    run(
        json!({"normalization": {"mode": "flattened"}}),
        Layout::Typed,
        true,
    )
    .await;
}

#[tokio::test]
async fn raw_tables_pass_the_destination_suite() {
    // Raw tables cannot deduplicate (as in Airbyte, dedup falls back to append).
    run(json!({"disable_type_dedupe": true}), Layout::Raw, false).await;
}
