//! Opens, reads and closes a plugin N times and prints resident memory, to
//! check that nothing leaks across the ABI (also run it under valgrind).
//!
//! `cargo run -p conveyor-plugin-api --example plugin_loop -- LIB.so 'OPTIONS_JSON' [N]`

use std::sync::Arc;

use conveyor_plugin_api::host::{PluginConnector, PluginLibrary};
use conveyor_plugin_api::{CancelFlag, CollectingSink, Connector, Json};

/// Resident set size of this process, in KiB (Linux).
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4
}

async fn cycle(library: &Arc<PluginLibrary>, options: &Json) -> usize {
    let c = PluginConnector::open(library.clone(), options).expect("open");
    let mut rows = 0;
    for s in c.streams() {
        let mut sink = CollectingSink::default();
        c.read(&s.name, None, &mut sink, &CancelFlag::default())
            .await
            .expect("read");
        rows += sink.batches().iter().map(|b| b.num_rows()).sum::<usize>();
    }
    rows
}

fn main() {
    // One blocking thread, reused by every read: a pool that grows under
    // load would add thread stacks and malloc arenas to the figure.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run());
}

async fn run() {
    let args: Vec<String> = std::env::args().collect();
    let [_, path, options, rest @ ..] = args.as_slice() else {
        eprintln!("usage: plugin_loop LIB.so 'OPTIONS_JSON' [N]");
        std::process::exit(2);
    };
    let n: usize = rest
        .first()
        .map(|n| n.parse().expect("N is a number"))
        .unwrap_or(1_000);
    let options: Json = serde_json::from_str(options).expect("options are JSON");
    let library = Arc::new(PluginLibrary::load(std::path::Path::new(path)).expect("a plugin"));
    let warmup = (n / 5).max(1);
    for _ in 0..warmup {
        cycle(&library, &options).await;
    }
    let before = rss_kib();
    let started = std::time::Instant::now();
    let mut rows = 0;
    for i in 1..=n {
        rows += cycle(&library, &options).await;
        if i % (n / 10).max(1) == 0 {
            println!("{i:>6} cycles: RSS {} KiB", rss_kib());
        }
    }
    let after = rss_kib();
    println!(
        "{n} open/read/close cycles after {warmup} warm-up, {rows} rows: RSS {before} KiB -> {after} KiB ({:+} KiB) in {:.1}s",
        after as i64 - before as i64,
        started.elapsed().as_secs_f64()
    );
}
