//! Where guards and extractors find how the layer that saw their request renders rejections.

use http::Extensions;

use crate::reject::Rejections;
use crate::user::AuthenticatedDingTalkUser;

impl Rejections {
    /// The rendering of the last layer that saw this request, if one did: a layer that passed it
    /// on without a user left its rendering in the extensions; one that put a user on it, in the
    /// user (and took out any rendering an earlier layer left).
    pub(crate) fn of(extensions: &Extensions) -> Option<&Self> {
        extensions.get::<Self>().or_else(|| {
            extensions
                .get::<AuthenticatedDingTalkUser>()
                .and_then(AuthenticatedDingTalkUser::rendering)
        })
    }
}
