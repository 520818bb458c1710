//! Owns the [`Store`](crate::Store) methods whose logic is the same on both backends, written once
//! as [`store_impl!`]: their SQL is text both dialects accept (`$1`-numbered parameters, which sqlx
//! binds by number on SQLite too), and where the backends truly differ the template calls a hook each
//! backend defines on its own type:
//!
//! - `ROW_LOCK`: the clause that locks a resource's row to the end of the transaction (`""` where
//!   one writer at a time makes locks needless);
//! - `lock_bootstrap`, `lock_assignment_scope`: what a write takes first so racing nodes apply one
//!   after another, and checks that the assignment's scope exists;
//! - `append_log`: appends a transaction's change-feed entries and audit record, as its last work;
//! - `delete_assignments_under`: deletes assignments at and below a scope;
//! - `CLAIM_LOCK`: the clause that lets several nodes claim outbox deliveries without taking the
//!   same row (`FOR UPDATE SKIP LOCKED` on PostgreSQL, `""` for SQLite's one writer).
//!
//! Events: a write that reports a change calls `Self::emit_event(&mut tx, &NewEvent::…)` inside its
//! transaction, before `append_log`; the event and its deliveries then commit or roll back with the
//! change (see [`crate::events`]).
//!
//! The backend keeps everything else in its own file: connecting, locking, notices, the methods whose
//! SQL differs, and the `Store` methods it passes in as `own`.

/// Expands to the backend's shared inherent helpers and its `impl Store`, with the backend's own
/// `Store` methods (`own`) placed alongside the shared ones. `reads` and `writes` name the pool
/// fields that serve reads and transactions; `conn` is the backend's connection type.
macro_rules! store_impl {
    (
        store: $store:ty,
        conn: $conn:ty,
        reads: $reads:ident,
        writes: $writes:ident,
        own: { $($own:tt)* }
    ) => {
        impl $store {
            async fn require_subscription(conn: &mut $conn, sub: &SubscriptionId) -> Result<()> {
                let found = sqlx::query("SELECT 1 FROM subscriptions WHERE id = $1")
                    .bind(sub.as_str())
                    .fetch_optional(&mut *conn)
                    .await?;
                found
                    .map(|_| ())
                    .ok_or_else(|| StoreError::SubscriptionNotFound(sub.clone()))
            }

            async fn require_group(
                conn: &mut $conn,
                sub: &SubscriptionId,
                group: &ResourceGroupName,
            ) -> Result<()> {
                Self::require_subscription(conn, sub).await?;
                let found = sqlx::query(
                    "SELECT 1 FROM resource_groups WHERE subscription_id = $1 AND name_key = $2",
                )
                .bind(sub.as_str())
                .bind(group.key())
                .fetch_optional(&mut *conn)
                .await?;
                found
                    .map(|_| ())
                    .ok_or_else(|| StoreError::ResourceGroupNotFound(group.to_string()))
            }

            /// The resource, or the most precise not-found: subscription, then group, then
            /// resource. With `lock`, the resource's row stays locked until the transaction ends,
            /// so changes to one resource from any node apply one after another.
            async fn find_resource(
                conn: &mut $conn,
                id: &ResourceId,
                lock: bool,
            ) -> Result<Resource> {
                let query = format!(
                    "SELECT r.*, g.name AS group_name FROM resources r
                     JOIN resource_groups g ON g.subscription_id = r.subscription_id AND g.name_key = r.group_key
                     WHERE r.subscription_id = $1 AND r.group_key = $2 AND r.type_key = $3 AND r.name_key = $4{}",
                    if lock { Self::ROW_LOCK } else { "" }
                );
                let row = sqlx::query(&query)
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

            async fn slots(
                &self,
                conn: &mut $conn,
                resource: &Resource,
            ) -> Result<Vec<KeySlotState>> {
                let rows = sqlx::query(
                    "SELECT k.slot, k.generation, k.sealed, k.created_at, u.used_at AS last_used_at
                     FROM key_slots k LEFT JOIN key_last_uses u
                       ON u.resource_id = k.resource_id AND u.slot = k.slot AND u.generation = k.generation
                     WHERE k.resource_id = $1",
                )
                .bind(resource.internal_id.to_string())
                .fetch_all(&mut *conn)
                .await?;
                common::slot_states(&self.sealer, resource, &rows)
            }

            async fn record_operation(conn: &mut $conn, op: Option<&Operation>) -> Result<()> {
                let Some(op) = op else { return Ok(()) };
                sqlx::query(
                    "INSERT INTO operations (id, subscription_id, namespace, location, resource_id, status, started_at, ended_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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

            /// Creates `resources` in one transaction, none of which may exist yet: for each, what
            /// [`Store::put_resource`](crate::Store::put_resource) writes on a create (the resource
            /// row, its keys sealed and digested, its change-feed entry), and one audit record for
            /// the whole batch. Rows go in many to a statement, so a million resources load in
            /// minutes, not hours: for benchmarks and imports into a fresh group (role assignments
            /// left from earlier resources of the same names are not removed, as a create does).
            pub async fn create_resources(
                &self,
                resources: &[$crate::NewResource],
                audit: &AuditRecord,
            ) -> Result<Vec<Uuid>> {
                // Rows per statement: SQLite finds each parameter by a linear search (binding
                // costs the square of their number), so statements stay small.
                const ROWS: usize = 50;
                let mut tx = self.$writes.begin().await?;
                let now = now_micros();
                let ids: Vec<Uuid> = resources.iter().map(|_| Uuid::new_v4()).collect();
                for (i, chunk) in resources.chunks(ROWS).enumerate() {
                    let ids = &ids[i * ROWS..][..chunk.len()];
                    let columns: Vec<common::SpecColumns> =
                        chunk.iter().map(|r| common::SpecColumns::of(&r.spec)).collect();
                    let sql = format!(
                        "INSERT INTO resources (internal_id, subscription_id, group_key, type_key, name_key, name, location, kind, sku, tags, settings, etag, created_at, updated_at) VALUES {}",
                        common::placeholders(chunk.len(), 14)
                    );
                    let mut q = sqlx::query(&sql);
                    for ((r, c), id) in chunk.iter().zip(&columns).zip(ids) {
                        q = q
                            .bind(id.to_string())
                            .bind(r.id.subscription.as_str())
                            .bind(r.id.group.key())
                            .bind(type_key(r.id.provider))
                            .bind(r.id.name.key())
                            .bind(r.id.name.as_str())
                            .bind(&r.spec.location)
                            .bind(&r.spec.kind)
                            .bind(&c.sku)
                            .bind(&c.tags)
                            .bind(&c.settings)
                            .bind(new_etag())
                            .bind(now)
                            .bind(now);
                    }
                    q.execute(&mut *tx).await?;
                    let slots: Vec<(Uuid, &'static Slot, &Secret)> = chunk
                        .iter()
                        .zip(ids)
                        .flat_map(|(r, id)| r.keys.iter().map(move |(slot, secret)| (*id, *slot, secret)))
                        .collect();
                    for slots in slots.chunks(ROWS) {
                        let sql = format!(
                            "INSERT INTO key_slots (resource_id, slot, generation, sealed, digest, created_at) VALUES {}",
                            common::placeholders(slots.len(), 6)
                        );
                        let mut q = sqlx::query(&sql);
                        for (id, slot, secret) in slots {
                            q = q
                                .bind(id.to_string())
                                .bind(slot.name)
                                .bind(1_i64)
                                .bind(self.sealer.seal(secret, &seal_context(id, slot.name, 1)))
                                .bind(self.sealer.digest(secret.expose()).to_vec())
                                .bind(now);
                        }
                        q.execute(&mut *tx).await?;
                    }
                }
                let changes: Vec<Change> = ids
                    .iter()
                    .map(|id| Change {
                        resource: *id,
                        slot: None,
                        change: "created",
                        at: now,
                    })
                    .collect();
                Self::append_log(&mut tx, &changes, audit).await?;
                tx.commit().await?;
                Ok(ids)
            }

            async fn try_put_subscription(
                &self,
                id: &SubscriptionId,
                display_name: &str,
                audit: &AuditRecord,
            ) -> Result<(Subscription, Written)> {
                let mut tx = self.$writes.begin().await?;
                let updated = sqlx::query("UPDATE subscriptions SET display_name = $1 WHERE id = $2")
                    .bind(display_name)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let written = if updated == 0 {
                    sqlx::query(
                        "INSERT INTO subscriptions (id, display_name, created_at) VALUES ($1, $2, $3)",
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
                let row = sqlx::query("SELECT * FROM subscriptions WHERE id = $1")
                    .bind(id.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                let sub = common::subscription_row(&row)?;
                Self::append_log(&mut tx, &[], audit).await?;
                tx.commit().await?;
                Ok((sub, written))
            }

            async fn try_put_group(
                &self,
                group: &ResourceGroup,
                audit: &AuditRecord,
            ) -> Result<(ResourceGroup, Written)> {
                let mut tx = self.$writes.begin().await?;
                Self::require_subscription(&mut tx, &group.subscription).await?;
                let tags = serde_json::to_string(&group.tags).expect("tags serialize");
                // The group keeps the name casing it was created with, as ARM does.
                let updated = sqlx::query("UPDATE resource_groups SET location = $1, tags = $2 WHERE subscription_id = $3 AND name_key = $4")
                    .bind(&group.location)
                    .bind(&tags)
                    .bind(group.subscription.as_str())
                    .bind(group.name.key())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let written = if updated == 0 {
                    sqlx::query("INSERT INTO resource_groups (subscription_id, name_key, name, location, tags, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
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
                    Self::delete_event_subscriptions_under(&mut tx, &group_scope(&group.subscription, &group.name))
                        .await?;
                    Written::Created
                } else {
                    Written::Updated
                };
                let row = sqlx::query(
                    "SELECT * FROM resource_groups WHERE subscription_id = $1 AND name_key = $2",
                )
                .bind(group.subscription.as_str())
                .bind(group.name.key())
                .fetch_one(&mut *tx)
                .await?;
                let stored = common::group_row(&row)?;
                Self::append_log(&mut tx, &[], audit).await?;
                tx.commit().await?;
                Ok((stored, written))
            }

            async fn try_put_resource(
                &self,
                id: &ResourceId,
                spec: &ResourceSpec,
                initial_keys: &[(&'static Slot, Secret)],
                operation: Option<&Operation>,
                audit: &AuditRecord,
            ) -> Result<(Resource, Written)> {
                let mut tx = self.$writes.begin().await?;
                let now = now_micros();
                let common::SpecColumns {
                    sku,
                    tags,
                    settings,
                } = common::SpecColumns::of(spec);
                let (internal_id, written, change) = match Self::find_resource(&mut tx, id, true).await {
                    Ok(existing) => {
                        sqlx::query("UPDATE resources SET location = $1, kind = $2, sku = $3, tags = $4, settings = $5, etag = $6, updated_at = $7 WHERE internal_id = $8")
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
                        (existing.internal_id, Written::Updated, "updated")
                    }
                    Err(StoreError::ResourceNotFound(_)) => {
                        let internal_id = Uuid::new_v4();
                        sqlx::query(
                            "INSERT INTO resources (internal_id, subscription_id, group_key, type_key, name_key, name, location, kind, sku, tags, settings, etag, created_at, updated_at)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
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
                        for (slot, secret) in initial_keys {
                            sqlx::query("INSERT INTO key_slots (resource_id, slot, generation, sealed, digest, created_at) VALUES ($1, $2, 1, $3, $4, $5)")
                                .bind(internal_id.to_string())
                                .bind(slot.name)
                                .bind(self.sealer.seal(secret, &seal_context(&internal_id, slot.name, 1)))
                                .bind(&self.sealer.digest(secret.expose())[..])
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                        }
                        Self::delete_assignments_under(&mut tx, &id.to_string()).await?;
                        Self::delete_event_subscriptions_under(&mut tx, &id.to_string()).await?;
                        (internal_id, Written::Created, "created")
                    }
                    Err(e) => return Err(e),
                };
                let resource = Self::find_resource(&mut tx, id, false).await?;
                Self::record_operation(&mut tx, operation).await?;
                Self::emit_event(
                    &mut tx,
                    &$crate::events::NewEvent::arm($crate::events::RESOURCE_WRITE_SUCCESS, &resource.id, audit),
                )
                .await?;
                let changes = [Change {
                    resource: internal_id,
                    slot: None,
                    change,
                    at: now,
                }];
                Self::append_log(&mut tx, &changes, audit).await?;
                tx.commit().await?;
                Ok((resource, written))
            }

            async fn try_put_assignment(
                &self,
                a: &RoleAssignment,
                audit: &AuditRecord,
            ) -> Result<(RoleAssignment, Written)> {
                let mut tx = self.$writes.begin().await?;
                Self::lock_assignment_scope(&mut tx, a).await?;
                let key = scope_key(&a.scope);
                let existing = sqlx::query("SELECT * FROM role_assignments WHERE id = $1")
                    .bind(a.id.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(row) = existing {
                    let existing = common::assignment_row(&row)?;
                    check_rewrite(&existing, a)?;
                    Self::append_log(&mut tx, &[], audit).await?;
                    tx.commit().await?;
                    return Ok((existing, Written::Updated));
                }
                let duplicate = sqlx::query_scalar::<_, String>(
                    "SELECT id FROM role_assignments WHERE scope_key = $1 AND role_id = $2 AND principal_id = $3",
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
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
                Self::append_log(&mut tx, &[], audit).await?;
                tx.commit().await?;
                Ok((a.clone(), Written::Created))
            }

            /// Writes `event` to the outbox in the transaction `conn` is in, with one delivery for
            /// each event subscription that wants it (at or above its subject, its type included,
            /// its endpoint validated): the event commits or rolls back with the change it reports.
            /// An event no subscription wants is not written. Every change that should emit an
            /// event calls this before its `append_log`; the delivery task, woken after the
            /// commit, sends it.
            pub(crate) async fn emit_event(
                conn: &mut $conn,
                event: &$crate::events::NewEvent,
            ) -> Result<()> {
                let rows = sqlx::query(
                    "SELECT * FROM event_subscriptions WHERE subscription_id = $1 AND provisioning_state = $2",
                )
                .bind(event.subscription.to_ascii_lowercase())
                .bind($crate::events::PROVISIONED)
                .fetch_all(&mut *conn)
                .await?;
                let mut targets = Vec::new();
                for row in &rows {
                    let target = common::event_subscription_row(row)?;
                    if target.wants(&event.subject, &event.event_type) {
                        targets.push(target.id);
                    }
                }
                if targets.is_empty() {
                    return Ok(());
                }
                let at = to_micros(event.event_time);
                sqlx::query(
                    "INSERT INTO events (id, subscription_id, subject, event_type, event_time, data) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(event.id.to_string())
                .bind(event.subscription.to_ascii_lowercase())
                .bind(&event.subject)
                .bind(&event.event_type)
                .bind(at)
                .bind(event.data.to_string())
                .execute(&mut *conn)
                .await?;
                for target in targets {
                    sqlx::query(
                        "INSERT INTO event_deliveries (event_id, target_id, state, attempts, next_attempt_at) VALUES ($1, $2, 'pending', 0, $3)",
                    )
                    .bind(event.id.to_string())
                    .bind(target.to_string())
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                }
                Ok(())
            }

            /// Deletes the event subscriptions at `scope` and below it (with their deliveries), as
            /// a scope's role assignments go with it: a scope made again under the same name starts
            /// with none.
            async fn delete_event_subscriptions_under(conn: &mut $conn, scope: &str) -> Result<()> {
                let key = scope_key(scope);
                let prefix = format!("{key}/");
                // A prefix comparison, not LIKE: `_` is a wildcard there and allowed in names.
                let deleted = sqlx::query(
                    "DELETE FROM event_subscriptions WHERE scope_key = $1 OR substr(scope_key, 1, length($2)) = $2",
                )
                .bind(&key)
                .bind(&prefix)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                if deleted > 0 {
                    sqlx::query(
                        "DELETE FROM events WHERE NOT EXISTS (SELECT 1 FROM event_deliveries d WHERE d.event_id = events.id)",
                    )
                    .execute(&mut *conn)
                    .await?;
                }
                Ok(())
            }

            async fn try_put_event_subscription(
                &self,
                s: &$crate::events::EventSubscription,
                secret: &Secret,
                audit: &AuditRecord,
            ) -> Result<($crate::events::EventSubscription, Written)> {
                let mut tx = self.$writes.begin().await?;
                let now = now_micros();
                let types = s
                    .included_event_types
                    .as_ref()
                    .map(|t| serde_json::to_string(t).expect("strings serialize"));
                let existing = Self::event_subscription_in(&mut tx, &s.scope, &s.name).await?;
                let written = match &existing {
                    Some(old) => {
                        sqlx::query(
                            "UPDATE event_subscriptions SET endpoint_url = $1, included_event_types = $2, delivery_schema = $3, max_attempts = $4, ttl_minutes = $5, provisioning_state = $6, updated_at = $7 WHERE id = $8",
                        )
                        .bind(&s.endpoint_url)
                        .bind(&types)
                        .bind(&s.delivery_schema)
                        .bind(s.max_attempts)
                        .bind(s.ttl_minutes)
                        .bind(&s.provisioning_state)
                        .bind(now)
                        .bind(old.id.to_string())
                        .execute(&mut *tx)
                        .await?;
                        Written::Updated
                    }
                    None => {
                        sqlx::query(
                            "INSERT INTO event_subscriptions (id, subscription_id, scope_key, scope, name_key, name, endpoint_url, included_event_types, delivery_schema, max_attempts, ttl_minutes, sealed_secret, provisioning_state, created_at, updated_at)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                        )
                        .bind(s.id.to_string())
                        .bind(s.subscription.to_ascii_lowercase())
                        .bind(scope_key(&s.scope))
                        .bind(&s.scope)
                        .bind(s.name.to_ascii_lowercase())
                        .bind(&s.name)
                        .bind(&s.endpoint_url)
                        .bind(&types)
                        .bind(&s.delivery_schema)
                        .bind(s.max_attempts)
                        .bind(s.ttl_minutes)
                        .bind(self.sealer.seal(secret, &common::event_secret_context(&s.id)))
                        .bind(&s.provisioning_state)
                        .bind(now)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        Written::Created
                    }
                };
                let stored = Self::event_subscription_in(&mut tx, &s.scope, &s.name)
                    .await?
                    .ok_or_else(|| corrupt("an event subscription vanished in its own write"))?;
                Self::append_log(&mut tx, &[], audit).await?;
                tx.commit().await?;
                Ok((stored, written))
            }

            async fn event_subscription_in(
                conn: &mut $conn,
                scope: &str,
                name: &str,
            ) -> Result<Option<$crate::events::EventSubscription>> {
                let row = sqlx::query(
                    "SELECT * FROM event_subscriptions WHERE scope_key = $1 AND name_key = $2",
                )
                .bind(scope_key(scope))
                .bind(name.to_ascii_lowercase())
                .fetch_optional(&mut *conn)
                .await?;
                row.map(|r| common::event_subscription_row(&r)).transpose()
            }
        }

        #[async_trait::async_trait]
        impl $crate::Store for $store {
            $($own)*

            async fn bootstrap(&self) -> Result<Option<BootstrapRecord>> {
                let row = sqlx::query(
                    "SELECT tenant_id, subscription_id, principal_id FROM bootstrap WHERE id = 1",
                )
                .fetch_optional(&self.$reads)
                .await?;
                row.map(|row| common::bootstrap_row(&row)).transpose()
            }

            async fn init_bootstrap(
                &self,
                proposed: BootstrapRecord,
                token_digest: [u8; 32],
            ) -> Result<(BootstrapRecord, bool)> {
                let mut tx = self.$writes.begin().await?;
                Self::lock_bootstrap(&mut tx).await?;
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
                sqlx::query("INSERT INTO subscriptions (id, display_name, created_at) VALUES ($1, $2, $3)")
                    .bind(proposed.subscription_id.as_str())
                    .bind("rekey default subscription")
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("INSERT INTO principals (id, display_name, token_digest, is_owner, created_at) VALUES ($1, $2, $3, 1, $4)")
                    .bind(proposed.principal_id.to_string())
                    .bind("bootstrap owner")
                    .bind(&token_digest[..])
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("INSERT INTO bootstrap (id, tenant_id, subscription_id, principal_id, created_at) VALUES (1, $1, $2, $3, $4)")
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
                let row = sqlx::query("SELECT * FROM principals WHERE token_digest = $1")
                    .bind(&token_digest[..])
                    .fetch_optional(&self.$reads)
                    .await?;
                row.map(|r| common::principal_row(&r)).transpose()
            }

            async fn principal(&self, id: &Uuid) -> Result<Option<Principal>> {
                let row = sqlx::query("SELECT * FROM principals WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&self.$reads)
                    .await?;
                row.map(|r| common::principal_row(&r)).transpose()
            }

            async fn create_principal(
                &self,
                p: &Principal,
                token_digest: [u8; 32],
                audit: &AuditRecord,
            ) -> Result<()> {
                let mut tx = self.$writes.begin().await?;
                sqlx::query(
                    "INSERT INTO principals (id, display_name, token_digest, is_owner, created_at, expires_at, revoked_at, created_by)
                     VALUES ($1, $2, $3, 0, $4, $5, NULL, $6)",
                )
                .bind(p.id.to_string())
                .bind(&p.display_name)
                .bind(&token_digest[..])
                .bind(to_micros(p.created_at))
                .bind(p.expires_at.map(to_micros))
                .bind(&p.created_by)
                .execute(&mut *tx)
                .await?;
                Self::append_log(&mut tx, &[], audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_principals(&self) -> Result<Vec<Principal>> {
                let rows = sqlx::query("SELECT * FROM principals ORDER BY created_at, id")
                    .fetch_all(&self.$reads)
                    .await?;
                rows.iter().map(common::principal_row).collect()
            }

            async fn revoke_principal(&self, id: &Uuid, audit: &AuditRecord) -> Result<bool> {
                let mut tx = self.$writes.begin().await?;
                let changed = sqlx::query(
                    "UPDATE principals SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(now_micros())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let exists = sqlx::query("SELECT 1 FROM principals WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
                if changed > 0 {
                    Self::append_log(&mut tx, &[], audit).await?;
                }
                tx.commit().await?;
                Ok(exists)
            }

            async fn put_assignment(
                &self,
                a: &RoleAssignment,
                audit: &AuditRecord,
            ) -> Result<(RoleAssignment, Written)> {
                retrying(|| self.try_put_assignment(a, audit)).await
            }

            async fn assignment(&self, id: &Uuid) -> Result<Option<RoleAssignment>> {
                let row = sqlx::query("SELECT * FROM role_assignments WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&self.$reads)
                    .await?;
                row.map(|r| common::assignment_row(&r)).transpose()
            }

            async fn delete_assignment(
                &self,
                id: &Uuid,
                audit: &AuditRecord,
            ) -> Result<Option<RoleAssignment>> {
                let mut tx = self.$writes.begin().await?;
                let row = sqlx::query("DELETE FROM role_assignments WHERE id = $1 RETURNING *")
                    .bind(id.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let found = common::assignment_row(&row)?;
                Self::append_log(&mut tx, &[], audit).await?;
                tx.commit().await?;
                Ok(Some(found))
            }

            async fn assignments_of(&self, principal: &Uuid) -> Result<Vec<RoleAssignment>> {
                let rows = sqlx::query("SELECT * FROM role_assignments WHERE principal_id = $1")
                    .bind(principal.to_string())
                    .fetch_all(&self.$reads)
                    .await?;
                rows.iter().map(common::assignment_row).collect()
            }

            async fn list_assignments(&self) -> Result<Vec<RoleAssignment>> {
                let rows = sqlx::query("SELECT * FROM role_assignments ORDER BY created_at, id")
                    .fetch_all(&self.$reads)
                    .await?;
                rows.iter().map(common::assignment_row).collect()
            }

            async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
                let mut tx = self.$writes.begin().await?;
                Self::append_log(&mut tx, &[], record).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn audit_records(
                &self,
                subscription: &str,
                since: OffsetDateTime,
            ) -> Result<Vec<AuditEntry>> {
                let rows = sqlx::query(
                    "SELECT * FROM audit_log WHERE subscription_id = $1 AND at >= $2 ORDER BY seq",
                )
                .bind(subscription.to_ascii_lowercase())
                .bind(to_micros(since))
                .fetch_all(&self.$reads)
                .await?;
                Ok(rows.iter().map(|row| common::audit_row(row).1).collect())
            }

            async fn verify_audit_chain(&self) -> Result<ChainCheck> {
                let rows = sqlx::query("SELECT * FROM audit_log ORDER BY seq")
                    .fetch_all(&self.$reads)
                    .await?;
                Ok(check_chain(rows.iter().map(common::audit_row)))
            }

            async fn list_subscriptions(&self) -> Result<Vec<Subscription>> {
                let rows = sqlx::query("SELECT * FROM subscriptions ORDER BY created_at, id")
                    .fetch_all(&self.$reads)
                    .await?;
                rows.iter().map(common::subscription_row).collect()
            }

            async fn subscription(&self, id: &SubscriptionId) -> Result<Subscription> {
                let row = sqlx::query("SELECT * FROM subscriptions WHERE id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&self.$reads)
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
                retrying(|| self.try_put_subscription(id, display_name, audit)).await
            }

            async fn put_group(
                &self,
                group: &ResourceGroup,
                audit: &AuditRecord,
            ) -> Result<(ResourceGroup, Written)> {
                retrying(|| self.try_put_group(group, audit)).await
            }

            async fn group(&self, sub: &SubscriptionId, name: &ResourceGroupName) -> Result<ResourceGroup> {
                let mut conn = self.$reads.acquire().await?;
                let row = sqlx::query(
                    "SELECT * FROM resource_groups WHERE subscription_id = $1 AND name_key = $2",
                )
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
                let mut conn = self.$reads.acquire().await?;
                Self::require_subscription(&mut conn, sub).await?;
                let rows = sqlx::query(
                    "SELECT * FROM resource_groups WHERE subscription_id = $1 ORDER BY name_key",
                )
                .bind(sub.as_str())
                .fetch_all(&mut *conn)
                .await?;
                rows.iter().map(common::group_row).collect()
            }

            async fn put_resource(
                &self,
                id: &ResourceId,
                spec: &ResourceSpec,
                initial_keys: Vec<(&'static Slot, Secret)>,
                operation: Option<&Operation>,
                audit: &AuditRecord,
            ) -> Result<(Resource, Written)> {
                retrying(|| self.try_put_resource(id, spec, &initial_keys, operation, audit)).await
            }

            async fn update_resource(
                &self,
                id: &ResourceId,
                spec: &ResourceSpec,
                audit: &AuditRecord,
            ) -> Result<Resource> {
                let columns = common::SpecColumns::of(spec);
                let mut tx = self.$writes.begin().await?;
                let existing = Self::find_resource(&mut tx, id, true).await?;
                let now = now_micros();
                sqlx::query("UPDATE resources SET kind = $1, sku = $2, tags = $3, settings = $4, etag = $5, updated_at = $6 WHERE internal_id = $7")
                    .bind(&spec.kind)
                    .bind(columns.sku)
                    .bind(columns.tags)
                    .bind(columns.settings)
                    .bind(new_etag())
                    .bind(now)
                    .bind(existing.internal_id.to_string())
                    .execute(&mut *tx)
                    .await?;
                let resource = Self::find_resource(&mut tx, id, false).await?;
                Self::emit_event(
                    &mut tx,
                    &$crate::events::NewEvent::arm($crate::events::RESOURCE_WRITE_SUCCESS, &resource.id, audit),
                )
                .await?;
                let changes = [Change {
                    resource: existing.internal_id,
                    slot: None,
                    change: "updated",
                    at: now,
                }];
                Self::append_log(&mut tx, &changes, audit).await?;
                tx.commit().await?;
                Ok(resource)
            }

            async fn resource(&self, id: &ResourceId) -> Result<Resource> {
                let mut conn = self.$reads.acquire().await?;
                Self::find_resource(&mut conn, id, false).await
            }

            async fn list_resources(
                &self,
                sub: &SubscriptionId,
                group: Option<&ResourceGroupName>,
                provider: &'static Provider,
            ) -> Result<Vec<Resource>> {
                let mut conn = self.$reads.acquire().await?;
                match group {
                    Some(g) => Self::require_group(&mut conn, sub, g).await?,
                    None => Self::require_subscription(&mut conn, sub).await?,
                }
                let rows = sqlx::query(
                    "SELECT r.*, g.name AS group_name FROM resources r
                     JOIN resource_groups g ON g.subscription_id = r.subscription_id AND g.name_key = r.group_key
                     WHERE r.subscription_id = $1 AND r.type_key = $2 AND (CAST($3 AS TEXT) IS NULL OR r.group_key = $3)
                     ORDER BY r.group_key, r.name_key",
                )
                .bind(sub.as_str())
                .bind(type_key(provider))
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
                let mut tx = self.$writes.begin().await?;
                let existing = match Self::find_resource(&mut tx, id, true).await {
                    Ok(r) => r,
                    Err(StoreError::ResourceNotFound(_)) => return Ok(false),
                    Err(e) => return Err(e),
                };
                sqlx::query("DELETE FROM resources WHERE internal_id = $1")
                    .bind(existing.internal_id.to_string())
                    .execute(&mut *tx)
                    .await?;
                Self::delete_assignments_under(&mut tx, &existing.id.to_string()).await?;
                Self::record_operation(&mut tx, operation).await?;
                Self::emit_event(
                    &mut tx,
                    &$crate::events::NewEvent::arm($crate::events::RESOURCE_DELETE_SUCCESS, &existing.id, audit),
                )
                .await?;
                // After the event: subscriptions above the resource get it; its own go with it.
                Self::delete_event_subscriptions_under(&mut tx, &existing.id.to_string()).await?;
                let changes = [Change {
                    resource: existing.internal_id,
                    slot: None,
                    change: "deleted",
                    at: now_micros(),
                }];
                Self::append_log(&mut tx, &changes, audit).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn regenerate_with(
                &self,
                id: &ResourceId,
                new_keys: Vec<(&'static Slot, Secret)>,
                operation: Option<&Operation>,
                audit: &AuditRecord,
                options: &$crate::RegenerateOptions<'_>,
            ) -> Result<(Resource, Vec<KeySlotState>)> {
                let mut tx = self.$writes.begin().await?;
                // The resource's row lock (where the backend has row locks) serializes
                // regenerations of it across nodes: each reads the generation the previous one
                // committed.
                let resource = Self::find_resource(&mut tx, id, true).await?;
                let internal = resource.internal_id.to_string();
                let now = now_micros();
                if let Some(remember) = &options.remember {
                    Self::claim_token(&mut tx, remember, now).await?;
                }
                let mut changes = Vec::with_capacity(new_keys.len());
                for (slot, secret) in &new_keys {
                    Self::retire_slot(&mut tx, &resource, slot, now, options.grace).await?;
                    let generation = sqlx::query_scalar::<_, i64>(
                        "SELECT generation FROM key_slots WHERE resource_id = $1 AND slot = $2",
                    )
                    .bind(&internal)
                    .bind(slot.name)
                    .fetch_one(&mut *tx)
                    .await?
                        + 1;
                    sqlx::query("UPDATE key_slots SET generation = $1, sealed = $2, digest = $3, created_at = $4 WHERE resource_id = $5 AND slot = $6")
                        .bind(generation)
                        .bind(self.sealer.seal(secret, &seal_context(&resource.internal_id, slot.name, generation)))
                        .bind(&self.sealer.digest(secret.expose())[..])
                        .bind(now)
                        .bind(&internal)
                        .bind(slot.name)
                        .execute(&mut *tx)
                        .await?;
                    changes.push(Change {
                        resource: resource.internal_id,
                        slot: Some(slot.name),
                        change: "regenerated",
                        at: now,
                    });
                }
                let slots = self.slots(&mut tx, &resource).await?;
                if let Some(remember) = &options.remember {
                    self.keep_answer(&mut tx, remember, &resource, &slots).await?;
                }
                Self::record_operation(&mut tx, operation).await?;
                Self::emit_event(
                    &mut tx,
                    &$crate::events::NewEvent::arm($crate::events::RESOURCE_ACTION_SUCCESS, &resource.id, audit),
                )
                .await?;
                Self::append_log(&mut tx, &changes, audit).await?;
                tx.commit().await?;
                Ok((resource, slots))
            }

            fn key_digest(&self, presented: &str) -> [u8; 32] {
                self.sealer.digest(presented)
            }

            async fn resource_with_key(&self, digest: &[u8; 32]) -> Result<Option<Uuid>> {
                // Both digest columns are indexed: a current key's (unique) and a replaced one's.
                let id = sqlx::query_scalar::<_, String>(
                    "SELECT resource_id FROM key_slots WHERE digest = $1
                     UNION ALL SELECT resource_id FROM retired_keys WHERE digest = $1
                     LIMIT 1",
                )
                .bind(&digest[..])
                .fetch_optional(&self.$reads)
                .await?;
                id.map(|id| Uuid::parse_str(&id).map_err(corrupt)).transpose()
            }

            async fn latest_change(&self) -> Result<i64> {
                Ok(
                    sqlx::query_scalar::<_, i64>("SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM changes")
                        .fetch_one(&self.$reads)
                        .await?,
                )
            }

            async fn changes_since(&self, after: i64) -> Result<(i64, Vec<Uuid>)> {
                let rows = sqlx::query("SELECT seq, resource_id FROM changes WHERE seq > $1 ORDER BY seq")
                    .bind(after)
                    .fetch_all(&self.$reads)
                    .await?;
                common::changed_resources(after, &rows)
            }

            async fn signing_keys(&self) -> Result<Vec<SigningKey>> {
                let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY created_at DESC, kid")
                    .fetch_all(&self.$reads)
                    .await?;
                rows.iter()
                    .map(|row| common::signing_key_row(&self.sealer, row))
                    .collect()
            }

            async fn rotate_signing_key(&self, key: &SigningKey, audit: &AuditRecord) -> Result<()> {
                let mut tx = self.$writes.begin().await?;
                sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
                    .bind(now_micros())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO signing_keys (kid, sealed, public_key, created_at, retired_at) VALUES ($1, $2, $3, $4, NULL)",
                )
                .bind(&key.kid)
                .bind(common::seal_signing_key(&self.sealer, key))
                .bind(&key.public_key)
                .bind(to_micros(key.created_at))
                .execute(&mut *tx)
                .await?;
                Self::append_log(&mut tx, &[], audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn operation(&self, sub: &SubscriptionId, id: &Uuid) -> Result<Option<Operation>> {
                let row = sqlx::query("SELECT * FROM operations WHERE id = $1 AND subscription_id = $2")
                    .bind(id.to_string())
                    .bind(sub.as_str())
                    .fetch_optional(&self.$reads)
                    .await?;
                Ok(row.map(|row| common::operation_row(&row, id, sub)))
            }

            async fn put_event_subscription(
                &self,
                s: &$crate::events::EventSubscription,
                secret: &Secret,
                audit: &AuditRecord,
            ) -> Result<($crate::events::EventSubscription, Written)> {
                retrying(|| self.try_put_event_subscription(s, secret, audit)).await
            }

            async fn event_subscription(
                &self,
                scope: &str,
                name: &str,
            ) -> Result<Option<$crate::events::EventSubscription>> {
                let mut conn = self.$reads.acquire().await?;
                Self::event_subscription_in(&mut conn, scope, name).await
            }

            async fn list_event_subscriptions(
                &self,
                scope: &str,
            ) -> Result<Vec<$crate::events::EventSubscription>> {
                let rows = sqlx::query(
                    "SELECT * FROM event_subscriptions WHERE scope_key = $1 ORDER BY name_key",
                )
                .bind(scope_key(scope))
                .fetch_all(&self.$reads)
                .await?;
                rows.iter().map(common::event_subscription_row).collect()
            }

            async fn delete_event_subscription(
                &self,
                scope: &str,
                name: &str,
                audit: &AuditRecord,
            ) -> Result<bool> {
                let mut tx = self.$writes.begin().await?;
                let deleted = sqlx::query(
                    "DELETE FROM event_subscriptions WHERE scope_key = $1 AND name_key = $2",
                )
                .bind(scope_key(scope))
                .bind(name.to_ascii_lowercase())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if deleted == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                // Events nobody is left to receive.
                sqlx::query(
                    "DELETE FROM events WHERE NOT EXISTS (SELECT 1 FROM event_deliveries d WHERE d.event_id = events.id)",
                )
                .execute(&mut *tx)
                .await?;
                Self::append_log(&mut tx, &[], audit).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn claim_deliveries(
                &self,
                owner: &str,
                lease: std::time::Duration,
                limit: i64,
            ) -> Result<Vec<$crate::events::Delivery>> {
                let now = now_micros();
                let until = now + lease.as_micros() as i64;
                let claim = format!(
                    "UPDATE event_deliveries SET lease_owner = $1, lease_until = $2
                     WHERE (event_id, target_id) IN (
                         SELECT event_id, target_id FROM event_deliveries
                         WHERE state = 'pending' AND next_attempt_at <= $3
                           AND (lease_until IS NULL OR lease_until < $3)
                         ORDER BY next_attempt_at LIMIT $4{})
                     RETURNING event_id, target_id, attempts",
                    Self::CLAIM_LOCK
                );
                let claimed = sqlx::query(&claim)
                    .bind(owner)
                    .bind(until)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&self.$writes)
                    .await?;
                let mut out = Vec::with_capacity(claimed.len());
                for row in &claimed {
                    let joined = sqlx::query(
                        "SELECT s.*, e.id AS e_id, e.subscription_id AS e_subscription_id, e.subject AS e_subject,
                                e.event_type AS e_event_type, e.event_time AS e_event_time, e.data AS e_data
                         FROM event_subscriptions s, events e WHERE s.id = $1 AND e.id = $2",
                    )
                    .bind(row.text("target_id"))
                    .bind(row.text("event_id"))
                    .fetch_optional(&self.$reads)
                    .await?;
                    // Deleted meanwhile: the delivery went with it.
                    let Some(joined) = joined else { continue };
                    let target = common::event_subscription_row(&joined)?;
                    let secret = self.sealer.open(
                        joined.bytes("sealed_secret"),
                        &common::event_secret_context(&target.id),
                    )?;
                    out.push($crate::events::Delivery {
                        event: common::event_row(&joined, "e_")?,
                        target,
                        secret,
                        attempts: row.int("attempts"),
                    });
                }
                Ok(out)
            }

            async fn finish_delivery(
                &self,
                event: &Uuid,
                target: &Uuid,
                owner: &str,
                outcome: &$crate::events::DeliveryOutcome,
            ) -> Result<()> {
                use $crate::events::DeliveryOutcome;
                let mut tx = self.$writes.begin().await?;
                let (event_id, target_id) = (event.to_string(), target.to_string());
                match outcome {
                    DeliveryOutcome::Delivered => {
                        sqlx::query(
                            "DELETE FROM event_deliveries WHERE event_id = $1 AND target_id = $2 AND lease_owner = $3",
                        )
                        .bind(&event_id)
                        .bind(&target_id)
                        .bind(owner)
                        .execute(&mut *tx)
                        .await?;
                        sqlx::query(
                            "DELETE FROM events WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM event_deliveries WHERE event_id = $1)",
                        )
                        .bind(&event_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    DeliveryOutcome::Retry { at, error } => {
                        sqlx::query(
                            "UPDATE event_deliveries SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2, lease_owner = NULL, lease_until = NULL
                             WHERE event_id = $3 AND target_id = $4 AND lease_owner = $5",
                        )
                        .bind(to_micros(*at))
                        .bind(error)
                        .bind(&event_id)
                        .bind(&target_id)
                        .bind(owner)
                        .execute(&mut *tx)
                        .await?;
                    }
                    DeliveryOutcome::Dead { reason, error } => {
                        sqlx::query(
                            "UPDATE event_deliveries SET state = 'dead', attempts = attempts + 1, dead_at = $1, last_error = $2, dead_reason = $6, lease_owner = NULL, lease_until = NULL
                             WHERE event_id = $3 AND target_id = $4 AND lease_owner = $5",
                        )
                        .bind(now_micros())
                        .bind(error)
                        .bind(&event_id)
                        .bind(&target_id)
                        .bind(owner)
                        .bind(reason)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn dead_letters(&self, target: &Uuid) -> Result<Vec<$crate::events::DeadLetter>> {
                let rows = sqlx::query(
                    "SELECT d.attempts, d.last_error, d.dead_reason, d.dead_at, e.id AS e_id, e.subscription_id AS e_subscription_id,
                            e.subject AS e_subject, e.event_type AS e_event_type, e.event_time AS e_event_time, e.data AS e_data
                     FROM event_deliveries d JOIN events e ON e.id = d.event_id
                     WHERE d.target_id = $1 AND d.state = 'dead' ORDER BY d.dead_at, e.id",
                )
                .bind(target.to_string())
                .fetch_all(&self.$reads)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok($crate::events::DeadLetter {
                            event: common::event_row(row, "e_")?,
                            attempts: row.int("attempts"),
                            reason: row.opt_string("dead_reason").unwrap_or_default(),
                            last_error: row.opt_string("last_error").unwrap_or_default(),
                            dead_at: $crate::columns::from_micros(row.opt_int("dead_at").unwrap_or_default()),
                        })
                    })
                    .collect()
            }

            async fn outbox_depth(&self) -> Result<i64> {
                Ok(sqlx::query_scalar::<_, i64>(
                    "SELECT CAST(COUNT(*) AS BIGINT) FROM event_deliveries WHERE state = 'pending'",
                )
                .fetch_one(&self.$reads)
                .await?)
            }

            async fn overdue_keys(&self) -> Result<i64> {
                Ok(sqlx::query_scalar::<_, i64>(
                    "SELECT CAST(COUNT(*) AS BIGINT) FROM key_age_notices n
                     JOIN key_slots k ON k.resource_id = n.resource_id AND k.slot = n.slot
                                     AND k.generation = n.generation",
                )
                .fetch_one(&self.$reads)
                .await?)
            }

            async fn key_policy(&self, sub: &SubscriptionId) -> Result<Option<i64>> {
                Ok(sqlx::query_scalar::<_, i64>(
                    "SELECT max_key_age_days FROM key_policies WHERE subscription_id = $1",
                )
                .bind(sub.as_str().to_ascii_lowercase())
                .fetch_optional(&self.$reads)
                .await?)
            }

            async fn put_key_policy(
                &self,
                sub: &SubscriptionId,
                max_key_age_days: i64,
                audit: &AuditRecord,
            ) -> Result<()> {
                let mut tx = self.$writes.begin().await?;
                Self::require_subscription(&mut tx, sub).await?;
                sqlx::query(
                    "INSERT INTO key_policies (subscription_id, max_key_age_days, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (subscription_id) DO UPDATE SET max_key_age_days = $2, updated_at = $3",
                )
                .bind(sub.as_str().to_ascii_lowercase())
                .bind(max_key_age_days)
                .bind(now_micros())
                .execute(&mut *tx)
                .await?;
                Self::append_log(&mut tx, &[], audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn sweep_key_ages(
                &self,
                now: OffsetDateTime,
            ) -> Result<Vec<$crate::events::OverdueKey>> {
                let policies: std::collections::HashMap<String, i64> = sqlx::query(
                    "SELECT subscription_id, max_key_age_days FROM key_policies",
                )
                .fetch_all(&self.$reads)
                .await?
                .iter()
                .map(|r| (r.text("subscription_id").to_string(), r.int("max_key_age_days")))
                .collect();
                let rows = sqlx::query(
                    "SELECT r.*, g.name AS group_name, k.slot AS k_slot, k.generation AS k_generation, k.created_at AS k_created_at
                     FROM resources r
                     JOIN resource_groups g ON g.subscription_id = r.subscription_id AND g.name_key = r.group_key
                     JOIN key_slots k ON k.resource_id = r.internal_id
                     WHERE k.created_at < $1
                       AND (LOWER(r.settings) LIKE '%\"x-rekey-maxkeyagedays\"%'
                            OR LOWER(r.subscription_id) IN (SELECT subscription_id FROM key_policies))
                       AND NOT EXISTS (SELECT 1 FROM key_age_notices n
                                       WHERE n.resource_id = k.resource_id AND n.slot = k.slot AND n.generation = k.generation)",
                )
                // No limit is under a day, and a key is overdue only under a limit: what is
                // younger, or has no limit, is never read, so the sweep's cost follows old keys.
                .bind(to_micros(now - time::Duration::days(*rekey_core::resource::MAX_KEY_AGE_DAYS.start())))
                .fetch_all(&self.$reads)
                .await?;
                let mut emitted = Vec::new();
                for row in &rows {
                    let resource = common::resource_row(row)?;
                    let default = policies
                        .get(&resource.id.subscription.as_str().to_ascii_lowercase())
                        .copied();
                    let Some(max) = $crate::events::max_key_age_days(&resource.spec.settings, default)
                    else {
                        continue;
                    };
                    let created_at = $crate::columns::from_micros(row.int("k_created_at"));
                    if now - created_at <= time::Duration::days(max) {
                        continue;
                    }
                    let overdue = $crate::events::OverdueKey {
                        resource: resource.id.clone(),
                        slot: row.string("k_slot"),
                        generation: row.int("k_generation"),
                        created_at,
                        max_age_days: max,
                    };
                    let mut tx = self.$writes.begin().await?;
                    // The notice row is the once-only guard: a racing node's insert conflicts.
                    let inserted = sqlx::query(
                        "INSERT INTO key_age_notices (resource_id, slot, generation, at)
                         SELECT $1, $2, $3, $4 WHERE EXISTS
                             (SELECT 1 FROM key_slots WHERE resource_id = $1 AND slot = $2 AND generation = $3)
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(resource.internal_id.to_string())
                    .bind(&overdue.slot)
                    .bind(overdue.generation)
                    .bind(to_micros(now))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if inserted == 0 {
                        tx.rollback().await?;
                        continue;
                    }
                    let data = serde_json::json!({
                        "resourceUri": resource.id.to_string(),
                        "keyName": overdue.slot,
                        "keyCreatedAt": $crate::events::rfc3339(created_at),
                        "ageDays": $crate::events::age_days(created_at, now),
                        "maxKeyAgeDays": max,
                        "subscriptionId": resource.id.subscription.to_string(),
                    });
                    let event = $crate::events::NewEvent::about(
                        $crate::events::KEY_AGE_EXCEEDED,
                        &resource.id,
                        data,
                    );
                    Self::emit_event(&mut tx, &event).await?;
                    tx.commit().await?;
                    emitted.push(overdue);
                }
                Ok(emitted)
            }
        }
        // The rotation tables' methods, over the same connections.
        rotation_impl! {
            store: $store,
            conn: $conn,
            reads: $reads,
            writes: $writes
        }
    };
}
