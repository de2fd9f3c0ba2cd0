//! Shared set-up of the accounts tests.
#![allow(dead_code)]

use confab_accounts::{Accounts, AccountsConfig, JwtConfig, PasswordHashing};
use confab_models::accounts::User;
use confab_store::Db;

/// The JWT secret of the tests.
pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret-0123456789";
/// A password that passes the policy.
pub const PASSWORD: &str = "Correct horse 42";

/// The services over `db`, with cheap password hashing.
pub fn accounts(db: &Db) -> Accounts {
    accounts_with(db, |_| {})
}

/// [`accounts`] with the configuration adjusted.
pub fn accounts_with(db: &Db, tune: impl FnOnce(&mut AccountsConfig)) -> Accounts {
    let mut config = AccountsConfig::new(JwtConfig::new(SECRET.to_vec()));
    config.hashing = PasswordHashing::insecure_fast();
    tune(&mut config);
    Accounts::new(db.clone(), config).expect("accounts")
}

/// Registers `email` with [`PASSWORD`].
pub async fn user(acc: &Accounts, email: &str) -> User {
    acc.users
        .register(email, PASSWORD, None)
        .await
        .expect("register")
}
