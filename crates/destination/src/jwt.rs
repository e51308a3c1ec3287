//! Signed identity tokens, as Pub/Sub push sends with OIDC: a short-lived JWT (ES256) in
//! `Authorization: Bearer`, which the receiver verifies against the public keys switchyard
//! publishes at `/.well-known/jwks.json` ([`Jwks`]).
//!
//! Owns the ES256 key type ([`IdentityKey`], stored as PKCS#8 — a secret to seal like any other),
//! the key id (the RFC 7638 JWK thumbprint, so it is derived, never configured), the claims and
//! the compact serialisation. Must not: reveal the private key (its `Debug` shows the key id),
//! or sign with anything but ECDSA P-256 SHA-256.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use serde::{Deserialize, Serialize};
use switchyard_secrets::Secret;

/// Why a key cannot be made or loaded, or a token not signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// The stored key does not decode to an ECDSA P-256 key pair (corrupted, or another kind of
    /// key).
    #[error("the identity key is not base64 PKCS#8 for ECDSA P-256")]
    InvalidKey,
    /// Generating a key or signing a token needed randomness that the system could not give.
    #[error("the system random number generator failed")]
    Random,
    /// The token's header or claims could not be serialised to JSON.
    #[error("the token claims cannot be encoded")]
    Encoding,
    /// A presented token is not a compact ES256 JWS signed by this key, or has expired.
    #[error("the token is not an unexpired identity token signed by this server")]
    Rejected,
}

/// An ES256 signing key.
pub struct IdentityKey {
    pair: EcdsaKeyPair,
    kid: String,
    x: String,
    y: String,
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKey")
            .field("kid", &self.kid)
            .finish()
    }
}

/// A token's claims. `aud` is the receiver's URL unless configured; `sub` names the
/// subscription (`buses/{bus}/subscriptions/{name}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// switchyard's public base URL, under which the receiver finds `/.well-known/jwks.json`.
    pub iss: String,
    /// `buses/{bus}/subscriptions/{name}`: which subscription sent the request.
    pub sub: String,
    /// Who the token is for: the configured audience, or else the request URL without the
    /// connection's query parameters.
    pub aud: String,
    /// Unix seconds of the attempt.
    pub iat: u64,
    /// Unix seconds after which the receiver must refuse the token: `iat` plus `ttl_s`.
    pub exp: u64,
    /// The identity the token names, when configured (Pub/Sub's service account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `true` with `email`, as Google's tokens say it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

impl IdentityKey {
    /// A new key, and its PKCS#8 document (standard base64) to seal and store.
    pub fn generate() -> Result<(IdentityKey, Secret), JwtError> {
        let rng = SystemRandom::new();
        let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| JwtError::Random)?;
        let stored = Secret::new(STANDARD.encode(document.as_ref()));
        let key = IdentityKey::from_pkcs8(&stored)?;
        Ok((key, stored))
    }

    /// Loads a key from its stored form, as returned by [`IdentityKey::generate`].
    pub fn from_pkcs8(stored: &Secret) -> Result<IdentityKey, JwtError> {
        let document = zeroize::Zeroizing::new(
            STANDARD
                .decode(stored.expose().trim())
                .map_err(|_| JwtError::InvalidKey)?,
        );
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &document,
            &SystemRandom::new(),
        )
        .map_err(|_| JwtError::InvalidKey)?;
        // An uncompressed P-256 point: 0x04, then X and Y, 32 bytes each.
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 0x04 {
            return Err(JwtError::InvalidKey);
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..]);
        // RFC 7638: the hash of the required members in lexicographic order, no spaces.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            canonical.as_bytes(),
        ));
        Ok(IdentityKey { pair, kid, x, y })
    }

    /// The key id: the JWK thumbprint (RFC 7638) of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK.
    pub(crate) fn jwk(&self) -> Jwk {
        Jwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: self.x.clone(),
            y: self.y.clone(),
            kid: self.kid.clone(),
            alg: "ES256".into(),
            key_use: "sig".into(),
        }
    }

    /// The compact JWS `header.claims.signature`.
    pub(crate) fn sign(&self, claims: &Claims) -> Result<String, JwtError> {
        #[derive(Serialize)]
        struct Header<'a> {
            alg: &'static str,
            typ: &'static str,
            kid: &'a str,
        }
        let header = serde_json::to_vec(&Header {
            alg: "ES256",
            typ: "JWT",
            kid: &self.kid,
        })
        .map_err(|_| JwtError::Encoding)?;
        let claims = serde_json::to_vec(claims).map_err(|_| JwtError::Encoding)?;
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        // FIXED signing gives r ‖ s, the JWS form (RFC 7518 §3.4), not ASN.1.
        let signature = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .map_err(|_| JwtError::Random)?;
        Ok(format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }
}

impl IdentityKey {
    /// The claims of `token` if this key signed it (ES256, this key's `kid`) and it has not
    /// expired at `now_s`; the caller checks `iss`, `aud` and `sub` against what it expects.
    /// This is how switchyard accepts its own tokens back: an event bus target's forward.
    pub fn verify(&self, token: &str, now_s: u64) -> Result<Claims, JwtError> {
        #[derive(Deserialize)]
        struct Header {
            alg: String,
            kid: Option<String>,
        }
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Rejected);
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| JwtError::Rejected);
        let parsed: Header =
            serde_json::from_slice(&decode(header)?).map_err(|_| JwtError::Rejected)?;
        // The algorithm is fixed, never taken from the token: no "none", no HMAC with the
        // public key as its secret.
        if parsed.alg != "ES256" || parsed.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(JwtError::Rejected);
        }
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.pair.public_key().as_ref())
            .verify(format!("{header}.{claims}").as_bytes(), &decode(signature)?)
            .map_err(|_| JwtError::Rejected)?;
        let claims: Claims =
            serde_json::from_slice(&decode(claims)?).map_err(|_| JwtError::Rejected)?;
        if claims.exp <= now_s {
            return Err(JwtError::Rejected);
        }
        Ok(claims)
    }
}

/// One public key in JWK form (RFC 7517).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Jwk {
    /// Always `"EC"`.
    pub(crate) kty: String,
    /// Always `"P-256"`.
    pub(crate) crv: String,
    /// The point's X coordinate, 32 bytes, base64url without padding.
    pub(crate) x: String,
    /// The point's Y coordinate, 32 bytes, base64url without padding.
    pub(crate) y: String,
    /// The key id that tokens name in their header: the RFC 7638 thumbprint.
    pub(crate) kid: String,
    /// Always `"ES256"`.
    pub(crate) alg: String,
    /// Always `"sig"`: the key verifies signatures only.
    #[serde(rename = "use")]
    pub(crate) key_use: String,
}

/// The document served at `/.well-known/jwks.json`: every key a valid token may be signed with
/// (during key rotation, the new key and the old one until the old one's tokens expire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// One per key given to [`Jwks::new`], in that order.
    pub(crate) keys: Vec<Jwk>,
}

impl Jwks {
    /// The document listing the public halves of `keys`; the private halves are never in it.
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a IdentityKey>) -> Jwks {
        Jwks {
            keys: keys.into_iter().map(IdentityKey::jwk).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Verifies a token the way a receiver does, from the published JWKS JSON alone.
    fn verify(token: &str, jwks_json: &str) -> Claims {
        let jwks: serde_json::Value = serde_json::from_str(jwks_json).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == header["kid"])
            .expect("the token's kid is published");
        let mut point = vec![0x04];
        point.extend(URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap());
        point.extend(URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap());
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .expect("signature verifies");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
    }

    fn claims() -> Claims {
        Claims {
            iss: "https://switchyard.example.com".into(),
            sub: "buses/orders/subscriptions/crm".into(),
            aud: "https://crm.example.com/hook".into(),
            iat: 1_700_000_000,
            exp: 1_700_000_300,
            email: None,
            email_verified: None,
        }
    }

    #[test]
    fn a_token_verifies_with_the_published_jwk() {
        let (key, stored) = IdentityKey::generate().unwrap();
        let reloaded = IdentityKey::from_pkcs8(&stored).unwrap();
        assert_eq!(key.kid(), reloaded.kid());
        let jwks = serde_json::to_string(&Jwks::new([&key])).unwrap();
        assert!(jwks.contains(r#""use":"sig""#) && jwks.contains(r#""alg":"ES256""#));
        let token = reloaded.sign(&claims()).unwrap();
        assert_eq!(verify(&token, &jwks), claims());
    }

    #[test]
    fn a_tampered_token_or_another_key_fails() {
        let (key, _) = IdentityKey::generate().unwrap();
        let (other, _) = IdentityKey::generate().unwrap();
        let token = key.sign(&claims()).unwrap();
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let mut forged = claims();
        forged.aud = "https://evil.example.com".into();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let point = |k: &IdentityKey| {
            let jwk = k.jwk();
            let mut p = vec![0x04];
            p.extend(URL_SAFE_NO_PAD.decode(jwk.x).unwrap());
            p.extend(URL_SAFE_NO_PAD.decode(jwk.y).unwrap());
            p
        };
        let signature = URL_SAFE_NO_PAD.decode(&parts[2]).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        assert!(
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point(&key))
                .verify(input.as_bytes(), &signature)
                .is_err()
        );
        let original: Vec<&str> = token.split('.').collect();
        assert!(
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point(&other))
                .verify(
                    format!("{}.{}", original[0], original[1]).as_bytes(),
                    &signature
                )
                .is_err()
        );
    }

    #[test]
    fn verify_takes_this_keys_unexpired_tokens_only() {
        let (key, _) = IdentityKey::generate().unwrap();
        let (other, _) = IdentityKey::generate().unwrap();
        let token = key.sign(&claims()).unwrap();
        assert_eq!(key.verify(&token, 1_700_000_299).unwrap(), claims());
        assert_eq!(key.verify(&token, 1_700_000_300), Err(JwtError::Rejected));
        assert_eq!(other.verify(&token, 1_700_000_000), Err(JwtError::Rejected));
        let mut forged = claims();
        forged.sub = "buses/orders/subscriptions/other".into();
        let parts: Vec<&str> = token.split('.').collect();
        let swapped = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap()),
            parts[2]
        );
        assert_eq!(key.verify(&swapped, 1_700_000_000), Err(JwtError::Rejected));
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            parts[1]
        );
        for bad in [unsigned.as_str(), "", "a.b", "a.b.c.d", "..."] {
            assert_eq!(
                key.verify(bad, 1_700_000_000),
                Err(JwtError::Rejected),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_key_id_is_the_rfc7638_thumbprint_and_debug_hides_the_key() {
        let (key, stored) = IdentityKey::generate().unwrap();
        let jwk = key.jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk.x, jwk.y
        );
        let expected = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            canonical.as_bytes(),
        ));
        assert_eq!(key.kid(), expected);
        assert_eq!(
            format!("{key:?}"),
            format!("IdentityKey {{ kid: {:?} }}", key.kid())
        );
        assert!(!format!("{key:?}").contains(stored.expose()));
        assert_eq!(
            IdentityKey::from_pkcs8(&Secret::new("bm90IGEga2V5")).unwrap_err(),
            JwtError::InvalidKey
        );
    }
}
