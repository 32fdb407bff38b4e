//! The vault: credentials sealed on their way into the store and opened on their way out, and
//! the operations on all of them — the start-up check and `keys rotate`.
//!
//! Invariants: a [`CredentialRecord`] leaving the vault for the store holds only sealed bytes
//! (every field under the keyring's current key, AAD = api + tenant + field); an [`Opened`]
//! credential exists only in memory; a rotation re-seals a row with a compare-and-swap on its
//! version, so a refresh that wrote meanwhile is never overwritten with older tokens.

use std::collections::BTreeSet;

use super::crypto::{Aad, CryptoError, Keyring};
use crate::{
    ids::{ApiName, TenantId, now_ms},
    secret::Secret,
    store::{AnyStore, CredentialKind, CredentialRecord, Store, StoreError},
};

/// Rows read per page when walking every credential.
const PAGE: usize = 256;

/// A credential in the clear, in memory only.
#[derive(Clone, Debug)]
pub struct Opened {
    pub access: Secret,
    pub refresh: Option<Secret>,
    pub previous: Option<Secret>,
    /// The stored row it came from (sealed fields included, for compare-and-swap writes).
    pub record: CredentialRecord,
}

/// What a new credential is made of.
#[derive(Debug)]
pub struct NewCredential {
    pub api: ApiName,
    pub tenant: TenantId,
    pub kind: CredentialKind,
    pub access: Secret,
    pub refresh: Option<Secret>,
    pub previous: Option<(Secret, i64)>,
    pub expires_at_ms: Option<i64>,
    pub issued_at_ms: i64,
    pub scopes: String,
    pub user_type: Option<String>,
    pub company: Option<TenantId>,
}

/// Vault failures.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Seals and opens credentials with a keyring, over a store.
#[derive(Clone)]
pub struct Vault {
    store: AnyStore,
    keys: Keyring,
}

impl Vault {
    pub fn new(store: AnyStore, keys: Keyring) -> Vault {
        Vault { store, keys }
    }

    /// The store behind the vault.
    pub fn store(&self) -> &AnyStore {
        &self.store
    }

    /// Seals `new` into a record (version 0; the store assigns the next one).
    pub fn seal(&self, new: &NewCredential) -> Result<CredentialRecord, CryptoError> {
        let key_id = self.keys.current_id().ok_or(CryptoError::NoKey)?.to_owned();
        let aad = |field| Aad {
            api: &new.api,
            tenant: &new.tenant,
            field,
        };
        let seal_opt = |field, value: Option<&Secret>| {
            value.map(|v| self.keys.seal(aad(field), v)).transpose()
        };
        Ok(CredentialRecord {
            api: new.api.clone(),
            tenant: new.tenant.clone(),
            kind: new.kind,
            key_id,
            access: self.keys.seal(aad("access"), &new.access)?,
            refresh: seal_opt("refresh", new.refresh.as_ref())?,
            previous: seal_opt("previous", new.previous.as_ref().map(|(s, _)| s))?,
            previous_until_ms: new.previous.as_ref().map(|(_, until)| *until),
            expires_at_ms: new.expires_at_ms,
            issued_at_ms: new.issued_at_ms,
            scopes: new.scopes.clone(),
            user_type: new.user_type.clone(),
            company: new.company.clone(),
            refresh_lease_until_ms: None,
            version: 0,
        })
    }

    /// Opens every sealed field of `record`.
    pub fn open(&self, record: CredentialRecord) -> Result<Opened, CryptoError> {
        let open = |field, sealed: &[u8]| {
            self.keys.open(
                &record.key_id,
                Aad {
                    api: &record.api,
                    tenant: &record.tenant,
                    field,
                },
                sealed,
            )
        };
        let access = open("access", &record.access)?;
        let refresh = record
            .refresh
            .as_deref()
            .map(|s| open("refresh", s))
            .transpose()?;
        let previous = record
            .previous
            .as_deref()
            .map(|s| open("previous", s))
            .transpose()?;
        Ok(Opened {
            access,
            refresh,
            previous,
            record,
        })
    }

    /// Reads and opens the credential of (api, tenant).
    pub async fn load(
        &self,
        api: &ApiName,
        tenant: &TenantId,
    ) -> Result<Option<Opened>, VaultError> {
        match self.store.credential(api, tenant).await? {
            Some(record) => Ok(Some(self.open(record)?)),
            None => Ok(None),
        }
    }

    /// Seals and writes `new` if the stored row is still at `expected_version` (None: in any
    /// case). Returns the written record, or None when the row had moved on.
    pub async fn store_new(
        &self,
        new: &NewCredential,
        expected_version: Option<i64>,
    ) -> Result<Option<Opened>, VaultError> {
        let record = self.seal(new)?;
        if !self
            .store
            .put_credential(record.clone(), expected_version)
            .await?
        {
            return Ok(None);
        }
        // Read back for the version the store assigned.
        self.load(&new.api, &new.tenant).await
    }

    /// Every distinct key id credentials are sealed under, and how many credentials there are.
    pub async fn key_ids(&self) -> Result<(BTreeSet<String>, u64), StoreError> {
        let (mut ids, mut count, mut after) = (BTreeSet::new(), 0u64, None);
        loop {
            let page = self.store.credentials(after, PAGE).await?;
            let Some(last) = page.last() else {
                return Ok((ids, count));
            };
            after = Some((last.api.clone(), last.tenant.clone()));
            count += page.len() as u64;
            ids.extend(page.into_iter().map(|r| r.key_id));
        }
    }

    /// Re-seals every credential not under the current key, while the server runs: each row is
    /// opened (with an old key), sealed under the current one and written only if it did not
    /// change meanwhile (a refresh that wrote first already sealed under the current key).
    /// Returns how many rows were re-sealed.
    pub async fn rotate(&self) -> Result<u64, VaultError> {
        let current = self.keys.current_id().ok_or(CryptoError::NoKey)?.to_owned();
        let (mut resealed, mut after) = (0u64, None);
        loop {
            let page = self.store.credentials(after, PAGE).await?;
            let Some(last) = page.last() else {
                return Ok(resealed);
            };
            after = Some((last.api.clone(), last.tenant.clone()));
            for record in page.into_iter().filter(|r| r.key_id != current) {
                let mut record = record;
                // A row a concurrent write moved on is read again, a few times at most.
                for _ in 0..5 {
                    // A refresh in flight writes the row under the current key itself; wait
                    // for it rather than bump the version under it (it would lose its pair).
                    // The lease's end is the store's clock: a replica's clock off by a few
                    // seconds only makes this wait that much longer or shorter, then re-read.
                    if let Some(until) = record.refresh_lease_until_ms.filter(|u| *u > now_ms()) {
                        let wait = (until - now_ms()).clamp(0, 30_000) as u64;
                        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                        match self.store.credential(&record.api, &record.tenant).await? {
                            Some(now) if now.key_id != current => record = now,
                            _ => break,
                        }
                        continue;
                    }
                    let version = record.version;
                    let opened = self.open(record.clone())?;
                    let new = NewCredential {
                        api: record.api.clone(),
                        tenant: record.tenant.clone(),
                        kind: record.kind,
                        access: opened.access,
                        refresh: opened.refresh,
                        previous: opened.previous.zip(record.previous_until_ms),
                        expires_at_ms: record.expires_at_ms,
                        issued_at_ms: record.issued_at_ms,
                        scopes: record.scopes.clone(),
                        user_type: record.user_type.clone(),
                        company: record.company.clone(),
                    };
                    let sealed = self.seal(&new)?;
                    if self.store.put_credential(sealed, Some(version)).await? {
                        resealed += 1;
                        break;
                    }
                    match self.store.credential(&record.api, &record.tenant).await? {
                        Some(now) if now.key_id != current => record = now,
                        _ => break,
                    }
                }
            }
        }
    }
}
