//! Encryption at rest: AES-256-GCM under a master key, with the key's id stored next to every
//! sealed record and AAD = api + tenant + field, so a sealed value cannot be moved to another
//! tenant's row, another API or another column without failing to open.
//!
//! Invariants:
//! - A sealed value is `nonce (12 bytes) || ciphertext || tag (16 bytes)`; the nonce is random
//!   per seal (96-bit random nonces are safe far beyond the number of credentials a server
//!   writes under one key).
//! - A key id is derived from the key itself (a truncated SHA-256 under a domain label), so it
//!   names the key without revealing anything usable about it, and the same key always has the
//!   same id.
//! - Opening needs the key named by the record's id: the current key or one of the old keys
//!   kept for a rotation. No error carries key material or plaintext.

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{
    ids::{ApiName, TenantId},
    secret::{Secret, SecretRef},
};

/// Bytes of a master key (AES-256).
pub const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;

/// Why a key could not be loaded or a value could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The key's env var or file could not be read.
    #[error("master key: {0}")]
    Read(#[from] crate::secret::SecretError),
    /// The key text is not 32 bytes in base64 or hex.
    #[error(
        "master key from {0} is not 32 bytes written as base64 or 64 hex digits; make one with `wasmhook keys generate`"
    )]
    Format(String),
    /// No master key is configured, so nothing can be sealed.
    #[error(
        "no master key: set WASMHOOK_MASTER_KEY (or [credentials] master_key) to 32 random bytes in base64; `wasmhook keys generate` prints one"
    )]
    NoKey,
    /// The record was sealed under a key this process does not hold.
    #[error(
        "credential sealed under key {0}, which is not configured; add it to [credentials] old_master_keys"
    )]
    UnknownKey(String),
    /// The value does not open: wrong key, wrong AAD (moved between rows), or corrupted.
    #[error("a sealed {field} does not open under key {key_id} (corrupted or moved between rows)")]
    Open {
        /// The field (`access`, `refresh`, ...).
        field: &'static str,
        /// The key id it was sealed under.
        key_id: String,
    },
}

/// One master key and its id.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// A key from its 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; KEY_BYTES]) -> MasterKey {
        let mut hasher = Sha256::new();
        hasher.update(b"wasmhook master key id v1\0");
        hasher.update(bytes);
        let id = format!("k{}", hex::encode(&hasher.finalize()[..8]));
        MasterKey {
            id,
            cipher: Aes256Gcm::new(bytes.into()),
        }
    }

    /// A key from its text: 32 bytes in standard or URL-safe base64, or 64 hex digits.
    /// `origin` names where it came from for the error.
    pub fn parse(text: &Secret, origin: &str) -> Result<MasterKey, CryptoError> {
        let text = text.expose().trim();
        let decoded = if text.len() == 2 * KEY_BYTES && text.bytes().all(|b| b.is_ascii_hexdigit())
        {
            hex::decode(text).ok()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
                .ok()
        };
        let bytes: [u8; KEY_BYTES] = decoded
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| CryptoError::Format(origin.to_string()))?;
        Ok(MasterKey::from_bytes(&bytes))
    }

    /// Reads and parses the key `reference` names.
    pub fn load(reference: &SecretRef) -> Result<MasterKey, CryptoError> {
        MasterKey::parse(&reference.load()?, &reference.describe())
    }

    /// A new random key, as base64 text (for `wasmhook keys generate`).
    pub fn generate_text() -> String {
        let mut bytes = [0u8; KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// The key's id, stored with every record it seals.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Which record and field a sealed value belongs to: bound into the AAD.
#[derive(Clone, Copy, Debug)]
pub struct Aad<'a> {
    pub api: &'a ApiName,
    pub tenant: &'a TenantId,
    /// `access`, `refresh`, `previous`.
    pub field: &'static str,
}

impl Aad<'_> {
    /// Length-prefixed parts, so `("a", "bc")` and `("ab", "c")` differ.
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        for part in [
            self.api.as_str().as_bytes(),
            self.tenant.as_str().as_bytes(),
            self.field.as_bytes(),
        ] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part);
        }
        out
    }
}

/// The current key (seals) and the old ones still accepted for opening during a rotation.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    current: Option<MasterKey>,
    old: Vec<MasterKey>,
}

impl Keyring {
    /// A keyring sealing with `current` and also opening with `old`.
    pub fn new(current: Option<MasterKey>, old: Vec<MasterKey>) -> Keyring {
        Keyring { current, old }
    }

    /// The id new seals are made under, if there is a key.
    pub fn current_id(&self) -> Option<&str> {
        self.current.as_ref().map(MasterKey::id)
    }

    /// Whether the key `key_id` is the current or an old key.
    pub fn holds(&self, key_id: &str) -> bool {
        self.current.iter().chain(&self.old).any(|k| k.id == key_id)
    }

    /// Seals `plaintext` under the current key; returns the sealed bytes.
    pub fn seal(&self, aad: Aad<'_>, plaintext: &Secret) -> Result<Vec<u8>, CryptoError> {
        let key = self.current.as_ref().ok_or(CryptoError::NoKey)?;
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = aad.bytes();
        let sealed = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.expose().as_bytes(),
                    aad: &aad,
                },
            )
            // AES-GCM encryption fails only for messages beyond 64 GiB.
            .map_err(|_| CryptoError::NoKey)?;
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens `sealed`, made under the key `key_id` for `aad`.
    pub fn open(&self, key_id: &str, aad: Aad<'_>, sealed: &[u8]) -> Result<Secret, CryptoError> {
        let key = self
            .current
            .iter()
            .chain(&self.old)
            .find(|k| k.id == key_id)
            .ok_or_else(|| CryptoError::UnknownKey(key_id.to_string()))?;
        let failed = || CryptoError::Open {
            field: aad.field,
            key_id: key_id.to_string(),
        };
        if sealed.len() < NONCE_BYTES + TAG_BYTES {
            return Err(failed());
        }
        let (nonce, body) = sealed.split_at(NONCE_BYTES);
        let plain = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad.bytes(),
                },
            )
            .map_err(|_| failed())?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| failed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes(&[byte; KEY_BYTES])
    }

    fn aad<'a>(api: &'a ApiName, tenant: &'a TenantId, field: &'static str) -> Aad<'a> {
        Aad { api, tenant, field }
    }

    #[test]
    fn seals_open_only_with_the_same_key_and_aad() {
        let (api, tenant, other) = (
            ApiName::new("hl"),
            TenantId::new("loc1"),
            TenantId::new("loc2"),
        );
        let ring = Keyring::new(Some(key(1)), vec![]);
        let secret = Secret::new("access-token-plaintext");
        let sealed = ring.seal(aad(&api, &tenant, "access"), &secret).unwrap();
        assert!(
            !sealed
                .windows(secret.expose().len())
                .any(|w| w == secret.expose().as_bytes()),
            "the plaintext is not in the sealed bytes"
        );
        let id = ring.current_id().unwrap();
        assert_eq!(
            ring.open(id, aad(&api, &tenant, "access"), &sealed)
                .unwrap()
                .expose(),
            "access-token-plaintext"
        );
        // Moved to another tenant or field: refused.
        assert!(ring.open(id, aad(&api, &other, "access"), &sealed).is_err());
        assert!(
            ring.open(id, aad(&api, &tenant, "refresh"), &sealed)
                .is_err()
        );
        // Another key of the same id cannot exist; a ring without the key names the id.
        let stranger = Keyring::new(Some(key(2)), vec![]);
        let err = stranger
            .open(id, aad(&api, &tenant, "access"), &sealed)
            .unwrap_err();
        assert!(matches!(err, CryptoError::UnknownKey(_)), "{err}");
        // An old key still opens during a rotation.
        let rotated = Keyring::new(Some(key(2)), vec![key(1)]);
        assert!(
            rotated
                .open(id, aad(&api, &tenant, "access"), &sealed)
                .is_ok()
        );
        // Tampering is detected.
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(ring.open(id, aad(&api, &tenant, "access"), &bad).is_err());
    }

    #[test]
    fn keys_parse_from_base64_or_hex_and_ids_are_stable() {
        let text = MasterKey::generate_text();
        let a = MasterKey::parse(&Secret::new(text.clone()), "env:K").unwrap();
        let b = MasterKey::parse(&Secret::new(format!("{text}\n")), "env:K").unwrap();
        assert_eq!(a.id(), b.id());
        let hex_key = MasterKey::parse(&Secret::new("01".repeat(32)), "env:K").unwrap();
        assert_eq!(hex_key.id(), key(1).id());
        assert_ne!(key(1).id(), key(2).id());
        let err = MasterKey::parse(&Secret::new("too-short"), "env:K").unwrap_err();
        assert!(err.to_string().contains("env:K"), "{err}");
        assert!(!err.to_string().contains("too-short"), "{err}");
        assert!(matches!(
            Keyring::default().seal(
                aad(&ApiName::new("a"), &TenantId::new("t"), "access"),
                &Secret::new("x")
            ),
            Err(CryptoError::NoKey)
        ));
    }
}
