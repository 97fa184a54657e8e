//! [`StoreSecret`] and [`CodeDigest`]: a code's name in the store is an HMAC-SHA256 of the app, the
//! corp and the code under a secret the replicas share, and every value written is authenticated
//! with the same secret. Whoever can read the store learns no code, and whoever can write to it can
//! neither find a code's entry nor forge one.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::key::IdentityKey;

type HmacSha256 = Hmac<Sha256>;

/// The secret the replicas share, keyed once.
#[derive(Clone)]
pub(crate) struct StoreSecret(HmacSha256);

/// The length of a MAC in hex.
const MAC_HEX_LEN: usize = 64;

impl StoreSecret {
    /// The fewest bytes of secret accepted.
    pub(crate) const MIN_LEN: usize = 32;

    /// `None` when `secret` is shorter than [`MIN_LEN`](Self::MIN_LEN).
    pub(crate) fn new(secret: &[u8]) -> Option<Self> {
        if secret.len() < Self::MIN_LEN {
            return None;
        }
        HmacSha256::new_from_slice(secret).ok().map(Self)
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = self.0.clone();
        for part in parts {
            // Length-prefixed, so that no two different lists of parts hash alike.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    /// The name of `key` for the app `app_key`. The app is part of it so that two apps sharing
    /// one store and one prefix never read each other's identities.
    pub(crate) fn digest(&self, app_key: &str, key: &IdentityKey) -> CodeDigest {
        let corp = key.corp_id().unwrap_or_default();
        let mac = self.mac(&[
            b"tower-dingtalk-auth/code/v2",
            app_key.as_bytes(),
            if key.corp_id().is_some() {
                b"corp"
            } else {
                b"own"
            },
            corp.as_bytes(),
            key.code().as_bytes(),
        ]);
        CodeDigest(hex(&mac.finalize().into_bytes()))
    }

    /// A name in the store for `parts` (the first one says what is named): the hex HMAC, so that
    /// the name reveals none of them (an app key, a client's address).
    pub(crate) fn label(&self, parts: &[&[u8]]) -> String {
        hex(&self.mac(parts).finalize().into_bytes())
    }

    /// `value` with a MAC bound to `digest` in front: `<64 hex digits>.<value>`.
    pub(crate) fn seal(&self, digest: &CodeDigest, value: &[u8]) -> Vec<u8> {
        let mac = self.mac(&[b"tower-dingtalk-auth/value/v2", digest.0.as_bytes(), value]);
        let mut sealed = hex(&mac.finalize().into_bytes()).into_bytes();
        sealed.push(b'.');
        sealed.extend_from_slice(value);
        sealed
    }

    /// The value of `sealed`, if its MAC is right for `digest`.
    pub(crate) fn open<'a>(&self, digest: &CodeDigest, sealed: &'a [u8]) -> Option<&'a [u8]> {
        let (mac_hex, rest) = sealed.split_at_checked(MAC_HEX_LEN)?;
        let value = rest.strip_prefix(b".")?;
        let mac = unhex(mac_hex)?;
        self.mac(&[b"tower-dingtalk-auth/value/v2", digest.0.as_bytes(), value])
            .verify_slice(&mac)
            .ok()?;
        Some(value)
    }
}

impl fmt::Debug for StoreSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreSecret(<redacted>)")
    }
}

/// The name of a code in the store.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct CodeDigest(String);

impl CodeDigest {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CodeDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The digest is not the code, but a short prefix tells entries apart in logs well enough.
        write!(f, "CodeDigest({}..)", &self.0[..self.0.len().min(12)])
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        use fmt::Write;
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

fn unhex(hex: &[u8]) -> Option<Vec<u8>> {
    let digit = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    hex.chunks(2)
        .map(|pair| match pair {
            [high, low] => Some(digit(*high)? << 4 | digit(*low)?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::IdentityKeyRef;

    #[test]
    fn a_sealed_value_opens_only_under_its_digest_and_secret() {
        let secret = StoreSecret::new(&[7; 32]).unwrap();
        let other = StoreSecret::new(&[8; 32]).unwrap();
        let key = IdentityKeyRef::checked(None, "code-1").unwrap().to_owned();
        let key2 = IdentityKeyRef::checked(None, "code-2").unwrap().to_owned();
        let (d1, d2) = (secret.digest("app", &key), secret.digest("app", &key2));
        assert_ne!(d1, d2);
        assert_ne!(d1, other.digest("app", &key));
        assert_ne!(d1, secret.digest("another-app", &key));
        let sealed = secret.seal(&d1, b"{\"x\":1}");
        assert_eq!(secret.open(&d1, &sealed), Some(&b"{\"x\":1}"[..]));
        assert_eq!(secret.open(&d2, &sealed), None);
        assert_eq!(other.open(&d1, &sealed), None);
        let mut forged = sealed.clone();
        *forged.last_mut().unwrap() = b'2';
        assert_eq!(secret.open(&d1, &forged), None);
        assert_eq!(secret.open(&d1, b"\"rejected\""), None);
        assert_eq!(secret.open(&d1, b""), None);
        assert!(StoreSecret::new(&[0; 31]).is_none());
    }
}
