//! The auth layers ours is compared with, all reading `Authorization: Bearer …`:
//! - a static bearer token checked by tower-http's `ValidateRequestHeaderLayer` with a
//!   constant-time compare: the cheapest auth a real service would run;
//! - the same compare that then puts a ready user (ours, an `Arc` clone) into the request's
//!   extensions: the floor of any layer that hands a user to the handler;
//! - an HS256 JWT verified with `jsonwebtoken` inside tower-http's
//!   `AsyncRequireAuthorizationLayer`, its claims put into the request's extensions: the typical
//!   JWT layer. (jwt-authorizer 0.15, the ready-made one, is built on axum 0.7 and needs the inner
//!   service's response to be axum 0.7's, so it does not fit an axum 0.8 stack.)

use std::future::{Ready, ready};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Request, Response, StatusCode, header};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tower_dingtalk_auth::AuthenticatedDingTalkUser;
use tower_http::auth::{AsyncAuthorizeRequest, AsyncRequireAuthorizationLayer};
use tower_http::validate_request::{ValidateRequest, ValidateRequestHeaderLayer};

/// The static token of the bearer layer, as long as a typical API key.
const API_KEY: &str = "4f9c2b7e8a1d6035c9e2f4b8a7d1c3e5";
/// The HS256 secret of the JWT layer.
const JWT_SECRET: &[u8] = b"a 256-bit secret for the bench's HS256 tokens....";

/// The `Authorization` value the bearer layer accepts.
pub fn bearer_authorization() -> String {
    format!("Bearer {API_KEY}")
}

/// The rejection both rivals answer with.
fn unauthorized<B: Default>() -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response
}

/// tower-http's header validation with a constant-time compare of the whole header.
pub fn bearer_layer<ResBody>() -> ValidateRequestHeaderLayer<ConstantTimeBearer<ResBody>> {
    ValidateRequestHeaderLayer::custom(constant_time_bearer())
}

fn constant_time_bearer<ResBody>() -> ConstantTimeBearer<ResBody> {
    ConstantTimeBearer {
        expected: HeaderValue::from_str(&bearer_authorization()).expect("a valid header"),
        body: PhantomData,
    }
}

/// Accepts requests whose `Authorization` is exactly the expected one, compared in constant time.
pub struct ConstantTimeBearer<ResBody> {
    expected: HeaderValue,
    body: PhantomData<fn() -> ResBody>,
}

// By hand: a derive would require `ResBody: Clone`.
impl<ResBody> Clone for ConstantTimeBearer<ResBody> {
    fn clone(&self) -> Self {
        Self {
            expected: self.expected.clone(),
            body: PhantomData,
        }
    }
}

impl<B, ResBody: Default> ValidateRequest<B> for ConstantTimeBearer<ResBody> {
    type ResponseBody = ResBody;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response<ResBody>> {
        let matches = request
            .headers()
            .get(header::AUTHORIZATION)
            .is_some_and(|value| value.as_bytes().ct_eq(self.expected.as_bytes()).into());
        if matches { Ok(()) } else { Err(unauthorized()) }
    }
}

/// tower-http's header validation as above, then a user put on the request, as every layer that
/// hands one to the handler must: the first extension allocates the request's map and a box.
pub fn bearer_user_layer<ResBody>() -> ValidateRequestHeaderLayer<BearerThenUser<ResBody>> {
    let user = super::dingtalk::bench_user();
    ValidateRequestHeaderLayer::custom(BearerThenUser {
        bearer: constant_time_bearer(),
        user,
    })
}

/// [`ConstantTimeBearer`], then the user into the extensions.
pub struct BearerThenUser<ResBody> {
    bearer: ConstantTimeBearer<ResBody>,
    user: AuthenticatedDingTalkUser,
}

// By hand: a derive would require `ResBody: Clone`.
impl<ResBody> Clone for BearerThenUser<ResBody> {
    fn clone(&self) -> Self {
        Self {
            bearer: self.bearer.clone(),
            user: self.user.clone(),
        }
    }
}

impl<B, ResBody: Default> ValidateRequest<B> for BearerThenUser<ResBody> {
    type ResponseBody = ResBody;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response<ResBody>> {
        self.bearer.validate(request)?;
        request.extensions_mut().insert(self.user.clone());
        Ok(())
    }
}

/// What the bench's JWTs carry; the layer hands it to handlers through the extensions.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    sub: String,
    name: String,
    iat: u64,
    exp: u64,
}

/// The `Authorization` value of a valid JWT for one user, good for a day.
pub fn jwt_authorization() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    let claims = Claims {
        sub: super::dingtalk::USERID.to_owned(),
        name: "张三".to_owned(),
        iat: now.as_secs(),
        exp: (now + Duration::from_secs(86_400)).as_secs(),
    };
    let key = EncodingKey::from_secret(JWT_SECRET);
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).expect("a JWT");
    format!("Bearer {token}")
}

/// The typical JWT layer: verify signature and expiry, then put the claims on the request.
pub fn jwt_layer<ResBody>() -> AsyncRequireAuthorizationLayer<JwtAuth<ResBody>> {
    AsyncRequireAuthorizationLayer::new(JwtAuth {
        key: Arc::new(DecodingKey::from_secret(JWT_SECRET)),
        validation: Arc::new(Validation::new(Algorithm::HS256)),
        body: PhantomData,
    })
}

/// Verifies the HS256 JWT in `Authorization: Bearer …`.
pub struct JwtAuth<ResBody> {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
    body: PhantomData<fn() -> ResBody>,
}

// By hand: a derive would require `ResBody: Clone`.
impl<ResBody> Clone for JwtAuth<ResBody> {
    fn clone(&self) -> Self {
        Self {
            key: self.key.clone(),
            validation: self.validation.clone(),
            body: PhantomData,
        }
    }
}

impl<ResBody> JwtAuth<ResBody> {
    fn claims<B>(&self, request: &Request<B>) -> Option<Claims> {
        let value = request
            .headers()
            .get(header::AUTHORIZATION)?
            .to_str()
            .ok()?;
        let token = value.strip_prefix("Bearer ")?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).ok()?;
        Some(data.claims)
    }
}

impl<B, ResBody: Default> AsyncAuthorizeRequest<B> for JwtAuth<ResBody> {
    type RequestBody = B;
    type ResponseBody = ResBody;
    type Future = Ready<Result<Request<B>, Response<ResBody>>>;

    fn authorize(&mut self, mut request: Request<B>) -> Self::Future {
        ready(match self.claims(&request) {
            Some(claims) => {
                request.extensions_mut().insert(claims);
                Ok(request)
            }
            None => Err(unauthorized()),
        })
    }
}
