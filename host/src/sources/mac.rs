//! HMAC keys for the shared-secret schemes, and the one way they are checked: compute the MAC
//! under each trusted key and compare it in constant time with each candidate signature.
//!
//! Invariants:
//! - A key is never empty (an empty HMAC key is a well-known value anyone can sign with), and
//!   key bytes never appear in `Debug` output or errors.
//! - Comparison is `subtle::ConstantTimeEq` on the whole tag; a candidate of another length
//!   simply does not match (the length of a MAC is public).
//! - Each key is prepared once (the HMAC inner and outer pads are hashed at build time), so a
//!   request costs one clone and the hashing of its own bytes per key.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::{Proof, SignatureKind, VerifyError, error::Label};
use crate::{config::MacAlgorithm, secret::Secret};

/// The trusted keys of one source, in config order.
#[derive(Clone)]
pub(super) struct MacKeys {
    keys: Vec<Prepared>,
}

#[derive(Clone)]
enum Prepared {
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

/// Why a secret cannot be a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyProblem {
    Empty,
}

impl KeyProblem {
    pub(super) fn reason(self) -> &'static str {
        match self {
            KeyProblem::Empty => "the key is empty",
        }
    }
}

impl MacKeys {
    /// Prepares `secrets` (raw key bytes) for `algorithm`. Fails on the first unusable one,
    /// returning its index.
    pub(super) fn new<K: AsRef<[u8]>>(
        secrets: &[K],
        algorithm: MacAlgorithm,
    ) -> Result<MacKeys, (usize, KeyProblem)> {
        let mut keys = Vec::with_capacity(secrets.len());
        for (i, secret) in secrets.iter().enumerate() {
            let secret = secret.as_ref();
            if secret.is_empty() {
                return Err((i, KeyProblem::Empty));
            }
            // `new_from_slice` accepts any length for HMAC (long keys are hashed first).
            let prepared = match algorithm {
                MacAlgorithm::Sha256 => {
                    Hmac::<Sha256>::new_from_slice(secret).map(Prepared::Sha256)
                }
                MacAlgorithm::Sha512 => {
                    Hmac::<Sha512>::new_from_slice(secret).map(Prepared::Sha512)
                }
            };
            keys.push(prepared.map_err(|_| (i, KeyProblem::Empty))?);
        }
        Ok(MacKeys { keys })
    }

    /// Keys from webhook secrets used as written (their UTF-8 bytes, as GitHub, Shopify,
    /// Stripe, Slack and the generic scheme key them). On failure, the index of the bad secret
    /// and why.
    pub(super) fn from_secrets(
        secrets: &[Secret],
        algorithm: MacAlgorithm,
    ) -> Result<MacKeys, (usize, &'static str)> {
        let raw: Vec<&[u8]> = secrets.iter().map(|s| s.expose().as_bytes()).collect();
        MacKeys::new(&raw, algorithm).map_err(|(i, problem)| (i, problem.reason()))
    }

    /// The proof of the first key whose MAC over `parts` (concatenated) equals one of
    /// `candidates`, carrying `signed_at_ms`; otherwise a mismatch on `header`.
    pub(super) fn prove<C: AsRef<[u8]>>(
        &self,
        parts: &[&[u8]],
        candidates: &[C],
        header: impl Into<Label>,
        signed_at_ms: Option<i64>,
    ) -> Result<Proof, VerifyError> {
        match self.find(parts, candidates) {
            Some(key) => Ok(Proof {
                kind: self.kind(),
                key,
                signed_at_ms,
            }),
            None => Err(VerifyError::Mismatch {
                header: header.into(),
            }),
        }
    }

    /// The signature kind these keys produce.
    pub(super) fn kind(&self) -> SignatureKind {
        match self.keys.first() {
            Some(Prepared::Sha512(_)) => SignatureKind::HmacSha512,
            _ => SignatureKind::HmacSha256,
        }
    }

    /// The MAC under key `index` of `parts` concatenated. Used by signers (`send`, tests).
    pub(super) fn tag(&self, index: usize, parts: &[&[u8]]) -> Option<Vec<u8>> {
        self.keys.get(index).map(|key| key.tag(parts))
    }

    /// The index of the first key whose MAC over `parts` (concatenated) equals one of
    /// `candidates`, compared in constant time.
    pub(super) fn find<C: AsRef<[u8]>>(&self, parts: &[&[u8]], candidates: &[C]) -> Option<usize> {
        self.keys.iter().position(|key| {
            let tag = key.tag(parts);
            // Every candidate is compared (no early exit inside one key's check), so timing
            // says nothing about which candidate came close.
            candidates
                .iter()
                .fold(subtle::Choice::from(0), |found, candidate| {
                    found | tag.as_slice().ct_eq(candidate.as_ref())
                })
                .into()
        })
    }
}

impl Prepared {
    fn tag(&self, parts: &[&[u8]]) -> Vec<u8> {
        match self {
            Prepared::Sha256(key) => {
                let mut mac = key.clone();
                for part in parts {
                    mac.update(part);
                }
                mac.finalize().into_bytes().to_vec()
            }
            Prepared::Sha512(key) => {
                let mut mac = key.clone();
                for part in parts {
                    mac.update(part);
                }
                mac.finalize().into_bytes().to_vec()
            }
        }
    }
}

impl fmt::Debug for MacKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacKeys({} keys, [redacted])", self.keys.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4231_test_case_2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        let keys = MacKeys::new(&[b"Jefe"], MacAlgorithm::Sha256).unwrap();
        assert_eq!(
            hex::encode(
                keys.tag(0, &[b"what do ya want ", b"for nothing?"])
                    .unwrap()
            ),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let keys = MacKeys::new(&[b"Jefe"], MacAlgorithm::Sha512).unwrap();
        assert_eq!(
            hex::encode(keys.tag(0, &[b"what do ya want for nothing?"]).unwrap()),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
    }

    #[test]
    fn any_key_and_any_candidate_may_match() {
        let keys = MacKeys::new(&["old", "new"], MacAlgorithm::Sha256).unwrap();
        let by_new = keys.tag(1, &[b"body"]).unwrap();
        assert_eq!(
            keys.find(&[b"body"], &[vec![0u8; 32], by_new.clone()]),
            Some(1)
        );
        assert_eq!(keys.find(&[b"other"], std::slice::from_ref(&by_new)), None);
        let mut flipped = by_new.clone();
        flipped[31] ^= 1;
        assert_eq!(keys.find(&[b"body"], &[flipped]), None);
        assert_eq!(
            keys.find(&[b"body"], &[&by_new[..16]]),
            None,
            "a prefix is no match"
        );
        assert_eq!(keys.find::<Vec<u8>>(&[b"body"], &[]), None);
    }

    #[test]
    fn empty_keys_are_refused_and_keys_never_print() {
        assert_eq!(
            MacKeys::new(&["ok", ""], MacAlgorithm::Sha256).unwrap_err(),
            (1, KeyProblem::Empty)
        );
        let keys = MacKeys::new(&["hunter2"], MacAlgorithm::Sha256).unwrap();
        assert!(!format!("{keys:?}").contains("hunter2"));
        assert_eq!(keys.kind(), SignatureKind::HmacSha256);
    }
}
