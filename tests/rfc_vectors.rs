//! Published examples verify: RFC 7515 Appendix A.1-A.3, RFC 8037 A.4,
//! RFC 7515 A.4 and RFC 7520 §4.1-§4.4 (ES512 with aws-lc-rs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use tokenwarden::{Algorithm, FixedClock, KeySet, Validator};

/// RFC 7515 A.1-A.3 claims: {"iss":"joe","exp":1300819380,"http://example.com/is_root":true}
const BEFORE_EXP: i64 = 1_300_819_000;

fn rfc7515_validator(jwks: &str) -> Validator {
    Validator::builder()
        .issuer("joe")
        .danger_accept_any_audience()
        .keys(KeySet::from_jwks(jwks.as_bytes()).unwrap())
        .clock(FixedClock(BEFORE_EXP))
        .build()
        .unwrap()
}

const RFC7515_A1_HS256: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const RFC7515_A1_KEY: &str = r#"{"keys":[{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]}"#;

const RFC7515_A2_RS256: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
const RFC7515_A2_KEY: &str = r#"{"keys":[{"kty":"RSA","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ","e":"AQAB"}]}"#;

const RFC7515_A3_ES256: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
const RFC7515_A3_KEY: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

const RFC8037_A4_EDDSA: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
const RFC8037_A4_KEY: &str =
    r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

const RFC7520_PAYLOAD: &str = "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4";
const RFC7520_RSA_KEY: &str = r#"{"keys":[{"kty":"RSA","kid":"bilbo.baggins@hobbiton.example","use":"sig","n":"n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw","e":"AQAB"}]}"#;
const RFC7520_HMAC_KEY: &str = r#"{"keys":[{"kty":"oct","kid":"018c0ae5-4d9b-471b-bfd6-eef314bc7037","use":"sig","alg":"HS256","k":"hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg"}]}"#;
const RFC7520_4_1_HEADER: &str =
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9";
const RFC7520_4_1_SIG: &str = "MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg";
const RFC7520_4_2_HEADER: &str =
    "eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9";
const RFC7520_4_2_SIG: &str = "cu22eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2IpN6-tPid6VrklHkqsGqDqHCdP6O8TTB5dDDItllVo6_1OLPpcbUrhiUSMxbbXUvdvWXzg-UD8biiReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRXe8P_ijQ7p8Vdz0TTrxUeT3lm8d9shnr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT0qI0n6uiP1aCN_2_jLAeQTlqRHtfa64QQSUmFAAjVKPbByi7xho0uTOcbH510a6GYmJUAfmWjwZ6oD4ifKo8DYM-X72Eaw";
const RFC7520_4_3_HEADER: &str =
    "eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9";
const RFC7520_4_3_SIG: &str = "AE_R_YZCChjn4791jSQCrdPZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvbu9Plon7KRTzoNEuT4Va2cmL1eJAQy3mtPBu_u_sDDyYjnAMDxXPn7XrT0lw-kvAD890jl8e2puQens_IEKBpHABlsbEPX6sFY8OcGDqoRuBomu9xQ2";
const RFC7520_4_4_HEADER: &str =
    "eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMxNGJjNzAzNyJ9";
const RFC7520_4_4_SIG: &str = "s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0";

fn rfc7520(header: &str, sig: &str) -> String {
    format!("{header}.{RFC7520_PAYLOAD}.{sig}")
}

const FRODO: &str = "It’s a dangerous business, Frodo, going out your door. You step onto the road, and if you don't keep your feet, there’s no knowing where you might be swept off to.";

#[test]
fn rfc7515_a1_hs256_validates() {
    let v = rfc7515_validator(RFC7515_A1_KEY);
    let ok = v.validate_json(RFC7515_A1_HS256).unwrap();
    assert_eq!(ok.header.alg(), Algorithm::HS256);
    assert_eq!(ok.claims["http://example.com/is_root"], true);
}

#[test]
fn rfc7515_a2_rs256_validates() {
    let ok = rfc7515_validator(RFC7515_A2_KEY)
        .validate_json(RFC7515_A2_RS256)
        .unwrap();
    assert_eq!(ok.header.alg(), Algorithm::RS256);
}

#[test]
fn rfc7515_a3_es256_validates() {
    let ok = rfc7515_validator(RFC7515_A3_KEY)
        .validate_json(RFC7515_A3_ES256)
        .unwrap();
    assert_eq!(ok.header.alg(), Algorithm::ES256);
}

#[test]
fn rfc7515_examples_expire_at_their_exp() {
    let v = Validator::builder()
        .issuer("joe")
        .danger_accept_any_audience()
        .leeway(std::time::Duration::ZERO)
        .keys(KeySet::from_jwks(RFC7515_A3_KEY.as_bytes()).unwrap())
        .clock(FixedClock(1_300_819_380))
        .build()
        .unwrap();
    assert_eq!(
        v.validate_json(RFC7515_A3_ES256)
            .unwrap_err()
            .kind()
            .as_str(),
        "expired"
    );
}

#[test]
fn rfc8037_a4_ed25519_verifies() {
    let keys = KeySet::from_jwks(RFC8037_A4_KEY.as_bytes()).unwrap();
    let jws = keys.verify_jws(RFC8037_A4_EDDSA).unwrap();
    assert_eq!(jws.payload, b"Example of Ed25519 signing");
    assert_eq!(jws.header.alg(), Algorithm::EdDSA);
}

#[test]
fn rfc7520_4_1_rs256_verifies() {
    let keys = KeySet::from_jwks(RFC7520_RSA_KEY.as_bytes()).unwrap();
    let jws = keys
        .verify_jws(&rfc7520(RFC7520_4_1_HEADER, RFC7520_4_1_SIG))
        .unwrap();
    assert_eq!(jws.payload, FRODO.as_bytes());
    assert_eq!(jws.header.kid(), Some("bilbo.baggins@hobbiton.example"));
}

#[test]
fn rfc7520_4_2_ps384_verifies() {
    let keys = KeySet::from_jwks(RFC7520_RSA_KEY.as_bytes()).unwrap();
    let jws = keys
        .verify_jws(&rfc7520(RFC7520_4_2_HEADER, RFC7520_4_2_SIG))
        .unwrap();
    assert_eq!(jws.header.alg(), Algorithm::PS384);
}

/// RFC 7520 §3.2 (Figure 3): the P-521 public key used by §4.3.
const RFC7520_EC_KEY: &str = r#"{"keys":[{"kty":"EC","kid":"bilbo.baggins@hobbiton.example","use":"sig","crv":"P-521","x":"AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt","y":"AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1"}]}"#;

/// RFC 7515 A.4: ES512 over the payload "Payload".
const RFC7515_A4_ES512: &str = "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA.AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn";
const RFC7515_A4_KEY: &str = r#"{"keys":[{"kty":"EC","crv":"P-521","x":"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk","y":"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2"}]}"#;

/// ES512 verifies with aws-lc-rs. ring does not implement P-521: with ring
/// as the only backend the key is skipped with that reason instead.
#[cfg(feature = "aws-lc-rs")]
#[test]
fn rfc7520_4_3_es512_verifies() {
    let keys = KeySet::from_jwks(RFC7520_EC_KEY.as_bytes()).unwrap();
    let jws = keys
        .verify_jws(&rfc7520(RFC7520_4_3_HEADER, RFC7520_4_3_SIG))
        .unwrap();
    assert_eq!(jws.payload, FRODO.as_bytes());
    assert_eq!(jws.header.alg(), Algorithm::ES512);
}

#[cfg(feature = "aws-lc-rs")]
#[test]
fn rfc7515_a4_es512_verifies() {
    let keys = KeySet::from_jwks(RFC7515_A4_KEY.as_bytes()).unwrap();
    let jws = keys.verify_jws(RFC7515_A4_ES512).unwrap();
    assert_eq!(jws.payload, b"Payload");
    assert_eq!(jws.header.alg(), Algorithm::ES512);
    // One bit of the signature flipped: refused.
    let (input, sig) = RFC7515_A4_ES512.rsplit_once('.').unwrap();
    let flipped = format!(
        "{input}.{}{}",
        &sig[..10],
        if &sig[10..11] == "A" { "B" } else { "A" }
    );
    let flipped = format!("{flipped}{}", &sig[11..]);
    assert_eq!(
        keys.verify_jws(&flipped).unwrap_err().kind().as_str(),
        "invalid_signature"
    );
}

#[cfg(not(feature = "aws-lc-rs"))]
#[test]
fn es512_keys_are_skipped_with_a_reason_under_ring_alone() {
    let err = KeySet::from_jwks(RFC7520_EC_KEY.as_bytes()).unwrap_err();
    assert_eq!(err.kind().as_str(), "keys_unavailable");
    assert!(err.to_string().contains("aws-lc-rs"), "{err}");
}

#[test]
fn rfc7520_4_4_hs256_verifies() {
    let keys = KeySet::from_jwks(RFC7520_HMAC_KEY.as_bytes()).unwrap();
    let jws = keys
        .verify_jws(&rfc7520(RFC7520_4_4_HEADER, RFC7520_4_4_SIG))
        .unwrap();
    assert_eq!(jws.payload, FRODO.as_bytes());
}

#[test]
fn rfc7520_signature_over_other_payload_fails() {
    let keys = KeySet::from_jwks(RFC7520_RSA_KEY.as_bytes()).unwrap();
    // "SXTi" -> "TXTi": a different first byte, still canonical base64url.
    let forged = format!(
        "{RFC7520_4_1_HEADER}.T{}.{RFC7520_4_1_SIG}",
        &RFC7520_PAYLOAD[1..]
    );
    assert_eq!(
        keys.verify_jws(&forged).unwrap_err().kind().as_str(),
        "invalid_signature"
    );
}

/// The test kit mints ES512: a key's token and a `TestIssuer`'s token
/// validate against their published JWK Sets.
#[cfg(feature = "aws-lc-rs")]
#[test]
fn es512_tokens_from_the_test_kit_validate() {
    use tokenwarden::testing::{TestIssuer, TestKey};
    let k = TestKey::generate(Algorithm::ES512, "p521").unwrap();
    assert_eq!(k.jwk()["crv"], "P-521");
    let v = Validator::builder()
        .issuer("https://idp.test")
        .audience("api")
        .keys(KeySet::from_jwks(k.jwks_json().as_bytes()).unwrap())
        .clock(FixedClock(1_000))
        .build()
        .unwrap();
    let token =
        k.token(&serde_json::json!({"iss": "https://idp.test", "aud": "api", "exp": 2_000}));
    assert_eq!(
        v.validate_json(&token).unwrap().header.alg(),
        Algorithm::ES512
    );
    // 2 x 66 bytes, r || s (RFC 7518 §3.4).
    let sig = token.rsplit_once('.').unwrap().1;
    assert_eq!(sig.len(), 176);

    let idp = TestIssuer::builder()
        .algorithm(Algorithm::ES512)
        .start()
        .unwrap();
    let keys = KeySet::from_jwks(idp.jwks_json().as_bytes()).unwrap();
    let jws = keys
        .verify_jws(&idp.token().audience("api").sign())
        .unwrap();
    assert_eq!(jws.header.alg(), Algorithm::ES512);
}
