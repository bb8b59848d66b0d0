//! The store: one SQLite file in WAL mode, opened through sqlx, with the
//! migrations in `migrations/` applied before anything else runs.
//!
//! Only this module speaks SQL. It knows no protocol.

pub mod accounts;
pub mod admin;
pub mod blobs;
pub mod events;
pub mod expiry;
pub mod mail;
pub mod mailboxes;
pub mod peers;
pub mod radio;
pub mod relay;
pub mod settings;
pub mod sync;
pub mod uplinks;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use accounts::AccountRow;
pub use blobs::{Spool, StagedBlob, SweepReport};
pub use events::EventRow;
pub use expiry::{Expiry, ExpiryReport};
pub use mail::{Change, Delivered, Delivery, MessageRow, OutboundEnvelope, OutboxRow};
pub use mailboxes::{FlagChange, FlagOp, MailboxRow};
pub use sync::{SyncCounts, SyncRow};
pub use uplinks::UplinkRow;

/// How long a writer waits for another writer before giving up; SQLite
/// allows one writer at a time and a CLI command may hold the lock briefly.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Pool size: SQLite serialises writers, so more connections only help readers.
pub const MAX_DB_CONNECTIONS: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(
        "the database at {path} was written by a newer cairn (it has migration {version} which this one does not know): run the newer cairn, or restore a backup"
    )]
    TooNew { path: String, version: i64 },
    #[error("cannot use {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("messages cannot move between accounts")]
    CrossAccount,
    #[error("cannot update the database schema: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    #[error(
        "a peer named {0} already exists with that name or key: remove it first with `cairn peer remove {0}`, or give this one another name"
    )]
    PeerExists(String),
    #[error(
        "an account {0} already exists: pick another address, or use `cairn account passwd` to change its password"
    )]
    AccountExists(String),
}

impl Error {
    /// The disk (or the data partition) is full: a file write failed with
    /// ENOSPC, or SQLite said SQLITE_FULL. Mail servers answer this with a
    /// temporary 452 so senders retry later.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Io { source, .. } => source.kind() == std::io::ErrorKind::StorageFull,
            Error::Database(sqlx::Error::Io(e)) => e.kind() == std::io::ErrorKind::StorageFull,
            // SQLITE_FULL is 13; extended codes keep it in the low byte.
            Error::Database(sqlx::Error::Database(e)) => e
                .code()
                .and_then(|c| c.parse::<i64>().ok())
                .is_some_and(|c| c & 0xff == 13),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Seconds since the Unix epoch, as stored in every `*_at` column.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Unix time in milliseconds (the radio's ledger and signal samples).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Changes queued for subscribers that have not read them yet; a slower
/// subscriber gets `Lagged` and must re-read its mailbox state.
pub const CHANGE_QUEUE: usize = 4096;

/// Directories beside the database.
#[derive(Debug)]
struct Dirs {
    blobs: PathBuf,
    tmp: PathBuf,
    /// Bodies of link transfers cut off midway, kept to resume.
    partial: PathBuf,
}

/// A handle on the database and the blob files; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    dirs: Arc<Dirs>,
    changes: tokio::sync::broadcast::Sender<Change>,
    /// Counts removed accounts and password changes (see
    /// [`Store::credential_changes`]).
    credentials: Arc<tokio::sync::watch::Sender<u64>>,
    /// Held from commit to publication, so change events go out in commit
    /// order: an IDLE session then sees UIDs one after another and adds
    /// them without asking the database.
    publish: Arc<tokio::sync::Mutex<()>>,
    /// Shared by blob writers, exclusive for garbage collection.
    gc: Arc<tokio::sync::RwLock<()>>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    /// Open (creating if needed) the store in `dir`: `cairn.db`, `blobs/`,
    /// `tmp/`; bring the schema up to date.
    pub async fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("cairn.db");
        let dirs = Dirs {
            blobs: dir.join("blobs"),
            tmp: dir.join("tmp"),
            partial: dir.join("partial"),
        };
        for d in [&dirs.blobs, &dirs.tmp, &dirs.partial] {
            std::fs::create_dir_all(d).map_err(|source| Error::Io {
                path: d.clone(),
                source,
            })?;
        }
        let path = path.as_path();
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk when it returns, so "250 OK" means durable.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_DB_CONNECTIONS)
            .connect_with(options)
            .await?;
        let store = Store {
            pool,
            dirs: Arc::new(dirs),
            changes: tokio::sync::broadcast::channel(CHANGE_QUEUE).0,
            credentials: Arc::new(tokio::sync::watch::channel(0).0),
            publish: Arc::default(),
            gc: Arc::new(tokio::sync::RwLock::new(())),
        };
        store.migrate(path).await?;
        Ok(store)
    }

    async fn migrate(&self, path: &Path) -> Result<()> {
        match MIGRATOR.run(&self.pool).await {
            Ok(()) => Ok(()),
            Err(sqlx::migrate::MigrateError::VersionMissing(version)) => Err(Error::TooNew {
                path: path.display().to_string(),
                version,
            }),
            Err(e) => Err(Error::Migrate(e)),
        }
    }

    /// Versions of the migrations applied, oldest first.
    pub async fn schema_versions(&self) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Close every connection; the WAL is checkpointed by the last one.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// One statement with one argument; how many rows it changed.
    pub(crate) async fn execute_with<'q, T>(&self, sql: &'static str, arg: T) -> Result<u64>
    where
        T: 'q + Send + sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
    {
        let done = sqlx::query(sql).bind(arg).execute(self.pool()).await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
/// For tests: a fresh store in a temporary directory with one account,
/// `a@[127.0.0.1]`.
pub(crate) async fn with_one_account() -> (tempfile::TempDir, Store, crate::domain::AccountId) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let alice = add_test_account(&store, "a@[127.0.0.1]").await;
    (dir, store, alice)
}

#[cfg(test)]
/// For tests: one more account in `store`.
pub(crate) async fn add_test_account(store: &Store, address: &str) -> crate::domain::AccountId {
    let a = crate::domain::Address::parse(address).unwrap();
    let hash = crate::domain::Password::chosen("password one")
        .unwrap()
        .hash()
        .unwrap();
    store.account_insert(&a, &hash).await.unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountId, Generation};

    #[tokio::test]
    async fn open_migrates_and_reopen_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let store = Store::open(path).await.unwrap();
        assert_eq!(
            store.schema_versions().await.unwrap(),
            (1..=14).collect::<Vec<i64>>()
        );
        store.settings_set("hub.test", "1").await.unwrap();
        store.close().await;
        let store = Store::open(path).await.unwrap();
        assert_eq!(
            store.settings_get("hub.test").await.unwrap().as_deref(),
            Some("1")
        );
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }

    /// A database in a temporary directory with the migrations up to
    /// `version` applied, as an older cairn left it.
    async fn database_at(version: i64) -> (tempfile::TempDir, SqlitePool) {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("cairn.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        MIGRATOR.run_to(version, &pool).await.unwrap();
        (dir, pool)
    }

    /// A database at migration `version` with the rows of `inserts`,
    /// then opened as a store (which runs the migrations after it).
    async fn upgraded_from(version: i64, inserts: &[&'static str]) -> (tempfile::TempDir, Store) {
        let (dir, pool) = database_at(version).await;
        for q in inserts {
            sqlx::query(*q)
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("{q}: {e}"));
        }
        pool.close().await;
        let store = Store::open(dir.path()).await.unwrap();
        (dir, store)
    }

    /// Migration 6 rebuilds `peers`; a hub upgraded with peers, routes and
    /// queued items keeps all of them (foreign keys must not cascade).
    #[tokio::test]
    async fn classic_peer_migration_keeps_peers_routes_and_items() {
        let (_dir, store) = upgraded_from(
            5,
            &[
            "INSERT INTO peers (id, name, public_key, domains, added_at, last_sent_at) VALUES (7, 'b', zeroblob(32), '[\"b.example\"]', 1, 2)",
            "INSERT INTO routes (domain, peer_id) VALUES ('b.example', 7), ('*', 7)",
            "INSERT INTO blobs (hash, size, refs) VALUES ('h', 1, 1)",
            "INSERT INTO outbox (blob_hash, mail_from, rcpts, state, created_at, next_attempt_at, peer_id, item_id) VALUES ('h', 'a@a.example', '[\"x@b.example\"]', 'queued', 1, 1, 7, 'i')",
            "INSERT INTO acks_due (peer_id, item_id) VALUES (7, 'j')",
            ],
        )
        .await;
        let peers = store.peer_list().await.unwrap();
        assert_eq!(peers.len(), 1);
        assert_eq!((peers[0].id.0, peers[0].kind.as_str()), (7, "cairn"));
        assert_eq!(peers[0].key(), Some([0; 32]));
        assert_eq!(peers[0].last_sent_at, Some(2));
        assert_eq!(store.routes().await.unwrap().len(), 2);
        assert_eq!(
            store
                .outbox_for_peer(crate::domain::PeerId(7))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store.acks_due(crate::domain::PeerId(7)).await.unwrap(),
            vec!["j".to_string()]
        );
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(fk, 1, "foreign keys are back on");
        // A cairn peer still needs its key; a classic one does not.
        assert!(
            sqlx::query("INSERT INTO peers (name, added_at) VALUES ('k', 1)")
                .execute(store.pool())
                .await
                .is_err()
        );
        sqlx::query("INSERT INTO peers (name, kind, added_at) VALUES ('c', 'classic', 1)")
            .execute(store.pool())
            .await
            .unwrap();
        // Removing a peer still cascades to its routes.
        assert!(store.peer_remove("b").await.unwrap());
        assert!(store.routes().await.unwrap().is_empty());
    }

    /// Migration 12 rebuilds `accounts` with AUTOINCREMENT: accounts,
    /// their mailboxes, mail and metadata stay; a removed account's id is
    /// never handed out again; new accounts still get their INBOX.
    #[tokio::test]
    async fn account_generation_migration_keeps_accounts_and_never_reuses_ids() {
        let (_dir, store) = upgraded_from(
            11,
            &[
            "INSERT INTO accounts (id, address, password_hash, created_at, password_changed_at) VALUES (1, 'a@x', 'h1', 1, 1), (2, 'b@x', 'h2', 1, 1)",
            "INSERT INTO metadata (account_id, name, value) VALUES (2, '/private/k', 'v')",
            ],
        )
        .await;
        let list = store.account_list().await.unwrap();
        assert_eq!(list.len(), 2);
        let b = crate::domain::Address::parse("b@x").unwrap();
        let inbox = store.inbox(AccountId(2)).await.unwrap();
        assert!(inbox.0 > 0);
        assert_eq!(
            store
                .metadata_get(AccountId(2), "/private/k")
                .await
                .unwrap()
                .as_deref(),
            Some("v")
        );
        let (credential, _) = store.account_credentials(&b).await.unwrap().unwrap();
        assert_eq!(credential.generation, Generation::FIRST);
        assert!(store.credential_current(credential).await.unwrap());
        // The highest id goes; the next account does not get it back.
        assert!(store.account_remove(&b).await.unwrap());
        assert!(!store.credential_current(credential).await.unwrap());
        let c = crate::domain::Address::parse("c@x").unwrap();
        let hash = crate::domain::PasswordHash::from_stored("h3".into());
        let id = store.account_insert(&c, &hash).await.unwrap();
        assert_eq!(id, AccountId(3));
        assert!(store.inbox(id).await.is_ok(), "a new account has its INBOX");
        // A password change raises the generation.
        let (before, _) = store.account_credentials(&c).await.unwrap().unwrap();
        store.account_set_password(&c, &hash).await.unwrap();
        assert!(!store.credential_current(before).await.unwrap());
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(fk, 1, "foreign keys are back on");
    }

    #[tokio::test]
    async fn database_from_a_newer_cairn_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let store = Store::open(path).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (9999, 'future', 1, x'00', 0)",
        )
        .execute(store.pool())
        .await
        .unwrap();
        store.close().await;
        let err = Store::open(path).await.unwrap_err().to_string();
        assert!(err.contains("newer cairn"), "{err}");
    }
}
