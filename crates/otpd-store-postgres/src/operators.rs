//! Console operators and their sessions on PostgreSQL. A failed sign-in is counted by one
//! `UPDATE … RETURNING`, which locks the row: failures from several nodes at once each count,
//! and the count and the lock move together.

use otpd_core::clock::Timestamp;
use otpd_core::ids::OperatorId;
use otpd_core::operators::{Operator, OperatorSession, Role};
use otpd_core::store::{OperatorStore, StoreError};
use uuid::Uuid;

use crate::{PgStore, db_error};

const COLUMNS: &str = "id, email, role, password_hash, totp_sealed, totp_last_step, disabled, \
                       failed_sign_ins, locked_until, invitation_hash, invitation_expires_at, \
                       created_at";

const SESSION_COLUMNS: &str =
    "token_hash, operator_id, second_factor_pending, created_at, last_seen_at";

type OperatorRow = (
    Uuid,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    bool,
    i32,
    Option<i64>,
    Option<Vec<u8>>,
    Option<i64>,
    i64,
);

type SessionRow = (Vec<u8>, Uuid, bool, i64, i64);

impl OperatorStore for PgStore {
    async fn create_operator(&self, o: &Operator) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO operators ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        )))
        .bind(o.id.uuid())
        .bind(&o.email)
        .bind(o.role.as_str())
        .bind(&o.password_hash)
        .bind(&o.totp_sealed)
        .bind(o.totp_last_step)
        .bind(o.disabled)
        .bind(count(o.failed_sign_ins))
        .bind(o.locked_until.map(|t| t.0))
        .bind(o.invitation_hash.map(|h| h.to_vec()))
        .bind(o.invitation_expires_at.map(|t| t.0))
        .bind(o.created_at.0)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn operator(&self, id: OperatorId) -> Result<Option<Operator>, StoreError> {
        let row: Option<OperatorRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM operators WHERE id = $1"
        )))
        .bind(id.uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(operator).transpose()
    }

    async fn operator_by_email(&self, email: &str) -> Result<Option<Operator>, StoreError> {
        let row: Option<OperatorRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM operators WHERE email = $1"
        )))
        .bind(email)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(operator).transpose()
    }

    async fn operator_by_invitation(
        &self,
        invitation_hash: [u8; 32],
    ) -> Result<Option<Operator>, StoreError> {
        let row: Option<OperatorRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM operators WHERE invitation_hash = $1"
        )))
        .bind(invitation_hash.as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(operator).transpose()
    }

    async fn operators(&self) -> Result<Vec<Operator>, StoreError> {
        let rows: Vec<OperatorRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM operators ORDER BY created_at, id"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter().map(operator).collect()
    }

    async fn update_operator(&self, o: &Operator) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE operators SET role = $2, password_hash = $3, totp_sealed = $4, \
             totp_last_step = $5, disabled = $6, failed_sign_ins = $7, locked_until = $8, \
             invitation_hash = $9, invitation_expires_at = $10 WHERE id = $1",
        )
        .bind(o.id.uuid())
        .bind(o.role.as_str())
        .bind(&o.password_hash)
        .bind(&o.totp_sealed)
        .bind(o.totp_last_step)
        .bind(o.disabled)
        .bind(count(o.failed_sign_ins))
        .bind(o.locked_until.map(|t| t.0))
        .bind(o.invitation_hash.map(|h| h.to_vec()))
        .bind(o.invitation_expires_at.map(|t| t.0))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn record_failed_sign_in(
        &self,
        id: OperatorId,
        lock_after: u32,
        locked_until: Timestamp,
    ) -> Result<u32, StoreError> {
        // Every right-hand side reads the row as it was before this statement; the row lock
        // makes a concurrent failure wait and then count on top of this one.
        let counted: Option<i32> = sqlx::query_scalar(
            "UPDATE operators SET \
             failed_sign_ins = CASE WHEN failed_sign_ins + 1 >= $2 THEN 0 \
                                    ELSE failed_sign_ins + 1 END, \
             locked_until = CASE WHEN failed_sign_ins + 1 >= $2 THEN $3 \
                                 ELSE locked_until END \
             WHERE id = $1 RETURNING failed_sign_ins",
        )
        .bind(id.uuid())
        .bind(i64::from(lock_after))
        .bind(locked_until.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        // No such operator: nothing was counted.
        counted.map_or(Ok(0), |n| {
            u32::try_from(n).map_err(|_| corrupt("failed sign-ins"))
        })
    }

    async fn create_session(&self, s: &OperatorSession) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO operator_sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
        )))
        .bind(s.token_hash.as_slice())
        .bind(s.operator.uuid())
        .bind(s.second_factor_pending)
        .bind(s.created_at.0)
        .bind(s.last_seen_at.0)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn session(&self, token_hash: [u8; 32]) -> Result<Option<OperatorSession>, StoreError> {
        let row: Option<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM operator_sessions WHERE token_hash = $1"
        )))
        .bind(token_hash.as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(session).transpose()
    }

    async fn touch_session(&self, token_hash: [u8; 32], at: Timestamp) -> Result<bool, StoreError> {
        let result =
            sqlx::query("UPDATE operator_sessions SET last_seen_at = $2 WHERE token_hash = $1")
                .bind(token_hash.as_slice())
                .bind(at.0)
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete_session(&self, token_hash: [u8; 32]) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM operator_sessions WHERE token_hash = $1")
            .bind(token_hash.as_slice())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete_sessions_of(&self, operator: OperatorId) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM operator_sessions WHERE operator_id = $1")
            .bind(operator.uuid())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(result.rows_affected())
    }

    async fn delete_stale_sessions(
        &self,
        idle_before: Timestamp,
        created_before: Timestamp,
    ) -> Result<u64, StoreError> {
        let result =
            sqlx::query("DELETE FROM operator_sessions WHERE last_seen_at < $1 OR created_at < $2")
                .bind(idle_before.0)
                .bind(created_before.0)
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(result.rows_affected())
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("operator {what}"))
}

/// A count as the `INTEGER` column holds it (a count past `i32::MAX` is held at the top).
fn count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn hash32(bytes: Vec<u8>, what: &str) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|_| corrupt(what))
}

fn operator(row: OperatorRow) -> Result<Operator, StoreError> {
    let (
        id,
        email,
        role,
        password_hash,
        totp_sealed,
        totp_last_step,
        disabled,
        failed_sign_ins,
        locked_until,
        invitation_hash,
        invitation_expires_at,
        created_at,
    ) = row;
    Ok(Operator {
        id: OperatorId::from_uuid(id),
        email,
        role: Role::parse(&role).ok_or_else(|| corrupt("role"))?,
        password_hash,
        totp_sealed,
        totp_last_step,
        disabled,
        failed_sign_ins: u32::try_from(failed_sign_ins).map_err(|_| corrupt("failed sign-ins"))?,
        locked_until: locked_until.map(Timestamp),
        invitation_hash: invitation_hash
            .map(|bytes| hash32(bytes, "invitation hash"))
            .transpose()?,
        invitation_expires_at: invitation_expires_at.map(Timestamp),
        created_at: Timestamp(created_at),
    })
}

fn session(row: SessionRow) -> Result<OperatorSession, StoreError> {
    let (token_hash, operator, second_factor_pending, created_at, last_seen_at) = row;
    Ok(OperatorSession {
        token_hash: hash32(token_hash, "session hash")?,
        operator: OperatorId::from_uuid(operator),
        second_factor_pending,
        created_at: Timestamp(created_at),
        last_seen_at: Timestamp(last_seen_at),
    })
}
