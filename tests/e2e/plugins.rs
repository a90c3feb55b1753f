//! Connector plugins end to end: the harness builds the plugin libraries
//! with cargo, copies them into a plugin folder, and the real binary loads
//! them through the C ABI — the file-drop example synced into DuckDB, and
//! broken or misbehaving libraries refused or contained while every other
//! source keeps running.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use conveyor::plugins::library_file_name;
use conveyor::progress::Progress;
use conveyor::sync::sync_connector;
use conveyor::warehouse::Warehouse;
use conveyor_mocks::rest::{dataset, RestMockConfig};
use conveyor_plugin_api::host::NativeConnector;
use conveyor_plugin_api::CancelFlag;
use serde_json::json;

use crate::support::{free_port, holds_within, sql_on, text, Daemon, Fixture, BIN};

/// The plugin crates the tests load, by package.
const PLUGIN_PACKAGES: &[&str] = &[
    "conveyor-plugin-file-drop",
    "conveyor-test-plugin-misbehaving",
    "conveyor-test-plugin-future-abi",
    "conveyor-test-plugin-no-init",
    "conveyor-test-plugin-not-a-plugin",
    "conveyor-test-plugin-crashing",
];

/// Builds every plugin library (once per test process) with the cargo and
/// target folder that built this test, and returns the folder holding them.
/// Nothing assumes they were built before.
pub fn built_plugins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let profile_dir = Path::new(BIN)
            .parent()
            .expect("the binary's folder")
            .to_path_buf();
        let target_dir = profile_dir.parent().expect("the target folder");
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the workspace");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.arg("build")
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(workspace);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let mut example = std::process::Command::new(cmd.get_program());
        example.args(cmd.get_args()).current_dir(workspace).args([
            "-p",
            "conveyor-plugin-api",
            "--example",
            "plugin_loop",
        ]);
        for p in PLUGIN_PACKAGES {
            cmd.args(["-p", p]);
        }
        for mut build in [cmd, example] {
            let out = build.output().expect("cargo runs");
            assert!(
                out.status.success(),
                "building the plugins failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        profile_dir
    })
}

/// A fresh plugin folder under `root` holding copies of the named plugins.
pub fn plugin_folder(root: &Path, names: &[&str]) -> PathBuf {
    let dir = root.join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    for name in names {
        let file = library_file_name(name);
        std::fs::copy(built_plugins().join(&file), dir.join(&file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    dir
}

/// A timekeeping export folder: daily hours as CSV, clock punches as NDJSON.
fn write_timekeeping(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("hours_2026-01-05.csv"),
        "entry_id,employee_email,work_date,hours,overtime,approved,badge\n\
         E-001,ana@example.com,2026-01-05,8,0.5,true,007\n\
         E-002,bo@example.com,2026-01-05,7.5,,false,012\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("hours_2026-01-06.csv"),
        "entry_id,employee_email,work_date,hours,overtime,approved,badge\n\
         E-003,ana@example.com,2026-01-06,9,1,true,007\n\
         E-002,bo@example.com,2026-01-05,8,,true,012\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("punches.ndjson"),
        "{\"punch_id\":\"P-1\",\"employee_email\":\"ana@example.com\",\"at\":\"2026-01-05T09:00:00+01:00\",\"kind\":\"in\",\"device\":{\"id\":3}}\n\
         {\"punch_id\":\"P-2\",\"employee_email\":\"ana@example.com\",\"at\":\"2026-01-05T17:30:00+01:00\",\"kind\":\"out\"}\n",
    )
    .unwrap();
}

fn timekeeping_options(drops: &Path) -> serde_json::Value {
    json!({
        "dir": drops.display().to_string(),
        "streams": [
            { "name": "hours", "pattern": "hours_*.csv", "primary_key": ["entry_id"] },
            { "name": "punches", "pattern": "*.ndjson", "primary_key": ["punch_id"] },
        ]
    })
}

/// The same options as TOML, for a config file.
fn timekeeping_toml(drops: &Path) -> String {
    format!(
        r#"options = {{ dir = "{}", streams = [
    {{ name = "hours", pattern = "hours_*.csv", primary_key = ["entry_id"] }},
    {{ name = "punches", pattern = "*.ndjson", primary_key = ["punch_id"] }},
] }}"#,
        drops.display()
    )
}

fn write_config(root: &Path, body: &str) -> PathBuf {
    let p = root.join("conveyor.toml");
    let text = format!(
        "[warehouse]\npath = \"wh.duckdb\"\n\n[server]\nlisten = \"127.0.0.1:{}\"\n\n{body}",
        free_port()
    );
    std::fs::write(&p, text).unwrap();
    p
}

async fn conveyor(config: &Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .current_dir(config.parent().unwrap())
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn file_drop_plugin_syncs_into_duckdb_exactly_like_the_native_connector() {
    let dir = tempfile::tempdir().unwrap();
    let drops = dir.path().join("drops");
    write_timekeeping(&drops);
    plugin_folder(dir.path(), &["file_drop"]);
    let config = write_config(
        dir.path(),
        &format!(
            "[plugins]\ndirs = [\"plugins\"]\n\n[sources.timekeeping]\ntype = \"file_drop\"\n{}\n",
            timekeeping_toml(&drops)
        ),
    );
    let out = conveyor(&config, &["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));

    // The same connector compiled in, through the same sync and loader.
    let native = dir.path().join("native.duckdb");
    {
        let wh = Arc::new(Warehouse::open(&native).unwrap());
        let connector =
            NativeConnector::new(file_drop::FileDrop::new(timekeeping_options(&drops)).unwrap());
        let report = sync_connector(
            wh,
            "timekeeping",
            &connector,
            &CancelFlag::default(),
            &Progress::hidden(),
            None,
        )
        .await;
        assert!(!report.failed(), "{report:?}");
    }
    let plugin = dir.path().join("wh.duckdb");
    for table in ["hours", "punches"] {
        let rows = format!("SELECT * FROM timekeeping.{table} ORDER BY ALL");
        let types = format!(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_schema = 'timekeeping' AND table_name = '{table}' ORDER BY ordinal_position"
        );
        assert_eq!(
            sql_on(&plugin, &rows),
            sql_on(&native, &rows),
            "{table} rows"
        );
        assert_eq!(
            sql_on(&plugin, &types),
            sql_on(&native, &types),
            "{table} types"
        );
    }
    let state = "SELECT stream, state FROM conveyor.stream_state ORDER BY ALL";
    assert_eq!(sql_on(&plugin, state), sql_on(&native, state));

    // Typed columns, and the rewritten row (E-002 in the later file) merged by key.
    let hours = sql_on(&plugin, "SELECT entry_id, work_date, hours, overtime, approved, badge FROM timekeeping.hours ORDER BY entry_id");
    assert_eq!(hours.len(), 3);
    assert_eq!(
        hours[1],
        ["E-002", "2026-01-05", "8.0", "NULL", "true", "012"]
    );
    let types = sql_on(&plugin, "SELECT typeof(work_date), typeof(hours), typeof(approved), typeof(badge) FROM timekeeping.hours LIMIT 1");
    assert_eq!(types[0], ["DATE", "DOUBLE", "BOOLEAN", "VARCHAR"]);
    assert_eq!(
        sql_on(
            &plugin,
            "SELECT \"at\"::VARCHAR FROM timekeeping.punches WHERE punch_id = 'P-1'"
        )[0][0],
        "2026-01-05 08:00:00"
    );

    // Incremental: only a newly dropped file is read on the next sync.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(drops.join("hours_2026-01-07.csv"), "entry_id,employee_email,work_date,hours,overtime,approved,badge\nE-004,cy@example.com,2026-01-07,6,,true,044\n").unwrap();
    let out = conveyor(&config, &["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let runs = sql_on(
        &plugin,
        "SELECT stream, rows FROM conveyor.runs WHERE run_id > 2 ORDER BY stream",
    );
    assert_eq!(runs, [["hours", "1"], ["punches", "0"]]);
    assert_eq!(
        sql_on(&plugin, "SELECT count(*) FROM timekeeping.hours")[0][0],
        "4"
    );

    // `plugins list` shows it with its version, ABI and the source's streams.
    let out = conveyor(&config, &["plugins", "list"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "file_drop",
        env!("CARGO_PKG_VERSION"),
        "1.0",
        "timekeeping: hours, punches",
        &library_file_name("file_drop"),
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected} in:\n{stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_plugins_are_refused_clearly_and_the_other_sources_still_sync() {
    let f = Fixture::new(RestMockConfig {
        records: dataset(30),
        ..Default::default()
    })
    .await;
    let drops = f.path("drops");
    write_timekeeping(&drops);
    let plugins = plugin_folder(
        f.dir.path(),
        &["file_drop", "future_abi", "no_init", "not_a_plugin"],
    );
    // A `.so` that is not even a shared library.
    std::fs::write(plugins.join(library_file_name("text_file")), "hello").unwrap();
    f.write_config("", "");
    let mut config = std::fs::read_to_string(f.config()).unwrap();
    config.push_str(&format!(
        r#"
[plugins]
dirs = ["plugins"]
sha256 = {{ file_drop = "{}" }}

[sources.future]
type = "future_abi"

[sources.noinit]
type = "no_init"

[sources.stray]
type = "not_a_plugin"

[sources.text]
type = "text_file"

[sources.ghost]
type = "ghost"

[sources.pinned]
type = "file_drop"
{}
"#,
        "0".repeat(64),
        timekeeping_toml(&drops)
    ));
    std::fs::write(f.config(), &config).unwrap();

    let out = f.conveyor(&["sync"]).await;
    let (stdout, stderr) = text(&out);
    let all = format!("{stdout}\n{stderr}");
    assert_eq!(out.status.code(), Some(1), "{all}");
    // The REST source synced regardless.
    assert_eq!(f.scalar("SELECT count(*) FROM src.items"), "30");
    for expected in [
        "plugin ABI 99.3 is not supported: this conveyor speaks plugin ABI 1.0 (rebuild the plugin",
        "not a Conveyor plugin: it does not export `conveyor_plugin_init`",
        "not a Conveyor plugin: it does not export `conveyor_plugin_abi_version`",
        "not a loadable shared library",
        "plugin `ghost` not found: no libghost.so in",
        "refused: its SHA-256 is",
        "but [plugins.sha256] pins file_drop = \"0000",
    ] {
        assert!(all.contains(expected), "missing `{expected}` in:\n{all}");
    }
    assert_eq!(
        f.scalar("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'pinned'"),
        "0"
    );

    // `plugins check` on each: exit 2 and the same clear message.
    for (name, expected) in [
        ("future_abi", "plugin ABI 99.3 is not supported"),
        ("no_init", "does not export `conveyor_plugin_init`"),
        (
            "not_a_plugin",
            "does not export `conveyor_plugin_abi_version`",
        ),
        ("text_file", "not a loadable shared library"),
    ] {
        let path = plugins.join(library_file_name(name));
        let out = f
            .conveyor(&["plugins", "check", path.to_str().unwrap()])
            .await;
        assert_eq!(out.status.code(), Some(2), "{name}: {:?}", text(&out));
        assert!(text(&out).1.contains(expected), "{name}: {:?}", text(&out));
    }
    let good = plugins.join(library_file_name("file_drop"));
    let out = f
        .conveyor(&["plugins", "check", good.to_str().unwrap()])
        .await;
    let (stdout, _) = text(&out);
    assert!(out.status.success(), "{:?}", text(&out));
    let sha = conveyor::plugins::sha256_file(&good).unwrap();
    assert!(
        stdout.contains(&format!("sha256   {sha}")) && stdout.contains("depend on options"),
        "{stdout}"
    );
    let options = timekeeping_options(&drops).to_string();
    let out = f
        .conveyor(&[
            "plugins",
            "check",
            good.to_str().unwrap(),
            "--options",
            &options,
        ])
        .await;
    assert!(
        text(&out)
            .0
            .contains("stream   hours (primary key entry_id)"),
        "{:?}",
        text(&out)
    );
    let out = f
        .conveyor(&[
            "plugins",
            "check",
            good.to_str().unwrap(),
            "--options",
            "{\"dir\": 1}",
        ])
        .await;
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    // `plugins list` reports the broken libraries and exits 2.
    let out = f.conveyor(&["plugins", "list"]).await;
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert!(text(&out).1.contains("plugin ABI 99.3"), "{:?}", text(&out));
    assert!(
        text(&out)
            .1
            .contains("source `ghost`: plugin `ghost` not found"),
        "{:?}",
        text(&out)
    );

    // With the right pin the pinned source loads.
    std::fs::write(f.config(), config.replace(&"0".repeat(64), &sha)).unwrap();
    let out = f.conveyor(&["sync", "pinned"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(f.scalar("SELECT count(*) FROM pinned.hours"), "3");
    // Once the library stops matching its pin, the streams it read show why in `status`.
    std::fs::write(f.config(), &config).unwrap();
    let out = f.conveyor(&["sync", "pinned"]).await;
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    let out = f.conveyor(&["status", "--format", "csv"]).await;
    let status = text(&out).0;
    for stream in ["hours", "punches"] {
        let line = status
            .lines()
            .find(|l| l.starts_with(&format!("pinned,{stream},")))
            .unwrap_or_default();
        assert!(
            line.contains(",failed,") && line.contains("refused: its SHA-256 is"),
            "{status}"
        );
    }
}

/// The secret the `leaky` source hands its plugin.
const LEAKY_TOKEN: &str = "tok_live_7QxZ93kLm";

#[tokio::test(flavor = "multi_thread")]
async fn plugin_panics_and_errors_fail_their_runs_and_the_daemon_lives_on() {
    let f = Fixture::new(RestMockConfig {
        records: dataset(10),
        ..Default::default()
    })
    .await;
    plugin_folder(f.dir.path(), &["misbehaving"]);
    f.write_config("schedule = \"*/2 * * * * *\"", "");
    let mut config = std::fs::read_to_string(f.config()).unwrap();
    config.push_str(
        r#"
[plugins]
dirs = ["plugins"]

[sources.opens]
type = "misbehaving"
schedule = "*/2 * * * * *"
options = { mode = "panic_open" }

[sources.midway]
type = "misbehaving"
schedule = "*/2 * * * * *"
options = { mode = "panic_mid_stream" }

[sources.fails]
type = "misbehaving"
schedule = "*/2 * * * * *"
options = { mode = "error_read", message = "vendor answered 503: maintenance until 02:00" }

[sources.leaky]
type = "misbehaving"
schedule = "*/2 * * * * *"
secrets = { token = "file:leaky_token" }
options = { mode = "echo_token" }
"#,
    );
    std::fs::write(f.path("leaky_token"), LEAKY_TOKEN).unwrap();
    std::fs::write(f.config(), config).unwrap();
    let mut daemon = Daemon::spawn_logged(
        Command::new(BIN)
            .arg("--config")
            .arg(f.config())
            .args(["--log-format", "json", "run"])
            .current_dir(f.dir.path()),
        &f.path("daemon.log"),
    );

    // Wait until each plugin source has failed at least twice while the REST
    // source synced, as `conveyor status` (asked through the daemon) shows.
    let mut status = String::new();
    let (mut read_error, mut panic_error, mut rest_ok, mut failures) = (false, false, false, 0);
    let mut leak_scrubbed = false;
    let _ = holds_within(Duration::from_secs(60), async || {
        let out = f.conveyor(&["status", "--format", "csv"]).await;
        status = text(&out).0;
        let line = |prefix: &str| {
            status
                .lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_default()
                .to_string()
        };
        read_error = line("fails,items,").contains(",failed,0,0,")
            && status
                .contains("plugin `misbehaving`: vendor answered 503: maintenance until 02:00");
        panic_error = line("midway,items,").contains(
            "plugin `misbehaving`: panicked in read: boom in the middle of the stream (at ",
        );
        rest_ok |= line("src,items,").contains(",succeeded,");
        leak_scrubbed =
            line("leaky,items,").contains("plugin `misbehaving`: token *** was refused");
        let done = f
            .conveyor(&["query", "SELECT count(*) FROM conveyor.runs WHERE source IN ('midway', 'fails') AND status = 'failed'", "--format", "csv"])
            .await;
        failures = text(&done)
            .0
            .lines()
            .nth(1)
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        read_error && panic_error && rest_ok && leak_scrubbed && failures >= 4
    })
    .await;
    assert!(daemon.alive(), "the daemon exited:\n{}", daemon.log());
    assert!(
        read_error,
        "the read error text is not in `conveyor status`:\n{status}"
    );
    assert!(
        panic_error,
        "the mid-stream panic is not in `conveyor status`:\n{status}"
    );
    assert!(
        rest_ok && failures >= 4,
        "REST synced: {rest_ok}, plugin failures: {failures}\n{status}"
    );
    // A secret the plugin was given, echoed in its error, is scrubbed.
    assert!(leak_scrubbed && !status.contains(LEAKY_TOKEN), "{status}");

    let exit = daemon.terminate().await;
    assert!(exit.success(), "exit status {exit:?}");

    // Mid-stream: the checkpointed batch (ids 1-3) committed, the batch after
    // it (ids 4-5) did not, on every run.
    assert_eq!(
        f.scalar("SELECT string_agg(id::VARCHAR, ',' ORDER BY id) FROM midway.items"),
        "1,2,3"
    );
    assert_eq!(
        f.scalar("SELECT count(*) FROM conveyor.runs WHERE source = 'midway' AND rows <> 3"),
        "0"
    );
    assert_eq!(
        f.scalar(
            "SELECT count(*) FROM conveyor.runs WHERE source = 'midway' AND status <> 'failed'"
        ),
        "0"
    );
    let log = std::fs::read_to_string(f.path("daemon.log")).unwrap();
    assert!(
        log.contains("plugin `misbehaving`: panicked in open: boom in open"),
        "{log}"
    );
    // The plugin's own log lines arrive through the host callback, tagged with its name.
    assert!(
        log.lines()
            .any(|l| l.contains("misbehaving read starts")
                && l.contains("\"plugin\":\"misbehaving\"")),
        "{log}"
    );
    // Its panics are reported as errors, not printed past the log by its panic hook.
    assert!(!log.contains("panicked at"), "{log}");
    // …and from its log lines.
    assert!(
        log.contains("calling the vendor with token ***") && !log.contains(LEAKY_TOKEN),
        "{log}"
    );
    assert!(log.contains("stopped cleanly"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn open_read_close_a_thousand_times_keeps_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let drops = dir.path().join("drops");
    write_timekeeping(&drops);
    // A file big enough (~27 KB, 500 rows) that leaking its batch or its
    // text on every cycle would show as over 25 MiB across the loop.
    let mut big = String::from("entry_id,employee_email,work_date,hours,overtime,approved,badge\n");
    for i in 0..500 {
        big.push_str(&format!(
            "B-{i:05},worker{}@example.com,2026-02-{:02},{}.5,,true,{i:04}\n",
            i % 50,
            1 + i % 28,
            i % 9
        ));
    }
    std::fs::write(drops.join("hours_2026-02.csv"), big).unwrap();
    let plugins = plugin_folder(dir.path(), &["file_drop"]);
    // The loop runs in its own small process (`plugin_loop`, the host SDK
    // and nothing else), so the figure is not blurred by this test binary's
    // other threads and allocations.
    let looper = built_plugins().join("examples/plugin_loop");
    let out = std::process::Command::new(&looper)
        .arg(plugins.join(library_file_name("file_drop")))
        .arg(timekeeping_options(&drops).to_string())
        .arg("1000")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", looper.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = stdout.lines().last().unwrap();
    eprintln!("{summary}");
    assert!(
        summary.contains("1000 open/read/close cycles") && summary.contains("506000 rows"),
        "{summary}"
    );
    let growth: i64 = summary
        .split_once("KiB (")
        .unwrap()
        .1
        .split_once(" KiB)")
        .unwrap()
        .0
        .parse()
        .unwrap();
    // Measured: +16 to +88 KiB; a leaked batch per cycle would be ~25 MiB.
    assert!(
        growth < 1_024,
        "RSS grew by {growth} KiB over 1000 cycles: {summary}"
    );
}
