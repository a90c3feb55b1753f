//! Which dropped files a read picks up: matching names, ordered by
//! modification time then name, after the saved cursor.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use conveyor_plugin_api::{ConnectorError, ErrorKind, Json};

/// Position in a folder's files: everything at or before it was read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    pub file: String,
}

impl Cursor {
    pub fn from_state(state: Option<Json>) -> Result<Option<Cursor>, ConnectorError> {
        state
            .map(|s| {
                serde_json::from_value(s).map_err(|e| {
                    ConnectorError::new(ErrorKind::Data, format!("saved cursor unreadable: {e}"))
                })
            })
            .transpose()
    }
}

#[derive(Debug, Clone)]
pub struct DroppedFile {
    pub path: PathBuf,
    pub cursor: Cursor,
}

/// `*` matches any run of characters (including none); everything else is literal.
pub fn matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// Files in `dir` matching `pattern` that come after `after`, oldest first.
/// A file rewritten since it was read has a newer mtime and is read again
/// (its rows merge by primary key).
pub fn files_after(
    dir: &Path,
    pattern: &str,
    after: Option<&Cursor>,
) -> Result<Vec<DroppedFile>, ConnectorError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        ConnectorError::new(
            ErrorKind::Config,
            format!("cannot list {}: {e}", dir.display()),
        )
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            ConnectorError::new(
                ErrorKind::Transient,
                format!("listing {}: {e}", dir.display()),
            )
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !matches(pattern, &name) {
            continue;
        }
        let meta = entry
            .metadata()
            .map_err(|e| ConnectorError::new(ErrorKind::Transient, format!("{name}: {e}")))?;
        if !meta.is_file() {
            continue;
        }
        let mtime = meta
            .modified()
            .map_err(|e| ConnectorError::new(ErrorKind::Transient, format!("{name}: {e}")))?;
        let mtime_ns = mtime
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        let cursor = Cursor {
            mtime_ns,
            file: name,
        };
        if after.is_some_and(|a| &cursor <= a) {
            continue;
        }
        files.push(DroppedFile {
            path: entry.path(),
            cursor,
        });
    }
    files.sort_by(|a, b| a.cursor.cmp(&b.cursor));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_runs_of_characters() {
        assert!(matches("hours_*.csv", "hours_2026-01.csv"));
        assert!(matches("hours_*.csv", "hours_.csv"));
        assert!(!matches("hours_*.csv", "hours_2026.ndjson"));
        assert!(!matches("hours_*.csv", "xhours_1.csv"));
        assert!(matches("*a*b*", "xxaxxbxx"));
        assert!(!matches("*a*b*", "xxbxxaxx"));
        assert!(matches("exact.csv", "exact.csv"));
    }

    #[test]
    fn files_come_oldest_first_after_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        for (name, secs) in [
            ("b.csv", 200),
            ("a.csv", 100),
            ("c.csv", 200),
            ("skip.txt", 50),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, "id\n1\n").unwrap();
            let f = std::fs::File::options().write(true).open(&p).unwrap();
            f.set_modified(UNIX_EPOCH + std::time::Duration::from_secs(secs))
                .unwrap();
        }
        let all = files_after(dir.path(), "*.csv", None).unwrap();
        let names: Vec<_> = all.iter().map(|f| f.cursor.file.as_str()).collect();
        assert_eq!(names, ["a.csv", "b.csv", "c.csv"]);
        let later = files_after(dir.path(), "*.csv", Some(&all[1].cursor)).unwrap();
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].cursor.file, "c.csv");
    }
}
