//! The registry database: what nodes last said about themselves (their registrations), and
//! discovery from it (`--dm registry`).
//!
//! The registry service (`mcod registry`) fills it with [`Registry::record`] and empties it
//! of silent nodes with [`Registry::forget_older_than`]; clients ask it with
//! [`Registry::discover`]. It is an SQLite file by default (embedded: nothing to install or
//! run) and a PostgreSQL database when the URL says `postgres://` or `postgresql://`, so
//! several registry services and many clients can share one.
//!
//! [`Registry::discover`] answers every filter with the one evaluator in `mco_spec`
//! ([`mco_spec::CompiledFilter::matches`]), over the facts, classes and agents each node
//! registered, so a registry and a broadcast agree. The parts SQL answers cheaply are pushed
//! down: the collective, exact identity names and the expiry cutoff. Data-plugin calls in
//! `-S` filters (`fstat('/etc/hosts').size>=100`) are refused ([`RegistryError::Unsupported`]):
//! only a live node can answer them, and answering "false" would silently narrow the result.
//!
//! Nodes not heard from within the expiry time ([`Registry::set_expire_after`], written by the
//! service into the database) are never returned, even before the service deletes them.
//! Times are the registry's and the client's clocks, which are expected to agree within
//! seconds, as a fleet's clocks must anyway for signed requests.
//!
//! The SQLite file and its `-wal`/`-shm` files are created with mode 0640 (the service's
//! group may read them, others not), and an existing file is tightened to that. PostgreSQL
//! connections are encrypted and verified as the URL's `sslmode` and `sslrootcert` say, with
//! a default that never sends the registry in clear across a network (see README's Registry
//! section for the modes and the default).
//!
//! The API is synchronous (both drivers are); async callers use `spawn_blocking`.
//!
//! Not for: receiving or verifying registrations (the service does that before it records
//! one) or talking to NATS.
//!
//! ```
//! use std::time::Duration;
//! use mco_discovery::registry::Registry;
//! use mco_spec::{registration::Registration, Filter};
//! # let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("registry.sqlite");
//! let registry = Registry::open(&path.display().to_string()).unwrap();
//! registry.set_expire_after(Duration::from_secs(300)).unwrap();
//! registry.record(&Registration {
//!     identity: "web1".into(),
//!     collectives: vec!["mco".into()],
//!     facts: serde_json::json!({"country": "uk"}),
//!     classes: vec!["role::web".into()],
//!     agents: vec!["rpcutil".into()],
//!     time: mco_spec::message::now_millis(),
//! }).unwrap();
//! let mut filter = Filter::default();
//! filter.add_compound("country=uk and role::web").unwrap();
//! assert_eq!(registry.discover(&filter, "mco").unwrap(), ["web1"]);
//! ```

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use mco_spec::message::now_millis;
use mco_spec::registration::Registration;
use mco_spec::{Filter, NodeView};
use serde_json::Value;

/// Why the registry could not be opened, written or asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The URL is not a registry location.
    #[error(
        "registry URL {0:?}: use a file path, sqlite://PATH, or postgres://USER@HOST/DATABASE"
    )]
    InvalidUrl(String),
    /// The PostgreSQL URL's options are wrong or do not go together (`sslmode` and
    /// `sslrootcert`, or an option the driver does not know).
    #[error("registry {location}: {reason}")]
    InvalidConnection {
        /// The database (without password).
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// TLS refused the connection to PostgreSQL: the server's certificate did not verify, or
    /// the server offers no TLS where the URL's `sslmode` requires it. Never retried in clear.
    #[error("registry {location}: cannot connect securely: {reason}")]
    Tls {
        /// The database (without password).
        location: String,
        /// What failed.
        reason: String,
    },
    /// The database (file) does not exist: the registry service has not created it.
    #[error("registry {location} does not exist: run the registry service (mcod registry) with this database, or point --do url=... / registry_url at the one it uses")]
    Missing {
        /// The file or database (without password).
        location: String,
    },
    /// The database exists but has no registry tables.
    #[error("registry {location} has no registry tables: is it the database the registry service (mcod registry) writes?")]
    NoSchema {
        /// The file or database (without password).
        location: String,
    },
    /// The database could not be reached, or a statement failed.
    #[error("registry {location}: {reason}")]
    Database {
        /// The file or database (without password).
        location: String,
        /// The driver's message.
        reason: String,
    },
    /// The filter does not compile.
    #[error(transparent)]
    Filter(#[from] mco_spec::FilterError),
    /// The filter calls data plugins, which only the nodes themselves can answer.
    #[error("the registry discovery method cannot use data plugin calls in -S filters ({plugins}): only the nodes themselves can answer them; use --dm broadcast for such filters")]
    Unsupported {
        /// The data plugins the filter calls.
        plugins: String,
    },
    /// A stored row cannot be read back (written by something else, or damaged).
    #[error("registry {location}: the entry for {identity:?} is unreadable: {reason}")]
    Corrupt {
        /// The file or database (without password).
        location: String,
        /// The node.
        identity: String,
        /// What is wrong.
        reason: String,
    },
}

/// What the registry holds about one node.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredNode {
    /// The node's identity.
    pub identity: String,
    /// Its collectives.
    pub collectives: Vec<String>,
    /// Its facts.
    pub facts: Value,
    /// Its classes.
    pub classes: Vec<String>,
    /// Its agents.
    pub agents: Vec<String>,
    /// When it last registered (its registration time, never later than when it arrived),
    /// Unix milliseconds.
    pub seen_ms: u64,
}

/// A registry database; see the [module docs](self).
pub struct Registry {
    backend: Mutex<Backend>,
    location: String,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

enum Backend {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::Client),
}

/// Where a URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

fn parse_url(url: &str) -> Result<Location, RegistryError> {
    let url = url.trim();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Location::Postgres(url.to_string()));
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() || path.contains("://") {
        return Err(RegistryError::InvalidUrl(url.to_string()));
    }
    Ok(Location::Sqlite(PathBuf::from(path)))
}

/// The URL without its password (in the credentials or a `password=` option), for messages.
fn redact(url: &str) -> String {
    let (base, query) = crate::pg_tls::split_query(url);
    let base = match base.split_once("://").and_then(|(scheme, rest)| {
        let (user, host) = rest.split_once('@')?;
        let (name, _) = user.split_once(':')?;
        Some(format!("{scheme}://{name}:***@{host}"))
    }) {
        Some(hidden) => hidden,
        None => base.to_string(),
    };
    match query {
        None => base,
        Some(query) => {
            let options: Vec<&str> = query
                .split('&')
                .map(|o| {
                    if o.starts_with("password=") {
                        "password=***"
                    } else {
                        o
                    }
                })
                .collect();
            format!("{base}?{}", options.join("&"))
        }
    }
}

/// The mode of the SQLite registry and its `-wal`/`-shm` files: the service (owner) writes,
/// its group reads (operators running `mco --dm registry` on the registry host, added to that
/// group), and other local accounts get nothing: every node's facts are in it.
const SQLITE_MODE: u32 = 0o640;

/// Creates the registry file with [`SQLITE_MODE`] before SQLite opens it (SQLite would use
/// 0644 less the umask, and gives its `-wal` and `-shm` files the database file's mode), and
/// takes away what an existing file and its `-wal`/`-shm` allow beyond that mode, so a
/// registry written by an older version is tightened, not left readable.
fn restrict_sqlite_files(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(SQLITE_MODE)
        .open(path)
        .map_err(|e| format!("cannot create it: {e}"))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = PathBuf::from(name);
        let mode = match std::fs::metadata(&file) {
            Ok(meta) => meta.permissions().mode() & 0o7777,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", file.display())),
        };
        if mode & !SQLITE_MODE != 0 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode & SQLITE_MODE))
                .map_err(|e| {
                    format!(
                        "{}: cannot take group write and others' access away (mode {mode:04o}): {e}",
                        file.display()
                    )
                })?;
        }
    }
    Ok(())
}

const SCHEMA: &[&str] = &[
    // Lists are JSON text: the evaluator reads them whole, and JSON text is the one column
    // type both databases store alike.
    "CREATE TABLE IF NOT EXISTS mco_registry_nodes (
        identity TEXT PRIMARY KEY,
        collectives TEXT NOT NULL,
        facts TEXT NOT NULL,
        classes TEXT NOT NULL,
        agents TEXT NOT NULL,
        seen_ms BIGINT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS mco_registry_nodes_seen ON mco_registry_nodes (seen_ms)",
    // One row per membership, so the collective is answered by an index, not by parsing.
    "CREATE TABLE IF NOT EXISTS mco_registry_collectives (
        collective TEXT NOT NULL,
        identity TEXT NOT NULL,
        PRIMARY KEY (collective, identity)
    )",
    "CREATE TABLE IF NOT EXISTS mco_registry_settings (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )",
];

/// A statement parameter.
#[derive(Debug, Clone, Copy)]
enum Param<'a> {
    Text(&'a str),
    Int(i64),
}

/// A value read back; each query knows which columns are which.
#[derive(Debug, Clone)]
enum Cell {
    Text(String),
    Int(i64),
    Null,
}

impl Cell {
    fn text(&self) -> &str {
        match self {
            Cell::Text(s) => s,
            _ => "",
        }
    }
    fn int(&self) -> i64 {
        match self {
            Cell::Int(i) => *i,
            _ => 0,
        }
    }
}

/// The few statements the registry runs, on either database. Statements are written with
/// PostgreSQL's `$1` placeholders; SQLite reads them as `?1`.
trait Sql {
    fn exec(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, String>;
    fn rows(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Vec<Cell>>, String>;
}

impl Sql for rusqlite::Connection {
    fn exec(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, String> {
        let sql = sql.replace('$', "?");
        let params: Vec<&dyn rusqlite::ToSql> = params.iter().map(sqlite_param).collect();
        self.execute(&sql, params.as_slice())
            .map(|n| n as u64)
            .map_err(|e| e.to_string())
    }

    fn rows(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Vec<Cell>>, String> {
        let sql = sql.replace('$', "?");
        let params: Vec<&dyn rusqlite::ToSql> = params.iter().map(sqlite_param).collect();
        let mut statement = self.prepare(&sql).map_err(|e| e.to_string())?;
        let columns = statement.column_count();
        let rows = statement
            .query_map(params.as_slice(), |row| {
                (0..columns)
                    .map(|i| {
                        Ok(match row.get::<_, rusqlite::types::Value>(i)? {
                            rusqlite::types::Value::Integer(n) => Cell::Int(n),
                            rusqlite::types::Value::Text(s) => Cell::Text(s),
                            _ => Cell::Null,
                        })
                    })
                    .collect::<Result<Vec<Cell>, rusqlite::Error>>()
            })
            .map_err(|e| e.to_string())?;
        rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
    }
}

fn sqlite_param<'a>(p: &'a Param<'a>) -> &'a dyn rusqlite::ToSql {
    match p {
        Param::Text(s) => s,
        Param::Int(n) => n,
    }
}

fn pg_exec(
    client: &mut impl postgres::GenericClient,
    sql: &str,
    params: &[Param<'_>],
) -> Result<u64, String> {
    let params: Vec<&(dyn postgres::types::ToSql + Sync)> = params.iter().map(pg_param).collect();
    client
        .execute(sql, params.as_slice())
        .map_err(|e| pg_reason(&e))
}

fn pg_rows(
    client: &mut impl postgres::GenericClient,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<Vec<Cell>>, String> {
    let params: Vec<&(dyn postgres::types::ToSql + Sync)> = params.iter().map(pg_param).collect();
    let rows = client
        .query(sql, params.as_slice())
        .map_err(|e| pg_reason(&e))?;
    rows.iter()
        .map(|row| {
            (0..row.len())
                .map(|i| {
                    let ty = row.columns()[i].type_();
                    if *ty == postgres::types::Type::INT8 {
                        row.try_get::<_, Option<i64>>(i)
                            .map(|v| v.map_or(Cell::Null, Cell::Int))
                    } else {
                        row.try_get::<_, Option<String>>(i)
                            .map(|v| v.map_or(Cell::Null, Cell::Text))
                    }
                    .map_err(|e| pg_reason(&e))
                })
                .collect()
        })
        .collect()
}

/// The server's message where there is one: the driver's own Display says only "db error".
fn pg_reason(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    }
}

fn pg_param<'a>(p: &'a Param<'a>) -> &'a (dyn postgres::types::ToSql + Sync) {
    match p {
        Param::Text(s) => s,
        Param::Int(n) => n,
    }
}

impl Sql for postgres::Client {
    fn exec(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, String> {
        pg_exec(self, sql, params)
    }
    fn rows(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Vec<Cell>>, String> {
        pg_rows(self, sql, params)
    }
}

impl Sql for postgres::Transaction<'_> {
    fn exec(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, String> {
        pg_exec(self, sql, params)
    }
    fn rows(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Vec<Cell>>, String> {
        pg_rows(self, sql, params)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    i64::try_from(now_millis()).unwrap_or(i64::MAX)
}

impl Registry {
    /// Opens the registry at `url`, creating the database file (SQLite) and the tables if
    /// they are not there: what the registry service does.
    pub fn open(url: &str) -> Result<Registry, RegistryError> {
        let registry = Registry::connect(url, true)?;
        registry.with(|db| {
            for statement in SCHEMA {
                db.exec(statement, &[])?;
            }
            Ok(())
        })?;
        Ok(registry)
    }

    /// Opens an existing registry, as clients do: a missing file or database, or one
    /// without the registry's tables, is an error that says so (a typo in the URL must not
    /// look like an empty fleet).
    pub fn open_existing(url: &str) -> Result<Registry, RegistryError> {
        let registry = Registry::connect(url, false)?;
        let check = match *registry.lock() {
            Backend::Sqlite(_) => {
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'mco_registry_nodes'"
            }
            Backend::Postgres(_) => {
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'mco_registry_nodes' AND table_schema = ANY (current_schemas(false))"
            }
        };
        let tables = registry.with(|db| db.rows(check, &[]))?;
        if tables.first().and_then(|r| r.first()).map_or(0, Cell::int) == 0 {
            return Err(RegistryError::NoSchema {
                location: registry.location.clone(),
            });
        }
        Ok(registry)
    }

    fn connect(url: &str, create: bool) -> Result<Registry, RegistryError> {
        let location = parse_url(url)?;
        let shown = match &location {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Postgres(url) => redact(url),
        };
        let database = |reason: String| RegistryError::Database {
            location: shown.clone(),
            reason,
        };
        let backend = match location {
            Location::Sqlite(path) => {
                use rusqlite::OpenFlags;
                if !create && !path.exists() {
                    return Err(RegistryError::Missing { location: shown });
                }
                if create {
                    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            database(format!("cannot create {}: {e}", dir.display()))
                        })?;
                    }
                }
                let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                if create {
                    flags |= OpenFlags::SQLITE_OPEN_CREATE;
                    restrict_sqlite_files(&path).map_err(database)?;
                }
                let connection = rusqlite::Connection::open_with_flags(&path, flags)
                    .map_err(|e| database(e.to_string()))?;
                // The service writes while clients read: WAL lets readers go on during a
                // write, and the busy timeout covers the moments a write locks the file.
                connection
                    .busy_timeout(Duration::from_secs(5))
                    .map_err(|e| database(e.to_string()))?;
                if create {
                    connection
                        .pragma_update(None, "journal_mode", "WAL")
                        .and_then(|_| connection.pragma_update(None, "synchronous", "NORMAL"))
                        .map_err(|e| database(e.to_string()))?;
                }
                Backend::Sqlite(connection)
            }
            Location::Postgres(url) => {
                let mut target = crate::pg_tls::Target::parse(&url).map_err(|reason| {
                    RegistryError::InvalidConnection {
                        location: shown.clone(),
                        reason,
                    }
                })?;
                // Unset, the driver waits for the operating system's TCP timeout (minutes).
                if target.config_mut().get_connect_timeout().is_none() {
                    target.config_mut().connect_timeout(Duration::from_secs(5));
                }
                let client = target.connect().map_err(|e| match e {
                    crate::pg_tls::ConnectError::Tls(reason) => RegistryError::Tls {
                        location: shown.clone(),
                        reason,
                    },
                    crate::pg_tls::ConnectError::Driver(e) => {
                        match e.as_db_error().map(|d| d.code()) {
                            Some(&postgres::error::SqlState::INVALID_CATALOG_NAME) => {
                                RegistryError::Missing {
                                    location: shown.clone(),
                                }
                            }
                            _ => database(format!(
                                "cannot connect: {}",
                                crate::pg_tls::driver_reason(&e)
                            )),
                        }
                    }
                })?;
                Backend::Postgres(client)
            }
        };
        Ok(Registry {
            backend: Mutex::new(backend),
            location: shown,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Backend> {
        // A panic while holding the lock leaves a connection that is still usable: every
        // change is one transaction, which the database rolled back.
        self.backend.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the database outside of a transaction.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, String>,
    ) -> Result<T, RegistryError> {
        let mut backend = self.lock();
        let result = match &mut *backend {
            Backend::Sqlite(c) => f(c),
            Backend::Postgres(c) => f(c),
        };
        result.map_err(|reason| self.database(reason))
    }

    /// Runs `f` in one transaction, committed when it returns `Ok`.
    fn transaction<T>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, String>,
    ) -> Result<T, RegistryError> {
        let mut backend = self.lock();
        let result = match &mut *backend {
            // IMMEDIATE takes the write lock at once, so two writers wait for each other
            // (busy timeout) instead of failing when one upgrades a read lock.
            Backend::Sqlite(c) => c
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| e.to_string())
                .and_then(|()| match f(c) {
                    Ok(out) => c
                        .execute_batch("COMMIT")
                        .map(|()| out)
                        .map_err(|e| e.to_string()),
                    Err(e) => {
                        let _ = c.execute_batch("ROLLBACK");
                        Err(e)
                    }
                }),
            Backend::Postgres(c) => c
                .transaction()
                .map_err(|e| pg_reason(&e))
                .and_then(|mut t| {
                    let out = f(&mut t)?;
                    t.commit().map_err(|e| pg_reason(&e))?;
                    Ok(out)
                }),
        };
        result.map_err(|reason| self.database(reason))
    }

    fn database(&self, reason: String) -> RegistryError {
        RegistryError::Database {
            location: self.location.clone(),
            reason,
        }
    }

    /// The file or database, without password: for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Records how long a node stays in discovery after its last registration. Kept in the
    /// database, so clients apply the service's setting.
    pub fn set_expire_after(&self, expire_after: Duration) -> Result<(), RegistryError> {
        let value = millis(expire_after).to_string();
        self.with(|db| {
            db.exec(
                "INSERT INTO mco_registry_settings (name, value) VALUES ('expire_after_ms', $1)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                &[Param::Text(&value)],
            )
            .map(drop)
        })
    }

    /// How long a node stays in discovery after its last registration, if set.
    pub fn expire_after(&self) -> Result<Option<Duration>, RegistryError> {
        let rows = self.with(|db| {
            db.rows(
                "SELECT value FROM mco_registry_settings WHERE name = 'expire_after_ms'",
                &[],
            )
        })?;
        Ok(rows
            .first()
            .and_then(|r| r.first())
            .and_then(|c| c.text().parse::<u64>().ok())
            .map(Duration::from_millis))
    }

    /// Stores a node's registration (which the caller has verified), replacing what the node
    /// said before. A registration older than the stored one (a late or replayed message)
    /// changes nothing; returns whether this one was stored.
    pub fn record(&self, registration: &Registration) -> Result<bool, RegistryError> {
        let encode = |r: serde_json::Result<String>| {
            r.map_err(|e| self.database(format!("cannot encode the registration: {e}")))
        };
        let collectives = encode(serde_json::to_string(&registration.collectives))?;
        let facts = encode(serde_json::to_string(&registration.facts))?;
        let classes = encode(serde_json::to_string(&registration.classes))?;
        let agents = encode(serde_json::to_string(&registration.agents))?;
        // A node's clock ahead of ours must not keep it in discovery past its silence.
        let seen = i64::try_from(registration.time)
            .unwrap_or(i64::MAX)
            .min(now_ms());
        let identity = registration.identity.as_str();
        self.transaction(|db| {
            let changed = db.exec(
                "INSERT INTO mco_registry_nodes (identity, collectives, facts, classes, agents, seen_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (identity) DO UPDATE SET collectives = excluded.collectives,
                     facts = excluded.facts, classes = excluded.classes,
                     agents = excluded.agents, seen_ms = excluded.seen_ms
                 WHERE excluded.seen_ms >= mco_registry_nodes.seen_ms",
                &[
                    Param::Text(identity),
                    Param::Text(&collectives),
                    Param::Text(&facts),
                    Param::Text(&classes),
                    Param::Text(&agents),
                    Param::Int(seen),
                ],
            )?;
            if changed == 0 {
                return Ok(false);
            }
            db.exec(
                "DELETE FROM mco_registry_collectives WHERE identity = $1",
                &[Param::Text(identity)],
            )?;
            for collective in &registration.collectives {
                db.exec(
                    "INSERT INTO mco_registry_collectives (collective, identity) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[Param::Text(collective), Param::Text(identity)],
                )?;
            }
            Ok(true)
        })
    }

    /// Deletes the nodes not heard from for `age`; returns how many.
    pub fn forget_older_than(&self, age: Duration) -> Result<usize, RegistryError> {
        let cutoff = now_ms().saturating_sub(millis(age));
        self.transaction(|db| {
            db.exec(
                "DELETE FROM mco_registry_collectives WHERE identity IN
                 (SELECT identity FROM mco_registry_nodes WHERE seen_ms < $1)",
                &[Param::Int(cutoff)],
            )?;
            db.exec(
                "DELETE FROM mco_registry_nodes WHERE seen_ms < $1",
                &[Param::Int(cutoff)],
            )
        })
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// The identities of the nodes in `collective` that match `filter`, sorted; see the
    /// [module docs](self) for what is refused and what is left out.
    pub fn discover(
        &self,
        filter: &Filter,
        collective: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let compiled = filter.compile()?;
        let plugins = compiled.data_plugins();
        if !plugins.is_empty() {
            return Err(RegistryError::Unsupported {
                plugins: plugins.join(", "),
            });
        }
        let cutoff = match self.expire_after()? {
            Some(age) => now_ms().saturating_sub(millis(age)),
            None => i64::MIN,
        };
        let mut sql = String::from(
            "SELECT n.identity, n.facts, n.classes, n.agents FROM mco_registry_nodes n
             JOIN mco_registry_collectives c ON c.identity = n.identity
             WHERE c.collective = $1 AND n.seen_ms >= $2",
        );
        let mut params = vec![Param::Text(collective), Param::Int(cutoff)];
        if let Some(names) = filter.exact_identities() {
            let placeholders: Vec<String> = (0..names.len())
                .map(|i| format!("${}", params.len() + 1 + i))
                .collect();
            sql.push_str(&format!(" AND n.identity IN ({})", placeholders.join(", ")));
            params.extend(names.iter().map(|n| Param::Text(n)));
        }
        sql.push_str(" ORDER BY n.identity");
        let rows = self.with(|db| db.rows(&sql, &params))?;
        let mut found = Vec::new();
        for row in rows {
            let [identity, facts, classes, agents] = row.as_slice() else {
                continue;
            };
            let identity = identity.text();
            let corrupt = |reason: String| RegistryError::Corrupt {
                location: self.location.clone(),
                identity: identity.to_string(),
                reason,
            };
            let facts: Value =
                serde_json::from_str(facts.text()).map_err(|e| corrupt(format!("facts: {e}")))?;
            let classes: Vec<String> = serde_json::from_str(classes.text())
                .map_err(|e| corrupt(format!("classes: {e}")))?;
            let agents: Vec<String> =
                serde_json::from_str(agents.text()).map_err(|e| corrupt(format!("agents: {e}")))?;
            let node = NodeView {
                identity,
                facts: &facts,
                classes: &classes,
                agents: &agents,
            };
            if compiled.matches(&node) {
                found.push(identity.to_string());
            }
        }
        Ok(found)
    }

    /// Every stored node, expired ones included, sorted by identity.
    pub fn nodes(&self) -> Result<Vec<RegisteredNode>, RegistryError> {
        let rows = self.with(|db| {
            db.rows(
                "SELECT identity, collectives, facts, classes, agents, seen_ms
                 FROM mco_registry_nodes ORDER BY identity",
                &[],
            )
        })?;
        rows.into_iter()
            .filter_map(|row| {
                let [identity, collectives, facts, classes, agents, seen] = row.as_slice() else {
                    return None;
                };
                let corrupt = |what: &str, e: serde_json::Error| RegistryError::Corrupt {
                    location: self.location.clone(),
                    identity: identity.text().to_string(),
                    reason: format!("{what}: {e}"),
                };
                Some((|| {
                    Ok(RegisteredNode {
                        identity: identity.text().to_string(),
                        collectives: serde_json::from_str(collectives.text())
                            .map_err(|e| corrupt("collectives", e))?,
                        facts: serde_json::from_str(facts.text())
                            .map_err(|e| corrupt("facts", e))?,
                        classes: serde_json::from_str(classes.text())
                            .map_err(|e| corrupt("classes", e))?,
                        agents: serde_json::from_str(agents.text())
                            .map_err(|e| corrupt("agents", e))?,
                        seen_ms: u64::try_from(seen.int()).unwrap_or(0),
                    })
                })())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(identity: &str, collectives: &[&str], facts: Value, classes: &[&str]) -> Registration {
        Registration {
            identity: identity.into(),
            collectives: collectives.iter().map(|c| c.to_string()).collect(),
            facts,
            classes: classes.iter().map(|c| c.to_string()).collect(),
            agents: vec!["rpcutil".into(), "service".into()],
            time: now_millis(),
        }
    }

    fn fleet(dir: &std::path::Path) -> Registry {
        let registry = Registry::open(&dir.join("r.sqlite").display().to_string()).unwrap();
        for r in [
            node(
                "web1",
                &["mco", "uk"],
                json!({"country": "uk", "cpus": 4, "os": {"family": "debian"}}),
                &["role::web", "webserver"],
            ),
            node(
                "web2",
                &["mco", "uk"],
                json!({"country": "uk", "cpus": 2, "os": {"family": "debian"}}),
                &["role::web"],
            ),
            node(
                "db1",
                &["mco", "eu"],
                json!({"country": "fr", "cpus": 16, "os": {"family": "redhat"}}),
                &["role::db"],
            ),
        ] {
            assert!(registry.record(&r).unwrap());
        }
        registry
    }

    fn filter(build: impl FnOnce(&mut Filter)) -> Filter {
        let mut f = Filter::default();
        build(&mut f);
        f
    }

    #[test]
    fn every_kind_of_filter_is_answered_by_the_shared_evaluator() {
        let dir = tempfile::tempdir().unwrap();
        let registry = fleet(dir.path());
        type Build = fn(&mut Filter);
        let table: &[(&str, Build, &[&str])] = &[
            ("mco", |_| {}, &["db1", "web1", "web2"]),
            ("uk", |_| {}, &["web1", "web2"]),
            ("eu", |_| {}, &["db1"]),
            ("nowhere", |_| {}, &[]),
            (
                "mco",
                |f| f.add_fact("country=uk").unwrap(),
                &["web1", "web2"],
            ),
            ("mco", |f| f.add_fact("cpus>=4").unwrap(), &["db1", "web1"]),
            ("mco", |f| f.add_fact("os.family=/red/").unwrap(), &["db1"]),
            ("mco", |f| f.add_class("webserver").unwrap(), &["web1"]),
            (
                "mco",
                |f| f.add_class("/^role::/").unwrap(),
                &["db1", "web1", "web2"],
            ),
            ("mco", |f| f.add_identity("web2").unwrap(), &["web2"]),
            ("uk", |f| f.add_identity("db1").unwrap(), &[]),
            (
                "mco",
                |f| f.add_identity("/^web/").unwrap(),
                &["web1", "web2"],
            ),
            (
                "mco",
                |f| f.add_agent("service").unwrap(),
                &["db1", "web1", "web2"],
            ),
            ("mco", |f| f.add_agent("puppet").unwrap(), &[]),
            (
                "mco",
                |f| f.add_with("country=uk role::web").unwrap(),
                &["web1", "web2"],
            ),
            (
                "mco",
                |f| {
                    f.add_compound("(country=uk and cpus>2) or role::db")
                        .unwrap()
                },
                &["db1", "web1"],
            ),
            (
                "mco",
                |f| f.add_compound("not country=uk").unwrap(),
                &["db1"],
            ),
        ];
        for (collective, build, want) in table {
            let f = filter(*build);
            assert_eq!(
                registry.discover(&f, collective).unwrap(),
                *want,
                "{f:?} in {collective}"
            );
        }
    }

    #[test]
    fn data_plugin_calls_are_refused_not_answered_false() {
        let dir = tempfile::tempdir().unwrap();
        let registry = fleet(dir.path());
        let f = filter(|f| {
            f.add_compound("fstat('/etc/hosts').size>=1 or country=uk")
                .unwrap()
        });
        let message = registry.discover(&f, "mco").unwrap_err().to_string();
        assert!(
            message.contains("cannot use data plugin calls in -S filters (fstat)"),
            "{message}"
        );
    }

    #[test]
    fn silent_nodes_expire_and_old_registrations_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let registry = fleet(dir.path());
        let mut old = node("old", &["mco"], json!({}), &[]);
        old.time = now_millis() - 60_000;
        registry.record(&old).unwrap();
        let all = Filter::default();
        assert_eq!(
            registry.discover(&all, "mco").unwrap(),
            ["db1", "old", "web1", "web2"]
        );
        registry.set_expire_after(Duration::from_secs(30)).unwrap();
        assert_eq!(
            registry.expire_after().unwrap(),
            Some(Duration::from_secs(30))
        );
        // Expired nodes leave discovery at once, before the service deletes them.
        assert_eq!(
            registry.discover(&all, "mco").unwrap(),
            ["db1", "web1", "web2"]
        );
        assert_eq!(registry.nodes().unwrap().len(), 4);
        assert_eq!(
            registry.forget_older_than(Duration::from_secs(30)).unwrap(),
            1
        );
        assert_eq!(registry.nodes().unwrap().len(), 3);

        // A replayed older registration does not roll a node back; a newer one moves it.
        let mut stale = node("web1", &["mco", "eu"], json!({"country": "de"}), &[]);
        stale.time = now_millis() - 10_000;
        assert!(!registry.record(&stale).unwrap());
        let uk = filter(|f| f.add_fact("country=uk").unwrap());
        assert_eq!(registry.discover(&uk, "mco").unwrap(), ["web1", "web2"]);
        let moved = node("web1", &["mco", "eu"], json!({"country": "de"}), &[]);
        assert!(registry.record(&moved).unwrap());
        assert_eq!(registry.discover(&uk, "mco").unwrap(), ["web2"]);
        assert_eq!(registry.discover(&all, "eu").unwrap(), ["db1", "web1"]);
        assert_eq!(registry.discover(&all, "uk").unwrap(), ["web2"]);
    }

    #[test]
    fn clients_get_clear_errors_for_missing_or_foreign_databases() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.sqlite").display().to_string();
        let message = Registry::open_existing(&missing).unwrap_err().to_string();
        assert!(
            message.contains("does not exist: run the registry service"),
            "{message}"
        );
        assert!(
            !std::path::Path::new(&missing).exists(),
            "a client must not create it"
        );

        let foreign = dir.path().join("foreign.sqlite");
        rusqlite::Connection::open(&foreign)
            .unwrap()
            .execute("CREATE TABLE t (x INTEGER)", [])
            .unwrap();
        let message = Registry::open_existing(&format!("sqlite://{}", foreign.display()))
            .unwrap_err()
            .to_string();
        assert!(message.contains("has no registry tables"), "{message}");

        let garbage = dir.path().join("garbage.sqlite");
        std::fs::write(&garbage, "this is not a database, just text long enough to have a header ......................................................").unwrap();
        let message = Registry::open_existing(&garbage.display().to_string())
            .unwrap_err()
            .to_string();
        assert!(message.contains("not a database"), "{message}");

        fleet(dir.path());
        let client =
            Registry::open_existing(&dir.path().join("r.sqlite").display().to_string()).unwrap();
        assert_eq!(
            client.discover(&Filter::default(), "uk").unwrap(),
            ["web1", "web2"]
        );
    }

    #[test]
    fn the_sqlite_registry_is_readable_by_its_group_only_even_when_it_was_not() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite");
        let mode = |suffix: &str| {
            let file = format!("{}{suffix}", path.display());
            std::fs::metadata(file).unwrap().permissions().mode() & 0o7777
        };
        let registry = fleet(dir.path());
        // The service holds it open in WAL mode: all three files exist.
        for suffix in ["", "-wal", "-shm"] {
            assert_eq!(mode(suffix), 0o640, "r.sqlite{suffix}");
        }
        // Written by an older version with the umask's mode, or opened up by hand: the next
        // service to open it tightens all three.
        let table = [
            ("", 0o666, 0o640),
            ("-wal", 0o644, 0o640),
            ("-shm", 0o604, 0o600),
        ];
        for (suffix, wide, _) in table {
            let file = format!("{}{suffix}", path.display());
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(wide)).unwrap();
        }
        let again = Registry::open(&path.display().to_string()).unwrap();
        // Access is only taken away, never added.
        for (suffix, _, tightened) in table {
            assert_eq!(mode(suffix), tightened, "r.sqlite{suffix}");
        }
        drop(registry);
        let registry = again;
        assert_eq!(registry.nodes().unwrap().len(), 3, "the data is intact");
    }

    #[test]
    fn urls_pick_the_database_and_hide_passwords() {
        assert_eq!(
            parse_url("/var/lib/mco/r.sqlite").unwrap(),
            Location::Sqlite("/var/lib/mco/r.sqlite".into())
        );
        assert_eq!(
            parse_url("sqlite:///abs/r.db").unwrap(),
            Location::Sqlite("/abs/r.db".into())
        );
        assert_eq!(
            parse_url("sqlite:rel.db").unwrap(),
            Location::Sqlite("rel.db".into())
        );
        assert!(matches!(
            parse_url("postgresql://u@h/db").unwrap(),
            Location::Postgres(_)
        ));
        assert!(matches!(
            parse_url("mysql://h/db"),
            Err(RegistryError::InvalidUrl(_))
        ));
        assert!(matches!(parse_url(""), Err(RegistryError::InvalidUrl(_))));
        assert_eq!(
            redact("postgres://mco:secret@db:5432/mco"),
            "postgres://mco:***@db:5432/mco"
        );
        assert_eq!(redact("postgres://mco@db/mco"), "postgres://mco@db/mco");
        assert_eq!(
            redact("postgres://mco:p?w@db/mco?sslmode=require&password=secret&x=1"),
            "postgres://mco:***@db/mco?sslmode=require&password=***&x=1"
        );
        assert_eq!(redact("sqlite:///r.db"), "sqlite:///r.db");
        let message = Registry::open_existing("postgres://mco:secret@127.0.0.1:1/mco")
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("registry postgres://mco:***@127.0.0.1:1/mco: cannot connect"),
            "{message}"
        );
        assert!(!message.contains("secret"));
    }
}
