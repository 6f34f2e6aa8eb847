//! The audit log on SQLite. Appends go through the writer, one transaction at a time (`BEGIN
//! IMMEDIATE`, which also holds off the CLI's own writer), so reading the newest entry and
//! writing the next one cannot interleave with another append.

use otpd_core::audit::{Actor, AuditDraft, AuditEntry, AuditFilter, GENESIS, canonical_json};
use otpd_core::store::AuditStore;
use otpd_core::{AccountId, StoreError, Timestamp};
use rusqlite::{Row, params};
use uuid::Uuid;

use crate::{SqliteStore, execute, query_all, query_one, rows};

const COLUMNS: &str = "seq, id, at, actor_kind, actor_id, account_id, source, action, target, \
                       summary, prev_hash, hash";

impl AuditStore for SqliteStore {
    async fn append_audit(&self, draft: &AuditDraft) -> Result<AuditEntry, StoreError> {
        let draft = draft.clone();
        let id = Uuid::now_v7();
        self.write(move |connection| {
            let head = query_one(
                connection,
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                [],
                |row| Ok((rows::get::<i64>(row, 0)?, blob32(row, 1)?)),
            )?;
            let (seq, prev) = head.map_or((1, GENESIS), |(seq, hash)| (seq + 1, hash));
            let entry = AuditEntry::link(draft.clone(), id, seq, prev);
            execute(
                connection,
                &format!(
                    "INSERT INTO audit_log ({COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ),
                params![
                    entry.seq,
                    entry.id.as_bytes().as_slice(),
                    entry.at.0,
                    entry.actor.kind(),
                    entry.actor.id(),
                    entry.account.map(|a| a.as_bytes().to_vec()),
                    entry.source,
                    entry.action,
                    entry.target,
                    canonical_json(&entry.summary),
                    entry.prev_hash.as_slice(),
                    entry.hash.as_slice(),
                ],
            )?;
            Ok(entry)
        })
        .await
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let f = filter.clone();
        self.read(move |connection| {
            let mut sql = format!("SELECT {COLUMNS} FROM audit_log WHERE 1 = 1");
            let mut values: Vec<rusqlite::types::Value> = Vec::new();
            let mut push = |clause: &str, value: rusqlite::types::Value| {
                values.push(value);
                sql.push_str(&format!(" AND {clause} ?{}", values.len()));
            };
            if let Some(account) = f.account {
                push("account_id =", account.as_bytes().to_vec().into());
            }
            if let Some(actor) = &f.actor {
                push("actor_id =", actor.clone().into());
            }
            if let Some(action) = &f.action {
                push("action =", action.clone().into());
            }
            if let Some(target) = &f.target {
                push("target =", target.clone().into());
            }
            if let Some(since) = f.since {
                push("at >=", since.0.into());
            }
            if let Some(until) = f.until {
                push("at <", until.0.into());
            }
            if let Some(after) = f.after {
                push(
                    "seq < (SELECT seq FROM audit_log WHERE id =",
                    after.as_bytes().to_vec().into(),
                );
                sql.push(')');
            }
            sql.push_str(&format!(" ORDER BY seq DESC LIMIT {}", f.limit));
            query_all(
                connection,
                &sql,
                rusqlite::params_from_iter(values),
                entry_row,
            )
        })
        .await
    }

    async fn audit_chain(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(move |connection| {
            query_all(
                connection,
                &format!("SELECT {COLUMNS} FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
                params![after_seq, limit],
                entry_row,
            )
        })
        .await
    }
}

fn blob32(row: &Row, index: usize) -> Result<[u8; 32], StoreError> {
    let bytes: Vec<u8> = rows::get(row, index)?;
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("audit hash".into()))
}

/// A row as stored. A field that no longer decodes is read as far as it goes (an unknown
/// actor as an operator named by the stored text) so that `otpd audit verify` names the entry
/// through its hash instead of failing to read it.
fn entry_row(row: &Row) -> Result<AuditEntry, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("audit {what}"));
    let id: Vec<u8> = rows::get(row, 1)?;
    let kind: String = rows::get(row, 3)?;
    let actor_id: String = rows::get(row, 4)?;
    let account: Option<Vec<u8>> = rows::get(row, 5)?;
    let summary: String = rows::get(row, 9)?;
    Ok(AuditEntry {
        seq: rows::get(row, 0)?,
        id: Uuid::from_slice(&id).map_err(|_| corrupt("id"))?,
        at: Timestamp(rows::get(row, 2)?),
        actor: Actor::from_parts(&kind, &actor_id)
            .unwrap_or_else(|| Actor::Operator(format!("{kind}:{actor_id}"))),
        account: account
            .map(|bytes| Uuid::from_slice(&bytes).map(AccountId::from_uuid))
            .transpose()
            .map_err(|_| corrupt("account"))?,
        source: rows::get(row, 6)?,
        action: rows::get(row, 7)?,
        target: rows::get(row, 8)?,
        summary: serde_json::from_str(&summary).unwrap_or(serde_json::Value::String(summary)),
        prev_hash: blob32(row, 10)?,
        hash: blob32(row, 11)?,
    })
}
