//! The audit log on PostgreSQL. An append locks the one-row `audit_head` (`SELECT … FOR
//! UPDATE`) in its transaction, writes the entry after the head and moves the head: appends
//! from every node take turns, so the chain never forks.

use otpd_core::audit::{Actor, AuditDraft, AuditEntry, AuditFilter, canonical_json};
use otpd_core::store::AuditStore;
use otpd_core::{AccountId, StoreError, Timestamp};
use uuid::Uuid;

use crate::{PgStore, db_error};

const COLUMNS: &str = "seq, id, at, actor_kind, actor_id, account_id, source, action, target, \
                       summary, prev_hash, hash";

type EntryRow = (
    i64,
    Uuid,
    i64,
    String,
    String,
    Option<Uuid>,
    Option<String>,
    String,
    String,
    String,
    Vec<u8>,
    Vec<u8>,
);

impl AuditStore for PgStore {
    async fn append_audit(&self, draft: &AuditDraft) -> Result<AuditEntry, StoreError> {
        let mut transaction = self.pool.begin().await.map_err(db_error)?;
        let (seq, prev): (i64, Vec<u8>) =
            sqlx::query_as("SELECT seq, hash FROM audit_head FOR UPDATE")
                .fetch_one(&mut *transaction)
                .await
                .map_err(db_error)?;
        let entry = AuditEntry::link(draft.clone(), Uuid::now_v7(), seq + 1, hash32(prev)?);
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO audit_log ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        )))
        .bind(entry.seq)
        .bind(entry.id)
        .bind(entry.at.0)
        .bind(entry.actor.kind())
        .bind(entry.actor.id())
        .bind(entry.account.map(|a| a.uuid()))
        .bind(&entry.source)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(canonical_json(&entry.summary))
        .bind(entry.prev_hash.as_slice())
        .bind(entry.hash.as_slice())
        .execute(&mut *transaction)
        .await
        .map_err(db_error)?;
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2")
            .bind(entry.seq)
            .bind(entry.hash.as_slice())
            .execute(&mut *transaction)
            .await
            .map_err(db_error)?;
        transaction.commit().await.map_err(db_error)?;
        Ok(entry)
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let rows: Vec<EntryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM audit_log \
             WHERE ($1::uuid IS NULL OR account_id = $1) \
             AND ($2::text IS NULL OR actor_id = $2) \
             AND ($3::text IS NULL OR action = $3) \
             AND ($4::text IS NULL OR target = $4) \
             AND ($5::bigint IS NULL OR at >= $5) \
             AND ($6::bigint IS NULL OR at < $6) \
             AND ($7::uuid IS NULL OR seq < (SELECT seq FROM audit_log WHERE id = $7)) \
             ORDER BY seq DESC LIMIT $8"
        )))
        .bind(filter.account.map(|a| a.uuid()))
        .bind(&filter.actor)
        .bind(&filter.action)
        .bind(&filter.target)
        .bind(filter.since.map(|t| t.0))
        .bind(filter.until.map(|t| t.0))
        .bind(filter.after)
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter().map(entry).collect()
    }

    async fn audit_chain(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows: Vec<EntryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
        )))
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter().map(entry).collect()
    }
}

fn hash32(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("audit hash".into()))
}

/// A row as stored. A field that no longer decodes is read as far as it goes (an unknown
/// actor as an operator named by the stored text, a summary that is not JSON as a string) so
/// that `otpd audit verify` names the entry through its hash instead of failing to read it.
fn entry(row: EntryRow) -> Result<AuditEntry, StoreError> {
    let (seq, id, at, kind, actor_id, account, source, action, target, summary, prev, hash) = row;
    Ok(AuditEntry {
        seq,
        id,
        at: Timestamp(at),
        actor: Actor::from_parts(&kind, &actor_id)
            .unwrap_or_else(|| Actor::Operator(format!("{kind}:{actor_id}"))),
        account: account.map(AccountId::from_uuid),
        source,
        action,
        target,
        summary: serde_json::from_str(&summary).unwrap_or(serde_json::Value::String(summary)),
        prev_hash: hash32(prev)?,
        hash: hash32(hash)?,
    })
}
