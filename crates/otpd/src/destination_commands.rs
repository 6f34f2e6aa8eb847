//! `otpd export --to …` and `otpd erase --to …`: a destination's data for the operator, in
//! every account unless `--account` names one. Same JSON as the admin API
//! (`/admin/v1/destinations/{to}`); an erasure is recorded in the audit log (actor `cli`,
//! action `destination.erase`, never the destination).

use anyhow::Context;
use otpd_core::manage::ERASURE_TARGET;
use otpd_core::{Clock, DestinationStore, SystemClock};
use otpd_http::admin::destinations::{erasure_summary, export_json, parse_destination};

use crate::commands::{parse_account_sid, record};
use crate::{Common, load};

/// What `--to` and `--account` name.
fn scope(
    to: &str,
    account: Option<&str>,
) -> anyhow::Result<(otpd_core::Recipient, Option<otpd_core::AccountId>)> {
    let to = parse_destination(to)
        .context("--to: expected an E.164 number (+ and digits) or an email address")?;
    let account = account
        .map(parse_account_sid)
        .transpose()
        .context("--account")?;
    Ok((to, account))
}

/// Prints the export document of `to`.
pub(crate) async fn export(
    common: Common,
    to: String,
    account: Option<String>,
) -> anyhow::Result<()> {
    let config = load(&common, None)?;
    let (to, account) = scope(&to, account.as_deref())?;
    let store = otpd::open_store(&config).await?;
    let records = store.destination_records(account, to.as_str()).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&export_json(&to, &records))?
    );
    Ok(())
}

/// Erases `to`, records it, and prints the counts (text, or JSON with `json`).
pub(crate) async fn erase(
    common: Common,
    to: String,
    account: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let config = load(&common, None)?;
    let (to, account) = scope(&to, account.as_deref())?;
    let store = otpd::open_store(&config).await?;
    let counts = store
        .erase_destination(account, to.as_str(), SystemClock.now())
        .await?;
    record(
        &store,
        account,
        "destination.erase",
        ERASURE_TARGET.to_string(),
        erasure_summary(&counts),
    )
    .await?;
    if json {
        println!("{}", counts.to_json());
    } else {
        println!(
            "erased {}: {} verifications ({} pending canceled), {} deliveries, {} events, \
             {} callbacks, {} webhook posts, {} safe-list entries",
            to.masked(),
            counts.verifications,
            counts.canceled,
            counts.deliveries,
            counts.events,
            counts.callbacks,
            counts.webhook_deliveries,
            counts.safe_list
        );
    }
    Ok(())
}
