//! Migrations embedded in the binary, applied in order at open; `PRAGMA user_version` records
//! how many have run.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_delivery_details.sql"),
    include_str!("../migrations/0003_rate_events.sql"),
    include_str!("../migrations/0004_pumping_and_budgets.sql"),
    include_str!("../migrations/0005_safe_list.sql"),
    include_str!("../migrations/0006_events.sql"),
    include_str!("../migrations/0007_webhooks.sql"),
    include_str!("../migrations/0008_alerts.sql"),
    include_str!("../migrations/0009_events_without_rowid.sql"),
    include_str!("../migrations/0010_verifications_without_rowid.sql"),
    include_str!("../migrations/0011_provider_ref_index_partial.sql"),
    include_str!("../migrations/0012_quarantines_per_service.sql"),
    include_str!("../migrations/0013_sealed_destinations.sql"),
    include_str!("../migrations/0014_audit.sql"),
    include_str!("../migrations/0015_retention.sql"),
    include_str!("../migrations/0016_operators.sql"),
    include_str!("../migrations/0017_rare_event_kinds.sql"),
];

/// Applies every migration newer than the database, each in its own transaction.
///
/// Foreign keys are off while they run (SQLite's own recipe for rebuilding a table: dropping
/// the old one must not cascade to the rows that refer to it) and each migration's
/// transaction commits only if `PRAGMA foreign_key_check` finds nothing broken.
pub(crate) fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let applied: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let enforced: bool = connection.query_row("PRAGMA foreign_keys", [], |row| row.get(0))?;
    connection.execute_batch("PRAGMA foreign_keys = OFF")?;
    let result = (|| {
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied.max(0) as usize) {
            let transaction = connection.transaction()?;
            transaction.execute_batch(sql)?;
            let broken: i64 = transaction.query_row(
                "SELECT COUNT(*) FROM pragma_foreign_key_check",
                [],
                |row| row.get(0),
            )?;
            if broken > 0 {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
                    Some(format!(
                        "migration {} leaves {broken} rows whose reference is gone",
                        index + 1
                    )),
                ));
            }
            transaction.execute_batch(&format!("PRAGMA user_version = {}", index + 1))?;
            transaction.commit()?;
        }
        Ok(())
    })();
    if enforced {
        connection.execute_batch("PRAGMA foreign_keys = ON")?;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A quarantine that existed before quarantines became per service stays in force for
    /// every service (the nil service id).
    #[test]
    fn existing_quarantines_become_server_wide() {
        let mut connection = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..11] {
            connection.execute_batch(sql).unwrap();
        }
        connection
            .execute_batch(
                "PRAGMA user_version = 11; \
                 INSERT INTO quarantines (prefix, reason, until, created_at) \
                 VALUES ('+44909', 'old', 2000, 1000);",
            )
            .unwrap();
        migrate(&mut connection).unwrap();
        let row: (String, Vec<u8>, String, i64) = connection
            .query_row(
                "SELECT prefix, service_id, reason, until FROM quarantines",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .unwrap();
        assert_eq!(row, ("+44909".into(), vec![0; 16], "old".into(), 2000));
    }

    /// A delivery receipt finds its attempt through the (partial) provider reference index,
    /// not by scanning every attempt.
    #[test]
    fn receipts_look_attempts_up_by_index() {
        let mut connection = Connection::open_in_memory().unwrap();
        migrate(&mut connection).unwrap();
        let plan: Vec<String> = connection
            .prepare(
                "EXPLAIN QUERY PLAN SELECT id FROM deliveries WHERE provider_ref = ?1 AND provider = ?2",
            )
            .unwrap()
            .query_map(["SM123", "twilio"], |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|step| step.starts_with("SEARCH deliveries")
                && step.contains("INDEX deliveries_provider_ref (provider_ref=? AND provider=?)")),
            "{plan:?}"
        );
    }
}
