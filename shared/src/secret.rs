//! Signing secrets, kept out of logs and error texts.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// One signing secret as the provider shows it (for Peoplelogic the `secretBase64`
/// text, for Standard Webhooks the `whsec_...` text).
///
/// `Debug` and `Display` print `[redacted]`, so a secret can travel in structs that
/// are logged without ever reaching the log.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(String);

impl SigningSecret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        SigningSecret(value.into())
    }

    /// The secret text. Call only where the bytes are needed for a MAC.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

impl fmt::Display for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for SigningSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(SigningSecret)
    }
}

impl From<&str> for SigningSecret {
    fn from(value: &str) -> Self {
        SigningSecret::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = SigningSecret::new("hunter2-very-secret");
        assert_eq!(format!("{secret:?}"), "SigningSecret([redacted])");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(
            format!("{:?}", vec![secret.clone()]),
            "[SigningSecret([redacted])]"
        );
        assert_eq!(secret.expose(), "hunter2-very-secret");
    }
}
