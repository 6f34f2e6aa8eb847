//! The store chosen at start by `database_url`: SQLite (embedded default) or PostgreSQL
//! (several nodes). One type so the rest of the binary is not generic over the backend, with
//! a short per-node cache of the reads every request makes (its service and, for API-key
//! callers, its application). Twilio-style credentials (accounts' auth tokens and `SK…` API
//! keys) are read from the database on every request: they can be rotated or revoked, and
//! that must hold at once on every node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use otpd_core::auth::Application;
use otpd_core::store::ServiceRecord;
use otpd_core::{AccountId, ServiceId};
use otpd_store_postgres::PgStore;
use otpd_store_sqlite::SqliteStore;

/// Either backend.
#[derive(Clone)]
pub enum Backend {
    /// The embedded default.
    Sqlite(SqliteStore),
    /// Shared by several nodes.
    Postgres(PgStore),
}

/// How long a cached service or application answers for the database. A change made on this
/// node is seen at once (it clears the entry); one made on another node within this time.
pub const READ_CACHE_TTL: Duration = Duration::from_secs(1);

/// Entries kept per cache before it is emptied (a bound on memory, not a tuning knob).
const READ_CACHE_ENTRIES: usize = 10_000;

/// A small time-bounded map; `None` results are cached too (an unknown key stays unknown
/// for the TTL, which spares the database a flood of bad keys).
struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> TtlCache<K, V> {
    fn new() -> Self {
        TtlCache {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < READ_CACHE_TTL)
            .map(|(_, value)| value.clone())
    }

    fn put(&self, key: K, value: V) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= READ_CACHE_ENTRIES {
                entries.clear();
            }
            entries.insert(key, (Instant::now(), value));
        }
    }

    fn forget(&self, key: &K) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }

    fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

struct ReadCache {
    services: TtlCache<ServiceId, Option<ServiceRecord>>,
    applications: TtlCache<[u8; 32], Option<Application>>,
    /// Whether an account has any safe-list entry (every start asks for its number).
    safe_lists: TtlCache<AccountId, bool>,
}

/// The configured backend with its read cache; cheap to clone.
#[derive(Clone)]
pub struct AnyStore {
    backend: Backend,
    cache: Arc<ReadCache>,
}

impl AnyStore {
    /// Wraps a backend.
    pub fn new(backend: Backend) -> Self {
        AnyStore {
            backend,
            cache: Arc::new(ReadCache {
                services: TtlCache::new(),
                applications: TtlCache::new(),
                safe_lists: TtlCache::new(),
            }),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }
}

/// Calls the backend. Each backend's future is boxed: PostgreSQL's (sqlx) are kilobytes, and
/// unboxed they made every caller's future — the handlers' — as large, copied whole at each
/// move (a fifth of a start's request-path instructions were `memcpy`).
macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match &$self.backend {
            $crate::store::Backend::Sqlite($store) => Box::pin($call).await,
            $crate::store::Backend::Postgres($store) => Box::pin($call).await,
        }
    };
}

mod audit;
mod callbacks;
mod deliveries;
mod destinations;
mod events;
mod keys;
mod limits;
mod operators;
mod retention;
mod tenants;
mod verifications;

#[cfg(test)]
mod tests {
    use super::*;
    use otpd_core::auth::{AccountRecord, ApiKeyRecord};
    use otpd_core::{ApiKeyId, TenantStore, Timestamp};

    /// A rotated auth token and a revoked API key are seen at once by another node that had
    /// just read them (credentials are not cached).
    #[tokio::test]
    async fn a_rotated_token_and_a_revoked_key_are_seen_at_once_by_another_node() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpd.db");
        let vault = std::sync::Arc::new(otpd_core::vault::Vault::new(
            &otpd_core::ServerSecret::from_bytes([9; 32]),
            &[],
        ));
        let this_node = AnyStore::new(Backend::Sqlite(
            SqliteStore::open(&path, vault.clone()).unwrap(),
        ));
        let other_node = AnyStore::new(Backend::Sqlite(SqliteStore::open(&path, vault).unwrap()));
        let account = AccountRecord {
            id: AccountId::generate(),
            name: "mine".into(),
            auth_token_hash: [1; 32],
            created_at: Timestamp(1_700_000_000_000),
        };
        this_node.create_account(&account).await.unwrap();
        let key = ApiKeyRecord {
            id: ApiKeyId::generate(),
            account_id: account.id,
            name: "key".into(),
            secret_hash: [2; 32],
            created_at: Timestamp(1_700_000_000_000),
        };
        this_node.create_api_key(&key).await.unwrap();
        assert_eq!(
            other_node.account(account.id).await.unwrap(),
            Some(account.clone())
        );
        assert_eq!(other_node.api_key(key.id).await.unwrap(), Some(key.clone()));

        assert!(
            this_node
                .rotate_auth_token(account.id, [3; 32])
                .await
                .unwrap()
        );
        assert!(this_node.revoke_api_key(account.id, key.id).await.unwrap());
        let seen = other_node.account(account.id).await.unwrap().unwrap();
        assert_eq!(seen.auth_token_hash, [3; 32]);
        assert_eq!(other_node.api_key(key.id).await.unwrap(), None);
    }
}
