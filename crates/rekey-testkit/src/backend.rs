//! Owns which store a test's servers use. Every test runs once per backend ([`backend_tests!`]): on
//! SQLite (a file in the data directory) always, and on PostgreSQL (a new database on the server
//! [`POSTGRES_URL_VAR`] names, dropped afterwards). A PostgreSQL run without a server fails, so a
//! missing server never passes as a silent skip.

use std::future::Future;

use sqlx::Connection as _;

/// The server that PostgreSQL tests create their databases on, e.g.
/// `postgres://postgres@127.0.0.1:5432/postgres`.
pub const POSTGRES_URL_VAR: &str = "REKEY_TEST_POSTGRES_URL";

/// Set to `sqlite` to leave every PostgreSQL run out on purpose (each says so).
pub const BACKENDS_VAR: &str = "REKEY_TEST_BACKENDS";

/// The store a test's servers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

tokio::task_local! {
    static BACKEND: Backend;
}

impl Backend {
    /// The backend of the running test.
    pub fn current() -> Backend {
        BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite)
    }

    /// Runs a test body with this backend. A PostgreSQL run needs a server ([`postgres_wanted`]).
    pub async fn run(self, test: impl Future<Output = ()>) {
        if self == Backend::Postgres && !postgres_wanted() {
            return;
        }
        BACKEND.scope(self, test).await
    }
}

/// Defines, for each named `async fn` test body in the module, a module of the same name with two
/// tests: `sqlite` and `postgres` (see [`Backend::run`]). The calling crate needs tokio.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                $crate::Backend::Sqlite.run(super::$name()).await
            }
            #[tokio::test]
            async fn postgres() {
                $crate::Backend::Postgres.run(super::$name()).await
            }
        }
    )*};
}

/// Whether a PostgreSQL run should go ahead: yes when [`POSTGRES_URL_VAR`] names a server. Without
/// one the test fails, so a missing server never passes as a silent skip, unless
/// `REKEY_TEST_BACKENDS=sqlite` asks for SQLite only (then it says it did nothing).
pub fn postgres_wanted() -> bool {
    if postgres_admin_url().is_some() {
        return true;
    }
    let sqlite_only = std::env::var(BACKENDS_VAR).is_ok_and(|v| v.trim() == "sqlite");
    assert!(
        sqlite_only,
        "{POSTGRES_URL_VAR} is not set: start a server with `scripts/pg-cluster start DIR` and set \
         it to the URL printed, or set {BACKENDS_VAR}=sqlite to leave PostgreSQL out on purpose \
         (scripts/test does the former by itself)"
    );
    eprintln!("{BACKENDS_VAR}=sqlite: the PostgreSQL run of this test did nothing");
    false
}

pub fn postgres_admin_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|u| !u.trim().is_empty())
}

/// `url` with its database name replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[after_scheme..]
        .find('/')
        .map(|i| after_scheme + i)
        .unwrap_or(base.len());
    format!("{}/{database}{query}", &base[..host_end])
}

/// A database of its own on the test PostgreSQL server, dropped with the value.
pub struct TestDatabase {
    admin: String,
    name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create(admin: &str) -> Self {
        let name = format!("rekey_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
        Self {
            admin: admin.to_string(),
            url: with_database(admin, &name),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread of its own.
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_test_database_url_keeps_the_server_and_query_and_swaps_the_name() {
        assert_eq!(
            super::with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(
            super::with_database("postgres://h", "t1"),
            "postgres://h/t1"
        );
    }
}
