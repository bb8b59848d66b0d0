//! Account and admin passwords: generation, Argon2id hashing, verification.
//!
//! Secrets never show in `Debug` output: [`Password`] prints as `Password(***)`.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash as Phc;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use std::fmt;

/// Shortest password a person may choose. Generated ones are far longer.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted: Argon2 hashes any length, but a peer must not
/// be able to make the hub hash megabytes per login attempt.
pub const MAX_PASSWORD_LEN: usize = 256;
/// Generated passwords: 4 groups of 5 from a 30-symbol alphabet without
/// look-alikes (0/o, 1/l/i), about 98 bits, easy to type from a printed card.
const GENERATED_GROUPS: usize = 4;
const GROUP_LEN: usize = 5;
const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error(
        "the password is shorter than {MIN_PASSWORD_LEN} characters: choose a longer one, or leave it out to get a generated one"
    )]
    TooShort,
    #[error("the password is longer than {MAX_PASSWORD_LEN} bytes")]
    TooLong,
    #[error("the password contains a control character or line break")]
    ControlChar,
    #[error("the stored password hash is damaged: set a new password")]
    BadHash,
    #[error("the system random source failed: {0}")]
    Random(String),
}

/// A clear-text password held only as long as needed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// A password a person chose; checked for length and control characters.
    pub fn chosen(s: &str) -> Result<Self, PasswordError> {
        if s.chars().count() < MIN_PASSWORD_LEN {
            return Err(PasswordError::TooShort);
        }
        Self::presented(s)
    }

    /// A password presented at login: only bounded, never judged for strength.
    pub fn presented(s: &str) -> Result<Self, PasswordError> {
        if s.len() > MAX_PASSWORD_LEN {
            return Err(PasswordError::TooLong);
        }
        if s.chars().any(char::is_control) {
            return Err(PasswordError::ControlChar);
        }
        Ok(Password(s.to_string()))
    }

    /// A fresh random password like `k7xq2-m9wpt-h3rfa-vz8ne`.
    pub fn generate() -> Result<Self, PasswordError> {
        Ok(Password(random_groups(GENERATED_GROUPS, GROUP_LEN)?))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Hash with Argon2id at the crate's recommended parameters and a fresh salt.
    pub fn hash(&self) -> Result<PasswordHash, PasswordError> {
        let phc = Argon2::default()
            .hash_password(self.0.as_bytes())
            .map_err(|e| PasswordError::Random(e.to_string()))?;
        Ok(PasswordHash(phc.to_string()))
    }
}

/// Random text from the unambiguous alphabet, groups joined by `-`.
pub fn random_groups(groups: usize, len: usize) -> Result<String, PasswordError> {
    let mut out = String::with_capacity(groups * (len + 1));
    for g in 0..groups {
        if g > 0 {
            out.push('-');
        }
        for _ in 0..len {
            out.push(ALPHABET[uniform(ALPHABET.len())?] as char);
        }
    }
    Ok(out)
}

/// A uniform index below `n` by rejection sampling (no modulo bias).
fn uniform(n: usize) -> Result<usize, PasswordError> {
    let n = u8::try_from(n).expect("alphabet fits a byte");
    let limit = u8::MAX - (u8::MAX % n);
    loop {
        let mut b = [0u8; 1];
        getrandom::fill(&mut b).map_err(|e| PasswordError::Random(e.to_string()))?;
        if b[0] < limit {
            return Ok(usize::from(b[0] % n));
        }
    }
}

/// An Argon2 PHC string as stored in the database.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

impl PasswordHash {
    pub fn from_stored(s: String) -> Self {
        PasswordHash(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `password` matches. Uses the parameters stored in the hash,
    /// so old hashes keep working when the defaults change.
    pub fn verify(&self, password: &Password) -> Result<bool, PasswordError> {
        let phc = Phc::new(&self.0).map_err(|_| PasswordError::BadHash)?;
        Ok(Argon2::default()
            .verify_password(password.0.as_bytes(), &phc)
            .is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let p = Password::chosen("correct horse").unwrap();
        let h = p.hash().unwrap();
        assert!(h.as_str().starts_with("$argon2id$"), "{}", h.as_str());
        assert!(h.verify(&p).unwrap());
        assert!(
            !h.verify(&Password::presented("correct hors").unwrap())
                .unwrap()
        );
        // Same password, different salt.
        assert_ne!(p.hash().unwrap().as_str(), h.as_str());
    }

    #[test]
    fn damaged_hash_is_an_error_not_a_match() {
        let h = PasswordHash::from_stored("$argon2id$garbage".into());
        assert_eq!(
            h.verify(&Password::presented("x").unwrap()),
            Err(PasswordError::BadHash)
        );
    }

    #[test]
    fn chosen_password_rules() {
        assert_eq!(Password::chosen("short"), Err(PasswordError::TooShort));
        assert_eq!(
            Password::chosen(&"x".repeat(MAX_PASSWORD_LEN + 1)),
            Err(PasswordError::TooLong)
        );
        assert_eq!(
            Password::chosen("line\nbreak here"),
            Err(PasswordError::ControlChar)
        );
        assert!(Password::chosen("äöüäöüäö").is_ok());
    }

    #[test]
    fn generated_passwords_are_readable_and_distinct() {
        let a = Password::generate().unwrap();
        let b = Password::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 23);
        assert!(
            a.expose()
                .bytes()
                .all(|c| c == b'-' || ALPHABET.contains(&c))
        );
        assert!(Password::chosen(a.expose()).is_ok());
    }

    #[test]
    fn debug_hides_secrets() {
        let p = Password::chosen("hunter2hunter2").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
        assert!(!format!("{:?}", p.hash().unwrap()).contains("argon2"));
    }
}
