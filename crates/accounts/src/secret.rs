//! A persisted random JWT secret for the embedded development mode.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::config::MIN_SECRET_BYTES;
use crate::crypto::random_bytes;
use crate::error::AccountsError;

/// The secret stored in `path`, created first when the file does not
/// exist: 64 random bytes, base64url, written to a file only its owner can
/// read (mode 0600 on Unix). The file is created atomically (written aside,
/// then linked into place), so processes starting together agree on one
/// secret. An existing file must hold at least [`MIN_SECRET_BYTES`] bytes.
/// Blocking (file I/O): call it at startup or on a blocking thread.
pub fn load_or_create_secret(path: &Path) -> Result<String, AccountsError> {
    if let Some(secret) = read_secret(path)? {
        return Ok(secret);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| AccountsError::Io(format!("cannot create {}: {e}", dir.display())))?;
    }
    let secret = URL_SAFE_NO_PAD.encode(random_bytes(64)?);
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let write = || -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(secret.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    };
    let linked = write().and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated a new JWT secret");
            Ok(secret)
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_secret(path)?
            .ok_or_else(|| AccountsError::Io(format!("{} vanished", path.display()))),
        Err(e) => Err(AccountsError::Io(format!(
            "cannot write the JWT secret to {}: {e}",
            path.display()
        ))),
    }
}

/// The secret in `path`, `None` when the file does not exist.
fn read_secret(path: &Path) -> Result<Option<String>, AccountsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(AccountsError::Io(format!(
                "cannot read the JWT secret {}: {e}",
                path.display()
            )));
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the JWT secret file is readable by other users");
        }
    }
    let secret = text.trim().to_owned();
    if secret.len() < MIN_SECRET_BYTES {
        return Err(AccountsError::Config(format!(
            "the JWT secret in {} is {} bytes; at least {MIN_SECRET_BYTES} are required",
            path.display(),
            secret.len()
        )));
    }
    Ok(Some(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_then_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/jwt.secret");
        let a = load_or_create_secret(&path).unwrap();
        assert!(a.len() >= 80, "{a}");
        let b = load_or_create_secret(&path).unwrap();
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Nothing left aside.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        std::fs::write(&path, "short\n").unwrap();
        assert!(matches!(
            load_or_create_secret(&path),
            Err(AccountsError::Config(_))
        ));
    }

    #[test]
    fn concurrent_creators_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwt.secret");
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || load_or_create_secret(&p).unwrap())
            })
            .collect();
        let secrets: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(secrets.windows(2).all(|w| w[0] == w[1]));
    }
}
