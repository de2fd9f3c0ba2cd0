#![allow(clippy::unwrap_used, clippy::expect_used)]
//! API keys: create, list, revoke, authenticate, isolation; on SQLite and PostgreSQL.

mod common;

use confab_accounts::AccountsError;
use confab_store::Db;
use confab_store::diesel::prelude::*;
use confab_store::schema::api_keys;

use common::{PASSWORD, accounts, accounts_with, user};

async fn api_key_lifecycle(db: Db) {
    let acc = accounts(&db);
    let alice = user(&acc, "alice@example.com").await;
    let created = acc
        .api_keys
        .create_api_key(alice.id, "  laptop script ", PASSWORD)
        .await
        .unwrap();
    assert!(created.key.starts_with("cfb_"));
    assert_eq!(created.key.len(), 4 + 43);
    assert_eq!(created.info.name, "laptop script");
    assert_eq!(created.info.prefix, &created.key[..12]);
    assert!(created.info.last_used_at.is_none());
    // The key itself is never stored.
    let stored: Vec<(String, String)> = db
        .run(|conn| {
            api_keys::table
                .select((api_keys::prefix, api_keys::key_hash))
                .load(conn)
                .map_err(confab_store::StoreError::from)
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1.len(), 64);
    assert!(!stored[0].1.contains(&created.key[4..]));

    let who = acc
        .api_keys
        .authenticate_api_key(&created.key)
        .await
        .unwrap();
    assert_eq!(who.id, alice.id);
    let listed = acc.api_keys.list_api_keys(alice.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, created.info.id);
    assert!(listed[0].last_used_at.is_some(), "use is recorded");

    let second = acc
        .api_keys
        .create_api_key(alice.id, "ci", PASSWORD)
        .await
        .unwrap();
    assert_ne!(second.key, created.key);
    let names: Vec<String> = acc
        .api_keys
        .list_api_keys(alice.id)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(names, ["ci", "laptop script"], "newest first");

    let revoked = acc
        .api_keys
        .revoke_api_key(alice.id, created.info.id)
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    // Revoking again is harmless and keeps the first time.
    let again = acc
        .api_keys
        .revoke_api_key(alice.id, created.info.id)
        .await
        .unwrap();
    assert_eq!(again.revoked_at, revoked.revoked_at);
    let err = acc
        .api_keys
        .authenticate_api_key(&created.key)
        .await
        .unwrap_err();
    assert!(matches!(err, AccountsError::InvalidApiKey));
    assert_eq!(err.status(), 401);
    // The other key still works.
    acc.api_keys
        .authenticate_api_key(&second.key)
        .await
        .unwrap();
    // Revoked keys stay listed, marked.
    let listed = acc.api_keys.list_api_keys(alice.id).await.unwrap();
    assert_eq!(listed.iter().filter(|k| k.revoked_at.is_some()).count(), 1);
}

async fn api_keys_are_isolated(db: Db) {
    let acc = accounts(&db);
    let alice = user(&acc, "alice@example.com").await;
    let bob = user(&acc, "bob@example.com").await;
    let key = acc
        .api_keys
        .create_api_key(alice.id, "mine", PASSWORD)
        .await
        .unwrap();
    // Bob cannot see or revoke Alice's key.
    assert!(acc.api_keys.list_api_keys(bob.id).await.unwrap().is_empty());
    let err = acc
        .api_keys
        .revoke_api_key(bob.id, key.info.id)
        .await
        .unwrap_err();
    assert!(matches!(err, AccountsError::ApiKeyNotFound(_)));
    assert_eq!(err.status(), 404);
    assert_eq!(
        acc.api_keys
            .authenticate_api_key(&key.key)
            .await
            .unwrap()
            .id,
        alice.id
    );
    // Unknown ids and malformed or unknown keys.
    assert!(matches!(
        acc.api_keys
            .revoke_api_key(alice.id, uuid::Uuid::now_v7())
            .await,
        Err(AccountsError::ApiKeyNotFound(_))
    ));
    let unknown = format!("cfb_{}", "A".repeat(43));
    for bad in [
        "",
        "cfb_",
        "sk-123",
        &unknown,
        &key.key[..key.key.len() - 1],
        &format!("{}x", key.key),
    ] {
        assert!(
            matches!(
                acc.api_keys.authenticate_api_key(bad).await,
                Err(AccountsError::InvalidApiKey)
            ),
            "{bad}"
        );
    }
    // Keys need an account and a name.
    assert!(matches!(
        acc.api_keys
            .create_api_key(uuid::Uuid::now_v7(), "x", PASSWORD)
            .await,
        Err(AccountsError::UserNotFound(_))
    ));
    assert!(matches!(
        acc.api_keys.create_api_key(alice.id, "  ", PASSWORD).await,
        Err(AccountsError::InvalidField { field: "name", .. })
    ));
    // Deleting the user removes the keys.
    acc.users.delete_user(alice.id).await.unwrap();
    assert!(matches!(
        acc.api_keys.authenticate_api_key(&key.key).await,
        Err(AccountsError::InvalidApiKey)
    ));
    assert!(
        acc.api_keys
            .list_api_keys(alice.id)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn api_key_limit(db: Db) {
    let acc = accounts_with(&db, |c| c.max_api_keys_per_user = 2);
    let u = user(&acc, "carol@example.com").await;
    let a = acc
        .api_keys
        .create_api_key(u.id, "a", PASSWORD)
        .await
        .unwrap();
    acc.api_keys
        .create_api_key(u.id, "b", PASSWORD)
        .await
        .unwrap();
    let err = acc
        .api_keys
        .create_api_key(u.id, "c", PASSWORD)
        .await
        .unwrap_err();
    assert!(matches!(err, AccountsError::TooManyApiKeys(2)));
    assert_eq!(err.status(), 409);
    // Revoked keys do not count.
    acc.api_keys.revoke_api_key(u.id, a.info.id).await.unwrap();
    acc.api_keys
        .create_api_key(u.id, "c", PASSWORD)
        .await
        .unwrap();
}

/// Issue 17 item 4: a key needs the current password, and "log out
/// everywhere" and a password change revoke every key.
async fn keys_need_the_password_and_die_with_the_logins(db: Db) {
    let acc = accounts(&db);
    let u = user(&acc, "dora@example.com").await;
    let err = acc
        .api_keys
        .create_api_key(u.id, "stolen", "not the password 1")
        .await
        .unwrap_err();
    assert!(matches!(err, AccountsError::InvalidCredentials), "{err}");
    assert!(acc.api_keys.list_api_keys(u.id).await.unwrap().is_empty());

    let a = acc
        .api_keys
        .create_api_key(u.id, "a", PASSWORD)
        .await
        .unwrap();
    acc.api_keys.authenticate_api_key(&a.key).await.unwrap();
    acc.tokens.logout_all(u.id).await.unwrap();
    assert!(matches!(
        acc.api_keys.authenticate_api_key(&a.key).await,
        Err(AccountsError::InvalidApiKey)
    ));

    let b = acc
        .api_keys
        .create_api_key(u.id, "b", PASSWORD)
        .await
        .unwrap();
    acc.users
        .change_password(u.id, PASSWORD, "Another horse 77")
        .await
        .unwrap();
    assert!(matches!(
        acc.api_keys.authenticate_api_key(&b.key).await,
        Err(AccountsError::InvalidApiKey)
    ));
    let hashes = [&a.key, &b.key]
        .iter()
        .filter_map(|k| confab_accounts::api_key_hash(k))
        .collect();
    assert!(
        acc.api_keys
            .live_key_hashes(hashes)
            .await
            .unwrap()
            .is_empty()
    );
    let listed = acc.api_keys.list_api_keys(u.id).await.unwrap();
    assert!(listed.iter().all(|k| k.revoked_at.is_some()), "{listed:?}");
}

confab_testkit::backend_tests!(
    api_key_lifecycle,
    api_keys_are_isolated,
    api_key_limit,
    keys_need_the_password_and_die_with_the_logins,
);
