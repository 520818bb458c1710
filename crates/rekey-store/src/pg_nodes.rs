//! Owns the PostgreSQL [`NodeTable`]: one row per node that follows the change feed, with the feed
//! position it acknowledged, the number of its last lease renewal (from one sequence, so a number
//! is never seen twice), and whether the others expelled it.
//!
//! Renewals and expulsions of a node both update its row, so they take its row lock one after the
//! other; each re-reads the row after waiting (READ COMMITTED), so a renewal that lost the race finds
//! the node expelled, and an expulsion that lost it finds a new renewal number and leaves the row be.
//! Joining takes the feed's commit lock ([`LOG_LOCK`]), so the position it checks is the feed's last
//! committed one and no change commits until the join has.

use async_trait::async_trait;
use sqlx::PgPool;
use uuid::Uuid;

use crate::columns::{corrupt, now_micros};
use crate::postgres::{ACK_CHANNEL, LOG_LOCK};
use crate::{NodeTable, Result};

pub(crate) struct PgNodeTable {
    pub(crate) pool: PgPool,
}

#[async_trait]
impl NodeTable for PgNodeTable {
    async fn join(&self, node: Uuid, applied: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LOG_LOCK)
            .execute(&mut *tx)
            .await?;
        let latest: i64 =
            sqlx::query_scalar("SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM changes")
                .fetch_one(&mut *tx)
                .await?;
        if latest > applied {
            return Ok(false);
        }
        sqlx::query("DELETE FROM nodes WHERE expelled")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO nodes (id, applied, renewals, expelled, joined_at)
             VALUES ($1, $2, nextval('node_renewals'), false, $3)
             ON CONFLICT (id) DO UPDATE
             SET applied = excluded.applied, renewals = excluded.renewals, expelled = false",
        )
        .bind(node.to_string())
        .bind(applied)
        .bind(now_micros())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn renew(&self, node: Uuid, applied: i64) -> Result<bool> {
        let renewed: i64 = sqlx::query_scalar(
            "WITH renewed AS (
                 UPDATE nodes SET applied = GREATEST(applied, $2), renewals = nextval('node_renewals')
                 WHERE id = $1 AND NOT expelled
                 RETURNING applied
             )
             SELECT count(*) FROM (SELECT pg_notify($3, applied::text) FROM renewed) AS notified",
        )
        .bind(node.to_string())
        .bind(applied)
        .bind(ACK_CHANNEL)
        .fetch_one(&self.pool)
        .await?;
        Ok(renewed > 0)
    }

    async fn lagging(&self, except: Uuid, position: i64) -> Result<Vec<(Uuid, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT id, renewals FROM nodes WHERE id <> $1 AND NOT expelled AND applied < $2",
        )
        .bind(except.to_string())
        .bind(position)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, renewals)| Ok((Uuid::parse_str(&id).map_err(corrupt)?, renewals)))
            .collect()
    }

    async fn expel(&self, node: Uuid, renewal: Option<i64>, position: i64) -> Result<bool> {
        let expelled = sqlx::query(
            "UPDATE nodes SET expelled = true
             WHERE id = $1 AND NOT expelled AND applied < $3
               AND ($2::bigint IS NULL OR renewals = $2)",
        )
        .bind(node.to_string())
        .bind(renewal)
        .bind(position)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(expelled > 0)
    }

    async fn leave(&self, node: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM nodes WHERE id = $1")
            .bind(node.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
