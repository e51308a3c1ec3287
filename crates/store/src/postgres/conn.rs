//! Connections to PostgreSQL: a small pool, each connection with its prepared statements.
//!
//! Owns the sockets and the tasks that drive them. Every statement is prepared once per
//! connection and then run by name, so a statement costs one round trip, not two. Must not: hold
//! a connection across anything but its own statements (callers take one, use it, drop it).
//!
//! Invariant: a connection goes back to the pool only while it is open; a dropped transaction
//! rolls back before the connection is used again (tokio-postgres queues the rollback first).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{Client, GenericClient, Row, Statement};

use super::tls::Database;

use crate::{PoolUsage, StoreError};

/// One connection and the statements prepared on it, by their SQL text.
pub(super) struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    #[expect(
        clippy::disallowed_methods,
        reason = "the task drives this connection and ends when its client is dropped"
    )]
    pub(super) async fn connect(config: &Database) -> Result<Conn, StoreError> {
        let (client, connection) = config.connect().await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %StoreError::from(e), "store: PostgreSQL connection ended");
            }
        });
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }

    pub(super) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Statements outside a transaction: each commits on its own.
    pub(super) fn session(&mut self) -> Session<'_, Client> {
        Session {
            client: &self.client,
            statements: &mut self.statements,
        }
    }

    /// The client, to open a transaction on, and the statement cache to run statements with.
    pub(super) fn parts(&mut self) -> (&mut Client, &mut HashMap<&'static str, Statement>) {
        (&mut self.client, &mut self.statements)
    }
}

/// Runs cached statements on a client or transaction.
pub(super) struct Session<'a, C> {
    client: &'a C,
    statements: &'a mut HashMap<&'static str, Statement>,
}

impl<'a, C: GenericClient + Sync> Session<'a, C> {
    pub(super) fn new(client: &'a C, statements: &'a mut HashMap<&'static str, Statement>) -> Self {
        Session { client, statements }
    }

    /// The client, for running prepared statements concurrently (pipelined on one connection).
    pub(super) fn client(&self) -> &'a C {
        self.client
    }

    pub(super) async fn prepare(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    pub(super) async fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let statement = self.prepare(sql).await?;
        Ok(self.client.query(&statement, params).await?)
    }

    pub(super) async fn query_one(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, StoreError> {
        let statement = self.prepare(sql).await?;
        Ok(self.client.query_one(&statement, params).await?)
    }

    pub(super) async fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let statement = self.prepare(sql).await?;
        Ok(self.client.query_opt(&statement, params).await?)
    }

    pub(super) async fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let statement = self.prepare(sql).await?;
        Ok(self.client.execute(&statement, params).await?)
    }
}

/// A few connections shared by reads and catalog writes; the group commit has its own.
pub(super) struct Pool {
    config: Database,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
    size: usize,
}

impl Pool {
    pub(super) fn new(config: Database, size: usize) -> Pool {
        Pool {
            config,
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Semaphore::new(size),
            size,
        }
    }

    /// How many connections are idle and taken now. A taken permit is a connection in use, or
    /// one being opened for a caller; idle connections that broke are counted until the next
    /// [`Pool::get`] drops them.
    pub(super) fn usage(&self) -> PoolUsage {
        let in_use = self.size.saturating_sub(self.permits.available_permits());
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        PoolUsage {
            idle: idle as u64,
            in_use: in_use as u64,
            max: self.size as u64,
        }
    }

    /// An open connection: an idle one, or a new one if none is idle (or the idle ones broke).
    pub(super) async fn get(&self) -> Result<Pooled<'_>, StoreError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let idle = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            std::iter::from_fn(|| idle.pop()).find(|conn| !conn.is_closed())
        };
        let conn = match idle {
            Some(conn) => conn,
            None => Conn::connect(&self.config).await?,
        };
        Ok(Pooled {
            conn: Some(conn),
            pool: self,
            _permit: permit,
        })
    }
}

/// A connection taken from the pool; it goes back when dropped.
pub(super) struct Pooled<'a> {
    conn: Option<Conn>,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        // Present from creation until drop.
        self.conn.as_ref().expect("pooled connection")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("pooled connection")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take().filter(|c| !c.is_closed()) {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
        }
    }
}

/// A `u64` as PostgreSQL's `bigint`; nothing switchyard stores comes near the limit, and a
/// value past it (a due time of "never") is as good as the largest.
pub(super) fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Reads a column, failing (not panicking) when the schema does not match the code.
pub(super) fn col<'r, T: FromSql<'r>>(row: &'r Row, index: usize) -> Result<T, StoreError> {
    Ok(row.try_get(index)?)
}

/// Reads a `bigint` column that holds a `u64` (or a smaller unsigned integer).
pub(super) fn unsigned<T: TryFrom<i64>>(row: &Row, index: usize) -> Result<T, StoreError> {
    let value: i64 = col(row, index)?;
    T::try_from(value).map_err(|_| out_of_range(row, index, value))
}

pub(super) fn unsigned_opt<T: TryFrom<i64>>(
    row: &Row,
    index: usize,
) -> Result<Option<T>, StoreError> {
    let value: Option<i64> = col(row, index)?;
    value
        .map(|v| T::try_from(v).map_err(|_| out_of_range(row, index, v)))
        .transpose()
}

fn out_of_range(row: &Row, index: usize, value: i64) -> StoreError {
    StoreError::Corrupt {
        table: "postgres",
        detail: format!(
            "column {} holds {value}, out of range",
            row.columns().get(index).map_or("?", |c| c.name())
        ),
    }
}
