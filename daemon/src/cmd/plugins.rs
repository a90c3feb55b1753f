//! `conveyor plugins list` and `conveyor plugins check PATH`: what the
//! configured plugin folders hold, and whether one library is a plugin this
//! conveyor can drive. Any problem is printed and exits with status 2.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use conveyor_config::{Config, ConnectorConfig, PluginIsolation};
use conveyor_plugin_api::host::{PluginConnector, PluginLibrary};
use conveyor_plugin_api::{Connector, Json};

use crate::plugins;
use crate::plugins::isolated::IsolatedConnector;
use crate::EXIT_CONFIG;

/// One line per library in `[plugins].dirs`: name, version, ABI, the streams
/// of each source using it, path and checksum status.
pub async fn list_command(config: Config) -> Result<ExitCode> {
    tokio::task::spawn_blocking(move || list(&config)).await?
}

fn list(config: &Config) -> Result<ExitCode> {
    if config.plugins.dirs.is_empty() {
        println!(
            "no plugin folders configured: add [plugins] dirs = [\"…\"] to {}",
            config.file.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(["plugin", "version", "abi", "streams", "path", "sha256"]);
    let mut problems = 0;
    for dir in &config.plugins.dirs {
        let libraries = plugins::list_dir(dir);
        if libraries.is_empty() {
            eprintln!("note: {} holds no plugin libraries", dir.display());
        }
        for path in libraries {
            let stem = file_stem(&path);
            let pin = config.plugins.sha256.get(&stem).map(String::as_str);
            match plugins::load_hashed(&path, &stem, pin) {
                Ok((library, sha256)) => {
                    let streams = streams_of_sources(config, &library, &mut problems);
                    let sha = match pin {
                        Some(_) => "pinned, matches".to_string(),
                        None => format!("{}…", &sha256[..16]),
                    };
                    table.add_row([
                        library.info.name.clone(),
                        library.info.version.clone(),
                        format!("{}.{}", library.abi.0, library.abi.1),
                        streams,
                        path.display().to_string(),
                        sha,
                    ]);
                }
                Err(e) => {
                    problems += 1;
                    eprintln!("error: {e}");
                }
            }
        }
    }
    // A source whose plugin is in none of the folders would fail every run.
    for source in &config.sources {
        let ConnectorConfig::Plugin(p) = &source.connector else {
            continue;
        };
        if let Err(e) = plugins::find_library(&p.dirs, &p.plugin) {
            problems += 1;
            eprintln!("error: source `{}`: {e}", source.name);
        }
    }
    println!("{table}");
    Ok(if problems > 0 {
        ExitCode::from(EXIT_CONFIG)
    } else {
        ExitCode::SUCCESS
    })
}

/// `libfile_drop.so` → `file_drop`: the name sources use as `type`.
fn file_stem(path: &Path) -> String {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let name = name
        .strip_prefix(std::env::consts::DLL_PREFIX)
        .unwrap_or(name);
    name.strip_suffix(std::env::consts::DLL_SUFFIX)
        .unwrap_or(name)
        .to_string()
}

/// A plugin's streams depend on its options, so they are listed per source
/// that uses it: `source: a, b; other: c`.
fn streams_of_sources(
    config: &Config,
    library: &Arc<PluginLibrary>,
    problems: &mut usize,
) -> String {
    let mut parts = Vec::new();
    for source in &config.sources {
        let ConnectorConfig::Plugin(p) = &source.connector else {
            continue;
        };
        if p.plugin != library.info.name {
            continue;
        }
        // A source that isolates its plugin has it opened in a plugin host
        // here too: opening runs the plugin's code.
        let opened: Result<Box<dyn Connector>, _> = match p.isolation {
            PluginIsolation::Process => tokio::runtime::Handle::current()
                .block_on(IsolatedConnector::open(p))
                .map(|c| Box::new(c) as Box<dyn Connector>),
            PluginIsolation::InProcess => plugins::options_with_secrets(p)
                .and_then(|(options, redact)| {
                    PluginConnector::open_redacting(library.clone(), &options, redact)
                })
                .map(|c| Box::new(c) as Box<dyn Connector>),
        };
        match opened {
            Ok(c) => {
                let names: Vec<String> = c.streams().into_iter().map(|s| s.name).collect();
                parts.push(format!("{}: {}", source.name, names.join(", ")));
            }
            Err(e) => {
                *problems += 1;
                eprintln!("error: source `{}`: {e}", source.name);
                parts.push(format!("{}: (cannot open)", source.name));
            }
        }
    }
    if parts.is_empty() {
        "(no source uses it)".into()
    } else {
        parts.join("; ")
    }
}

/// Loads one library, validates it and lists its streams (opened with
/// `options`, a JSON object, when given). Exit 2 on any problem.
pub async fn check_command(path: &Path, options: Option<String>) -> Result<ExitCode> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || Ok(check(&path, options.as_deref()))).await?
}

fn check(path: &Path, options: Option<&str>) -> ExitCode {
    let fail = |message: String| {
        eprintln!("{}: not usable: {message}", path.display());
        ExitCode::from(EXIT_CONFIG)
    };
    let parsed: Option<Json> = match options.map(serde_json::from_str::<Json>) {
        None => None,
        Some(Ok(o)) if o.is_object() => Some(o),
        Some(Ok(_)) => return fail("--options must be a JSON object".into()),
        Some(Err(e)) => return fail(format!("--options is not JSON: {e}")),
    };
    // One read of the file is hashed, validated and mapped.
    let (library, sha256) = match plugins::load_hashed(path, &file_stem(path), None) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let info = &library.info;
    println!(
        "plugin   {} {} — {}",
        info.name, info.version, info.description
    );
    println!(
        "abi      {}.{} (this conveyor: {}.{})",
        library.abi.0,
        library.abi.1,
        conveyor_plugin_api::ffi::ABI_MAJOR,
        conveyor_plugin_api::ffi::ABI_MINOR
    );
    println!("sha256   {sha256}");
    let expected = plugins::library_file_name(&info.name);
    if path.file_name().and_then(|n| n.to_str()) != Some(expected.as_str()) {
        eprintln!(
            "error: sources find this plugin as {expected} (type = \"{}\"); rename the file",
            info.name
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    let given = parsed.is_some();
    match PluginConnector::open(
        library.clone(),
        &parsed.unwrap_or_else(|| Json::Object(Default::default())),
    ) {
        Ok(c) => {
            for s in conveyor_plugin_api::Connector::streams(&c) {
                let cursor = s
                    .cursor_field
                    .map(|c| format!(", cursor {c}"))
                    .unwrap_or_default();
                println!(
                    "stream   {} (primary key {}{cursor})",
                    s.name,
                    s.primary_key.join(", ")
                );
            }
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        // Streams usually depend on options; without them the library is
        // still valid, the streams just cannot be listed.
        Err(e) if !given && e.kind == conveyor_plugin_api::ErrorKind::Config => {
            println!("streams  (depend on options; pass --options '{{…}}' to list them: {e})");
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}: open failed: {e}", path.display());
            ExitCode::from(EXIT_CONFIG)
        }
    }
}
