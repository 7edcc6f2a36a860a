//! Measures the ways rows can be fetched, to choose the read path: binary COPY, text COPY,
//! and a portal with a row limit (extended protocol, binary results, tokio-postgres rows).
//! Only the transport is timed, on a throwaway cluster:
//! `cargo run --release -p source-postgres --example fetch_compare -- [rows]`.

use std::time::Instant;

use cdk::testing::postgres::TestPostgres;
use futures::{StreamExt, TryStreamExt};

#[tokio::main]
async fn main() {
    let rows: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let db = TestPostgres::shared().fresh_database("fetch_compare").await;
    db.execute(&format!(
        "CREATE TABLE t (id bigint PRIMARY KEY, name text, email text, score double precision,
            amount numeric(12, 2), active boolean, created_at timestamptz, birthday date,
            qty integer, note varchar(64));
         INSERT INTO t SELECT i, 'name ' || i, 'user' || i || '@example.com', i * 0.37,
            (i % 100000) / 100.0, i % 3 = 0, '2024-01-01'::timestamptz + i * interval '1 second',
            '1970-01-01'::date + (i % 20000), (i % 1000)::int, 'note number ' || (i % 977)
         FROM generate_series(1, {rows}) i;"
    ))
    .await;
    db.execute("VACUUM ANALYZE t").await;
    let mut client = db.connect().await;
    for round in 0..2 {
        for format in ["binary", "text"] {
            let started = Instant::now();
            let sql = format!("COPY (SELECT * FROM t) TO STDOUT (FORMAT {format})");
            let bytes = client
                .copy_out(sql.as_str())
                .await
                .expect("copy")
                .fold(
                    0usize,
                    |n, chunk| async move { n + chunk.expect("chunk").len() },
                )
                .await;
            println!(
                "round {round}: COPY {format:<6}                {:>7.3} s ({bytes} bytes)",
                started.elapsed().as_secs_f64()
            );
        }
        for batch in [1_000i32, 10_000] {
            let started = Instant::now();
            let tx = client.transaction().await.expect("begin");
            let stmt = tx.prepare("SELECT * FROM t").await.expect("prepare");
            let portal = tx.bind(&stmt, &[]).await.expect("bind");
            let mut n = 0u64;
            loop {
                let got = tx
                    .query_portal_raw(&portal, batch)
                    .await
                    .expect("fetch")
                    .try_fold(0u64, |a, _row| async move { Ok(a + 1) })
                    .await
                    .expect("rows");
                n += got;
                if got < batch as u64 {
                    break;
                }
            }
            tx.rollback().await.expect("rollback");
            println!(
                "round {round}: portal, {batch:>6} rows a fetch {:>7.3} s ({n} rows)",
                started.elapsed().as_secs_f64()
            );
        }
    }
}
