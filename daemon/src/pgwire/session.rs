//! One client connection: the simple and extended query protocols on top
//! of [`catalog::plan`] (what each statement is) and [`exec::Readers`]
//! (running reads). Session statements (`SET`, `BEGIN`…) are answered here;
//! everything else is a read that the guard checks on the reader.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use futures::Sink;
use pgwire::api::cancel::CancelHandler;
use pgwire::api::portal::{Format, Portal, PortalExecutionState};
use pgwire::api::query::{send_query_response, ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    CopyResponse, DataRowEncoder, DescribePortalResponse, DescribeStatementResponse, FieldFormat,
    FieldInfo, QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{
    ClientInfo, ClientPortalStore, ErrorHandler, PgWireConnectionState, Type, DEFAULT_NAME,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult, SEVERITY_FATAL};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::copy::CopyData;
use pgwire::messages::extendedquery::Execute;
use pgwire::messages::startup::SecretKey;
use pgwire::messages::PgWireBackendMessage;

use super::catalog::{self, Answer, Plan, Settings};
use super::exec::{self, error, Msg, Output, Param, Readers};
use super::types::Column;
use crate::warehouse::Warehouse;

/// Shared by every connection: the warehouse and who may be cancelled.
pub struct Engine {
    wh: Arc<Warehouse>,
    sessions: Mutex<HashMap<i32, (SecretKey, Weak<Session>)>>,
}

/// One connection's state, kept in pgwire's per-connection extensions.
pub struct Session {
    readers: Readers,
    settings: Mutex<Settings>,
    engine: Weak<Engine>,
    pid: i32,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(engine) = self.engine.upgrade() {
            engine
                .sessions
                .lock()
                .expect("sessions lock")
                .remove(&self.pid);
        }
        // A read still running for a client that left is not wanted.
        self.readers.cancel();
    }
}

impl Engine {
    pub fn new(wh: Arc<Warehouse>) -> Arc<Engine> {
        Arc::new(Engine {
            wh,
            sessions: Mutex::default(),
        })
    }

    fn session<C: ClientInfo + ?Sized>(self: &Arc<Self>, client: &C) -> Arc<Session> {
        if let Some(s) = client.session_extensions().get::<Session>() {
            return s;
        }
        let (pid, key) = client.pid_and_secret_key();
        let session = client.session_extensions().get_or_insert_with(|| Session {
            readers: Readers::new(self.wh.clone(), pid),
            settings: Mutex::default(),
            engine: Arc::downgrade(self),
            pid,
        });
        self.sessions
            .lock()
            .expect("sessions lock")
            .insert(pid, (key, Arc::downgrade(&session)));
        session
    }
}

/// Cancel requests arrive on a connection of their own, with the pid and
/// key the session was given at login; they interrupt its DuckDB reads.
pub struct Cancels(pub Arc<Engine>);

#[async_trait]
impl CancelHandler for Cancels {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let session = {
            let sessions = self.0.sessions.lock().expect("sessions lock");
            sessions
                .get(&request.pid)
                .filter(|(key, _)| key.eq_value(&request.secret_key))
                .and_then(|(_, s)| s.upgrade())
        };
        if let Some(s) = session {
            tracing::info!(
                pid = request.pid,
                "Postgres-wire query cancelled by its client"
            );
            s.readers.cancel();
        }
    }
}

/// Login failures say which user failed, as Postgres does, and nothing
/// else; every error is logged without the statement's parameters.
pub struct Errors;

impl ErrorHandler for Errors {
    fn on_error<C>(&self, client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        let user = client.metadata().get("user").cloned().unwrap_or_default();
        if error.code() == "28P01" {
            tracing::info!(%user, client = %client.socket_addr(), "Postgres-wire login refused");
            *error = PgWireError::UserError(Box::new(ErrorInfo::new(
                SEVERITY_FATAL.to_owned(),
                "28P01".to_owned(),
                format!("password authentication failed for user \"{user}\""),
            )));
        } else {
            tracing::debug!(%user, code = error.code(), error = %error, "Postgres-wire error");
        }
    }
}

/// A parsed statement of the extended protocol.
#[derive(Debug, Clone)]
pub struct Stmt {
    plan: Plan,
    params: usize,
}

pub struct Parser(Arc<Engine>);

fn user_of<C: ClientInfo + ?Sized>(client: &C) -> String {
    client.metadata().get("user").cloned().unwrap_or_default()
}

fn fail(e: exec::Failure) -> PgWireError {
    PgWireError::UserError(e)
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Stmt;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Stmt>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        tracing::debug!(sql, "Postgres-wire parse");
        let session = self.0.session(client);
        let pieces = catalog::split_statements(sql);
        let piece = match pieces.as_slice() {
            [] => return Ok(None),
            [one] => *one,
            _ => {
                return Err(fail(error(
                    "42601",
                    "cannot insert multiple commands into a prepared statement",
                )))
            }
        };
        let settings = session.settings.lock().expect("settings lock").clone();
        let plan = catalog::plan(piece, &user_of(client), &settings);
        let params = match &plan {
            Plan::Refuse { code, message } => return Err(fail(error(code, message.clone()))),
            Plan::CopyOut { .. } => {
                return Err(fail(error(
                    "0A000",
                    "COPY … TO STDOUT is served over the simple query protocol only",
                )))
            }
            Plan::Sql(s) => session.readers.check(s.clone()).await.map_err(fail)?,
            Plan::Empty => return Ok(None),
            Plan::Answer(_) => 0,
        };
        Ok(Some(Stmt { plan, params }))
    }

    fn get_parameter_types(&self, stmt: &Stmt) -> PgWireResult<Vec<Type>> {
        Ok(vec![Type::TEXT; stmt.params])
    }

    fn get_result_schema(
        &self,
        _stmt: &Stmt,
        _format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(vec![])
    }
}

/// The query handlers of every connection.
pub struct Handler {
    engine: Arc<Engine>,
    parser: Arc<Parser>,
}

impl Handler {
    pub fn new(engine: Arc<Engine>) -> Handler {
        Handler {
            parser: Arc::new(Parser(engine.clone())),
            engine,
        }
    }
}

fn fields(columns: &[Column]) -> Arc<Vec<FieldInfo>> {
    Arc::new(columns.iter().map(Column::field).collect())
}

/// The rows a reader sends, as pgwire's row stream.
fn row_stream(
    rx: tokio::sync::mpsc::Receiver<Msg>,
) -> BoxStream<'static, PgWireResult<pgwire::messages::data::DataRow>> {
    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) })
        .flat_map(|m| match m {
            Msg::Rows(rows) => stream::iter(rows.into_iter().map(Ok)).boxed(),
            Msg::Failed(e) => stream::once(async move { Err(fail(e)) }).boxed(),
            Msg::Columns(_) | Msg::Lines(_) => stream::empty().boxed(),
        })
        .boxed()
}

/// Result formats of a portal as the reader takes them.
fn formats(format: &Format) -> Vec<FieldFormat> {
    match format {
        Format::UnifiedText => vec![FieldFormat::Text],
        Format::UnifiedBinary => vec![FieldFormat::Binary],
        Format::Individual(codes) => codes.iter().map(|c| FieldFormat::from(*c)).collect(),
    }
}

/// The parameters a portal binds, as DuckDB values.
fn portal_params(portal: &Portal<Stmt>) -> PgWireResult<Vec<Param>> {
    let declared = &portal.statement.parameter_types;
    if portal.parameters.len() != portal.statement.statement.params {
        return Err(fail(error(
            "08P01",
            format!(
                "bind message supplies {} parameters, but the statement requires {}",
                portal.parameters.len(),
                portal.statement.statement.params
            ),
        )));
    }
    portal
        .parameters
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let ty = declared
                .get(i)
                .cloned()
                .flatten()
                .filter(|t| *t != Type::UNKNOWN);
            exec::param(
                p.as_deref(),
                ty.as_ref(),
                portal.parameter_format.is_binary(i),
            )
            .map_err(fail)
        })
        .collect()
}

/// A one-column text answer (`SHOW`).
fn text_rows(
    names: &[&str],
    rows: Vec<Vec<String>>,
    format: &Format,
) -> PgWireResult<QueryResponse> {
    let schema: Arc<Vec<FieldInfo>> = Arc::new(
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                FieldInfo::new(n.to_string(), None, None, Type::TEXT, format.format_for(i))
            })
            .collect(),
    );
    let mut encoded = Vec::with_capacity(rows.len());
    let mut encoder = DataRowEncoder::new(schema.clone());
    for row in rows {
        for v in row {
            encoder.encode_field(&v)?;
        }
        encoded.push(Ok(encoder.take_row()));
    }
    Ok(QueryResponse::new(schema, stream::iter(encoded)))
}

fn answer_fields(answer: &Answer, format: &Format) -> Vec<FieldInfo> {
    let names: Vec<String> = match answer {
        Answer::Show { name, .. } => vec![name.clone()],
        Answer::ShowAll(_) => vec!["name".into(), "setting".into()],
        _ => vec![],
    };
    names
        .into_iter()
        .enumerate()
        .map(|(i, n)| FieldInfo::new(n, None, None, Type::TEXT, format.format_for(i)))
        .collect()
}

impl Handler {
    /// The response to a statement answered here.
    fn answer(
        &self,
        session: &Session,
        answer: &Answer,
        format: &Format,
    ) -> PgWireResult<Response> {
        Ok(match answer {
            Answer::Begin => Response::TransactionStart(Tag::new("BEGIN")),
            Answer::Commit => Response::TransactionEnd(Tag::new("COMMIT")),
            Answer::Rollback => Response::TransactionEnd(Tag::new("ROLLBACK")),
            Answer::Tag(tag) => Response::Execution(Tag::new(tag)),
            Answer::Set { name, value } => {
                session
                    .settings
                    .lock()
                    .expect("settings lock")
                    .insert(name.clone(), value.clone());
                Response::Execution(Tag::new("SET"))
            }
            Answer::Reset(name) => {
                let mut settings = session.settings.lock().expect("settings lock");
                match name {
                    Some(n) => {
                        settings.remove(n);
                    }
                    None => settings.clear(),
                }
                Response::Execution(Tag::new("RESET"))
            }
            Answer::Show { name, value } => Response::Query(text_rows(
                &[name.as_str()],
                vec![vec![value.clone()]],
                format,
            )?),
            Answer::ShowAll(all) => Response::Query(text_rows(
                &["name", "setting"],
                all.iter()
                    .map(|(n, v)| vec![n.clone(), v.clone()])
                    .collect(),
                format,
            )?),
        })
    }

    /// Runs a read and returns its streaming response.
    async fn read(
        &self,
        session: &Session,
        sql: &str,
        params: Vec<Param>,
        result_format: Option<Vec<FieldFormat>>,
    ) -> PgWireResult<QueryResponse> {
        let (columns, rx) = session
            .readers
            .run(sql.to_string(), params, Output::Rows(result_format))
            .await
            .map_err(fail)?;
        Ok(QueryResponse::new(fields(&columns), row_stream(rx)))
    }

    async fn copy_out(
        &self,
        session: &Session,
        query: &str,
        csv: bool,
        header: bool,
    ) -> PgWireResult<Response> {
        let (columns, rx) = session
            .readers
            .run(query.to_string(), vec![], Output::Copy { csv })
            .await
            .map_err(fail)?;
        let head: Vec<PgWireResult<CopyData>> = if csv && header {
            vec![Ok(CopyData::new(super::types::copy_header(&columns)))]
        } else {
            vec![]
        };
        let lines = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) })
            .flat_map(|m| match m {
                Msg::Lines(lines) => {
                    stream::iter(lines.into_iter().map(|l: Bytes| Ok(CopyData::new(l)))).boxed()
                }
                Msg::Failed(e) => stream::once(async move { Err(fail(e)) }).boxed(),
                Msg::Columns(_) | Msg::Rows(_) => stream::empty().boxed(),
            });
        Ok(Response::CopyOut(CopyResponse::new(
            0,
            columns.len(),
            stream::iter(head).chain(lines),
        )))
    }
}

#[async_trait]
impl SimpleQueryHandler for Handler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        tracing::debug!(sql = query, "Postgres-wire query");
        let session = self.engine.session(client);
        let user = user_of(client);
        let settings = session.settings.lock().expect("settings lock").clone();
        let plans: Vec<Plan> = catalog::split_statements(query)
            .into_iter()
            .map(|piece| catalog::plan(piece, &user, &settings))
            .collect();
        if plans.len() > 1 {
            // Several statements in one message run only if every one of
            // them would: none runs when one is refused.
            for plan in &plans {
                match plan {
                    Plan::Refuse { code, message } => {
                        return Ok(vec![Response::Error(error(code, message.clone()))])
                    }
                    Plan::CopyOut { .. } => {
                        return Ok(vec![Response::Error(error(
                            "0A000",
                            "send COPY … TO STDOUT on its own",
                        ))])
                    }
                    Plan::Sql(sql) => {
                        if let Err(e) = session.readers.check(sql.clone()).await {
                            return Ok(vec![Response::Error(e)]);
                        }
                    }
                    Plan::Empty | Plan::Answer(_) => {}
                }
            }
        }
        let alone = plans.len() == 1;
        let mut out = Vec::with_capacity(plans.len());
        for plan in plans {
            let response = match plan {
                Plan::Empty => Ok(Response::EmptyQuery),
                Plan::Answer(a) => self.answer(&session, &a, &Format::UnifiedText),
                Plan::Refuse { code, message } => Err(fail(error(code, &message))),
                Plan::CopyOut { query, csv, header } => {
                    self.copy_out(&session, &query, csv, header).await
                }
                Plan::Sql(sql) => match self.read(&session, &sql, vec![], None).await {
                    // One statement streams; of several, each is read to
                    // the end before the next one starts.
                    Ok(r) if alone => Ok(Response::Query(r)),
                    Ok(mut r) => {
                        let mut rows = Vec::new();
                        let mut failed = None;
                        while let Some(row) = r.data_rows().next().await {
                            match row {
                                Ok(row) => rows.push(Ok(row)),
                                Err(e) => {
                                    failed = Some(e);
                                    break;
                                }
                            }
                        }
                        match failed {
                            Some(e) => Err(e),
                            None => Ok(Response::Query(QueryResponse::new(
                                r.row_schema(),
                                stream::iter(rows),
                            ))),
                        }
                    }
                    Err(e) => Err(e),
                },
            };
            match response {
                Ok(r) => out.push(r),
                Err(e) => {
                    // Postgres stops at the first failing statement.
                    out.push(Response::Error(Box::new(e.into())));
                    break;
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Handler {
    type Statement = Stmt;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    /// Streams a whole portal straight from DuckDB (pgwire's default would
    /// gather its rows first); partial fetches (`max_rows`) go the default
    /// way.
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let portal = match client.portal_store().get_portal(name) {
            Some(Entry::Value(p))
                if message.max_rows == 0 && matches!(p.statement.statement.plan, Plan::Sql(_)) =>
            {
                p
            }
            _ => return self._on_execute(client, message).await,
        };
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        let state = portal.state();
        let pending = {
            let mut state = state.lock().await;
            match std::mem::replace(&mut *state, PortalExecutionState::Finished) {
                PortalExecutionState::Suspended(r) => Some(r),
                PortalExecutionState::Initial => None,
                PortalExecutionState::Finished => {
                    drop(state);
                    return self._on_execute(client, message).await;
                }
            }
        };
        client.set_state(PgWireConnectionState::QueryInProgress);
        let response = match pending {
            Some(r) => r,
            None => match ExtendedQueryHandler::do_query(self, client, &portal, 0).await? {
                Response::Query(r) => r,
                _ => return Err(fail(error("XX000", "a read answered without rows"))),
            },
        };
        send_query_response(client, response, false).await?;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        Ok(())
    }

    async fn do_describe_statement<C>(
        &self,
        client: &mut C,
        target: &StoredStatement<Stmt>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmt = &target.statement;
        // The client's parameter types where it gave them; text otherwise
        // (DuckDB casts a text parameter to whatever the query needs).
        let params = (0..stmt.params.max(target.parameter_types.len()))
            .map(|i| {
                target
                    .parameter_types
                    .get(i)
                    .cloned()
                    .flatten()
                    .filter(|t| *t != Type::UNKNOWN)
                    .unwrap_or(Type::TEXT)
            })
            .collect();
        let fields = match &stmt.plan {
            Plan::Sql(sql) => {
                let session = self.engine.session(client);
                let (columns, _) = session
                    .readers
                    .run(sql.clone(), vec![], Output::Describe)
                    .await
                    .map_err(fail)?;
                columns.iter().map(Column::field).collect()
            }
            Plan::Answer(a) => answer_fields(a, &Format::UnifiedText),
            _ => vec![],
        };
        Ok(DescribeStatementResponse::new(params, fields))
    }

    /// Runs the portal's read to learn its columns, and keeps it running
    /// for the `Execute` that follows (so the read happens once).
    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        portal: &Portal<Stmt>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match &portal.statement.statement.plan {
            Plan::Sql(sql) => {
                let state = portal.state();
                let mut state = state.lock().await;
                if let PortalExecutionState::Suspended(r) = &*state {
                    return Ok(DescribePortalResponse::new(r.row_schema().to_vec()));
                }
                if !matches!(&*state, PortalExecutionState::Initial) {
                    return Ok(DescribePortalResponse::new(vec![]));
                }
                let session = self.engine.session(client);
                let params = portal_params(portal)?;
                let response = self
                    .read(
                        &session,
                        sql,
                        params,
                        Some(formats(&portal.result_column_format)),
                    )
                    .await?;
                let fields = response.row_schema().to_vec();
                *state = PortalExecutionState::Suspended(response);
                Ok(DescribePortalResponse::new(fields))
            }
            Plan::Answer(a) => Ok(DescribePortalResponse::new(answer_fields(
                a,
                &portal.result_column_format,
            ))),
            _ => Ok(DescribePortalResponse::new(vec![])),
        }
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Stmt>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = self.engine.session(client);
        match &portal.statement.statement.plan {
            Plan::Sql(sql) => {
                let params = portal_params(portal)?;
                let r = self
                    .read(
                        &session,
                        sql,
                        params,
                        Some(formats(&portal.result_column_format)),
                    )
                    .await?;
                Ok(Response::Query(r))
            }
            Plan::Answer(a) => self.answer(&session, a, &portal.result_column_format),
            Plan::Empty => Ok(Response::EmptyQuery),
            Plan::Refuse { code, message } => Err(fail(error(code, message.clone()))),
            Plan::CopyOut { .. } => Err(fail(error(
                "0A000",
                "COPY is served over the simple query protocol only",
            ))),
        }
    }
}
