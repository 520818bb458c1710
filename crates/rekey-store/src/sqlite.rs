//! The embedded SQLite backend: one file in WAL mode with `synchronous=FULL`, so a committed change
//! survives a crash. Writes go through a pool of one connection, which serializes them in-process
//! (no `SQLITE_BUSY` races between our own writers); reads use a separate pool and see the last commit.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
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
use crate::common::{self};
use crate::crypto::Sealer;
use crate::SigningKey;
use crate::{
    check_rewrite, group_scope, scope_key, AssignmentScope, BootstrapRecord, IndexedResource,
    KeyUse, Operation, Principal, Result, RoleAssignment, Store, StoreError, Written,
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

    async fn require_subscription(conn: &mut SqliteConnection, sub: &SubscriptionId) -> Result<()> {
        let found = sqlx::query("SELECT 1 FROM subscriptions WHERE id = ?")
            .bind(sub.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        found
            .map(|_| ())
            .ok_or_else(|| StoreError::SubscriptionNotFound(sub.clone()))
    }

    async fn require_group(
        conn: &mut SqliteConnection,
        sub: &SubscriptionId,
        group: &ResourceGroupName,
    ) -> Result<()> {
        Self::require_subscription(conn, sub).await?;
        let found =
            sqlx::query("SELECT 1 FROM resource_groups WHERE subscription_id = ? AND name_key = ?")
                .bind(sub.as_str())
                .bind(group.key())
                .fetch_optional(&mut *conn)
                .await?;
        found
            .map(|_| ())
            .ok_or_else(|| StoreError::ResourceGroupNotFound(group.to_string()))
    }

    /// The resource, or the most precise not-found: subscription, then group, then resource.
    async fn find_resource(conn: &mut SqliteConnection, id: &ResourceId) -> Result<Resource> {
        let row = sqlx::query(
            "SELECT r.*, g.name AS group_name FROM resources r
             JOIN resource_groups g ON g.subscription_id = r.subscription_id AND g.name_key = r.group_key
             WHERE r.subscription_id = ? AND r.group_key = ? AND r.type_key = ? AND r.name_key = ?",
        )
        .bind(id.subscription.as_str())
        .bind(id.group.key())
        .bind(type_key(id.provider))
        .bind(id.name.key())
        .fetch_optional(&mut *conn)
        .await?;
        match row {
            Some(row) => common::resource_row(&row),
            None => {
                Self::require_group(conn, &id.subscription, &id.group).await?;
                Err(StoreError::ResourceNotFound(id.to_string()))
            }
        }
    }

    /// Fails with the most precise not-found unless the assignment scope exists.
    async fn require_scope(conn: &mut SqliteConnection, scope: &str) -> Result<()> {
        match AssignmentScope::parse(scope) {
            Some(AssignmentScope::Subscription(sub)) => {
                Self::require_subscription(conn, &sub).await
            }
            Some(AssignmentScope::Group(sub, group)) => {
                Self::require_group(conn, &sub, &group).await
            }
            Some(AssignmentScope::Resource(id)) => Self::find_resource(conn, &id).await.map(|_| ()),
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

    async fn slots(
        &self,
        conn: &mut SqliteConnection,
        resource: &Resource,
    ) -> Result<Vec<KeySlotState>> {
        let rows = sqlx::query(
            "SELECT slot, generation, sealed, created_at, last_used_at FROM key_slots WHERE resource_id = ?",
        )
        .bind(resource.internal_id.to_string())
        .fetch_all(&mut *conn)
        .await?;
        common::slot_states(&self.sealer, resource, &rows)
    }

    async fn write_audit(conn: &mut SqliteConnection, r: &AuditRecord) -> Result<()> {
        let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
        let (seq, prev) = match last {
            Some(row) => (row.get::<i64, _>("seq") + 1, row.get::<Vec<u8>, _>("hash")),
            None => (1, vec![0u8; 32]),
        };
        let at = to_micros(r.at);
        let hash = chain_hash(&prev, seq, at, r);
        sqlx::query(
            "INSERT INTO audit_log (seq, at, principal_id, action, scope, subscription_id, source, request_id, result, prev_hash, hash)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(seq)
        .bind(at)
        .bind(&r.principal_id)
        .bind(&r.action)
        .bind(&r.scope)
        .bind(r.subscription())
        .bind(&r.source)
        .bind(&r.request_id)
        .bind(&r.result)
        .bind(&prev)
        .bind(&hash[..])
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn record_operation(conn: &mut SqliteConnection, op: Option<&Operation>) -> Result<()> {
        let Some(op) = op else { return Ok(()) };
        sqlx::query(
            "INSERT INTO operations (id, subscription_id, namespace, location, resource_id, status, started_at, ended_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(op.id.to_string())
        .bind(op.subscription.as_str())
        .bind(&op.namespace)
        .bind(&op.location)
        .bind(&op.resource_id)
        .bind(&op.status)
        .bind(to_micros(op.started_at))
        .bind(to_micros(op.ended_at))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn record_change(
        conn: &mut SqliteConnection,
        resource: &Uuid,
        slot: Option<&str>,
        change: &str,
        at: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO changes (resource_id, slot, change, at) VALUES (?, ?, ?, ?)")
            .bind(resource.to_string())
            .bind(slot)
            .bind(change)
            .bind(at)
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
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(db)
            .map_err(failed(db))?;
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

#[async_trait]
impl Store for SqliteStore {
    async fn bootstrap(&self) -> Result<Option<BootstrapRecord>> {
        let row = sqlx::query(
            "SELECT tenant_id, subscription_id, principal_id FROM bootstrap WHERE id = 1",
        )
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| common::bootstrap_row(&row)).transpose()
    }

    async fn init_bootstrap(
        &self,
        proposed: BootstrapRecord,
        token_digest: [u8; 32],
    ) -> Result<(BootstrapRecord, bool)> {
        let mut tx = self.writer.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM bootstrap WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            tx.rollback().await?;
            let record = self
                .bootstrap()
                .await?
                .ok_or_else(|| corrupt("bootstrap vanished"))?;
            return Ok((record, false));
        }
        let now = now_micros();
        sqlx::query("INSERT INTO subscriptions (id, display_name, created_at) VALUES (?, ?, ?)")
            .bind(proposed.subscription_id.as_str())
            .bind("rekey default subscription")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO principals (id, display_name, token_digest, is_owner, created_at) VALUES (?, ?, ?, 1, ?)")
            .bind(proposed.principal_id.to_string())
            .bind("bootstrap owner")
            .bind(&token_digest[..])
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO bootstrap (id, tenant_id, subscription_id, principal_id, created_at) VALUES (1, ?, ?, ?, ?)")
            .bind(proposed.tenant_id.to_string())
            .bind(proposed.subscription_id.as_str())
            .bind(proposed.principal_id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((proposed, true))
    }

    async fn principal_by_token(&self, token_digest: &[u8; 32]) -> Result<Option<Principal>> {
        let row = sqlx::query("SELECT * FROM principals WHERE token_digest = ?")
            .bind(&token_digest[..])
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| common::principal_row(&r)).transpose()
    }

    async fn principal(&self, id: &Uuid) -> Result<Option<Principal>> {
        let row = sqlx::query("SELECT * FROM principals WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| common::principal_row(&r)).transpose()
    }

    async fn create_principal(
        &self,
        p: &Principal,
        token_digest: [u8; 32],
        audit: &AuditRecord,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO principals (id, display_name, token_digest, is_owner, created_at, expires_at, revoked_at, created_by)
             VALUES (?, ?, ?, 0, ?, ?, NULL, ?)",
        )
        .bind(p.id.to_string())
        .bind(&p.display_name)
        .bind(&token_digest[..])
        .bind(to_micros(p.created_at))
        .bind(p.expires_at.map(to_micros))
        .bind(&p.created_by)
        .execute(&mut *tx)
        .await?;
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_principals(&self) -> Result<Vec<Principal>> {
        let rows = sqlx::query("SELECT * FROM principals ORDER BY created_at, id")
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(common::principal_row).collect()
    }

    async fn revoke_principal(&self, id: &Uuid, audit: &AuditRecord) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let changed =
            sqlx::query("UPDATE principals SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now_micros())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let exists = sqlx::query("SELECT 1 FROM principals WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if changed > 0 {
            Self::write_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(exists)
    }

    async fn put_assignment(
        &self,
        a: &RoleAssignment,
        audit: &AuditRecord,
    ) -> Result<(RoleAssignment, Written)> {
        let mut tx = self.writer.begin().await?;
        Self::require_scope(&mut tx, &a.scope).await?;
        let key = scope_key(&a.scope);
        let existing = sqlx::query("SELECT * FROM role_assignments WHERE id = ?")
            .bind(a.id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = existing {
            let existing = common::assignment_row(&row)?;
            check_rewrite(&existing, a)?;
            Self::write_audit(&mut tx, audit).await?;
            tx.commit().await?;
            return Ok((existing, Written::Updated));
        }
        let duplicate = sqlx::query_scalar::<_, String>(
            "SELECT id FROM role_assignments WHERE scope_key = ? AND role_id = ? AND principal_id = ?",
        )
        .bind(&key)
        .bind(a.role_id.to_string())
        .bind(a.principal_id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(other) = duplicate {
            return Err(StoreError::AssignmentExists(
                Uuid::parse_str(&other).map_err(corrupt)?,
            ));
        }
        sqlx::query(
            "INSERT INTO role_assignments (id, scope, scope_key, role_id, principal_id, created_at, created_by)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(a.id.to_string())
        .bind(&a.scope)
        .bind(&key)
        .bind(a.role_id.to_string())
        .bind(a.principal_id.to_string())
        .bind(to_micros(a.created_at))
        .bind(&a.created_by)
        .execute(&mut *tx)
        .await?;
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok((a.clone(), Written::Created))
    }

    async fn assignment(&self, id: &Uuid) -> Result<Option<RoleAssignment>> {
        let row = sqlx::query("SELECT * FROM role_assignments WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| common::assignment_row(&r)).transpose()
    }

    async fn delete_assignment(
        &self,
        id: &Uuid,
        audit: &AuditRecord,
    ) -> Result<Option<RoleAssignment>> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query("SELECT * FROM role_assignments WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let found = common::assignment_row(&row)?;
        sqlx::query("DELETE FROM role_assignments WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(Some(found))
    }

    async fn assignments_of(&self, principal: &Uuid) -> Result<Vec<RoleAssignment>> {
        let rows = sqlx::query("SELECT * FROM role_assignments WHERE principal_id = ?")
            .bind(principal.to_string())
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(common::assignment_row).collect()
    }

    async fn list_assignments(&self) -> Result<Vec<RoleAssignment>> {
        let rows = sqlx::query("SELECT * FROM role_assignments ORDER BY created_at, id")
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(common::assignment_row).collect()
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        Self::write_audit(&mut tx, record).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_records(
        &self,
        subscription: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_log WHERE subscription_id = ? AND at >= ? ORDER BY seq",
        )
        .bind(subscription.to_ascii_lowercase())
        .bind(to_micros(since))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(|row| common::audit_row(row).1).collect())
    }

    async fn verify_audit_chain(&self) -> Result<ChainCheck> {
        let rows = sqlx::query("SELECT * FROM audit_log ORDER BY seq")
            .fetch_all(&self.reader)
            .await?;
        Ok(check_chain(rows.iter().map(common::audit_row)))
    }

    async fn list_subscriptions(&self) -> Result<Vec<Subscription>> {
        let rows = sqlx::query("SELECT * FROM subscriptions ORDER BY created_at, id")
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(common::subscription_row).collect()
    }

    async fn subscription(&self, id: &SubscriptionId) -> Result<Subscription> {
        let row = sqlx::query("SELECT * FROM subscriptions WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| common::subscription_row(&r))
            .unwrap_or(Err(StoreError::SubscriptionNotFound(id.clone())))
    }

    async fn put_subscription(
        &self,
        id: &SubscriptionId,
        display_name: &str,
        audit: &AuditRecord,
    ) -> Result<(Subscription, Written)> {
        let mut tx = self.writer.begin().await?;
        let updated = sqlx::query("UPDATE subscriptions SET display_name = ? WHERE id = ?")
            .bind(display_name)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let written = if updated == 0 {
            sqlx::query(
                "INSERT INTO subscriptions (id, display_name, created_at) VALUES (?, ?, ?)",
            )
            .bind(id.as_str())
            .bind(display_name)
            .bind(now_micros())
            .execute(&mut *tx)
            .await?;
            Written::Created
        } else {
            Written::Updated
        };
        let row = sqlx::query("SELECT * FROM subscriptions WHERE id = ?")
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let sub = common::subscription_row(&row)?;
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok((sub, written))
    }

    async fn put_group(
        &self,
        group: &ResourceGroup,
        audit: &AuditRecord,
    ) -> Result<(ResourceGroup, Written)> {
        let mut tx = self.writer.begin().await?;
        Self::require_subscription(&mut tx, &group.subscription).await?;
        let tags = serde_json::to_string(&group.tags).expect("tags serialize");
        // The group keeps the name casing it was created with, as ARM does.
        let updated = sqlx::query("UPDATE resource_groups SET location = ?, tags = ? WHERE subscription_id = ? AND name_key = ?")
            .bind(&group.location)
            .bind(&tags)
            .bind(group.subscription.as_str())
            .bind(group.name.key())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let written = if updated == 0 {
            sqlx::query("INSERT INTO resource_groups (subscription_id, name_key, name, location, tags, created_at) VALUES (?, ?, ?, ?, ?, ?)")
                .bind(group.subscription.as_str())
                .bind(group.name.key())
                .bind(group.name.as_str())
                .bind(&group.location)
                .bind(&tags)
                .bind(now_micros())
                .execute(&mut *tx)
                .await?;
            // A new scope has no assignments, even if rows for its name outlived an earlier
            // scope of that name.
            Self::delete_assignments_under(&mut tx, &group_scope(&group.subscription, &group.name))
                .await?;
            Written::Created
        } else {
            Written::Updated
        };
        let row =
            sqlx::query("SELECT * FROM resource_groups WHERE subscription_id = ? AND name_key = ?")
                .bind(group.subscription.as_str())
                .bind(group.name.key())
                .fetch_one(&mut *tx)
                .await?;
        let stored = common::group_row(&row)?;
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok((stored, written))
    }

    async fn group(&self, sub: &SubscriptionId, name: &ResourceGroupName) -> Result<ResourceGroup> {
        let mut conn = self.reader.acquire().await?;
        let row =
            sqlx::query("SELECT * FROM resource_groups WHERE subscription_id = ? AND name_key = ?")
                .bind(sub.as_str())
                .bind(name.key())
                .fetch_optional(&mut *conn)
                .await?;
        match row {
            Some(row) => common::group_row(&row),
            None => {
                Self::require_subscription(&mut conn, sub).await?;
                Err(StoreError::ResourceGroupNotFound(name.to_string()))
            }
        }
    }

    async fn list_groups(&self, sub: &SubscriptionId) -> Result<Vec<ResourceGroup>> {
        let mut conn = self.reader.acquire().await?;
        Self::require_subscription(&mut conn, sub).await?;
        let rows = sqlx::query(
            "SELECT * FROM resource_groups WHERE subscription_id = ? ORDER BY name_key",
        )
        .bind(sub.as_str())
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(common::group_row).collect()
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
        for id in &doomed {
            let id = Uuid::parse_str(id).map_err(corrupt)?;
            Self::record_change(&mut tx, &id, None, "deleted", now).await?;
        }
        // Resources and their key slots go with the group (ON DELETE CASCADE).
        let deleted =
            sqlx::query("DELETE FROM resource_groups WHERE subscription_id = ? AND name_key = ?")
                .bind(sub.as_str())
                .bind(name.key())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        Self::delete_assignments_under(&mut tx, &group_scope(sub, name)).await?;
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn put_resource(
        &self,
        id: &ResourceId,
        spec: &ResourceSpec,
        initial_keys: Vec<(&'static Slot, Secret)>,
        operation: Option<&Operation>,
        audit: &AuditRecord,
    ) -> Result<(Resource, Written)> {
        let mut tx = self.writer.begin().await?;
        let now = now_micros();
        let common::SpecColumns {
            sku,
            tags,
            settings,
        } = common::SpecColumns::of(spec);
        let written = match Self::find_resource(&mut tx, id).await {
            Ok(existing) => {
                sqlx::query("UPDATE resources SET location = ?, kind = ?, sku = ?, tags = ?, settings = ?, etag = ?, updated_at = ? WHERE internal_id = ?")
                    .bind(&spec.location)
                    .bind(&spec.kind)
                    .bind(&sku)
                    .bind(&tags)
                    .bind(&settings)
                    .bind(new_etag())
                    .bind(now)
                    .bind(existing.internal_id.to_string())
                    .execute(&mut *tx)
                    .await?;
                Self::record_change(&mut tx, &existing.internal_id, None, "updated", now).await?;
                Written::Updated
            }
            Err(StoreError::ResourceNotFound(_)) => {
                let internal_id = Uuid::new_v4();
                sqlx::query(
                    "INSERT INTO resources (internal_id, subscription_id, group_key, type_key, name_key, name, location, kind, sku, tags, settings, etag, created_at, updated_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(internal_id.to_string())
                .bind(id.subscription.as_str())
                .bind(id.group.key())
                .bind(type_key(id.provider))
                .bind(id.name.key())
                .bind(id.name.as_str())
                .bind(&spec.location)
                .bind(&spec.kind)
                .bind(&sku)
                .bind(&tags)
                .bind(&settings)
                .bind(new_etag())
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                for (slot, secret) in &initial_keys {
                    sqlx::query("INSERT INTO key_slots (resource_id, slot, generation, sealed, digest, created_at) VALUES (?, ?, 1, ?, ?, ?)")
                        .bind(internal_id.to_string())
                        .bind(slot.name)
                        .bind(self.sealer.seal(secret, &seal_context(&internal_id, slot.name, 1)))
                        .bind(&self.sealer.digest(secret.expose())[..])
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                Self::record_change(&mut tx, &internal_id, None, "created", now).await?;
                Self::delete_assignments_under(&mut tx, &id.to_string()).await?;
                Written::Created
            }
            Err(e) => return Err(e),
        };
        let resource = Self::find_resource(&mut tx, id).await?;
        Self::record_operation(&mut tx, operation).await?;
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok((resource, written))
    }

    async fn update_resource(
        &self,
        id: &ResourceId,
        spec: &ResourceSpec,
        audit: &AuditRecord,
    ) -> Result<Resource> {
        let columns = common::SpecColumns::of(spec);
        let mut tx = self.writer.begin().await?;
        let existing = Self::find_resource(&mut tx, id).await?;
        sqlx::query("UPDATE resources SET kind = ?, sku = ?, tags = ?, settings = ?, etag = ?, updated_at = ? WHERE internal_id = ?")
            .bind(&spec.kind)
            .bind(columns.sku)
            .bind(columns.tags)
            .bind(columns.settings)
            .bind(new_etag())
            .bind(now_micros())
            .bind(existing.internal_id.to_string())
            .execute(&mut *tx)
            .await?;
        Self::record_change(
            &mut tx,
            &existing.internal_id,
            None,
            "updated",
            now_micros(),
        )
        .await?;
        let resource = Self::find_resource(&mut tx, id).await?;
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(resource)
    }

    async fn resource(&self, id: &ResourceId) -> Result<Resource> {
        let mut conn = self.reader.acquire().await?;
        Self::find_resource(&mut conn, id).await
    }

    async fn list_resources(
        &self,
        sub: &SubscriptionId,
        group: Option<&ResourceGroupName>,
        provider: &'static Provider,
    ) -> Result<Vec<Resource>> {
        let mut conn = self.reader.acquire().await?;
        match group {
            Some(g) => Self::require_group(&mut conn, sub, g).await?,
            None => Self::require_subscription(&mut conn, sub).await?,
        }
        let rows = sqlx::query(
            "SELECT r.*, g.name AS group_name FROM resources r
             JOIN resource_groups g ON g.subscription_id = r.subscription_id AND g.name_key = r.group_key
             WHERE r.subscription_id = ? AND r.type_key = ? AND (? IS NULL OR r.group_key = ?)
             ORDER BY r.group_key, r.name_key",
        )
        .bind(sub.as_str())
        .bind(type_key(provider))
        .bind(group.map(|g| g.key()))
        .bind(group.map(|g| g.key()))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(common::resource_row).collect()
    }

    async fn delete_resource(
        &self,
        id: &ResourceId,
        operation: Option<&Operation>,
        audit: &AuditRecord,
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let existing = match Self::find_resource(&mut tx, id).await {
            Ok(r) => r,
            Err(StoreError::ResourceNotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        sqlx::query("DELETE FROM resources WHERE internal_id = ?")
            .bind(existing.internal_id.to_string())
            .execute(&mut *tx)
            .await?;
        Self::delete_assignments_under(&mut tx, &existing.id.to_string()).await?;
        Self::record_change(
            &mut tx,
            &existing.internal_id,
            None,
            "deleted",
            now_micros(),
        )
        .await?;
        Self::record_operation(&mut tx, operation).await?;
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn keys(&self, id: &ResourceId) -> Result<(Resource, Vec<KeySlotState>)> {
        // One read transaction, so the resource and its slots are from the same commit.
        let mut tx = self.reader.begin().await?;
        let resource = Self::find_resource(&mut tx, id).await?;
        let slots = self.slots(&mut tx, &resource).await?;
        tx.commit().await?;
        Ok((resource, slots))
    }

    async fn regenerate(
        &self,
        id: &ResourceId,
        new_keys: Vec<(&'static Slot, Secret)>,
        operation: Option<&Operation>,
        audit: &AuditRecord,
    ) -> Result<(Resource, Vec<KeySlotState>)> {
        let mut tx = self.writer.begin().await?;
        let resource = Self::find_resource(&mut tx, id).await?;
        let internal = resource.internal_id.to_string();
        let now = now_micros();
        for (slot, secret) in &new_keys {
            let generation = sqlx::query_scalar::<_, i64>(
                "SELECT generation FROM key_slots WHERE resource_id = ? AND slot = ?",
            )
            .bind(&internal)
            .bind(slot.name)
            .fetch_one(&mut *tx)
            .await?
                + 1;
            sqlx::query("UPDATE key_slots SET generation = ?, sealed = ?, digest = ?, created_at = ?, last_used_at = NULL WHERE resource_id = ? AND slot = ?")
                .bind(generation)
                .bind(self.sealer.seal(secret, &seal_context(&resource.internal_id, slot.name, generation)))
                .bind(&self.sealer.digest(secret.expose())[..])
                .bind(now)
                .bind(&internal)
                .bind(slot.name)
                .execute(&mut *tx)
                .await?;
            Self::record_change(
                &mut tx,
                &resource.internal_id,
                Some(slot.name),
                "regenerated",
                now,
            )
            .await?;
        }
        let slots = self.slots(&mut tx, &resource).await?;
        Self::record_operation(&mut tx, operation).await?;
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok((resource, slots))
    }

    fn key_digest(&self, presented: &str) -> [u8; 32] {
        self.sealer.digest(presented)
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

    async fn latest_change(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(seq), 0) FROM changes")
                .fetch_one(&self.reader)
                .await?,
        )
    }

    async fn changes_since(&self, after: i64) -> Result<(i64, Vec<Uuid>)> {
        let rows = sqlx::query("SELECT seq, resource_id FROM changes WHERE seq > ? ORDER BY seq")
            .bind(after)
            .fetch_all(&self.reader)
            .await?;
        common::changed_resources(after, &rows)
    }

    async fn record_key_uses(&self, uses: &[KeyUse]) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        // One statement per chunk, not per use: each statement is a round trip to sqlx's SQLite
        // thread, and a data plane that has just started sees every key's first use at once
        // (20,000 statements in one flush cost the request path measurably).
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
            sqlx::query(
                "UPDATE key_slots SET last_used_at = u.at
                 FROM (SELECT value ->> 0 AS resource_id, value ->> 1 AS slot,
                              value ->> 2 AS generation, value ->> 3 AS at
                       FROM json_each(?)) AS u
                 WHERE key_slots.resource_id = u.resource_id AND key_slots.slot = u.slot
                   AND key_slots.generation = u.generation
                   AND (key_slots.last_used_at IS NULL OR key_slots.last_used_at < u.at)",
            )
            .bind(serde_json::Value::Array(rows).to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKey>> {
        let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY created_at DESC, kid")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| common::signing_key_row(&self.sealer, row))
            .collect()
    }

    async fn rotate_signing_key(&self, key: &SigningKey, audit: &AuditRecord) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let now = now_micros();
        sqlx::query("UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO signing_keys (kid, sealed, public_key, created_at, retired_at) VALUES (?, ?, ?, ?, NULL)")
            .bind(&key.kid)
            .bind(common::seal_signing_key(&self.sealer, key))
            .bind(&key.public_key)
            .bind(to_micros(key.created_at))
            .execute(&mut *tx)
            .await?;
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn operation(&self, sub: &SubscriptionId, id: &Uuid) -> Result<Option<Operation>> {
        let row = sqlx::query("SELECT * FROM operations WHERE id = ? AND subscription_id = ?")
            .bind(id.to_string())
            .bind(sub.as_str())
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|row| common::operation_row(&row, id, sub)))
    }
}
