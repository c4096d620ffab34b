//! DuckDB, from Rust, writes a Parquet file to the S3-compatible test server
//! and reads it back, through the pre-installed httpfs extension (no
//! download: autoinstall is off).

use icedb_e2e::{S3, S3_KEY_ID, S3_REGION, S3_SECRET, duckdb_offline};

#[test]
fn duckdb_writes_and_reads_parquet_on_s3() {
    let s3 = S3::from_env();
    let bucket = s3.create_bucket("duckdb-smoke");
    let db = duckdb_offline();
    db.execute_batch(&format!(
        "LOAD httpfs;
         CREATE SECRET moto (TYPE S3, KEY_ID '{S3_KEY_ID}', SECRET '{S3_SECRET}', REGION '{S3_REGION}',
                             ENDPOINT '{}', URL_STYLE 'path', USE_SSL false);",
        s3.host_port()
    ))
    .unwrap();

    let key = "smoke/events.parquet";
    let url = format!("s3://{bucket}/{key}");
    db.execute_batch(&format!(
        "COPY (SELECT range AS id, 'event_' || (range % 7) AS event FROM range(10000))
         TO '{url}' (FORMAT parquet, COMPRESSION zstd)"
    ))
    .unwrap();

    // The object is really on the server.
    let size = s3
        .object_size(&bucket, key)
        .expect("the Parquet object exists on the server");
    assert!(size > 100, "a Parquet file of {size} bytes");

    let (rows, id_sum, events): (i64, i64, i64) = db
        .query_row(
            &format!(
                "SELECT count(*), sum(id)::BIGINT, count(DISTINCT event) FROM read_parquet('{url}')"
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((rows, id_sum, events), (10_000, 49_995_000, 7));

    let version: String = db.query_row("SELECT version()", [], |r| r.get(0)).unwrap();
    assert_eq!(version, "v1.4.4", "the pinned DuckDB is linked");
}
