//! `Verified`: a request body whose signature checked out, bound to the source that checked it.
//!
//! Invariant: a `Verified` exists only if `Source::verify` accepted the signature over exactly
//! these bytes. Its fields are private and it has no public constructor (only code inside
//! `sources` can build one), so any function taking `&Verified` is known to run after
//! verification, and the body cannot be swapped for another afterwards.

use std::{fmt, sync::Arc};

use bytes::Bytes;
use http::HeaderMap;

use super::{Envelope, EnvelopeError, Source};

/// Which signature proved a body genuine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureKind {
    /// Ed25519 (HighLevel `x-ghl-signature`).
    Ed25519,
    /// RSA PKCS#1 v1.5 with SHA-256 (HighLevel's legacy `x-wh-signature`).
    RsaSha256,
    /// HMAC-SHA256 with a shared secret (Standard Webhooks `v1`, GitHub, Stripe, Shopify,
    /// Slack, generic `hmac`).
    HmacSha256,
    /// HMAC-SHA512 with a shared secret (generic `hmac`).
    HmacSha512,
}

impl SignatureKind {
    /// A short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureKind::Ed25519 => "ed25519",
            SignatureKind::RsaSha256 => "rsa-sha256",
            SignatureKind::HmacSha256 => "hmac-sha256",
            SignatureKind::HmacSha512 => "hmac-sha512",
        }
    }
}

/// What a scheme reports after a successful check: the kind of signature, which of the
/// configured keys (0-based, in config order) matched, so operators can see when a rotated-out
/// key stops being used, and the signed timestamp when the scheme signs one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proof {
    pub kind: SignatureKind,
    pub key: usize,
    /// The timestamp covered by the signature (ms since the epoch), already checked against
    /// the scheme's tolerance.
    pub signed_at_ms: Option<i64>,
}

impl Proof {
    /// A proof without a signed timestamp.
    pub fn new(kind: SignatureKind, key: usize) -> Proof {
        Proof {
            kind,
            key,
            signed_at_ms: None,
        }
    }
}

/// A body whose signature was verified by its source. See the module doc for the invariant.
pub struct Verified {
    source: Arc<Source>,
    /// The request's headers: some schemes read the event id, kind or tenant from them. They
    /// came with a verified body but are not all covered by the signature; schemes only read
    /// headers their sender documents (and a verified sender sets).
    headers: HeaderMap,
    body: Bytes,
    proof: Proof,
}

impl Verified {
    /// Only `Source::verify` calls this, after the scheme accepted the signature over `body`.
    pub(super) fn new(
        source: Arc<Source>,
        headers: HeaderMap,
        body: Bytes,
        proof: Proof,
    ) -> Verified {
        Verified {
            source,
            headers,
            body,
            proof,
        }
    }

    /// The source that verified the body.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The raw body, byte for byte as signed.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Which signature and key proved it.
    pub fn proof(&self) -> Proof {
        self.proof
    }

    /// The request's headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Reads the event's id, kind and tenant from the verified body and applies the source's
    /// acceptance rules (app, age, ...). `now_ms` is the receive time, ms since the epoch.
    pub fn envelope(&self, now_ms: i64) -> Result<Envelope, EnvelopeError> {
        self.source
            .envelope(&self.headers, &self.body, self.proof, now_ms)
    }

    /// The answer to a sender's endpoint check, when this request is one (Slack's
    /// `url_verification`): the challenge to echo. Such a request is answered, never stored.
    pub fn challenge(&self) -> Option<String> {
        self.source.challenge(&self.headers, &self.body)
    }

    /// The body, for storing. Consumes the proof: a stored payload needs no further checks.
    pub fn into_body(self) -> Bytes {
        self.body
    }
}

impl fmt::Debug for Verified {
    // The body may hold personal data: print its size, never its content.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("source", self.source.name())
            .field("body_len", &self.body.len())
            .field("proof", &self.proof)
            .finish()
    }
}
