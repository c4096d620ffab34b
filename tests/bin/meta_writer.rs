//! Test helper (not shipped): one OS process that makes insert commits on a
//! table through icedb-meta, for the multi-process commit tests.
//!
//! usage: meta-writer <table-url> <writer-name> <commits> <replica-dir>
//! S3 settings come from ICEDB_TEST_S3_ENDPOINT and the AWS variables.

use icedb_meta::{
    CommitDraft, DataFile, MetaOptions, MetaStore, Operation, S3Options, TableLocation,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, writer, commits, replica_dir] = args.as_slice() else {
        anyhow::bail!("usage: meta-writer <table-url> <writer-name> <commits> <replica-dir>");
    };
    let s3 = S3Options {
        endpoint: std::env::var("ICEDB_TEST_S3_ENDPOINT").ok(),
        allow_http: Some(true),
        path_style: Some(true),
        ..S3Options::default()
    };
    let location = TableLocation::parse(url, &s3)?;
    let options = MetaOptions {
        replica_dir: Some(replica_dir.into()),
        writer_id: Some(writer.clone()),
        max_commit_attempts: 1_000,
        ..MetaOptions::default()
    };
    let meta = MetaStore::open_location(&location, options).await?;
    for i in 0..commits.parse::<u32>()? {
        let mut draft = CommitDraft::new(Operation::Insert);
        draft.added.push(DataFile {
            path: format!("data/p={writer}/{i}.parquet"),
            partition: format!("p={writer}"),
            bytes: 100,
            rows: 10,
            created_ms: 0,
            columns: Default::default(),
            inline: None,
            segment: None,
        });
        meta.commit(draft).await?;
    }
    Ok(())
}
