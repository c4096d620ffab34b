//! Read-only SQL for queries from the network: one statement that reads
//! (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN, PIVOT),
//! without keywords that write, load code, change settings or reach other
//! databases. This is the first line; the second is DuckDB itself, which a
//! served table runs with external access limited to the table's files
//! (`TableConfig::sandbox_queries`).

/// Statements a query may start with.
const READS: &[&str] = &[
    "SELECT",
    "WITH",
    "FROM",
    "VALUES",
    "TABLE",
    "DESCRIBE",
    "SHOW",
    "SUMMARIZE",
    "EXPLAIN",
    "PIVOT",
    "UNPIVOT",
];

/// Keywords refused anywhere outside string literals and quoted names.
const REFUSED: &[&str] = &[
    "COPY",
    "ATTACH",
    "DETACH",
    "INSTALL",
    "LOAD",
    "PRAGMA",
    "EXPORT",
    "IMPORT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "MERGE",
    "UPSERT",
    "CREATE",
    "DROP",
    "ALTER",
    "TRUNCATE",
    "SET",
    "RESET",
    "CALL",
    "USE",
    "CHECKPOINT",
    "VACUUM",
    "GRANT",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
];

/// Checks that `sql` is a single read-only statement; the error says why not.
pub fn check_read_only(sql: &str) -> Result<(), String> {
    let words = words_outside_literals(sql)?;
    let Some(first) = words.first() else {
        return Err("the query is empty".to_owned());
    };
    for word in &words {
        if word == ";" {
            continue;
        }
        let upper = word.to_ascii_uppercase();
        if REFUSED.contains(&upper.as_str()) {
            return Err(format!(
                "HTTP queries are read-only: `{upper}` is not allowed (quote it, as \"{word}\", if it is a column name)"
            ));
        }
    }
    if let Some(position) = words.iter().position(|w| w == ";")
        && position + 1 < words.len()
    {
        return Err("send one statement per query (found `;` followed by more SQL)".to_owned());
    }
    let first_upper = first.to_ascii_uppercase();
    if !READS.contains(&first_upper.as_str()) {
        return Err(format!(
            "HTTP queries are read-only and must start with one of {}; this one starts with `{first}`",
            READS.join(", ")
        ));
    }
    Ok(())
}

/// Bare words of `sql` (and `;` as a word), skipping string literals,
/// quoted identifiers, dollar-quoted strings and comments.
fn words_outside_literals(sql: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut words = Vec::new();
    let mut i = 0;
    let unterminated = |what: &str| Err(format!("unterminated {what} in the query"));
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '"' => {
                let quote = c;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return unterminated(if quote == '\'' {
                                "string literal"
                            } else {
                                "quoted name"
                            });
                        }
                        Some(&q) if q == quote && chars.get(i + 1) == Some(&quote) => i += 2,
                        Some(&q) if q == quote => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                loop {
                    if i + 1 >= chars.len() {
                        return unterminated("comment");
                    }
                    if chars[i] == '*' && chars[i + 1] == '/' {
                        i += 2;
                        break;
                    }
                    i += 1;
                }
            }
            '$' => {
                // $tag$ ... $tag$
                let start = i;
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                if chars.get(j) == Some(&'$') {
                    let tag: String = chars[start..=j].iter().collect();
                    let rest: String = chars[j + 1..].iter().collect();
                    match rest.find(&tag) {
                        Some(end) => i = j + 1 + rest[..end].chars().count() + tag.chars().count(),
                        None => return unterminated("dollar-quoted string"),
                    }
                } else {
                    i = j;
                }
            }
            ';' => {
                words.push(";".to_owned());
                i += 1;
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                words.push(chars[start..i].iter().collect());
            }
            _ => i += 1,
        }
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::check_read_only;

    #[test]
    fn reads_pass() {
        for sql in [
            "SELECT count(*) FROM events",
            "  with t as (select 1) select * from t;",
            "FROM events LIMIT 3",
            "SELECT 'COPY x TO y' AS text, \"set\" FROM events -- DROP TABLE\n",
            "DESCRIBE events",
            "SELECT $$ATTACH$$",
            "/* INSTALL */ SELECT 1",
        ] {
            assert_eq!(check_read_only(sql), Ok(()), "{sql}");
        }
    }

    #[test]
    fn writes_and_escapes_fail() {
        for (sql, expected) in [
            ("COPY events TO '/tmp/x.csv'", "COPY"),
            ("ATTACH '/tmp/x.db'", "ATTACH"),
            ("select 1; drop table events", "DROP"),
            ("SELECT 1; SELECT 2", "one statement"),
            ("INSTALL httpfs", "INSTALL"),
            ("LOAD httpfs", "LOAD"),
            ("PRAGMA version", "PRAGMA"),
            ("SET enable_external_access = true", "SET"),
            (
                "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
                "INSERT",
            ),
            ("CREATE TABLE t AS SELECT 1", "CREATE"),
            ("SELECT 'unterminated", "unterminated"),
            ("", "empty"),
            ("summon demons", "must start with"),
        ] {
            let error = check_read_only(sql).unwrap_err();
            assert!(error.contains(expected), "{sql}: {error}");
        }
    }
}
