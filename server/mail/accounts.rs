//! Account rules: an address must belong to a hosted domain, passwords are
//! Argon2id-hashed off the async threads, every change is logged.

use crate::domain::{
    AccountId, Address, AddressError, Credential, Domain, Password, PasswordError, PasswordHash,
};
use crate::store::{self, AccountRow, Store};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("`{input}` is not a valid address: {source}")]
    Address { input: String, source: AddressError },
    #[error(
        "{address} is not in a domain this hub hosts ({hosted}): use one of those, or add the domain to hub.domains"
    )]
    NotHosted { address: String, hosted: String },
    #[error("there is no account {0}: `cairn account list` shows them all")]
    NoSuchAccount(String),
    #[error("{0}")]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("password hashing was interrupted: {0}")]
    Hashing(String),
}

pub type Result<T, E = AccountError> = std::result::Result<T, E>;

/// Account operations for one hub.
#[derive(Clone, Debug)]
pub struct Accounts {
    store: Store,
    domains: Vec<Domain>,
}

/// A newly created account, with the password when it was generated.
#[derive(Debug)]
pub struct Created {
    pub id: AccountId,
    pub address: Address,
    pub generated_password: Option<Password>,
}

impl Accounts {
    pub fn new(store: Store, domains: Vec<Domain>) -> Self {
        Accounts { store, domains }
    }

    /// Parse an address and check that this hub hosts its domain.
    pub fn hosted_address(&self, input: &str) -> Result<Address> {
        check_hosted(input, &self.domains)
    }

    /// Parse an address of an existing account (its domain need not still be hosted).
    fn existing_address(input: &str) -> Result<Address> {
        Address::parse(input).map_err(|source| AccountError::Address {
            input: input.trim().to_string(),
            source,
        })
    }

    /// Create an account. With no password, a strong one is generated and returned.
    pub async fn create(&self, input: &str, password: Option<Password>) -> Result<Created> {
        let address = self.hosted_address(input)?;
        let (password, generated) = match password {
            Some(p) => (p, false),
            None => (Password::generate()?, true),
        };
        let hash = hash_off_thread(password.clone()).await?;
        let id = self.store.account_insert(&address, &hash).await?;
        self.store
            .event("account.created", Some(&address.to_string()), None)
            .await?;
        Ok(Created {
            id,
            address,
            generated_password: generated.then_some(password),
        })
    }

    /// Set a new password; returns the generated one when none was given.
    pub async fn set_password(
        &self,
        input: &str,
        password: Option<Password>,
    ) -> Result<Option<Password>> {
        let address = Self::existing_address(input)?;
        let (password, generated) = match password {
            Some(p) => (p, false),
            None => (Password::generate()?, true),
        };
        let hash = hash_off_thread(password.clone()).await?;
        if !self.store.account_set_password(&address, &hash).await? {
            return Err(AccountError::NoSuchAccount(address.to_string()));
        }
        self.store
            .event("account.password", Some(&address.to_string()), None)
            .await?;
        Ok(generated.then_some(password))
    }

    pub async fn remove(&self, input: &str) -> Result<()> {
        let address = Self::existing_address(input)?;
        if !self.store.account_remove(&address).await? {
            return Err(AccountError::NoSuchAccount(address.to_string()));
        }
        self.store
            .event("account.removed", Some(&address.to_string()), None)
            .await?;
        Ok(())
    }

    pub async fn find(&self, input: &str) -> Result<Option<AccountRow>> {
        let address = Self::existing_address(input)?;
        Ok(self.store.account_find(&address).await?)
    }

    pub async fn list(&self) -> Result<Vec<AccountRow>> {
        Ok(self.store.account_list().await?)
    }

    /// Check a login. `None` for an unknown address or a wrong password —
    /// callers must not tell the two apart to the peer.
    pub async fn verify(&self, input: &str, password: &Password) -> Result<Option<Credential>> {
        let Ok(address) = Address::parse(input) else {
            return Ok(None);
        };
        let Some((credential, hash)) = self.store.account_credentials(&address).await? else {
            return Ok(None);
        };
        Ok(verify_off_thread(hash, password.clone())
            .await?
            .then_some(credential))
    }
}

/// Password hashes computed at once, hub-wide. Each Argon2id run takes
/// 19 MiB and tens of milliseconds of a core: without a bound, 60 parallel
/// wrong logins took 834 MB. Two match the build machine's and a Pi's
/// useful parallelism; the rest wait their turn.
pub const MAX_CONCURRENT_HASHES: usize = 2;

static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT_HASHES);

/// Run one Argon2 computation on the blocking pool, at most
/// [`MAX_CONCURRENT_HASHES`] at a time.
async fn argon2_bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let _permit = HASHING
        .acquire()
        .await
        .map_err(|e| AccountError::Hashing(e.to_string()))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AccountError::Hashing(e.to_string()))
}

/// Argon2 takes tens of milliseconds of CPU: keep it off the async workers.
async fn hash_off_thread(password: Password) -> Result<PasswordHash> {
    Ok(argon2_bounded(move || password.hash()).await??)
}

/// Check a password against a stored hash off the async workers, within
/// the hub-wide bound on concurrent hashes (account and admin logins).
pub async fn verify_off_thread(hash: PasswordHash, password: Password) -> Result<bool> {
    Ok(argon2_bounded(move || hash.verify(&password)).await??)
}

/// Check an address against the hosted domains without a store, so a
/// command can refuse bad input before it creates anything.
pub fn check_hosted(input: &str, domains: &[Domain]) -> Result<Address> {
    let address = Address::parse(input).map_err(|source| AccountError::Address {
        input: input.trim().to_string(),
        source,
    })?;
    if !domains.contains(address.domain()) {
        return Err(AccountError::NotHosted {
            address: address.to_string(),
            hosted: domains
                .iter()
                .map(Domain::to_unicode)
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn accounts() -> (tempfile::TempDir, Accounts) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let domains = vec![
            Domain::parse("camp.example").unwrap(),
            Domain::parse("[10.42.0.1]").unwrap(),
        ];
        (dir, Accounts::new(store, domains))
    }

    #[tokio::test]
    async fn create_verify_passwd_remove() {
        let (_d, a) = accounts().await;
        let c = a.create("Alice@Camp.Example", None).await.unwrap();
        assert_eq!(c.address.to_string(), "alice@camp.example");
        let pw = c.generated_password.unwrap();
        assert_eq!(
            a.verify("alice@camp.example", &pw)
                .await
                .unwrap()
                .map(|c| c.account),
            Some(c.id)
        );
        assert_eq!(
            a.verify("ALICE@camp.example", &pw)
                .await
                .unwrap()
                .map(|c| c.account),
            Some(c.id)
        );
        let wrong = Password::presented("nope-nope").unwrap();
        assert_eq!(a.verify("alice@camp.example", &wrong).await.unwrap(), None);
        assert_eq!(a.verify("bob@camp.example", &pw).await.unwrap(), None);
        assert_eq!(a.verify("garbage", &pw).await.unwrap(), None);

        let chosen = Password::chosen("a new long password").unwrap();
        assert!(
            a.set_password("alice@camp.example", Some(chosen.clone()))
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(a.verify("alice@camp.example", &pw).await.unwrap(), None);
        assert_eq!(
            a.verify("alice@camp.example", &chosen)
                .await
                .unwrap()
                .map(|c| c.account),
            Some(c.id)
        );

        a.remove("alice@camp.example").await.unwrap();
        assert_eq!(a.verify("alice@camp.example", &chosen).await.unwrap(), None);
        assert!(matches!(
            a.remove("alice@camp.example").await,
            Err(AccountError::NoSuchAccount(_))
        ));
    }

    #[tokio::test]
    async fn ip_literal_accounts() {
        let (_d, a) = accounts().await;
        let c = a.create("u@[10.42.0.1]", None).await.unwrap();
        assert_eq!(c.address.to_string(), "u@[10.42.0.1]");
    }

    #[tokio::test]
    async fn duplicate_and_foreign_domain_change_nothing() {
        let (_d, a) = accounts().await;
        a.create(
            "bob@camp.example",
            Some(Password::chosen("first password").unwrap()),
        )
        .await
        .unwrap();
        let e = a.create("BOB@camp.example", None).await.unwrap_err();
        assert!(
            matches!(e, AccountError::Store(store::Error::AccountExists(_))),
            "{e}"
        );
        assert!(e.to_string().contains("already exists"), "{e}");
        // The first password still works: the failed create changed nothing.
        let first = Password::presented("first password").unwrap();
        assert!(
            a.verify("bob@camp.example", &first)
                .await
                .unwrap()
                .is_some()
        );

        let e = a.create("eve@elsewhere.example", None).await.unwrap_err();
        assert!(e.to_string().contains("camp.example, [10.42.0.1]"), "{e}");
        assert_eq!(a.list().await.unwrap().len(), 1);
    }
}
