//! Destinations (phone numbers, email addresses) at rest: sealed with authenticated
//! encryption under a data key derived from the server secret, and found again through a
//! keyed blind index, so a copy of the database reveals no one's number.
//!
//! A vault holds the current key and, during a rotation, the previous ones: values sealed
//! under any of them open, new values are sealed under the current one, and a lookup asks for
//! the blind index under every key (docs/data-protection.md, "Key rotation").

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngExt;
use sha2::Sha256;

use crate::code::ServerSecret;

/// The first byte of every sealed value: the format, so a later one can be told apart.
const FORMAT: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
/// Bound into every ciphertext, so a sealed destination cannot be replayed as another kind
/// of sealed value a later version adds.
const AAD: &[u8] = b"otpd destination";

/// The public name of a data key: stored beside each value it sealed, and in the database's
/// key list so a start with the wrong secret is refused before anything is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u32);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// The keyed hash of a destination under one key: equal destinations have equal indexes,
/// and without the server secret an index says nothing about the destination.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlindIndex(pub [u8; 16]);

impl BlindIndex {
    /// Lowercase hex, for keys that are text (rate counters).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for BlindIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlindIndex({})", self.to_hex())
    }
}

/// A sealed value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// Sealed under a key this vault does not hold (the server secret changed).
    #[error("sealed under key {0}, which the configured server secrets do not give")]
    UnknownKey(KeyId),
    /// Truncated, of an unknown format, or altered since it was sealed.
    #[error("a sealed value is damaged or was altered")]
    Damaged,
}

struct DataKey {
    id: KeyId,
    cipher: XChaCha20Poly1305,
    index_key: [u8; 32],
}

impl DataKey {
    fn derive(secret: &ServerSecret) -> DataKey {
        let hkdf = Hkdf::<Sha256>::new(Some(b"otpd data keys v1"), secret.bytes());
        let mut encryption = [0u8; 32];
        let mut index_key = [0u8; 32];
        let mut id = [0u8; KEY_ID_LEN];
        hkdf.expand(b"destination encryption", &mut encryption)
            .and_then(|_| hkdf.expand(b"destination blind index", &mut index_key))
            .and_then(|_| hkdf.expand(b"key id", &mut id))
            .expect("HKDF-SHA256 gives up to 8160 bytes");
        DataKey {
            id: KeyId(u32::from_be_bytes(id)),
            cipher: XChaCha20Poly1305::new(&encryption.into()),
            index_key,
        }
    }

    fn blind(&self, value: &str) -> BlindIndex {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.index_key)
            .expect("HMAC accepts keys of any length");
        mac.update(value.as_bytes());
        let full: [u8; 32] = mac.finalize().into_bytes().into();
        let mut index = [0u8; 16];
        index.copy_from_slice(&full[..16]);
        BlindIndex(index)
    }
}

/// The characters of a phone number stored in clear beside its sealed form, for prefix
/// filters: the country code and the start of the national range, which identify no one.
pub const CLEAR_PREFIX_CHARS: usize = 7;

/// The clear prefix stored for a destination (phones only).
pub fn clear_prefix(to: &str) -> Option<String> {
    to.starts_with('+').then(|| clear_part(to).to_string())
}

/// The part of a prefix filter the stored clear prefix can answer (its first
/// [`CLEAR_PREFIX_CHARS`] characters); a longer filter needs the sealed values opened.
pub fn clear_part(prefix: &str) -> &str {
    match prefix.char_indices().nth(CLEAR_PREFIX_CHARS) {
        Some((end, _)) => &prefix[..end],
        None => prefix,
    }
}

impl From<VaultError> for crate::store::StoreError {
    fn from(error: VaultError) -> Self {
        crate::store::StoreError::Corrupt(format!("destination: {error}"))
    }
}

/// Seals, opens and blind-indexes destinations; cheap to share behind an `Arc`.
pub struct Vault {
    /// The current key first, then the previous ones still readable.
    keys: Vec<DataKey>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self.keys.iter().map(|k| k.id.to_string()).collect();
        write!(f, "Vault(keys: [{}])", ids.join(", "))
    }
}

impl Vault {
    /// A vault whose current key derives from `current`, still opening what was sealed under
    /// the keys of `previous` (a rotation in progress).
    pub fn new(current: &ServerSecret, previous: &[ServerSecret]) -> Vault {
        let mut keys = vec![DataKey::derive(current)];
        for secret in previous {
            let key = DataKey::derive(secret);
            if keys.iter().all(|k| k.id != key.id) {
                keys.push(key);
            }
        }
        Vault { keys }
    }

    /// Why a database whose values were sealed under the keys `known` (ids as stored) cannot
    /// be opened with this vault; `None` when it can (no key yet, or one of ours).
    pub fn refusal(&self, known: &[i64]) -> Option<String> {
        let ours = self.key_ids();
        if known.is_empty() || ours.iter().any(|k| known.contains(&i64::from(k.0))) {
            return None;
        }
        let theirs: Vec<String> = known
            .iter()
            .map(|id| KeyId(*id as u32).to_string())
            .collect();
        let ours: Vec<String> = ours.iter().map(KeyId::to_string).collect();
        Some(format!(
            "the server secret does not open this database: it was written under key {}, \
             the configured secret gives key {}; start with the server secret it was written with",
            theirs.join(", "),
            ours.join(", ")
        ))
    }

    /// The key new values are sealed and indexed under.
    pub fn current(&self) -> KeyId {
        self.keys[0].id
    }

    /// Every key this vault opens, current first.
    pub fn key_ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|k| k.id).collect()
    }

    /// `plain` sealed under the current key: format, key id, random nonce, ciphertext and tag.
    pub fn seal(&self, plain: &str) -> Vec<u8> {
        let key = &self.keys[0];
        let nonce: [u8; NONCE_LEN] = rand::rng().random();
        let sealed = key
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: AAD,
                },
            )
            .expect("XChaCha20-Poly1305 seals any message under 256 GiB");
        let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
        out.push(FORMAT);
        out.extend_from_slice(&key.id.0.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The key a sealed value names, if it is well formed.
    pub fn key_of(sealed: &[u8]) -> Option<KeyId> {
        if sealed.len() < HEADER_LEN || sealed[0] != FORMAT {
            return None;
        }
        let id: [u8; KEY_ID_LEN] = sealed[1..1 + KEY_ID_LEN].try_into().ok()?;
        Some(KeyId(u32::from_be_bytes(id)))
    }

    /// The text `sealed` holds, if a key of this vault sealed it and nothing altered it.
    pub fn open(&self, sealed: &[u8]) -> Result<String, VaultError> {
        let id = Vault::key_of(sealed).ok_or(VaultError::Damaged)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or(VaultError::UnknownKey(id))?;
        let nonce: [u8; NONCE_LEN] = sealed[1 + KEY_ID_LEN..HEADER_LEN]
            .try_into()
            .map_err(|_| VaultError::Damaged)?;
        let plain = key
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad: AAD,
                },
            )
            .map_err(|_| VaultError::Damaged)?;
        String::from_utf8(plain).map_err(|_| VaultError::Damaged)
    }

    /// The blind index of `value` under the current key (what new rows store).
    pub fn blind(&self, value: &str) -> BlindIndex {
        self.keys[0].blind(value)
    }

    /// The blind index of `value` under every key, current first: a lookup matches rows
    /// written before a rotation too.
    pub fn blinds(&self, value: &str) -> Vec<BlindIndex> {
        self.keys.iter().map(|k| k.blind(value)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(byte: u8) -> ServerSecret {
        ServerSecret::from_bytes([byte; 32])
    }

    #[test]
    fn a_sealed_destination_opens_and_holds_no_clear_text() {
        let vault = Vault::new(&secret(1), &[]);
        let sealed = vault.seal("+14155552671");
        assert!(!sealed.windows(4).any(|w| w == b"4155"));
        assert_eq!(vault.open(&sealed).unwrap(), "+14155552671");
        // Random nonces: the same number seals differently each time.
        assert_ne!(vault.seal("+14155552671"), sealed);
    }

    #[test]
    fn an_altered_or_truncated_value_is_refused() {
        let vault = Vault::new(&secret(1), &[]);
        let mut sealed = vault.seal("ada@example.com");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(vault.open(&sealed), Err(VaultError::Damaged));
        assert_eq!(vault.open(&sealed[..10]), Err(VaultError::Damaged));
        assert_eq!(vault.open(b""), Err(VaultError::Damaged));
    }

    #[test]
    fn another_secret_cannot_open_and_says_which_key_is_missing() {
        let sealed = Vault::new(&secret(1), &[]).seal("+14155552671");
        let other = Vault::new(&secret(2), &[]);
        let id = Vault::new(&secret(1), &[]).current();
        assert_eq!(other.open(&sealed), Err(VaultError::UnknownKey(id)));
    }

    #[test]
    fn a_rotated_vault_opens_old_values_and_seals_under_the_new_key() {
        let old = Vault::new(&secret(1), &[]);
        let sealed = old.seal("+14155552671");
        let rotated = Vault::new(&secret(2), &[secret(1)]);
        assert_eq!(rotated.open(&sealed).unwrap(), "+14155552671");
        assert_eq!(Vault::key_of(&rotated.seal("x")), Some(rotated.current()));
        assert_eq!(rotated.key_ids(), vec![rotated.current(), old.current()]);
        let blinds = rotated.blinds("+14155552671");
        assert_eq!(blinds[1], old.blind("+14155552671"));
        assert_ne!(blinds[0], blinds[1]);
    }

    #[test]
    fn blind_indexes_are_stable_per_key_and_differ_between_values() {
        let vault = Vault::new(&secret(1), &[]);
        assert_eq!(vault.blind("+14155552671"), vault.blind("+14155552671"));
        assert_ne!(vault.blind("+14155552671"), vault.blind("+14155552672"));
        assert_eq!(vault.blind("a").to_hex().len(), 32);
    }

    #[test]
    fn only_the_first_characters_of_a_phone_stay_in_clear() {
        assert_eq!(clear_prefix("+14155552671").as_deref(), Some("+141555"));
        assert_eq!(clear_prefix("ada@example.com"), None);
        assert_eq!(clear_part("+44"), "+44");
        assert_eq!(clear_part("+4474001234"), "+447400");
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let vault = Vault::new(&secret(1), &[]);
        let text = format!("{vault:?}");
        assert_eq!(text, format!("Vault(keys: [{}])", vault.current()));
    }
}
