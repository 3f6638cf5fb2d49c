//! The `[serve]` and `[hubspot]` sections of `dealledger.toml`, and the daemon's limits.

use dealledger_config::{Config, ConfigError};
use dealledger_events::Pipeline;
use std::collections::BTreeMap;
use std::net::SocketAddr;

pub const LISTEN_DEFAULT: &str = "127.0.0.1:7878";
pub const BODY_BYTES_MAX_DEFAULT: usize = 8 * 1024 * 1024;
pub const REQUEST_EVENTS_MAX_DEFAULT: usize = 10_000;
/// Requests waiting for the writer, at most: past it a request gets 503 (backpressure).
pub const QUEUE_REQUESTS_MAX_DEFAULT: usize = 1024;
/// Bytes of requests in memory, at most: bodies being read plus requests waiting for the writer
/// or in its hands, with their decoded events. Past it a request gets 503 (backpressure).
pub const QUEUE_BYTES_MAX_DEFAULT: usize = 128 * 1024 * 1024;
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// A body that has not fully arrived within this long is refused (408).
pub const BODY_READ_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// A client that has not sent a request's whole header within this long is disconnected; it
/// also bounds how long a kept-alive connection may wait for its next request's header.
pub const HEADER_READ_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// A connection on which nothing moved either way for this long is closed.
pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 60_000;
/// Open connections, at most: past it a client gets a 503 and the connection closes.
pub const CONNECTIONS_MAX_DEFAULT: usize = 1024;
/// Open connections from one address, at most (IPv6: one /64): a quarter of `connections_max`,
/// at least 16 (or `connections_max` when that is less), so that one client cannot take them
/// all. Behind a reverse proxy every client has the proxy's address: set it to connections_max.
pub fn connections_per_address_max_default(connections_max: usize) -> usize {
    (connections_max / 4).max(connections_max.min(16))
}
/// After SIGTERM, connections get this long to finish; the rest are dropped, and the
/// checkpoint is saved either way.
pub const SHUTDOWN_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// A what-if (a run, a sweep, a comparison) still working after this long is stopped, and one
/// that will clearly not finish in it is stopped early, saying how long it would take.
pub const WHATIF_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// What-ifs computed at once, at most: each takes a core for as long as it runs, so one more
/// waits for a slot (up to request_timeout_ms, then 503) rather than slow every reader.
pub const WHATIFS_MAX_DEFAULT: usize = 1;
/// Live tails (`GET /v1/stream`) open at once, at most: each holds a connection and a buffer of
/// up to [`STREAM_BUFFER_BYTES_MAX`] for as long as its client stays. Past it, 503.
pub const STREAMS_MAX_DEFAULT: usize = 256;
/// Bytes of events one live tail reads ahead of its client, about, at most (always one event).
pub const STREAM_BUFFER_BYTES_MAX: usize = 64 * 1024;
/// HubSpot deliveries are small (at most 100 notifications); the hook takes no more than this.
pub const HUBSPOT_BODY_BYTES_MAX_DEFAULT: usize = 1024 * 1024;
/// Bytes of HubSpot deliveries read before their signature is checked, in total: anyone who can
/// reach the hook can send them, so they get a budget of their own and never the shared one
/// that authenticated writes need (eight deliveries of the largest size at once).
pub const HUBSPOT_UNSIGNED_BYTES_MAX_DEFAULT: usize = 8 * HUBSPOT_BODY_BYTES_MAX_DEFAULT;
/// A delivery signed this far ahead of our clock is refused: a replayable future timestamp.
pub const HUBSPOT_TIMESTAMP_AHEAD_MS_MAX: i64 = 5 * 60 * 1000;
/// HubSpot signs a timestamp; older deliveries are refused (replay protection).
pub const HUBSPOT_TIMESTAMP_AGE_MS_MAX: i64 = 5 * 60 * 1000;

/// What a timeout of `[serve]` may be set to, in milliseconds: a tenth of a second to an hour.
const TIMEOUT_RANGE_MS: (u64, u64) = (100, 3_600_000);
/// `shutdown_timeout_ms`: at most ten minutes, so that no client can hold SIGTERM for longer.
const SHUTDOWN_RANGE_MS: (u64, u64) = (100, 600_000);
/// `connections_max`, at most: each is a file descriptor and a task.
const CONNECTIONS_MAX_MAX: usize = 65_536;
/// Bytes of a token, at least: 16 random bytes cannot be guessed, even at full speed.
pub const TOKEN_BYTES_MIN: usize = 16;

/// Why `token` cannot be the daemon's token, if it cannot.
pub fn check_token(token: &str) -> Result<(), TokenError> {
    if token.trim().is_empty() {
        return Err(TokenError::Empty);
    }
    if token.trim() != token {
        return Err(TokenError::Spaces);
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenError::NotPrintable);
    }
    if token.len() < TOKEN_BYTES_MIN {
        return Err(TokenError::Short { bytes: token.len() });
    }
    Ok(())
}

/// What [`check_token`] refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is empty: it would match a request with no Authorization header; set a long random token ([serve] token or --token-file), or remove it to serve loopback only")]
    Empty,
    #[error("the token starts or ends with a space or a line break: clients' headers are read trimmed, so it could never match; remove them")]
    Spaces,
    #[error("the token has a byte that is not printable ASCII: it travels in an Authorization header, which cannot carry it")]
    NotPrintable,
    #[error("the token is {bytes} bytes; it must be at least {TOKEN_BYTES_MIN} bytes of something random (e.g. `openssl rand -hex 32`)")]
    Short { bytes: usize },
}

/// `serve --token-file`: the daemon's token, the file's text trimmed.
pub fn token_from_file(path: &std::path::Path) -> Result<String, TokenFileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| TokenFileError::Unreadable { path: path.to_path_buf(), source })?;
    match text.trim() {
        "" => Err(TokenFileError::Empty(path.to_path_buf())),
        token => Ok(token.to_string()),
    }
}

/// Why `--token-file` gives no token.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read --token-file {}: {source}", path.display())]
    Unreadable { path: std::path::PathBuf, source: std::io::Error },
    #[error("--token-file {} is empty", .0.display())]
    Empty(std::path::PathBuf),
}

/// Why `host` is not a name a Host header could carry (a DNS name or an IP address, no port).
fn check_host_name(host: &str) -> Result<(), &'static str> {
    if host.is_empty() || host.len() > 253 {
        return Err("a host name is 1 to 253 characters");
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    match host.split('.').all(label_ok) {
        true => Ok(()),
        false => Err("not a host name (letters, digits, `-` and `.`; no scheme, port or path)"),
    }
}

/// What a token may do. `read` and `write` are apart (an integration that posts events cannot
/// read the reports, a dashboard cannot write); `admin` may do everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reports, the dashboard, live tails, deals, events, metrics, the sync's standing.
    Read,
    /// Posting events.
    Write,
    /// Quarantine retries, and everything the others may do.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }

    /// Whether a token of this role may use an endpoint that needs `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self == Role::Admin || self == needed
    }

    fn parse(text: &str) -> Option<Role> {
        match text {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A token with a name and a role (`[[serve.tokens]]`; `[serve] token` is one named `token`
/// with the role `admin`).
#[derive(Clone)]
pub struct ScopedToken {
    pub name: String,
    pub token: String,
    pub role: Role,
}

impl std::fmt::Debug for ScopedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScopedToken {{ name: {:?}, token: ***, role: {:?} }}", self.name, self.role)
    }
}

/// Bytes of a token's name, at most.
const TOKEN_NAME_BYTES_MAX: usize = 64;

/// `[[serve.tokens]]`, each checked: a name of letters, digits, `-` and `_`, unique; one of
/// `token` and `token_file`, a usable token, unique; a role.
fn scoped_tokens(sections: Vec<dealledger_config::TokenSection>) -> Result<Vec<ScopedToken>, String> {
    let mut out: Vec<ScopedToken> = Vec::new();
    for section in sections {
        let name = section.name;
        let named = |why: String| format!("[[serve.tokens]] `{name}`: {why}");
        let name_ok = !name.is_empty()
            && name.len() <= TOKEN_NAME_BYTES_MAX
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(named(format!("a name is 1 to {TOKEN_NAME_BYTES_MAX} letters, digits, `-` or `_`")));
        }
        if name == "token" || out.iter().any(|t| t.name == name) {
            return Err(named(
                "the name is taken (each token's name is its own; `token` is [serve] token's)".into(),
            ));
        }
        let token = match (section.token, section.token_file) {
            (Some(token), None) => token,
            (None, Some(file)) => {
                token_from_file(std::path::Path::new(&file)).map_err(|e| named(e.to_string()))?
            }
            _ => return Err(named("give one of token and token_file".into())),
        };
        check_token(&token).map_err(|e| named(e.to_string()))?;
        if out.iter().any(|t| t.token == token) {
            return Err(named("the same token as another entry: each caller gets a token of its own".into()));
        }
        let role = Role::parse(&section.role)
            .ok_or_else(|| named(format!("role `{}`: read, write or admin", section.role)))?;
        out.push(ScopedToken { name, token, role });
    }
    Ok(out)
}

/// What `dealledger serve` runs with.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// Bearer token every request but /healthz, /readyz and the HubSpot hook must carry: the
    /// admin token named `token`.
    pub token: Option<String>,
    /// `[[serve.tokens]]`: tokens with a name and a role.
    pub tokens: Vec<ScopedToken>,
    pub body_bytes_max: usize,
    pub request_events_max: usize,
    pub queue_requests_max: usize,
    pub queue_bytes_max: usize,
    pub request_timeout_ms: u64,
    pub body_read_timeout_ms: u64,
    pub header_read_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub connections_max: usize,
    pub connections_per_address_max: usize,
    pub shutdown_timeout_ms: u64,
    pub whatif_timeout_ms: u64,
    pub whatifs_max: usize,
    pub streams_max: usize,
    /// Host header values accepted besides the listen address and `localhost` (a reverse
    /// proxy's public name); names only, any port.
    pub allowed_hosts: Vec<String>,
    pub hubspot: Option<HubSpotConfig>,
    /// `[sync]`: the CRM syncs run on a schedule.
    pub sync: SyncConfig,
    /// `[salesforce]`, with the importers' stage map it maps through.
    pub salesforce: Option<SalesforceConfig>,
    /// Not in the file: set by the caller. Where HubSpot notifications that cannot be admitted
    /// yet are kept (required with `[hubspot]`).
    pub quarantine_path: Option<std::path::PathBuf>,
    /// Not in the file: the dealledger.toml a quarantine retry reads `[hubspot]` from again, so
    /// a stage mapping added since the start is used.
    pub config_path: Option<std::path::PathBuf>,
}

impl ServeConfig {
    /// Every token the daemon takes: `[serve] token` as the admin named `token`, then
    /// `[[serve.tokens]]`.
    pub fn all_tokens(&self) -> Vec<ScopedToken> {
        let single = self.token.iter().map(|token| ScopedToken {
            name: "token".into(),
            token: token.clone(),
            role: Role::Admin,
        });
        single.chain(self.tokens.iter().cloned()).collect()
    }

    /// Whether any token is set: without one only loopback is served, and everything is open.
    pub fn wants_token(&self) -> bool {
        self.token.is_some() || !self.tokens.is_empty()
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: LISTEN_DEFAULT.parse().expect("valid default"),
            token: None,
            tokens: Vec::new(),
            body_bytes_max: BODY_BYTES_MAX_DEFAULT,
            request_events_max: REQUEST_EVENTS_MAX_DEFAULT,
            queue_requests_max: QUEUE_REQUESTS_MAX_DEFAULT,
            queue_bytes_max: QUEUE_BYTES_MAX_DEFAULT,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            body_read_timeout_ms: BODY_READ_TIMEOUT_MS_DEFAULT,
            header_read_timeout_ms: HEADER_READ_TIMEOUT_MS_DEFAULT,
            idle_timeout_ms: IDLE_TIMEOUT_MS_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            connections_per_address_max: connections_per_address_max_default(CONNECTIONS_MAX_DEFAULT),
            shutdown_timeout_ms: SHUTDOWN_TIMEOUT_MS_DEFAULT,
            whatif_timeout_ms: WHATIF_TIMEOUT_MS_DEFAULT,
            whatifs_max: WHATIFS_MAX_DEFAULT,
            streams_max: STREAMS_MAX_DEFAULT,
            allowed_hosts: Vec::new(),
            hubspot: None,
            sync: SyncConfig::default(),
            salesforce: None,
            quarantine_path: None,
            config_path: None,
        }
    }
}

/// How often a scheduled sync may run: at least every second (tests), at most once a day.
const SYNC_EVERY_RANGE_MS: (u64, u64) = (1000, 24 * 3_600_000);

/// `[sync]`: which CRM syncs `serve` runs, and how often.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// `[sync] hubspot`: between the end of one `sync hubspot` run and the start of the next.
    pub hubspot_every_ms: Option<u64>,
    /// `[sync] hubspot_token_file`; else the token is `DEALLEDGER_HUBSPOT_TOKEN`.
    pub hubspot_token_file: Option<std::path::PathBuf>,
    /// Not in the file: set by the caller. Where the HubSpot sync keeps its cursor.
    pub hubspot_state_path: Option<std::path::PathBuf>,
    /// `[sync] retries_max`: transient failures of one request in a row before a run gives up.
    pub retries_max: u32,
    /// `[sync] salesforce`, `salesforce_token_file` and (set by the caller) its cursor's file.
    pub salesforce_every_ms: Option<u64>,
    pub salesforce_token_file: Option<std::path::PathBuf>,
    pub salesforce_state_path: Option<std::path::PathBuf>,
}

impl Default for SyncConfig {
    fn default() -> SyncConfig {
        SyncConfig {
            hubspot_every_ms: None,
            hubspot_token_file: None,
            hubspot_state_path: None,
            retries_max: dealledger_sync::http::RETRIES_MAX_DEFAULT,
            salesforce_every_ms: None,
            salesforce_token_file: None,
            salesforce_state_path: None,
        }
    }
}

/// A period as `[sync]` writes it: a whole number and a unit, `s`, `m` or `h` (`90s`, `5m`).
fn period_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_ms = match unit {
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("`{text}` is not a period: a whole number then s, m or h (`5m`)")),
    };
    let ms = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_ms))
        .ok_or_else(|| format!("`{text}` is not a period: a whole number then s, m or h (`5m`)"))?;
    let (min, max) = SYNC_EVERY_RANGE_MS;
    if !(min..=max).contains(&ms) {
        return Err(format!("`{text}` is out of range: at least 1s, at most 24h"));
    }
    Ok(ms)
}

/// `[salesforce]`: where `sync salesforce` reads and how much of the org's API it may use.
#[derive(Clone, Debug)]
pub struct SalesforceConfig {
    pub instance_url: String,
    pub api_version: String,
    pub api_share_max: f64,
    pub batch_size: u32,
    /// The importers' options (`[import.stages]`): Salesforce's stages map as the files' do.
    pub options: dealledger_import::Options,
}

impl SalesforceConfig {
    /// A run's settings.
    pub fn settings(&self) -> dealledger_sync::salesforce::Settings {
        let mut settings =
            dealledger_sync::salesforce::Settings::new(&self.instance_url, self.options.clone());
        settings.api_version = self.api_version.clone();
        settings.api_share_max = self.api_share_max;
        settings.batch_size = self.batch_size;
        settings
    }
}

fn salesforce_section(
    file: &Config,
    section: dealledger_config::SalesforceSection,
    pipeline: &Pipeline,
) -> Result<SalesforceConfig, String> {
    let instance_url = section.instance_url.ok_or(
        "[salesforce] instance_url is missing: the org's URL (`sf org display --json` gives it as instanceUrl)",
    )?;
    if !(instance_url.starts_with("https://") || instance_url.starts_with("http://")) {
        return Err(format!("[salesforce] instance_url `{instance_url}` is not an http(s) URL"));
    }
    let api_version =
        section.api_version.unwrap_or_else(|| dealledger_sync::salesforce::API_VERSION_DEFAULT.into());
    let version_ok = api_version.strip_prefix('v').and_then(|v| v.split_once('.')).is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
    });
    if !version_ok {
        return Err(format!("[salesforce] api_version `{api_version}` is not a version such as `v62.0`"));
    }
    let api_share_max = section.api_share_max.unwrap_or(dealledger_sync::salesforce::API_SHARE_MAX_DEFAULT);
    if !(0.01..=1.0).contains(&api_share_max) {
        return Err(format!("[salesforce] api_share_max = {api_share_max}: must be from 0.01 to 1"));
    }
    let batch_size = section.batch_size.unwrap_or(dealledger_sync::salesforce::BATCH_SIZE_DEFAULT);
    if !(200..=2000).contains(&batch_size) {
        return Err(format!(
            "[salesforce] batch_size = {batch_size}: must be from 200 to 2000 (Salesforce's range)"
        ));
    }
    let options =
        dealledger_import::options_from_config(file, pipeline.clone()).map_err(|e| e.to_string())?;
    let instance_url = instance_url.trim_end_matches('/').to_string();
    Ok(SalesforceConfig { instance_url, api_version, api_share_max, batch_size, options })
}

/// HubSpot's API, where `sync hubspot` reads unless `[hubspot] api_url` says otherwise.
pub const HUBSPOT_API_URL_DEFAULT: &str = "https://api.hubapi.com";

/// Where a HubSpot deal stage id leads (the importers' type: the backfill maps the same way).
pub use dealledger_import::Target as StageTarget;

#[derive(Clone, Debug)]
pub struct HubSpotConfig {
    /// The app's client secret: the key of `X-HubSpot-Signature-v3`. None: no webhooks (a
    /// portal kept in step by `sync hubspot` alone).
    pub app_secret: Option<String>,
    /// HubSpot `dealstage` ids (e.g. `appointmentscheduled`) to stages, `won` or `lost`.
    pub stages: BTreeMap<String, StageTarget>,
    /// The URL HubSpot calls, scheme and host (`https://ledger.example.com`): signatures cover
    /// the full URI, which a proxy in front of the daemon hides. Default: `http://` + Host.
    pub public_url: Option<String>,
    /// Owner given to deals HubSpot creates before any owner is known.
    pub default_owner: String,
    /// The hook's own body limit, checked as the body arrives (it reads before it can check
    /// the signature, so it takes much less than `[serve] body_bytes_max`).
    pub body_bytes_max: usize,
    /// Bytes of deliveries being read before their signature is checked, in total: a budget of
    /// their own, so that unsigned senders cannot take the one authenticated writes need.
    pub unsigned_bytes_max: usize,
    /// Open a deal the ledger has never seen from its first notification, instead of
    /// quarantining the notification (docs/daemon.md says what such a deal lacks).
    pub open_unknown: bool,
    /// The CRM API's base URL for `sync hubspot` (HubSpot's, or a local one in tests).
    pub api_url: String,
    /// The HubSpot pipelines `sync hubspot` reads deals of; None for all.
    pub pipelines: Option<std::collections::BTreeSet<String>>,
}

impl HubSpotConfig {
    /// What the webhook path and the backfill share.
    pub fn mapping(&self) -> dealledger_import::hubspot::Mapping {
        dealledger_import::hubspot::Mapping {
            stages: self.stages.clone(),
            default_owner: self.default_owner.clone(),
        }
    }
}

/// The daemon's settings from `[serve]` and `[hubspot]` of a dealledger.toml; defaults for
/// anything not given. `[hubspot.stages]` is checked against `pipeline`, as the importers'
/// map is.
pub fn serve_config_from(file: &Config, pipeline: &Pipeline) -> Result<ServeConfig, ConfigError> {
    serve_config_of(file, pipeline).map_err(|why| file.refused(why))
}

fn serve_config_of(file: &Config, pipeline: &Pipeline) -> Result<ServeConfig, String> {
    let mut config = ServeConfig::default();
    if let Some(serve) = file.serve.clone() {
        serve_section(&mut config, serve)?;
    }
    if let Some(hubspot) = file.hubspot.clone() {
        config.hubspot = Some(hubspot_section(hubspot, pipeline)?);
    }
    if let Some(salesforce) = file.salesforce.clone() {
        config.salesforce = Some(salesforce_section(file, salesforce, pipeline)?);
    }
    if let Some(sync) = file.sync.clone() {
        if let Some(every) = &sync.salesforce {
            if config.salesforce.is_none() {
                return Err("[sync] salesforce needs a [salesforce] section (its instance_url)".into());
            }
            config.sync.salesforce_every_ms =
                Some(period_ms(every).map_err(|why| format!("[sync] salesforce: {why}"))?);
        }
        config.sync.salesforce_token_file = sync.salesforce_token_file.map(std::path::PathBuf::from);
        if let Some(every) = &sync.hubspot {
            if config.hubspot.is_none() {
                return Err(
                    "[sync] hubspot needs a [hubspot] section (its stages, api_url, pipelines)".into()
                );
            }
            config.sync.hubspot_every_ms =
                Some(period_ms(every).map_err(|why| format!("[sync] hubspot: {why}"))?);
        }
        config.sync.hubspot_token_file = sync.hubspot_token_file.map(std::path::PathBuf::from);
        match sync.retries_max {
            Some(n) if !(1..=20).contains(&n) => {
                return Err(format!("[sync] retries_max = {n}: must be at least 1 and at most 20"));
            }
            Some(n) => config.sync.retries_max = n,
            None => {}
        }
    }
    Ok(config)
}

/// `[serve]` onto the defaults in `config`.
fn serve_section(config: &mut ServeConfig, serve: dealledger_config::ServeSection) -> Result<(), String> {
    if let Some(listen) = serve.listen {
        config.listen = listen.parse().map_err(|e| format!("[serve] listen `{listen}`: {e}"))?;
    }
    config.token = serve.token;
    config.tokens = scoped_tokens(serve.tokens.unwrap_or_default())?;
    if let Some(token) = &config.token {
        if config.tokens.iter().any(|t| &t.token == token) {
            return Err(
                "[serve] token is also in [[serve.tokens]]: each caller gets a token of its own".into()
            );
        }
    }
    config.allowed_hosts = serve.allowed_hosts.unwrap_or_default();
    for host in &config.allowed_hosts {
        check_host_name(host).map_err(|why| format!("[serve] allowed_hosts `{host}`: {why}"))?;
    }
    // Every limit within a range a daemon can honour: zero would refuse everything or
    // answer before anything could happen, and the absurd end is a typo or no limit at all.
    let count = |name: &str, value: Option<usize>, default: usize, max: usize| -> Result<usize, String> {
        match value {
            None => Ok(default),
            Some(v) if (1..=max).contains(&v) => Ok(v),
            Some(v) => Err(format!("[serve] {name} = {v}: must be at least 1 and at most {max}")),
        }
    };
    let millis =
        |name: &str, value: Option<u64>, default: u64, (min, max): (u64, u64)| -> Result<u64, String> {
            match value {
                None => Ok(default),
                Some(v) if (min..=max).contains(&v) => Ok(v),
                Some(v) => Err(format!(
                    "[serve] {name} = {v}: must be at least {min} and at most {max} (milliseconds)"
                )),
            }
        };
    config.body_bytes_max = count("body_bytes_max", serve.body_bytes_max, BODY_BYTES_MAX_DEFAULT, 1 << 30)?;
    config.request_events_max =
        count("request_events_max", serve.request_events_max, REQUEST_EVENTS_MAX_DEFAULT, 1_000_000)?;
    config.queue_requests_max =
        count("queue_requests_max", serve.queue_requests_max, QUEUE_REQUESTS_MAX_DEFAULT, 1_000_000)?;
    config.queue_bytes_max =
        count("queue_bytes_max", serve.queue_bytes_max, QUEUE_BYTES_MAX_DEFAULT, 64 << 30)?;
    if config.queue_bytes_max < config.body_bytes_max {
        return Err(format!(
            "[serve] queue_bytes_max ({}) is less than body_bytes_max ({}): a request of the largest size could never be taken",
            config.queue_bytes_max, config.body_bytes_max
        ));
    }
    config.request_timeout_ms =
        millis("request_timeout_ms", serve.request_timeout_ms, REQUEST_TIMEOUT_MS_DEFAULT, TIMEOUT_RANGE_MS)?;
    config.body_read_timeout_ms = millis(
        "body_read_timeout_ms",
        serve.body_read_timeout_ms,
        BODY_READ_TIMEOUT_MS_DEFAULT,
        TIMEOUT_RANGE_MS,
    )?;
    config.header_read_timeout_ms = millis(
        "header_read_timeout_ms",
        serve.header_read_timeout_ms,
        HEADER_READ_TIMEOUT_MS_DEFAULT,
        TIMEOUT_RANGE_MS,
    )?;
    config.idle_timeout_ms =
        millis("idle_timeout_ms", serve.idle_timeout_ms, IDLE_TIMEOUT_MS_DEFAULT, TIMEOUT_RANGE_MS)?;
    config.shutdown_timeout_ms = millis(
        "shutdown_timeout_ms",
        serve.shutdown_timeout_ms,
        SHUTDOWN_TIMEOUT_MS_DEFAULT,
        SHUTDOWN_RANGE_MS,
    )?;
    config.whatif_timeout_ms =
        millis("whatif_timeout_ms", serve.whatif_timeout_ms, WHATIF_TIMEOUT_MS_DEFAULT, TIMEOUT_RANGE_MS)?;
    config.connections_max =
        count("connections_max", serve.connections_max, CONNECTIONS_MAX_DEFAULT, CONNECTIONS_MAX_MAX)?;
    config.connections_per_address_max = count(
        "connections_per_address_max",
        serve.connections_per_address_max,
        connections_per_address_max_default(config.connections_max),
        config.connections_max,
    )?;
    config.whatifs_max = count("whatifs_max", serve.whatifs_max, WHATIFS_MAX_DEFAULT, 64)?;
    config.streams_max =
        count("streams_max", serve.streams_max, STREAMS_MAX_DEFAULT, config.connections_max)?;
    Ok(())
}

/// `[hubspot]`, its stages checked against `pipeline`.
fn hubspot_section(
    hubspot: dealledger_config::HubSpotSection,
    pipeline: &Pipeline,
) -> Result<HubSpotConfig, String> {
    if hubspot.app_secret.as_deref().is_some_and(str::is_empty) {
        return Err("[hubspot] app_secret is empty".into());
    }
    let api_url = hubspot.api_url.unwrap_or_else(|| HUBSPOT_API_URL_DEFAULT.to_string());
    if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
        return Err(format!("[hubspot] api_url `{api_url}` is not an http(s) URL"));
    }
    let api_url = api_url.trim_end_matches('/').to_string();
    if hubspot.pipelines.as_ref().is_some_and(Vec::is_empty) {
        return Err(
            "[hubspot] pipelines is empty: name the pipelines to sync, or leave it out for all".into()
        );
    }
    let mut stages = BTreeMap::new();
    for (id, target) in hubspot.stages {
        let parsed = StageTarget::parse(&target, pipeline)
            .map_err(|why| format!("[hubspot.stages] `{id}` = `{target}`: {why}"))?;
        stages.insert(id, parsed);
    }
    let body_bytes_max = match hubspot.body_bytes_max {
        Some(0) => return Err("[hubspot] body_bytes_max must be at least 1".into()),
        Some(n) => n,
        None => HUBSPOT_BODY_BYTES_MAX_DEFAULT,
    };
    let unsigned_bytes_max = hubspot.unsigned_bytes_max.unwrap_or(HUBSPOT_UNSIGNED_BYTES_MAX_DEFAULT);
    if unsigned_bytes_max < body_bytes_max {
        return Err(format!(
            "[hubspot] unsigned_bytes_max ({unsigned_bytes_max}) is less than body_bytes_max ({body_bytes_max}): a delivery of the largest size could never be read"
        ));
    }
    Ok(HubSpotConfig {
        app_secret: hubspot.app_secret,
        stages,
        public_url: hubspot.public_url.map(|u| u.trim_end_matches('/').to_string()),
        default_owner: hubspot.default_owner.unwrap_or_else(|| "hubspot".to_string()),
        body_bytes_max,
        unsigned_bytes_max,
        open_unknown: hubspot.open_unknown.unwrap_or(false),
        api_url,
        pipelines: hubspot.pipelines.map(|p| p.into_iter().collect()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_serve_toml(text: &str) -> Result<ServeConfig, String> {
        let config = Config::parse(text, "dealledger.toml").map_err(|e| e.to_string())?;
        serve_config_from(&config, &Pipeline::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_sections() {
        let c = parse_serve_toml("").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7878");
        assert_eq!(c.body_bytes_max, 8 * 1024 * 1024);
        assert!(c.hubspot.is_none());
        let c = parse_serve_toml(
            "[serve]\nlisten = \"0.0.0.0:9000\"\ntoken = \"t\"\n[hubspot]\napp_secret = \"s\"\n\
             [hubspot.stages]\nclosedwon = \"won\"\nqualifiedtobuy = \"qualifying\"\n",
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:9000");
        let h = c.hubspot.unwrap();
        assert_eq!(h.stages["closedwon"], StageTarget::Won);
        assert_eq!(h.stages["qualifiedtobuy"], StageTarget::Stage("qualifying".into()));
        let e = parse_serve_toml("[serve]\nlisten = \"nowhere\"\n").unwrap_err();
        assert!(e.contains("listen `nowhere`"), "{e}");
        let e = parse_serve_toml("[serve]\nbody_bytes_max = 0\n").unwrap_err();
        assert!(e.contains("body_bytes_max = 0: must be at least 1"), "{e}");
        let e = parse_serve_toml("[serve]\nport = 1\n").unwrap_err();
        assert!(e.contains("unknown key `port` in [serve]"), "{e}");
    }
}

#[cfg(test)]
mod token_tests {
    use super::*;

    fn parse(text: &str) -> Result<ServeConfig, String> {
        let config = Config::parse(text, "dealledger.toml").map_err(|e| e.to_string())?;
        serve_config_from(&config, &Pipeline::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn scoped_tokens_parse_and_every_mistake_is_named() {
        let good = "[serve]\ntoken = \"admin-0123456789abcdef\"\n\
                    [[serve.tokens]]\nname = \"crm\"\ntoken = \"write-0123456789abcdef\"\nrole = \"write\"\n\
                    [[serve.tokens]]\nname = \"board\"\ntoken = \"read-0123456789abcdef0\"\nrole = \"read\"\n";
        let config = parse(good).unwrap();
        let all: Vec<(String, Role)> = config.all_tokens().into_iter().map(|t| (t.name, t.role)).collect();
        assert_eq!(
            all,
            [
                ("token".to_string(), Role::Admin),
                ("crm".to_string(), Role::Write),
                ("board".to_string(), Role::Read)
            ]
        );
        assert!(!format!("{:?}", config.tokens).contains("0123456789"), "a token never prints");
        let error = |text: &str| parse(text).unwrap_err();
        let entry = |name: &str, token: &str, role: &str| {
            format!("[[serve.tokens]]\nname = \"{name}\"\ntoken = \"{token}\"\nrole = \"{role}\"\n")
        };
        assert!(error(&entry("crm", "write-0123456789abcdef", "writer"))
            .contains("role `writer`: read, write or admin"));
        assert!(error(&entry("c r m", "write-0123456789abcdef", "write")).contains("letters, digits"));
        assert!(error(&entry("crm", "short", "write")).contains("at least 16 bytes"));
        let twice =
            entry("a", "same-0123456789abcdef", "read") + &entry("b", "same-0123456789abcdef", "write");
        assert!(error(&twice).contains("the same token as another entry"));
        let names = entry("a", "one-0123456789abcdef", "read") + &entry("a", "two-0123456789abcdef", "write");
        assert!(error(&names).contains("the name is taken"));
        assert!(error("[[serve.tokens]]\nname = \"a\"\nrole = \"read\"\n")
            .contains("give one of token and token_file"));
    }
}
