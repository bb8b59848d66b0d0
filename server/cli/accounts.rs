//! `cairn account`, `cairn admin` and `cairn outbox`.

use super::*;

#[derive(Subcommand, Debug)]
pub(super) enum OutboxCommand {
    /// List every outbox item: state, next hop, age, size, sender and recipients.
    List,
    /// Send a held or in-flight item again at the next chance.
    Retry { id: i64 },
    /// Keep an item here until `outbox retry`.
    Hold { id: i64 },
    /// Remove an item; its sender gets a bounce unless --quietly.
    Drop {
        id: i64,
        #[arg(long)]
        quietly: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum AccountCommand {
    /// Create an account; prints a generated password when none is given.
    Add {
        address: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// List every account.
    List,
    /// Set a new password; prints a generated one when none is given.
    Passwd {
        address: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Delete an account and its mail.
    Remove {
        address: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum AdminCommand {
    /// Set the admin password of the web pages (ends the one-time setup code).
    SetPassword {
        #[command(flatten)]
        password: PasswordArgs,
    },
}

pub(super) async fn account(config: Config, cmd: &AccountCommand) -> Result<()> {
    // Validate input before touching the disk.
    let password = match cmd {
        AccountCommand::Add { password, .. } | AccountCommand::Passwd { password, .. } => {
            read_password(password)?
        }
        _ => None,
    };
    let exists = datadir::require_existing(&Layout::new(config.data_dir.clone()));
    match (cmd, exists) {
        // A first command: nothing on disk yet, and no domains but the file's.
        (AccountCommand::Add { address, .. }, Err(_)) => {
            let probe = crate::mail::accounts::check_hosted(address, &config.hub.domains)?;
            drop(probe);
        }
        (AccountCommand::Add { .. }, Ok(_)) => {}
        (_, exists) => {
            exists?;
        }
    }
    let (store, config) = open_store(&config).await?;
    let accounts = Accounts::new(store.clone(), config.hub.domains.clone());
    let result = account_inner(&accounts, cmd, password).await;
    store.close().await;
    result
}

pub(super) async fn account_inner(
    accounts: &Accounts,
    cmd: &AccountCommand,
    password: Option<Password>,
) -> Result<()> {
    match cmd {
        AccountCommand::Add { address, .. } => {
            let created = accounts.create(address, password).await?;
            match created.generated_password {
                Some(p) => println!("created {} with password {}", created.address, p.expose()),
                None => println!("created {}", created.address),
            }
        }
        AccountCommand::List => {
            let list = accounts.list().await?;
            if list.is_empty() {
                println!("no accounts yet: add one with `cairn account add NAME@DOMAIN`");
            }
            for a in list {
                println!("{}", a.address);
            }
        }
        AccountCommand::Passwd { address, .. } => {
            match accounts.set_password(address, password).await? {
                Some(p) => println!("new password for {}: {}", address.trim(), p.expose()),
                None => println!("password changed for {}", address.trim()),
            }
        }
        AccountCommand::Remove { address, yes } => {
            let Some(row) = accounts.find(address).await? else {
                bail!(
                    "there is no account {}: `cairn account list` shows them all",
                    address.trim()
                );
            };
            if !yes && !confirm(&format!("Remove {} and all its mail? [y/N] ", row.address))? {
                bail!("not removed: answer y to confirm, or pass --yes");
            }
            accounts.remove(&row.address).await?;
            println!("removed {}", row.address);
        }
    }
    Ok(())
}

pub(super) async fn admin(config: Config, cmd: &AdminCommand) -> Result<()> {
    match cmd {
        AdminCommand::SetPassword { password } => {
            let (password, generated) = match read_password(password)? {
                Some(p) => (p, false),
                None => (Password::generate()?, true),
            };
            let hash = tokio::task::spawn_blocking({
                let p = password.clone();
                move || p.hash()
            })
            .await
            .context("password hashing was interrupted")??;
            let (store, _) = open_store(&config).await?;
            store
                .settings_set(SETTING_ADMIN_PASSWORD, hash.as_str())
                .await?;
            store.settings_delete(SETTING_SETUP_CODE).await?;
            // Whoever was logged in with the old password is logged out.
            store.admin_sessions_clear().await?;
            store
                .event("admin.password", None, Some("set from the command line"))
                .await?;
            store.close().await;
            let code_file = Layout::new(config.data_dir.clone()).setup_code();
            if code_file.exists() {
                std::fs::remove_file(&code_file)
                    .with_context(|| format!("cannot remove {}", code_file.display()))?;
            }
            if generated {
                println!("admin password set: {}", password.expose());
            } else {
                println!("admin password set");
            }
            println!("the setup code is no longer needed");
        }
    }
    Ok(())
}

pub(super) async fn outbox_list(config: Config) -> Result<()> {
    datadir::require_existing(&Layout::new(config.data_dir.clone()))?;
    let (store, _) = open_store(&config).await?;
    let items = store.outbox().await;
    store.close().await;
    let items = items?;
    if items.is_empty() {
        println!("the outbox is empty");
        return Ok(());
    }
    println!(
        "{:>6}  {:<12} {:<12} {:>10}  {:>8}  from -> to",
        "id", "state", "next hop", "age", "bytes"
    );
    let now = crate::store::now();
    for i in items {
        let age = human_age(now - i.created_at);
        let from = if i.mail_from.is_empty() {
            "<>"
        } else {
            &i.mail_from
        };
        println!(
            "{:>6}  {:<12} {:<12} {:>10}  {:>8}  {} -> {}",
            i.id,
            i.state,
            i.next_hop.as_deref().unwrap_or("-"),
            age,
            i.size,
            from,
            i.recipients().join(", ")
        );
        if let Some(e) = &i.last_error {
            println!("{:>6}  last error: {e}", "");
        }
    }
    Ok(())
}

pub(super) async fn outbox_change(config: Config, cmd: &OutboxCommand) -> Result<()> {
    datadir::require_existing(&Layout::new(config.data_dir.clone()))?;
    let relay = open_relay(&config).await?;
    let result = match cmd {
        OutboxCommand::Retry { id } => relay
            .retry(*id)
            .await
            .map(|()| format!("outbox item {id} goes with the next bundle")),
        OutboxCommand::Hold { id } => relay
            .hold(*id)
            .await
            .map(|()| format!("outbox item {id} is held until `cairn outbox retry {id}`")),
        OutboxCommand::Drop { id, quietly } => relay.drop_item(*id, *quietly).await.map(|()| {
            if *quietly {
                format!("outbox item {id} removed")
            } else {
                format!("outbox item {id} removed; its sender gets a bounce")
            }
        }),
        OutboxCommand::List => unreachable!("handled by outbox_list"),
    };
    let _ = relay.store().wake_hub().await;
    relay.store().close().await;
    println!("{}", result?);
    Ok(())
}
