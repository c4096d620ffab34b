//! The config's parsing, defaults, errors and the sample.

use super::*;

#[test]
fn sample_is_the_embedded_default() {
    assert_eq!(
        HostConfig::default().server.listen.to_string(),
        "127.0.0.1:8080"
    );
    let sample = HostConfig::from_toml(SAMPLE).unwrap();
    let mut expected = HostConfig::default();
    // The sample spells out what the defaults leave to the policies.
    expected.tables[0].merge = sample.tables[0].merge.clone();
    assert_eq!(sample, expected);
    let hot = &sample.merges(&sample.tables[0])[0];
    let default = &HostConfig::default().merges(&HostConfig::default().tables[0])[0];
    assert_eq!(format!("{:?}", hot.policy), format!("{:?}", default.policy));
    assert_eq!(hot.every, default.every);
    let cold_sample = &sample.merges(&sample.tables[0])[1];
    let cold_default = &HostConfig::default().merges(&HostConfig::default().tables[0])[1];
    assert_eq!(
        format!("{:?}", cold_sample.policy),
        format!("{:?}", cold_default.policy)
    );
    assert_eq!(cold_sample.every, MergePolicy::COLD_EVERY);
}

#[test]
fn errors_name_the_key() {
    let error = HostConfig::from_toml("[server]\nlisten = 12\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("server.listen"), "{error}");
    let error = HostConfig::from_toml("[server]\nlisen = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("lisen"), "{error}");
    let error = HostConfig::from_toml(
        "[[tables]]\nname = \"a\"\nroot = \"x\"\n[tables.partitioning]\nby = \"plugin\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("tables[0].partitioning.plugin"), "{error}");
    let error = HostConfig::from_toml("[[tables]]\n[tables.merge.hot]\nevery = \"soon\"\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("every"), "{error}");
}

#[test]
fn settings_and_relative_paths() {
    let mut config = HostConfig::from_toml(
        "[[tables]]\nname = \"t\"\nroot = \"data/t\"\nsort_order = [\"ts\"]\n[tables.format]\nplugin = \"p/f.wasm\"\nsettings = { max-depth = 1, keep = true }\n",
    )
    .unwrap();
    config.base_dir = PathBuf::from("/etc/icedb");
    let table = config.table_config(&config.tables[0]);
    assert_eq!(table.root, "/etc/icedb/data/t");
    match table.format {
        FormatSpec::Plugin { path, settings } => {
            assert_eq!(path, PathBuf::from("/etc/icedb/p/f.wasm"));
            assert_eq!(
                settings,
                vec![
                    ("keep".to_owned(), "true".to_owned()),
                    ("max-depth".to_owned(), "1".to_owned())
                ]
            );
        }
        other => panic!("{other:?}"),
    }
}
