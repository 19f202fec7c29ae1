//! The command line: `serve`, `migrate`, `config check`, `keys …`, `user …`.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::app::{App, auth_service, ensure_client_key, open_store};
use crate::auth::password::PasswordHasher;
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::keys::generate_key;
use crate::limits::RateLimiter;
use crate::mail::MailQueue;

/// Basalt: a self-hosted authentication and user-data server for altogic apps.
#[derive(Debug, Parser)]
#[command(name = "basalt", version, about)]
pub struct Cli {
    /// TOML configuration file (values there are overridden by BASALT_* variables).
    #[arg(long, global = true, env = "BASALT_CONFIG")]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (defaults: ./basalt-data, 127.0.0.1:8090, mail to the dev outbox).
    Serve(ServeArgs),
    /// Create or upgrade the database, then exit. With --from and --to: copy a SQLite
    /// installation into an empty PostgreSQL database instead.
    Migrate(MigrateArgs),
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Client keys (the X-Client-Key an app sends).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Measure how many password hashes a second this machine does with the configured
    /// Argon2id parameters and pool size (to tune `auth.password_hash`).
    HashRate {
        /// How long to measure.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Accounts, for operators. Passwords are read from standard input.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Serve this folder's built single-page app at `/` (sets `app.static_dir`).
    #[arg(long, value_name = "DIR")]
    static_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct MigrateArgs {
    /// Copy this SQLite installation: `sqlite:PATH`, its database file or data directory
    /// (it may be running; one snapshot is read).
    #[arg(long, value_name = "sqlite:PATH", requires = "to")]
    from: Option<String>,
    /// Into this PostgreSQL database (`postgres://…`), which must be empty; it is migrated
    /// first.
    #[arg(long, value_name = "postgres://…", requires = "from")]
    to: Option<String>,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the merged configuration (secrets redacted); exit non-zero if it is invalid.
    Check,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// List the stored keys.
    List,
    /// Create a key and print it.
    Create {
        /// A label for the key.
        #[arg(long, default_value = "created by CLI")]
        name: String,
    },
    /// Revoke a key: API calls with it are refused within seconds.
    Revoke {
        /// The key.
        key: String,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a verified account; the password is read from standard input.
    Create {
        /// Email address.
        email: String,
    },
    /// Set an account's password (read from standard input); ends its sessions.
    SetPassword {
        /// Email address.
        email: String,
    },
    /// Delete an account and its sessions.
    Delete {
        /// Email address.
        email: String,
    },
}

/// Parse the command line and run it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BASALT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref())?;
    let clock: SharedClock = Arc::new(SystemClock);
    match cli.command {
        Command::Serve(args) => {
            if let Some(dir) = args.static_dir {
                config.app.static_dir = Some(dir);
                config.validate()?;
            }
            serve(config, clock).await
        }
        Command::Migrate(MigrateArgs {
            from: Some(from),
            to: Some(to),
        }) => copy(&from, &to).await,
        Command::Migrate(_) => {
            open_store(&config).await?;
            if config.postgres_url().is_some() {
                println!("the PostgreSQL database (database.url) is up to date");
            } else {
                println!("database in {} is up to date", config.data_dir.display());
            }
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            print!("{}", config.to_redacted_toml());
            Ok(())
        }
        Command::Keys { command } => keys(config, clock, command).await,
        Command::HashRate { seconds } => hash_rate(&config, seconds).await,
        Command::User { command } => user(config, clock, command).await,
    }
}

async fn serve(config: Config, clock: SharedClock) -> anyhow::Result<()> {
    let base = config.public_base().to_string();
    let dev_outbox = config.mail.dev_outbox_enabled();
    let serves_app = config.app.static_dir.is_some();
    let app = App::build(config, clock).await?;
    let addr = app.local_addr()?;
    println!("Basalt is ready on {addr}");
    if serves_app {
        println!("  app:       {base}/");
    }
    println!("  envUrl:    {base}");
    println!("  clientKey: {}", app.client_key);
    if dev_outbox {
        println!("  mailbox:   {base}/_dev/mailbox");
    }
    app.run_until_stopped(shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// `migrate --from sqlite:PATH --to postgres://…`: copy, then print what was copied.
async fn copy(from: &str, to: &str) -> anyhow::Result<()> {
    let Some(path) = from.strip_prefix("sqlite:") else {
        bail!("--from must be sqlite:PATH (the SQLite database file or the data directory)");
    };
    let path = path.strip_prefix("//").unwrap_or(path);
    if path.is_empty() {
        bail!("--from must be sqlite:PATH (the SQLite database file or the data directory)");
    }
    let report = crate::store::copy::sqlite_to_postgres(std::path::Path::new(path), to).await?;
    let (sqlite_level, postgres_level) = report.schema_level;
    println!(
        "copied {} into PostgreSQL in one transaction (schema level {sqlite_level} on SQLite, \
         {postgres_level} on PostgreSQL); rows per table, each matching the source's count:",
        report.source.display()
    );
    let mut total = 0;
    for (table, rows) in &report.tables {
        println!("  {table:<22} {rows:>10}");
        total += rows;
    }
    println!("  {:<22} {total:>10}", "total");
    println!(
        "File bytes were not copied: they stay in the data directory's files/ folder; give \
         every node that data directory (or move files/ with it), see docs/DEPLOY.md."
    );
    Ok(())
}

async fn hash_rate(config: &Config, seconds: u64) -> anyhow::Result<()> {
    let params = &config.auth.password_hash;
    let hasher = PasswordHasher::new(params)?;
    let slots = hasher.slots();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds.max(1));
    let started = std::time::Instant::now();
    let workers: Vec<_> = (0..slots)
        .map(|_| {
            let hasher = hasher.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                while tokio::time::Instant::now() < deadline {
                    if hasher.hash("benchmark password").await.is_ok() {
                        done += 1;
                    }
                }
                done
            })
        })
        .collect();
    let mut total = 0u64;
    for worker in workers {
        total += worker.await.unwrap_or(0);
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    println!(
        "{rate:.1} hashes/s (Argon2id m={} KiB, t={}, p={}; {slots} concurrent)",
        params.memory_kib, params.iterations, params.parallelism
    );
    Ok(())
}

async fn keys(config: Config, clock: SharedClock, command: KeysCommand) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    match command {
        KeysCommand::List => {
            ensure_client_key(&store, &clock).await?;
            for key in store.client_keys().await? {
                let state = if key.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!("{}\t{state}\t{}", key.key, key.name);
            }
        }
        KeysCommand::Create { name } => {
            let key = generate_key();
            store.insert_client_key(&key, &name, clock.now()).await?;
            println!("{key}");
        }
        KeysCommand::Revoke { key } => {
            if !store.revoke_client_key(&key, clock.now()).await? {
                bail!("no active key {key}");
            }
            println!("revoked {key}");
        }
    }
    Ok(())
}

async fn user(config: Config, clock: SharedClock, command: UserCommand) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let limits = Arc::new(RateLimiter::new(config.rate_limits.clone(), clock.clone()));
    let auth = auth_service(&config, store, clock, limits, MailQueue::default())?;
    let outcome = match command {
        UserCommand::Create { email } => {
            let password = read_password()?;
            let user = auth.create_user(&email, &password).await;
            user.map(|user| println!("created {} ({})", user.email, user.id))
        }
        UserCommand::SetPassword { email } => {
            let password = read_password()?;
            let done = auth.set_password(&email, &password).await;
            done.map(|()| println!("password of {email} set; its sessions ended"))
        }
        UserCommand::Delete { email } => match auth.delete_user(&email).await {
            Ok(true) => {
                println!("deleted {email}");
                Ok(())
            }
            Ok(false) => bail!("no account {email}"),
            Err(err) => Err(err),
        },
    };
    outcome.map_err(|err| match err {
        crate::auth::AuthError::Validation(fields) => anyhow::anyhow!(
            "{}",
            fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        crate::auth::AuthError::EmailTaken => anyhow::anyhow!("that email address is taken"),
        crate::auth::AuthError::InvalidCredentials => anyhow::anyhow!("no such account"),
        other => anyhow::anyhow!("{other}"),
    })
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!(
            "give the password on standard input, e.g. `echo 'a long password' | basalt user create ada@example.com`"
        );
    }
    Ok(password)
}
