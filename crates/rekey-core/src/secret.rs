//! Owns [`Secret`], the only type a key or token value lives in. It is not `Display` or `Serialize`
//! and its `Debug` prints `Secret(***)`, so a secret can reach a log, panic message or response only
//! through an explicit `expose()`; its memory is zeroed when dropped.

use zeroize::Zeroizing;

/// A key's or token's secret value.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The plain value; call it only where the value must leave (a response, a digest, a cipher).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time equality, so that comparing a presented key leaks nothing through timing.
    pub fn ct_eq(&self, other: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), other.as_bytes());
        a.len() == b.len() && constant_time_eq(a, b)
    }
}

/// Equal-length comparison whose time does not depend on where the first difference is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_value() {
        let s = Secret::new("hunter2-very-secret".into());
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }

    #[test]
    fn ct_eq_compares_whole_values() {
        let s = Secret::new("abc".into());
        assert!(s.ct_eq("abc"));
        assert!(!s.ct_eq("abd"));
        assert!(!s.ct_eq("ab"));
    }
}
