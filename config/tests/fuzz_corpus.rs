//! Replays the config fuzz target's seed corpus (`fuzz/corpus/config/`)
//! through the target's own body, so the normal test suite checks every seed
//! without cargo-fuzz: no panic, and every rejection located in the text.

use std::path::PathBuf;

fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/config");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn fuzz_config_seeds_parse_or_fail_located() {
    let seeds = seeds();
    assert!(seeds.len() >= 15, "only {} seeds", seeds.len());
    let mut accepted = Vec::new();
    for (name, data) in &seeds {
        // Panics (with the seed named) on a crash or an unlocated error.
        let ok = std::panic::catch_unwind(|| conveyor_config::fuzzing::fuzz_one(data))
            .unwrap_or_else(|_| panic!("seed {name} crashed the config target"));
        if ok {
            accepted.push(name.as_str());
        }
    }
    // The real configs are valid; the handmade bad ones are not.
    for good in [
        "example.toml",
        "rule_tests_conveyor.toml",
        "e2e_support.toml",
    ] {
        assert!(
            accepted.contains(&good),
            "{good} rejected; accepted: {accepted:?}"
        );
    }
    for bad in [
        "e2e_cli_bad.toml",
        "duplicate_key.toml",
        "numbers_edge.toml",
        "unterminated.toml",
    ] {
        assert!(!accepted.contains(&bad), "{bad} accepted");
    }
}

#[test]
fn fuzz_config_errors_point_inside_multibyte_lines() {
    // Columns count characters: a problem after "ż" on a line is at the
    // character, and the diagnostic stays inside the text.
    let text = "[warehouse]\npath = \"wh.duckdb\"\n[sources.\"żółw\"]\ntype = \"réstful\"\n";
    let e = conveyor_config::parse_offline(text, std::path::Path::new("/x/c.toml")).unwrap_err();
    let at: Vec<_> =
        e.0.iter()
            .map(|d| (d.key.as_str(), d.line, d.col))
            .collect();
    assert_eq!(
        at,
        [("sources.żółw", 3, 10), ("sources.żółw.type", 4, 8)],
        "{e}"
    );
    assert!(!conveyor_config::fuzzing::fuzz_one(text.as_bytes()));
}
