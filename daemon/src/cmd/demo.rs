//! `conveyor demo`: sandbox vendor APIs for the four domains, synced end to
//! end through the real config, the vendor connectors and the warehouse.
//! With `--serve` the sandbox stays up afterwards and the daemon runs on the
//! demo's config and warehouse — the console and the Postgres endpoint —
//! until Ctrl-C, so the demo's data can be looked at (and synced again).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use conveyor_mocks::sandbox::{self, Sandbox, SandboxSize};
use conveyor_plugin_api::CancelFlag;

use crate::cmd::demo_alerts;
use crate::cmd::sync::{print_summary, sync_sources};
use crate::progress::Progress;
use crate::warehouse::Warehouse;
use crate::EXIT_FAILED;

pub async fn demo_command(dir: &Path, serve: bool) -> Result<ExitCode> {
    std::fs::create_dir_all(dir.join("secrets"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = std::fs::canonicalize(dir)?;
    println!(
        "Starting sandbox vendor APIs (Greenhouse, QuickBooks Online, Gusto, Genesys Cloud) on 127.0.0.1 …"
    );
    let sb = sandbox::start_sandbox(SandboxSize::Default).await;
    let receivers = demo_alerts::start_receivers(&dir).await?;
    let config_path = write_demo_config(&dir, &sb, &receivers, serve)?;
    // A fresh warehouse each time, so the numbers below are the demo's own.
    let warehouse = dir.join("warehouse.duckdb");
    for p in [warehouse.clone(), dir.join("warehouse.duckdb.wal")] {
        let _ = std::fs::remove_file(p);
    }
    let config = match conveyor_config::load(&config_path) {
        Ok(c) => c,
        Err(e) => anyhow::bail!("the demo config is invalid (a bug): {e}"),
    };
    println!("Config: {}\n", config_path.display());

    let wh = Arc::new(Warehouse::open_config(&config.warehouse)?);
    let sources: Vec<_> = config.sources.iter().collect();
    let started = Instant::now();
    let reports = sync_sources(
        wh.clone(),
        &sources,
        &CancelFlag::default(),
        &Progress::for_terminal(),
    )
    .await;
    print_summary(&reports, started.elapsed().as_secs_f64());
    // The sandbox's data is dated before its own "today": rules look back from it.
    let today = sb
        .facts
        .anchor_date
        .and_hms_opt(6, 0, 0)
        .expect("a valid time");
    reconcile(&wh, &config, today)?;
    {
        // Delivery blocks on SMTP and HTTP: off the async workers, which
        // serve the demo's receivers meanwhile.
        let (wh, config) = (wh.clone(), config.clone());
        let (mail, hooks) = (receivers.mail.dir.clone(), receivers.hooks_dir.clone());
        tokio::task::spawn_blocking(move || {
            demo_alerts::evaluate_and_notify(&wh, &config, &mail, &hooks, today)
        })
        .await??;
    }
    let failed = reports.iter().any(|r| r.failed());
    // Spell the commands with this binary's path so they can be pasted.
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "conveyor".into());
    let run = format!("{exe} --config {}", config_path.display());
    println!(
        "\nThe warehouse is {}. Ask it questions, for example:\n",
        warehouse.display()
    );
    for example in [
        "status".to_string(),
        r#"query "SELECT status, count(*) AS applications FROM ats.applications GROUP BY ALL""#.to_string(),
        r#"query "SELECT doc_number, customer_name, total_amt, balance, due_date FROM accounting.invoices ORDER BY due_date LIMIT 5""#.to_string(),
        r#"query "SELECT p.name, date_trunc('week', d.day) AS week, round(avg(d.csat), 2) AS csat, round(avg(d.quality_score), 1) AS qa, sum(d.logged_hours) AS logged_hours FROM model.agent_daily d JOIN model.people p USING (agent_id) GROUP BY ALL ORDER BY csat LIMIT 5""#.to_string(),
        r#"query "SELECT name, ats_id, payroll_id, agent_id, team FROM model.people ORDER BY name LIMIT 5""#.to_string(),
        "recon --show roster_vs_hires".to_string(),
        "alerts".to_string(),
        // As of the sandbox's today, the clock its rules were evaluated at.
        format!(
            "alerts preview csat_below_target --at {}",
            today.format("%Y-%m-%dT%H:%M:%S")
        ),
    ]
    .into_iter()
    .chain(config.source("timekeeping").map(|_| {
        r#"query "SELECT employee_email, sum(hours) AS hours FROM timekeeping.hours GROUP BY ALL ORDER BY hours LIMIT 5""#.to_string()
    })) {
        println!("  {run} {example}");
    }
    if serve {
        // The sandbox and the receivers stay up while the daemon runs.
        serve_demo(wh, config, &run).await?;
    }
    drop((sb, receivers));
    Ok(if failed {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Builds the unified model over what was synced and runs the built-in
/// recipes, printing what each found.
fn reconcile(
    wh: &Warehouse,
    config: &conveyor_config::Config,
    today: chrono::NaiveDateTime,
) -> Result<()> {
    println!("\nReconciling the systems against each other (built-in recipes over the model.* views) …\n");
    let recons: Vec<_> = config.reconciles.iter().collect();
    let outcomes = crate::pipeline::refresh_and_run_at(wh, config, &recons, "demo", Some(today))?;
    let ids: Vec<i64> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok().map(|s| s.run_id))
        .collect();
    // A failed run was logged with its error and is on record in conveyor.recon_runs.
    crate::cmd::recon::print_runs(&wh.connection()?, &crate::recon::report::Runs::Ids(&ids))
}

/// Writes secrets as files and a config that references them, the way a
/// real deployment should. The config is a concatenation of sections, so
/// more can be appended.
fn write_demo_config(
    dir: &Path,
    sb: &Sandbox,
    receivers: &demo_alerts::Receivers,
    serve: bool,
) -> Result<PathBuf> {
    let secrets = [
        ("ats_client_secret", sandbox::ATS_CLIENT_SECRET),
        ("qbo_client_secret", sandbox::QBO_CLIENT_SECRET),
        ("qbo_refresh_token", sandbox::QBO_REFRESH_TOKEN),
        ("gusto_client_secret", sandbox::GUSTO_CLIENT_SECRET),
        ("gusto_refresh_token", sandbox::GUSTO_REFRESH_TOKEN),
        ("genesys_client_secret", sandbox::GENESYS_CLIENT_SECRET),
    ];
    for (name, value) in secrets {
        let p = dir.join("secrets").join(name);
        std::fs::write(&p, value)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    let mut header = DEMO_HEADER.replace("{listen}", &format!("127.0.0.1:{}", free_port()?));
    if serve {
        header.push_str(&postgres_section(dir)?);
    }
    let sources = DEMO_SOURCES
        .replace("{ats}", &sb.ats_base_url())
        .replace("{ats_token}", &sb.ats_token_url())
        .replace("{ats_client_id}", sandbox::ATS_CLIENT_ID)
        .replace("{ats_user_id}", sandbox::ATS_USER_ID)
        .replace("{qbo}", &sb.accounting_base_url())
        .replace("{qbo_token}", &sb.accounting_token_url())
        .replace("{qbo_client_id}", sandbox::QBO_CLIENT_ID)
        .replace("{realm}", sandbox::QBO_REALM_ID)
        .replace("{gusto}", &sb.payroll_base_url())
        .replace("{gusto_token}", &sb.payroll_token_url())
        .replace("{gusto_client_id}", sandbox::GUSTO_CLIENT_ID)
        .replace("{company}", sandbox::GUSTO_COMPANY_ID)
        .replace("{genesys}", &sb.contact_center_base_url())
        .replace("{genesys_token}", &sb.contact_center_token_url())
        .replace("{genesys_client_id}", sandbox::GENESYS_CLIENT_ID);
    let recipes = crate::recon::recipes::toml("ats", "accounting", "payroll", "contact_center");
    let sections = [
        header,
        sources,
        DEMO_MODEL.to_string(),
        recipes,
        timekeeping_source(dir, sb)?,
        demo_alerts::config_toml(dir, receivers)?,
    ];
    let path = dir.join("conveyor.toml");
    std::fs::write(&path, sections.concat())?;
    Ok(path)
}

/// The file-drop plugin as `cargo build -p conveyor-plugin-file-drop` leaves
/// it: next to this binary (`scripts/demo` and the tests build both).
fn file_drop_plugin() -> Option<PathBuf> {
    let dir = std::env::current_exe().ok()?.parent()?.to_path_buf();
    crate::plugins::find_library(&[dir], "file_drop").ok()
}

/// Writes a timekeeping export folder (daily hours as CSV, absences as
/// NDJSON, as such systems drop them) and returns a source reading it with
/// the file-drop connector plugin, loaded through the plugin ABI and pinned
/// by its SHA-256. Without the plugin the source is left out, with a note.
fn timekeeping_source(dir: &Path, sb: &Sandbox) -> Result<String> {
    let Some(plugin) = file_drop_plugin() else {
        println!(
            "note: the file-drop plugin ({}) is not built, so the timekeeping source is left out; \
             run `cargo build -p conveyor-plugin-file-drop` (scripts/demo does)",
            crate::plugins::library_file_name("file_drop")
        );
        return Ok(String::new());
    };
    let exports = dir.join("timekeeping-exports");
    std::fs::create_dir_all(&exports)?;
    let (first, last) = sb.facts.latest_pay_period;
    let mut hours = String::from("entry_id,employee_email,work_date,hours,approved\n");
    let mut absences = String::new();
    let mut day = first;
    while day <= last {
        use chrono::Datelike;
        if day.weekday().number_from_monday() <= 5 {
            for (i, email) in sb.facts.back_office_emails.iter().enumerate() {
                // Everyone works 8 hours a day, except one half day each.
                let off = (day - first).num_days() as usize == i;
                let h = if off { "4.0" } else { "8.0" };
                hours.push_str(&format!("{day}-{i:02},{email},{day},{h},true\n"));
                if off {
                    let record = serde_json::json!({
                        "absence_id": format!("A-{day}-{i:02}"), "employee_email": email, "date": day.to_string(),
                        "hours": 4.0, "reason": "appointment", "approved_by": {"role": "supervisor"}
                    });
                    absences.push_str(&format!("{record}\n"));
                }
            }
        }
        day = day.succ_opt().expect("a later day");
    }
    std::fs::write(exports.join(format!("hours_{first}_{last}.csv")), hours)?;
    std::fs::write(
        exports.join(format!("absences_{first}_{last}.ndjson")),
        absences,
    )?;
    let sha256 = crate::plugins::sha256_file(&plugin)?;
    let plugin_dir = plugin.parent().expect("a file has a folder");
    Ok(format!(
        r#"
# Timekeeping: CSV and NDJSON exports dropped into a folder, read by the
# file-drop connector plugin ({file}), loaded through the plugin ABI.
[plugins]
dirs = ["{plugin_dir}"]
sha256 = {{ file_drop = "{sha256}" }}   # refuse the library if it ever changes

[sources.timekeeping]
type = "file_drop"
schedule = "0 */10 * * * *"
options = {{ dir = "{exports}", streams = [
    {{ name = "hours", pattern = "hours_*.csv", primary_key = ["entry_id"] }},
    {{ name = "absences", pattern = "absences_*.ndjson", primary_key = ["absence_id"] }},
] }}
"#,
        file = plugin
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default(),
        plugin_dir = plugin_dir.display(),
        exports = exports.display(),
    ))
}

/// `[server.postgres]` for `--serve`: user `demo`, a random password in
/// `secrets/postgres_password` (by reference, like every demo secret).
fn postgres_section(dir: &Path) -> Result<String> {
    let password: String = {
        use base64::Engine;
        let bytes: [u8; 18] = rand::random();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let p = dir.join("secrets").join("postgres_password");
    std::fs::write(&p, password)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(format!(
        "\n[server.postgres]\nlisten = \"127.0.0.1:{}\"\nusers = {{ demo = \"file:secrets/postgres_password\" }}\n",
        free_port()?
    ))
}

/// `--serve`: prints where the console and the Postgres endpoint are and
/// how to log in, then runs the daemon on the demo's warehouse (SIGHUP
/// reloads the demo's config) until Ctrl-C or SIGTERM.
async fn serve_demo(wh: Arc<Warehouse>, config: conveyor_config::Config, run: &str) -> Result<()> {
    let listen = config.server.listen;
    println!("\nServing the demo until Ctrl-C (the sandbox stays up, so syncs keep working):\n");
    println!("  Console:  http://{listen}/console");
    println!(
        "            log in with the token the daemon writes to {} (cat it)",
        config.server.token_file.display()
    );
    if let Some(pg) = &config.server.postgres {
        let secrets = config
            .file
            .parent()
            .unwrap_or(Path::new("."))
            .join("secrets/postgres_password");
        println!(
            "  Postgres: PGPASSWORD=$(cat {}) psql \"host={} port={} user=demo dbname=warehouse\"",
            secrets.display(),
            pg.listen.ip(),
            pg.listen.port()
        );
    }
    println!("  CLI:      {run} status   (goes through the daemon while it runs)\n");
    let (reload_tx, reloads) = tokio::sync::mpsc::unbounded_channel();
    #[cfg(unix)]
    {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                if reload_tx.send(()).is_err() {
                    break;
                }
            }
        });
    }
    #[cfg(not(unix))]
    drop(reload_tx);
    let shutdown = async {
        let _ = crate::cmd::run::shutdown_signal().await;
    };
    crate::cmd::run::run_daemon_with(wh, config, shutdown, reloads).await?;
    println!("Stopped.");
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The vendor connectors' tables, so the built-in mappings apply.
const DEMO_MODEL: &str = r#"
# The unified model: views in schema `model` over the raw tables above.
[model]
presets = { ats = "greenhouse", accounting = "quickbooks", payroll = "gusto", contact_center = "genesys" }

# Built-in reconciliation recipes; results in conveyor.recon_results.
"#;

const DEMO_HEADER: &str = r#"# Written by `conveyor demo`: four sandbox vendor APIs read through the
# vendor connectors. The sandbox ports change every run.

[warehouse]
path = "warehouse.duckdb"

[server]
listen = "{listen}"
"#;

/// The demo's vendor sources: credentials by reference, the sandbox's
/// addresses (`{…}`) instead of the vendors' production endpoints.
const DEMO_SOURCES: &str = r#"
# ATS: Greenhouse Harvest v3 (client credentials for a user id).
[sources.ats]
type = "greenhouse"
schedule = "0 */15 * * * *"
base_url = "{ats}"
token_url = "{ats_token}"
client_id = "{ats_client_id}"
client_secret = "file:secrets/ats_client_secret"
user_id = {ats_user_id}
start_date = "2025-01-01"

# Accounting: QuickBooks Online (a refresh token that rotates; kept sealed).
[sources.accounting]
type = "quickbooks"
schedule = "0 0 * * * *"
base_url = "{qbo}"
token_url = "{qbo_token}"
client_id = "{qbo_client_id}"
client_secret = "file:secrets/qbo_client_secret"
refresh_token = "file:secrets/qbo_refresh_token"
realm_id = "{realm}"
start_date = "2025-01-01"

# Payroll: Gusto (a refresh token that rotates; kept sealed).
[sources.payroll]
type = "gusto"
schedule = "0 0 6 * * *"
base_url = "{gusto}"
token_url = "{gusto_token}"
client_id = "{gusto_client_id}"
client_secret = "file:secrets/gusto_client_secret"
refresh_token = "file:secrets/gusto_refresh_token"
company_id = "{company}"
start_date = "2025-10-01"

# Contact center: Genesys Cloud (client credentials): users, conversations,
# post-call surveys, quality evaluations, daily presence.
[sources.contact_center]
type = "genesys"
schedule = "0 */5 * * * *"
base_url = "{genesys}"
token_url = "{genesys_token}"
client_id = "{genesys_client_id}"
client_secret = "file:secrets/genesys_client_secret"
start_date = "2026-09-01"
"#;
