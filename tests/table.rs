//! The table engine end to end, on a local directory and on the S3 test
//! server: insert then query, sorted files, pruning, schema evolution,
//! plugins, and bad input that changes nothing.

use std::collections::BTreeMap;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use icedb::events::EventGenerator;
use icedb::{
    ColumnRange, ColumnType, FormatSpec, Granularity, PartitionFilter, PartitionSpec, PluginHost,
    QueryOptions, StatValue, Table, TableConfig, TableError,
};
use icedb_e2e::{Backend, first_row, plugin, scalar, scalar_of, table_config};

/// A table whose inserts write files at once (these tests read them back;
/// inlined commits: tests/inline.rs).
fn config(backend: Backend, dir: &std::path::Path, label: &str) -> TableConfig {
    let mut config = table_config(
        &backend.new_table(dir, label),
        dir.join(format!("replica-{label}")),
    );
    config.inline.max_rows = 0;
    config
}

fn plugins() -> PluginHost {
    PluginHost::new(Default::default()).unwrap()
}

fn events_by_day(events: &[String]) -> BTreeMap<String, i64> {
    let mut days = BTreeMap::new();
    for line in events {
        let ms = serde_json::from_str::<serde_json::Value>(line).unwrap()["ts"]
            .as_i64()
            .unwrap();
        let day = chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .format("%Y-%m-%d")
            .to_string();
        *days.entry(day).or_default() += 1;
    }
    days
}

/// Reads a data file back with the parquet crate (not through DuckDB).
async fn read_file(table: &Table, path: &str) -> Vec<RecordBatch> {
    let store = table.meta().object_store();
    let bytes = store
        .get(&object_store::path::Path::from(path))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

async fn insert_then_query(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let table = Table::open(config(backend, dir.path(), "insert"), &plugins())
        .await
        .unwrap();
    let mut generator = EventGenerator::new(21);
    let first: Vec<String> = generator.batch(1_500);
    let second: Vec<String> = generator.batch(500);
    let receipt = table
        .insert_ndjson(format!("{}\n", first.join("\n")).as_bytes())
        .await
        .unwrap();
    assert_eq!((receipt.version, receipt.rows), (1, 1_500));
    assert_eq!(
        receipt.files.len(),
        receipt.partitions,
        "one file per partition"
    );
    let array = format!("[{}]", second.join(","));
    let receipt = table.insert_json_array(array.as_bytes()).await.unwrap();
    assert_eq!((receipt.version, receipt.rows), (2, 500));

    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    assert_eq!(scalar(&table, "SELECT count(*) FROM events").await, 2_000);
    assert_eq!(
        scalar(&table, "SELECT count(DISTINCT id) FROM events").await,
        2_000
    );

    // Partition columns are visible and agree with the event times.
    let result = table
        .query(
            "SELECT strftime(make_date(y, m, d), '%Y-%m-%d') AS day, count(*) AS n,
                    count(*) FILTER (WHERE (ts AT TIME ZONE 'UTC')::DATE <> make_date(y, m, d)) AS misplaced
             FROM events GROUP BY ALL ORDER BY day",
            &QueryOptions::default(),
        )
        .await
        .unwrap();
    let mut days = BTreeMap::new();
    for batch in &result.batches {
        let (day, n, misplaced) = (
            batch.column(0).as_string::<i32>(),
            batch.column(1).as_primitive::<Int64Type>(),
            batch.column(2).as_primitive::<Int64Type>(),
        );
        for i in 0..batch.num_rows() {
            assert_eq!(misplaced.value(i), 0);
            days.insert(day.value(i).to_owned(), n.value(i));
        }
    }
    assert_eq!(days, events_by_day(&all));

    // Values survive: one event read back field by field.
    let event: serde_json::Value = serde_json::from_str(&all[7]).unwrap();
    let id = event["id"].as_str().unwrap();
    let result = table
        .query(
            &format!(
                "SELECT user_id, event, epoch_ms(ts), properties FROM events WHERE id = '{id}'"
            ),
            &QueryOptions::default(),
        )
        .await
        .unwrap();
    let row = &result.batches.iter().find(|b| b.num_rows() > 0).unwrap();
    assert_eq!(
        row.column(0).as_string::<i32>().value(0),
        event["user_id"].as_str().unwrap()
    );
    assert_eq!(
        row.column(1).as_string::<i32>().value(0),
        event["event"].as_str().unwrap()
    );
    assert_eq!(
        row.column(2).as_primitive::<Int64Type>().value(0),
        event["ts"].as_i64().unwrap()
    );
    let properties: serde_json::Value =
        serde_json::from_str(row.column(3).as_string::<i32>().value(0)).unwrap();
    assert_eq!(
        properties, event["properties"],
        "nested objects are stored as their JSON text"
    );

    // Every file is sorted by (event, ts).
    let snapshot = table.meta().snapshot().unwrap();
    for file in snapshot.files(&PartitionFilter::All).unwrap() {
        let mut previous: Option<(String, i64)> = None;
        for batch in read_file(&table, &file.path).await {
            let events = batch
                .column_by_name("event")
                .unwrap()
                .as_string::<i32>()
                .clone();
            let ts = batch
                .column_by_name("ts")
                .unwrap()
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .clone();
            for i in 0..batch.num_rows() {
                let key = (events.value(i).to_owned(), ts.value(i));
                if let Some(previous) = &previous {
                    assert!(*previous <= key, "{} is not sorted", file.path);
                }
                previous = Some(key);
            }
        }
        assert!(
            file.columns["ts"].min.is_some() && file.columns["event"].max.is_some(),
            "statistics recorded"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_then_query_local() {
    insert_then_query(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_then_query_s3() {
    insert_then_query(Backend::S3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_prune_files_by_partition_and_statistics() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let table = Table::open(config(backend, dir.path(), "prune"), &plugins())
            .await
            .unwrap();
        let events = EventGenerator::new(5).batch(3_000);
        table.insert_rows(events.clone()).await.unwrap();
        let per_day = events_by_day(&events);
        let expected = per_day["2026-10-05"];
        let total_files = table.meta().snapshot().unwrap().file_count().unwrap() as usize;
        assert_eq!(total_files, 30);

        let by_partition = QueryOptions {
            partitions: PartitionFilter::Prefix("y=2026/m=10/d=05".into()),
            ..Default::default()
        };
        let result = table
            .query("SELECT count(*) FROM events", &by_partition)
            .await
            .unwrap();
        assert_eq!(scalar_of(&result), expected);
        // The log answers count(*): no file is opened.
        assert_eq!((result.files_scanned, result.files_pruned), (0, 29));
        let result = table
            .query("SELECT count(DISTINCT id) FROM events", &by_partition)
            .await
            .unwrap();
        assert_eq!(scalar_of(&result), expected);
        assert_eq!((result.files_scanned, result.files_pruned), (1, 29));

        let day_start = 1_791_158_400_000_000; // 2026-10-05T00:00:00Z in µs
        let by_stats = QueryOptions {
            ranges: vec![ColumnRange {
                column: "ts".into(),
                min: Some(StatValue::Int(day_start)),
                max: Some(StatValue::Int(day_start + 86_399_999_999)),
            }],
            ..Default::default()
        };
        let result = table
            .query("SELECT count(*) FROM events WHERE ts >= TIMESTAMPTZ '2026-10-05 00:00:00+00' AND ts < TIMESTAMPTZ '2026-10-06 00:00:00+00'", &by_stats)
            .await
            .unwrap();
        assert_eq!(scalar_of(&result), expected);
        assert_eq!(
            result.files_scanned, 1,
            "{backend:?}: min/max statistics prune the other days"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_evolves_across_inserts() {
    let dir = tempfile::tempdir().unwrap();
    let table = Table::open(config(Backend::Local, dir.path(), "evolve"), &plugins())
        .await
        .unwrap();
    table
        .insert_rows(vec![r#"{"ts": 1790812800000, "a": 1}"#.into()])
        .await
        .unwrap();
    table
        .insert_rows(vec![
            r#"{"ts": 1790812800000, "a": 2.5, "b": "new"}"#.into(),
        ])
        .await
        .unwrap();
    let schema: Vec<_> = table
        .schema()
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.column_type))
        .collect();
    assert_eq!(
        schema,
        [
            ("ts".into(), ColumnType::Timestamp),
            ("a".into(), ColumnType::Float64),
            ("b".into(), ColumnType::String)
        ]
    );
    assert_eq!(
        first_row(&table, "SELECT sum(a), count(b), count(*) FROM events").await,
        [3.5, 1.0, 2.0],
        "the old file reads b as null"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let table = Table::open(config(backend, dir.path(), "bad"), &plugins())
            .await
            .unwrap();
        table
            .insert_rows(vec![r#"{"ts": 1790812800000, "n": 1, "s": "x"}"#.into()])
            .await
            .unwrap();
        let objects_before = table.list_data_objects().await.unwrap().len();

        let error = table
            .insert_ndjson(b"{\"n\": 2}\n\n{\"n\": 3\n")
            .await
            .unwrap_err();
        assert!(
            matches!(error, TableError::BadInput { line: Some(3), .. }),
            "{error}"
        );
        assert!(
            error.to_string().starts_with("line 3: invalid JSON"),
            "{error}"
        );

        let error = table
            .insert_ndjson(b"{\"n\": 2}\n{\"n\": \"three\"}\n")
            .await
            .unwrap_err();
        assert!(
            matches!(&error, TableError::SchemaClash { column, existing: ColumnType::Int64, found: ColumnType::String, line: Some(2), .. } if column == "n"),
            "{error}"
        );
        assert_eq!(
            error.to_string(),
            "schema clash on column `n`: the table has int64, line 2 holds string"
        );

        let error = table
            .insert_json_array(b"{\"not\": \"an array\"}")
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("not a JSON array of objects"),
            "{error}"
        );
        let error = table
            .insert_rows(vec![r#"{"ts": "last tuesday"}"#.into()])
            .await
            .unwrap_err();
        assert!(error.to_string().contains("field `ts`"), "{error}");
        let error = table.insert_ndjson(b"").await.unwrap_err();
        assert!(error.to_string().contains("no rows"), "{error}");

        assert_eq!(
            table.meta().sync().await.unwrap(),
            1,
            "{backend:?}: nothing was committed"
        );
        assert_eq!(
            table.list_data_objects().await.unwrap().len(),
            objects_before,
            "nothing was uploaded"
        );
        assert_eq!(scalar(&table, "SELECT count(*) FROM events").await, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_format_and_partition() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(Backend::Local, dir.path(), "plugins");
    config.format = FormatSpec::Plugin {
        path: plugin("flatten-json"),
        settings: vec![("timestamp-fields".into(), "ts".into())],
    };
    config.partitioning = PartitionSpec::Plugin {
        path: plugin("partition-by-hour-js"),
        settings: vec![],
    };
    let table = Table::open(config, &plugins()).await.unwrap();
    let events = EventGenerator::new(8).batch(400);
    table.insert_rows(events.clone()).await.unwrap();
    let result = table
        .query(
            "SELECT count(*), count(DISTINCT h), sum(\"properties.duration_ms\") FROM events
             WHERE hour(ts AT TIME ZONE 'UTC') = h",
            &QueryOptions::default(),
        )
        .await
        .unwrap();
    let batch = &result.batches[0];
    assert_eq!(
        batch.column(0).as_primitive::<Int64Type>().value(0),
        400,
        "every row is in its hour's partition"
    );
    assert!(batch.column(1).as_primitive::<Int64Type>().value(0) > 20);
    let expected: i64 = events
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(e).unwrap()["properties"]["duration_ms"]
                .as_i64()
                .unwrap()
        })
        .sum();
    let sum = batch
        .column(2)
        .as_primitive::<arrow::datatypes::Decimal128Type>();
    assert_eq!(
        sum.value(0),
        i128::from(expected),
        "flattened columns hold the nested values"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_field_routes_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(Backend::Local, dir.path(), "field");
    config.partitioning = PartitionSpec::Field {
        field: "_partition".into(),
    };
    let table = Table::open(config, &plugins()).await.unwrap();
    table
        .insert_rows(vec![
            r#"{"_partition": "tenant=a", "v": 1}"#.into(),
            r#"{"_partition": "tenant=b", "v": 2}"#.into(),
            r#"{"_partition": "tenant=a", "v": 3}"#.into(),
        ])
        .await
        .unwrap();
    let partitions: Vec<_> = table
        .meta()
        .snapshot()
        .unwrap()
        .partitions(&PartitionFilter::All)
        .unwrap()
        .into_iter()
        .map(|p| (p.partition, p.rows))
        .collect();
    assert_eq!(
        partitions,
        [("tenant=a".to_owned(), 2), ("tenant=b".to_owned(), 1)]
    );
    assert!(
        table
            .schema()
            .unwrap()
            .iter()
            .all(|c| c.name != "_partition"),
        "the routing field is not stored"
    );
    let error = table
        .insert_rows(vec![r#"{"_partition": "../escape", "v": 1}"#.into()])
        .await
        .unwrap_err();
    assert!(error.to_string().contains("`.` or `..` segment"), "{error}");
}

/// The codecs of a table's live files, from their Parquet footers.
async fn codecs(table: &Table) -> std::collections::BTreeSet<String> {
    let mut codecs = std::collections::BTreeSet::new();
    for (_, reader) in icedb_e2e::live_file_readers(table).await {
        for group in reader.metadata().row_groups() {
            for column in group.columns() {
                let codec = format!("{:?}", column.compression());
                codecs.insert(codec.split('(').next().unwrap().to_owned());
            }
        }
    }
    codecs
}

/// Merges `table` to quiescence: every live file is then in the table's
/// codec (zstd) and the table still holds `rows` distinct ids.
async fn merges_write_zstd(table: &Table, rows: i64) {
    table
        .merge_until_quiescent(&icedb::MergePolicy::hot())
        .await
        .unwrap();
    assert_eq!(codecs(table).await, ["ZSTD".to_owned()].into());
    assert_eq!(
        scalar(table, "SELECT count(DISTINCT id) FROM events").await,
        rows
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_insert_files_use_snappy_and_merges_write_the_tables_codec() {
    let dir = tempfile::tempdir().unwrap();
    let table = Table::open(config(Backend::Local, dir.path(), "codec"), &plugins())
        .await
        .unwrap();
    let events = EventGenerator::new(9).batch(600);
    for chunk in events.chunks(100) {
        table.insert_rows(chunk.to_vec()).await.unwrap();
    }
    assert_eq!(codecs(&table).await, ["SNAPPY".to_owned()].into());
    merges_write_zstd(&table, 600).await;

    // A table asking for Snappy (this used to panic: parquet's `snap`
    // feature was off).
    let mut snappy = config(Backend::Local, dir.path(), "snappy");
    snappy.compression = icedb::Compression::Snappy;
    let table = Table::open(snappy, &plugins()).await.unwrap();
    table.insert_rows(events.clone()).await.unwrap();
    assert_eq!(codecs(&table).await, ["SNAPPY".to_owned()].into());
    assert_eq!(
        scalar(&table, "SELECT count(DISTINCT id) FROM events").await,
        600
    );
}

/// A flush writes a partition's inline rows as an insert writes a file:
/// with Snappy while small (merges rewrite it), in the table's codec when
/// over the small-file bound (4 096 rows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_flush_writes_snappy_and_a_big_one_the_tables_codec() {
    let dir = tempfile::tempdir().unwrap();
    let mut monthly = config(Backend::Local, dir.path(), "flush-codec");
    monthly.inline.max_rows = 1_000;
    // The generated events' 30 days fall in one month: one partition.
    monthly.partitioning = PartitionSpec::Time {
        field: "ts".to_owned(),
        granularity: Granularity::Month,
        ingest_time_if_missing: false,
    };
    let table = Table::open(monthly, &plugins()).await.unwrap();
    let events = EventGenerator::new(11).batch(5_000);
    for chunk in events[..600].chunks(100) {
        table.insert_rows(chunk.to_vec()).await.unwrap();
    }
    assert_eq!(codecs(&table).await, Default::default(), "all inline");
    table.flush_inline().await.unwrap();
    assert_eq!(codecs(&table).await, ["SNAPPY".to_owned()].into());
    for chunk in events[600..].chunks(880) {
        table.insert_rows(chunk.to_vec()).await.unwrap();
    }
    table.flush_inline().await.unwrap();
    assert_eq!(
        codecs(&table).await,
        ["SNAPPY".to_owned(), "ZSTD".to_owned()].into(),
        "600 rows, then 4 400"
    );
    merges_write_zstd(&table, 5_000).await;
}

/// A column widened from int64 to float64 keeps its older files int64:
/// queries (and a merge query) read every value at full precision,
/// whichever file DuckDB opens first, and type the column DOUBLE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_widened_column_reads_old_and_new_files_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let table = Table::open(config(Backend::Local, dir.path(), "widen"), &plugins())
        .await
        .unwrap();
    let row = |id: &str, n: &str| {
        format!("{{\"id\":\"{id}\",\"ts\":1790000000000,\"event\":\"e\",\"n\":{n}}}\n")
    };
    table.insert_ndjson(row("a", "1").as_bytes()).await.unwrap();
    table
        .insert_ndjson(row("b", "1.5").as_bytes())
        .await
        .unwrap();
    table.insert_ndjson(row("c", "2").as_bytes()).await.unwrap();
    let result = table
        .query(
            "SELECT string_agg(n::VARCHAR, ',' ORDER BY id) AS ns, any_value(typeof(n)) AS t FROM events",
            &QueryOptions::default(),
        )
        .await
        .unwrap();
    let batch = &result.batches[0];
    let text = |i: usize| {
        let column =
            arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Utf8).unwrap();
        column.as_string::<i32>().value(0).to_owned()
    };
    assert_eq!(
        (text(0), text(1)),
        ("1.0,1.5,2.0".to_owned(), "DOUBLE".to_owned())
    );
}

/// A count answered from the log is worked out while the query's sync is
/// out, from the replica as last synced: a reader whose replica is behind
/// another writer's commits must still count them (the early answer is
/// dropped when the sync finds anything newer), on both backends, with
/// inline parts and files alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_from_the_log_sees_every_commit_before_it() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let root = backend.new_table(dir.path(), "early-count");
        let writer = Table::open(table_config(&root, dir.path().join("w")), &plugins())
            .await
            .unwrap();
        let reader = Table::open(table_config(&root, dir.path().join("r")), &plugins())
            .await
            .unwrap();
        let mut generator = EventGenerator::new(5);
        let mut expected = 0;
        for rows in [40, 1_200, 7] {
            let lines = generator.batch(rows).join("\n");
            writer.insert_ndjson(lines.as_bytes()).await.unwrap();
            expected += rows as i64;
            let answer = reader
                .query("SELECT count(*) FROM events", &QueryOptions::default())
                .await
                .unwrap();
            assert_eq!(scalar_of(&answer), expected, "{backend:?}");
            assert_eq!(
                answer.files_scanned, 0,
                "{backend:?}: answered from the log"
            );
            assert_eq!(answer.version, writer.meta().local_version().unwrap());
        }
    }
}
