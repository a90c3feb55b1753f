//! Whether the warehouse file can be created or written where the config
//! puts it, so `conveyor check` says so instead of the first sync failing.

use std::path::Path;

/// A problem with the folder or file at `path` (message, hint), or `None`
/// when Conveyor can create or write the file there.
pub(crate) fn warehouse_location_problem(path: &Path) -> Option<(String, String)> {
    if path.as_os_str() == ":memory:" {
        return None;
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        // Creating a missing tree silently would hide a typo in the path
        // until someone wonders where the data went.
        return Some((
            format!("the folder {} does not exist", dir.display()),
            format!("create it (mkdir -p {}) or fix the path", dir.display()),
        ));
    }
    if path.exists() {
        return std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .err()
            .map(|e| {
                (
                    format!("cannot write {}: {e}", path.display()),
                    "give the user conveyor runs as write access to the file".to_string(),
                )
            });
    }
    // Permission bits do not tell (root, ACLs, read-only mounts): try.
    let probe = dir.join(format!(".conveyor-write-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some((
            format!("cannot create files in {}: {e}", dir.display()),
            "give the user conveyor runs write access to the folder (DuckDB also writes a .wal file beside the warehouse)".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_is_named_with_a_hint() {
        let d = tempfile::tempdir().unwrap();
        let (msg, hint) = warehouse_location_problem(&d.path().join("no/such/wh.duckdb")).unwrap();
        assert!(
            msg.contains("no/such") && msg.contains("does not exist"),
            "{msg}"
        );
        assert!(hint.contains("mkdir -p"), "{hint}");
        assert!(
            !d.path().join("no").exists(),
            "the check must not create it"
        );
    }

    #[test]
    fn a_writable_folder_passes_and_leaves_nothing_behind() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            warehouse_location_problem(&d.path().join("wh.duckdb")),
            None
        );
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_folder_nobody_can_write_is_reported() {
        // /proc refuses new files even to root, unlike a chmod'ed folder.
        let (msg, _) = warehouse_location_problem(Path::new("/proc/wh.duckdb")).unwrap();
        assert!(msg.contains("cannot create files in /proc"), "{msg}");
    }
}
