"""Side by side on one moto S3 server: IceDB, DuckLake (inlining off and on)
and Delta Lake (delta-rs) load the same generated NDJSON (sort `event, ts`,
daily partitions) and go through the same phases; prints seconds per phase
(median of the runs) and each engine's ratio to the best peer.

Run through `scripts/bench.sh peers` (it installs DuckDB 1.4.4, the
duckdb-ext-ducklake / duckdb-ext-httpfs wheels, deltalake and pyarrow into
the test venv and starts moto). Environment:
  ICEDB_PEERS_RUNS        runs per workload (default 3)
  ICEDB_PEERS_SMALL_ROWS  rows of the small-insert workload (default 20 000,
                          as 100-row inserts)
  ICEDB_PEERS_BIG_ROWS    rows of the big-insert workload (default 100 000,
                          as 10 000-row inserts)
  ICEDB_PEERS_ENGINES     comma-separated engines to run (default all:
                          IceDB,DuckLake,DuckLake inlining,Delta); e.g.
                          `IceDB` alone to compare two IceDB builds
                          (ICEDB_BIN) without the peers' minutes
  ICEDB_PEERS_TRACE_AFTER print every thread's stack and stop after this many
                          seconds (debugging a stuck run; default: never)

IceDB ingests with its CLI (`icedb-host insert`, one process: process start
and table open included), then a running `icedb-host run` answers the
counts and runs the compaction (`POST /v1/tables/events/merge?policy=cold&until=quiescent`:
cold rounds until one merges nothing, in one request) and the cleanup (`POST .../vacuum?orphans=false`,
grace 0: removed files and old log entries, no listing of data objects for
orphans, as DuckLake's `ducklake_cleanup_old_files`) over HTTP: a warm
process, as the peers' connections are. The same count, merge and vacuum
(with the orphan listing) as whole CLI processes (`icedb-host query/merge/vacuum`,
on a second table with no host running) are printed too. The peers run in
one warm Python process.
"""

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import boto3
import duckdb
import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder, write_deltalake

ENDPOINT = os.environ["MOTO_ENDPOINT"]
ICEDB = os.environ["ICEDB_BIN"]
EXT_DIR = os.environ["ICEDB_DUCKDB_EXTENSION_DIR"]
KEY, SECRET = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
RUNS = int(os.environ.get("ICEDB_PEERS_RUNS", "3"))
SMALL = int(os.environ.get("ICEDB_PEERS_SMALL_ROWS", "20000"))
BIG = int(os.environ.get("ICEDB_PEERS_BIG_ROWS", "100000"))
ENGINES = os.environ.get("ICEDB_PEERS_ENGINES", "IceDB,DuckLake,DuckLake inlining,Delta").split(",")

s3 = boto3.client("s3", endpoint_url=ENDPOINT)


def timed(action):
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def fresh_bucket():
    name = "peers-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=name)
    return name


def object_count(bucket, prefix):
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        count += sum(1 for o in page.get("Contents", []) if o["Key"].endswith(".parquet"))
    return count


def duck():
    con = duckdb.connect(config={"extension_directory": EXT_DIR, "autoinstall_known_extensions": "false",
                                 "autoload_known_extensions": "false"})
    con.execute("LOAD httpfs; LOAD ducklake;")
    host = ENDPOINT.replace("http://", "")
    con.execute(f"CREATE SECRET moto (TYPE S3, KEY_ID '{KEY}', SECRET '{SECRET}', REGION 'us-east-1', "
                f"ENDPOINT '{host}', USE_SSL false, URL_STYLE 'path')")
    return con


def chunks_of(ndjson_path, rows_per_insert):
    """The workload as Arrow tables of `rows_per_insert` rows, each sorted by
    (event, ts), with `ts` a timestamp and `day` for Delta's partitions."""
    con = duckdb.connect()
    con.execute(
        f"CREATE TABLE src AS SELECT (row_number() OVER () - 1) // {rows_per_insert} AS chunk, id, "
        "make_timestamp(ts * 1000)::TIMESTAMPTZ AS ts, event, user_id, properties::VARCHAR AS properties "
        f"FROM read_json('{ndjson_path}', columns = {{id: 'VARCHAR', ts: 'BIGINT', event: 'VARCHAR', "
        "user_id: 'VARCHAR', properties: 'JSON'}, format = 'newline_delimited')")
    count = con.execute("SELECT max(chunk) + 1 FROM src").fetchone()[0]
    chunks = []
    for i in range(count):
        chunks.append(con.execute(
            f"SELECT id, ts, event, user_id, properties, strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%d') AS day "
            f"FROM src WHERE chunk = {i} ORDER BY event, ts").fetch_arrow_table())
    return chunks


# ----------------------------------------------------------------- IceDB

def icedb(args, stdin=None):
    out = subprocess.run([ICEDB, *args], input=stdin, capture_output=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"icedb-host {' '.join(args)}: {out.stderr.decode()[-2000:]}")
    return out.stdout.decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Host:
    """`icedb-host run` serving the table (scheduler off), for queries from
    a warm process over one kept-alive connection, as the peers' are warm
    connections."""

    def __init__(self, root, work):
        self.port = free_port()
        config = os.path.join(work, f"host-{self.port}.toml")
        with open(config, "w") as f:
            f.write(f'[server]\nlisten = "127.0.0.1:{self.port}"\n'
                    f'[[tables]]\nname = "events"\nroot = "{root}"\n'
                    "[tables.merge.hot]\nenabled = false\n[tables.merge.cold]\nenabled = false\n"
                    '[tables.vacuum]\nenabled = false\ngrace = "0s"\nforce = true\n')
        self.log = open(os.path.join(work, f"host-{self.port}.log"), "wb")
        self.process = subprocess.Popen([ICEDB, "run", "--config", config], stdout=self.log,
                                        stderr=self.log)
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1)
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
                return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError("icedb-host run did not become ready")

    def post(self, path, body=None):
        self.connection.request(
            "POST", path, body=json.dumps(body).encode() if body is not None else b"",
            headers={"content-type": "application/json"})
        response = self.connection.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(f"POST {path} answered {response.status}: {answer[:500]!r}")
        return json.loads(answer)

    def count(self):
        return self.post("/v1/query", {"sql": "SELECT count(*) AS n FROM events"})["rows"][0]["n"]

    def merge(self):
        # Cold rounds until one plans nothing, in one request (as the peers'
        # flush and merge calls): the CLI's `merge`.
        answer = self.post("/v1/tables/events/merge?policy=cold&until=quiescent")
        assert answer["files_out"] > 0, answer

    def vacuum(self):
        # Tombstones and the log, no orphan listing: what DuckLake's
        # ducklake_cleanup_old_files does (its orphans are a separate call,
        # ducklake_delete_orphaned_files). The CLI vacuum below also lists.
        return self.post("/v1/tables/events/vacuum?orphans=false")

    def stop(self):
        self.connection.close()
        self.process.terminate()
        self.process.wait()
        self.log.close()


def run_icedb(ndjson, rows_per_insert, expected, work):
    bucket = fresh_bucket()
    root = f"s3://{bucket}/icedb/events"
    table = ["--table", root]
    phases = {}
    with open(ndjson, "rb") as f:
        body = f.read()
    os.chdir(work)
    phases["ingest"], _ = timed(lambda: icedb(["insert", "-", "--batch-rows", str(rows_per_insert), *table], body))
    host = Host(root, work)

    def count():
        n = host.count()
        assert n == expected, n

    def count_cli():
        rows = json.loads(icedb(["query", *table, "--format", "json", "SELECT count(*) AS n FROM events"]))
        assert rows["n"] == expected, rows
    try:
        phases["files"] = object_count(bucket, "icedb/events/data/")
        phases["count before"], _ = timed(count)
        phases["count, CLI process"], _ = timed(count_cli)
        phases["compaction"], _ = timed(host.merge)
        phases["count after"], _ = timed(count)
        phases["cleanup"], _ = timed(host.vacuum)
        count()
    finally:
        host.stop()
    # The same maintenance as one-shot CLI processes, on a second table.
    bucket = fresh_bucket()
    table = ["--table", f"s3://{bucket}/icedb/events"]
    icedb(["insert", "-", "--batch-rows", str(rows_per_insert), *table], body)
    phases["merge, CLI process"], _ = timed(lambda: icedb(["merge", *table]))
    phases["vacuum, CLI process"], _ = timed(lambda: icedb(["vacuum", *table, "--grace", "0s", "--force"]))
    return phases


# ----------------------------------------------------------------- DuckLake

def run_ducklake(chunks, expected, work, inlining):
    bucket = fresh_bucket()
    con = duck()
    limit = 1000 if inlining else 0
    con.execute(f"ATTACH 'ducklake:{work}/lake-{bucket}.ducklake' AS lake "
                f"(DATA_PATH 's3://{bucket}/ducklake/', DATA_INLINING_ROW_LIMIT {limit})")
    con.execute("CREATE TABLE lake.events (id VARCHAR, ts TIMESTAMPTZ, event VARCHAR, user_id VARCHAR, "
                "properties VARCHAR)")
    con.execute("ALTER TABLE lake.events SET PARTITIONED BY (year(ts), month(ts), day(ts))")
    phases = {}

    def ingest():
        for chunk in chunks:
            con.register("chunk", chunk)
            con.execute("INSERT INTO lake.events SELECT id, ts, event, user_id, properties FROM chunk")
            con.unregister("chunk")
    phases["ingest"], _ = timed(ingest)

    def count():
        n = con.execute("SELECT count(*) FROM lake.events").fetchone()[0]
        assert n == expected, n
    phases["files"] = object_count(bucket, "ducklake/")
    phases["count before"], _ = timed(count)

    def compact():
        if inlining:
            con.execute("CALL ducklake_flush_inlined_data('lake')")
        con.execute("CALL ducklake_merge_adjacent_files('lake')")
    phases["compaction"], _ = timed(compact)
    phases["count after"], _ = timed(count)

    def cleanup():
        con.execute("CALL ducklake_expire_snapshots('lake', older_than => now())")
        con.execute("CALL ducklake_cleanup_old_files('lake', cleanup_all => true)")
    phases["cleanup"], _ = timed(cleanup)
    count()
    con.close()
    return phases


# ----------------------------------------------------------------- Delta

def run_delta(chunks, expected):
    bucket = fresh_bucket()
    uri = f"s3://{bucket}/delta/events"
    options = {"AWS_ENDPOINT_URL": ENDPOINT, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
               "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true", "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
    phases = {}

    def ingest():
        for chunk in chunks:
            write_deltalake(uri, chunk, mode="append", partition_by=["day"], storage_options=options)
    phases["ingest"], _ = timed(ingest)

    def count():
        table = DeltaTable(uri, storage_options=options)
        result = QueryBuilder().register("events", table).execute("SELECT count(*) AS n FROM events")
        n = pa.table(result.read_all()).column("n")[0].as_py()
        assert n == expected, n
    phases["files"] = object_count(bucket, "delta/")
    phases["count before"], _ = timed(count)
    phases["compaction"], _ = timed(lambda: DeltaTable(uri, storage_options=options).optimize.compact())
    phases["count after"], _ = timed(count)
    phases["cleanup"], _ = timed(lambda: DeltaTable(uri, storage_options=options).vacuum(
        retention_hours=0, enforce_retention_duration=False, dry_run=False))
    count()
    return phases


# ----------------------------------------------------------------- the table

PHASES = ["ingest", "count before", "compaction", "count after", "cleanup"]


def workload(label, rows, rows_per_insert, engines, work):
    ndjson = os.path.join(work, f"events-{rows}.ndjson")
    with open(ndjson, "wb") as f:
        f.write(subprocess.run([ICEDB, "gen-events", "--rows", str(rows), "--seed", "7"],
                               capture_output=True, check=True).stdout)
    chunks = chunks_of(ndjson, rows_per_insert)
    results = {engine: [] for engine in engines}
    for run in range(RUNS):
        for engine in engines:
            if engine == "IceDB":
                phases = run_icedb(ndjson, rows_per_insert, rows, work)
            elif engine == "DuckLake":
                phases = run_ducklake(chunks, rows, work, inlining=False)
            elif engine == "DuckLake inlining":
                phases = run_ducklake(chunks, rows, work, inlining=True)
            else:
                phases = run_delta(chunks, rows)
            results[engine].append(phases)
            print(f"  run {run + 1}/{RUNS} {engine}: "
                  + ", ".join(f"{p} {phases[p]:.2f}" for p in PHASES), file=sys.stderr, flush=True)
    median = {e: {p: statistics.median(r[p] for r in runs) for p in PHASES + ["files"]}
              for e, runs in results.items()}
    print(f"\n{label}: {rows} rows as {rows // rows_per_insert} inserts of {rows_per_insert} rows, "
          f"moto S3, median of {RUNS} runs (s; ratio = IceDB / best peer)")
    header = f"| {'phase':<22} | " + " | ".join(f"{e:>21}" for e in engines) + " | IceDB / best peer |"
    print(header)
    print("|" + "---|" * (len(engines) + 2))
    for phase in PHASES:
        peers = [median[e][phase] for e in engines if e != "IceDB"]
        best = min(peers, default=None)
        ratio = ""  # nothing to compare with when IceDB or every peer was left out
        if best is not None and "IceDB" in median:
            ratio = f"{median['IceDB'][phase] / best:.2f}" if best > 0 else "inf"
        cells = " | ".join(f"{median[e][phase]:>21.3f}" for e in engines)
        print(f"| {phase:<22} | {cells} | {ratio:>17} |")
    cells = " | ".join(f"{int(median[e]['files']):>21}" for e in engines)
    print(f"| {'files after ingest':<22} | {cells} | {'':>17} |")
    if "IceDB" not in results:
        sys.stdout.flush()
        return
    cli = {p: statistics.median(r[p] for r in results["IceDB"])
           for p in ("count, CLI process", "merge, CLI process", "vacuum, CLI process")}
    print(f"IceDB's counts, compaction and cleanup above are requests to a running `icedb-host run` "
          f"(warm, like the peers' connections); as whole CLI processes: count(*) "
          f"{cli['count, CLI process']:.3f} s, merge {cli['merge, CLI process']:.3f} s, "
          f"vacuum {cli['vacuum, CLI process']:.3f} s")
    sys.stdout.flush()


def main():
    import faulthandler
    faulthandler.dump_traceback_later(int(os.environ.get("ICEDB_PEERS_TRACE_AFTER", "0")) or 10**9, exit=True)
    print(f"DuckDB {duckdb.__version__}, deltalake {__import__('deltalake').__version__}, "
          f"IceDB {icedb(['--version']).strip()}", flush=True)
    with tempfile.TemporaryDirectory() as work:
        small = ["IceDB", "DuckLake", "DuckLake inlining", "Delta"]
        workload("Small inserts", SMALL, 100, [e for e in small if e in ENGINES], work)
        big = ["IceDB", "DuckLake", "Delta"]
        workload("Big inserts", BIG, 10_000, [e for e in big if e in ENGINES], work)


if __name__ == "__main__":
    main()
