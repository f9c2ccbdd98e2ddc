//! The client secret's home: the operating system's keyring (Secret Service
//! on Linux, Keychain on macOS, Credential Manager on Windows), under
//! service `tenx` and account = profile name. `TENX_CLIENT_SECRET` overrides
//! it for scripts and CI. There is no file fallback, by design.

use crate::auth::secret::Secret;

pub const SERVICE: &str = "tenx";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error(
        "no keyring is available ({0}). Start one — on Linux a Secret Service such as gnome-keyring (`gnome-keyring-daemon --unlock --components=secrets` inside a D-Bus session) or KeePassXC — or set TENX_CLIENT_SECRET for scripts. tenx never writes the secret to a file."
    )]
    Unavailable(String),
}

/// Where secrets are kept. One implementation talks to the OS; tests of
/// code above it may bring their own.
pub trait SecretStore {
    fn get(&self, profile: &str) -> Result<Option<Secret>, KeyringError>;
    fn set(&self, profile: &str, secret: &Secret) -> Result<(), KeyringError>;
    /// Removes the entry; false when there was none.
    fn delete(&self, profile: &str) -> Result<bool, KeyringError>;
}

/// The operating system's keyring.
pub struct OsKeyring;

fn entry(profile: &str) -> Result<keyring::Entry, KeyringError> {
    keyring::Entry::new(SERVICE, profile).map_err(|e| KeyringError::Unavailable(describe(&e)))
}

/// keyring's errors in words; never includes a secret (none is passed in).
fn describe(e: &keyring::Error) -> String {
    match e {
        keyring::Error::PlatformFailure(inner) => format!("platform failure: {inner}"),
        keyring::Error::NoStorageAccess(inner) => {
            format!("the keyring is locked or cannot be reached: {inner}")
        }
        other => other.to_string(),
    }
}

impl SecretStore for OsKeyring {
    fn get(&self, profile: &str) -> Result<Option<Secret>, KeyringError> {
        match entry(profile)?.get_password() {
            Ok(s) => Ok(Some(Secret::new(s))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(KeyringError::Unavailable(describe(&e))),
        }
    }

    fn set(&self, profile: &str, secret: &Secret) -> Result<(), KeyringError> {
        let e = entry(profile)?;
        e.set_password(secret.expose()).map_err(|err| match err {
            // NoEntry from a write means there is no store to write to.
            keyring::Error::NoEntry => {
                KeyringError::Unavailable("the keyring refused to store the entry".into())
            }
            other => KeyringError::Unavailable(describe(&other)),
        })?;
        // Read it back: a store that silently drops writes is no store.
        match e.get_password() {
            Ok(back) if back == secret.expose() => Ok(()),
            Ok(_) => Err(KeyringError::Unavailable(
                "the keyring returned a different value than was stored".into(),
            )),
            Err(err) => Err(KeyringError::Unavailable(format!(
                "the keyring did not keep the entry: {}",
                describe(&err)
            ))),
        }
    }

    fn delete(&self, profile: &str) -> Result<bool, KeyringError> {
        match entry(profile)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(KeyringError::Unavailable(describe(&e))),
        }
    }
}

/// Why no secret could be found for a profile, with the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MissingSecret {
    #[error(
        "no client secret is stored for profile '{0}': run `tenx login --profile {0}` again, or set TENX_CLIENT_SECRET"
    )]
    NotStored(String),
    #[error("{0}")]
    Keyring(#[from] KeyringError),
}

/// The secret for a profile: `TENX_CLIENT_SECRET` if set, else the keyring.
pub fn resolve(store: &dyn SecretStore, profile: &str) -> Result<Secret, MissingSecret> {
    if let Ok(s) = std::env::var("TENX_CLIENT_SECRET") {
        if !s.trim().is_empty() {
            return Ok(Secret::new(s.trim()));
        }
    }
    store
        .get(profile)?
        .ok_or_else(|| MissingSecret::NotStored(profile.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Memory(RefCell<HashMap<String, Secret>>);
    impl SecretStore for Memory {
        fn get(&self, p: &str) -> Result<Option<Secret>, KeyringError> {
            Ok(self.0.borrow().get(p).cloned())
        }
        fn set(&self, p: &str, s: &Secret) -> Result<(), KeyringError> {
            self.0.borrow_mut().insert(p.into(), s.clone());
            Ok(())
        }
        fn delete(&self, p: &str) -> Result<bool, KeyringError> {
            Ok(self.0.borrow_mut().remove(p).is_some())
        }
    }

    #[test]
    fn missing_secrets_name_the_fix_and_errors_never_hold_the_secret() {
        let m = Memory::default();
        if std::env::var("TENX_CLIENT_SECRET").is_err() {
            let e = resolve(&m, "prod").expect_err("missing");
            assert!(e.to_string().contains("tenx login --profile prod"));
            m.set("prod", &Secret::new("s3cr3t")).expect("set");
            assert_eq!(resolve(&m, "prod").expect("found").expose(), "s3cr3t");
        }
        let e = KeyringError::Unavailable("DBus error".into());
        let text = e.to_string();
        assert!(
            text.contains("TENX_CLIENT_SECRET")
                && text.contains("never writes the secret to a file")
        );
    }
}
