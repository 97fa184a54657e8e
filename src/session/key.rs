//! [`SessionKey`]: the secret that seals and opens sessions.

use std::fmt;

use cookie::Key;

use crate::config_error::ConfigError;

/// A secret key that seals and opens session cookies.
///
/// Made from at least [`SessionKey::MIN_LEN`] bytes of secret: the encryption key is derived from
/// them with HKDF-SHA256. Every replica that should read the same sessions needs the same bytes;
/// keep them with your other secrets. [`SessionKey::generate`] makes a random key for a single
/// process (tests, demos): its sessions end when the process does.
///
/// `Debug` never shows the key.
///
/// ```
/// use tower_dingtalk_auth::{ConfigError, SessionKey};
///
/// let key = SessionKey::from_bytes(b"a long random secret from the vault, 32+ bytes").unwrap();
/// # drop(key);
/// assert!(matches!(
///     SessionKey::from_bytes(b"too short"),
///     Err(ConfigError::SessionKeyTooShort { len: 9 })
/// ));
/// ```
#[derive(Clone)]
pub struct SessionKey(pub(super) Key);

impl SessionKey {
    /// The fewest bytes of secret a key is made from.
    pub const MIN_LEN: usize = 32;

    /// A key derived from `secret`, which must hold at least [`MIN_LEN`](Self::MIN_LEN) bytes of
    /// secret randomness (a long random string works; its bytes are used as they are).
    pub fn from_bytes(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let secret = secret.as_ref();
        if secret.len() < Self::MIN_LEN {
            return Err(ConfigError::SessionKeyTooShort { len: secret.len() });
        }
        Ok(Self(Key::derive_from(secret)))
    }

    /// A random key from the operating system's generator, for one process only.
    ///
    /// # Panics
    /// If the operating system has no randomness to give.
    pub fn generate() -> Self {
        Self(Key::try_generate().expect("the operating system's random generator failed"))
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(..)")
    }
}
