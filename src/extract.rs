//! Where the auth code (and, for third-party apps, the corp id) comes from: [`CodeSource`], and the
//! checks every value passes before it may cost a call to DingTalk.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::HeaderName;
use http::request::Parts;

use crate::error::AuthError;
use crate::key::{validate_code, validate_corp_id};

type CustomFn = dyn Fn(&Parts) -> Option<String> + Send + Sync;

/// One place a request may carry the auth code (or the corp id, see
/// [`corp_id_sources`](crate::DingTalkAuthLayerBuilder::corp_id_sources)).
///
/// The layer looks in its sources in the order given and takes the first that holds a code
/// (by default: header `X-DingTalk-Code`, then query parameter `code`). A source that holds the
/// code more than once with different values makes the request ambiguous, which is rejected as
/// `invalid_code`.
///
/// ```
/// use tower_dingtalk_auth::{CodeSource, DingTalkAuthLayer};
///
/// let layer = DingTalkAuthLayer::builder()
///     .internal_app("APP_KEY", "APP_SECRET")
///     .code_sources([
///         CodeSource::cookie("dt_code"),
///         CodeSource::header("x-dingtalk-code"),
///         CodeSource::custom(|parts| {
///             parts.headers.get("x-legacy-code")?.to_str().ok().map(str::to_owned)
///         }),
///     ])
///     .build()
///     .unwrap();
/// # drop(layer);
/// ```
#[derive(Clone)]
pub struct CodeSource(Source);

#[derive(Clone)]
enum Source {
    Header(HeaderName),
    Query(Box<str>),
    Cookie(Box<str>),
    Custom(Arc<CustomFn>),
}

impl CodeSource {
    /// The code in a request header. Panics at startup if `name` is not a valid header name, like
    /// [`HeaderName::from_static`].
    pub fn header(name: &'static str) -> Self {
        Self(Source::Header(HeaderName::from_static(name)))
    }

    /// The code in a request header given as a [`HeaderName`].
    pub fn header_name(name: HeaderName) -> Self {
        Self(Source::Header(name))
    }

    /// The code in a query parameter (percent-decoded).
    pub fn query(name: impl Into<Box<str>>) -> Self {
        Self(Source::Query(name.into()))
    }

    /// The code in a cookie.
    pub fn cookie(name: impl Into<Box<str>>) -> Self {
        Self(Source::Cookie(name.into()))
    }

    /// The code wherever a function finds it. `None` means "not here".
    pub fn custom<F>(find: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        Self(Source::Custom(Arc::new(find)))
    }

    /// The default order: header `X-DingTalk-Code`, then query parameter `code`.
    pub fn defaults() -> Vec<Self> {
        vec![Self::header("x-dingtalk-code"), Self::query("code")]
    }

    /// The default order for corp ids: header `X-DingTalk-Corp-Id`, then query parameter `corpId`.
    pub fn corp_id_defaults() -> Vec<Self> {
        vec![Self::header("x-dingtalk-corp-id"), Self::query("corpId")]
    }

    /// What this source holds: `Ok(None)` when it holds nothing.
    fn find<'a>(&self, parts: &'a Parts) -> Result<Option<Cow<'a, str>>, Ambiguous> {
        match &self.0 {
            Source::Header(name) => {
                let mut values = parts.headers.get_all(name).iter();
                let Some(first) = values.next() else {
                    return Ok(None);
                };
                if values.any(|other| other != first) {
                    return Err(Ambiguous);
                }
                // UTF-8, checked a word at a time where ASCII (`HeaderValue::to_str` checks byte by
                // byte, and the value's own check reads each byte again); other bytes become
                // replacement characters, which no check accepts.
                let value = first.as_bytes();
                Ok(Some(match std::str::from_utf8(value) {
                    Ok(value) => Cow::Borrowed(value),
                    Err(_) => String::from_utf8_lossy(value),
                }))
            }
            Source::Query(name) => {
                let Some(query) = parts.uri.query() else {
                    return Ok(None);
                };
                single(
                    form_urlencoded::parse(query.as_bytes())
                        .filter(|(key, _)| key == name.as_ref())
                        .map(|(_, value)| value),
                )
            }
            Source::Cookie(name) => single(cookie_values(&parts.headers, name).map(Cow::Borrowed)),
            Source::Custom(find) => Ok(find(parts).map(Cow::Owned)),
        }
    }
}

/// The values of the cookies named `name` in every `Cookie` header, read from the raw bytes: only
/// the pairs with that name are looked at, so another cookie holding bytes that are not ASCII (a
/// `nick=张三` set by the app's own script) never hides ours. A value that is not UTF-8 is
/// skipped.
pub(crate) fn cookie_values<'h, 'n>(
    headers: &'h http::HeaderMap,
    name: &'n str,
) -> impl Iterator<Item = &'h str> + use<'h, 'n> {
    cookie_pairs(headers, name).filter_map(|value| std::str::from_utf8(value).ok())
}

/// The values of the cookies named `name` as bytes, whatever they hold, for the hot path: a
/// session opened lately is found by comparing them with sessions that opened (text, since only
/// text is opened), and only a value not found is checked as text and opened. Checking a few
/// hundred bytes first would cost every request what only a miss needs; the sessions found are
/// the same as from [`cookie_values`].
pub(crate) fn cookie_value_bytes<'h, 'n>(
    headers: &'h http::HeaderMap,
    name: &'n str,
) -> impl Iterator<Item = &'h [u8]> + use<'h, 'n> {
    cookie_pairs(headers, name)
}

/// The raw values of the cookies named `name`.
fn cookie_pairs<'h, 'n>(
    headers: &'h http::HeaderMap,
    name: &'n str,
) -> impl Iterator<Item = &'h [u8]> + use<'h, 'n> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|header| pairs(header.as_bytes()))
        .filter_map(move |pair| {
            let pair = pair.trim_ascii();
            let value = pair.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
            // A quoted value (RFC 6265 allows it) is read without its quotes.
            Some(
                value
                    .strip_prefix(b"\"")
                    .and_then(|inner| inner.strip_suffix(b"\""))
                    .unwrap_or(value),
            )
        })
}

/// The `;`-separated pairs of a `Cookie` header, found with `memchr` (vectorised: a session is a
/// few hundred bytes), whatever bytes the header holds.
fn pairs(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(header);
    std::iter::from_fn(move || {
        let pairs = rest?;
        Some(match memchr::memchr(b';', pairs) {
            Some(end) => {
                rest = Some(&pairs[end + 1..]);
                &pairs[..end]
            }
            None => {
                rest = None;
                pairs
            }
        })
    })
}

/// The one value of a source that may repeat; differing repeats are ambiguous.
fn single<'a>(
    mut values: impl Iterator<Item = Cow<'a, str>>,
) -> Result<Option<Cow<'a, str>>, Ambiguous> {
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.any(|other| other != first) {
        return Err(Ambiguous);
    }
    Ok(Some(first))
}

impl fmt::Debug for CodeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::Header(name) => f.debug_tuple("Header").field(name).finish(),
            Source::Query(name) => f.debug_tuple("Query").field(name).finish(),
            Source::Cookie(name) => f.debug_tuple("Cookie").field(name).finish(),
            Source::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// A source held the value more than once, with different values.
struct Ambiguous;

/// What an extractor reads: it decides the checks and the errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    Code,
    CorpId,
}

/// A value found in a request, and whether it came from the query string (where it also sits in
/// the address bar, the history and the `Referer` of the page's requests).
pub(crate) struct Found<'a> {
    pub(crate) value: Cow<'a, str>,
    pub(crate) from_query: bool,
}

/// The configured sources of one value, in order.
#[derive(Clone, Debug)]
pub(crate) struct CodeExtractor {
    sources: Arc<[CodeSource]>,
    value: Value,
}

impl CodeExtractor {
    pub(crate) fn new(sources: Vec<CodeSource>) -> Self {
        Self {
            sources: sources.into(),
            value: Value::Code,
        }
    }

    pub(crate) fn corp_ids(sources: Vec<CodeSource>) -> Self {
        Self {
            sources: sources.into(),
            value: Value::CorpId,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The value of the request: `Ok(None)` when no source holds one, an error when the first
    /// source that holds something holds something that cannot be such a value.
    pub(crate) fn extract<'a>(&self, parts: &'a Parts) -> Result<Option<Found<'a>>, AuthError> {
        for source in self.sources.iter() {
            let found = source.find(parts).map_err(|Ambiguous| match self.value {
                Value::Code => AuthError::ambiguous_code(),
                Value::CorpId => AuthError::ambiguous_corp_id(),
            })?;
            if let Some(value) = found {
                match self.value {
                    Value::Code => validate_code(&value)?,
                    Value::CorpId => validate_corp_id(&value)?,
                }
                let from_query = matches!(source.0, Source::Query(_));
                return Ok(Some(Found { value, from_query }));
            }
        }
        Ok(None)
    }

    /// Whether any source holds something other than `value` (ambiguous or not): a value that
    /// came from elsewhere (a login body) must agree with every source, not only the first.
    pub(crate) fn any_other_than(&self, parts: &Parts, value: &str) -> bool {
        self.sources.iter().any(|source| match &source.0 {
            Source::Query(name) => parts.uri.query().is_some_and(|query| {
                form_urlencoded::parse(query.as_bytes())
                    .any(|(key, found)| key == name.as_ref() && found != value)
            }),
            Source::Header(name) => parts
                .headers
                .get_all(name)
                .iter()
                .any(|found| found.as_bytes() != value.as_bytes()),
            Source::Cookie(name) => cookie_values(&parts.headers, name).any(|found| found != value),
            Source::Custom(find) => find(parts).is_some_and(|found| found != value),
        })
    }

    /// The name of the query parameter that holds the value, if one of the sources is a query.
    pub(crate) fn query_names(&self) -> impl Iterator<Item = &str> + Clone {
        self.sources.iter().filter_map(|source| match &source.0 {
            Source::Query(name) => Some(name.as_ref()),
            _ => None,
        })
    }
}
