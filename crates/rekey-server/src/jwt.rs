//! Owns rekey's access tokens: the ES256 signing keys (kept sealed in the store, rotated on
//! request), signing a token's [`Claims`], and verifying a token a caller presents. The OAuth
//! routes that hand tokens out are `oauth`'s; this module needs nothing of the application state,
//! which holds a [`TokenIssuer`].

use std::sync::RwLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use rekey_api::oauth::{Jwk, Jwks};
use rekey_store::{AuditRecord, SigningKey, Store, StoreError};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

/// Claims rekey puts in, and requires of, an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub tid: String,
    pub oid: String,
    pub sub: String,
    pub appid: String,
    pub azp: String,
    pub ver: String,
    pub idtyp: String,
}

/// Why a JWT was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum JwtError {
    Malformed,
    Signature,
    Expired,
    WrongAudienceOrIssuer,
}

/// Signs and verifies access tokens with the store's signing keys.
pub struct TokenIssuer {
    keys: RwLock<Vec<SigningKey>>,
    rng: SystemRandom,
    pub ttl: time::Duration,
}

fn new_signing_key(rng: &SystemRandom) -> SigningKey {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
        .expect("P-256 key generation needs only the OS random number generator");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), rng)
        .expect("a freshly generated PKCS#8 key parses");
    let mut kid = [0u8; 8];
    ring::rand::SecureRandom::fill(rng, &mut kid)
        .expect("the OS random number generator is available");
    SigningKey {
        kid: hex::encode(kid),
        pkcs8: zeroize::Zeroizing::new(pkcs8.as_ref().to_vec()),
        public_key: pair.public_key().as_ref().to_vec(),
        created_at: OffsetDateTime::now_utc(),
        retired_at: None,
    }
}

fn system_record(action: &str) -> AuditRecord {
    AuditRecord {
        at: OffsetDateTime::now_utc(),
        principal_id: "rekeyd".into(),
        action: action.into(),
        scope: "/rekey/signing-keys".into(),
        source: "local".into(),
        request_id: crate::request_ids::new_request_id(),
        result: "Succeeded".into(),
    }
}

impl TokenIssuer {
    /// Loads the signing keys, making the first one on a new database.
    pub async fn load(store: &dyn Store, ttl: time::Duration) -> Result<Self, StoreError> {
        let rng = SystemRandom::new();
        let mut keys = store.signing_keys().await?;
        if keys.iter().all(|k| k.retired_at.is_some()) {
            store
                .rotate_signing_key(
                    &new_signing_key(&rng),
                    &system_record("Rekey/signingKeys/write"),
                )
                .await?;
            keys = store.signing_keys().await?;
        }
        Ok(Self {
            keys: RwLock::new(keys),
            rng,
            ttl,
        })
    }

    /// Replaces the active key; tokens signed with retired keys stay valid until they expire.
    pub async fn rotate(
        &self,
        store: &dyn Store,
        audit: &AuditRecord,
    ) -> Result<String, StoreError> {
        let key = new_signing_key(&self.rng);
        let kid = key.kid.clone();
        store.rotate_signing_key(&key, audit).await?;
        self.reload(store).await?;
        Ok(kid)
    }

    async fn reload(&self, store: &dyn Store) -> Result<(), StoreError> {
        let keys = store.signing_keys().await?;
        *self.keys.write().expect("key lock is never poisoned") = keys;
        Ok(())
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let keys = self.keys.read().expect("key lock is never poisoned");
        let key = keys
            .iter()
            .find(|k| k.retired_at.is_none())
            .expect("an active signing key exists after load");
        let header = json!({ "alg": "ES256", "typ": "JWT", "kid": key.kid });
        let signed = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(serde_json::to_vec(claims).expect("claims serialize"))
        );
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.pkcs8, &self.rng)
                .expect("stored signing keys are valid PKCS#8");
        let signature = pair
            .sign(&self.rng, signed.as_bytes())
            .expect("ECDSA signing does not fail");
        format!("{signed}.{}", B64URL.encode(signature.as_ref()))
    }

    fn verify_signature(&self, kid: &str, message: &[u8], signature: &[u8]) -> Option<bool> {
        let keys = self.keys.read().expect("key lock is never poisoned");
        let key = keys.iter().find(|k| k.kid == kid)?;
        Some(
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &key.public_key)
                .verify(message, signature)
                .is_ok(),
        )
    }

    /// The claims of a valid token for this audience and issuer.
    pub async fn verify(
        &self,
        store: &dyn Store,
        token: &str,
        audience: &str,
        issuer: &str,
    ) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        #[derive(Deserialize)]
        struct Header {
            alg: String,
            kid: String,
        }
        let header: Header = B64URL
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(JwtError::Malformed)?;
        if header.alg != "ES256" {
            return Err(JwtError::Signature);
        }
        let signature = B64URL.decode(s).map_err(|_| JwtError::Malformed)?;
        let message = &token.as_bytes()[..h.len() + 1 + p.len()];
        let valid = match self.verify_signature(&header.kid, message, &signature) {
            Some(valid) => valid,
            // Another node may have rotated: look again before refusing.
            None => {
                self.reload(store).await.map_err(|_| JwtError::Signature)?;
                self.verify_signature(&header.kid, message, &signature)
                    .unwrap_or(false)
            }
        };
        if !valid {
            return Err(JwtError::Signature);
        }
        let claims: Claims = B64URL
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(JwtError::Malformed)?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        if claims.exp <= now || claims.nbf > now + 300 {
            return Err(JwtError::Expired);
        }
        if claims.aud.trim_end_matches('/') != audience.trim_end_matches('/')
            || claims.iss != issuer
        {
            return Err(JwtError::WrongAudienceOrIssuer);
        }
        Ok(claims)
    }

    pub(crate) fn jwks(&self) -> Jwks {
        let keys = self.keys.read().expect("key lock is never poisoned");
        let keys = keys
            .iter()
            .filter(|k| k.public_key.len() == 65)
            .map(|k| Jwk {
                kty: "EC".into(),
                crv: "P-256".into(),
                use_: "sig".into(),
                alg: "ES256".into(),
                kid: k.kid.clone(),
                x: B64URL.encode(&k.public_key[1..33]),
                y: B64URL.encode(&k.public_key[33..65]),
            })
            .collect();
        Jwks { keys }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_in: i64) -> Claims {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        Claims {
            aud: "https://rekey/".into(),
            iss: "https://rekey/t/v2.0".into(),
            iat: now,
            nbf: now,
            exp: now + exp_in,
            tid: "t".into(),
            oid: "o".into(),
            sub: "o".into(),
            appid: "o".into(),
            azp: "o".into(),
            ver: "2.0".into(),
            idtyp: "app".into(),
        }
    }

    fn issuer() -> TokenIssuer {
        let rng = SystemRandom::new();
        TokenIssuer {
            keys: RwLock::new(vec![new_signing_key(&rng)]),
            rng,
            ttl: time::Duration::hours(1),
        }
    }

    #[test]
    fn signed_tokens_verify_and_tampered_ones_do_not() {
        let issuer = issuer();
        let token = issuer.sign(&claims(60));
        let (h, rest) = token.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        let message = format!("{h}.{p}");
        let sig = B64URL.decode(s).unwrap();
        let kid = issuer.keys.read().unwrap()[0].kid.clone();
        assert_eq!(
            issuer.verify_signature(&kid, message.as_bytes(), &sig),
            Some(true)
        );
        let mut forged: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(p).unwrap()).unwrap();
        forged["oid"] = json!("someone-else");
        let forged_message = format!("{h}.{}", B64URL.encode(forged.to_string()));
        assert_eq!(
            issuer.verify_signature(&kid, forged_message.as_bytes(), &sig),
            Some(false)
        );
        assert_eq!(
            issuer.verify_signature("unknown", message.as_bytes(), &sig),
            None
        );
    }
}
