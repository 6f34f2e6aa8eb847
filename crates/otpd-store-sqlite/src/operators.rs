//! Console operators and their sessions on SQLite. Writes go through the writer; a failed
//! sign-in is counted by one `UPDATE … RETURNING`, so the count and the lock move together.

use otpd_core::clock::Timestamp;
use otpd_core::ids::OperatorId;
use otpd_core::operators::{Operator, OperatorSession, Role};
use otpd_core::store::{OperatorStore, StoreError};
use rusqlite::{Row, params};

use crate::{SqliteStore, execute, query_all, query_one, rows};

const COLUMNS: &str = "id, email, role, password_hash, totp_sealed, totp_last_step, disabled, \
                       failed_sign_ins, locked_until, invitation_hash, invitation_expires_at, \
                       created_at";

const SESSION_COLUMNS: &str =
    "token_hash, operator_id, second_factor_pending, created_at, last_seen_at";

impl OperatorStore for SqliteStore {
    async fn create_operator(&self, operator: &Operator) -> Result<(), StoreError> {
        let o = operator.clone();
        self.write(move |connection| {
            execute(
                connection,
                &format!(
                    "INSERT INTO operators ({COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ),
                params![
                    o.id.as_bytes().as_slice(),
                    o.email,
                    o.role.as_str(),
                    o.password_hash,
                    o.totp_sealed,
                    o.totp_last_step,
                    o.disabled,
                    o.failed_sign_ins,
                    o.locked_until.map(|t| t.0),
                    o.invitation_hash.map(|h| h.to_vec()),
                    o.invitation_expires_at.map(|t| t.0),
                    o.created_at.0,
                ],
            )
            .map(drop)
        })
        .await
    }

    async fn operator(&self, id: OperatorId) -> Result<Option<Operator>, StoreError> {
        self.read(move |connection| {
            query_one(
                connection,
                &format!("SELECT {COLUMNS} FROM operators WHERE id = ?1"),
                [id.as_bytes().as_slice()],
                operator_row,
            )
        })
        .await
    }

    async fn operator_by_email(&self, email: &str) -> Result<Option<Operator>, StoreError> {
        let email = email.to_string();
        self.read(move |connection| {
            query_one(
                connection,
                &format!("SELECT {COLUMNS} FROM operators WHERE email = ?1"),
                [email],
                operator_row,
            )
        })
        .await
    }

    async fn operator_by_invitation(
        &self,
        invitation_hash: [u8; 32],
    ) -> Result<Option<Operator>, StoreError> {
        self.read(move |connection| {
            query_one(
                connection,
                &format!("SELECT {COLUMNS} FROM operators WHERE invitation_hash = ?1"),
                [invitation_hash.as_slice()],
                operator_row,
            )
        })
        .await
    }

    async fn operators(&self) -> Result<Vec<Operator>, StoreError> {
        self.read(move |connection| {
            query_all(
                connection,
                &format!("SELECT {COLUMNS} FROM operators ORDER BY created_at, id"),
                [],
                operator_row,
            )
        })
        .await
    }

    async fn update_operator(&self, operator: &Operator) -> Result<bool, StoreError> {
        let o = operator.clone();
        self.write(move |connection| {
            execute(
                connection,
                "UPDATE operators SET role = ?2, password_hash = ?3, totp_sealed = ?4, \
                 totp_last_step = ?5, disabled = ?6, failed_sign_ins = ?7, locked_until = ?8, \
                 invitation_hash = ?9, invitation_expires_at = ?10 WHERE id = ?1",
                params![
                    o.id.as_bytes().as_slice(),
                    o.role.as_str(),
                    o.password_hash,
                    o.totp_sealed,
                    o.totp_last_step,
                    o.disabled,
                    o.failed_sign_ins,
                    o.locked_until.map(|t| t.0),
                    o.invitation_hash.map(|h| h.to_vec()),
                    o.invitation_expires_at.map(|t| t.0),
                ],
            )
            .map(|changed| changed > 0)
        })
        .await
    }

    async fn record_failed_sign_in(
        &self,
        id: OperatorId,
        lock_after: u32,
        locked_until: Timestamp,
    ) -> Result<u32, StoreError> {
        self.write(move |connection| {
            // Every right-hand side reads the row as it was before this statement.
            let count = query_one(
                connection,
                "UPDATE operators SET \
                 failed_sign_ins = CASE WHEN failed_sign_ins + 1 >= ?2 THEN 0 \
                                        ELSE failed_sign_ins + 1 END, \
                 locked_until = CASE WHEN failed_sign_ins + 1 >= ?2 THEN ?3 \
                                     ELSE locked_until END \
                 WHERE id = ?1 RETURNING failed_sign_ins",
                params![id.as_bytes().as_slice(), lock_after, locked_until.0],
                |row| rows::get::<u32>(row, 0),
            )?;
            // No such operator: nothing was counted.
            Ok(count.unwrap_or(0))
        })
        .await
    }

    async fn create_session(&self, session: &OperatorSession) -> Result<(), StoreError> {
        let s = session.clone();
        self.write(move |connection| {
            execute(
                connection,
                &format!(
                    "INSERT INTO operator_sessions ({SESSION_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5)"
                ),
                params![
                    s.token_hash.as_slice(),
                    s.operator.as_bytes().as_slice(),
                    s.second_factor_pending,
                    s.created_at.0,
                    s.last_seen_at.0,
                ],
            )
            .map(drop)
        })
        .await
    }

    async fn session(&self, token_hash: [u8; 32]) -> Result<Option<OperatorSession>, StoreError> {
        self.read(move |connection| {
            query_one(
                connection,
                &format!("SELECT {SESSION_COLUMNS} FROM operator_sessions WHERE token_hash = ?1"),
                [token_hash.as_slice()],
                session_row,
            )
        })
        .await
    }

    async fn touch_session(&self, token_hash: [u8; 32], at: Timestamp) -> Result<bool, StoreError> {
        self.write(move |connection| {
            execute(
                connection,
                "UPDATE operator_sessions SET last_seen_at = ?2 WHERE token_hash = ?1",
                params![token_hash.as_slice(), at.0],
            )
            .map(|changed| changed > 0)
        })
        .await
    }

    async fn delete_session(&self, token_hash: [u8; 32]) -> Result<bool, StoreError> {
        self.write(move |connection| {
            execute(
                connection,
                "DELETE FROM operator_sessions WHERE token_hash = ?1",
                [token_hash.as_slice()],
            )
            .map(|changed| changed > 0)
        })
        .await
    }

    async fn delete_sessions_of(&self, operator: OperatorId) -> Result<u64, StoreError> {
        self.write(move |connection| {
            execute(
                connection,
                "DELETE FROM operator_sessions WHERE operator_id = ?1",
                [operator.as_bytes().as_slice()],
            )
            .map(|changed| changed as u64)
        })
        .await
    }

    async fn delete_stale_sessions(
        &self,
        idle_before: Timestamp,
        created_before: Timestamp,
    ) -> Result<u64, StoreError> {
        self.write(move |connection| {
            execute(
                connection,
                "DELETE FROM operator_sessions WHERE last_seen_at < ?1 OR created_at < ?2",
                params![idle_before.0, created_before.0],
            )
            .map(|changed| changed as u64)
        })
        .await
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("operator {what}"))
}

fn hash32(bytes: Vec<u8>, what: &str) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|_| corrupt(what))
}

fn operator_row(row: &Row) -> Result<Operator, StoreError> {
    let role: String = rows::get(row, 2)?;
    let invitation: Option<Vec<u8>> = rows::get(row, 9)?;
    Ok(Operator {
        id: OperatorId::from_uuid(rows::uuid(row, 0)?),
        email: rows::get(row, 1)?,
        role: Role::parse(&role).ok_or_else(|| corrupt("role"))?,
        password_hash: rows::get(row, 3)?,
        totp_sealed: rows::get(row, 4)?,
        totp_last_step: rows::get(row, 5)?,
        disabled: rows::get(row, 6)?,
        failed_sign_ins: rows::get(row, 7)?,
        locked_until: rows::get::<Option<i64>>(row, 8)?.map(Timestamp),
        invitation_hash: invitation
            .map(|bytes| hash32(bytes, "invitation hash"))
            .transpose()?,
        invitation_expires_at: rows::get::<Option<i64>>(row, 10)?.map(Timestamp),
        created_at: Timestamp(rows::get(row, 11)?),
    })
}

fn session_row(row: &Row) -> Result<OperatorSession, StoreError> {
    Ok(OperatorSession {
        token_hash: hash32(rows::get(row, 0)?, "session hash")?,
        operator: OperatorId::from_uuid(rows::uuid(row, 1)?),
        second_factor_pending: rows::get(row, 2)?,
        created_at: Timestamp(rows::get(row, 3)?),
        last_seen_at: Timestamp(rows::get(row, 4)?),
    })
}
