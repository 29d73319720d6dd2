//! [`TestIssuer`] as the sender of OpenID Connect Back-Channel Logout 1.0:
//! logout tokens, and their delivery by POST to a receiver.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use serde_json::json;

use super::{TestIssuer, TokenMint};
use crate::error::BuildError;
use crate::logout::BACKCHANNEL_LOGOUT_EVENT;

/// What a logout token names (§2.4: a `sub`, a `sid`, or both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogoutTarget<'a> {
    /// One session: `sid`.
    Session(&'a str),
    /// Every session of a subject: `sub`.
    Subject(&'a str),
    /// A subject's session: both.
    SubjectSession {
        /// `sub`.
        sub: &'a str,
        /// `sid`.
        sid: &'a str,
    },
}

/// What a receiver answered to a logout token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogoutDelivery {
    /// The HTTP status.
    pub status: u16,
    /// The response body.
    pub body: String,
    /// The logout token sent (to send it again, as a replay).
    pub logout_token: String,
}

/// Longest a delivery waits for the receiver, connect to last byte.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

impl TestIssuer {
    /// Starts a logout token for `client_id` (its `aud`) naming `target`:
    /// header `typ: logout+jwt`, `iss`, `iat`, `exp`, a fresh random `jti`
    /// and the back-channel logout `events` claim filled in. Change any of
    /// it ([`TokenMint::without`], [`TokenMint::claim`]) to test a
    /// receiver's refusals.
    pub fn logout_token(&self, client_id: &str, target: LogoutTarget<'_>) -> TokenMint<'_> {
        let mut jti = [0u8; 16];
        // The system generator does not fail in practice; a zero jti would
        // only make the test see a replay.
        let _ = SystemRandom::new().fill(&mut jti);
        let jti: String = jti.iter().map(|b| format!("{b:02x}")).collect();
        let mint = self
            .token()
            .header(json!({
                "alg": self.algorithm().as_str(),
                "kid": self.current_kid(),
                "typ": "logout+jwt",
            }))
            .audience(client_id)
            .claim("jti", jti)
            .claim("events", json!({ BACKCHANNEL_LOGOUT_EVENT: {} }));
        match target {
            LogoutTarget::Session(sid) => mint.claim("sid", sid),
            LogoutTarget::Subject(sub) => mint.subject(sub),
            LogoutTarget::SubjectSession { sub, sid } => mint.subject(sub).claim("sid", sid),
        }
    }

    /// Signs a logout token for `client_id` naming `target` and POSTs it
    /// to the receiver at `url` (`http://` only: a loopback test server),
    /// as an identity provider does (§2.5).
    ///
    /// # Errors
    /// When the receiver cannot be reached or answers no HTTP response.
    pub async fn backchannel_logout(
        &self,
        url: &str,
        client_id: &str,
        target: LogoutTarget<'_>,
    ) -> Result<LogoutDelivery, BuildError> {
        let token = self.logout_token(client_id, target).sign();
        TestIssuer::post_logout_token(url, &token).await
    }

    /// POSTs `logout_token` (any text: a crafted or replayed token) as the
    /// form of a back-channel logout request to `url`.
    ///
    /// # Errors
    /// As [`backchannel_logout`](Self::backchannel_logout).
    pub async fn post_logout_token(
        url: &str,
        logout_token: &str,
    ) -> Result<LogoutDelivery, BuildError> {
        let url = url::Url::parse(url).map_err(|e| BuildError::new(format!("bad url: {e}")))?;
        if url.scheme() != "http" {
            return Err(BuildError::new("only http:// receivers"));
        }
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("logout_token", logout_token)
            .finish();
        let token = logout_token.to_owned();
        tokio::task::spawn_blocking(move || post_form(&url, &body))
            .await
            .map_err(|e| BuildError::new(format!("delivery task failed: {e}")))?
            .map(|(status, body)| LogoutDelivery {
                status,
                body,
                logout_token: token,
            })
    }
}

/// One HTTP/1.1 POST of a form, on a connection of its own.
fn post_form(url: &url::Url, body: &str) -> Result<(u16, String), BuildError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| BuildError::new(format!("{what}: {e}"));
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port_or_known_default().unwrap_or(80);
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| fail("resolve", &e))?
        .next()
        .ok_or_else(|| BuildError::new("no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, DELIVERY_TIMEOUT).map_err(|e| fail("connect", &e))?;
    let _ = stream.set_read_timeout(Some(DELIVERY_TIMEOUT));
    let _ = stream.set_write_timeout(Some(DELIVERY_TIMEOUT));
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| fail("send", &e))?;
    let mut answer = Vec::new();
    stream
        .take(1024 * 1024)
        .read_to_end(&mut answer)
        .map_err(|e| fail("receive", &e))?;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| BuildError::new("no HTTP status line in the answer"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
