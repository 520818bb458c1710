//! Owns how keys look and how they are made. Keys come from the OS CSPRNG.
//!
//! Tagged keys (Cognitive Services, Quantum) read `rk<tag>_<36 base62 random><6 base62 checksum>`:
//! the fixed `rk<tag>_` signature lets secret scanners find a leaked key and tells the data plane the
//! type at a glance; the checksum (first 32 bits of SHA-256 over signature and body) lets a mistyped or
//! foreign key be refused before any lookup. Cosmos DB keys are 64 random bytes in standard base64,
//! because Cosmos clients base64-decode the key to sign requests with it.

use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};

use crate::secret::Secret;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BODY_LEN: usize = 36;
const CHECK_LEN: usize = 6;

/// How a resource type's keys are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// `rk<tag>_…` with a checksum; `tag` is a short lower-case type marker such as `cs`.
    Tagged { tag: &'static str },
    /// `len` random bytes, standard base64 with padding.
    RandomBase64 { len: usize },
}

/// Why a presented key was refused without a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedKey {
    #[error("the key does not carry this type's signature")]
    WrongSignature,
    #[error("the key has the wrong length or characters")]
    WrongShape,
    #[error("the key's checksum does not match")]
    BadChecksum,
}

fn random_bytes(buf: &mut [u8]) {
    SystemRandom::new()
        .fill(buf)
        .expect("the OS random number generator is available; without it no key can be made");
}

/// `len` base62 characters, uniformly distributed (rejection sampling avoids modulo bias).
pub fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        random_bytes(&mut buf);
        for b in buf {
            // 248 = 4 * 62: bytes at or above it would favour the first characters.
            if b < 248 && out.len() < len {
                out.push(BASE62[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// The checksum characters of `signed` (base62, ASCII).
fn checksum(signed: &str) -> [u8; CHECK_LEN] {
    let digest = ring::digest::digest(&ring::digest::SHA256, signed.as_bytes());
    let mut n = u32::from_be_bytes(
        digest.as_ref()[..4]
            .try_into()
            .expect("SHA-256 has 32 bytes"),
    );
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

impl KeyFormat {
    /// A fresh key of this format.
    pub fn generate(self) -> Secret {
        match self {
            KeyFormat::Tagged { tag } => {
                let signed = format!("rk{tag}_{}", random_base62(BODY_LEN));
                let check = checksum(&signed);
                Secret::new(signed + std::str::from_utf8(&check).expect("base62 is ASCII"))
            }
            KeyFormat::RandomBase64 { len } => {
                let mut bytes = zeroize::Zeroizing::new(vec![0u8; len]);
                random_bytes(&mut bytes);
                Secret::new(base64::engine::general_purpose::STANDARD.encode(&*bytes))
            }
        }
    }

    /// Checks a presented key's form, cheaply and without any lookup: its shape, then its
    /// checksum.
    pub fn check(self, presented: &str) -> Result<(), MalformedKey> {
        self.check_shape(presented)?;
        match self {
            KeyFormat::Tagged { tag } => {
                let (signed, check) = presented.split_at(3 + tag.len() + BODY_LEN);
                if checksum(signed) != check.as_bytes() {
                    return Err(MalformedKey::BadChecksum);
                }
                Ok(())
            }
            KeyFormat::RandomBase64 { .. } => Ok(()),
        }
    }

    /// Checks a presented key's shape (signature, length, alphabet) but not its checksum, which
    /// costs a SHA-256. Enough before comparing the key's keyed digest with known keys: every
    /// key rekey holds was generated with a valid checksum, so a match implies one, and a key
    /// of the right length costs the digest no more than a malformed one would.
    pub fn check_shape(self, presented: &str) -> Result<(), MalformedKey> {
        match self {
            KeyFormat::Tagged { tag } => {
                let prefix_len = 3 + tag.len();
                let signature_ok = presented.len() > prefix_len
                    && presented.starts_with("rk")
                    && presented.get(2..2 + tag.len()) == Some(tag)
                    && presented.as_bytes()[2 + tag.len()] == b'_';
                if !signature_ok {
                    return Err(MalformedKey::WrongSignature);
                }
                // Folded without stopping early (the data plane checks every call's key), so
                // the compiler checks many bytes at once.
                if presented.len() != prefix_len + BODY_LEN + CHECK_LEN
                    || !presented[prefix_len..]
                        .bytes()
                        .fold(true, |all, b| all & b.is_ascii_alphanumeric())
                {
                    return Err(MalformedKey::WrongShape);
                }
                Ok(())
            }
            KeyFormat::RandomBase64 { len } => {
                match base64::engine::general_purpose::STANDARD.decode(presented) {
                    Ok(bytes) if bytes.len() == len => Ok(()),
                    _ => Err(MalformedKey::WrongShape),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CS: KeyFormat = KeyFormat::Tagged { tag: "cs" };

    #[test]
    fn tagged_keys_carry_signature_and_pass_their_own_check() {
        let key = CS.generate();
        assert!(key.expose().starts_with("rkcs_"));
        assert_eq!(key.expose().len(), 5 + BODY_LEN + CHECK_LEN);
        assert_eq!(CS.check(key.expose()), Ok(()));
        assert_ne!(key.expose(), CS.generate().expose(), "two keys must differ");
    }

    #[test]
    fn a_changed_character_fails_the_checksum() {
        let key = CS.generate();
        let mut chars: Vec<char> = key.expose().chars().collect();
        chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
        let tampered: String = chars.into_iter().collect();
        assert_eq!(CS.check(&tampered), Err(MalformedKey::BadChecksum));
    }

    #[test]
    fn the_shape_check_leaves_the_checksum_alone_but_not_the_shape() {
        let key = CS.generate();
        let mut tampered = key.expose().to_string();
        tampered.replace_range(10..11, if &tampered[10..11] == "a" { "b" } else { "a" });
        assert_eq!(CS.check_shape(&tampered), Ok(()));
        assert_eq!(CS.check(&tampered), Err(MalformedKey::BadChecksum));
        assert_eq!(
            CS.check_shape(&tampered[1..]),
            Err(MalformedKey::WrongSignature)
        );
        assert_eq!(
            CS.check_shape(&format!("{tampered}0")),
            Err(MalformedKey::WrongShape)
        );
        let mut dashed = tampered.clone();
        dashed.replace_range(20..21, "-");
        assert_eq!(CS.check_shape(&dashed), Err(MalformedKey::WrongShape));
    }

    #[test]
    fn another_types_key_has_the_wrong_signature() {
        let other = KeyFormat::Tagged { tag: "qw" }.generate();
        assert_eq!(CS.check(other.expose()), Err(MalformedKey::WrongSignature));
    }

    #[test]
    fn any_body_with_its_checksum_passes_because_the_checksum_is_not_a_secret() {
        // libFuzzer built this key from the checksum comparison in `check` within seconds: the
        // checksum only catches typos and foreign keys; a key's secrecy is its 36 random
        // characters, checked by lookup.
        let key = "rkcs_0000000000000000000000000000000000002GvWgx";
        assert_eq!(key.len(), 47);
        assert_eq!(CS.check(key), Ok(()));
    }

    #[test]
    fn cosmos_keys_are_64_bytes_base64() {
        let f = KeyFormat::RandomBase64 { len: 64 };
        let key = f.generate();
        assert_eq!(key.expose().len(), 88);
        assert_eq!(f.check(key.expose()), Ok(()));
        assert_eq!(f.check("c2hvcnQ="), Err(MalformedKey::WrongShape));
    }

    proptest! {
        #[test]
        fn check_never_panics_and_rejects_arbitrary_text(s in ".*") {
            // A random string passing the checksum has odds of about 2^-32.
            prop_assert!(CS.check(&s).is_err());
            let _ = KeyFormat::RandomBase64 { len: 64 }.check(&s);
        }
    }
}
