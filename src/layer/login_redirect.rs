//! Where a page without a login goes, and where it comes back to: [`LoginRedirect`] sends it to
//! the login page with the URL it wanted in a return parameter (`next` unless configured), and
//! [`return_target`] reads that parameter when the login page comes back with a code, keeping
//! only a path on this host.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use http::{HeaderValue, Uri};

use super::login::CleanUrl;
use crate::config_error::ConfigError;

/// The return parameter unless one is configured.
pub(crate) const DEFAULT_RETURN_PARAM: &str = "next";

/// DingTalk's corp id in a page's URL (`?corpId=$CORPID$`): the login page's JSAPI needs it.
const CORP_ID_PARAM: &str = "corpId";

pub(crate) type LoginUrlFn = dyn Fn(&Parts) -> String + Send + Sync;

/// Where page requests with neither code nor session go.
#[derive(Clone)]
pub(crate) enum LoginRedirect {
    /// A login page's URL; the page asked for goes along in `return_param`, unless the URL names
    /// that parameter itself.
    To {
        url: String,
        return_param: Option<Box<str>>,
        /// Whether the page's `corpId` goes along (not when the URL names its own).
        pass_corp_id: bool,
    },
    /// The app's own function from the request to the login page's URL.
    With(Arc<LoginUrlFn>),
}

impl fmt::Debug for LoginRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::To {
                url,
                return_param,
                pass_corp_id,
            } => f
                .debug_struct("To")
                .field("url", url)
                .field("return_param", return_param)
                .field("pass_corp_id", pass_corp_id)
                .finish(),
            Self::With(_) => f.write_str("With(..)"),
        }
    }
}

impl LoginRedirect {
    /// The login page's `Location` for this request, with the URL it asked for (without the
    /// code's own query parameters, `code_params`) and its `corpId`; for a request `coming_back`
    /// from the login page (a code refused as a login), where it was going. `None` when the
    /// function's answer cannot be a header.
    pub(crate) fn location<'a>(
        &self,
        parts: &Parts,
        code_params: impl Iterator<Item = &'a str> + Clone,
        coming_back: bool,
    ) -> Option<HeaderValue> {
        let (url, return_param, pass_corp_id) = match self {
            Self::With(login_url) => return HeaderValue::try_from(login_url(parts)).ok(),
            Self::To {
                url,
                return_param: None,
                ..
            } => return HeaderValue::try_from(url.as_str()).ok(),
            Self::To {
                url,
                return_param: Some(param),
                pass_corp_id,
            } => (url, param, *pass_corp_id),
        };
        // A request already on its way back from the login page goes where it was going, not
        // to itself with a `next` inside a `next`.
        let wanted = return_target(&parts.uri, return_param, code_params.clone())
            .filter(|_| coming_back)
            .or_else(|| CleanUrl::without(&parts.uri, code_params))?;
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(corp_id) = query_value(&parts.uri, CORP_ID_PARAM).filter(|_| pass_corp_id) {
            query.append_pair(CORP_ID_PARAM, &corp_id);
        }
        query.append_pair(return_param, wanted.to_str().ok()?);
        let separator = if url.contains('?') { '&' } else { '?' };
        HeaderValue::try_from(format!("{url}{separator}{}", query.finish())).ok()
    }
}

/// The builder's login page settings, checked.
pub(crate) struct LoginPageOptions {
    pub(crate) url: Option<String>,
    pub(crate) with: Option<Arc<LoginUrlFn>>,
    pub(crate) return_param: Option<String>,
}

impl LoginPageOptions {
    /// Where pages without a login go (if anywhere), and the return parameter's name.
    /// `taken`: the query parameters that hold codes and corp ids, which the return parameter
    /// may not be.
    pub(crate) fn build<'a>(
        self,
        optional: bool,
        mut taken: impl Iterator<Item = &'a str>,
    ) -> Result<(Option<LoginRedirect>, Box<str>), ConfigError> {
        let param = self
            .return_param
            .unwrap_or_else(|| DEFAULT_RETURN_PARAM.to_owned());
        let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
        if param.is_empty() || !param.bytes().all(unreserved) {
            return Err(ConfigError::InvalidRedirectUrl);
        }
        if param == CORP_ID_PARAM || taken.any(|name| name == param) {
            return Err(ConfigError::ConflictingOptions {
                first: "redirect_return_param",
                second: "code_sources",
            });
        }
        let redirect = match (self.url, self.with) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::ConflictingOptions {
                    first: "redirect_when_missing",
                    second: "redirect_when_missing_with",
                });
            }
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) if optional => {
                return Err(ConfigError::ConflictingOptions {
                    first: "optional",
                    second: "redirect_when_missing",
                });
            }
            (Some(url), None) => {
                if url.is_empty() || !url.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(ConfigError::InvalidRedirectUrl);
                }
                let return_param = (!names_param(&url, &param)).then(|| param.clone().into());
                let pass_corp_id = !names_param(&url, CORP_ID_PARAM);
                Some(LoginRedirect::To {
                    url,
                    return_param,
                    pass_corp_id,
                })
            }
            (None, Some(with)) => Some(LoginRedirect::With(with)),
        };
        Ok((redirect, param.into()))
    }
}

/// Whether `url`'s query names `param` already: then it is left as configured.
pub(crate) fn names_param(url: &str, param: &str) -> bool {
    url.split_once('?').is_some_and(|(_, query)| {
        form_urlencoded::parse(query.as_bytes()).any(|(key, _)| key == param)
    })
}

/// The first value of `name` in `uri`'s query, decoded.
fn query_value(uri: &Uri, name: &str) -> Option<String> {
    form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Where a page navigation that logged in by a code in its query goes next, when its query holds
/// the return parameter: that path on this host, without the code's parameters; anything that is
/// not a path on this host (another host, a scheme, `//`, `/\`, controls) goes to `/`.
pub(crate) fn return_target<'a>(
    uri: &Uri,
    param: &str,
    code_params: impl Iterator<Item = &'a str> + Clone,
) -> Option<HeaderValue> {
    let target = query_value(uri, param)?;
    Some(path_on_this_host(&target, code_params))
}

/// `target` as a `Location` if it is a path on this host (without the code's parameters);
/// anything else (another host, a scheme, `//`, `/\`, controls) is `/`.
pub(crate) fn path_on_this_host<'a>(
    target: &str,
    code_params: impl Iterator<Item = &'a str> + Clone,
) -> HeaderValue {
    let root = || HeaderValue::from_static("/");
    let bytes = target.as_bytes();
    let on_this_host = bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && bytes.iter().all(|b| b.is_ascii_graphic());
    if !on_this_host {
        return root();
    }
    let Ok(target) = target.parse::<Uri>() else {
        return root();
    };
    if target.scheme().is_some() || target.authority().is_some() {
        return root();
    }
    CleanUrl::without(&target, code_params).unwrap_or_else(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str) -> Parts {
        http::Request::get(uri).body(()).unwrap().into_parts().0
    }

    fn location(redirect: &LoginRedirect, uri: &str) -> String {
        let names = ["code"];
        let coming_back = uri.contains("code=");
        redirect
            .location(&parts(uri), names.iter().copied(), coming_back)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn the_login_url_carries_the_page_asked_for() {
        let to = |url: &str| LoginRedirect::To {
            url: url.to_owned(),
            return_param: (!names_param(url, "next")).then(|| "next".into()),
            pass_corp_id: !names_param(url, CORP_ID_PARAM),
        };
        assert_eq!(
            location(&to("/login"), "/admin/users?tab=2"),
            "/login?next=%2Fadmin%2Fusers%3Ftab%3D2"
        );
        assert_eq!(
            location(&to("/login?lang=zh"), "/a?code=stale&corpId=ding1&b=%20"),
            "/login?lang=zh&corpId=ding1&next=%2Fa%3FcorpId%3Dding1%26b%3D%2520"
        );
        assert_eq!(location(&to("/login?next=%2F"), "/a"), "/login?next=%2F");
        // On its way back already (a refused code): where it was going, not a `next` in a `next`.
        assert_eq!(
            location(&to("/login"), "/?code=stale&next=%2Freports%3Ftab%3D2"),
            "/login?next=%2Freports%3Ftab%3D2"
        );
        assert_eq!(
            location(&to("/login?corpId=ding0"), "/a?corpId=evil"),
            "/login?corpId=ding0&next=%2Fa%3FcorpId%3Devil"
        );
        let custom = LoginRedirect::With(Arc::new(|parts: &Parts| {
            format!("https://sso.example.com/?back={}", parts.uri.path())
        }));
        assert_eq!(location(&custom, "/x"), "https://sso.example.com/?back=/x");
    }

    #[test]
    fn only_a_path_on_this_host_is_followed() {
        let target = |uri: &str| {
            let names = ["code"];
            return_target(&uri.parse().unwrap(), "next", names.iter().copied())
                .map(|value| value.to_str().unwrap().to_owned())
        };
        assert_eq!(target("/?code=1"), None);
        assert_eq!(
            target("/?code=1&next=%2Fadmin%2Fusers%3Ftab%3D2").unwrap(),
            "/admin/users?tab=2"
        );
        assert_eq!(target("/?next=%2Fa%3Fcode%3Dx%26y%3D1").unwrap(), "/a?y=1");
        for evil in [
            "https%3A%2F%2Fevil.example%2F",
            "%2F%2Fevil.example",
            "%2F%5Cevil.example",
            "evil",
            "%2Fa%20b",
            "%2Fa%0d%0aSet-Cookie:x",
            "",
        ] {
            assert_eq!(target(&format!("/?next={evil}")).unwrap(), "/", "{evil}");
        }
    }
}
