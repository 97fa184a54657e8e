//! The guide: how to put the layer in front of an app, chapter by chapter. Each chapter's Rust
//! snippets are doctests of this crate.
//!
//! | chapter | for |
//! | --- | --- |
//! | [front_end] | the page's or mini program's part: codes, the helper that retries, the login page |
//! | [pages] | pages with sessions, a login page that remembers where the browser was going, APIs, administrators, one app with all of them |
//! | [web_login] | pages inside DingTalk and in any browser: DingTalk's web login (QR code or account) |
//! | [access] | who may do what: profiles, department guards, your own user, access that ends when people leave |
//! | [mini_programs] | clients without cookies: a code once for a bearer token |
//! | [third_party] | third-party apps (第三方企业应用) serving many corps |
//! | [replicas] | many replicas sharing Redis |
//! | [behind_a_proxy] | nginx in front, tower-http's layers, logs without codes, fairness |
//! | [testing] | testing your handlers, with and without the fake DingTalk |
//! | [operations] | the self-check before the first user, readiness probes, metrics and alerts, the replicas' one budget, Redis over TLS and Cluster |
//! | [security] | what a leaked code can do, for one replica and many |
//! | [reference](mod@reference) | every setting, every answer, every fault and limit, with the tests that show them |

#[doc = include_str!("../docs/front_end.md")]
pub mod front_end {}

#[doc = include_str!("../docs/pages.md")]
pub mod pages {}

#[doc = include_str!("../docs/web_login.md")]
pub mod web_login {}

#[doc = include_str!("../docs/access.md")]
pub mod access {}

#[doc = include_str!("../docs/mini_programs.md")]
pub mod mini_programs {}

#[doc = include_str!("../docs/third_party.md")]
pub mod third_party {}

#[doc = include_str!("../docs/replicas.md")]
pub mod replicas {}

#[doc = include_str!("../docs/behind_a_proxy.md")]
pub mod behind_a_proxy {}

#[doc = include_str!("../docs/testing.md")]
pub mod testing {}

#[doc = include_str!("../docs/operations.md")]
pub mod operations {}

#[doc = include_str!("../docs/security.md")]
pub mod security {}

#[doc = include_str!("../docs/reference.md")]
pub mod reference {}
