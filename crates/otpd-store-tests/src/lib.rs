//! The behaviour every [`Store`](otpd_core::Store) must show, written once and run on both
//! backends. A backend runs it with [`store_behaviour_tests!`], which expands to one
//! `#[tokio::test]` per behaviour, each on a fresh store made by the backend's factory.
//!
//! The behaviours live in one module per store concern and are private to this crate; the one
//! list at the bottom of this file is the only way out. A behaviour written but not listed is
//! dead code, which `cargo clippy -- -D warnings` refuses, so none can be silently never run.

mod audit;
mod callbacks;
mod deliveries;
mod destinations;
mod events;
mod limits;
mod operators;
mod retention;
mod support;
mod tenants;
mod verifications;

pub use support::{CODE, Seed, T0, account, events_of, sample, service, typed, vault};
pub use verifications::start_plan;

/// Defines, from one list, the public entry of each behaviour (in [`run`]) and the
/// [`store_behaviour_tests!`] macro that turns each into a test. `$d` is a literal `$`, so the
/// macro this defines can have metavariables of its own.
macro_rules! behaviours {
    ($d:tt $($module:ident :: $name:ident),* $(,)?) => {
        /// The behaviours, one function each, generic over the store (what
        /// [`store_behaviour_tests!`] calls).
        pub mod run {
            $(
                #[doc = concat!("Runs the `", stringify!($name), "` behaviour on `store`.")]
                pub async fn $name<S: otpd_core::Store + Clone>(store: S) {
                    crate::$module::$name(store).await
                }
            )*
        }

        /// Expands to one `#[tokio::test]` per behaviour. `$make` is an async expression
        /// producing `Some((store, guard))` — a fresh store and whatever keeps its resources
        /// alive (a temporary directory, a schema) — or `None` when the backend is not
        /// available here (the factory says so; the behaviour is then skipped).
        #[macro_export]
        macro_rules! store_behaviour_tests {
            ($d make:expr) => {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $name() {
                        let Some((store, _guard)) = $d make.await else {
                            return;
                        };
                        $d crate::run::$name(store).await;
                    }
                )*
            };
        }
    };
}

behaviours!($
    verifications::verification_round_trips,
    verifications::right_code_approves_once,
    verifications::psd2_checks_need_amount_and_payee,
    verifications::wrong_codes_count_until_max,
    verifications::expiry_is_decided_by_the_given_time,
    verifications::other_services_cannot_touch_a_verification,
    verifications::status_changes_only_from_pending,
    verifications::concurrent_right_codes_approve_exactly_once,
    verifications::concurrent_wrong_codes_count_exactly_max,
    verifications::resends_are_counted_and_limited,
    callbacks::status_changes_queue_callbacks,
    callbacks::abandoned_callbacks_stay_abandoned,
    deliveries::stale_deliveries_are_claimed_once,
    deliveries::receipts_only_move_forward,
    deliveries::a_first_outcome_is_seen_by_what_follows,
    deliveries::fallbacks_are_due_once,
    deliveries::report_rows_aggregate_each_verification_sends,
    limits::rate_limits_are_exact_and_slide,
    limits::quarantines_expire_and_lift,
    limits::quarantines_are_per_service_or_server_wide,
    retention::purging_respects_windows_and_never_touches_pending_verifications,
    retention::a_rolled_up_day_answers_as_its_rows_did,
    tenants::auth_tokens_rotate_and_api_keys_revoke,
    limits::spend_never_passes_the_cap,
    verifications::concurrent_starts_pass_limits_and_cooldown_exactly,
    verifications::refused_starts_write_nothing,
    verifications::checks_count_failures_and_approvals,
    limits::safe_numbers_are_per_account,
    events::each_change_writes_one_event,
    events::webhooks_get_the_events_written_while_enabled,
    events::a_failed_webhook_post_is_replayed,
    events::rare_kinds_are_found_by_kind,
    tenants::services_are_managed_per_account,
    tenants::credentials_round_trip,
    audit::appends_link_into_one_chain,
    audit::audit_filters_and_pages_newest_first,
    audit::concurrent_appends_form_one_chain,
    destinations::erasure_removes_every_row_of_a_destination,
    destinations::erasure_finds_an_email_destination,
    tenants::accounts_are_listed_oldest_first,
    operators::operators_round_trip_by_id_email_and_invitation,
    operators::a_taken_operator_email_is_a_conflict,
    operators::operator_updates_round_trip_every_field,
    operators::failed_sign_ins_count_then_lock_and_reset,
    operators::concurrent_failed_sign_ins_each_count,
    operators::sessions_are_created_read_touched_and_deleted,
    operators::sessions_of_an_operator_end_together,
    operators::stale_sessions_are_swept,
);
