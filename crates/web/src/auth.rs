//! Who is calling: internal service authentication and the caller identity.
//!
//! Behind the gateway, every request carries `X-Internal-Auth` (the shared
//! internal key) and the gateway's verdict on the user in `X-User-Id` /
//! `X-User-Role`. Those headers are trusted only together with a valid key;
//! when a key is configured, a request without it is refused with 401.
//! Without a key the service runs standalone on loopback as a single local
//! user (`local`, role `admin`), unless the request names a user.

use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// Header with the shared internal key.
pub const INTERNAL_AUTH_HEADER: &str = "x-internal-auth";
/// Header with the user id, set by the gateway.
pub const USER_ID_HEADER: &str = "x-user-id";
/// Header with the user's role, set by the gateway.
pub const USER_ROLE_HEADER: &str = "x-user-role";
/// The administrator role.
pub const ADMIN_ROLE: &str = "admin";
/// The role of a user that names no role.
pub const USER_ROLE: &str = "user";
/// The user id of the standalone mode.
pub const LOCAL_USER: &str = "local";
/// Longest user id or role accepted from a header.
const MAX_IDENTITY_CHARS: usize = 128;

/// How requests are authenticated. Register it with `App::app_data` (a clone
/// per worker is cheap); [`Caller`] and [`InternalAuth`] read it.
#[derive(Clone, Default)]
pub struct AuthConfig {
    internal_key: Option<Arc<str>>,
    local_user: Option<Arc<str>>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "internal_key",
                &self.internal_key.as_ref().map(|_| "<redacted>"),
            )
            .field("local_user", &self.local_user())
            .finish()
    }
}

impl AuthConfig {
    /// Standalone mode: no internal key, requests act as the local user.
    pub fn standalone() -> Self {
        Self::default()
    }

    /// Behind a gateway: requests must carry `key` in `X-Internal-Auth`.
    /// An empty key means standalone.
    pub fn with_internal_key(key: impl Into<String>) -> Self {
        let key: String = key.into();
        Self {
            internal_key: (!key.is_empty()).then(|| Arc::from(key)),
            local_user: None,
        }
    }

    /// Another user id for standalone requests (default `local`).
    pub fn local_user(&self) -> &str {
        self.local_user.as_deref().unwrap_or(LOCAL_USER)
    }

    /// Sets the standalone user id.
    pub fn with_local_user(mut self, user: impl Into<String>) -> Self {
        self.local_user = Some(Arc::from(user.into()));
        self
    }

    /// Whether an internal key is configured.
    pub fn requires_internal_key(&self) -> bool {
        self.internal_key.is_some()
    }

    /// Whether `given` is the configured key (constant time in its content).
    /// Always false when no key is configured.
    pub fn key_matches(&self, given: &[u8]) -> bool {
        match &self.internal_key {
            Some(key) => constant_time_eq(key.as_bytes(), given),
            None => false,
        }
    }

    /// Checks the internal key of a request: `Ok(true)` when it carries the
    /// right key, `Ok(false)` in standalone mode, 401 otherwise.
    pub fn check(&self, req: &HttpRequest) -> Result<bool, ApiError> {
        if self.internal_key.is_none() {
            return Ok(false);
        }
        match req.headers().get(INTERNAL_AUTH_HEADER) {
            Some(v) if self.key_matches(v.as_bytes()) => Ok(true),
            Some(_) => Err(ApiError::unauthorized("invalid X-Internal-Auth")),
            None => Err(ApiError::unauthorized("X-Internal-Auth is required")),
        }
    }
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

fn config(req: &HttpRequest) -> Result<&AuthConfig, ApiError> {
    req.app_data::<AuthConfig>()
        .ok_or_else(|| ApiError::internal("AuthConfig is not registered as app data"))
}

/// A header value as an identity (user id or role): printable, at most 128 characters.
fn identity_header(req: &HttpRequest, name: &str) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(name) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request(format!("{name} must be printable ASCII")))?
        .trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().count() > MAX_IDENTITY_CHARS || text.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{name} must be at most {MAX_IDENTITY_CHARS} printable characters"
        )));
    }
    Ok(Some(text.to_owned()))
}

/// The user a request acts for. Extract it in every user-scoped handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user id every service call is scoped to.
    pub user_id: String,
    /// `admin`, `user`, or whatever role the gateway sent.
    pub role: String,
}

impl Caller {
    /// Whether the caller is an administrator.
    pub fn is_admin(&self) -> bool {
        self.role == ADMIN_ROLE
    }

    /// 403 unless the caller is an administrator.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("this operation is for administrators"))
        }
    }

    /// Resolves the caller of a request under `auth`.
    pub fn from_request_parts(req: &HttpRequest, auth: &AuthConfig) -> Result<Self, ApiError> {
        let trusted = auth.check(req)?;
        let user = identity_header(req, USER_ID_HEADER)?;
        let role = identity_header(req, USER_ROLE_HEADER)?;
        match (trusted, user) {
            (true, Some(user_id)) => Ok(Caller {
                user_id,
                role: role.unwrap_or_else(|| USER_ROLE.to_owned()),
            }),
            (true, None) => Err(ApiError::unauthorized(
                "X-User-Id is required with X-Internal-Auth",
            )),
            // Standalone: a named user is an ordinary user unless it says otherwise.
            (false, Some(user_id)) => Ok(Caller {
                user_id,
                role: role.unwrap_or_else(|| USER_ROLE.to_owned()),
            }),
            (false, None) => Ok(Caller {
                user_id: auth.local_user().to_owned(),
                role: role.unwrap_or_else(|| ADMIN_ROLE.to_owned()),
            }),
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(config(req).and_then(|auth| Caller::from_request_parts(req, auth)))
    }
}

/// Proof that a request carries the internal key (or that none is
/// configured): for service-to-service routes that act for no user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InternalAuth {
    /// Whether a key was checked (false in standalone mode).
    pub verified: bool,
}

impl FromRequest for InternalAuth {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            config(req)
                .and_then(|auth| auth.check(req))
                .map(|verified| InternalAuth { verified }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn caller(auth: &AuthConfig, headers: &[(&str, &str)]) -> Result<Caller, ApiError> {
        let mut req = TestRequest::default();
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        Caller::from_request_parts(&req.to_http_request(), auth)
    }

    #[test]
    fn standalone_is_the_local_admin_unless_named() {
        let auth = AuthConfig::standalone();
        let c = caller(&auth, &[]).unwrap();
        assert_eq!(c.user_id, "local");
        assert!(c.is_admin());
        let c = caller(&auth, &[("X-User-Id", "alice")]).unwrap();
        assert_eq!(c.user_id, "alice");
        assert_eq!(c.role, "user");
        assert!(c.require_admin().is_err());
        // A stray key header is ignored in standalone mode.
        assert!(caller(&auth, &[("X-Internal-Auth", "whatever")]).is_ok());
    }

    #[test]
    fn with_a_key_headers_count_only_with_it() {
        let auth = AuthConfig::with_internal_key("s3cret");
        assert!(auth.requires_internal_key());
        let err = caller(&auth, &[("X-User-Id", "alice")]).unwrap_err();
        assert_eq!(err.status.as_u16(), 401);
        let err = caller(&auth, &[("X-Internal-Auth", "wrong"), ("X-User-Id", "a")]).unwrap_err();
        assert_eq!(err.status.as_u16(), 401);
        let err = caller(&auth, &[("X-Internal-Auth", "s3cret")]).unwrap_err();
        assert_eq!(err.status.as_u16(), 401);
        let c = caller(
            &auth,
            &[
                ("X-Internal-Auth", "s3cret"),
                ("X-User-Id", "alice"),
                ("X-User-Role", "admin"),
            ],
        )
        .unwrap();
        assert_eq!(
            c,
            Caller {
                user_id: "alice".into(),
                role: "admin".into()
            }
        );
        let long = "u".repeat(129);
        let err = caller(
            &auth,
            &[("X-Internal-Auth", "s3cret"), ("X-User-Id", &long)],
        );
        assert_eq!(err.unwrap_err().status.as_u16(), 400);
    }

    #[test]
    fn empty_key_is_standalone_and_debug_hides_the_key() {
        assert!(!AuthConfig::with_internal_key("").requires_internal_key());
        let dbg = format!("{:?}", AuthConfig::with_internal_key("s3cret"));
        assert!(!dbg.contains("s3cret"), "{dbg}");
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
