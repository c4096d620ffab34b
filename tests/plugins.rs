//! The example plugins and the plugin host, with real components built from
//! plugins/: conformance of each plugin, the full standard-event chain, the
//! compile cache, concurrency, and a suite of hostile components.
//!
//! Longer than 600 lines on purpose: every file under tests/ links into a
//! test executable of its own (~200 MB with DuckDB and wasmtime), so a
//! suite stays one file.

use std::path::Path;
use std::time::{Duration, Instant};

use icedb::events::EventGenerator;
use icedb::{Batch, Column, Value};
use icedb_e2e::plugin;
use icedb_plugin::{HostOptions, PluginError, PluginErrorKind, PluginHost};

fn host() -> PluginHost {
    PluginHost::new(HostOptions::default()).unwrap()
}

fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn rows(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|s| s.to_string()).collect()
}

fn one_column(name: &str, values: Vec<Value>) -> Batch {
    Batch {
        row_count: values.len() as u32,
        columns: vec![Column {
            name: name.into(),
            values,
        }],
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// The partition path chrono gives for epoch milliseconds: an independent
/// check of the plugins' date arithmetic.
fn expected_day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("y=%Y/m=%m/d=%d")
        .to_string()
}

// ---------------------------------------------------------------- partition-by-day

#[test]
fn partition_by_day_reads_every_time_representation() {
    let day = host()
        .load_partition(&plugin("partition-by-day"), &[])
        .unwrap();
    assert_eq!(day.fields(), ["ts"]);
    let batch = one_column(
        "ts",
        vec![
            Value::Int(1_790_812_800_000),           // 2026-10-01T00:00:00Z in ms
            Value::Int(1_790_899_199_999_999),       // 2026-10-01T23:59:59.999999Z in µs (auto)
            Value::Timestamp(1_790_899_200_000_000), // 2026-10-02T00:00:00Z
            text("2026-10-01T23:30:00-02:00"),       // = 2026-10-02T01:30Z
            Value::Float(1_790_812_800_000.5),
            Value::Int(-1), // 1969-12-31T23:59:59.999Z
        ],
    );
    let paths = day.partition_blocking(&day.project(&batch)).unwrap();
    assert_eq!(
        paths,
        [
            "y=2026/m=10/d=01",
            "y=2026/m=10/d=01",
            "y=2026/m=10/d=02",
            "y=2026/m=10/d=02",
            "y=2026/m=10/d=01",
            "y=1969/m=12/d=31"
        ]
    );
}

#[test]
fn partition_by_day_settings_and_errors() {
    let host = host();
    let day = host
        .load_partition(
            &plugin("partition-by-day"),
            &settings(&[("field", "when"), ("int-unit", "s")]),
        )
        .unwrap();
    assert_eq!(day.fields(), ["when"]);
    let batch = one_column("when", vec![Value::Int(1_790_812_800), Value::Null]);
    let error = day.partition_blocking(&day.project(&batch)).unwrap_err();
    assert_eq!(error.kind, PluginErrorKind::Rejected);
    assert_eq!(error.row, Some(1));
    assert!(
        error.message.contains("field `when`: missing (null)"),
        "{error}"
    );

    // A batch without the field reaches the plugin as nulls (projection).
    let error = day
        .partition_blocking(&day.project(&one_column("other", vec![Value::Int(1)])))
        .unwrap_err();
    assert_eq!(
        (error.kind, error.row),
        (PluginErrorKind::Rejected, Some(0))
    );

    let error = host
        .load_partition(
            &plugin("partition-by-day"),
            &settings(&[("int-unit", "days")]),
        )
        .err()
        .expect("bad settings are refused at load");
    assert_eq!(error.kind, PluginErrorKind::Config);
    assert!(error.message.contains("int-unit must be one of"), "{error}");
    assert!(
        error.to_string().contains("partition-by-day"),
        "the error names the plugin: {error}"
    );
}

// ---------------------------------------------------------------- flatten-json

#[test]
fn flatten_json_flattens_to_the_configured_depth() {
    let flatten = host()
        .load_format(
            &plugin("flatten-json"),
            &settings(&[("max-depth", "2"), ("timestamp-fields", "ts, at")]),
        )
        .unwrap();
    let batch = flatten
        .format_blocking(&rows(&[
            r#"{"ts": 1790812800000, "user": {"id": 7, "geo": {"cc": "NL"}}, "tags": ["a", "b"]}"#,
            r#"{"at": "2026-10-01T00:00:00Z", "user": {"id": 9223372036854775807}, "n": 1.5, "ok": false, "x": null}"#,
            r#"{"z": 2}"#,
        ]))
        .unwrap();
    assert_eq!(batch.row_count, 3);
    let col = |name: &str| {
        batch
            .column(name)
            .unwrap_or_else(|| panic!("column {name}"))
            .values
            .clone()
    };
    let names: Vec<_> = batch.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ts", "user.id", "user.geo", "tags", "at", "n", "ok", "x", "z"
        ]
    );
    assert_eq!(
        col("ts"),
        [
            Value::Timestamp(1_790_812_800_000_000),
            Value::Null,
            Value::Null
        ]
    );
    assert_eq!(
        col("at"),
        [
            Value::Null,
            Value::Timestamp(1_790_812_800_000_000),
            Value::Null
        ]
    );
    assert_eq!(
        col("user.id"),
        [Value::Int(7), Value::Int(i64::MAX), Value::Null]
    );
    assert_eq!(
        col("user.geo"),
        [text(r#"{"cc":"NL"}"#), Value::Null, Value::Null],
        "deeper than max-depth: JSON text"
    );
    assert_eq!(
        col("tags"),
        [text(r#"["a","b"]"#), Value::Null, Value::Null],
        "arrays: JSON text"
    );
    assert_eq!(col("n"), [Value::Null, Value::Float(1.5), Value::Null]);
    assert_eq!(col("ok"), [Value::Null, Value::Boolean(false), Value::Null]);
    assert_eq!(col("z"), [Value::Null, Value::Null, Value::Int(2)]);

    // Kept text is the text sent: key order, repeated keys and number
    // spellings included (a JSON tree would sort or collapse the keys and
    // round the big integer).
    let batch = flatten
        .format_blocking(&rows(&[
            r#"{"user": {"geo": {"z": 1, "a": [123456789012345678901234, 1E3], "z": "x \" y"}}}"#,
        ]))
        .unwrap();
    assert_eq!(
        batch.column("user.geo").unwrap().values,
        [text(
            r#"{"z":1,"a":[123456789012345678901234,1E3],"z":"x \" y"}"#
        )]
    );
}

#[test]
fn flatten_json_names_the_bad_row() {
    let flatten = host()
        .load_format(
            &plugin("flatten-json"),
            &settings(&[("timestamp-fields", "ts")]),
        )
        .unwrap();
    let error = flatten
        .format_blocking(&rows(&[r#"{"a": 1}"#, r#"{"a": 2"#]))
        .unwrap_err();
    assert_eq!(
        (error.kind, error.row),
        (PluginErrorKind::Rejected, Some(1))
    );
    assert!(error.message.contains("invalid JSON"), "{error}");
    let error = flatten.format_blocking(&rows(&["[1, 2]"])).unwrap_err();
    assert!(error.message.contains("a JSON object"), "{error}");
    let error = flatten
        .format_blocking(&rows(&[r#"{"ts": "soon"}"#]))
        .unwrap_err();
    assert_eq!(error.row, Some(0));
    assert!(
        error.message.contains("field `ts`") && error.message.contains("RFC 3339"),
        "{error}"
    );
    // A column named twice in a row is ambiguous, whether by a repeated key
    // or by a flattened path.
    for (row, column) in [
        (r#"{"dup": 1, "dup": 2}"#, "dup"),
        (r#"{"a": {"b": 1}, "a.b": 2}"#, "a.b"),
    ] {
        let error = flatten
            .format_blocking(&rows(&[r#"{"a": 1}"#, row]))
            .unwrap_err();
        assert_eq!(error.row, Some(1), "{error}");
        assert!(
            error
                .message
                .contains(&format!("field `{column}` appears twice")),
            "{error}"
        );
    }
    // An integer beyond int64 would change if read as a float.
    let error = flatten
        .format_blocking(&rows(&[r#"{"user": {"id": 18446744073709551615}}"#]))
        .unwrap_err();
    assert_eq!(error.row, Some(0), "{error}");
    assert!(
        error.message.contains("field `user.id`")
            && error.message.contains("outside the int64 range"),
        "{error}"
    );
    // So would one beyond 64 bits, and a float beyond float64 is no number.
    for (row, reason) in [
        (
            r#"{"n": 123456789012345678901234}"#,
            "field `n`: the integer 123456789012345678901234 is outside the int64 range",
        ),
        (
            r#"{"f": -1e400}"#,
            "field `f`: the number -1e400 is outside the float64 range",
        ),
        (
            r#"{"ts": 1e300}"#,
            "field `ts`: 1e300 is out of range for a timestamp",
        ),
    ] {
        let error = flatten.format_blocking(&rows(&[row])).unwrap_err();
        assert!(error.message.contains(reason), "{row}: {error}");
    }
    // The same instance keeps working after refusing a batch.
    assert_eq!(
        flatten
            .format_blocking(&rows(&[r#"{"a": 1}"#]))
            .unwrap()
            .row_count,
        1
    );
}

// ---------------------------------------------------------------- other languages

#[test]
fn enrich_py_formats_and_derives_a_column() {
    let enrich = host().load_format(&plugin("enrich-py"), &[]).unwrap();
    let events = EventGenerator::new(3).batch(50);
    let batch = enrich.format_blocking(&events).unwrap();
    assert_eq!(batch.row_count, 50);
    for (row, line) in events.iter().enumerate() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        let name = event["event"].as_str().unwrap();
        assert_eq!(batch.column("event").unwrap().values[row], text(name));
        let group = name.split('_').next().unwrap();
        assert_eq!(
            batch.column("event_group").unwrap().values[row],
            text(group)
        );
        let ts = event["ts"].as_i64().unwrap();
        assert_eq!(
            batch.column("ts").unwrap().values[row],
            Value::Timestamp(ts * 1000)
        );
        let Value::Text(properties) = &batch.column("properties").unwrap().values[row] else {
            panic!("properties kept as JSON text")
        };
        let properties: serde_json::Value = serde_json::from_str(properties).unwrap();
        assert_eq!(properties, event["properties"]);
    }
    let error = enrich
        .format_blocking(&rows(&["{}", "not json"]))
        .unwrap_err();
    assert_eq!(
        (error.kind, error.row),
        (PluginErrorKind::Rejected, Some(1))
    );
    let error = host()
        .load_format(&plugin("enrich-py"), &settings(&[("nope", "1")]))
        .err()
        .unwrap();
    assert_eq!(error.kind, PluginErrorKind::Config);
}

#[test]
fn partition_by_hour_js_partitions_by_hour() {
    let hour = host()
        .load_partition(&plugin("partition-by-hour-js"), &[])
        .unwrap();
    assert_eq!(hour.fields(), ["ts"]);
    let batch = one_column(
        "ts",
        vec![
            Value::Int(1_790_812_800_000 + 3_600_000 * 5 + 59_000),
            Value::Timestamp(1_790_812_800_000_000),
            text("2026-10-01T23:30:00Z"),
        ],
    );
    let paths = hour.partition_blocking(&hour.project(&batch)).unwrap();
    assert_eq!(
        paths,
        [
            "y=2026/m=10/d=01/h=05",
            "y=2026/m=10/d=01/h=00",
            "y=2026/m=10/d=01/h=23"
        ]
    );
    let error = hour
        .partition_blocking(&one_column("ts", vec![Value::Int(0), Value::Null]))
        .unwrap_err();
    assert_eq!(
        (error.kind, error.row),
        (PluginErrorKind::Rejected, Some(1))
    );
    assert!(error.message.contains("missing"), "{error}");
}

// ---------------------------------------------------------------- the standard chain

#[test]
fn standard_events_through_flatten_json_and_partition_by_day() {
    let host = host();
    let flatten = host
        .load_format(
            &plugin("flatten-json"),
            &settings(&[("timestamp-fields", "ts")]),
        )
        .unwrap();
    let day = host
        .load_partition(&plugin("partition-by-day"), &[])
        .unwrap();
    let events = EventGenerator::new(11).batch(10_000);
    let batch = flatten.format_blocking(&events).unwrap();
    let names: Vec<_> = batch.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "id",
            "ts",
            "event",
            "user_id",
            "properties.page",
            "properties.duration_ms",
            "properties.referrer",
            "properties.score",
            "properties.device",
            "properties.country"
        ]
    );
    let paths = day.partition_blocking(&day.project(&batch)).unwrap();
    assert_eq!(paths.len(), 10_000);
    for (line, path) in events.iter().zip(&paths) {
        let ms = serde_json::from_str::<serde_json::Value>(line).unwrap()["ts"]
            .as_i64()
            .unwrap();
        assert_eq!(*path, expected_day(ms));
    }
    let distinct: std::collections::BTreeSet<_> = paths.iter().collect();
    assert_eq!(distinct.len(), 30, "30 days of events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_share_one_plugin() {
    let host = host();
    let flatten = host.load_format(&plugin("flatten-json"), &[]).unwrap();
    let day = host
        .load_partition(&plugin("partition-by-day"), &[])
        .unwrap();
    let mut tasks = Vec::new();
    for seed in 0..16u64 {
        let (flatten, day) = (flatten.clone(), day.clone());
        tasks.push(tokio::spawn(async move {
            let events = EventGenerator::new(seed).batch(500);
            let batch = flatten.format(events.clone()).await.unwrap();
            let paths = day.partition(day.project(&batch)).await.unwrap();
            (events, paths)
        }));
    }
    for task in tasks {
        let (events, paths) = task.await.unwrap();
        for (line, path) in events.iter().zip(&paths) {
            let ms = serde_json::from_str::<serde_json::Value>(line).unwrap()["ts"]
                .as_i64()
                .unwrap();
            assert_eq!(*path, expected_day(ms));
        }
    }
    let stats = flatten.stats();
    assert_eq!((stats.calls, stats.rows, stats.errors), (16, 8_000, 0));
}

// ---------------------------------------------------------------- loading and caching

#[test]
fn compiled_components_are_cached_on_disk() {
    let cache = tempfile::tempdir().unwrap();
    let options = HostOptions {
        cache_dir: Some(cache.path().to_owned()),
        ..HostOptions::default()
    };
    let first = PluginHost::new(options.clone())
        .unwrap()
        .inspect(&plugin("partition-by-day"))
        .unwrap();
    assert!(!first.from_cache, "a new cache compiles");
    let artifacts: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(artifacts.len(), 1);
    assert!(
        artifacts[0]
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(&first.hash)
    );

    let second = PluginHost::new(options.clone())
        .unwrap()
        .inspect(&plugin("partition-by-day"))
        .unwrap();
    assert!(second.from_cache, "a second host loads the cached artifact");

    // A damaged artifact is ignored and replaced, not trusted.
    std::fs::write(&artifacts[0], b"garbage").unwrap();
    let host = PluginHost::new(options).unwrap();
    let third = host.inspect(&plugin("partition-by-day")).unwrap();
    assert!(!third.from_cache);
    let day = host
        .load_partition(&plugin("partition-by-day"), &[])
        .unwrap();
    assert_eq!(
        day.partition_blocking(&one_column("ts", vec![Value::Int(0)]))
            .unwrap(),
        ["y=1970/m=01/d=01"]
    );
    assert!(
        std::fs::metadata(&artifacts[0]).unwrap().len() > 1000,
        "re-cached"
    );
}

#[test]
fn loading_the_wrong_thing_is_a_clear_error() {
    let host = host();
    let error = host
        .load_partition(&plugin("flatten-json"), &[])
        .err()
        .unwrap();
    assert_eq!(error.kind, PluginErrorKind::Load);
    assert!(
        error
            .message
            .contains("does not export icedb:plugin/partition-strategy@0.1.0")
            && error.message.contains("it exports icedb:plugin/format-row"),
        "{error}"
    );
    let error = host
        .load_format(&plugin("partition-by-day"), &[])
        .err()
        .unwrap();
    assert!(
        error
            .message
            .contains("does not export icedb:plugin/format-row"),
        "{error}"
    );

    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let error = host.inspect(&core).unwrap_err();
    assert!(
        error
            .message
            .contains("core WebAssembly module, not a component"),
        "{error}"
    );
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"#!/bin/sh\necho hi\n").unwrap();
    assert!(
        host.inspect(&junk)
            .unwrap_err()
            .message
            .contains("not a WebAssembly component")
    );
    let error = host.inspect(Path::new("/nonexistent/x.wasm")).unwrap_err();
    assert!(
        error.message.contains("cannot read /nonexistent/x.wasm"),
        "{error}"
    );
}

// ---------------------------------------------------------------- hostile plugins

fn hostile_host() -> PluginHost {
    PluginHost::new(HostOptions {
        memory_limit: 64 << 20,
        call_timeout: Duration::from_millis(500),
        ..HostOptions::default()
    })
    .unwrap()
}

fn mode_rows(mode: &str) -> Vec<String> {
    vec![
        r#"{"mode": "ok"}"#.to_owned(),
        format!(r#"{{"mode":"{mode}"}}"#),
    ]
}

fn modes(mode: &str) -> Batch {
    one_column("mode", vec![text("ok"), text(mode)])
}

/// After any failure the same plugin must serve the next call.
fn assert_recovers(format: &icedb_plugin::FormatPlugin, partition: &icedb_plugin::PartitionPlugin) {
    let batch = format
        .format_blocking(&mode_rows("ok"))
        .expect("format works again");
    assert_eq!(batch.row_count, 2);
    let paths = partition
        .partition_blocking(&modes("ok"))
        .expect("partition works again");
    assert_eq!(paths, ["ok=1", "ok=1"]);
}

fn hostile() -> (icedb_plugin::FormatPlugin, icedb_plugin::PartitionPlugin) {
    let host = hostile_host();
    let format = host.load_format(&plugin("hostile"), &[]).unwrap();
    let partition = host.load_partition(&plugin("hostile"), &[]).unwrap();
    (format, partition)
}

fn check_error(error: &PluginError, kind: PluginErrorKind, function: &str, needle: &str) {
    assert_eq!(error.kind, kind, "{error}");
    assert_eq!(error.function, function);
    assert_eq!(error.plugin, "hostile");
    assert!(error.to_string().contains(needle), "`{needle}` in: {error}");
}

#[test]
fn a_trapping_plugin_is_replaced() {
    let (format, partition) = hostile();
    let error = format.format_blocking(&mode_rows("trap")).unwrap_err();
    check_error(&error, PluginErrorKind::Trap, "format", "trapped");
    assert!(error.message.contains("unreachable"), "{error}");
    assert!(
        error.message.contains("the plugin printed: ")
            && error
                .message
                .contains("hostile plugin asked to trap at row 1"),
        "the panic message reaches the error: {error}"
    );
    let error = partition.partition_blocking(&modes("trap")).unwrap_err();
    check_error(&error, PluginErrorKind::Trap, "partition", "trapped");
    assert_recovers(&format, &partition);
    assert_eq!(format.stats().traps, 1);
    assert_eq!(
        format.stats().instances_created,
        2,
        "the trapped instance was replaced"
    );
}

#[test]
fn an_endless_loop_is_stopped_by_the_time_cap() {
    let (format, partition) = hostile();
    let started = Instant::now();
    let error = format.format_blocking(&mode_rows("loop")).unwrap_err();
    let took = started.elapsed();
    check_error(&error, PluginErrorKind::Timeout, "format", "timed out");
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(3),
        "stopped after {took:?}"
    );
    let started = Instant::now();
    let error = partition.partition_blocking(&modes("loop")).unwrap_err();
    check_error(&error, PluginErrorKind::Timeout, "partition", "500ms");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_recovers(&format, &partition);
}

#[test]
fn a_memory_bomb_hits_the_memory_cap() {
    let (format, partition) = hostile();
    let error = format.format_blocking(&mode_rows("bomb")).unwrap_err();
    check_error(&error, PluginErrorKind::MemoryLimit, "format", "64 MiB");
    let error = partition.partition_blocking(&modes("bomb")).unwrap_err();
    check_error(&error, PluginErrorKind::MemoryLimit, "partition", "memory");
    assert_recovers(&format, &partition);
}

#[test]
fn a_wrong_number_of_results_is_refused() {
    let (format, partition) = hostile();
    let error = format.format_blocking(&mode_rows("short")).unwrap_err();
    check_error(
        &error,
        PluginErrorKind::InvalidOutput,
        "format",
        "returned 1 rows for a batch of 2",
    );
    let error = partition.partition_blocking(&modes("short")).unwrap_err();
    check_error(
        &error,
        PluginErrorKind::InvalidOutput,
        "partition",
        "returned 1 partition paths for a batch of 2",
    );
    assert_recovers(&format, &partition);
}

#[test]
fn unsafe_partition_paths_are_refused() {
    let (format, partition) = hostile();
    for (mode, needle) in [
        ("dotdot", "`../x` has a `.` or `..` segment"),
        ("abs", "`/abs` starts or ends with `/`"),
        ("empty", "the partition path is empty"),
        ("slash", "`a//b` has an empty segment"),
    ] {
        let error = partition.partition_blocking(&modes(mode)).unwrap_err();
        check_error(&error, PluginErrorKind::InvalidOutput, "partition", needle);
        assert_eq!(error.row, Some(1), "{mode}: the bad row is named");
    }
    assert_recovers(&format, &partition);
}

#[test]
fn an_error_value_names_the_row() {
    let (format, partition) = hostile();
    let error = format.format_blocking(&mode_rows("err")).unwrap_err();
    check_error(
        &error,
        PluginErrorKind::Rejected,
        "format",
        "at row 1: hostile plugin refuses this row",
    );
    let error = partition.partition_blocking(&modes("err")).unwrap_err();
    check_error(&error, PluginErrorKind::Rejected, "partition", "at row 1");
    assert_recovers(&format, &partition);
    assert_eq!(
        format.stats().instances_created,
        1,
        "an error value does not cost the instance"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trap_in_one_task_does_not_disturb_the_others() {
    let (format, _) = hostile();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let format = format.clone();
        let mode = if i % 3 == 0 { "trap" } else { "ok" };
        tasks.push(tokio::spawn(async move {
            (mode, format.format(mode_rows(mode)).await)
        }));
    }
    for task in tasks {
        let (mode, result) = task.await.unwrap();
        match mode {
            "trap" => assert_eq!(result.unwrap_err().kind, PluginErrorKind::Trap),
            _ => assert_eq!(result.unwrap().row_count, 2),
        }
    }
    assert_eq!(format.stats().traps, 8);
}

#[test]
fn live_instances_are_capped_under_concurrent_calls() {
    let host = PluginHost::new(HostOptions {
        max_instances: 2,
        ..HostOptions::default()
    })
    .unwrap();
    let format = std::sync::Arc::new(host.load_format(&plugin("flatten-json"), &[]).unwrap());
    let events = EventGenerator::new(3).batch(2_000);
    let threads: Vec<_> = (0..12)
        .map(|_| {
            let (format, events) = (format.clone(), events.clone());
            std::thread::spawn(move || {
                for _ in 0..3 {
                    assert_eq!(format.format_blocking(&events).unwrap().row_count, 2_000);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let stats = format.stats();
    assert_eq!(stats.calls, 36);
    assert!(
        stats.instances_created <= 2,
        "12 concurrent callers made {} instances with a cap of 2",
        stats.instances_created
    );
}
