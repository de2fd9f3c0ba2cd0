#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Users, passwords, JWT access tokens and refresh tokens, on SQLite and PostgreSQL.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use confab_accounts::{AccountsError, Clock, JwtConfig, TokenService};
use confab_error::{DomainError, ErrorKind};
use confab_models::accounts::{AiStyle, ProfileUpdate, User, UserRole};
use confab_store::Db;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use common::{PASSWORD, SECRET, accounts, accounts_with, user};

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Valid claims for `user` as JSON, to be altered by attacks.
fn claims(user: &User) -> Value {
    let now = now();
    json!({
        "sub": user.id.to_string(),
        "role": "user",
        "ver": 0,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "iss": "confab",
        "jti": uuid::Uuid::new_v4().to_string(),
        "typ": "access",
    })
}

fn sign(claims: &Value, alg: Algorithm, secret: &[u8]) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn assert_invalid(tokens: &TokenService, token: &str, what: &str) {
    match tokens.verify_access(token) {
        Err(e @ AccountsError::InvalidToken(_)) => {
            assert!(e.is_unauthorized());
            assert_eq!(e.kind(), ErrorKind::Unauthorized);
        }
        other => panic!("{what}: expected InvalidToken, got {other:?}"),
    }
}

async fn register_login_refresh_logout(db: Db) {
    let acc = accounts(&db);
    let u = acc
        .users
        .register(" Alice@Example.com ", PASSWORD, Some("  Alice  "))
        .await
        .unwrap();
    assert_eq!(u.email, "alice@example.com");
    assert_eq!(u.display_name, "Alice");
    assert_eq!(u.role, UserRole::User);
    assert_eq!(u.settings.ai_style, AiStyle::Balanced);
    assert_eq!(acc.users.get_user(u.id).await.unwrap(), u);
    assert_eq!(
        acc.users
            .find_by_email("ALICE@example.com")
            .await
            .unwrap()
            .id,
        u.id
    );
    // Default display name: the part before @.
    let bob = user(&acc, "bob.smith@example.com").await;
    assert_eq!(bob.display_name, "bob.smith");

    let (logged, pair) = acc
        .tokens
        .login("ALICE@EXAMPLE.COM", PASSWORD)
        .await
        .unwrap();
    assert_eq!(logged.id, u.id);
    assert_eq!(pair.token_type, "Bearer");
    assert_eq!(pair.expires_in, 15 * 60);
    assert_eq!(pair.refresh_expires_in, 30 * 24 * 3600);
    assert_eq!(pair.refresh_token.len(), 43);
    let claims = acc.tokens.verify_access(&pair.access_token).unwrap();
    assert_eq!(claims.sub, u.id.to_string());
    assert_eq!(claims.typ, "access");
    assert_eq!(claims.iss, "confab");
    assert_eq!(claims.exp - claims.iat, 15 * 60);
    assert_eq!(
        acc.tokens
            .authenticate_access(&pair.access_token)
            .await
            .unwrap()
            .id,
        u.id
    );

    // Refresh rotates: a new refresh token, a working access token.
    let second = acc.tokens.refresh(&pair.refresh_token).await.unwrap();
    assert_ne!(second.refresh_token, pair.refresh_token);
    assert_eq!(
        acc.tokens
            .authenticate_access(&second.access_token)
            .await
            .unwrap()
            .id,
        u.id
    );
    let third = acc.tokens.refresh(&second.refresh_token).await.unwrap();

    // Logout ends the login: the current refresh token no longer works.
    assert!(acc.tokens.logout(&third.refresh_token).await.unwrap());
    assert!(!acc.tokens.logout("not-a-token").await.unwrap());
    assert!(acc.tokens.refresh(&third.refresh_token).await.is_err());

    // Tokens issued right after registration.
    let fresh = acc.tokens.issue_tokens(&bob).await.unwrap();
    assert_eq!(
        acc.tokens
            .authenticate_access(&fresh.access_token)
            .await
            .unwrap()
            .id,
        bob.id
    );
    let access = acc.tokens.issue_access(&bob).await.unwrap();
    assert_eq!(
        acc.tokens.authenticate_access(&access).await.unwrap().id,
        bob.id
    );
    assert_eq!(acc.users.count().await.unwrap(), 2);
}

async fn wrong_password_and_unknown_email(db: Db) {
    let acc = accounts(&db);
    user(&acc, "carol@example.com").await;
    for (email, pw) in [
        ("carol@example.com", "Correct horse 43"),
        ("carol@example.com", ""),
        ("nobody@example.com", PASSWORD),
        ("not an email", PASSWORD),
    ] {
        let err = acc.tokens.login(email, pw).await.unwrap_err();
        assert!(
            matches!(err, AccountsError::InvalidCredentials),
            "{email}: {err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
        assert_eq!(err.to_string(), "invalid email or password");
        assert!(acc.users.authenticate(email, pw).await.is_err());
    }
    assert!(
        acc.users
            .authenticate("Carol@Example.com", PASSWORD)
            .await
            .is_ok()
    );
}

async fn duplicate_email_in_another_case(db: Db) {
    let acc = accounts(&db);
    user(&acc, "dave@example.com").await;
    for email in ["dave@example.com", "DAVE@EXAMPLE.COM", " Dave@Example.Com"] {
        let err = acc.users.register(email, PASSWORD, None).await.unwrap_err();
        assert!(matches!(err, AccountsError::EmailTaken), "{email}: {err:?}");
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert_eq!(err.code(), "email_taken");
    }
    // Concurrent registrations of one address: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let users = acc.users.clone();
        let email = if i % 2 == 0 {
            "eve@example.com"
        } else {
            "EVE@example.com"
        };
        tasks.push(tokio::spawn(async move {
            users.register(email, PASSWORD, None).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(AccountsError::EmailTaken) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(ok, 1);
}

async fn weak_passwords_rejected(db: Db) {
    let acc = accounts(&db);
    let email = "frank.jones@example.com";
    let cases = [
        ("Sh0rt!", "at least 10 characters long (it has 6)"),
        (
            "abcdefghijkl",
            "it uses only lowercase letters: add uppercase letters, digits or symbols",
        ),
        ("ABCDEFGHIJKL", "it uses only uppercase letters"),
        (
            "1234567890123",
            "it uses only digits: add letters or symbols",
        ),
        ("!@#$%^&*()_+", "it uses only symbols"),
        (
            "aA1aA1aA1aA1",
            "at least 5 different characters (it uses 3)",
        ),
        (
            "Frank.Jones@Example.com",
            "it must not be your email address",
        ),
        ("frank.jones", "it must not be your email address"),
    ];
    for (pw, expected) in cases {
        let err = acc.users.register(email, pw, None).await.unwrap_err();
        let AccountsError::WeakPassword(reason) = &err else {
            panic!("{pw}: {err:?}");
        };
        assert!(reason.contains(expected), "{pw}: {reason}");
        assert_eq!(err.kind(), ErrorKind::Invalid);
        assert_eq!(err.code(), "weak_password");
        assert!(err.to_string().starts_with("weak password: "));
    }
    // Everything missing is listed at once.
    let err = acc.users.register(email, "12345", None).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("at least 10 characters") && msg.contains("only digits"),
        "{msg}"
    );
    // Bad emails are their own error.
    assert!(matches!(
        acc.users.register("no-at-sign", PASSWORD, None).await,
        Err(AccountsError::InvalidEmail(_))
    ));
    assert_eq!(acc.users.count().await.unwrap(), 0);
}

async fn profile_settings_roles_and_deletion(db: Db) {
    let acc = accounts(&db);
    let u = user(&acc, "grace@example.com").await;
    let updated = acc
        .users
        .update_profile(
            u.id,
            ProfileUpdate {
                display_name: Some("Grace H.".into()),
                settings: Some(
                    json!({"ai_style": "socratic", "preferred_model": "llama3", "theme": "dark"}),
                ),
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.display_name, "Grace H.");
    assert_eq!(updated.settings.ai_style, AiStyle::Socratic);
    assert_eq!(updated.settings.preferred_model.as_deref(), Some("llama3"));
    assert_eq!(updated.settings.extra["theme"], "dark");
    assert!(updated.updated_at >= u.updated_at);
    let serialised = serde_json::to_value(&updated.settings).unwrap();
    assert_eq!(
        serialised,
        json!({"ai_style": "socratic", "preferred_model": "llama3", "theme": "dark"})
    );
    // A patch changes only what it names; null removes.
    let again = acc
        .users
        .update_profile(
            u.id,
            ProfileUpdate {
                display_name: None,
                settings: Some(json!({"preferred_model": null, "theme": null})),
            },
        )
        .await
        .unwrap();
    assert_eq!(again.display_name, "Grace H.");
    assert_eq!(again.settings.ai_style, AiStyle::Socratic);
    assert_eq!(again.settings.preferred_model, None);
    assert!(again.settings.extra.is_empty());
    for bad in [
        json!({"ai_style": "sarcastic"}),
        json!({"preferred_model": 3}),
        json!("concise"),
    ] {
        let err = acc
            .users
            .update_profile(
                u.id,
                ProfileUpdate {
                    display_name: None,
                    settings: Some(bad.clone()),
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, AccountsError::InvalidField { .. }),
            "{bad}: {err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::Invalid);
    }
    let err = acc
        .users
        .update_profile(
            u.id,
            ProfileUpdate {
                display_name: Some("  ".into()),
                settings: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        AccountsError::InvalidField {
            field: "display_name",
            ..
        }
    ));
    // Nothing was half-applied.
    assert_eq!(
        acc.users.get_user(u.id).await.unwrap().settings.ai_style,
        AiStyle::Socratic
    );

    let admin = acc.users.set_role(u.id, UserRole::Admin).await.unwrap();
    assert_eq!(admin.role, UserRole::Admin);
    let (_, pair) = acc
        .tokens
        .login("grace@example.com", PASSWORD)
        .await
        .unwrap();
    assert_eq!(
        acc.tokens.verify_access(&pair.access_token).unwrap().role,
        UserRole::Admin
    );

    acc.users.delete_user(u.id).await.unwrap();
    assert!(matches!(
        acc.users.get_user(u.id).await,
        Err(AccountsError::UserNotFound(_))
    ));
    assert!(matches!(
        acc.users.delete_user(u.id).await,
        Err(AccountsError::UserNotFound(_))
    ));
    assert!(matches!(
        acc.users.set_role(u.id, UserRole::User).await,
        Err(AccountsError::UserNotFound(_))
    ));
    // The address is free again.
    user(&acc, "grace@example.com").await;
}

async fn jwt_attacks_are_refused(db: Db) {
    let acc = accounts(&db);
    let u = user(&acc, "heidi@example.com").await;
    let tokens = &acc.tokens;
    let good = claims(&u);
    // Our own hand-made token is accepted, so the attacks below fail for their reason.
    let valid = sign(&good, Algorithm::HS256, SECRET);
    assert_eq!(tokens.authenticate_access(&valid).await.unwrap().id, u.id);

    // alg: none, with an empty signature (and with a bogus one).
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&good)
    );
    assert_invalid(tokens, &none, "alg none");
    let none_sig = format!("{none}AAAA");
    assert_invalid(tokens, &none_sig, "alg none with signature");
    let none_caps = format!("{}.{}.", b64(&json!({"alg": "None"})), b64(&good));
    assert_invalid(tokens, &none_caps, "alg None");
    // Another HMAC algorithm with the right secret.
    assert_invalid(tokens, &sign(&good, Algorithm::HS512, SECRET), "HS512");
    // Wrong signature: another secret, or a payload swapped under a valid signature.
    assert_invalid(
        tokens,
        &sign(
            &good,
            Algorithm::HS256,
            b"another-secret-another-secret-another-secret",
        ),
        "wrong secret",
    );
    let mut admin = good.clone();
    admin["role"] = json!("admin");
    let parts: Vec<&str> = valid.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], b64(&admin), parts[2]);
    assert_invalid(tokens, &forged, "tampered payload");
    // Expired, beyond the leeway.
    let mut expired = good.clone();
    expired["iat"] = json!(now() - 3600);
    expired["nbf"] = json!(now() - 3600);
    expired["exp"] = json!(now() - 30);
    assert_invalid(tokens, &sign(&expired, Algorithm::HS256, SECRET), "expired");
    assert!(matches!(
        tokens.verify_access(&sign(&expired, Algorithm::HS256, SECRET)),
        Err(AccountsError::InvalidToken("token has expired"))
    ));
    // Not valid yet.
    let mut early = good.clone();
    early["nbf"] = json!(now() + 60);
    assert!(matches!(
        tokens.verify_access(&sign(&early, Algorithm::HS256, SECRET)),
        Err(AccountsError::InvalidToken("token is not valid yet"))
    ));
    // Wrong issuer, wrong kind, missing claims, garbage.
    let mut iss = good.clone();
    iss["iss"] = json!("someone-else");
    assert_invalid(tokens, &sign(&iss, Algorithm::HS256, SECRET), "issuer");
    assert!(matches!(
        tokens.verify_access(&sign(&iss, Algorithm::HS256, SECRET)),
        Err(AccountsError::InvalidToken("wrong issuer"))
    ));
    // Expired and of another issuer: the expiry is reported first.
    iss["exp"] = expired["exp"].clone();
    assert!(matches!(
        tokens.verify_access(&sign(&iss, Algorithm::HS256, SECRET)),
        Err(AccountsError::InvalidToken("token has expired"))
    ));
    let mut typ = good.clone();
    typ["typ"] = json!("refresh");
    assert_invalid(tokens, &sign(&typ, Algorithm::HS256, SECRET), "typ");
    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_invalid(tokens, &sign(&no_exp, Algorithm::HS256, SECRET), "no exp");
    let mut bad_sub = good.clone();
    bad_sub["sub"] = json!("admin");
    assert_invalid(tokens, &sign(&bad_sub, Algorithm::HS256, SECRET), "sub");
    for garbage in ["", "abc", "a.b.c", &"x".repeat(10_000)] {
        assert_invalid(tokens, garbage, "garbage");
    }
    // Every one of them is refused by authenticate_access too.
    assert!(tokens.authenticate_access(&none).await.is_err());

    // A short leeway is honoured: a token expired 2 s ago still passes with 5 s.
    let mut just = good.clone();
    just["exp"] = json!(now() - 2);
    assert!(
        tokens
            .verify_access(&sign(&just, Algorithm::HS256, SECRET))
            .is_ok()
    );

    // Token of a deleted user: signature fine, account gone.
    let (_, pair) = tokens.login("heidi@example.com", PASSWORD).await.unwrap();
    acc.users.delete_user(u.id).await.unwrap();
    assert!(tokens.verify_access(&pair.access_token).is_ok());
    assert!(matches!(
        tokens.authenticate_access(&pair.access_token).await,
        Err(AccountsError::InvalidToken("the account no longer exists"))
    ));
    assert!(tokens.refresh(&pair.refresh_token).await.is_err());

    // A service with another issuer refuses our tokens.
    let other = accounts_with(&db, |c| c.jwt.issuer = "other".into());
    let v = user(&acc, "ivan@example.com").await;
    let (_, pair) = acc
        .tokens
        .login("ivan@example.com", PASSWORD)
        .await
        .unwrap();
    let _ = v;
    assert_invalid(&other.tokens, &pair.access_token, "foreign issuer");
}

async fn refresh_reuse_after_logout_fails(db: Db) {
    let acc = accounts(&db);
    user(&acc, "judy@example.com").await;
    let (_, pair) = acc
        .tokens
        .login("judy@example.com", PASSWORD)
        .await
        .unwrap();
    assert!(acc.tokens.logout(&pair.refresh_token).await.unwrap());
    let err = acc.tokens.refresh(&pair.refresh_token).await.unwrap_err();
    assert!(matches!(err, AccountsError::TokenReused), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    // Unknown and malformed refresh tokens.
    for bad in ["", "nope", &"x".repeat(1000)] {
        let err = acc.tokens.refresh(bad).await.unwrap_err();
        assert!(matches!(err, AccountsError::InvalidToken(_)), "{err:?}");
    }
}

async fn refresh_reuse_after_rotation_revokes_family(db: Db) {
    let acc = accounts(&db);
    user(&acc, "mallory@example.com").await;
    let (_, first) = acc
        .tokens
        .login("mallory@example.com", PASSWORD)
        .await
        .unwrap();
    let (_, other_login) = acc
        .tokens
        .login("mallory@example.com", PASSWORD)
        .await
        .unwrap();
    let second = acc.tokens.refresh(&first.refresh_token).await.unwrap();
    // The stolen first token is replayed: refused, and the family is revoked,
    assert!(matches!(
        acc.tokens.refresh(&first.refresh_token).await,
        Err(AccountsError::TokenReused)
    ));
    // so the legitimate successor is dead too,
    assert!(matches!(
        acc.tokens.refresh(&second.refresh_token).await,
        Err(AccountsError::TokenReused)
    ));
    // while another login (another family) keeps working.
    acc.tokens
        .refresh(&other_login.refresh_token)
        .await
        .unwrap();
}

async fn concurrent_refresh_rotates_once(db: Db) {
    let acc = accounts(&db);
    user(&acc, "niaj@example.com").await;
    let (_, pair) = acc
        .tokens
        .login("niaj@example.com", PASSWORD)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let tokens = acc.tokens.clone();
        let t = pair.refresh_token.clone();
        tasks.push(tokio::spawn(async move { tokens.refresh(&t).await }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(AccountsError::TokenReused) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(ok, 1);
}

async fn logout_all_and_password_change_revoke_everything(db: Db) {
    let acc = accounts(&db);
    let u = user(&acc, "olivia@example.com").await;
    let (_, a) = acc
        .tokens
        .login("olivia@example.com", PASSWORD)
        .await
        .unwrap();
    let (_, b) = acc
        .tokens
        .login("olivia@example.com", PASSWORD)
        .await
        .unwrap();
    assert_eq!(acc.tokens.logout_all(u.id).await.unwrap(), 2);
    for pair in [&a, &b] {
        assert!(matches!(
            acc.tokens.authenticate_access(&pair.access_token).await,
            Err(AccountsError::InvalidToken("token has been revoked"))
        ));
        assert!(acc.tokens.refresh(&pair.refresh_token).await.is_err());
    }
    // Logging in again works at once.
    let (_, c) = acc
        .tokens
        .login("olivia@example.com", PASSWORD)
        .await
        .unwrap();
    acc.tokens
        .authenticate_access(&c.access_token)
        .await
        .unwrap();

    let new_pw = "Another good one 9";
    assert!(matches!(
        acc.users
            .change_password(u.id, "wrong password 1", new_pw)
            .await,
        Err(AccountsError::InvalidCredentials)
    ));
    assert!(matches!(
        acc.users.change_password(u.id, PASSWORD, "short").await,
        Err(AccountsError::WeakPassword(_))
    ));
    acc.users
        .change_password(u.id, PASSWORD, new_pw)
        .await
        .unwrap();
    assert!(
        acc.tokens
            .authenticate_access(&c.access_token)
            .await
            .is_err()
    );
    assert!(acc.tokens.refresh(&c.refresh_token).await.is_err());
    assert!(
        acc.tokens
            .login("olivia@example.com", PASSWORD)
            .await
            .is_err()
    );
    acc.tokens
        .login("olivia@example.com", new_pw)
        .await
        .unwrap();
    assert_eq!(acc.tokens.purge_expired().await.unwrap(), 0);
}

/// The system clock moved forward by however much the test says.
#[derive(Default)]
struct MovedClock(std::sync::atomic::AtomicI64);

impl MovedClock {
    fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap();
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for MovedClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let ms = self.0.load(std::sync::atomic::Ordering::SeqCst);
        chrono::Utc::now() + chrono::Duration::milliseconds(ms)
    }
}

async fn short_lived_tokens_expire(db: Db) {
    let clock = std::sync::Arc::new(MovedClock::default());
    let acc = accounts_with(&db, |c| {
        c.jwt.access_ttl = std::time::Duration::from_secs(1);
        c.jwt.refresh_ttl = std::time::Duration::from_secs(1);
        c.jwt.leeway = std::time::Duration::ZERO;
        c.jwt.clock = clock.clone();
    });
    user(&acc, "peggy@example.com").await;
    let (_, pair) = acc
        .tokens
        .login("peggy@example.com", PASSWORD)
        .await
        .unwrap();
    assert_eq!(pair.expires_in, 1);
    acc.tokens.verify_access(&pair.access_token).unwrap();
    clock.advance(std::time::Duration::from_millis(2100));
    assert!(matches!(
        acc.tokens.verify_access(&pair.access_token),
        Err(AccountsError::InvalidToken("token has expired"))
    ));
    assert!(matches!(
        acc.tokens.refresh(&pair.refresh_token).await,
        Err(AccountsError::InvalidToken("refresh token has expired"))
    ));
    assert_eq!(acc.tokens.purge_expired().await.unwrap(), 1);
}

#[test]
fn short_secrets_are_refused() {
    let cfg = JwtConfig::new(b"too short".to_vec());
    assert!(matches!(cfg.validate(), Err(AccountsError::Config(_))));
    assert!(JwtConfig::new(SECRET.to_vec()).validate().is_ok());
    // The secret never shows in debug output.
    let shown = format!("{:?}", JwtConfig::new(SECRET.to_vec()));
    assert!(!shown.contains("test-secret"), "{shown}");
}

confab_testkit::backend_tests!(
    register_login_refresh_logout,
    wrong_password_and_unknown_email,
    duplicate_email_in_another_case,
    weak_passwords_rejected,
    profile_settings_roles_and_deletion,
    jwt_attacks_are_refused,
    refresh_reuse_after_logout_fails,
    refresh_reuse_after_rotation_revokes_family,
    concurrent_refresh_rotates_once,
    logout_all_and_password_change_revoke_everything,
    short_lived_tokens_expire,
);
