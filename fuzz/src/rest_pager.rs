//! The `rest_pager` fuzz target's body: the REST connector's response
//! handling (status, headers, body → records, the pager's next request)
//! over real loopback HTTP, with every response chosen by the input.
//!
//! Shared by `fuzz/fuzz_targets/rest_pager.rs` and the seed replay test
//! `connectors/tests/suite/fuzz_corpus.rs` (which includes this file by path).
//! `rest::pager::Pager` and `rest::select` are private to the connector
//! crate, so this drives them through the public `RestConnector::read`.
//!
//! Input (text, so seeds are readable and crashes are easy to retell):
//!
//! ```text
//! records = "data"                                   ← TOML lines added to the
//! pagination = { type = "next_url", next_path = "next" }   stream's table
//! --- 200                                            ← one response: status,
//! link: </items?page=2>; rel="next"                  ← headers,
//!                                                    ← a blank line,
//! {"data": [{"id": 1}], "next": "/items?page=2"}     ← the body
//! --- 429
//! retry-after: 1
//! ```
//!
//! Responses are served in order, one per request; once they run out every
//! request gets a 404, so a read always ends. Safety: fuzzed next links may
//! name any host, so the connector's client is pointed at this process's
//! server as its HTTP proxy (the `http_proxy` family of variables, read by
//! reqwest when a client is built) and the source's own host is
//! `conveyor-fuzz.invalid`, which never resolves. A probe read checks once
//! that requests really arrive through the proxy before any input runs;
//! every request must arrive in proxy form, or the run panics. Nothing
//! leaves the machine.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use conveyor_config::ConnectorConfig;
use conveyor_connectors::rest::RestConnector;
use conveyor_plugin_api::{
    CancelFlag, Connector, ConnectorError, Json, MemoryCredentials, RecordBatch, RecordSink,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The source's host: reserved, never resolves, reached only via the proxy.
pub const FUZZ_HOST: &str = "conveyor-fuzz.invalid";
/// At most this many responses are taken from one input.
const MAX_RESPONSES: usize = 32;
/// What a request gets once the input's responses have run out.
const EXHAUSTED: &[u8] =
    b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";

/// One canned response.
#[derive(Debug, Clone, PartialEq)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Canned {
    /// The response as sent on the wire (framing is ours, never the input's).
    fn to_wire(&self) -> Vec<u8> {
        let mut out =
            format!("HTTP/1.1 {} Fuzz\r\nconnection: close\r\n", self.status).into_bytes();
        for (k, v) in &self.headers {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        let bodiless = matches!(self.status, 204 | 304);
        if !bodiless {
            out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        if !bodiless {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// Splits an input into the stream-table TOML and the responses.
pub fn parse_input(data: &[u8]) -> (String, Vec<Canned>) {
    let mut cuts = Vec::new();
    if data.starts_with(b"--- ") {
        cuts.push(0);
    }
    cuts.extend(
        data.windows(5)
            .enumerate()
            .filter(|(_, w)| *w == b"\n--- ")
            .map(|(i, _)| i + 1),
    );
    let fragment_end = cuts.first().copied().unwrap_or(data.len());
    let fragment = String::from_utf8_lossy(&data[..fragment_end]).into_owned();
    let mut responses = Vec::new();
    for (n, &start) in cuts.iter().enumerate().take(MAX_RESPONSES) {
        let end = cuts.get(n + 1).map_or(data.len(), |&next| next - 1);
        responses.push(parse_response(&data[start + 4..end.max(start + 4)]));
    }
    (fragment, responses)
}

fn parse_response(chunk: &[u8]) -> Canned {
    let mut lines = chunk.split(|&b| b == b'\n');
    let status = lines
        .next()
        .and_then(|l| std::str::from_utf8(l).ok()?.trim().parse::<u16>().ok())
        .filter(|s| (200..600).contains(s))
        .unwrap_or(200);
    let mut headers = Vec::new();
    let mut consumed = chunk
        .iter()
        .position(|&b| b == b'\n')
        .map_or(chunk.len(), |i| i + 1);
    for line in lines {
        consumed = (consumed + line.len() + 1).min(chunk.len());
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if let Some(h) = header(line) {
            if headers.len() < 64 {
                headers.push(h);
            }
        }
    }
    Canned {
        status,
        headers,
        body: chunk[consumed.min(chunk.len())..].to_vec(),
    }
}

/// `name: value`, with the name a valid token (lower-cased) and the value
/// cleared of control bytes; framing headers are the server's own.
fn header(line: &[u8]) -> Option<(String, Vec<u8>)> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = std::str::from_utf8(&line[..colon])
        .ok()?
        .trim()
        .to_ascii_lowercase();
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty()
        || !name.chars().all(token)
        || matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        )
    {
        return None;
    }
    let value: Vec<u8> = line[colon + 1..]
        .iter()
        .copied()
        .filter(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
        .collect();
    let value = value.trim_ascii().to_vec();
    Some((name, value))
}

/// The config a fuzz input reads with: one REST source on the fuzz host,
/// no retries (no backoff sleeps), the input's lines in the stream table.
pub fn config_text(fragment: &str) -> String {
    format!(
        r#"[warehouse]
path = "/nonexistent/conveyor-fuzz/wh.duckdb"
[sources.t]
type = "rest"
base_url = "http://{FUZZ_HOST}/api"
max_retries = 0
timeout_secs = 5
prefetch_pages = 1
[[sources.t.streams]]
name = "items"
path = "/items"
primary_key = "id"
{fragment}
"#
    )
}

/// What one read did.
#[derive(Debug)]
pub struct Outcome {
    /// `None` when the config fragment was rejected (nothing was read).
    pub result: Option<Result<(), String>>,
    pub requests: usize,
    pub rows: usize,
    pub checkpoints: Vec<Json>,
}

#[derive(Default)]
struct Served {
    queue: VecDeque<Vec<u8>>,
    /// Request lines, in order.
    requests: Vec<String>,
}

struct Harness {
    rt: tokio::runtime::Runtime,
    served: Arc<Mutex<Served>>,
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        // Count panics on any thread: a panic in the connector's page task
        // is caught by tokio and would otherwise pass unseen. The previous
        // hook still runs (libFuzzer's aborts, the default one prints).
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info)
        }));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let served = Arc::new(Mutex::new(Served::default()));
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind a loopback port");
        let proxy = format!("http://{}", listener.local_addr().expect("local addr"));
        for var in [
            "http_proxy",
            "HTTP_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ] {
            std::env::set_var(var, &proxy);
        }
        for var in ["no_proxy", "NO_PROXY"] {
            std::env::remove_var(var);
        }
        rt.spawn(serve(listener, served.clone()));
        let h = Harness { rt, served };
        probe(&h);
        h
    })
}

/// One read of a plain page must arrive through the proxy, or fuzzed links
/// could reach real hosts: refuse to run then.
fn probe(h: &Harness) {
    let ok = Canned {
        status: 200,
        headers: Vec::new(),
        body: b"[{\"id\": 1}]".to_vec(),
    };
    let out = read(h, "", &[ok]);
    let first = h.served.lock().unwrap().requests.first().cloned();
    assert!(
        out.result == Some(Ok(())) && out.requests == 1 && out.rows == 1,
        "the fuzz harness's HTTP proxy is not used (refusing to fuzz: links could reach the network): {out:?}, first request {first:?}"
    );
}

async fn serve(listener: TcpListener, served: Arc<Mutex<Served>>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let served = served.clone();
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
                if head.len() > 1 << 16 {
                    return;
                }
            }
            let line =
                String::from_utf8_lossy(head.split(|&b| b == b'\r').next().unwrap_or_default())
                    .into_owned();
            let reply = {
                let mut s = served.lock().unwrap();
                s.requests.push(line);
                s.queue.pop_front().unwrap_or_else(|| EXHAUSTED.to_vec())
            };
            let _ = sock.write_all(&reply).await;
            let _ = sock.shutdown().await;
        });
    }
}

#[derive(Default)]
struct Collect {
    rows: usize,
    checkpoints: Vec<Json>,
}

#[async_trait::async_trait]
impl RecordSink for Collect {
    async fn batch(&mut self, batch: RecordBatch) -> Result<(), ConnectorError> {
        self.rows += batch.num_rows();
        Ok(())
    }
    async fn checkpoint(&mut self, state: Json) -> Result<(), ConnectorError> {
        self.checkpoints.push(state);
        Ok(())
    }
}

fn read(h: &Harness, fragment: &str, responses: &[Canned]) -> Outcome {
    let text = config_text(fragment);
    let none = Outcome {
        result: None,
        requests: 0,
        rows: 0,
        checkpoints: Vec::new(),
    };
    let Ok(cfg) =
        conveyor_config::parse_offline(&text, Path::new("/nonexistent/conveyor-fuzz/c.toml"))
    else {
        return none;
    };
    let Some(source) = cfg.sources.iter().find(|s| s.name == "t") else {
        return none;
    };
    let ConnectorConfig::Rest(rest) = &source.connector else {
        return none;
    };
    let stream = rest.streams[0].name.clone();
    {
        let mut s = h.served.lock().unwrap();
        s.queue = responses.iter().map(Canned::to_wire).collect();
        s.requests.clear();
    }
    let mut sink = Collect::default();
    let result = h.rt.block_on(async {
        let c = RestConnector::new(
            &source.name,
            rest.clone(),
            Arc::new(MemoryCredentials::default()),
        )
        .map_err(|e| e.to_string())?;
        let cancel = CancelFlag::default();
        let read = c.read(&stream, None, &mut sink, &cancel);
        match tokio::time::timeout(Duration::from_secs(60), read).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => panic!(
                "a read of {} canned responses did not end in 60 s",
                responses.len()
            ),
        }
    });
    let requests = {
        let s = h.served.lock().unwrap();
        for line in &s.requests {
            assert!(
                line.starts_with("GET http://") || line.starts_with("CONNECT "),
                "a request bypassed the proxy: {line:?}"
            );
        }
        s.requests.len()
    };
    Outcome {
        result: Some(result),
        requests,
        rows: sink.rows,
        checkpoints: sink.checkpoints,
    }
}

/// Runs one input; panics on a crash anywhere in the read (including the
/// connector's page task) or when an invariant breaks.
pub fn fuzz_one(data: &[u8]) -> Outcome {
    let h = harness();
    let (fragment, responses) = parse_input(data);
    let panics = PANICS.load(Ordering::SeqCst);
    let out = read(h, &fragment, &responses);
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        panics,
        "the read panicked (see above); outcome {out:?}"
    );
    if let Some(result) = &out.result {
        // Every request takes one response; past the last comes a 404 that
        // ends the read, so paging cannot outlast the input.
        assert!(
            out.requests <= responses.len() + 1,
            "{} requests for {} responses",
            out.requests,
            responses.len()
        );
        // Invariant 1: until the stream is read to the end, every
        // checkpoint holds the cursor the read started from.
        let resumable = match result {
            Ok(()) => out.checkpoints.len().saturating_sub(1),
            Err(_) => out.checkpoints.len(),
        };
        if let Some(first) = out.checkpoints.first() {
            for c in &out.checkpoints[..resumable] {
                assert_eq!(c, first, "a checkpoint moved the cursor before the end");
            }
        }
        if result.is_ok() {
            assert!(!out.checkpoints.is_empty(), "a finished read checkpoints");
        }
    }
    out
}
