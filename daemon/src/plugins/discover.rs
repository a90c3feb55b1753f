//! Where plugin libraries are looked for: `lib<name>.so` (`.dylib` on
//! macOS, `<name>.dll` on Windows) in the configured folders, in order.

use std::path::{Path, PathBuf};

use super::PluginError;

/// The file a plugin called `name` lives in, e.g. `libfile_drop.so`.
pub fn library_file_name(name: &str) -> String {
    format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// The first of `dirs` holding the library for plugin `name`.
pub fn find_library(dirs: &[PathBuf], name: &str) -> Result<PathBuf, PluginError> {
    let file = library_file_name(name);
    for dir in dirs {
        let candidate = dir.join(&file);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    let searched = if dirs.is_empty() {
        "no folder ([plugins] dirs is empty)".to_string()
    } else {
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(PluginError::NotFound {
        name: name.to_string(),
        file,
        searched,
    })
}

/// Every shared library in `dir`, sorted by name (missing folder: none).
pub fn list_dir(dir: &Path) -> Vec<PathBuf> {
    let suffix = std::env::consts::DLL_SUFFIX;
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(suffix))
        })
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_folder_holding_the_library_wins_and_misses_list_every_folder() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let file = library_file_name("file_drop");
        std::fs::write(b.path().join(&file), b"").unwrap();
        let dirs = [a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(
            find_library(&dirs, "file_drop").unwrap(),
            b.path().join(&file)
        );
        std::fs::write(a.path().join(&file), b"").unwrap();
        assert_eq!(
            find_library(&dirs, "file_drop").unwrap(),
            a.path().join(&file)
        );
        let e = find_library(&dirs, "nope").unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "plugin `nope` not found: no {}",
                library_file_name("nope")
            )),
            "{e}"
        );
        assert!(
            e.contains(&a.path().display().to_string())
                && e.contains(&b.path().display().to_string()),
            "{e}"
        );
        assert_eq!(list_dir(a.path()), [a.path().join(&file)]);
    }
}
