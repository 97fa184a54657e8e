//! [`Rejections`]: how an [`AuthError`] becomes a response, set once on the layer (realm, JSON
//! shape, `on_rejection`) and used by the layer, every guard and every extractor. The layer puts
//! it in the extensions of every request it passes on, so that what runs behind it renders the
//! same rejections, and so that a guard or extractor can tell a request the layer never saw.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Extensions, Response};

use crate::error::{AuthError, AuthErrorKind};
use crate::log_gate::LogGate;

/// Whether `realm` can stand between the quotes of a `WWW-Authenticate` challenge as it is: visible
/// ASCII or spaces, no quote or backslash that could end it early and forge parameters.
pub(crate) fn valid_realm(realm: &str) -> bool {
    !realm.is_empty()
        && realm
            .bytes()
            .all(|b| (b.is_ascii_graphic() || b == b' ') && b != b'"' && b != b'\\')
}

/// The realm of `WWW-Authenticate` unless one is configured.
pub const DEFAULT_REALM: &str = "dingtalk";

pub(crate) type RejectionFn = dyn Fn(&AuthError) -> Response<Bytes> + Send + Sync;

/// How rejections are rendered; cheap to clone.
#[derive(Clone)]
pub(crate) struct Rejections(Arc<Inner>);

struct Inner {
    realm: Box<str>,
    render: Option<Arc<RejectionFn>>,
    /// Whether the layer's client gives users a profile: a guard that needs one and finds none
    /// then says DingTalk did not give it (503), rather than that it was never asked for (500).
    profiles: bool,
}

impl Rejections {
    pub(crate) fn new(realm: Box<str>, render: Option<Arc<RejectionFn>>) -> Self {
        Self(Arc::new(Inner {
            realm,
            render,
            profiles: false,
        }))
    }

    /// The same rendering, for a layer whose client gives users a profile.
    pub(crate) fn with_profiles(realm: Box<str>, render: Option<Arc<RejectionFn>>) -> Self {
        Self(Arc::new(Inner {
            realm,
            render,
            profiles: true,
        }))
    }

    /// Whether the layer's client gives users a profile.
    pub(crate) fn profiles(&self) -> bool {
        self.0.profiles
    }

    /// What renders rejections where no layer said otherwise: a user put on the request by hand
    /// (a test, another authentication layer).
    pub(crate) fn fallback() -> &'static Self {
        static DEFAULT: OnceLock<Rejections> = OnceLock::new();
        DEFAULT.get_or_init(|| Self::new(DEFAULT_REALM.into(), None))
    }

    pub(crate) fn render(&self, error: &AuthError) -> Response<Bytes> {
        match &self.0.render {
            Some(render) => render(error),
            None => error.to_response(&self.0.realm),
        }
    }

    /// Whether the app renders rejections itself (`on_rejection`).
    pub(crate) fn is_custom(&self) -> bool {
        self.0.render.is_some()
    }

    /// The rendering of the layer that saw this request, if one did.
    pub(crate) fn of(extensions: &Extensions) -> Option<&Self> {
        extensions.get::<Self>()
    }
}

impl std::fmt::Debug for Rejections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rejections")
            .field("realm", &self.0.realm)
            .field("on_rejection", &self.0.render.as_ref().map(|_| ".."))
            .finish()
    }
}

/// The error of a guard or extractor on a request no [`DingTalkAuthLayer`](crate::DingTalkAuthLayer)
/// saw: a server misconfiguration, loud in the logs (once a minute) and a 500 to the caller, rather
/// than a silent 401 that looks like the user's fault.
pub(crate) fn layer_missing(what: &'static str) -> AuthError {
    static LOG: OnceLock<LogGate> = OnceLock::new();
    if LOG
        .get_or_init(|| LogGate::new(Duration::from_secs(60)))
        .allow()
    {
        tracing::error!(
            what,
            "a request reached a DingTalk {what} without passing through DingTalkAuthLayer: add \
             the layer in front of this route (`.layer(auth)` or `.route_layer(auth)`, outside \
             the guards)"
        );
    }
    AuthError::new(
        AuthErrorKind::Internal,
        "this route is not behind the DingTalk authentication layer",
    )
}
