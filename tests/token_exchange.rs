//! Delegation (RFC 8693): the `act` chain read into the `Principal`, the
//! delegation limits of `Requirements`, and token exchange end to end with
//! the test issuer and real loopback services.
#![cfg(all(feature = "axum", feature = "testing", feature = "remote"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{claims, key, validator};
use serde_json::{Value, json};
use tokenwarden::authn::jwt::JwtAuthenticator;
use tokenwarden::authn::{Chain, MAX_DELEGATION_DEPTH, Principal, Refusal, RequestView};
use tokenwarden::{Algorithm, Requirements};

fn token(extra: Value) -> String {
    let mut c = claims();
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    key(Algorithm::ES256).token(&c)
}

fn chain(requirements: Requirements) -> Chain {
    Chain::new()
        .jwt(JwtAuthenticator::new(validator(&[key(Algorithm::ES256)])))
        .require(requirements)
}

async fn judge(chain: &Chain, token: &str) -> Result<Principal, Refusal> {
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str())];
    chain
        .authenticate(&RequestView::new("GET", "/orders", &headers))
        .await
}

/// `act` nested `depth` times: `svc-{depth-1}` acts now, `svc-0` first.
fn act_chain(depth: usize) -> Value {
    let mut act = json!({"sub": "svc-0"});
    for i in 1..depth {
        act = json!({"sub": format!("svc-{i}"), "act": act});
    }
    act
}

#[tokio::test]
async fn the_act_chain_is_read_into_the_principal_current_actor_first() {
    let t =
        token(json!({"act": {"sub": "svc-b", "iss": "https://idp.test", "act": {"sub": "svc-a"}}}));
    let p = judge(&chain(Requirements::new()), &t)
        .await
        .expect("accepted");
    let actors = p.actors().expect("well formed");
    let subs: Vec<&str> = actors.iter().map(|a| a.subject()).collect();
    assert_eq!(subs, ["svc-b", "svc-a"]);
    assert_eq!(actors[0].issuer(), Some("https://idp.test"));
    assert_eq!(actors[1].issuer(), None);
    assert_eq!(p.delegation_depth(), Ok(2));
    assert_eq!(p.subject(), "alice");
}

#[tokio::test]
async fn a_token_without_act_has_depth_zero_and_may_act_is_exposed() {
    let t = token(json!({"may_act": {"sub": "svc-a"}}));
    let p = judge(&chain(Requirements::new()), &t)
        .await
        .expect("accepted");
    assert_eq!(p.delegation_depth(), Ok(0));
    assert!(p.actors().expect("none").is_empty());
    assert_eq!(p.may_act(), Some(&json!({"sub": "svc-a"})));
    assert!(tokenwarden::authn::may_act_allows(
        p.may_act().unwrap(),
        "svc-a",
        None
    ));
}

/// Attack: a chain a handler cannot read is refused by the chain itself,
/// with no requirement asking.
#[tokio::test]
async fn a_malformed_act_is_refused_401_invalid_act() {
    let c = chain(Requirements::new());
    for act in [
        json!("svc-a"),
        json!({"iss": "https://idp.test"}),
        json!({"sub": 7}),
        json!({"sub": "svc-b", "act": ["svc-a"]}),
        json!({"sub": "svc-b", "iss": {"x": 1}}),
    ] {
        let r = judge(&c, &token(json!({"act": act}))).await.unwrap_err();
        assert_eq!((r.status(), r.kind()), (401, "invalid_act"), "{act}");
    }
}

/// Attack: a token nesting `act` past the limit (up to as deep as the
/// token's JSON may nest) is refused after MAX_DELEGATION_DEPTH steps, no
/// recursion, no panic; deeper JSON never parses.
#[tokio::test]
async fn act_nested_past_the_limit_is_refused_without_recursion() {
    let c = chain(Requirements::new());
    let ok = judge(&c, &token(json!({"act": act_chain(MAX_DELEGATION_DEPTH)}))).await;
    assert_eq!(
        ok.expect("at the limit").delegation_depth(),
        Ok(MAX_DELEGATION_DEPTH)
    );
    for depth in [MAX_DELEGATION_DEPTH + 1, 30] {
        let r = judge(&c, &token(json!({"act": act_chain(depth)})))
            .await
            .unwrap_err();
        assert_eq!(
            (r.status(), r.kind()),
            (401, "invalid_act"),
            "depth {depth}"
        );
    }
    // The token's JSON nests at most 32 deep: deeper is malformed before
    // any claim is read.
    let r = judge(&c, &token(json!({"act": act_chain(120)})))
        .await
        .unwrap_err();
    assert_eq!((r.status(), r.kind()), (401, "malformed"));
}

/// Attack: a two-hop chain where one hop is the route's limit.
#[tokio::test]
async fn max_delegation_depth_refuses_a_longer_chain_403() {
    let c = chain(Requirements::new().max_delegation_depth(1));
    assert!(
        judge(&c, &token(json!({"act": act_chain(1)})))
            .await
            .is_ok()
    );
    assert!(
        judge(&c, &token(json!({}))).await.is_ok(),
        "no act: depth 0"
    );
    let r = judge(&c, &token(json!({"act": act_chain(2)})))
        .await
        .unwrap_err();
    assert_eq!(
        (r.status(), r.error(), r.kind()),
        (403, Some("insufficient_scope"), "delegation_refused")
    );
    assert_eq!(r.description(), "delegation depth 2 exceeds the limit of 1");
    let none = chain(Requirements::new().max_delegation_depth(0));
    assert_eq!(
        judge(&none, &token(json!({"act": act_chain(1)})))
            .await
            .unwrap_err()
            .kind(),
        "delegation_refused"
    );
}

/// Attack: an actor the route does not know acts for the user.
#[tokio::test]
async fn allowed_actors_refuse_an_unknown_current_actor_403() {
    let c = chain(Requirements::new().allowed_actors(["orders-svc"]));
    assert!(
        judge(&c, &token(json!({"act": {"sub": "orders-svc"}})))
            .await
            .is_ok()
    );
    assert!(judge(&c, &token(json!({}))).await.is_ok(), "not delegated");
    let r = judge(&c, &token(json!({"act": {"sub": "mallory-svc\"\r\n"}})))
        .await
        .unwrap_err();
    assert_eq!((r.status(), r.kind()), (403, "delegation_refused"));
    assert_eq!(r.description(), "actor mallory-svc is not allowed");
}

/// RFC 8693 §4.1: only the current actor is input to access control; an
/// allowed actor deeper in the chain does not let another one act now.
#[tokio::test]
async fn only_the_current_actor_counts_for_allowed_actors() {
    let c = chain(Requirements::new().allowed_actors(["orders-svc"]));
    let t = token(json!({"act": {"sub": "mallory-svc", "act": {"sub": "orders-svc"}}}));
    assert_eq!(
        judge(&c, &t).await.unwrap_err().kind(),
        "delegation_refused"
    );
    let t = token(json!({"act": {"sub": "orders-svc", "act": {"sub": "anyone"}}}));
    assert!(judge(&c, &t).await.is_ok());
}

#[tokio::test]
async fn an_allowed_actor_with_an_issuer_must_name_it() {
    let c = chain(Requirements::new().allowed_actor_from("orders-svc", "https://idp.test"));
    let good = token(json!({"act": {"sub": "orders-svc", "iss": "https://idp.test"}}));
    assert!(judge(&c, &good).await.is_ok());
    for act in [
        json!({"sub": "orders-svc"}),
        json!({"sub": "orders-svc", "iss": "https://evil.test"}),
    ] {
        assert_eq!(
            judge(&c, &token(json!({"act": act})))
                .await
                .unwrap_err()
                .kind(),
            "delegation_refused"
        );
    }
}

// ---------------------------------------------------------------------
// Token exchange end to end: the test issuer, service A (axum behind the
// chain layer) calling service B (axum behind the chain layer) through the
// outgoing tower layer, all on 127.0.0.1.
// ---------------------------------------------------------------------

mod e2e {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;
    use serde_json::{Value, json};
    use tokenwarden::authn::jwt::JwtAuthenticator;
    use tokenwarden::authn::{Chain, Principal};
    use tokenwarden::logout::BackchannelLogout;
    use tokenwarden::middleware::BearerAuth;
    use tokenwarden::outgoing::{
        BearerLayer, ClientAuth, SubjectToken, TokenErrorKind, TokenRequest, TokenSource,
    };
    use tokenwarden::state::denylist::Denylist;
    use tokenwarden::testing::{LogoutTarget, TestIssuer};
    use tokenwarden::{KeySet, ManualClock, Requirements, Validator};
    use tower::ServiceExt;

    const T0: i64 = 1_800_000_000;

    struct World {
        clock: ManualClock,
        idp: TestIssuer,
    }

    /// An issuer on a manual clock with three clients: `svc-a` and `svc-b`
    /// (the services) and `svc-x` (one no route allows).
    fn world() -> World {
        let clock = ManualClock::new(T0);
        let idp = TestIssuer::builder()
            .clock(clock.clone())
            .client("svc-a", "secret-a", "svc-a", &["ping"])
            .client("svc-b", "secret-b", "svc-b", &["ping"])
            .client("svc-x", "secret-x", "svc-x", &["ping"])
            .start()
            .expect("issuer");
        World { clock, idp }
    }

    impl World {
        fn source(&self, id: &str, secret: &str) -> TokenSource {
            TokenSource::builder(self.idp.token_url())
                .client(id, secret)
                .allow_http_loopback(true)
                .clock(self.clock.clone())
                .build()
                .expect("source")
        }

        /// Alice's token for service A (and `svc-x`, so it may try).
        fn user_token(&self, extra: Value) -> String {
            let mut mint = self
                .idp
                .token()
                .subject("alice")
                .claim("aud", json!(["svc-a", "svc-x"]))
                .scope("orders:read orders:write");
            for (k, v) in extra.as_object().expect("object") {
                mint = mint.claim(k, v.clone());
            }
            mint.sign()
        }

        /// A chain for a service whose audience is `aud`.
        fn chain(&self, aud: &str, requirements: Requirements) -> Chain {
            let keys = KeySet::from_jwks(self.idp.jwks_json().as_bytes()).expect("keys");
            let validator = Validator::builder()
                .issuer(self.idp.issuer())
                .audience(aud)
                .keys(keys)
                .clock(self.clock.clone())
                .build()
                .expect("validator");
            Chain::new()
                .jwt(JwtAuthenticator::new(validator))
                .require(requirements)
        }
    }

    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}")
    }

    /// What a downstream service saw: subject, actors, scopes.
    async fn whoami(State(hits): State<Arc<AtomicUsize>>, p: Principal) -> String {
        hits.fetch_add(1, Ordering::SeqCst);
        let actors: Vec<String> = p
            .actors()
            .expect("checked by the chain")
            .iter()
            .map(|a| a.subject().to_owned())
            .collect();
        json!({
            "sub": p.subject(),
            "actors": actors,
            "scopes": p.scopes().into_iter().collect::<Vec<_>>(),
        })
        .to_string()
    }

    /// A downstream service behind the chain layer; counts what reaches it.
    async fn downstream(chain: Chain) -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let router = Router::new()
            .route(
                "/whoami",
                get(whoami).route_layer(BearerAuth::from_chain(chain).realm("b").layer()),
            )
            .with_state(hits.clone());
        (serve(router).await, hits)
    }

    type Outgoing = tower::util::BoxCloneSyncService<
        axum::http::Request<String>,
        axum::http::Response<String>,
        tokenwarden::outgoing::BoxError,
    >;

    /// Service A's client for B: each call exchanges the caller's token for
    /// one for `svc-b` with `orders:read` only; reqwest underneath.
    fn client_for_b(source: TokenSource) -> Outgoing {
        let layer = BearerLayer::exchange(
            source,
            TokenRequest::new().audience("svc-b").scope("orders:read"),
        );
        let client = reqwest::Client::new();
        let send = tower::service_fn(move |req: axum::http::Request<String>| {
            let client = client.clone();
            async move {
                let req = reqwest::Request::try_from(req)?;
                let resp = client.execute(req).await?;
                let status = resp.status();
                let body = resp.text().await?;
                let mut out = axum::http::Response::new(body);
                *out.status_mut() = status;
                Ok::<_, tokenwarden::outgoing::BoxError>(out)
            }
        });
        tower::util::BoxCloneSyncService::new(
            tower::ServiceBuilder::new().layer(layer).service(send),
        )
    }

    #[derive(Clone)]
    struct A {
        b: String,
        client: Outgoing,
    }

    /// Service A: receives the user's token and calls B on its behalf,
    /// forwarding the user's `Authorization` too (the layer must replace it).
    async fn orders(State(a): State<A>, headers: HeaderMap) -> (StatusCode, String) {
        let incoming = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .expect("the layer let a bearer token in")
            .to_owned();
        let mut call = axum::http::Request::builder()
            .uri(format!("{}/whoami", a.b))
            .header("authorization", format!("Bearer {incoming}"))
            .body(String::new())
            .unwrap();
        call.extensions_mut().insert(SubjectToken::new(incoming));
        match a.client.clone().oneshot(call).await {
            Ok(resp) => (resp.status(), resp.into_body()),
            Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()),
        }
    }

    async fn service_a(w: &World, b: &str) -> String {
        let a = A {
            b: b.to_owned(),
            client: client_for_b(w.source("svc-a", "secret-a")),
        };
        let layer = BearerAuth::from_chain(w.chain("svc-a", Requirements::new())).layer();
        serve(
            Router::new()
                .route("/orders", get(orders).route_layer(layer))
                .with_state(a),
        )
        .await
    }

    async fn get_with(url: &str, token: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_calls_b_with_an_exchanged_downscoped_token_and_b_sees_the_act_chain() {
        let w = world();
        let b_requires = Requirements::new()
            .max_delegation_depth(1)
            .allowed_actors(["svc-a"]);
        let (b, b_hits) = downstream(w.chain("svc-b", b_requires)).await;
        let a = service_a(&w, &b).await;
        let resp = get_with(&format!("{a}/orders"), &w.user_token(json!({}))).await;
        assert_eq!(resp.status(), 200);
        let seen: Value = resp.json().await.unwrap();
        assert_eq!(
            seen,
            json!({"sub": "alice", "actors": ["svc-a"], "scopes": ["orders:read"]})
        );
        assert_eq!(b_hits.load(Ordering::SeqCst), 1);
    }

    /// Attack: the user's session is logged out; the token A exchanged
    /// for it carries the session (`sid`), so B refuses it too instead of
    /// honouring it until its `exp`.
    #[tokio::test]
    async fn a_session_logout_reaches_the_token_exchanged_for_it() {
        let w = world();
        let denylist = Denylist::builder().clock(w.clock.clone()).build().unwrap();
        let keys = || KeySet::from_jwks(w.idp.jwks_json().as_bytes()).expect("keys");
        let b = Validator::builder()
            .issuer(w.idp.issuer())
            .audience("svc-b")
            .keys(keys())
            .clock(w.clock.clone())
            .denylist(denylist.clone())
            .build()
            .unwrap();
        let receiver = BackchannelLogout::builder()
            .issuer(w.idp.issuer())
            .client_id("svc-a")
            .keys(keys())
            .denylist(denylist)
            .clock(w.clock.clone())
            .build()
            .unwrap();
        let user = w.user_token(json!({"sid": "s-1"}));
        let exchanged = w
            .source("svc-a", "secret-a")
            .token(&TokenRequest::exchange(&user).audience("svc-b"))
            .await
            .unwrap();
        let seen = b.validate::<Value>(exchanged.secret()).expect("passes");
        assert_eq!(seen.claims["sid"], "s-1");
        let logout = w
            .idp
            .logout_token("svc-a", LogoutTarget::Session("s-1"))
            .sign();
        receiver.receive(&logout).await.unwrap();
        let err = b.validate::<Value>(exchanged.secret()).unwrap_err();
        assert_eq!(err.kind().as_str(), "revoked");
    }

    /// Attack: B's depth limit holds against a token exchanged twice (A for
    /// B, then B for B again: `act` = {svc-b, act: {svc-a}}).
    #[tokio::test]
    async fn a_two_hop_chain_is_refused_where_the_depth_limit_is_one() {
        let w = world();
        let limit = |n| Requirements::new().max_delegation_depth(n);
        let (strict, strict_hits) = downstream(w.chain("svc-b", limit(1))).await;
        let (lenient, _) = downstream(w.chain("svc-b", limit(2))).await;
        let a = w.source("svc-a", "secret-a");
        let b = w.source("svc-b", "secret-b");
        let user = w.user_token(json!({}));
        let for_b = a
            .token(&TokenRequest::exchange(&user).audience("svc-b"))
            .await
            .unwrap();
        let two_hops = b
            .token(
                &TokenRequest::exchange(for_b.secret())
                    .audience("svc-b")
                    .scope("orders:read"),
            )
            .await
            .unwrap();
        let resp = get_with(&format!("{strict}/whoami"), two_hops.secret()).await;
        assert_eq!(resp.status(), 403);
        assert_eq!(
            resp.headers()["www-authenticate"],
            r#"Bearer realm="b", error="insufficient_scope", error_description="delegation depth 2 exceeds the limit of 1""#
        );
        assert_eq!(strict_hits.load(Ordering::SeqCst), 0);
        let seen: Value = get_with(&format!("{lenient}/whoami"), two_hops.secret())
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(seen["actors"], json!(["svc-b", "svc-a"]));
        assert_eq!(seen["sub"], "alice");
    }

    /// Attack: a client the route does not allow exchanges a token it
    /// legitimately holds and calls B.
    #[tokio::test]
    async fn an_actor_b_does_not_allow_is_refused() {
        let w = world();
        let (b, hits) =
            downstream(w.chain("svc-b", Requirements::new().allowed_actors(["svc-a"]))).await;
        let x = w.source("svc-x", "secret-x");
        let t = x
            .token(&TokenRequest::exchange(w.user_token(json!({}))).audience("svc-b"))
            .await
            .unwrap();
        let resp = get_with(&format!("{b}/whoami"), t.secret()).await;
        assert_eq!(resp.status(), 403);
        assert!(
            resp.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("actor svc-x is not allowed")
        );
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }

    /// Attack: asking the issuer for more than the subject token grants.
    #[tokio::test]
    async fn scope_escalation_is_refused_by_the_issuer() {
        let w = world();
        let a = w.source("svc-a", "secret-a");
        let user = w
            .idp
            .token()
            .subject("alice")
            .audience("svc-a")
            .scope("orders:read")
            .sign();
        let e = a
            .token(
                &TokenRequest::exchange(&user)
                    .audience("svc-b")
                    .scope("orders:read orders:write"),
            )
            .await
            .unwrap_err();
        assert_eq!(
            (e.kind(), e.oauth_error(), e.status()),
            (TokenErrorKind::Refused, Some("invalid_scope"), Some(400))
        );
        assert!(e.is_permanent());
        let ok = a
            .token(
                &TokenRequest::exchange(&user)
                    .audience("svc-b")
                    .scope("orders:read"),
            )
            .await;
        assert_eq!(ok.expect("a subset").scope(), Some("orders:read"));
    }

    /// Attack: RFC 8693 §4.4 — the user's token names who may act for it.
    #[tokio::test]
    async fn may_act_lets_only_the_named_party_exchange() {
        let w = world();
        let user = w.user_token(json!({"may_act": {"sub": "svc-a"}}));
        let x = w.source("svc-x", "secret-x");
        let e = x
            .token(&TokenRequest::exchange(&user).audience("svc-b"))
            .await
            .unwrap_err();
        assert_eq!(e.oauth_error(), Some("invalid_request"));
        assert!(e.to_string().contains("may_act"), "{e}");
        let a = w.source("svc-a", "secret-a");
        assert!(
            a.token(&TokenRequest::exchange(&user).audience("svc-b"))
                .await
                .is_ok()
        );
    }

    /// Attack: a service exchanges a token that was never meant for it.
    #[tokio::test]
    async fn a_subject_token_for_another_audience_is_not_exchanged() {
        let w = world();
        let for_b_only = w
            .idp
            .token()
            .subject("alice")
            .audience("svc-b")
            .scope("orders:read")
            .sign();
        let a = w.source("svc-a", "secret-a");
        let e = a
            .token(&TokenRequest::exchange(&for_b_only).audience("svc-b"))
            .await
            .unwrap_err();
        assert_eq!(e.oauth_error(), Some("invalid_request"));
        let forged = w.user_token(json!({})).replace('.', ".x");
        let e = a
            .token(&TokenRequest::exchange(&forged).audience("svc-b"))
            .await
            .unwrap_err();
        assert_eq!(e.oauth_error(), Some("invalid_request"));
    }

    /// Attack: an exchange layer given a request with no subject token does
    /// not fall back to the service's own identity: nothing is sent.
    #[tokio::test]
    async fn an_exchange_layer_without_a_subject_token_sends_nothing() {
        let w = world();
        let (b, hits) = downstream(w.chain("svc-b", Requirements::new())).await;
        let call = axum::http::Request::builder()
            .uri(format!("{b}/whoami"))
            .body(String::new())
            .unwrap();
        let e = client_for_b(w.source("svc-a", "secret-a"))
            .oneshot(call)
            .await
            .unwrap_err();
        let e = e
            .downcast::<tokenwarden::outgoing::TokenError>()
            .expect("a token error");
        assert_eq!(e.kind(), TokenErrorKind::NoSubjectToken);
        assert_eq!(w.idp.stats().token, 0);
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }

    /// Refresh ahead: past 80% of its life the cached token is still handed
    /// out while one request fetches the next in the background; near
    /// expiry callers wait for a new one. The clock is injected: no sleeps.
    #[tokio::test]
    async fn tokens_are_refreshed_ahead_of_expiry_in_the_background() {
        let w = world();
        let a = w.source("svc-a", "secret-a");
        let want = TokenRequest::new().audience("svc-a").scope("ping");
        let first = a.token(&want).await.unwrap();
        assert_eq!(first.expires_at(), T0 + 300);
        w.clock.advance(200); // 67%: cached
        assert_eq!(a.token(&want).await.unwrap(), first);
        assert_eq!(a.stats().requests, 1);
        w.clock.advance(45); // 82%: cached, and the refresh starts
        assert_eq!(a.token(&want).await.unwrap(), first);
        let next = a.refresh(&want).await.unwrap(); // joins the one in flight
        assert_ne!(next, first);
        assert_eq!(next.expires_at(), T0 + 245 + 300);
        assert_eq!(a.stats().requests, 2, "one background request");
        assert_eq!(w.idp.stats().token, 2);
        assert_eq!(a.token(&want).await.unwrap(), next);
        // Near expiry (within the margin) the cached token is not handed out.
        w.clock.advance(300 - 5);
        let third = a.token(&want).await.unwrap();
        assert_ne!(third, next);
        assert_eq!(a.stats().requests, 3);
    }

    /// A herd of concurrent callers for one key makes one request.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_herd_of_concurrent_exchanges_makes_one_request() {
        let w = world();
        let a = w.source("svc-a", "secret-a");
        let want = TokenRequest::exchange(w.user_token(json!({})))
            .audience("svc-b")
            .scope("orders:read");
        let barrier = Arc::new(tokio::sync::Barrier::new(64));
        let calls: Vec<_> = (0..64)
            .map(|_| {
                let (a, want, barrier) = (a.clone(), want.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    a.token(&want).await
                })
            })
            .collect();
        let mut tokens = Vec::new();
        for c in calls {
            tokens.push(c.await.unwrap().unwrap());
        }
        assert!(tokens.iter().all(|t| *t == tokens[0]));
        assert_eq!(a.stats().requests, 1);
        assert_eq!(w.idp.stats().token, 1);
    }

    /// Cached per subject, audience and scope: a different user, audience
    /// or scope is another request; the same scopes in another order are not.
    #[tokio::test]
    async fn tokens_are_cached_per_subject_audience_and_scope() {
        let w = world();
        let a = w.source("svc-a", "secret-a");
        let alice = w.user_token(json!({}));
        let bob = w
            .idp
            .token()
            .subject("bob")
            .audience("svc-a")
            .scope("orders:read orders:write")
            .sign();
        let ask =
            |t: &str, aud: &str, scope: &str| TokenRequest::exchange(t).audience(aud).scope(scope);
        let one = a
            .token(&ask(&alice, "svc-b", "orders:read orders:write"))
            .await
            .unwrap();
        let same = a
            .token(&ask(&alice, "svc-b", "orders:write orders:read"))
            .await
            .unwrap();
        assert_eq!(one, same);
        a.token(&ask(&bob, "svc-b", "orders:read orders:write"))
            .await
            .unwrap();
        a.token(&ask(&alice, "svc-x", "orders:read orders:write"))
            .await
            .unwrap();
        a.token(&ask(&alice, "svc-b", "orders:read")).await.unwrap();
        assert_eq!(a.stats().requests, 4);
    }

    #[tokio::test]
    async fn the_cache_is_bounded() {
        let w = world();
        let a = TokenSource::builder(w.idp.token_url())
            .client("svc-a", "secret-a")
            .allow_http_loopback(true)
            .clock(w.clock.clone())
            .max_entries(2)
            .build()
            .unwrap();
        for aud in ["one", "two", "three", "four"] {
            a.token(&TokenRequest::new().audience(aud)).await.unwrap();
        }
        assert_eq!(a.stats().entries, 2);
    }

    #[tokio::test]
    async fn client_secret_post_and_basic_both_authenticate_and_a_wrong_secret_is_permanent() {
        let w = world();
        let post = TokenSource::builder(w.idp.token_url())
            .client("svc-a", "secret-a")
            .client_auth(ClientAuth::SecretPost)
            .allow_http_loopback(true)
            .build()
            .unwrap();
        assert!(post.token(&TokenRequest::new()).await.is_ok());
        assert!(
            w.source("svc-a", "secret-a")
                .token(&TokenRequest::new())
                .await
                .is_ok()
        );
        let e = w
            .source("svc-a", "wrong")
            .token(&TokenRequest::new())
            .await
            .unwrap_err();
        assert_eq!(
            (e.oauth_error(), e.status()),
            (Some("invalid_client"), Some(401))
        );
        assert!(e.is_permanent());
    }

    /// The reqwest helper replaces an `Authorization` already set.
    #[tokio::test]
    async fn the_reqwest_helper_replaces_the_authorization_header() {
        let w = world();
        let (b, _) = downstream(w.chain("svc-b", Requirements::new())).await;
        let a = w.source("svc-a", "secret-a");
        let client = reqwest::Client::new();
        let user = w.user_token(json!({}));
        let mut call = client
            .get(format!("{b}/whoami"))
            .bearer_auth(&user)
            .build()
            .unwrap();
        a.authorize(&mut call, &TokenRequest::exchange(&user).audience("svc-b"))
            .await
            .unwrap();
        assert_eq!(call.headers().get_all("authorization").iter().count(), 1);
        let seen: Value = client.execute(call).await.unwrap().json().await.unwrap();
        assert_eq!(seen["actors"], json!(["svc-a"]));
    }

    /// Tokens, subject tokens and secrets stay out of `Debug` and errors.
    #[tokio::test]
    async fn debug_output_and_errors_never_show_a_token_or_secret() {
        let w = world();
        let a = w.source("svc-a", "secret-a");
        let user = w.user_token(json!({}));
        let want = TokenRequest::exchange(&user).audience("svc-b");
        let t = a.token(&want).await.unwrap();
        let shown = format!("{a:?} {want:?} {t:?} {:?}", SubjectToken::new(user.clone()));
        for secret in [user.as_str(), t.secret(), "secret-a"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let e = a.token(&want.clone().scope("admin")).await.unwrap_err();
        assert!(!format!("{e} {e:?}").contains(&user));
    }

    /// No log line carries a token, a subject token or the secret, on
    /// success or failure (the fetch runs as a task on this thread).
    #[tokio::test]
    async fn no_log_line_carries_a_token_or_secret() {
        let logs = crate::common::LogBuffer::default();
        let _guard = crate::common::capture_logs_into(&logs);
        let w = world();
        let a = w.source("svc-a", "secret-a");
        let user = w.user_token(json!({}));
        let t = a
            .token(&TokenRequest::exchange(&user).audience("svc-b"))
            .await
            .unwrap();
        let escalate = TokenRequest::exchange(&user)
            .audience("svc-b")
            .scope("admin");
        assert!(a.token(&escalate).await.is_err());
        w.idp.set_available(false);
        let down = TokenRequest::exchange(&user).audience("svc-x");
        assert_eq!(a.token(&down).await.unwrap_err().status(), Some(503));
        let text = logs.text();
        assert!(text.contains("token request failed"), "{text}");
        for secret in [user.as_str(), t.secret(), "secret-a"] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    /// Attack: a token endpoint that redirects would have the form (secret,
    /// subject token) re-posted elsewhere; no redirect is followed.
    #[tokio::test]
    async fn a_redirecting_token_endpoint_gets_nothing_re_sent() {
        let w = world();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let elsewhere = serve(Router::new().route(
            "/token",
            axum::routing::post(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async { "{}" }
            }),
        ))
        .await;
        let to = format!("{elsewhere}/token");
        let redirecting = serve(Router::new().route(
            "/token",
            axum::routing::post(move || async move {
                (StatusCode::TEMPORARY_REDIRECT, [("location", to)], "")
            }),
        ))
        .await;
        let a = TokenSource::builder(format!("{redirecting}/token"))
            .client("svc-a", "secret-a")
            .allow_http_loopback(true)
            .build()
            .unwrap();
        let e = a
            .token(&TokenRequest::exchange(w.user_token(json!({}))).audience("svc-b"))
            .await
            .unwrap_err();
        assert_eq!((e.kind(), e.status()), (TokenErrorKind::Status, Some(307)));
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }
}
