//! What names one exchange: the auth code, and for third-party apps the corp it was issued in.
//! Both are checked here before they may cost a call to DingTalk; [`IdentityKey`] is what the
//! identity cache, the shared store and the client know a code by.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use moka::Equivalent;

use crate::error::AuthError;

/// The longest code accepted. DingTalk's codes are 32 to 64 characters; anything longer is garbage.
pub const MAX_CODE_LEN: usize = 256;
/// The longest corp id accepted. DingTalk's are `ding` and 32 hex digits or so.
pub const MAX_CORP_ID_LEN: usize = 64;

/// A code is 1 to [`MAX_CODE_LEN`] bytes of visible ASCII; anything else never reaches DingTalk.
pub(crate) fn validate_code(code: &str) -> Result<(), AuthError> {
    // Every byte is read, with no early exit: the compiler checks them many at a time.
    let well_formed = !code.is_empty()
        && code.len() <= MAX_CODE_LEN
        && code
            .bytes()
            .fold(true, |graphic, byte| graphic & byte.is_ascii_graphic());
    if well_formed {
        Ok(())
    } else {
        Err(AuthError::invalid_code())
    }
}

/// A corp id is 1 to [`MAX_CORP_ID_LEN`] ASCII letters, digits, `-` or `_`: it goes into a URL path.
pub(crate) fn validate_corp_id(corp_id: &str) -> Result<(), AuthError> {
    let well_formed = !corp_id.is_empty()
        && corp_id.len() <= MAX_CORP_ID_LEN
        && corp_id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if well_formed {
        Ok(())
    } else {
        Err(AuthError::invalid_corp_id())
    }
}

/// What an identity is cached under: the organisation the code was issued in (third-party apps)
/// and the code, both checked. Its `Debug` never shows the code.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct IdentityKey {
    corp_id: Option<Arc<str>>,
    code: Box<str>,
}

// Hashed as its borrowed form, so that a lookup needs no owned key.
impl Hash for IdentityKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state);
    }
}

/// An [`IdentityKey`] borrowed from the request: what a cache hit is looked up with.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct IdentityKeyRef<'a> {
    corp_id: Option<&'a str>,
    code: &'a str,
}

impl<'a> IdentityKeyRef<'a> {
    /// The key of `code` (in `corp_id`), if both are well-formed.
    pub(crate) fn checked(corp_id: Option<&'a str>, code: &'a str) -> Result<Self, AuthError> {
        validate_code(code)?;
        if let Some(corp_id) = corp_id {
            validate_corp_id(corp_id)?;
        }
        Ok(Self { corp_id, code })
    }

    /// The key of values [`crate::extract`] has checked already.
    pub(crate) fn prechecked(corp_id: Option<&'a str>, code: &'a str) -> Self {
        debug_assert!(Self::checked(corp_id, code).is_ok());
        Self { corp_id, code }
    }

    pub(crate) fn corp_id(self) -> Option<&'a str> {
        self.corp_id
    }

    pub(crate) fn to_owned(self) -> IdentityKey {
        IdentityKey {
            corp_id: self.corp_id.map(Arc::from),
            code: self.code.into(),
        }
    }
}

impl Equivalent<IdentityKey> for IdentityKeyRef<'_> {
    fn equivalent(&self, key: &IdentityKey) -> bool {
        *self == key.as_ref()
    }
}

impl IdentityKey {
    pub(crate) fn corp_id(&self) -> Option<&str> {
        self.corp_id.as_deref()
    }

    pub(crate) fn code(&self) -> &str {
        &self.code
    }

    pub(crate) fn as_ref(&self) -> IdentityKeyRef<'_> {
        IdentityKeyRef {
            corp_id: self.corp_id.as_deref(),
            code: &self.code,
        }
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKey")
            .field("corp_id", &self.corp_id)
            .field("code", &"<redacted>")
            .finish()
    }
}
