//! What a team would pick instead for pages: axum-login over tower-sessions, with its in-memory
//! store or its Redis store (`tower-sessions-redis-store`, on fred), one user signed in by a route
//! of its own; the same hello-world handler behind `login_required!`, as ours is behind the layer.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use axum_login::{AuthManagerLayerBuilder, AuthSession, AuthUser, AuthnBackend, UserId};
use http::StatusCode;
use tower::ServiceExt;
use tower_sessions::{MemoryStore, SessionManagerLayer, SessionStore};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};

/// The one user, as an app keeps it.
#[derive(Clone, Debug)]
pub struct User {
    id: u64,
    name: String,
    /// What axum-login compares on every request to end sessions when a password changes.
    password_hash: Vec<u8>,
}

impl AuthUser for User {
    type Id = u64;

    fn id(&self) -> u64 {
        self.id
    }

    fn session_auth_hash(&self) -> &[u8] {
        &self.password_hash
    }
}

/// The users by id, in memory: a lookup as cheap as an app's could be.
#[derive(Clone, Debug)]
pub struct Backend {
    users: Arc<HashMap<u64, User>>,
}

impl AuthnBackend for Backend {
    type User = User;
    type Credentials = u64;
    type Error = Infallible;

    async fn authenticate(&self, id: u64) -> Result<Option<User>, Infallible> {
        Ok(self.users.get(&id).cloned())
    }

    async fn get_user(&self, id: &UserId<Self>) -> Result<Option<User>, Infallible> {
        Ok(self.users.get(id).cloned())
    }
}

/// The hello-world route behind `login_required!`, and `POST /login` signing the user in, with
/// sessions in memory.
pub fn axum_login_router() -> Router {
    router_over(MemoryStore::default())
}

/// The same with sessions in Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`), through a
/// pool of connections as the store's own example sets it up.
pub async fn axum_login_redis_router() -> Router {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let config = Config::from_url(&url).expect("a Redis URL");
    let pool = Pool::new(config, None, None, None, 6).expect("a pool");
    pool.init().await.unwrap_or_else(|error| {
        panic!("axum-login's Redis store needs Redis: {error}; set REDIS_URL")
    });
    router_over(RedisStore::new(pool))
}

fn router_over<S: SessionStore + Clone>(store: S) -> Router {
    let user = User {
        id: 1,
        name: "张三".to_owned(),
        password_hash: b"$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
            .to_vec(),
    };
    let backend = Backend {
        users: Arc::new(HashMap::from([(user.id, user)])),
    };
    let sessions = SessionManagerLayer::new(store).with_secure(false);
    let auth = AuthManagerLayerBuilder::new(backend, sessions).build();
    Router::new()
        .route("/", get(|| async { super::HELLO }))
        .route_layer(axum_login::login_required!(Backend))
        .route("/login", post(sign_in))
        .layer(auth)
}

async fn sign_in(mut auth: AuthSession<Backend>) -> StatusCode {
    match auth.authenticate(1).await {
        Ok(Some(user)) if !user.name.is_empty() && auth.login(&user).await.is_ok() => {
            StatusCode::OK
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Signs the user in through `router` and returns the `Cookie` pair a browser would send back.
pub async fn axum_login_cookie(router: &Router) -> String {
    let request = http::Request::post("/login")
        .body(axum::body::Body::empty())
        .expect("a request");
    let response = router.clone().oneshot(request).await.expect("an answer");
    assert_eq!(response.status(), StatusCode::OK, "axum-login signs in");
    let set_cookie = response
        .headers()
        .get(http::header::SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .expect("ASCII");
    set_cookie.split(';').next().expect("a pair").to_owned()
}
