//! A fresh PostgreSQL schema per test, in the database at `SWITCHYARD_TEST_POSTGRES`.
//!
//! It owns the schema's life: created on [`TestDatabase::create`], dropped (with everything in
//! it) when the value is dropped, even while a test unwinds. It knows nothing of switchyard's
//! tables: a store or a server reaches the schema through [`TestDatabase::url`], which makes it
//! every connection's `search_path`. Invariant: with the variable set, an unreachable server
//! fails the test; without it (and no server at the default URL), the test is skipped, saying so.

/// Where a developer's PostgreSQL usually is when the variable is not set.
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// One test's schema in the test database.
pub struct TestDatabase {
    /// The database's URL, without the schema: for administrative connections.
    pub base: String,
    /// This test's schema, unique to it so that tests run in parallel on one database.
    pub schema: String,
}

impl TestDatabase {
    /// `None` (after saying so) when no database is configured and none answers.
    pub async fn create() -> Option<TestDatabase> {
        let configured = std::env::var("SWITCHYARD_TEST_POSTGRES").ok();
        let base = configured
            .clone()
            .unwrap_or_else(|| DEFAULT_URL.to_string());
        let client = match connect(&base).await {
            Ok(client) => client,
            Err(e) if configured.is_none() => {
                eprintln!(
                    "skipped: no PostgreSQL at {base} ({e}); set SWITCHYARD_TEST_POSTGRES to run the PostgreSQL tests"
                );
                return None;
            }
            Err(e) => panic!("SWITCHYARD_TEST_POSTGRES={base} is unreachable: {e}"),
        };
        let schema = format!("switchyard_test_{:016x}", fastrand::u64(..));
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        Some(TestDatabase { base, schema })
    }

    /// The URL of the database with this test's schema as every connection's `search_path`.
    pub fn url(&self) -> String {
        let separator = if self.base.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-csearch_path%3D{}",
            self.base, self.schema
        )
    }

    /// This test's URL with more parameters.
    pub fn url_with(&self, params: &str) -> String {
        format!("{}&{params}", self.url())
    }

    /// A connection to the database outside the schema, for what the test checks behind the
    /// back of the code under test.
    pub async fn admin(&self) -> tokio_postgres::Client {
        connect(&self.base).await.unwrap()
    }
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (base, schema) = (self.base.clone(), self.schema.clone());
        // Drop cannot await; a thread with its own runtime can, even while a test unwinds.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let client = connect(&base).await?;
                client
                    .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                    .await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test schema {}: {e}", self.schema);
        }
    }
}
