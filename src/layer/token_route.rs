//! Where the token login endpoint answers: [`TokenLogin`]'s two paths, and which one a request is
//! for. The answers themselves are in `token_login.rs`.

use http::Method;
use http::request::Parts;

/// Where the endpoint answers.
#[derive(Debug)]
pub(crate) struct TokenLogin {
    login: Box<str>,
    refresh: Box<str>,
}

/// Which of the endpoint's two routes a request is for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TokenRoute {
    Login,
    Refresh,
}

impl TokenLogin {
    pub(crate) fn new(path: &str) -> Option<Self> {
        let ok = path.starts_with('/')
            && path
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#');
        let login = path.trim_end_matches('/');
        let login = if login.is_empty() { "/" } else { login };
        ok.then(|| Self {
            login: login.into(),
            refresh: format!("{}/refresh", login.trim_end_matches('/')).into(),
        })
    }

    /// The login path.
    #[cfg(feature = "axum")]
    pub(crate) fn login_path(&self) -> &str {
        &self.login
    }

    /// The refresh path.
    #[cfg(feature = "axum")]
    pub(crate) fn refresh_path(&self) -> &str {
        &self.refresh
    }

    /// The route a `POST` is for; other methods pass on like any request.
    pub(crate) fn route(&self, parts: &Parts) -> Option<TokenRoute> {
        if parts.method != Method::POST {
            return None;
        }
        let path = parts.uri.path();
        if path == &*self.login {
            Some(TokenRoute::Login)
        } else if path == &*self.refresh {
            Some(TokenRoute::Refresh)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert!(TokenLogin::new("auth").is_none());
        assert!(TokenLogin::new("/auth login").is_none());
        assert!(TokenLogin::new("/auth?x").is_none());
        let endpoint = TokenLogin::new("/auth/dingtalk/login/").unwrap();
        assert_eq!(&*endpoint.login, "/auth/dingtalk/login");
        assert_eq!(&*endpoint.refresh, "/auth/dingtalk/login/refresh");
        let root = TokenLogin::new("/").unwrap();
        assert_eq!(&*root.refresh, "/refresh");
    }
}
