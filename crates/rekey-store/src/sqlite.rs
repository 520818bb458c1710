//! The embedded SQLite backend: one file in WAL mode with `synchronous=FULL`, so a committed change
//! survives a crash. Writes go through a pool of one connection, which serializes them in-process
//! (no `SQLITE_BUSY` races between our own writers); reads use a separate pool and see the last commit.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use rekey_core::providers::{Provider, Slot};
use rekey_core::{
    KeySlotState, Resource, ResourceGroup, ResourceGroupName, ResourceId, ResourceSpec, Secret,
    Subscription, SubscriptionId,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{chain_hash, check_chain, AuditEntry, AuditRecord, ChainCheck};
use crate::columns::{corrupt, new_etag, now_micros, seal_context, to_micros, type_key};
use crate::common::{self, retrying, Change, StoredRow};
use crate::crypto::Sealer;
use crate::SigningKey;
use crate::{
    check_rewrite, group_scope, scope_key, AssignmentScope, BootstrapRecord, IndexedResource,
    KeyUse, Operation, Principal, Result, RoleAssignment, StoreError, Written,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    sealer: Sealer,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or `sqlite:path`) and runs
    /// the migrations.
    pub async fn open(url: &str, sealer: Sealer) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?;
        let file = options.get_filename().to_path_buf();
        // sqlx names an in-memory database `file:sqlx-in-memory-…`; it has no file to protect.
        let on_disk =
            !file.to_string_lossy().starts_with("file:") && file.as_os_str() != ":memory:";
        if on_disk {
            make_private(&file)?;
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        if on_disk {
            // SQLite made `-wal` and `-shm` with the main file's mode; an older pair may be looser.
            make_private(&file)?;
        }
        Ok(Self {
            writer,
            reader,
            sealer,
        })
    }

    /// The URL of a database file inside `dir`.
    pub fn url_in(dir: &Path) -> String {
        format!("sqlite://{}", dir.join("rekey.db").display())
    }

    /// One writer at a time: no row needs locking.
    const ROW_LOCK: &'static str = "";

    /// One writer at a time: a claim is never contended.
    const CLAIM_LOCK: &'static str = "";

    /// The one writer connection already serializes bootstraps.
    async fn lock_bootstrap(_: &mut SqliteConnection) -> Result<()> {
        Ok(())
    }

    /// Fails with the most precise not-found unless the assignment scope exists (the one writer
    /// connection keeps it existing until commit).
    async fn lock_assignment_scope(conn: &mut SqliteConnection, a: &RoleAssignment) -> Result<()> {
        let scope = a.scope.as_str();
        match AssignmentScope::parse(scope) {
            Some(AssignmentScope::Subscription(sub)) => {
                Self::require_subscription(conn, &sub).await
            }
            Some(AssignmentScope::Group(sub, group)) => {
                Self::require_group(conn, &sub, &group).await
            }
            Some(AssignmentScope::Resource(id)) => {
                Self::find_resource(conn, &id, false).await.map(|_| ())
            }
            None => Err(corrupt(format!("'{scope}' is not an assignment scope"))),
        }
    }

    /// Deletes the role assignments at `scope` and at every scope below it.
    async fn delete_assignments_under(conn: &mut SqliteConnection, scope: &str) -> Result<()> {
        let key = scope_key(scope);
        let prefix = format!("{key}/");
        // A prefix comparison, not LIKE: `_` is a wildcard there and allowed in group names.
        sqlx::query(
            "DELETE FROM role_assignments WHERE scope_key = ? OR substr(scope_key, 1, ?) = ?",
        )
        .bind(&key)
        .bind(prefix.chars().count() as i64)
        .bind(&prefix)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Appends `changes` to the feed and `audit` to the chain, as the last work of a transaction. The
    /// one writer connection makes the chain's head the last committed record, and feed numbers
    /// follow commit order.
    async fn append_log(
        conn: &mut SqliteConnection,
        changes: &[Change<'_>],
        audit: &AuditRecord,
    ) -> Result<()> {
        for c in changes {
            sqlx::query("INSERT INTO changes (resource_id, slot, change, at) VALUES (?, ?, ?, ?)")
                .bind(c.resource.to_string())
                .bind(c.slot)
                .bind(c.change)
                .bind(c.at)
                .execute(&mut *conn)
                .await?;
        }
        let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
        let (seq, prev) = match last {
            Some(row) => (row.get::<i64, _>("seq") + 1, row.get::<Vec<u8>, _>("hash")),
            None => (1, vec![0u8; 32]),
        };
        let at = to_micros(audit.at);
        let hash = chain_hash(&prev, seq, at, audit);
        sqlx::query(
            "INSERT INTO audit_log (seq, at, principal_id, action, scope, subscription_id, source, request_id, result, prev_hash, hash)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(seq)
        .bind(at)
        .bind(&audit.principal_id)
        .bind(&audit.action)
        .bind(&audit.scope)
        .bind(audit.subscription())
        .bind(&audit.source)
        .bind(&audit.request_id)
        .bind(&audit.result)
        .bind(&prev)
        .bind(&hash[..])
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// Makes the database readable and writable by rekeyd's user only (0600), whatever the umask:
/// creates the main file so before SQLite opens it (SQLite gives the `-wal` and `-shm` files it
/// creates the main file's permissions), and tightens any of the three that exist with looser ones,
/// saying so in the log.
fn make_private(db: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let failed = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::File { path, source }
        };
        // Only a file that is not there yet is opened (to create it 0600): closing any descriptor of
        // a file drops every POSIX lock this process holds on it, SQLite's included, and a database
        // whose locks are gone looks unused to another process, which may then rebuild its WAL
        // index under the connections still reading it.
        if !db.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(db)
                .map_err(failed(db))?;
        }
        let mut companions = [db.as_os_str().to_owned(), db.as_os_str().to_owned()];
        companions[0].push("-wal");
        companions[1].push("-shm");
        let companions = companions.map(std::path::PathBuf::from);
        for path in std::iter::once(db).chain(companions.iter().map(|p| p.as_path())) {
            let mode = match std::fs::metadata(path) {
                Ok(meta) => meta.permissions().mode() & 0o777,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(failed(path)(e)),
            };
            if mode & 0o077 != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))
                    .map_err(failed(path))?;
                tracing::warn!(
                    path = %path.display(),
                    was = format!("{mode:o}"),
                    "made a database file readable by rekeyd's user only"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = db;
    Ok(())
}

impl SqliteStore {
    /// The rows of [`crate::Rotation::record_usage`]'s JSON parameter.
    const USAGE_ROWS: &'static str =
        "(SELECT value ->> 'resource_id' AS resource_id, value ->> 'slot' AS slot,
                value ->> 'minute' AS minute, value ->> 'uses' AS uses,
                value ->> 'last_at' AS last_at, value ->> 'last_client' AS last_client,
                value ->> 'retired' AS retired, value ->> 'retired_at' AS retired_at,
                value ->> 'retired_client' AS retired_client
         FROM json_each($1)) AS u";
}

store_impl! {
    store: SqliteStore,
    conn: SqliteConnection,
    reads: reader,
    writes: writer,
    own: {
    async fn each_index_entry(
        &self,
        each: &mut (dyn FnMut(IndexedResource) + Send),
    ) -> Result<()> {
        // Only what the index keeps, a page of resources in one row: a million resources read
        // as a few hundred rows, so the time goes to SQLite's page reads and the parse, not to
        // per-row handling (sqlx's is several microseconds a row). Pages go in rowid order, so the
        // table is read front to back rather than in the random order of its ids. A change
        // committed during the load is applied by the index's next catch-up, as for any load.
        const PAGE: i64 = 2_000;
        let mut after = 0_i64;
        let mut whole = Vec::new();
        let mut conn = self.reader.acquire().await?;
        loop {
            let row = sqlx::query(
                "SELECT max(page_key) AS last, group_concat(line, char(30)) AS lines FROM (
                    SELECT r.rowid AS page_key,
                        r.internal_id || char(31) || r.subscription_id || char(31) || g.name || char(31)
                        || r.type_key || char(31) || r.name || char(31) || r.location || char(31)
                        || r.settings || char(31)
                        || coalesce((SELECT group_concat(k.slot || ' ' || k.generation || ' ' || hex(k.digest), ' ')
                                     FROM key_slots k WHERE k.resource_id = r.internal_id), '') AS line
                    FROM resources r
                    JOIN resource_groups g ON g.subscription_id = r.subscription_id AND g.name_key = r.group_key
                    WHERE r.rowid > ? ORDER BY r.rowid LIMIT ?)",
            )
            .bind(after)
            .bind(PAGE)
            .fetch_one(&mut *conn)
            .await?;
            let Some(last) = row.get::<Option<i64>, _>("last") else {
                break;
            };
            after = last;
            common::index_lines(row.get::<&str, _>("lines"), each, &mut whole)?;
        }
        drop(conn);
        for indexed in self.index_entries(Some(&whole)).await? {
            each(indexed);
        }
        Ok(())
    }

    async fn delete_group(
        &self,
        sub: &SubscriptionId,
        name: &ResourceGroupName,
        audit: &AuditRecord,
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        Self::require_subscription(&mut tx, sub).await?;
        let now = now_micros();
        let doomed = sqlx::query_scalar::<_, String>(
            "SELECT internal_id FROM resources WHERE subscription_id = ? AND group_key = ?",
        )
        .bind(sub.as_str())
        .bind(name.key())
        .fetch_all(&mut *tx)
        .await?;
        let changes = doomed
            .iter()
            .map(|id| {
                Ok(Change {
                    resource: Uuid::parse_str(id).map_err(corrupt)?,
                    slot: None,
                    change: "deleted",
                    at: now,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // Resources and their key slots go with the group (ON DELETE CASCADE).
        let deleted =
            sqlx::query("DELETE FROM resource_groups WHERE subscription_id = ? AND name_key = ?")
                .bind(sub.as_str())
                .bind(name.key())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        Self::delete_assignments_under(&mut tx, &group_scope(sub, name)).await?;
        Self::delete_event_subscriptions_under(&mut tx, &group_scope(sub, name)).await?;
        Self::append_log(&mut tx, &changes, audit).await?;
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn keys(&self, id: &ResourceId) -> Result<(Resource, Vec<KeySlotState>)> {
        // One read transaction, so the resource and its slots are from the same commit.
        let mut tx = self.reader.begin().await?;
        let resource = Self::find_resource(&mut tx, id, false).await?;
        let slots = self.slots(&mut tx, &resource).await?;
        tx.commit().await?;
        Ok((resource, slots))
    }

    async fn index_entries(&self, only: Option<&[Uuid]>) -> Result<Vec<IndexedResource>> {
        let mut conn = self.reader.acquire().await?;
        let select = "SELECT r.*, g.name AS group_name FROM resources r
             JOIN resource_groups g ON g.subscription_id = r.subscription_id AND g.name_key = r.group_key";
        let rows = match only {
            None => sqlx::query(select).fetch_all(&mut *conn).await?,
            Some(ids) => {
                let mut rows = Vec::with_capacity(ids.len());
                for id in ids {
                    let q = format!("{select} WHERE r.internal_id = ?");
                    rows.extend(
                        sqlx::query(&q)
                            .bind(id.to_string())
                            .fetch_optional(&mut *conn)
                            .await?,
                    );
                }
                rows
            }
        };
        let mut resources: Vec<IndexedResource> = Vec::with_capacity(rows.len());
        let mut position = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let resource = common::resource_row(row)?;
            position.insert(resource.internal_id.to_string(), resources.len());
            resources.push(IndexedResource {
                resource,
                slots: Vec::new(),
            });
        }
        let slot_rows = match only {
            None => {
                sqlx::query("SELECT resource_id, slot, generation, digest, sealed FROM key_slots")
                    .fetch_all(&mut *conn)
                    .await?
            }
            Some(ids) => {
                let mut out = Vec::new();
                for id in ids {
                    out.extend(
                        sqlx::query("SELECT resource_id, slot, generation, digest, sealed FROM key_slots WHERE resource_id = ?")
                            .bind(id.to_string())
                            .fetch_all(&mut *conn)
                            .await?,
                    );
                }
                out
            }
        };
        for row in &slot_rows {
            let Some(&at) = position.get(row.get::<&str, _>("resource_id")) else {
                continue;
            };
            common::push_indexed_slot(&self.sealer, &mut resources[at], row, "")?;
        }
        Ok(resources)
    }

    async fn record_key_uses(&self, uses: &[KeyUse]) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        // One statement per chunk, not per use: each statement is a round trip to sqlx's SQLite
        // thread, and a data plane that has just started sees every key's first use at once
        // (20,000 statements in one flush cost the request path measurably).
        let uses = common::latest_uses(uses);
        let mut tx = self.writer.begin().await?;
        for chunk in uses.chunks(1_000) {
            let rows: Vec<serde_json::Value> = chunk
                .iter()
                .map(|u| {
                    serde_json::json!([
                        u.resource.to_string(),
                        u.slot,
                        u.generation,
                        to_micros(u.at)
                    ])
                })
                .collect();
            // Only a slot's current generation is recorded (the join), and a use never moves a
            // recorded one back. `WHERE true` tells SQLite's parser the upsert's ON is not the
            // join's.
            sqlx::query(
                "INSERT INTO key_last_uses (resource_id, slot, generation, used_at)
                 SELECT u.resource_id, u.slot, u.generation, u.at
                 FROM (SELECT value ->> 0 AS resource_id, value ->> 1 AS slot,
                              value ->> 2 AS generation, value ->> 3 AS at
                       FROM json_each(?)) AS u
                 JOIN key_slots k ON k.resource_id = u.resource_id AND k.slot = u.slot
                                 AND k.generation = u.generation
                 WHERE true
                 ON CONFLICT (resource_id, slot) DO UPDATE
                 SET generation = excluded.generation, used_at = excluded.used_at
                 WHERE key_last_uses.generation < excluded.generation
                    OR (key_last_uses.generation = excluded.generation
                        AND key_last_uses.used_at < excluded.used_at)",
            )
            .bind(serde_json::Value::Array(rows).to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    }
}
