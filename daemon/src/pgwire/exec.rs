//! Running a client's reads on DuckDB: each session has its own reader
//! connections (with the shim catalog installed), each owned by a thread,
//! and a read streams its Arrow batches, encoded, through a bounded
//! channel — a slow client holds a batch or two in memory, never the
//! whole result.
//!
//! Every read passes [`check_read_only`] first and runs inside
//! `BEGIN TRANSACTION … ROLLBACK` (the second guard); text is never handed
//! to `Connection::prepare` before the guard has seen it, since duckdb-rs
//! executes all but the last statement of a string while preparing it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::core::LogicalTypeId;
use duckdb::types::Value;
use duckdb::{Connection, InterruptHandle};
use pgwire::api::results::FieldFormat;
use pgwire::api::Type;
use pgwire::error::{ErrorInfo, SEVERITY_ERROR};
use pgwire::messages::data::DataRow;
use tokio::sync::{mpsc, oneshot};

use super::types::{self, Column, Hint};
use crate::query::guard::check_read_only;
use crate::warehouse::engine_error::{missing_object, Missing};
use crate::warehouse::Warehouse;

/// Open result sets a session may have at once (suspended portals hold a
/// reader each); more is refused rather than queued behind them.
const MAX_READERS_PER_SESSION: usize = 4;
/// Encoded batches buffered between DuckDB and a client.
const BUFFERED_BATCHES: usize = 2;

type Job = Box<dyn FnOnce(&Connection) + Send>;

/// An error as the client gets it: SQLSTATE and message.
pub fn error(code: &str, message: impl Into<String>) -> Failure {
    Box::new(ErrorInfo::new(
        SEVERITY_ERROR.to_owned(),
        code.to_owned(),
        message.into(),
    ))
}

/// An error for the client (boxed: it is large and mostly not there).
pub type Failure = Box<ErrorInfo>;

/// A DuckDB error, its filler removed, with the SQLSTATE a Postgres client
/// would get for the same mistake.
pub fn engine_error(e: &duckdb::Error) -> Failure {
    let message = crate::query::clean_error(&e.to_string());
    let code = if let Some(missing) = missing_object(&message) {
        match missing {
            Missing::Relation => "42P01",
            Missing::Schema => "3F000",
            Missing::Function => "42883",
            Missing::Other => "42704",
        }
    } else if message.starts_with("Binder Error") && message.contains("column") {
        "42703"
    } else if message.starts_with("Binder Error") {
        "42804"
    } else if message.starts_with("Parser Error") {
        "42601"
    } else if message.starts_with("INTERRUPT") || message.contains("Interrupted") {
        "57014"
    } else if message.starts_with("Permission Error") {
        "42501"
    } else if message.starts_with("Conversion Error") || message.starts_with("Invalid Input Error")
    {
        "22P02"
    } else if message.starts_with("Out of Range Error") {
        "22003"
    } else if message.starts_with("Out of Memory Error") {
        "53200"
    } else {
        "XX000"
    };
    let message = if code == "57014" {
        "canceling statement due to user request".to_string()
    } else {
        message
    };
    error(code, message)
}

/// A bound parameter.
pub type Param = Value;

/// What a read sends back, in order: its columns (or why it failed), then
/// batches of encoded rows, then how it ended.
pub enum Msg {
    Columns(Vec<Column>),
    Rows(Vec<DataRow>),
    Lines(Vec<Bytes>),
    Failed(Failure),
}

/// How a read's rows are encoded.
#[derive(Debug, Clone)]
pub enum Output {
    /// DataRows, each column in the format the client asked for
    /// (`None`: all text).
    Rows(Option<Vec<FieldFormat>>),
    /// COPY text or CSV lines.
    Copy { csv: bool },
    /// Only the columns: the statement is run with NULL parameters and
    /// `LIMIT 0` around it, no row is read.
    Describe,
}

/// The readers of one client session.
pub struct Readers {
    wh: Arc<Warehouse>,
    pid: i32,
    pool: Arc<Pool>,
}

#[derive(Default)]
struct Pool {
    idle: Mutex<Vec<usize>>,
    workers: Mutex<HashMap<usize, WorkerHandle>>,
}

struct WorkerHandle {
    tx: std::sync::mpsc::Sender<Job>,
    interrupt: Arc<InterruptHandle>,
    busy: Arc<AtomicBool>,
}

impl Readers {
    pub fn new(wh: Arc<Warehouse>, pid: i32) -> Readers {
        Readers {
            wh,
            pid,
            pool: Arc::default(),
        }
    }

    /// Interrupts whatever this session is running in DuckDB.
    pub fn cancel(&self) {
        for w in self.pool.workers.lock().expect("pool lock").values() {
            if w.busy.load(Ordering::SeqCst) {
                w.interrupt.interrupt();
            }
        }
    }

    /// Runs `job` on an idle reader, opening one if none is free.
    async fn submit(&self, job: Job) -> Result<(), Failure> {
        let idle = self.pool.idle.lock().expect("pool lock").pop();
        let id = match idle {
            Some(id) => id,
            None => self.spawn().await?,
        };
        let mut workers = self.pool.workers.lock().expect("pool lock");
        let w = workers.get(&id).expect("idle workers are known");
        w.busy.store(true, Ordering::SeqCst);
        if w.tx.send(job).is_err() {
            workers.remove(&id);
            return Err(error("XX000", "the warehouse reader stopped"));
        }
        Ok(())
    }

    async fn spawn(&self) -> Result<usize, Failure> {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let id = {
            let workers = self.pool.workers.lock().expect("pool lock");
            if workers.len() >= MAX_READERS_PER_SESSION {
                return Err(error(
                    "53000",
                    format!("at most {MAX_READERS_PER_SESSION} open result sets per connection; close a cursor first"),
                ));
            }
            (0..).find(|i| !workers.contains_key(i)).expect("a free id")
        };
        let (wh, pid, pool) = (self.wh.clone(), self.pid, Arc::downgrade(&self.pool));
        let busy = Arc::new(AtomicBool::new(false));
        let busy_worker = busy.clone();
        std::thread::Builder::new()
            .name("conveyor-pg-reader".into())
            .spawn(move || {
                let conn = match open_reader(&wh, pid) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(conn.interrupt_handle()));
                reader_loop(conn, id, rx, pool, busy_worker);
            })
            .map_err(|e| error("53000", format!("cannot start a reader: {e}")))?;
        let interrupt = ready_rx
            .await
            .map_err(|_| error("XX000", "the warehouse reader stopped"))??;
        self.pool.workers.lock().expect("pool lock").insert(
            id,
            WorkerHandle {
                tx,
                interrupt,
                busy,
            },
        );
        Ok(id)
    }

    /// Checks `sql` with the guard and returns how many parameters it has.
    pub async fn check(&self, sql: String) -> Result<usize, Failure> {
        let (tx, rx) = oneshot::channel();
        self.submit(Box::new(move |conn| {
            // Only the text the guard returns is ever prepared.
            let result = check_read_only(conn, &sql)
                .map_err(|r| error(r.sqlstate(), r.to_string()))
                .and_then(|checked| {
                    conn.prepare(&checked)
                        .map(|s| s.parameter_count())
                        .map_err(|e| engine_error(&e))
                });
            let _ = tx.send(result);
        }))
        .await?;
        rx.await
            .map_err(|_| error("XX000", "the warehouse reader stopped"))?
    }

    /// Starts a read; the receiver gets its columns, then its rows.
    pub async fn run(
        &self,
        sql: String,
        params: Vec<Param>,
        output: Output,
    ) -> Result<(Vec<Column>, mpsc::Receiver<Msg>), Failure> {
        let (tx, mut rx) = mpsc::channel(BUFFERED_BATCHES);
        self.submit(Box::new(move |conn| {
            run_read(conn, &sql, params, &output, &tx)
        }))
        .await?;
        match rx.recv().await {
            Some(Msg::Columns(c)) => Ok((c, rx)),
            Some(Msg::Failed(e)) => Err(e),
            _ => Err(error("XX000", "the warehouse reader stopped")),
        }
    }
}

/// A reader connection: a new connection to the daemon's instance (external
/// access off, configuration locked) with the shim catalog.
fn open_reader(wh: &Warehouse, pid: i32) -> Result<Connection, Failure> {
    let conn = wh
        .connection()
        .map_err(|e| error("08006", format!("cannot open the warehouse: {e:#}")))?;
    let version: String = conn
        .query_row("SELECT library_version FROM pragma_version()", [], |r| {
            r.get(0)
        })
        .unwrap_or_else(|_| "unknown".into());
    conn.execute_batch(&super::catalog::session_sql(pid, &version))
        .map_err(|e| {
            error(
                "XX000",
                format!(
                    "cannot prepare the Postgres catalog: {}",
                    engine_error(&e).message
                ),
            )
        })?;
    Ok(conn)
}

fn reader_loop(
    conn: Connection,
    id: usize,
    rx: std::sync::mpsc::Receiver<Job>,
    pool: Weak<Pool>,
    busy: Arc<AtomicBool>,
) {
    // Ends when the session drops its pool (and with it every sender).
    while let Ok(job) = rx.recv() {
        // A bug in encoding must not cost the session its reader (the
        // read's transaction rolls back as the panic unwinds through it).
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&conn))).is_err() {
            tracing::error!("a Postgres-wire read panicked; its client gets an error");
        }
        busy.store(false, Ordering::SeqCst);
        match pool.upgrade() {
            Some(pool) => pool.idle.lock().expect("pool lock").push(id),
            None => break,
        }
    }
}

fn run_read(
    conn: &Connection,
    sql: &str,
    params: Vec<Param>,
    output: &Output,
    tx: &mpsc::Sender<Msg>,
) {
    // Only the text the guard returns is ever prepared.
    let checked = match check_read_only(conn, sql) {
        Ok(checked) => checked,
        Err(r) => {
            let _ = tx.blocking_send(Msg::Failed(error(r.sqlstate(), r.to_string())));
            return;
        }
    };
    // The outer error is the transaction's own (BEGIN failed); the inner
    // one what the statement did.
    let outcome = crate::warehouse::transaction::rolled_back(conn, || {
        Ok::<_, duckdb::Error>(stream(conn, &checked, params, output, tx))
    });
    let failed = match outcome {
        Err(e) => Some(engine_error(&e)),
        Ok(streamed) => streamed.err(),
    };
    if let Some(f) = failed {
        let _ = tx.blocking_send(Msg::Failed(f));
    }
}

fn stream(
    conn: &Connection,
    sql: &str,
    params: Vec<Param>,
    output: &Output,
    tx: &mpsc::Sender<Msg>,
) -> Result<(), Failure> {
    let describe_sql;
    let (sql, params) = if matches!(output, Output::Describe) {
        // Column names and types without reading anything: the statement
        // (checked by the guard) inside `LIMIT 0`, still one read — or,
        // for what cannot be a subquery (EXPLAIN), the statement itself,
        // executed but never stepped.
        let n = conn
            .prepare(sql)
            .map_err(|e| engine_error(&e))?
            .parameter_count();
        let wrapped = format!("SELECT * FROM (\n{sql}\n) AS conveyor_described LIMIT 0");
        describe_sql = check_read_only(conn, &wrapped)
            .ok()
            .filter(|checked| conn.prepare(checked).is_ok());
        (describe_sql.as_deref().unwrap_or(sql), vec![Value::Null; n])
    } else {
        (sql, params)
    };
    let mut stmt = conn.prepare(sql).map_err(|e| engine_error(&e))?;
    if stmt.parameter_count() != params.len() {
        return Err(error(
            "08P01",
            format!(
                "the statement has {} parameters but {} were bound",
                stmt.parameter_count(),
                params.len()
            ),
        ));
    }
    // Executes (streaming) and binds; the batches are then pulled with
    // `step`, which leaves the statement free to answer about its columns.
    drop(
        stmt.stream_arrow(duckdb::params_from_iter(params))
            .map_err(|e| engine_error(&e))?,
    );
    let schema = stmt.schema();
    let formats = match output {
        Output::Rows(Some(f)) => f.clone(),
        _ => vec![],
    };
    let columns: Vec<Column> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let logical = stmt.column_logical_type(i);
            let hint = Hint {
                json: logical
                    .get_alias()
                    .is_some_and(|a| a.eq_ignore_ascii_case("json")),
                uuid: logical.id() == LogicalTypeId::Uuid,
            };
            let ty = types::pg_type(f.data_type(), hint);
            // One format code applies to all columns; else one each.
            let asked = match formats.len() {
                0 => FieldFormat::Text,
                1 => formats[0],
                _ => formats.get(i).copied().unwrap_or(FieldFormat::Text),
            };
            let format = if asked == FieldFormat::Binary && types::has_binary(&ty) {
                FieldFormat::Binary
            } else {
                FieldFormat::Text
            };
            Column {
                name: f.name().clone(),
                ty,
                format,
            }
        })
        .collect();
    if formats.contains(&FieldFormat::Binary)
        && columns
            .iter()
            .any(|c| c.format == FieldFormat::Text && !types::has_binary(&c.ty))
    {
        // A client that asked for binary must get it: refuse the column
        // rather than send text it would misread.
        let c = columns
            .iter()
            .find(|c| !types::has_binary(&c.ty))
            .expect("checked above");
        return Err(error(
            "0A000",
            format!(
                "column {} cannot be sent in binary; ask for text results",
                c.name
            ),
        ));
    }
    if tx.blocking_send(Msg::Columns(columns.clone())).is_err() {
        return Ok(());
    }
    if matches!(output, Output::Describe) {
        return Ok(());
    }
    loop {
        match stmt.step() {
            Ok(Some(array)) => {
                let batch = RecordBatch::from(&array);
                let msg = match output {
                    Output::Copy { csv } => Msg::Lines(types::copy_lines(&batch, &columns, *csv)),
                    _ => Msg::Rows(types::data_rows(&batch, &columns)),
                };
                // The client went away or closed the portal: stop reading.
                if tx.blocking_send(msg).is_err() {
                    return Ok(());
                }
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(engine_error(&e)),
        }
    }
}

/// Turns a parameter as the client sent it into a DuckDB value. Text
/// parameters of unknown type go in as text (DuckDB casts them to what the
/// statement needs); those the client typed are converted here.
pub fn param(bytes: Option<&[u8]>, ty: Option<&Type>, binary: bool) -> Result<Param, Failure> {
    let Some(bytes) = bytes else {
        return Ok(Value::Null);
    };
    let bad = |what: &str| error("22P02", format!("invalid {what} parameter"));
    if binary {
        let fixed = |n: usize| -> Result<&[u8], Failure> {
            if bytes.len() == n {
                Ok(bytes)
            } else {
                Err(bad("binary"))
            }
        };
        return Ok(match ty {
            Some(&Type::BOOL) => Value::Boolean(fixed(1)?[0] != 0),
            Some(&Type::INT2) => {
                Value::SmallInt(i16::from_be_bytes(fixed(2)?.try_into().expect("2 bytes")))
            }
            Some(&Type::INT4) => {
                Value::Int(i32::from_be_bytes(fixed(4)?.try_into().expect("4 bytes")))
            }
            Some(&Type::INT8) => {
                Value::BigInt(i64::from_be_bytes(fixed(8)?.try_into().expect("8 bytes")))
            }
            Some(&Type::FLOAT4) => {
                Value::Float(f32::from_be_bytes(fixed(4)?.try_into().expect("4 bytes")))
            }
            Some(&Type::FLOAT8) => {
                Value::Double(f64::from_be_bytes(fixed(8)?.try_into().expect("8 bytes")))
            }
            Some(&Type::BYTEA) => Value::Blob(bytes.to_vec()),
            Some(&Type::DATE) => {
                let days = i32::from_be_bytes(fixed(4)?.try_into().expect("4 bytes"));
                Value::Date32(days + 10_957)
            }
            Some(&Type::TIMESTAMP) | Some(&Type::TIMESTAMPTZ) => {
                let micros = i64::from_be_bytes(fixed(8)?.try_into().expect("8 bytes"));
                Value::Timestamp(
                    duckdb::types::TimeUnit::Microsecond,
                    micros + 946_684_800_000_000,
                )
            }
            Some(&Type::UUID) => {
                let b = fixed(16)?;
                let mut s = String::new();
                for (i, byte) in b.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        s.push('-');
                    }
                    s.push_str(&format!("{byte:02x}"));
                }
                Value::Text(s)
            }
            None | Some(&Type::TEXT) | Some(&Type::VARCHAR) | Some(&Type::NAME)
            | Some(&Type::UNKNOWN) | Some(&Type::JSON) | Some(&Type::BPCHAR) => {
                Value::Text(String::from_utf8(bytes.to_vec()).map_err(|_| bad("text"))?)
            }
            Some(t) => {
                return Err(error(
                    "0A000",
                    format!(
                        "binary parameters of type {} are not supported; send it as text",
                        t.name()
                    ),
                ))
            }
        });
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| bad("text"))?
        .to_string();
    Ok(match ty {
        Some(&Type::INT2) | Some(&Type::INT4) | Some(&Type::INT8) => {
            Value::BigInt(text.trim().parse().map_err(|_| bad("integer"))?)
        }
        Some(&Type::FLOAT4) | Some(&Type::FLOAT8) => {
            Value::Double(text.trim().parse().map_err(|_| bad("float"))?)
        }
        Some(&Type::BOOL) => match text.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "y" | "yes" | "on" | "1" => Value::Boolean(true),
            "f" | "false" | "n" | "no" | "off" | "0" => Value::Boolean(false),
            _ => return Err(bad("boolean")),
        },
        Some(&Type::BYTEA) => match text.strip_prefix("\\x") {
            Some(hex) => Value::Blob(
                (0..hex.len() / 2)
                    .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad("bytea"))?,
            ),
            None => Value::Blob(text.into_bytes()),
        },
        _ => Value::Text(text),
    })
}
