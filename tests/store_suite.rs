//! The store's contract: one suite of cases, each an
//! `async fn case(store: Arc<dyn Backend>)` that uses only the store's
//! traits, run against every backend. [`for_each_case!`] names every case
//! once; each backend's module turns the list into one
//! `#[tokio::test(flavor = "multi_thread")]` per case, on a fresh store:
//! `sqlite::case` (a file store in a temporary folder, so its reader threads
//! serve the reads) and `postgres::case` (a database of its own).
//!
//! The cases live by concept in `store_suite/` (named by `#[path]`: this
//! file is a crate root, whose modules would otherwise be looked for in
//! `tests/`); the concurrency cases start
//! their tasks together ([`fixtures::together`]) on the multi-thread runtime.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "store_suite/fixtures.rs"]
mod fixtures;
#[path = "store_suite/keys.rs"]
mod keys;
#[path = "store_suite/mfa.rs"]
mod mfa;
#[path = "store_suite/mfa_once.rs"]
mod mfa_once;
#[path = "store_suite/mfa_transactions.rs"]
mod mfa_transactions;
#[path = "store_suite/protect.rs"]
mod protect;
#[path = "store_suite/races.rs"]
mod races;
#[path = "store_suite/refresh.rs"]
mod refresh;
#[path = "store_suite/revocations.rs"]
mod revocations;
#[path = "store_suite/sessions.rs"]
mod sessions;
#[path = "store_suite/settings_status.rs"]
mod settings_status;
#[path = "store_suite/users.rs"]
mod users;

/// Hands every case of the suite, as `module::case`, to `$backend!`, a
/// macro that makes one test of each on that backend.
macro_rules! for_each_case {
    ($backend:ident) => {
        $backend! {
            keys::signing_keys_oldest_first_each_kid_once,
            keys::the_first_key_is_made_once,
            users::user_round_trips,
            users::login_names_clash_by_lookup_key,
            users::find_login_by_username_or_email,
            users::find_login_everywhere_gives_one_per_realm,
            users::list_users_by_name,
            users::remove_user_frees_the_name,
            users::block_and_set_password,
            users::record_login_counts_and_rehashes,
            users::update_metadata_replaces_what_it_names,
            users::bcrypt_costs_of_stored_hashes,
            sessions::sessions_with_and_without_refresh,
            sessions::max_families_ends_the_oldest,
            sessions::login_session_writes_metadata_with_it,
            revocations::revoke_session_once,
            revocations::revoke_user_sessions_ends_each_live_one,
            sessions::list_sessions_newest_first,
            revocations::revoked_sessions_until_they_expire,
            revocations::revocations_since_in_order,
            sessions::sweep_sessions_deletes_the_expired,
            refresh::exchange_rotates_once,
            refresh::touch_keeps_the_token,
            refresh::refusal_writes_nothing,
            refresh::metadata_lands_with_the_exchange_or_not_at_all,
            refresh::a_revoked_session_does_not_rotate,
            races::concurrent_exchanges_one_rotation_wins,
            races::revocation_racing_exchanges_is_seen,
            protect::login_failures_count_and_restart,
            protect::concurrent_login_failures_all_count,
            protect::clear_login_failures_with_and_without_ip,
            protect::ip_failures_move_the_tat,
            protect::sweep_protect_deletes_what_is_over,
            protect::a_login_with_a_nul_finds_nobody_and_still_counts,
            mfa::authenticators_oldest_first_all_or_nothing,
            mfa_once::accept_step_once,
            mfa_once::confirm_otp_writes_all_or_nothing,
            mfa_once::concurrent_confirmations_finish_once,
            mfa::activate_marks_the_named,
            mfa_once::replace_recovery_code_once,
            mfa::remove_authenticator_rules,
            mfa::reset_and_enrolled_users,
            mfa_transactions::transactions_round_trip_and_finish_once,
            mfa_transactions::finish_transaction_concurrently_once,
            mfa_transactions::set_oob_replaces_the_challenge,
            mfa_transactions::sweep_transactions_drops_the_expired,
            mfa_transactions::update_failures_reads_and_writes_together,
            settings_status::remember_first_agrees,
            settings_status::status_counts_by_the_rules,
        }
    };
}

#[path = "store_suite/postgres.rs"]
mod postgres;
#[path = "store_suite/sqlite.rs"]
mod sqlite;
