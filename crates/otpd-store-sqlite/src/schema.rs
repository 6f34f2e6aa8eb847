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
];

/// Applies every migration newer than the database, each in its own transaction.
pub(crate) fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let applied: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied.max(0) as usize) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(sql)?;
        transaction.execute_batch(&format!("PRAGMA user_version = {}", index + 1))?;
        transaction.commit()?;
    }
    Ok(())
}
