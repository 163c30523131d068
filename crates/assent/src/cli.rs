//! Command-line definitions only; behaviour lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "assent", version, about = "Assent: an opt-in-first consent ledger you can prove")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the data lives; every command takes these.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Data directory (embedded SQLite database and keys).
    #[arg(long, env = "ASSENT_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Use this database instead of the SQLite file in the data directory.
    #[arg(long, env = "ASSENT_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Configuration file (default: `assent.toml` in the working directory, if present).
    #[arg(long, env = "ASSENT_CONFIG", global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Seed a demo controller (a Maine broadband provider), print a key and URLs, then serve.
    Demo(ServeArgs),
    /// Manage controllers.
    #[command(subcommand)]
    Controllers(ControllersCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Audit the whole data directory: re-hash every entry, rebuild every Merkle tree, check
    /// every checkpoint and rebuild state.
    Verify {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Work with receipts.
    #[command(subcommand)]
    Receipt(ReceiptCommand),
    /// Work with checkpoints.
    #[command(subcommand)]
    Checkpoint(CheckpointCommand),
    /// Signed links into the preference center.
    #[command(subcommand)]
    Links(LinksCommand),
    /// Create or update a controller's catalog from a catalog file; prints the plan first.
    Apply {
        /// The catalog file (TOML; see crates/assent/catalog/demo.toml).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Print the plan and lint findings, and change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Write a controller's current catalog as a catalog file (to stdout, or to --output).
    ExportCatalog {
        #[arg(long)]
        controller: String,
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Lint every notice in a catalog file; exits 1 when there is an error. Needs no data.
    Lint {
        file: PathBuf,
        /// Warn below this readability score (default 60).
        #[arg(long)]
        min_readability: Option<f64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum LinksCommand {
    /// Print a signed, single-use link to a customer's preference center.
    Create {
        #[arg(long)]
        controller: String,
        #[arg(long)]
        subject: String,
        /// How long the link works, in seconds (default 900).
        #[arg(long)]
        ttl_seconds: Option<u64>,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum CheckpointCommand {
    /// Check a signed checkpoint note against the controller's verifier key.
    Verify {
        /// The checkpoint note, as served by `GET /v1/ledger/checkpoint`.
        file: PathBuf,
        /// The controller's verifier key (`name+keyid+key`), or a file holding it.
        #[arg(long)]
        public_key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Check a receipt offline: signature, leaf hash, checkpoint, inclusion proof.
    Verify {
        /// The receipt: a compact JWS, or the JSON `{"receipt": ...}` the API returns.
        file: PathBuf,
        /// The controller's verifier key (`name+keyid+key`), or a file holding it.
        #[arg(long)]
        public_key: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Address to listen on.
    #[arg(long, env = "ASSENT_LISTEN")]
    pub listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ControllersCommand {
    /// Create a controller.
    Create {
        /// Controller id: lowercase letters, digits and `-`.
        id: String,
        #[arg(long)]
        name: String,
        /// Languages notices must be written in (default: en and es).
        #[arg(long = "language")]
        languages: Vec<String>,
        /// Jurisdiction profiles: us-me-isp, eu-gdpr, us-ca-cpra.
        #[arg(long = "profile")]
        profiles: Vec<String>,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key and print it, once, on stdout.
    Create {
        #[arg(long)]
        controller: String,
        /// admin, catalog, collect, decide, read or audit; repeat for several.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        #[command(flatten)]
        storage: StorageArgs,
    },
}
