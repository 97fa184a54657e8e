//! Instructions per request, for `valgrind --tool=callgrind`: deterministic where wall time on a
//! shared machine is not. `cargo bench --bench instructions --no-run`, then run the binary under
//! callgrind with `VARIANT N` twice (N and 2N): the difference over N is one request's cost.
//! Count the requests' thread alone (`--separate-threads=yes`, the first thread's file) and take
//! N in the tens of thousands: the runtime's and the fake DingTalk's other threads add noise.
//! Variants: `code`, `cookie`, `bearer` (ours), `api_key` (tower-http's bearer compare),
//! `api_key_then_user` (the same, then a user put on the request), each with its `bare_…` sent
//! the same header (`bare` for `code`).

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use tower::{Layer, ServiceExt};

use support::dingtalk::{
    CODE_HEADER, cache_codes, client_for, dingtalk, layer_with, session_layer, session_of,
};
use support::rivals::{bearer_authorization, bearer_layer, bearer_user_layer};
use support::{get_with, hello_service};

type Req = Request<Empty<Bytes>>;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let variant = args.next().unwrap_or_else(|| "bare".into());
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let dingtalk = dingtalk().await;
        let layer = layer_with(client_for(&dingtalk)).build().expect("a layer");
        let codes = cache_codes(&layer, &dingtalk, 1000).await;
        let sessions = session_layer(&dingtalk);
        let (cookie, bearer) = session_of(&sessions);
        let header: Box<dyn Fn(usize) -> (&'static str, String)> = match variant.as_str() {
            "bare" | "code" => Box::new(|i| (CODE_HEADER, codes[i % codes.len()].clone())),
            "bare_cookie" | "cookie" => Box::new(|_| ("cookie", cookie.clone())),
            "bare_bearer" | "bearer" => Box::new(|_| ("authorization", bearer.clone())),
            // The floor rows: tower-http's compare, and the same putting a user on the request.
            "bare_api_key" | "api_key" | "api_key_then_user" => {
                Box::new(|_| ("authorization", bearer_authorization()))
            }
            other => panic!("unknown variant {other}"),
        };
        let requests: Vec<Req> = (0..n)
            .map(|i| {
                let (name, value) = header(i);
                get_with(Some((name, &value)))
            })
            .collect();
        let mut ok = 0usize;
        macro_rules! run {
            ($service:expr) => {{
                let service = $service;
                for request in requests {
                    let response = service.clone().oneshot(request).await.expect("infallible");
                    ok += usize::from(response.status() == 200);
                }
            }};
        }
        match variant.as_str() {
            "bare" | "bare_cookie" | "bare_bearer" | "bare_api_key" => run!(hello_service()),
            "api_key" => run!(bearer_layer().layer(hello_service())),
            "api_key_then_user" => run!(bearer_user_layer().layer(hello_service())),
            "code" => run!(layer.layer(hello_service())),
            _ => run!(sessions.layer(hello_service())),
        }
        assert_eq!(ok, n, "every request answered 200");
    });
}
