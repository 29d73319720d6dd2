//! The one table of HTTP cases every adapter (tower/axum, actix-web) must
//! answer identically, and its runner. The app under test has, behind an
//! outer anonymous-allowing layer of realm `orders`:
//! `/me` (token required), `/orders` (scope `orders:read`), `/admin` (role
//! `admin` in `realm_access.roles`), `/app` (custom requirement
//! `client_id my-app`), `/cookie` (token from the cookie `at`), `/maybe`
//! (anonymous allowed, optional claims), and, where the adapter has
//! extractors, `/claims` (the `Claims` extractor with no route layer of its
//! own); and `/bare` (the `Claims` extractor with no layer at all in front).

use std::future::Future;

use serde_json::{Value, json};
use tokenwarden::Algorithm;

use super::{LogBuffer, NOW, claims, key};

pub struct Case {
    pub name: &'static str,
    pub path: &'static str,
    pub authorization: Option<String>,
    /// More request headers, appended in order (a name may repeat).
    pub headers: Vec<(&'static str, String)>,
    pub status: u16,
    /// The exact WWW-Authenticate value, if one is expected.
    pub challenge: Option<&'static str>,
    pub body: Option<&'static str>,
    /// Only for adapters with extractors (axum, actix-web): the routes
    /// `/claims` and `/bare`.
    pub extractor: bool,
}

impl Default for Case {
    fn default() -> Self {
        Case {
            name: "",
            path: "/me",
            authorization: None,
            headers: Vec::new(),
            status: 200,
            challenge: None,
            body: Some(""),
            extractor: false,
        }
    }
}

/// What `/bare` logs: a route extracts claims with no layer in front.
pub const NOT_CONFIGURED_LOG: &str =
    "a route extracts claims but no bearer auth layer runs in front of it";

fn token_with(claims: Value) -> String {
    key(Algorithm::ES256).token(&claims)
}

pub fn cases() -> Vec<Case> {
    let bearer = |t: &str| Some(format!("Bearer {t}"));
    let mut scoped = claims();
    scoped["scope"] = json!("profile orders:read");
    let mut unscoped = claims();
    unscoped["scope"] = json!("profile orders:reader");
    let mut expired = claims();
    expired["exp"] = json!(NOW - 3600);
    let mut admin = claims();
    admin["realm_access"] = json!({"roles": ["ops", "admin"]});
    let mut ops = claims();
    ops["realm_access"] = json!({"roles": ["ops"]});
    let mut mine = claims();
    mine["client_id"] = json!("my-app");
    let mut theirs = claims();
    theirs["client_id"] = json!("their-app");
    let mut foreign = claims();
    foreign["aud"] = json!("https://other.test");
    let valid = token_with(claims());
    let mut bob = claims();
    bob["sub"] = json!("bob");
    let bob = token_with(bob);
    let cookie = |v: &str| ("cookie", v.to_owned());
    let malformed_bearer = Some(
        r#"Bearer realm="orders", error="invalid_request", error_description="the Authorization header must hold exactly one bearer token""#,
    );
    let look_alike_cookie = Some(
        r#"Bearer realm="orders", error="invalid_request", error_description="a cookie name that reads as the credential cookie's""#,
    );
    vec![
        // RFC 6750 §2.1 is `Bearer 1*SP b64token`. An application that
        // splits on any whitespace reads a token in these; on an anonymous
        // route they must not pass as "no token".
        Case {
            name: "Bearer<TAB>token on an anonymous route is an invalid request",
            path: "/maybe",
            authorization: Some(format!("Bearer\t{valid}")),
            status: 400,
            challenge: malformed_bearer,
            ..Case::default()
        },
        Case {
            name: "bearer<SP><TAB>token on an anonymous route is an invalid request",
            path: "/maybe",
            authorization: Some(format!("bearer \t{valid}")),
            status: 400,
            challenge: malformed_bearer,
            ..Case::default()
        },
        Case {
            name: "Bearer,token on an anonymous route is an invalid request",
            path: "/maybe",
            authorization: Some(format!("Bearer,{valid}")),
            status: 400,
            challenge: malformed_bearer,
            ..Case::default()
        },
        Case {
            name: "Bearer with no token on an anonymous route is an invalid request",
            path: "/maybe",
            authorization: Some("Bearer".into()),
            status: 400,
            challenge: malformed_bearer,
            ..Case::default()
        },
        Case {
            name: "two spaces after the scheme: the token is judged",
            path: "/maybe",
            authorization: Some("Bearer  not.a.jwt".into()),
            status: 401,
            challenge: Some(
                r#"Bearer realm="orders", error="invalid_token", error_description="malformed""#,
            ),
            ..Case::default()
        },
        Case {
            // Documented: the layer judges bearer credentials only.
            name: "another scheme on an anonymous route passes with no claims",
            path: "/maybe",
            authorization: Some("Basic YTpi".into()),
            body: Some("anonymous"),
            ..Case::default()
        },
        // An application that percent-decodes or case-folds cookie names
        // (PHP decodes them and keeps the first) would read the look-alike.
        Case {
            name: "a cookie whose name percent-decodes to the token's",
            path: "/cookie",
            headers: vec![cookie(&format!("%61t={bob}; at={valid}"))],
            status: 400,
            challenge: look_alike_cookie,
            ..Case::default()
        },
        // RFC 2965 parsers (obsolete, still about) split pairs on `,`: one
        // behind us would read the second token, which we never judged.
        Case {
            name: "a token cookie hidden after a comma",
            path: "/cookie",
            headers: vec![cookie(&format!("at={valid}, at={bob}"))],
            status: 400,
            challenge: Some(
                r#"Bearer realm="orders", error="invalid_request", error_description="a credential cookie after a comma, which some parsers split on""#,
            ),
            ..Case::default()
        },
        Case {
            name: "a cookie whose name case-folds to the token's",
            path: "/cookie",
            headers: vec![cookie(&format!("at={valid}")), cookie(&format!("AT={bob}"))],
            status: 400,
            challenge: look_alike_cookie,
            ..Case::default()
        },
        // `/cookie`'s layer derives from the outer one (same validator) but
        // reads another credential: the outer verdict on `Authorization`
        // says nothing about the cookie.
        Case {
            name: "a valid bearer token does not stand in for the route's cookie",
            path: "/cookie",
            authorization: bearer(&valid),
            status: 401,
            challenge: Some(r#"Bearer realm="orders""#),
            ..Case::default()
        },
        Case {
            name: "the route's cookie is judged though the bearer token is valid",
            path: "/cookie",
            authorization: bearer(&valid),
            headers: vec![cookie("at=not.a.jwt")],
            status: 401,
            challenge: Some(
                r#"Bearer realm="orders", error="invalid_token", error_description="malformed""#,
            ),
            ..Case::default()
        },
        Case {
            name: "the cookie's claims, not the bearer token's, reach the cookie route",
            path: "/cookie",
            authorization: bearer(&valid),
            headers: vec![cookie(&format!("at={bob}"))],
            body: Some("bob"),
            ..Case::default()
        },
        Case {
            name: "role held",
            path: "/admin",
            authorization: bearer(&token_with(admin)),
            body: Some("alice"),
            ..Case::default()
        },
        Case {
            name: "role lacking",
            path: "/admin",
            authorization: bearer(&token_with(ops)),
            status: 403,
            challenge: Some(
                r#"Bearer realm="orders", error="insufficient_scope", error_description="requires role admin""#,
            ),
            ..Case::default()
        },
        Case {
            name: "custom requirement met",
            path: "/app",
            authorization: bearer(&token_with(mine)),
            body: Some("alice"),
            ..Case::default()
        },
        Case {
            name: "custom requirement unmet",
            path: "/app",
            authorization: bearer(&token_with(theirs)),
            status: 403,
            challenge: Some(
                r#"Bearer realm="orders", error="insufficient_scope", error_description="requires client_id my-app""#,
            ),
            ..Case::default()
        },
        Case {
            name: "token from its cookie",
            path: "/cookie",
            headers: vec![cookie(&format!("sid=1; at={valid}"))],
            body: Some("alice"),
            ..Case::default()
        },
        Case {
            name: "two cookies of the token's name",
            path: "/cookie",
            headers: vec![cookie(&format!("at={valid}; sid=1; at={valid}"))],
            status: 400,
            challenge: Some(
                r#"Bearer realm="orders", error="invalid_request", error_description="more than one credential cookie""#,
            ),
            ..Case::default()
        },
        Case {
            name: "the token's cookie in two Cookie headers",
            path: "/cookie",
            headers: vec![cookie(&format!("at={valid}")), cookie("at=other")],
            status: 400,
            challenge: Some(
                r#"Bearer realm="orders", error="invalid_request", error_description="more than one credential cookie""#,
            ),
            ..Case::default()
        },
        Case {
            // Any HTTP/1.1 client can send a gRPC content type; a gateway
            // using the answer for forward auth reads 200 as "allow".
            name: "gRPC content type over HTTP/1.1 is refused with 401",
            path: "/me",
            authorization: bearer("not.a.jwt"),
            headers: vec![("content-type", "application/grpc".into())],
            status: 401,
            challenge: Some(
                r#"Bearer realm="orders", error="invalid_token", error_description="malformed""#,
            ),
            ..Case::default()
        },
        Case {
            name: "gRPC content type over HTTP/1.1, no token, is 401",
            path: "/me",
            headers: vec![("content-type", "application/grpc+proto".into())],
            status: 401,
            challenge: Some(r#"Bearer realm="orders""#),
            ..Case::default()
        },
        Case {
            name: "extractor behind an anonymous-allowing layer, no token",
            path: "/claims",
            status: 401,
            challenge: Some(r#"Bearer realm="orders""#),
            extractor: true,
            ..Case::default()
        },
        Case {
            name: "extractor behind an anonymous-allowing layer, valid token",
            path: "/claims",
            authorization: bearer(&valid),
            body: Some("alice"),
            extractor: true,
            ..Case::default()
        },
        Case {
            name: "extractor with no layer in front",
            path: "/bare",
            authorization: bearer(&valid),
            status: 500,
            challenge: None,
            extractor: true,
            ..Case::default()
        },
        Case {
            name: "valid",
            path: "/me",
            authorization: bearer(&token_with(claims())),
            status: 200,
            challenge: None,
            body: Some("alice"),
            ..Case::default()
        },
        Case {
            name: "scheme is case-insensitive",
            path: "/me",
            authorization: Some(format!("bearer {}", token_with(claims()))),
            status: 200,
            challenge: None,
            body: Some("alice"),
            ..Case::default()
        },
        Case {
            name: "no token",
            path: "/me",
            authorization: None,
            status: 401,
            challenge: Some(r#"Bearer realm="orders""#),
            body: Some(""),
            ..Case::default()
        },
        Case {
            name: "other scheme",
            path: "/me",
            authorization: Some("Basic YTpi".into()),
            status: 401,
            challenge: Some(r#"Bearer realm="orders""#),
            body: Some(""),
            ..Case::default()
        },
        Case {
            name: "garbage token",
            path: "/me",
            authorization: bearer("not.a.jwt"),
            status: 401,
            challenge: Some(
                r#"Bearer realm="orders", error="invalid_token", error_description="malformed""#,
            ),
            body: Some(""),
            ..Case::default()
        },
        Case {
            name: "expired",
            path: "/me",
            authorization: bearer(&token_with(expired)),
            status: 401,
            challenge: Some(
                r#"Bearer realm="orders", error="invalid_token", error_description="expired""#,
            ),
            body: Some(""),
            ..Case::default()
        },
        Case {
            name: "wrong audience",
            path: "/me",
            authorization: bearer(&token_with(foreign)),
            status: 401,
            challenge: Some(
                r#"Bearer realm="orders", error="invalid_token", error_description="invalid_audience""#,
            ),
            body: Some(""),
            ..Case::default()
        },
        Case {
            name: "two tokens",
            path: "/me",
            authorization: Some("Bearer a b".into()),
            status: 400,
            challenge: Some(
                r#"Bearer realm="orders", error="invalid_request", error_description="the Authorization header must hold exactly one bearer token""#,
            ),
            body: Some(""),
            ..Case::default()
        },
        Case {
            name: "scope granted",
            path: "/orders",
            authorization: bearer(&token_with(scoped)),
            status: 200,
            challenge: None,
            body: Some("alice"),
            ..Case::default()
        },
        Case {
            name: "scope lacking",
            path: "/orders",
            authorization: bearer(&token_with(unscoped)),
            status: 403,
            challenge: Some(
                r#"Bearer realm="orders", error="insufficient_scope", scope="orders:read""#,
            ),
            body: Some(""),
            ..Case::default()
        },
        Case {
            name: "anonymous allowed",
            path: "/maybe",
            authorization: None,
            status: 200,
            challenge: None,
            body: Some("anonymous"),
            ..Case::default()
        },
        Case {
            name: "optional claims present",
            path: "/maybe",
            authorization: bearer(&token_with(claims())),
            status: 200,
            challenge: None,
            body: Some("alice"),
            ..Case::default()
        },
        Case {
            name: "optional route, bad token",
            path: "/maybe",
            authorization: bearer("not.a.jwt"),
            status: 401,
            challenge: Some(
                r#"Bearer realm="orders", error="invalid_token", error_description="malformed""#,
            ),
            body: Some(""),
            ..Case::default()
        },
    ]
}

/// Sends every case to `base` and checks status, challenge, body, and that
/// the token shows up in neither the response nor the captured logs.
/// `extractors`: the adapter has extractors, and mounts `/claims` and
/// `/bare`. Every request is HTTP/1.1, so no answer may carry `grpc-status`.
pub async fn run_all(base: &str, logs: &LogBuffer, extractors: bool) {
    let client = reqwest::Client::new();
    let mut ran = 0;
    for case in cases() {
        if case.extractor && !extractors {
            continue;
        }
        ran += 1;
        let mut req = client.get(format!("{base}{}", case.path));
        if let Some(a) = &case.authorization {
            req = req.header("authorization", a);
        }
        for (name, value) in &case.headers {
            req = req.header(*name, value);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), case.status, "{}", case.name);
        assert_eq!(resp.version(), reqwest::Version::HTTP_11, "{}", case.name);
        assert!(
            resp.headers().get("grpc-status").is_none(),
            "{}: a gRPC answer over HTTP/1.1",
            case.name
        );
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(challenge.as_deref(), case.challenge, "{}", case.name);
        let headers = format!("{:?}", resp.headers());
        let body = resp.text().await.unwrap();
        if let Some(expected) = case.body {
            assert_eq!(body, expected, "{}", case.name);
        }
        let credentials = case
            .authorization
            .iter()
            .filter_map(|a| a.rsplit([' ', '\t', ',']).next())
            .chain(case.headers.iter().flat_map(|(_, v)| {
                v.split(';')
                    .filter_map(|p| p.split_once('='))
                    .map(|(_, v)| v)
            }));
        for token in credentials.filter(|t| t.len() > 8) {
            assert!(
                !headers.contains(token) && !body.contains(token),
                "{}: token echoed",
                case.name
            );
            assert!(!logs.text().contains(token), "{}: token logged", case.name);
        }
    }
    assert!(ran >= 20, "the table ran: {ran}");
    assert!(
        logs.text().contains("bearer token refused"),
        "refusals are logged: {}",
        logs.text()
    );
    if extractors {
        assert!(
            logs.text().contains(NOT_CONFIGURED_LOG),
            "a route with no layer in front is logged: {}",
            logs.text()
        );
    }
}

/// A refusal to an HTTP/2 gRPC request: the gRPC status it must carry.
pub struct GrpcCase {
    pub name: &'static str,
    pub path: &'static str,
    pub authorization: Option<String>,
    pub grpc_status: &'static str,
    pub extractor: bool,
}

pub fn grpc_cases() -> Vec<GrpcCase> {
    let bearer = |t: &str| Some(format!("Bearer {t}"));
    let mut unscoped = claims();
    unscoped["scope"] = json!("profile");
    let mut theirs = claims();
    theirs["client_id"] = json!("their-app");
    let case = |name, path, authorization, grpc_status| GrpcCase {
        name,
        path,
        authorization,
        grpc_status,
        extractor: false,
    };
    vec![
        case("no token", "/me", None, "16"),
        case("bad token", "/me", bearer("not.a.jwt"), "16"),
        case("two tokens", "/me", Some("Bearer a b".into()), "3"),
        case(
            "scope lacking",
            "/orders",
            bearer(&token_with(unscoped)),
            "7",
        ),
        case("role lacking", "/admin", bearer(&token_with(claims())), "7"),
        case(
            "custom requirement unmet",
            "/app",
            bearer(&token_with(theirs)),
            "7",
        ),
        GrpcCase {
            extractor: true,
            ..case("extractor, anonymous", "/claims", None, "16")
        },
    ]
}

/// One adapter's answer to an HTTP/2 request.
pub struct Answer {
    pub status: u16,
    pub grpc_status: Option<String>,
    pub content_type: Option<String>,
}

/// Sends every gRPC case as an HTTP/2 request with each gRPC content type
/// through `send(path, authorization, content type)`: every refusal is a
/// 200 whose `grpc-status` names it, as gRPC clients expect.
pub async fn run_grpc<F, Fut>(send: F, extractors: bool)
where
    F: Fn(&'static str, Option<String>, &'static str) -> Fut,
    Fut: Future<Output = Answer>,
{
    for case in grpc_cases() {
        if case.extractor && !extractors {
            continue;
        }
        for content_type in ["application/grpc", "application/grpc+proto"] {
            let a = send(case.path, case.authorization.clone(), content_type).await;
            let name = format!("{} ({content_type})", case.name);
            assert_eq!(a.status, 200, "{name}");
            assert_eq!(a.grpc_status.as_deref(), Some(case.grpc_status), "{name}");
            assert_eq!(
                a.content_type.as_deref(),
                Some("application/grpc"),
                "{name}"
            );
        }
    }
}

/// The same HTTP/2 gRPC requests to an app whose layers were built with
/// `.grpc(false)` (a forward-auth endpoint): every refusal keeps its HTTP
/// status, never a 200, and carries no `grpc-status`.
pub async fn run_grpc_off<F, Fut>(send: F, extractors: bool)
where
    F: Fn(&'static str, Option<String>, &'static str) -> Fut,
    Fut: Future<Output = Answer>,
{
    for case in grpc_cases() {
        if case.extractor && !extractors {
            continue;
        }
        let status = match case.grpc_status {
            "3" => 400,
            "7" => 403,
            _ => 401,
        };
        for content_type in ["application/grpc", "application/grpc+proto"] {
            let a = send(case.path, case.authorization.clone(), content_type).await;
            let name = format!("{} ({content_type}, gRPC mode off)", case.name);
            assert_eq!(a.status, status, "{name}");
            assert_eq!(a.grpc_status, None, "{name}");
        }
    }
}

/// The custom requirement behind `/app`.
pub fn is_my_app(c: &serde_json::Map<String, Value>) -> bool {
    c.get("client_id").and_then(Value::as_str) == Some("my-app")
}

/// A validator whose keys can never be fetched (nothing listens on port 9
/// of loopback): every token meets `keys_unavailable`.
#[cfg(feature = "remote")]
pub fn keyless_validator() -> tokenwarden::Validator {
    let keys = tokenwarden::RemoteKeySet::builder()
        .jwks_url("http://127.0.0.1:9/jwks")
        .allow_http_loopback(true)
        .build()
        .unwrap();
    tokenwarden::Validator::builder()
        .issuer(super::ISS)
        .audience(super::AUD)
        .keys(keys)
        .build()
        .unwrap()
}

/// With no usable keys, a valid-looking token gets 503 and no challenge:
/// the client did nothing wrong.
pub async fn run_keys_unavailable(base: &str) {
    let resp = reqwest::Client::new()
        .get(format!("{base}/me"))
        .bearer_auth(token_with(claims()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().get("www-authenticate").is_none());
    // RFC 9110 §10.2.3: when to come back, in seconds, within the bounds.
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
    assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
    let body = resp.text().await.unwrap();
    assert!(body.contains("retry later"), "{body}");
}

/// A hook that tries everything a hook must not do: replace the challenge
/// (in two spellings), set `Retry-After`, framing headers and a header that
/// is not valid text; it also adds one harmless header and a body.
pub fn hostile_hook(
    auth: tokenwarden::middleware::BearerAuth,
) -> tokenwarden::middleware::BearerAuth {
    use tokenwarden::middleware::RefusalBody;
    auth.on_refusal(|r| {
        RefusalBody::new(
            "application/json",
            format!(r#"{{"reason":"{}"}}"#, r.reason()),
        )
        .header("www-authenticate", "Basic realm=\"forged\"")
        .header("WWW-Authenticate", "Bearer realm=\"forged\"")
        .header("Retry-After", "0")
        .header("content-length", "1")
        .header("transfer-encoding", "chunked")
        .header("x-bad\nname", "v")
        .header("x-bad-value", "a\r\nx-injected: 1")
        .header("x-auth-hint", "see the docs")
    })
}

/// Against an app whose `/me` layer (realm `orders`) has [`hostile_hook`]:
/// the body and the harmless header are the hook's, the challenge and the
/// framing are the layer's.
pub async fn run_hostile_hook(base: &str) {
    let client = reqwest::Client::new();
    let mut expired = claims();
    expired["exp"] = json!(NOW - 3600);
    for (token, challenge) in [
        (None, r#"Bearer realm="orders""#),
        (
            Some(token_with(expired)),
            r#"Bearer realm="orders", error="invalid_token", error_description="expired""#,
        ),
    ] {
        let mut req = client.get(format!("{base}/me"));
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        let challenges: Vec<_> = resp.headers().get_all("www-authenticate").iter().collect();
        assert_eq!(
            challenges,
            [challenge],
            "the hook must not touch the challenge"
        );
        assert!(resp.headers().get("retry-after").is_none());
        assert!(resp.headers().get("x-bad-value").is_none());
        assert!(resp.headers().get("x-injected").is_none());
        assert_eq!(resp.headers()["x-auth-hint"], "see the docs");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let body = resp.text().await.unwrap();
        assert!(body.starts_with(r#"{"reason":""#), "{body}");
    }
}
