//! Plugins that cannot take the daemon down: broken library files (cut
//! short, empty, text, another machine's) refused with a clear message
//! before they are mapped, and plugins that segfault, abort, exit or
//! allocate without bound contained in their own process under
//! `isolation = "process"` — each failing its own source's run while every
//! other source syncs, the daemon lives, and the next run works.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use conveyor::plugins::library_file_name;
use conveyor_mocks::rest::{dataset, RestMockConfig};

use crate::plugins::{built_plugins, plugin_folder};
use crate::support::{holds_within, text, Daemon, Fixture, BIN};

/// The broken copies of the file-drop plugin the tests put in a plugin
/// folder, by plugin name, with what the error must say: the file, then
/// what is wrong with it.
fn broken_libraries(plugins: &Path) -> Vec<(&'static str, Refusal)> {
    let good = std::fs::read(built_plugins().join(library_file_name("file_drop"))).unwrap();
    let mut foreign = good.clone();
    // e_machine: another architecture than this one.
    let other: u16 = if std::env::consts::ARCH == "aarch64" {
        62
    } else {
        183
    };
    foreign[18..20].copy_from_slice(&other.to_le_bytes());
    let files: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "cut_4k",
            good[..4_096].to_vec(),
            "but the file has 4,096 bytes — the file is truncated; rebuild or re-copy it".into(),
        ),
        (
            "cut_100k",
            good[..100_000].to_vec(),
            "but the file has 100,000 bytes — the file is truncated; rebuild or re-copy it".into(),
        ),
        (
            "cut_1m",
            good[..1_000_000].to_vec(),
            "but the file has 1,000,000 bytes — the file is truncated; rebuild or re-copy it"
                .into(),
        ),
        (
            "cut_end",
            good[..good.len() - 10].to_vec(),
            "the file is truncated; rebuild or re-copy it".into(),
        ),
        ("empty", Vec::new(), "the file is empty (0 bytes)".into()),
        (
            "readme",
            b"# My plugin\nCopy it to the plugins folder.\n".to_vec(),
            "it is a text file (it starts with \"# My plugin".into(),
        ),
        (
            "foreign",
            foreign,
            "rebuild the plugin for this platform".into(),
        ),
    ];
    files
        .into_iter()
        .map(|(name, bytes, why)| {
            let path = plugins.join(library_file_name(name));
            std::fs::write(&path, bytes).unwrap();
            let file = format!("{}: not a loadable shared library: ", path.display());
            (name, Refusal { file, why })
        })
        .collect()
}

/// What a refusal of one library must say.
#[derive(Debug)]
struct Refusal {
    file: String,
    why: String,
}

impl Refusal {
    /// `text` names the file and says what is wrong, on one line.
    fn in_text(&self, text: &str) -> bool {
        text.lines()
            .any(|l| l.contains(&self.file) && l.contains(&self.why))
    }
}

fn timekeeping(drops: &Path) -> String {
    std::fs::create_dir_all(drops).unwrap();
    std::fs::write(
        drops.join("hours_1.csv"),
        "entry_id,hours\nE-1,8\nE-2,7.5\nE-3,6\n",
    )
    .unwrap();
    format!(
        "options = {{ dir = \"{}\", streams = [{{ name = \"hours\", pattern = \"hours_*.csv\", primary_key = [\"entry_id\"] }}] }}",
        drops.display()
    )
}

fn line_of(status: &str, prefix: &str) -> String {
    status
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_empty_text_and_foreign_libraries_are_refused_and_everything_else_runs() {
    let f = Fixture::new(RestMockConfig {
        records: dataset(30),
        ..Default::default()
    })
    .await;
    let plugins = plugin_folder(f.dir.path(), &["file_drop"]);
    let broken = broken_libraries(&plugins);
    f.write_config("schedule = \"*/2 * * * * *\"", "");
    let mut config = std::fs::read_to_string(f.config()).unwrap();
    config.push_str(&format!(
        "\n[plugins]\ndirs = [\"plugins\"]\n\n[sources.timekeeping]\ntype = \"file_drop\"\nschedule = \"*/2 * * * * *\"\n{}\n",
        timekeeping(&f.path("drops"))
    ));
    for (name, _) in &broken {
        config.push_str(&format!(
            "\n[sources.{name}]\ntype = \"{name}\"\nschedule = \"*/2 * * * * *\"\n"
        ));
    }
    // Not installed yet: a note from `check`, a failed run from `sync`.
    config.push_str("\n[sources.ghost]\ntype = \"ghost\"\n");
    std::fs::write(f.config(), &config).unwrap();

    // `check` finds every bad library, with the same words the loader uses.
    let out = f.conveyor(&["check"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    for (name, expected) in &broken {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(&format!("sources.{name}.type: ")) && expected.in_text(l)),
            "`check` misses {name} ({expected:?}):\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("sources.timekeeping") && !stdout.contains("ghost"),
        "{stdout}"
    );
    assert!(
        stderr.contains("sources.ghost.type: not checked: plugin `ghost` not found"),
        "{stderr}"
    );

    // `sync`: exit 1, each refusal named, the healthy sources loaded, and
    // no run left `running`.
    let out = f.conveyor(&["sync"]).await;
    let (stdout, stderr) = text(&out);
    let all = format!("{stdout}\n{stderr}");
    assert_eq!(out.status.code(), Some(1), "{all}");
    for (name, expected) in &broken {
        assert!(
            expected.in_text(&all),
            "`sync` misses {name} ({expected:?}):\n{all}"
        );
    }
    assert_eq!(f.scalar("SELECT count(*) FROM src.items"), "30");
    assert_eq!(f.scalar("SELECT count(*) FROM timekeeping.hours"), "3");
    assert_eq!(
        f.scalar("SELECT count(*) FROM conveyor.runs WHERE status NOT IN ('succeeded', 'failed')"),
        "0"
    );

    // `plugins check` and `plugins list`: exit 2 with the message, no signal.
    for (name, expected) in &broken {
        let path = plugins.join(library_file_name(name));
        let out = f
            .conveyor(&["plugins", "check", path.to_str().unwrap()])
            .await;
        assert_eq!(out.status.code(), Some(2), "{name}: {:?}", text(&out));
        assert!(expected.in_text(&text(&out).1), "{name}: {:?}", text(&out));
    }
    let out = f.conveyor(&["plugins", "list"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stdout.contains("timekeeping: hours"), "{stdout}");
    for (name, expected) in &broken {
        assert!(
            expected.in_text(&stderr),
            "`plugins list` misses {name}:\n{stderr}"
        );
    }

    // The daemon runs every schedule: the healthy sources succeed again and
    // again while the broken ones fail, and it stops cleanly.
    std::fs::remove_file(f.warehouse()).unwrap();
    let mut daemon = Daemon::spawn_logged(
        Command::new(BIN)
            .arg("--config")
            .arg(f.config())
            .arg("run")
            .current_dir(f.dir.path()),
        &f.path("daemon.log"),
    );
    let (mut ok_runs, mut status) = (0, String::new());
    let _ = holds_within(Duration::from_secs(60), async || {
        let out = f
            .conveyor(&["query", "SELECT count(*) FROM conveyor.runs WHERE source IN ('src', 'timekeeping') AND status = 'succeeded'", "--format", "csv"])
            .await;
        status = text(&out).0;
        ok_runs = status
            .lines()
            .nth(1)
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        ok_runs >= 4
    })
    .await;
    assert!(daemon.alive(), "the daemon exited");
    assert!(ok_runs >= 4, "healthy runs: {status}");
    let log_text = std::fs::read_to_string(f.path("daemon.log")).unwrap();
    for (name, expected) in &broken {
        assert!(
            expected.in_text(&log_text),
            "the log misses {name}:\n{log_text}"
        );
    }
    let exit = daemon.terminate().await;
    assert!(exit.success(), "exit status {exit:?}");
}

/// The pids of `parent`'s child processes (Linux `/proc`).
fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

/// The secret the isolated `leaky` source hands its plugin across the pipe.
const LEAKY_TOKEN: &str = "tok_iso_Zq81vNw40x";

#[tokio::test(flavor = "multi_thread")]
async fn segfaults_aborts_exits_and_runaway_memory_fail_only_their_own_isolated_runs() {
    let f = Fixture::new(RestMockConfig {
        records: dataset(10),
        ..Default::default()
    })
    .await;
    plugin_folder(f.dir.path(), &["crashing", "misbehaving"]);
    std::fs::write(f.path("segv_mode"), "segfault").unwrap();
    f.write_config("schedule = \"*/2 * * * * *\"", "");
    let mut config = std::fs::read_to_string(f.config()).unwrap();
    let mode_file = f.path("segv_mode");
    config.push_str(&format!(
        r#"
[plugins]
dirs = ["plugins"]

[sources.segv]
type = "crashing"
schedule = "*/2 * * * * *"
isolation = "process"
options = {{ mode_file = "{}" }}

[sources.aborts]
type = "crashing"
schedule = "*/2 * * * * *"
isolation = "process"
options = {{ mode = "abort" }}

[sources.exits]
type = "crashing"
schedule = "*/2 * * * * *"
isolation = "process"
options = {{ mode = "exit" }}

[sources.greedy]
type = "crashing"
schedule = "*/2 * * * * *"
isolation = "process"
memory_limit = "1GiB"
options = {{ mode = "exhaust_memory" }}

[sources.chatty]
type = "crashing"
schedule = "*/2 * * * * *"
isolation = "process"
options = {{ mode = "chatty" }}

[sources.leaky]
type = "misbehaving"
schedule = "*/2 * * * * *"
isolation = "process"
secrets = {{ token = "file:leaky_token" }}
options = {{ mode = "echo_token" }}
"#,
        mode_file.display()
    ));
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

    let expectations = [
        (
            "segv,items,",
            "plugin `crashing` crashed: killed by signal 11 (SIGSEGV)",
        ),
        (
            "aborts,items,",
            "plugin `crashing` crashed: killed by signal 6 (SIGABRT)",
        ),
        (
            "exits,items,",
            "plugin `crashing` exited with status 3 in the middle of its work",
        ),
        (
            "greedy,items,",
            "plugin `crashing` ran out of memory: it hit its memory_limit of 1 GiB",
        ),
        (
            "leaky,items,",
            "plugin `misbehaving`: token *** was refused",
        ),
    ];
    let status_now = || async {
        let out = f.conveyor(&["status", "--format", "csv"]).await;
        text(&out).0
    };
    let mut status = String::new();
    let all_seen = |status: &str| {
        expectations.iter().all(|(prefix, msg)| {
            line_of(status, prefix).contains(",failed,") && line_of(status, prefix).contains(msg)
        }) && line_of(status, "chatty,items,").contains(",succeeded,")
            && line_of(status, "src,items,").contains(",succeeded,")
    };
    let _ = holds_within(Duration::from_secs(90), async || {
        status = status_now().await;
        all_seen(&status)
    })
    .await;
    assert!(daemon.alive(), "the daemon exited:\n{status}");
    for (prefix, msg) in expectations {
        let line = line_of(&status, prefix);
        assert!(
            line.contains(",failed,") && line.contains(msg),
            "{prefix} wants `{msg}`:\n{status}"
        );
    }
    assert!(
        line_of(&status, "chatty,items,").contains(",succeeded,"),
        "a plugin printing to stdout broke the pipe:\n{status}"
    );
    assert!(!status.contains(LEAKY_TOKEN), "{status}");

    // What the crashing plugin checkpointed before it died is kept (ids
    // 1-3); nothing after.
    let committed = |source: &str| {
        let out = std::process::Command::new(BIN)
            .arg("--config")
            .arg(f.config())
            .args([
                "query",
                &format!("SELECT string_agg(id::VARCHAR, ',' ORDER BY id) FROM {source}.items"),
                "--format",
                "csv",
            ])
            .current_dir(f.dir.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap_or_default()
            .trim_matches('"')
            .to_string()
    };
    assert_eq!(committed("segv"), "1,2,3");
    assert_eq!(committed("chatty"), "1,2,3,4,5");

    // The plugin is fixed: the next run of the same source works, in the
    // same daemon.
    std::fs::write(&mode_file, "ok").unwrap();
    let _ = holds_within(Duration::from_secs(30), async || {
        status = status_now().await;
        line_of(&status, "segv,items,").contains(",succeeded,")
    })
    .await;
    assert!(
        line_of(&status, "segv,items,").contains(",succeeded,"),
        "{status}"
    );
    assert_eq!(committed("segv"), "1,2,3,4,5");

    let exit = daemon.terminate().await;
    assert!(exit.success(), "exit status {exit:?}");
    let log = std::fs::read_to_string(f.path("daemon.log")).unwrap();
    // The plugin's log lines cross the pipe, tagged with its name, scrubbed.
    assert!(
        log.lines()
            .any(|l| l.contains("crashing read starts in mode")
                && l.contains("\"plugin\":\"crashing\"")),
        "{log}"
    );
    assert!(
        log.contains("calling the vendor with token ***") && !log.contains(LEAKY_TOKEN),
        "{log}"
    );
    // The allocator's last words reach the log.
    assert!(log.contains("memory allocation of"), "{log}");
    assert!(log.contains("stopped cleanly"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shutdown_stops_an_isolated_plugin_that_ignores_it_and_in_process_a_segfault_is_fatal() {
    let dir = tempfile::tempdir().unwrap();
    plugin_folder(dir.path(), &["crashing"]);
    let config = dir.path().join("conveyor.toml");
    let write = |mode: &str, isolation: &str, schedule: &str| {
        std::fs::write(
            &config,
            format!(
                "[warehouse]\npath = \"wh.duckdb\"\n\n[server]\nlisten = \"127.0.0.1:{}\"\n\n[plugins]\ndirs = [\"plugins\"]\n\n\
                 [sources.stuck]\ntype = \"crashing\"\n{schedule}{isolation}options = {{ mode = \"{mode}\" }}\n",
                crate::support::free_port()
            ),
        )
        .unwrap();
    };

    // In-process (the default) a segfault takes the whole process down:
    // PLUGINS.md says so, and this is why `isolation = "process"` exists.
    write("segfault", "", "");
    let out = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("sync")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(11), "{:?}", text(&out));

    // Isolated, a plugin stuck in a read that ignores the cancel flag is
    // killed after the grace period, and the daemon stops.
    write(
        "hang",
        "isolation = \"process\"\n",
        "schedule = \"*/1 * * * * *\"\n",
    );
    let mut daemon = Daemon::spawn_logged(
        Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg("run")
            .current_dir(dir.path()),
        &dir.path().join("daemon.log"),
    );
    let pid = daemon.id();
    let mut hosts = Vec::new();
    daemon
        .ready(Duration::from_secs(30), "a plugin host", async || {
            hosts = children_of(pid);
            !hosts.is_empty()
        })
        .await;
    // Let the read reach its endless sleep.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    let exit = daemon.terminate().await;
    let took = asked.elapsed();
    assert!(exit.success(), "exit status {exit:?}");
    assert!(
        took >= Duration::from_secs(9),
        "stopped after {took:?}: the grace period was not given"
    );
    for host in hosts {
        assert!(
            !Path::new(&format!("/proc/{host}")).exists()
                || std::fs::read_to_string(format!("/proc/{host}/stat"))
                    .unwrap_or_default()
                    .contains(") Z"),
            "plugin host {host} outlived the daemon"
        );
    }
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap();
    assert!(
        log.contains("did not stop within 10 s of the shutdown; it was killed"),
        "{log}"
    );
}

/// An isolated plugin starts with an empty environment but for a few
/// harmless variables: the daemon's other secrets (another source's `env:`
/// reference, the SMTP password) are not there for it to read.
#[tokio::test(flavor = "multi_thread")]
async fn an_isolated_plugin_cannot_read_the_daemons_environment() {
    const OTHER_SECRET: &str = "s3cr3t-of-another-source";
    let f = Fixture::new(RestMockConfig {
        records: dataset(5),
        ..Default::default()
    })
    .await;
    plugin_folder(f.dir.path(), &["crashing"]);
    f.write_config("", "");
    let mut config = std::fs::read_to_string(f.config()).unwrap();
    config.push_str(
        "\n[plugins]\ndirs = [\"plugins\"]\n\n[sources.snoop]\ntype = \"crashing\"\nisolation = \"process\"\noptions = { mode = \"snoop\" }\n",
    );
    std::fs::write(f.config(), config).unwrap();
    let out = f
        .conveyor_env(&["sync", "snoop"], &[("OTHER_SOURCE_TOKEN", OTHER_SECRET)])
        .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let out = f
        .conveyor(&[
            "query",
            "-o",
            "csv",
            "SELECT name FROM snoop.items WHERE id >= 100 ORDER BY name",
        ])
        .await;
    let (seen, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    // The snoop ran and read an environment (PATH is passed on)…
    assert!(seen.lines().any(|l| l.starts_with("PATH=")), "{seen}");
    // …without the daemon's secrets in it, or anything but the passed names.
    assert!(
        !seen.contains(OTHER_SECRET) && !seen.contains("OTHER_SOURCE_TOKEN"),
        "{seen}"
    );
    for line in seen.lines().skip(1) {
        let name = line.split('=').next().unwrap_or_default();
        assert!(
            [
                "PATH",
                "HOME",
                "TMPDIR",
                "LANG",
                "LC_ALL",
                "LC_CTYPE",
                "TZ",
                "RUST_BACKTRACE"
            ]
            .contains(&name),
            "a variable the host should not pass on: {line}"
        );
    }
}
