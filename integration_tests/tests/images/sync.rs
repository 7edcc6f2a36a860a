//! `cdk sync` with a connection whose both ends are images (source-postgres and
//! destination-postgres, run through the docker CLI in the host's network) gives the same
//! tables as the same connection run with the binaries.

use cdk::testing::postgres::{TestDatabase, TestPostgres};
use serde_json::{Value, json};

use crate::{bin, image};

/// The destination's rows of `public.items` as text, in id order.
async fn rows(db: &TestDatabase) -> Vec<Vec<Option<String>>> {
    db.connect()
        .await
        .query(
            "SELECT id::text, name, price::text FROM public.items ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (0..3).map(|i| r.get(i)).collect())
        .collect()
}

/// Runs a connection file of `items` (incremental, dedup) between the given ends.
async fn sync(dir: &std::path::Path, source: Value, destination: Value) -> Value {
    let file = dir.join("items.json");
    let text = json!({
        "source": source, "destination": destination,
        "streams": [{"name": "items", "namespace": "public", "syncMode": "incremental",
                     "cursorField": ["id"], "destinationSyncMode": "append_dedup",
                     "primaryKey": [["id"]]}]
    });
    std::fs::write(&file, text.to_string()).unwrap();
    let out = std::process::Command::new(bin("cdk"))
        .arg("sync")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cdk sync failed\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn images_give_the_same_tables_as_binaries() {
    let pg = TestPostgres::shared();
    let source = pg.fresh_database("img_sync_src").await;
    source
        .execute(
            "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(8, 2));
             INSERT INTO items SELECT i, 'item ' || i, i * 0.5 FROM generate_series(1, 500) i;",
        )
        .await;
    let by_binary = pg.fresh_database("img_sync_bin").await;
    let by_image = pg.fresh_database("img_sync_img").await;

    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("bin")).unwrap();
    std::fs::create_dir(work.path().join("img")).unwrap();
    let binaries = sync(
        &work.path().join("bin"),
        json!({"connector": bin("source-postgres"), "config": source.connector_config()}),
        json!({"connector": bin("destination-postgres"), "config": by_binary.connector_config()}),
    )
    .await;
    let images = sync(
        &work.path().join("img"),
        json!({"image": image("connectors/source-postgres"), "networkHost": true,
               "config": source.connector_config()}),
        json!({"image": image("connectors/destination-postgres"), "networkHost": true,
               "config": by_image.connector_config()}),
    )
    .await;
    assert_eq!(images["recordsSynced"], 500, "{images}");
    assert_eq!(images["recordsSynced"], binaries["recordsSynced"]);
    let expected = rows(&by_binary).await;
    assert_eq!(expected.len(), 500);
    assert_eq!(rows(&by_image).await, expected);
}
