//! Webhook sources: one file per signature scheme. Verification runs on the raw body bytes
//! before anything parses them; only a verifier can construct a `Verified` body.
