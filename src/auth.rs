//! API tokens: reading the `Authorization` header, verifying an HS256 JWT against a
//! rotatable set of keys, and minting the fresh token every authorized answer carries.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};

use crate::domain::Claims;

mod hs256;

/// HS256 keys must carry at least 256 bits (RFC 7518 §3.2).
pub const MIN_KEY_BYTES: usize = 32;
/// Tokens longer than this are refused unread: no real token comes close.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock skew tolerated on `exp` and `iat`, in seconds.
pub const LEEWAY_SECONDS: i64 = 30;
/// How long a chain of renewals may go on after the original issue time: a day, so
/// that a user active all day is never logged out mid-session (six 4 h renewals),
/// while a stolen token dies within a day whatever its holder does.
pub const DEFAULT_MAX_LIFETIME_SECONDS: i64 = 24 * 3600;

/// Why a request is not authenticated. For the logs only: every variant is answered
/// with the same 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no Authorization header")]
    Missing,
    #[error("Authorization header is not `Token token=\"...\"`, `Token ...` or `Bearer ...`")]
    BadScheme,
    #[error("token is not a well-formed HS256 JWT")]
    Malformed,
    #[error("token signature matches no key")]
    BadSignature,
    #[error("token claims are missing or malformed")]
    BadClaims,
    #[error("token has expired")]
    Expired,
    #[error("token was issued in the future")]
    IssuedInFuture,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    #[error("more than one Authorization header")]
    Ambiguous,
    #[error("token names a key id that is not configured")]
    UnknownKey,
}

/// Why keys could not be set up (at init).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no signing key configured")]
    None,
    #[error("signing key #{0} is shorter than {MIN_KEY_BYTES} bytes")]
    TooShort(usize),
    #[error("signing key #{0} is unusable")]
    Unusable(usize),
}

/// A signing key as configured: its secret, and the id tokens may name it by (in the
/// header's `kid`, or SharinPix-style in the `iss` claim).
#[derive(Clone)]
pub struct SigningKey {
    pub id: Option<String>,
    pub secret: SecretString,
}

impl From<SecretString> for SigningKey {
    fn from(secret: SecretString) -> Self {
        Self { id: None, secret }
    }
}

struct Key {
    id: Option<String>,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Verifies and mints tokens. Verification accepts any configured key, so a new key
/// can be added first and the old one removed after the tokens it signed expire;
/// minting always uses the first key.
pub struct Tokens {
    keys: Vec<Key>,
    validation: Validation,
    ttl_seconds: i64,
    max_lifetime_seconds: i64,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("keys", &self.keys.len())
            .field("ttl_seconds", &self.ttl_seconds)
            .finish()
    }
}

impl Tokens {
    pub fn new(secrets: &[SecretString], ttl_seconds: i64) -> Result<Self, KeyError> {
        Self::with_keys(
            secrets.iter().cloned().map(SigningKey::from).collect(),
            ttl_seconds,
        )
    }

    /// Keys in order: the first signs, any verifies (unless a token names one).
    pub fn with_keys(keys: Vec<SigningKey>, ttl_seconds: i64) -> Result<Self, KeyError> {
        hs256::install();
        if keys.is_empty() {
            return Err(KeyError::None);
        }
        let keys = keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| {
                let bytes = key.secret.expose_secret().as_bytes();
                if bytes.len() < MIN_KEY_BYTES {
                    return Err(KeyError::TooShort(i + 1));
                }
                Ok(Key {
                    id: key.id,
                    encoding: EncodingKey::from_secret(bytes)
                        .map_err(|_| KeyError::Unusable(i + 1))?,
                    decoding: DecodingKey::from_secret(bytes)
                        .map_err(|_| KeyError::Unusable(i + 1))?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The algorithm is the server's choice, never the token's; time claims are
        // checked below against an injectable clock.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        validation.validate_aud = false; // unless JWT_AUDIENCE is set
        validation.leeway = 0;
        Ok(Self {
            keys,
            validation,
            ttl_seconds,
            max_lifetime_seconds: DEFAULT_MAX_LIFETIME_SECONDS,
        })
    }

    /// Accepts only tokens whose `iss` is `issuer` (when given).
    pub fn with_issuer(mut self, issuer: Option<String>) -> Self {
        if let Some(issuer) = issuer {
            self.validation.set_issuer(&[issuer]);
            self.validation.required_spec_claims.insert("iss".into());
        }
        self
    }

    /// Accepts only tokens whose `aud` holds `audience` (when given).
    pub fn with_audience(mut self, audience: Option<String>) -> Self {
        if let Some(audience) = audience {
            self.validation.set_audience(&[audience]);
            self.validation.validate_aud = true;
            self.validation.required_spec_claims.insert("aud".into());
        }
        self
    }

    /// The keys that may verify `token`: the one its header's `kid` names (an unknown
    /// id is refused), else the one its `iss` names, else all of them (rotation).
    fn candidates(&self, token: &str, kid: Option<&str>) -> Result<Vec<&Key>, TokenError> {
        let named = |id: &str| self.keys.iter().find(|k| k.id.as_deref() == Some(id));
        if let Some(kid) = kid {
            return named(kid).map(|k| vec![k]).ok_or(TokenError::UnknownKey);
        }
        if let Some(key) = unverified_issuer(token).as_deref().and_then(named) {
            return Ok(vec![key]);
        }
        Ok(self.keys.iter().collect())
    }

    /// Caps a chain of renewals at `seconds` after the original issue time.
    pub fn with_max_lifetime(mut self, seconds: i64) -> Self {
        self.max_lifetime_seconds = seconds;
        self
    }

    /// Verifies `token` at time `now` (seconds since the epoch).
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES || token.split('.').count() != 3 {
            return Err(TokenError::Malformed);
        }
        let header = match jsonwebtoken::decode_header(token) {
            Ok(header) if header.alg == Algorithm::HS256 => header,
            _ => return Err(TokenError::Malformed),
        };
        let mut outcome = Err(TokenError::BadSignature);
        for key in self.candidates(token, header.kid.as_deref())? {
            match jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation) {
                Ok(data) => {
                    outcome = Ok(data.claims);
                    break;
                }
                Err(err) => match err.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => continue,
                    jsonwebtoken::errors::ErrorKind::Json(_)
                    | jsonwebtoken::errors::ErrorKind::InvalidClaimFormat(_)
                    | jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(_)
                    | jsonwebtoken::errors::ErrorKind::InvalidIssuer
                    | jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                        return Err(TokenError::BadClaims);
                    }
                    _ => return Err(TokenError::Malformed),
                },
            }
        }
        let claims = outcome?;
        // Checked: a crafted exp near i64::MAX must not overflow (no real token
        // expires that far out, so it is refused).
        let expires = claims
            .exp
            .checked_add(LEEWAY_SECONDS)
            .ok_or(TokenError::BadClaims)?;
        if expires <= now {
            return Err(TokenError::Expired);
        }
        let latest_start = now.saturating_add(LEEWAY_SECONDS);
        if claims.iat.is_some_and(|iat| iat > latest_start) {
            return Err(TokenError::IssuedInFuture);
        }
        if claims.nbf.is_some_and(|nbf| nbf > latest_start) {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }

    /// The `X-token` of an authorized answer: `claims` unchanged but for `iat = now`
    /// and `exp = now + TTL`, never later than the lifetime cap counted from the
    /// original issue time (`auth_time`: kept on every renewal, taken from `iat` the
    /// first time). None past the cap, and none for a token that has expired and was
    /// accepted only through the leeway: the client must sign in again.
    pub fn renew(&self, claims: &Claims, now: i64) -> Option<String> {
        if claims.exp <= now {
            return None;
        }
        let origin = claims.auth_time.or(claims.iat).unwrap_or(now).min(now);
        let cap = origin.saturating_add(self.max_lifetime_seconds);
        if now >= cap {
            return None;
        }
        let mut fresh = claims.clone();
        fresh.auth_time = Some(origin);
        fresh.iat = Some(now);
        fresh.exp = now.saturating_add(self.ttl_seconds).min(cap);
        Some(self.sign(&fresh))
    }

    /// A fresh token carrying `claims` unchanged but for `iat = now` and
    /// `exp = now + TTL`: never wider than the token it replaces.
    pub fn mint(&self, claims: &Claims, now: i64) -> String {
        let mut fresh = claims.clone();
        fresh.iat = Some(now);
        fresh.exp = now.saturating_add(self.ttl_seconds);
        self.sign(&fresh)
    }

    fn sign(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid.clone_from(&self.keys[0].id);
        jsonwebtoken::encode(&header, claims, &self.keys[0].encoding)
            .expect("HS256 signing of serializable claims cannot fail")
    }
}

/// Extracts the token from an `Authorization` header value: `Token token="<jwt>"` (the
/// seed's form), `Token token=<jwt>`, `Token <jwt>` or `Bearer <jwt>`, the scheme in
/// any case.
pub fn token_from_header(value: Option<&[u8]>) -> Result<&str, TokenError> {
    let value = value.ok_or(TokenError::Missing)?;
    let value = std::str::from_utf8(value)
        .map_err(|_| TokenError::BadScheme)?
        .trim();
    let (scheme, rest) = value.split_once(' ').ok_or(TokenError::BadScheme)?;
    let rest = rest.trim();
    let token = if scheme.eq_ignore_ascii_case("bearer") {
        rest
    } else if scheme.eq_ignore_ascii_case("token") {
        match rest.strip_prefix("token=") {
            Some(quoted)
                if quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"') =>
            {
                &quoted[1..quoted.len() - 1]
            }
            Some(bare) => bare,
            None => rest,
        }
    } else {
        return Err(TokenError::BadScheme);
    };
    let well_formed = !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if well_formed {
        Ok(token)
    } else {
        Err(TokenError::Malformed)
    }
}

/// The `iss` claim of a token not yet verified: only to choose the key to verify it
/// with, never trusted.
fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine;
    #[derive(serde::Deserialize)]
    struct Issuer {
        iss: Option<String>,
    }
    let payload = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Issuer>(&json).ok()?.iss
}

/// Reads signing keys from a secret's text: `{"keys": [...]}` while rotating, each
/// a key or `{"id": "...", "key": "..."}`; `{"key": "..."}` (what the template
/// generates); a JSON array of strings; or the key itself as plain text.
pub fn keys_from_secret_text(text: &str) -> Vec<SigningKey> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Entry {
        Plain(String),
        Named { id: String, key: String },
    }
    #[derive(serde::Deserialize)]
    struct KeyList {
        keys: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct OneKey {
        key: String,
    }
    let plain = |key: String| SigningKey::from(SecretString::from(key));
    let trimmed = text.trim();
    if let Ok(list) = serde_json::from_str::<KeyList>(trimmed) {
        return list
            .keys
            .into_iter()
            .map(|entry| match entry {
                Entry::Plain(key) => plain(key),
                Entry::Named { id, key } => SigningKey {
                    id: Some(id),
                    secret: SecretString::from(key),
                },
            })
            .collect();
    }
    if let Ok(one) = serde_json::from_str::<OneKey>(trimmed) {
        return vec![plain(one.key)];
    }
    if let Ok(list) = serde_json::from_str::<Vec<String>>(trimmed) {
        return list.into_iter().map(plain).collect();
    }
    vec![plain(trimmed.to_owned())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

    const NOW: i64 = 1_800_000_000;
    const K1: &str = "k1-0123456789abcdef0123456789abcdef";
    const K2: &str = "k2-0123456789abcdef0123456789abcdef";

    fn tokens(keys: &[&str]) -> Tokens {
        let keys: Vec<SecretString> = keys
            .iter()
            .map(|k| SecretString::from(k.to_string()))
            .collect();
        Tokens::new(&keys, 14400).unwrap()
    }

    fn claims(exp: i64) -> Claims {
        serde_json::from_value(serde_json::json!({
            "exp": exp, "iat": exp - 14400, "user_id": "dc850635-9cda-4c7c-8102-bed25f39055e",
            "abilities": {"00100000123BB121": {"Access": {"image_list": true}}}
        }))
        .unwrap()
    }

    /// Signs an arbitrary header and payload with HS256 and `key`.
    fn forge(header: &str, payload: &str, key: &str) -> String {
        let message = format!("{}.{}", B64.encode(header), B64.encode(payload));
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(message.as_bytes());
        format!("{message}.{}", B64.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn a_minted_token_verifies_and_keeps_the_claims_but_times() {
        // GIVEN a token minted from the seed's claims
        let t = tokens(&[K1]);
        let original = claims(NOW + 60);
        let token = t.mint(&original, NOW);
        // WHEN it is verified
        let verified = t.verify(&token, NOW).unwrap();
        // THEN only iat and exp changed, to now and now + TTL
        assert_eq!(verified.iat, Some(NOW));
        assert_eq!(verified.exp, NOW + 14400);
        assert_eq!(verified.user_id, original.user_id);
        assert_eq!(verified.abilities, original.abilities);
        // AND its header is the seed's
        assert!(token.starts_with("eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9."));
    }

    #[test]
    fn any_listed_key_verifies_and_the_first_signs() {
        let old = tokens(&[K2]).mint(&claims(NOW + 60), NOW);
        let rotated = tokens(&[K1, K2]);
        assert!(rotated.verify(&old, NOW).is_ok());
        let fresh = rotated.mint(&claims(NOW + 60), NOW);
        assert!(tokens(&[K1]).verify(&fresh, NOW).is_ok());
        assert_eq!(
            tokens(&[K2]).verify(&fresh, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn expired_and_future_tokens_are_refused_with_a_small_leeway() {
        let t = tokens(&[K1]);
        let token = t.mint(&claims(0), NOW - 14400);
        // exp == NOW: inside the leeway
        assert!(t.verify(&token, NOW).is_ok());
        assert_eq!(
            t.verify(&token, NOW + LEEWAY_SECONDS),
            Err(TokenError::Expired)
        );
        let future = t.mint(&claims(0), NOW + 3600);
        assert_eq!(t.verify(&future, NOW), Err(TokenError::IssuedInFuture));
    }

    #[test]
    fn forged_tampered_and_foreign_tokens_are_refused() {
        let t = tokens(&[K1]);
        let payload = serde_json::to_string(&claims(NOW + 60)).unwrap();
        let hs = r#"{"typ":"JWT","alg":"HS256"}"#;
        // alg none, with and without a signature
        let none = format!(
            "{}.{}.",
            B64.encode(r#"{"alg":"none"}"#),
            B64.encode(&payload)
        );
        assert_eq!(t.verify(&none, NOW), Err(TokenError::Malformed));
        // another algorithm, even with a valid HMAC
        let hs512 = forge(r#"{"alg":"HS512"}"#, &payload, K1);
        assert_eq!(t.verify(&hs512, NOW), Err(TokenError::Malformed));
        // a tampered payload
        let good = forge(hs, &payload, K1);
        let mut parts: Vec<&str> = good.split('.').collect();
        let wider = payload.replace("00100000123BB121", "00100000123BB122");
        let wider = B64.encode(&wider);
        parts[1] = &wider;
        assert_eq!(
            t.verify(&parts.join("."), NOW),
            Err(TokenError::BadSignature)
        );
        // the wrong key
        assert_eq!(
            t.verify(&forge(hs, &payload, K2), NOW),
            Err(TokenError::BadSignature)
        );
        // a string exp, correctly signed
        let string_exp = payload.replacen(
            &format!("\"exp\":{}", NOW + 60),
            "\"exp\":\"9999999999\"",
            1,
        );
        assert_eq!(
            t.verify(&forge(hs, &string_exp, K1), NOW),
            Err(TokenError::BadClaims)
        );
        // no exp, correctly signed
        let no_exp = r#"{"user_id":"u","abilities":{}}"#;
        assert_eq!(
            t.verify(&forge(hs, no_exp, K1), NOW),
            Err(TokenError::BadClaims)
        );
        // garbage
        for junk in ["", "a.b", "a.b.c", "....", &"a".repeat(MAX_TOKEN_BYTES + 1)] {
            assert!(t.verify(junk, NOW).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn short_keys_are_refused_at_setup() {
        let short = [SecretString::from("too-short".to_string())];
        assert!(matches!(
            Tokens::new(&short, 60),
            Err(KeyError::TooShort(1))
        ));
        assert!(matches!(Tokens::new(&[], 60), Err(KeyError::None)));
    }

    #[test]
    fn header_forms() {
        let jwt = "aaa.bbb.ccc";
        for header in [
            r#"Token token="aaa.bbb.ccc""#,
            "Token token=aaa.bbb.ccc",
            "token aaa.bbb.ccc",
            "TOKEN aaa.bbb.ccc",
            "Bearer aaa.bbb.ccc",
            "bearer  aaa.bbb.ccc ",
        ] {
            assert_eq!(
                token_from_header(Some(header.as_bytes())),
                Ok(jwt),
                "{header}"
            );
        }
        assert_eq!(token_from_header(None), Err(TokenError::Missing));
        for (header, err) in [
            ("Basic dXNlcjpwYXNz", TokenError::BadScheme),
            ("aaa.bbb.ccc", TokenError::BadScheme),
            (r#"Token token="""#, TokenError::Malformed),
            (r#"Token token="aaa.bbb.ccc"#, TokenError::Malformed),
            ("Bearer aaa bbb", TokenError::Malformed),
        ] {
            assert_eq!(
                token_from_header(Some(header.as_bytes())),
                Err(err),
                "{header}"
            );
        }
        assert_eq!(
            token_from_header(Some(&[0xff, 0x20, 0x41])),
            Err(TokenError::BadScheme)
        );
    }

    #[test]
    fn secret_text_forms() {
        let n = |text: &str| keys_from_secret_text(text).len();
        assert_eq!(n(r#"{"keys": ["a", "b"]}"#), 2);
        assert_eq!(n(r#"["a"]"#), 1);
        assert_eq!(
            keys_from_secret_text(r#"{"key": "generated"}"#)[0]
                .secret
                .expose_secret(),
            "generated"
        );
        assert_eq!(
            keys_from_secret_text(" plain \n")[0].secret.expose_secret(),
            "plain"
        );
    }

    #[test]
    fn an_expiry_near_the_end_of_time_is_refused_not_overflowed() {
        // GIVEN a well-signed token whose exp + leeway would overflow an i64
        let payload = format!(
            r#"{{"exp":{},"user_id":"u","abilities":{{}}}}"#,
            i64::MAX - 1
        );
        let token = forge(r#"{"alg":"HS256","typ":"JWT"}"#, &payload, K1);
        // WHEN it is verified THEN it is refused, without an overflow
        assert_eq!(
            tokens(&[K1]).verify(&token, NOW),
            Err(TokenError::BadClaims)
        );
    }

    #[test]
    fn a_token_not_valid_yet_is_refused_and_nbf_is_kept_on_renewal() {
        let t = tokens(&[K1]);
        for (nbf, ok) in [
            (NOW + 86_400, false),
            (NOW + LEEWAY_SECONDS + 1, false),
            (NOW, true),
        ] {
            // GIVEN a token with `nbf`
            let payload = format!(
                r#"{{"exp":{},"nbf":{nbf},"user_id":"u","abilities":{{}}}}"#,
                NOW + 60
            );
            let token = forge(r#"{"alg":"HS256","typ":"JWT"}"#, &payload, K1);
            // WHEN it is verified THEN only a token already valid passes
            let verified = t.verify(&token, NOW);
            if ok {
                let claims = verified.unwrap();
                assert_eq!(claims.nbf, Some(nbf));
                let renewed = t.verify(&t.mint(&claims, NOW), NOW).unwrap();
                assert_eq!(renewed.nbf, Some(nbf));
            } else {
                assert_eq!(verified, Err(TokenError::NotYetValid), "nbf {nbf}");
            }
        }
        // AND a string-typed nbf is malformed claims
        let payload = format!(
            r#"{{"exp":{},"nbf":"0","user_id":"u","abilities":{{}}}}"#,
            NOW + 60
        );
        let token = forge(r#"{"alg":"HS256","typ":"JWT"}"#, &payload, K1);
        assert_eq!(t.verify(&token, NOW), Err(TokenError::BadClaims));
    }

    #[test]
    fn a_renewal_chain_stops_at_the_lifetime_cap() {
        // GIVEN a 4 h TTL, a 24 h cap, and a token issued at NOW
        const CAP: i64 = 24 * 3600;
        let t = tokens(&[K1]).with_max_lifetime(CAP);
        let mut token = t.mint(&claims(0), NOW);
        let mut renewals = 0;
        let mut exp = NOW + 14400;
        // WHEN it is renewed a minute before each expiry, until that gains nothing
        loop {
            let now = exp - 60;
            let claims = t.verify(&token, now).unwrap();
            let fresh = t.renew(&claims, now).expect("renewed before the cap");
            let fresh_claims = t.verify(&fresh, now).unwrap();
            // THEN every renewal keeps the original issue time and never passes the cap
            assert_eq!(fresh_claims.auth_time, Some(NOW));
            assert!(fresh_claims.exp <= NOW + CAP);
            if fresh_claims.exp == claims.exp {
                break;
            }
            token = fresh;
            exp = fresh_claims.exp;
            renewals += 1;
            assert!(renewals < 100, "the chain never ends");
        }
        // AND the chain ended at the cap after six renewals of (almost) 4 h, and at
        // the cap nothing more is minted: the client must sign in again
        let last = t.verify(&token, exp - 60).unwrap();
        assert_eq!(last.exp, NOW + CAP);
        assert_eq!(renewals, 6);
        assert_eq!(t.renew(&last, NOW + CAP), None);
    }

    #[test]
    fn a_token_accepted_only_through_the_leeway_is_not_renewed() {
        // GIVEN a token that expired 25 s ago (inside the 30 s leeway)
        let t = tokens(&[K1]);
        let token = t.mint(&claims(0), NOW - 14400 - 25);
        let late = t.verify(&token, NOW).unwrap();
        // WHEN it asks for renewal THEN none is minted
        assert_eq!(t.renew(&late, NOW), None);
        // AND a token still valid is renewed, keeping its iat as the original time
        let token = t.mint(&claims(0), NOW - 60);
        let valid = t.verify(&token, NOW).unwrap();
        let fresh = t.verify(&t.renew(&valid, NOW).unwrap(), NOW).unwrap();
        assert_eq!(fresh.auth_time, Some(NOW - 60));
        assert_eq!((fresh.iat, fresh.exp), (Some(NOW), NOW + 14400));
    }

    fn keyed(keys: &[(&str, &str)]) -> Tokens {
        let keys: Vec<SigningKey> = keys
            .iter()
            .map(|(id, key)| SigningKey {
                id: Some(id.to_string()),
                secret: SecretString::from(key.to_string()),
            })
            .collect();
        Tokens::with_keys(keys, 14400).unwrap()
    }

    fn payload(extra: &str) -> String {
        format!(
            r#"{{"exp":{},"user_id":"u","abilities":{{}}{extra}}}"#,
            NOW + 60
        )
    }

    #[test]
    fn a_kid_names_the_one_key_that_may_verify_and_an_unknown_kid_is_refused() {
        let t = keyed(&[("new", K1), ("old", K2)]);
        // GIVEN tokens signed with "old", whose header names each key in turn
        let named_old = forge(r#"{"alg":"HS256","kid":"old"}"#, &payload(""), K2);
        let named_new = forge(r#"{"alg":"HS256","kid":"new"}"#, &payload(""), K2);
        let unknown = forge(r#"{"alg":"HS256","kid":"gone"}"#, &payload(""), K2);
        // THEN only the key it names verifies it, and an unknown id is refused
        assert!(t.verify(&named_old, NOW).is_ok());
        assert_eq!(t.verify(&named_new, NOW), Err(TokenError::BadSignature));
        assert_eq!(t.verify(&unknown, NOW), Err(TokenError::UnknownKey));
        // AND a token without a key id is tried against every key (rotation)
        let plain = forge(r#"{"alg":"HS256"}"#, &payload(""), K2);
        assert!(t.verify(&plain, NOW).is_ok());
        // AND minted tokens name the signing key
        let minted = t.mint(&t.verify(&plain, NOW).unwrap(), NOW);
        assert_eq!(
            jsonwebtoken::decode_header(&minted).unwrap().kid.as_deref(),
            Some("new")
        );
    }

    #[test]
    fn an_iss_that_names_a_key_is_verified_with_that_key_only() {
        // GIVEN SharinPix-style tokens that carry their key's id in `iss`
        let t = keyed(&[("site-a", K1), ("site-b", K2)]);
        let right = forge(r#"{"alg":"HS256"}"#, &payload(r#","iss":"site-b""#), K2);
        let wrong = forge(r#"{"alg":"HS256"}"#, &payload(r#","iss":"site-a""#), K2);
        // THEN the key it names decides
        assert!(t.verify(&right, NOW).is_ok());
        assert_eq!(t.verify(&wrong, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn issuer_and_audience_bind_tokens_when_configured() {
        let t = tokens(&[K1])
            .with_issuer(Some("sharinpix".into()))
            .with_audience(Some("image-delete".into()));
        let both = payload(r#","iss":"sharinpix","aud":"image-delete""#);
        let ok = forge(r#"{"alg":"HS256"}"#, &both, K1);
        assert!(t.verify(&ok, NOW).is_ok());
        for claims in [
            payload(r#","iss":"other","aud":"image-delete""#),
            payload(r#","iss":"sharinpix","aud":"other""#),
            payload(r#","aud":"image-delete""#),
            payload(r#","iss":"sharinpix""#),
        ] {
            let token = forge(r#"{"alg":"HS256"}"#, &claims, K1);
            assert!(t.verify(&token, NOW).is_err(), "{claims}");
        }
    }

    #[test]
    fn secrets_may_give_key_ids_beside_plain_keys() {
        let keys = keys_from_secret_text(&format!(
            r#"{{"keys": [{{"id": "a", "key": "{K1}"}}, "{K2}"]}}"#
        ));
        let ids: Vec<Option<&str>> = keys.iter().map(|k| k.id.as_deref()).collect();
        assert_eq!(ids, [Some("a"), None]);
        assert_eq!(keys[1].secret.expose_secret(), K2);
    }
}
