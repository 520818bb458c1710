//! Owns encryption at rest. One 32-byte master key, from `REKEY_MASTER_KEY` or a key file, is expanded
//! with HKDF into a sealing key (AES-256-GCM, a fresh random nonce per write, the resource's internal
//! id, slot and generation as associated data, so a sealed key copied to another row fails to open)
//! and a digest key (HMAC-SHA256 of each live key, indexed so the data plane finds a presented key
//! without decrypting anything). Nodes that share the master key share both.

use std::path::Path;

use base64::Engine as _;
use rekey_core::Secret;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the master key must be 32 bytes, as 64 hex digits or base64")]
    BadMasterKey,
    #[error("could not read or write the master key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("a sealed key failed to open: wrong master key, or the row was altered")]
    Open,
}

/// The 32-byte master key. Not `Debug`; zeroed on drop.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    /// From 64 hex digits or base64 of 32 bytes (surrounding white space ignored).
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        let bytes = Zeroizing::new(
            hex::decode(text)
                .ok()
                .filter(|b| b.len() == 32)
                .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
                .ok_or(CryptoError::BadMasterKey)?,
        );
        let array: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::BadMasterKey)?;
        Ok(Self(Zeroizing::new(array)))
    }

    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(&mut *k)
            .expect("the OS random number generator is available");
        Self(k)
    }

    /// Reads the key file, or creates it (mode 0600, hex) when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        let err = |source| CryptoError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                let text = Zeroizing::new(hex::encode(*key.0));
                write_private(path, text.as_bytes()).map_err(err)?;
                Ok(key)
            }
            Err(e) => Err(err(e)),
        }
    }
}

/// Writes a file readable only by its owner, creating it exclusively.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// Seals and opens key values, and digests them for lookup.
pub struct Sealer {
    aead: LessSafeKey,
    digest: hmac::Key,
    rng: SystemRandom,
}

impl Sealer {
    pub fn new(master: &MasterKey) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"rekey").extract(&*master.0);
        let mut aead_key = Zeroizing::new([0u8; 32]);
        prk.expand(&[b"rekey aes-256-gcm v1"], Len(32))
            .and_then(|okm| okm.fill(&mut *aead_key))
            .expect("HKDF can expand 32 bytes");
        let mut digest_key = Zeroizing::new([0u8; 32]);
        prk.expand(&[b"rekey key digest v1"], Len(32))
            .and_then(|okm| okm.fill(&mut *digest_key))
            .expect("HKDF can expand 32 bytes");
        Self {
            aead: LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, &*aead_key).expect("32 bytes is an AES-256 key"),
            ),
            digest: hmac::Key::new(hmac::HMAC_SHA256, &*digest_key),
            rng: SystemRandom::new(),
        }
    }

    /// `nonce || ciphertext || tag`.
    pub fn seal(&self, secret: &Secret, context: &str) -> Vec<u8> {
        self.seal_bytes(secret.expose().as_bytes(), context)
    }

    /// Seals arbitrary bytes (a private key) the same way.
    pub fn seal_bytes(&self, plain: &[u8], context: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .expect("the OS random number generator is available");
        let mut buf = plain.to_vec();
        self.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .expect("AES-GCM sealing of a short key cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        zeroize::Zeroize::zeroize(&mut buf);
        out
    }

    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Secret, CryptoError> {
        let plain = self.open_bytes(sealed, context)?;
        let text = std::str::from_utf8(&plain).map_err(|_| CryptoError::Open)?;
        Ok(Secret::new(text.to_string()))
    }

    pub fn open_bytes(
        &self,
        sealed: &[u8],
        context: &str,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < NONCE_LEN + aead::AES_256_GCM.tag_len() {
            return Err(CryptoError::Open);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Open)?;
        let mut buf = Zeroizing::new(rest.to_vec());
        let plain = self
            .aead
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| CryptoError::Open)?;
        Ok(Zeroizing::new(plain.to_vec()))
    }

    /// The keyed digest under which a live key is indexed.
    pub fn digest(&self, presented: &str) -> [u8; 32] {
        let tag = hmac::sign(&self.digest, presented.as_bytes());
        tag.as_ref().try_into().expect("HMAC-SHA256 is 32 bytes")
    }
}

/// SHA-256 of a management token: tokens are random and long, so no key is needed.
pub fn token_digest(token: &str) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_the_same_context() {
        let sealer = Sealer::new(&MasterKey::generate());
        let secret = Secret::new("rkcs_abc".into());
        let sealed = sealer.seal(&secret, "r1/key1/1");
        assert!(!sealed.windows(8).any(|w| w == b"rkcs_abc"));
        assert_eq!(
            sealer.open(&sealed, "r1/key1/1").unwrap().expose(),
            "rkcs_abc"
        );
        assert!(sealer.open(&sealed, "r1/key2/1").is_err());
        assert!(Sealer::new(&MasterKey::generate())
            .open(&sealed, "r1/key1/1")
            .is_err());
    }

    #[test]
    fn master_key_parses_hex_and_base64_of_32_bytes_only() {
        assert!(MasterKey::parse(&"ab".repeat(32)).is_ok());
        assert!(
            MasterKey::parse(&base64::engine::general_purpose::STANDARD.encode([7u8; 32])).is_ok()
        );
        assert!(MasterKey::parse("abcd").is_err());
        assert!(
            MasterKey::parse(&base64::engine::general_purpose::STANDARD.encode([7u8; 31])).is_err()
        );
    }

    #[test]
    fn master_key_file_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let a = MasterKey::load_or_create(&path).unwrap();
        let b = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(*a.0, *b.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
