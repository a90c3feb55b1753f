//! The database source against real servers (PostgreSQL and MariaDB from
//! Debian, `conveyor_mocks::databases`): types, keyset paging, incremental
//! reads, resumption, soft deletes, schema drift, and errors without secrets.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type};
use arrow_array::Array;
use arrow_schema::DataType;
use base64::Engine as _;
use conveyor_config::SourceConfig;
use conveyor_mocks::databases::{TestDatabase, TestServers};
use conveyor_plugin_api::{
    CancelFlag, Connector, ConnectorError, ErrorKind, Json, MemoryCredentials, RecordBatch,
    RecordSink,
};

use crate::support::{self, Sink};

/// A source reading `db` with `streams` (TOML `[[sources.erp.streams]]`
/// blocks), its password in a secret file under `dir`.
fn source(db: &TestDatabase, dir: &Path, extra: &str, streams: &str) -> SourceConfig {
    let kind = match db.engine {
        conveyor_mocks::databases::Engine::Postgres => "postgres",
        conveyor_mocks::databases::Engine::MariaDb => "mysql",
    };
    let password = support::secret_file(dir, "db-password", &db.password);
    // `extra` may choose its own TLS mode; plain TCP on loopback otherwise.
    let tls = if extra.contains("tls =") {
        ""
    } else {
        "tls = \"disable\"\n"
    };
    let text = format!(
        "[warehouse]\npath = \"x.duckdb\"\n[sources.erp]\ntype = \"{kind}\"\nurl = \"{}\"\npassword = \"{password}\"\n{tls}{extra}\n{streams}",
        db.url()
    );
    let cfg = conveyor_config::parse(&text, Path::new("/tmp/conveyor.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    cfg.sources.into_iter().next().unwrap()
}

fn connector(s: &SourceConfig) -> Box<dyn Connector> {
    support::build(s, std::sync::Arc::new(MemoryCredentials::default()))
}

fn column<'a>(sink: &'a Sink, name: &str) -> Vec<&'a dyn Array> {
    sink.batches
        .iter()
        .map(|b| b.column(b.schema().index_of(name).unwrap()).as_ref())
        .collect()
}

fn bools(sink: &Sink, name: &str) -> Vec<Option<bool>> {
    column(sink, name)
        .into_iter()
        .flat_map(|c| c.as_boolean().iter().collect::<Vec<_>>())
        .collect()
}

const ORDERS: &str = r#"
[[sources.erp.streams]]
name = "orders"
table = "orders"
primary_key = "id"
cursor = "updated_at"
"#;

#[tokio::test]
async fn postgres_types_arrive_typed_exact_and_in_utc() {
    let servers = TestServers::start();
    let db = servers.postgres();
    db.sql(
        "CREATE TABLE things (
           id integer PRIMARY KEY, big bigint, small smallint, price numeric(12,2),
           ratio numeric, score double precision, active boolean, name text,
           seen_at timestamptz, local_at timestamp, due date, doc jsonb, tags text[],
           ref uuid, note varchar(20));
         INSERT INTO things VALUES
           (1, 9007199254740993, -3, 1234567890.12, 0.1234567891, 2.5, true, 'Zoë',
            '2024-06-03 07:15:22.123456-07', '2024-06-03 07:15:22', '2024-02-29',
            '{\"a\": [1, 2], \"b\": null}', ARRAY['x','y'],
            'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'n'),
           (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    );
    let dir = tempfile::tempdir().unwrap();
    let s = source(
        &db,
        dir.path(),
        "",
        "[[sources.erp.streams]]\nname = \"things\"\ntable = \"public.things\"\nprimary_key = \"id\"\n",
    );
    let c = connector(&s);
    let (r, sink) = support::read(c.as_ref(), "things", None).await;
    r.unwrap();
    assert_eq!(sink.rows(), 2);
    assert_eq!(sink.data_type("id"), DataType::Int64);
    assert_eq!(sink.data_type("price"), DataType::Decimal128(12, 2));
    assert_eq!(sink.data_type("ratio"), DataType::Decimal128(38, 10));
    assert_eq!(sink.data_type("score"), DataType::Float64);
    assert_eq!(sink.data_type("due"), DataType::Date32);
    // Past 2^53: exact, not a float.
    assert_eq!(sink.ints("big")[0], 9007199254740993);
    assert_eq!(
        sink.decimals("price"),
        [Some("1234567890.12".to_string()), None]
    );
    assert_eq!(sink.decimals("ratio")[0].as_deref(), Some("0.1234567891"));
    assert_eq!(
        sink.instants("seen_at")[0].as_deref(),
        Some("2024-06-03T14:15:22.123Z"),
        "timestamptz is stored as the UTC instant"
    );
    assert_eq!(
        sink.instants("local_at")[0].as_deref(),
        Some("2024-06-03T07:15:22.000Z"),
        "a timestamp without zone keeps its wall clock"
    );
    let due = column(&sink, "due")[0]
        .as_primitive::<Date32Type>()
        .value(0);
    assert_eq!(
        chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Days::new(due as u64),
        chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
    );
    assert_eq!(
        column(&sink, "score")[0]
            .as_primitive::<Float64Type>()
            .value(0),
        2.5
    );
    assert_eq!(bools(&sink, "active"), [Some(true), None]);
    let strings = |n: &str| sink.strings(n);
    assert_eq!(strings("name"), [Some("Zoë".to_string()), None]);
    let doc: Json = serde_json::from_str(strings("doc")[0].as_deref().unwrap()).unwrap();
    assert_eq!(doc, serde_json::json!({"a": [1, 2], "b": null}));
    let tags: Json = serde_json::from_str(strings("tags")[0].as_deref().unwrap()).unwrap();
    assert_eq!(tags, serde_json::json!(["x", "y"]));
    let schema = sink.batches[0].schema();
    for json_col in ["doc", "tags"] {
        assert_eq!(
            schema
                .field_with_name(json_col)
                .unwrap()
                .metadata()
                .get(conveyor_connectors::json_arrow::JSON_TYPE_KEY)
                .map(String::as_str),
            Some("json"),
            "{json_col} is marked JSON for the warehouse"
        );
    }
    assert_eq!(
        strings("ref")[0].as_deref(),
        Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    );
    // The paging position columns never reach the batch.
    assert!(schema
        .fields()
        .iter()
        .all(|f| !f.name().starts_with("__conveyor")));
}

/// Seeds `orders` with ids 1..=n, all updated at the same base instant
/// plus id seconds.
fn seed_orders(db: &TestDatabase, n: u32) {
    db.sql(&format!(
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, total numeric(10,2),
           updated_at timestamptz NOT NULL, deleted_at timestamptz);
         INSERT INTO orders SELECT g, 'c' || g, g * 1.5, TIMESTAMPTZ '2024-01-01 00:00:00+00' + g * INTERVAL '1 second', NULL
           FROM generate_series(1, {n}) g;"
    ));
}

#[tokio::test]
async fn postgres_reads_in_keyset_chunks_and_an_incremental_sync_reads_only_what_changed() {
    let servers = TestServers::start();
    let db = servers.postgres();
    seed_orders(&db, 250);
    let dir = tempfile::tempdir().unwrap();
    let s = source(&db, dir.path(), "chunk_rows = 100", ORDERS);
    let c = connector(&s);
    let (r, first) = support::read(c.as_ref(), "orders", None).await;
    r.unwrap();
    assert_eq!(
        first
            .batches
            .iter()
            .map(RecordBatch::num_rows)
            .collect::<Vec<_>>(),
        [100, 100, 50]
    );
    assert_eq!(first.ints("id"), (1..=250).collect::<Vec<i64>>());
    assert_eq!(first.checkpoints.len(), 3, "one checkpoint per chunk");
    let state = first.checkpoints.last().unwrap().clone();
    assert_eq!(state["done"], true);

    // Nothing changed: nothing read.
    let (r, again) = support::read(c.as_ref(), "orders", Some(state.clone())).await;
    r.unwrap();
    // The last row is at the cursor itself (>=), so it is read again once.
    assert_eq!(again.ints("id"), [250]);

    db.sql(
        "UPDATE orders SET total = 99.99, updated_at = TIMESTAMPTZ '2024-02-01 00:00:00+00' WHERE id IN (7, 140);
         INSERT INTO orders VALUES (251, 'new', 1.00, TIMESTAMPTZ '2024-02-01 00:00:01+00', NULL);",
    );
    let (r, next) = support::read(c.as_ref(), "orders", Some(state)).await;
    r.unwrap();
    assert_eq!(next.ints("id"), [250, 7, 140, 251]);
    assert_eq!(
        next.decimals("total")[1..3],
        [Some("99.99".to_string()), Some("99.99".to_string())]
    );
}

/// A sink that fails on its `fail_at`-th batch, like a crash after the
/// checkpoints before it were committed.
struct FailingSink {
    inner: Sink,
    fail_at: usize,
    seen: usize,
}

#[async_trait::async_trait]
impl RecordSink for FailingSink {
    async fn batch(&mut self, batch: RecordBatch) -> Result<(), ConnectorError> {
        self.seen += 1;
        if self.seen == self.fail_at {
            return Err(ConnectorError::new(ErrorKind::Host, "the host went away"));
        }
        self.inner.batch(batch).await
    }
    async fn checkpoint(&mut self, state: Json) -> Result<(), ConnectorError> {
        self.inner.checkpoint(state).await
    }
}

#[tokio::test]
async fn an_interrupted_read_resumes_after_its_last_checkpoint_losing_and_repeating_nothing() {
    let servers = TestServers::start();
    let db = servers.postgres();
    seed_orders(&db, 450);
    let dir = tempfile::tempdir().unwrap();
    let s = source(&db, dir.path(), "chunk_rows = 100", ORDERS);
    let c = connector(&s);
    let mut failing = FailingSink {
        inner: Sink::default(),
        fail_at: 3,
        seen: 0,
    };
    let r = c
        .read("orders", None, &mut failing, &CancelFlag::default())
        .await;
    assert!(r.is_err(), "the sink's failure ends the read");
    let kept = failing.inner;
    assert_eq!(kept.rows(), 200);
    let state = kept.checkpoints.last().unwrap().clone();
    assert_eq!(state["done"], false);
    let (r, rest) = support::read(c.as_ref(), "orders", Some(state)).await;
    r.unwrap();
    let mut all = kept.ints("id");
    all.extend(rest.ints("id"));
    assert_eq!(
        all,
        (1..=450).collect::<Vec<i64>>(),
        "every row once, in order"
    );
}

#[tokio::test]
async fn a_soft_deleted_row_arrives_marked_deleted() {
    let servers = TestServers::start();
    let db = servers.postgres();
    seed_orders(&db, 3);
    db.sql("UPDATE orders SET deleted_at = now(), updated_at = now() WHERE id = 2;");
    let dir = tempfile::tempdir().unwrap();
    let streams = format!("{ORDERS}soft_delete = \"deleted_at\"\n");
    let s = source(&db, dir.path(), "", &streams);
    let (r, sink) = support::read(connector(&s).as_ref(), "orders", None).await;
    r.unwrap();
    assert_eq!(sink.ints("id"), [1, 2, 3]);
    assert_eq!(
        bools(&sink, conveyor_connectors::database::DELETED_COLUMN),
        [Some(false), Some(true), Some(false)]
    );
}

#[tokio::test]
async fn a_query_stream_with_a_composite_key_and_a_column_added_and_dropped_upstream() {
    let servers = TestServers::start();
    let db = servers.postgres();
    db.sql(
        "CREATE TABLE lines (invoice int NOT NULL, line int NOT NULL, amount numeric(8,2), memo text,
           PRIMARY KEY (invoice, line));
         INSERT INTO lines SELECT i, l, i + l / 100.0, 'm' FROM generate_series(1, 3) i, generate_series(1, 80) l;",
    );
    let dir = tempfile::tempdir().unwrap();
    let streams = "[[sources.erp.streams]]\nname = \"lines\"\nquery = \"SELECT * FROM lines WHERE amount > 0\"\nprimary_key = [\"invoice\", \"line\"]\n";
    let s = source(&db, dir.path(), "chunk_rows = 100", streams);
    let c = connector(&s);
    let (r, sink) = support::read(c.as_ref(), "lines", None).await;
    r.unwrap();
    assert_eq!(sink.rows(), 240);
    let keys: Vec<(i64, i64)> = sink
        .ints("invoice")
        .into_iter()
        .zip(sink.ints("line"))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted, "each key once, in key order across chunks");

    db.sql("ALTER TABLE lines DROP COLUMN memo; ALTER TABLE lines ADD COLUMN region text DEFAULT 'eu';");
    let (r, after) = support::read(c.as_ref(), "lines", None).await;
    r.unwrap();
    let schema = after.batches[0].schema();
    assert!(schema.field_with_name("memo").is_err());
    assert_eq!(after.strings("region")[0].as_deref(), Some("eu"));
}

#[tokio::test]
async fn a_null_in_the_cursor_is_a_clear_error_not_a_silent_stop() {
    let servers = TestServers::start();
    let db = servers.postgres();
    db.sql(
        "CREATE TABLE orders (id int PRIMARY KEY, updated_at timestamptz);
         INSERT INTO orders VALUES (1, now()), (2, NULL);",
    );
    let dir = tempfile::tempdir().unwrap();
    let s = source(&db, dir.path(), "", ORDERS);
    let (r, _) = support::read(connector(&s).as_ref(), "orders", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Data);
    assert!(
        e.message
            .contains("1 rows have NULL in `updated_at`, the stream's cursor"),
        "{e}"
    );
}

#[tokio::test]
async fn a_wrong_password_or_a_missing_table_says_so_and_never_shows_the_secret() {
    let servers = TestServers::start();
    let mut db = servers.postgres();
    seed_orders(&db, 1);
    db.password = "wr0ng/p@ss+word=".into();
    let dir = tempfile::tempdir().unwrap();
    let s = source(&db, dir.path(), "", ORDERS);
    let (r, sink) = support::read(connector(&s).as_ref(), "orders", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.message.contains("password authentication failed"), "{e}");
    assert!(e.message.contains(&db.user), "says who: {e}");
    for form in [
        db.password.clone(),
        url::form_urlencoded::byte_serialize(db.password.as_bytes()).collect::<String>(),
        base64::engine::general_purpose::STANDARD.encode(&db.password),
    ] {
        assert!(!e.message.contains(&form), "{form} in {e}");
    }
    assert_eq!(sink.rows(), 0);

    let db = servers.postgres();
    let s = source(&db, dir.path(), "", ORDERS);
    let (r, _) = support::read(connector(&s).as_ref(), "orders", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{e}");
    assert!(
        e.message.contains("relation \"orders\" does not exist"),
        "{e}"
    );
}

#[tokio::test]
async fn mariadb_types_and_an_incremental_sync() {
    let servers = TestServers::start();
    let db = servers.mariadb();
    db.sql(
        "CREATE TABLE orders (id bigint PRIMARY KEY, big bigint unsigned, total decimal(10,2),
           active boolean, doc json, placed date, updated_at datetime(6) NOT NULL, stamped timestamp(3) NULL,
           note varchar(20));
         SET time_zone = '+02:00';
         INSERT INTO orders VALUES
           (1, 18446744073709551615, 12.34, 1, '{\"k\": 1}', '2024-02-29', '2024-01-01 00:00:01', '2024-06-03 16:15:22.123', 'Zoë'),
           (2, NULL, NULL, NULL, NULL, NULL, '2024-01-01 00:00:02', NULL, NULL);",
    );
    let dir = tempfile::tempdir().unwrap();
    let s = source(&db, dir.path(), "", ORDERS);
    let c = connector(&s);
    let (r, sink) = support::read(c.as_ref(), "orders", None).await;
    r.unwrap();
    assert_eq!(sink.ints("id"), [1, 2]);
    assert_eq!(sink.data_type("big"), DataType::Decimal128(20, 0));
    assert_eq!(
        sink.decimals("big")[0].as_deref(),
        Some("18446744073709551615")
    );
    assert_eq!(sink.decimals("total")[0].as_deref(), Some("12.34"));
    assert_eq!(bools(&sink, "active"), [Some(true), None]);
    assert_eq!(
        sink.instants("stamped")[0].as_deref(),
        Some("2024-06-03T14:15:22.123Z"),
        "a TIMESTAMP written at +02:00 is the UTC instant"
    );
    assert_eq!(sink.strings("note")[0].as_deref(), Some("Zoë"));
    let state = sink.checkpoints.last().unwrap().clone();

    db.sql("UPDATE orders SET total = 1.00, updated_at = '2024-03-01 00:00:00' WHERE id = 1;");
    let (r, next) = support::read(c.as_ref(), "orders", Some(state)).await;
    r.unwrap();
    assert_eq!(next.ints("id"), [2, 1]);
    assert_eq!(next.decimals("total")[1].as_deref(), Some("1.00"));
}

#[tokio::test]
async fn mariadb_wrong_password_is_an_auth_error_without_the_secret() {
    let servers = TestServers::start();
    let mut db = servers.mariadb();
    db.password = "n0t-the-password".into();
    let dir = tempfile::tempdir().unwrap();
    let s = source(&db, dir.path(), "", ORDERS);
    let (r, _) = support::read(connector(&s).as_ref(), "orders", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.message.contains("Access denied"), "{e}");
    assert!(!e.message.contains("n0t-the-password"), "{e}");
}

#[tokio::test]
async fn postgres_over_tls_encrypts_and_verify_full_checks_the_certificate() {
    let servers = TestServers::start();
    let db = servers.postgres();
    seed_orders(&db, 3);
    let dir = tempfile::tempdir().unwrap();
    let read_with = |extra: String| {
        let s = source(&db, dir.path(), &extra, ORDERS);
        async move { support::read(connector(&s).as_ref(), "orders", None).await }
    };
    let (r, sink) = read_with("tls = \"require\"".into()).await;
    r.unwrap();
    assert_eq!(sink.rows(), 3);
    let ca = servers.postgres_ca.display().to_string();
    let (r, sink) = read_with(format!("tls = \"verify-full\"\nca_file = \"{ca}\"")).await;
    r.unwrap();
    assert_eq!(sink.rows(), 3);
    // The self-signed certificate is in no system store: refused, clearly.
    let (r, sink) = read_with("tls = \"verify-full\"".into()).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{e}");
    assert!(e.message.contains("TLS failed"), "{e}");
    assert!(!e.message.contains(&db.password), "{e}");
    assert_eq!(sink.rows(), 0);
}
