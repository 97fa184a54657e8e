//! What the benches share: the fake DingTalk with our layer in front of it, the auth layers we
//! compare against, and a loopback load generator.

// Each bench uses its own part of this module.
#![allow(dead_code)]

pub mod dingtalk;
pub mod driver;
pub mod medians;
pub mod pages;
pub mod rivals;

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Empty, Full};

/// The body every hello-world answers with.
pub const HELLO: &str = "Hello, World!";

/// The trivial inner service of the in-process benches: what a hello-world handler costs, without
/// a router, so that the layer in front of it is what the timings compare.
pub fn hello_service()
-> impl tower::Service<Request<Empty<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible>
+ Clone
+ Send
+ 'static {
    tower::service_fn(|_request: Request<Empty<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::from(HELLO)))
    })
}

/// Two workers, like `#[tokio::main]` on this machine: the fake DingTalk and the exchanges run on
/// them while the bench drives the measured calls from its own thread.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Whether the benchmark `name` should run: `cargo bench -- FILTER…` runs those whose name holds
/// one of the filters, as criterion does, and plain `cargo bench` runs everything.
pub fn wanted(name: &str) -> bool {
    let mut filters = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .peekable();
    filters.peek().is_none() || filters.any(|filter| name.contains(filter.as_str()))
}

/// A GET of `/` carrying one header, as every client of the benches sends it.
pub fn get_with<B: Default>(header: Option<(&'static str, &str)>) -> Request<B> {
    let mut request = Request::get("/");
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    request.body(B::default()).expect("a valid request")
}
