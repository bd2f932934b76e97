//! Roles, secrets and passwords. Pure apart from the random source.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

/// `viewer` reads everything; `operator` also changes things (groups, tokens, users).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }
}

/// Who is asking: a token's or a user's name, and the role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Who {
    #[serde(rename = "user")]
    pub name: String,
    pub role: Role,
}

/// A new secret (API token or session id): 256 random bits, hex, with a prefix that says
/// what it is when it turns up in a log or a paste.
pub fn new_secret(prefix: &str) -> String {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).expect("the OS random source");
    format!("{prefix}{}", hex::encode(b))
}

/// How a secret is kept in the store.
pub fn secret_hash(secret: &str) -> String {
    emotiond_wire::sha256_hex(secret.as_bytes())
}

/// An argon2id PHC string for a password (argon2's default parameters: 19 MiB, t=2).
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).expect("the OS random source");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes make a valid salt");
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters")
        .to_string()
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A name for a token or user: short, printable, no spaces.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_with_the_right_one_and_secrets_differ() {
        let phc = hash_password("correct horse");
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("correct hors", &phc));
        assert!(!verify_password("x", "not a phc string"));
        let (a, b) = (new_secret("eft_"), new_secret("eft_"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 64);
        assert_eq!(secret_hash(&a).len(), 64);
        assert_ne!(secret_hash(&a), secret_hash(&b));
        assert_eq!(Role::parse("operator"), Some(Role::Operator));
        assert_eq!(Role::parse("admin"), None);
        assert!(Role::Operator > Role::Viewer);
        assert!(valid_name("ci-bot_1") && !valid_name("a b") && !valid_name(""));
    }
}
