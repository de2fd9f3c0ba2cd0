//! Random tokens, digests, and argon2id password hashing.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::config::PasswordHashing;
use crate::error::AccountsError;

/// `n` random bytes from the operating system.
pub(crate) fn random_bytes(n: usize) -> Result<Vec<u8>, AccountsError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf)
        .map_err(|e| AccountsError::Crypto(format!("no randomness from the OS: {e}")))?;
    Ok(buf)
}

/// 32 random bytes, base64url without padding (43 characters).
pub(crate) fn random_token() -> Result<String, AccountsError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes(32)?))
}

/// SHA-256 of `text`, lowercase hex.
pub(crate) fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out
}

/// argon2id hashing with configured costs. Cheap to clone. The hashing
/// methods are CPU-bound and blocking: async code goes through
/// [`Hasher::run`], which also bounds how many hashes (each taking
/// `memory_kib` of memory) run at once.
#[derive(Clone)]
pub(crate) struct Hasher {
    argon: Argon2<'static>,
    /// Permits for concurrent hash computations.
    slots: Arc<tokio::sync::Semaphore>,
    /// A hash of a random password, verified against when an account does
    /// not exist so that a login takes as long either way.
    dummy: Arc<OnceLock<String>>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("params", self.argon.params())
            .finish()
    }
}

impl Hasher {
    /// A hasher with these costs, running at most `concurrency` hashes at once.
    pub fn new(costs: PasswordHashing, concurrency: usize) -> Result<Self, AccountsError> {
        let params = Params::new(costs.memory_kib, costs.iterations, costs.parallelism, None)
            .map_err(|e| AccountsError::Config(format!("argon2 parameters: {e}")))?;
        Ok(Self {
            argon: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            slots: Arc::new(tokio::sync::Semaphore::new(concurrency.max(1))),
            dummy: Arc::new(OnceLock::new()),
        })
    }

    /// Runs `f` with this hasher on tokio's blocking pool once a hashing
    /// slot is free (callers queue instead of exhausting memory).
    pub async fn run<T, F>(&self, f: F) -> Result<T, AccountsError>
    where
        F: FnOnce(&Hasher) -> Result<T, AccountsError> + Send + 'static,
        T: Send + 'static,
    {
        let _permit = self
            .slots
            .acquire()
            .await
            .map_err(|e| AccountsError::Crypto(format!("hashing slots closed: {e}")))?;
        let hasher = self.clone();
        crate::users::blocking(move || f(&hasher)).await
    }

    /// A PHC string (`$argon2id$v=19$m=...`) of `password` with a fresh salt.
    pub fn hash(&self, password: &str) -> Result<String, AccountsError> {
        let salt = SaltString::encode_b64(&random_bytes(16)?)
            .map_err(|e| AccountsError::Crypto(format!("salt: {e}")))?;
        self.argon
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AccountsError::Crypto(format!("argon2: {e}")))
    }

    /// Whether `password` matches the PHC string `hash` (with the costs
    /// recorded in it). A malformed stored hash never matches.
    pub fn verify(&self, password: &str, hash: &str) -> bool {
        match PasswordHash::new(hash) {
            Ok(parsed) => self
                .argon
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(e) => {
                tracing::warn!(error = %e, "stored password hash is malformed");
                false
            }
        }
    }

    /// Spends the time of one verification and returns `false`: used when
    /// the account does not exist.
    pub fn verify_dummy(&self, password: &str) {
        let dummy = match self.dummy.get() {
            Some(h) => h,
            None => {
                let made = random_token()
                    .and_then(|pw| self.hash(&pw))
                    .unwrap_or_default();
                self.dummy.get_or_init(|| made)
            }
        };
        if !dummy.is_empty() {
            let _ = self.verify(password, dummy);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_verifies() {
        let h = Hasher::new(PasswordHashing::insecure_fast(), 2).unwrap();
        let a = h.hash("correct horse 1").unwrap();
        let b = h.hash("correct horse 1").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(h.verify("correct horse 1", &a));
        assert!(!h.verify("correct horse 2", &a));
        assert!(!h.verify("x", "not a hash"));
        // A hasher with other costs still verifies old hashes.
        let strong = Hasher::new(
            PasswordHashing {
                memory_kib: 2048,
                iterations: 2,
                parallelism: 1,
            },
            1,
        )
        .unwrap();
        assert!(strong.verify("correct horse 1", &a));
        h.verify_dummy("whatever");
    }

    #[test]
    fn tokens_and_digests() {
        let t = random_token().unwrap();
        assert_eq!(t.len(), 43);
        assert!(
            t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(t, random_token().unwrap());
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
