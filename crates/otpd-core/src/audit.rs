//! The audit log: one entry per management change (who, from where, what, on which resource,
//! a before/after summary without secrets), each linked to the one before it by a SHA-256
//! hash so that editing, inserting or removing a stored entry breaks the chain
//! ([`verify_chain`], `otpd audit verify`).
//!
//! The hash of an entry is SHA-256 over the domain tag `otpd-audit-v1` followed by every
//! field, each as an 8-byte big-endian length and its bytes, in this order: id (16 bytes),
//! position (`seq`, 8 bytes big-endian), time (milliseconds, 8 bytes big-endian), actor kind,
//! actor id, account (16 bytes, or nothing), whether a source is present (`0`/`1`), source,
//! action, target, the summary as canonical JSON ([`canonical_json`]: object keys sorted, no
//! whitespace), and the previous entry's hash (32 bytes; zeros for the first entry).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::ids::{AccountId, ApiKeyId, ApplicationId};

/// The `prev_hash` of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An account with its own SID and auth token.
    Account(AccountId),
    /// A Twilio-style API key (`SK…`) acting for its account.
    ApiKey(ApiKeyId),
    /// A native application (its API key or access token).
    Application(ApplicationId),
    /// The `otpd` command line, with the OS user running it.
    Cli(String),
    /// A console operator (reserved for the console).
    Operator(String),
}

impl Actor {
    /// The kind as stored and shown: `account`, `api_key`, `application`, `cli`, `operator`.
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::Account(_) => "account",
            Actor::ApiKey(_) => "api_key",
            Actor::Application(_) => "application",
            Actor::Cli(_) => "cli",
            Actor::Operator(_) => "operator",
        }
    }

    /// The actor's id as stored and shown: `AC…`, `SK…`, the application id, the user name.
    pub fn id(&self) -> String {
        match self {
            Actor::Account(id) => format!("AC{}", id.simple()),
            Actor::ApiKey(id) => format!("SK{}", id.simple()),
            Actor::Application(id) => id.simple(),
            Actor::Cli(user) | Actor::Operator(user) => user.clone(),
        }
    }

    /// The actor stored as `kind` and `id`; `None` for anything [`Actor::kind`] and
    /// [`Actor::id`] do not produce.
    pub fn from_parts(kind: &str, id: &str) -> Option<Actor> {
        let hex = |prefix: &str| {
            id.strip_prefix(prefix)
                .filter(|hex| hex.len() == 32)
                .and_then(|hex| Uuid::try_parse(hex).ok())
        };
        match kind {
            "account" => hex("AC").map(|u| Actor::Account(AccountId::from_uuid(u))),
            "api_key" => hex("SK").map(|u| Actor::ApiKey(ApiKeyId::from_uuid(u))),
            "application" => Uuid::try_parse(id)
                .ok()
                .map(|u| Actor::Application(ApplicationId::from_uuid(u))),
            "cli" => Some(Actor::Cli(id.to_string())),
            "operator" => Some(Actor::Operator(id.to_string())),
            _ => None,
        }
    }

    /// The command line run by the OS user in `$USER` (`cli` when unset).
    pub fn cli_user() -> Actor {
        Actor::Cli(
            std::env::var("USER")
                .ok()
                .filter(|user| !user.is_empty())
                .unwrap_or_else(|| "cli".to_string()),
        )
    }
}

/// Who made a change and from where: what a dialect knows of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActedBy {
    pub actor: Actor,
    /// The client address.
    pub source: Option<String>,
}

/// A change to record, before the store links it to the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditDraft {
    pub at: Timestamp,
    pub actor: Actor,
    /// The account whose resource changed (it sees the entry); `None` for server-wide changes.
    pub account: Option<AccountId>,
    /// The client address, for changes made over HTTP.
    pub source: Option<String>,
    /// What was done, `resource.verb` (`service.create`, `api_key.revoke`, …).
    pub action: String,
    /// The resource changed: its SID or id.
    pub target: String,
    /// The changed fields before and after ([`before_after`]); never a secret.
    pub summary: Value,
}

/// A stored audit entry, linked to the one before it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// UUID v7; the paging cursor.
    pub id: Uuid,
    /// The position in the chain, from 1, without gaps.
    pub seq: i64,
    pub at: Timestamp,
    pub actor: Actor,
    pub account: Option<AccountId>,
    pub source: Option<String>,
    pub action: String,
    pub target: String,
    pub summary: Value,
    /// The hash of the entry at `seq - 1` ([`GENESIS`] for the first).
    pub prev_hash: [u8; 32],
    /// This entry's hash over every field above.
    pub hash: [u8; 32],
}

impl AuditEntry {
    /// `draft` as entry `seq` of the chain, after the entry whose hash is `prev_hash`.
    pub fn link(draft: AuditDraft, id: Uuid, seq: i64, prev_hash: [u8; 32]) -> AuditEntry {
        let mut entry = AuditEntry {
            id,
            seq,
            at: draft.at,
            actor: draft.actor,
            account: draft.account,
            source: draft.source,
            action: draft.action,
            target: draft.target,
            summary: draft.summary,
            prev_hash,
            hash: [0; 32],
        };
        entry.hash = entry.computed_hash();
        entry
    }

    /// The hash the entry's fields give (equal to `hash` unless the entry was altered).
    pub fn computed_hash(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(b"otpd-audit-v1");
        let mut field = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(bytes);
        };
        field(self.id.as_bytes());
        field(&self.seq.to_be_bytes());
        field(&self.at.0.to_be_bytes());
        field(self.actor.kind().as_bytes());
        field(self.actor.id().as_bytes());
        field(self.account.as_ref().map_or(&[][..], |a| &a.as_bytes()[..]));
        field(if self.source.is_some() { b"1" } else { b"0" });
        field(self.source.as_deref().unwrap_or_default().as_bytes());
        field(self.action.as_bytes());
        field(self.target.as_bytes());
        field(canonical_json(&self.summary).as_bytes());
        field(&self.prev_hash);
        hasher.finalize().into()
    }
}

/// Which entries to list, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// Only the entries of this account.
    pub account: Option<AccountId>,
    /// Only this actor id (`AC…`, `SK…`, a CLI user name).
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    /// At or after.
    pub since: Option<Timestamp>,
    /// Before.
    pub until: Option<Timestamp>,
    /// Entries older than this one (the previous page's last id).
    pub after: Option<Uuid>,
    pub limit: u32,
}

/// Where the chain first fails to hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit entry {id} at position {position}: {reason}")]
pub struct BrokenLink {
    /// The first entry that does not verify.
    pub id: Uuid,
    /// Its position in the chain, from 1.
    pub position: u64,
    /// What does not hold.
    pub reason: &'static str,
}

/// Checks a chain read oldest first, in as many pieces as needed (`otpd audit verify` pages).
#[derive(Debug, Clone)]
pub struct ChainCheck {
    prev: [u8; 32],
    checked: u64,
}

impl Default for ChainCheck {
    fn default() -> Self {
        ChainCheck {
            prev: GENESIS,
            checked: 0,
        }
    }
}

impl ChainCheck {
    /// Checks the next entry: it is at the next position, its hash is that of its fields,
    /// and it names the hash of the entry before it.
    pub fn next(&mut self, entry: &AuditEntry) -> Result<(), BrokenLink> {
        let position = self.checked + 1;
        let broken = |reason| BrokenLink {
            id: entry.id,
            position,
            reason,
        };
        if entry.seq != position as i64 {
            return Err(broken("an entry before it is missing or out of place"));
        }
        if entry.computed_hash() != entry.hash {
            return Err(broken("its content does not match its hash"));
        }
        if entry.prev_hash != self.prev {
            return Err(broken("it does not name the previous entry's hash"));
        }
        self.prev = entry.hash;
        self.checked = position;
        Ok(())
    }

    /// The entries checked so far.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// The last checked entry's position (0 before any).
    pub fn last_seq(&self) -> i64 {
        self.checked as i64
    }
}

/// Checks a whole chain, oldest first; the number of entries when it holds.
pub fn verify_chain<'a>(
    entries: impl IntoIterator<Item = &'a AuditEntry>,
) -> Result<u64, BrokenLink> {
    let mut check = ChainCheck::default();
    for entry in entries {
        check.next(entry)?;
    }
    Ok(check.checked())
}

/// JSON with object keys sorted and no whitespace: one text per value, whatever order its
/// keys were built or stored in (PostgreSQL's `jsonb` reorders them, for one).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Keys never written to the log whatever their value: credentials and what derives from them.
fn secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace(['_', '-'], "");
    ["token", "secret", "hash", "password", "code", "signingkey"]
        .iter()
        .any(|word| key == *word || key.ends_with(word))
}

/// Keys that say nothing about a change (links, bookkeeping dates, the ids the entry names).
fn noise_key(key: &str) -> bool {
    matches!(
        key,
        "url" | "links" | "date_created" | "date_updated" | "createdAt" | "updatedAt"
    )
}

/// The summary of a change: `{"before": {…}, "after": {…}}` holding only the top-level fields
/// that differ (a creation has only `after`, a deletion only `before`), without any key that
/// names a secret, token, hash or code, nor links and bookkeeping dates.
pub fn before_after(before: Option<&Value>, after: Option<&Value>) -> Value {
    let fields = |value: Option<&Value>| -> Map<String, Value> {
        match value {
            Some(Value::Object(map)) => map
                .iter()
                .filter(|(key, _)| !secret_key(key) && !noise_key(key))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
            Some(other) => Map::from_iter([("value".to_string(), other.clone())]),
            None => Map::new(),
        }
    };
    let (old, new) = (fields(before), fields(after));
    let mut summary = Map::new();
    match (before.is_some(), after.is_some()) {
        (true, true) => {
            let mut was = Map::new();
            let mut is = Map::new();
            let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
            for key in keys {
                let (a, b) = (old.get(key), new.get(key));
                if a != b {
                    was.insert(key.clone(), a.cloned().unwrap_or(Value::Null));
                    is.insert(key.clone(), b.cloned().unwrap_or(Value::Null));
                }
            }
            summary.insert("before".into(), Value::Object(was));
            summary.insert("after".into(), Value::Object(is));
        }
        (true, false) => {
            summary.insert("before".into(), Value::Object(old));
        }
        (false, true) => {
            summary.insert("after".into(), Value::Object(new));
        }
        (false, false) => {}
    }
    Value::Object(summary)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn draft(n: usize) -> AuditDraft {
        AuditDraft {
            at: Timestamp(1_700_000_000_000 + n as i64),
            actor: Actor::Account(AccountId::from_uuid(Uuid::from_u128(7))),
            account: Some(AccountId::from_uuid(Uuid::from_u128(7))),
            source: Some("127.0.0.1".into()),
            action: "service.update".into(),
            target: format!("VA{n:032x}"),
            summary: json!({"after": {"friendly_name": format!("n{n}"), "code_length": 6}}),
        }
    }

    fn chain(len: usize) -> Vec<AuditEntry> {
        let mut entries: Vec<AuditEntry> = Vec::new();
        for n in 0..len {
            let prev = entries.last().map_or(GENESIS, |e| e.hash);
            entries.push(AuditEntry::link(
                draft(n),
                Uuid::now_v7(),
                n as i64 + 1,
                prev,
            ));
        }
        entries
    }

    #[test]
    fn an_untouched_chain_verifies() {
        assert_eq!(verify_chain(&chain(5)), Ok(5));
        assert_eq!(verify_chain(&[]), Ok(0));
    }

    #[test]
    fn an_edited_entry_is_named() {
        let mut entries = chain(5);
        entries[2].target = "VAother".into();
        let broken = verify_chain(&entries).unwrap_err();
        assert_eq!((broken.id, broken.position), (entries[2].id, 3));
    }

    #[test]
    fn an_edited_entry_with_a_recomputed_hash_breaks_the_next_link() {
        let mut entries = chain(5);
        entries[1].summary = json!({"after": {"friendly_name": "forged"}});
        entries[1].hash = entries[1].computed_hash();
        let broken = verify_chain(&entries).unwrap_err();
        assert_eq!((broken.id, broken.position), (entries[2].id, 3));
    }

    #[test]
    fn a_removed_entry_is_found() {
        let mut entries = chain(5);
        entries.remove(1);
        let broken = verify_chain(&entries).unwrap_err();
        assert_eq!(broken.position, 2);
        assert_eq!(broken.id, entries[1].id);
    }

    #[test]
    fn every_field_counts_in_the_hash() {
        let entry = &chain(1)[0];
        let edits: Vec<fn(&mut AuditEntry)> = vec![
            |e| e.at = Timestamp(e.at.0 + 1),
            |e| e.actor = Actor::Cli("mallory".into()),
            |e| e.account = None,
            |e| e.source = None,
            |e| e.source = Some(String::new()),
            |e| e.action = "service.delete".into(),
            |e| e.summary = json!({}),
            |e| e.prev_hash = [1; 32],
            |e| e.id = Uuid::nil(),
        ];
        for edit in edits {
            let mut changed = entry.clone();
            edit(&mut changed);
            assert_ne!(changed.computed_hash(), entry.hash);
        }
    }

    #[test]
    fn the_hash_does_not_depend_on_key_order() {
        let mut entry = chain(1).remove(0);
        entry.summary = serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":[1,"z"]}}"#).unwrap();
        let first = entry.computed_hash();
        entry.summary = serde_json::from_str(r#"{"a":{"x":[1,"z"],"y":2},"b":1}"#).unwrap();
        assert_eq!(entry.computed_hash(), first);
        assert_eq!(
            canonical_json(&entry.summary),
            r#"{"a":{"x":[1,"z"],"y":2},"b":1}"#
        );
    }

    #[test]
    fn summaries_keep_changed_fields_and_drop_secrets() {
        let before = json!({"friendly_name": "a", "code_length": 6, "url": "x", "auth_token": "t"});
        let after = json!({"friendly_name": "b", "code_length": 6, "url": "y", "authToken": "u"});
        assert_eq!(
            before_after(Some(&before), Some(&after)),
            json!({"before": {"friendly_name": "a"}, "after": {"friendly_name": "b"}})
        );
        assert_eq!(
            before_after(None, Some(&json!({"secret": "s", "max": 3}))),
            json!({"after": {"max": 3}})
        );
        assert_eq!(
            before_after(Some(&json!({"code_hash": "h", "interval": 60})), None),
            json!({"before": {"interval": 60}})
        );
    }

    #[test]
    fn actors_read_back_as_stored() {
        for actor in [
            Actor::Account(AccountId::generate()),
            Actor::ApiKey(ApiKeyId::generate()),
            Actor::Application(ApplicationId::generate()),
            Actor::Cli("alice".into()),
            Actor::Operator("bob".into()),
        ] {
            assert_eq!(Actor::from_parts(actor.kind(), &actor.id()), Some(actor));
        }
        assert_eq!(Actor::from_parts("account", "SKnope"), None);
    }
}
