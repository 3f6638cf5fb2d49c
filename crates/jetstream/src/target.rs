//! Where a ledger on JetStream lives and how to reach it: `nats://HOST:PORT[,HOST:PORT...]/LEDGER`
//! (`tls://` for TLS), plus what a URL must not carry (credentials) and the settings of `[store]`.

use std::path::PathBuf;
use std::time::Duration;

/// Longest ledger name: it is part of a stream's and three buckets' names.
pub const LEDGER_NAME_BYTES_MAX: usize = 64;
/// Servers in one URL, at most.
const SERVERS_MAX: usize = 16;
/// Replicas of the stream and buckets unless `[store] replicas` says otherwise.
pub const REPLICAS_DEFAULT: usize = 3;
/// How long one request to the servers may take before the store gives up on it.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 10_000;

/// A parsed store URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `HOST:PORT` of each seed server (the client learns the rest of the cluster from them).
    pub servers: Vec<String>,
    /// The ledger's name: one stream and its buckets per ledger.
    pub ledger: String,
    /// `tls://`: the connection must be TLS.
    pub tls: bool,
}

/// How to connect, beside the URL: `[store]` of dealledger.toml and the environment.
#[derive(Clone, Debug)]
pub struct Options {
    /// A NATS credentials file (JWT and nkey seed): `[store] credentials`, or
    /// `DEALLEDGER_NATS_CREDS`.
    pub credentials: Option<PathBuf>,
    /// A token (`DEALLEDGER_NATS_TOKEN`): never in the URL or a flag, where `ps` shows it.
    pub token: Option<String>,
    /// A CA certificate (PEM) for servers whose certificates no system root signs.
    pub tls_ca: Option<PathBuf>,
    /// Replicas of the stream and buckets when this process creates them.
    pub replicas: usize,
    /// Monitoring URLs (`http://HOST:8222`) of the servers: where the store can read each
    /// server's fsync setting and refuse servers that acknowledge before syncing.
    pub monitor: Vec<String>,
    pub request_timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            credentials: None,
            token: None,
            tls_ca: None,
            replicas: REPLICAS_DEFAULT,
            monitor: Vec::new(),
            request_timeout: Duration::from_millis(REQUEST_TIMEOUT_MS_DEFAULT),
        }
    }
}

impl Target {
    /// Parses `nats://HOST:PORT[,HOST:PORT...]/LEDGER` or `tls://...`. The error says what is
    /// wrong and what the URL should look like.
    pub fn parse(url: &str) -> Result<Target, TargetError> {
        let bad = |why| TargetError { url: url.to_string(), why };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad(TargetProblem::Shape))?;
        let tls = match scheme {
            "nats" => false,
            "tls" => true,
            other => return Err(bad(TargetProblem::Scheme(other.to_string()))),
        };
        let (hosts, ledger) = rest.split_once('/').ok_or_else(|| bad(TargetProblem::NoLedger))?;
        if hosts.contains('@') {
            return Err(bad(TargetProblem::Credentials));
        }
        check_ledger_name(ledger).map_err(|e| bad(TargetProblem::LedgerName(e)))?;
        let mut servers = Vec::new();
        for host in hosts.split(',') {
            let (name, port) =
                host.rsplit_once(':').ok_or_else(|| bad(TargetProblem::NoPort(host.to_string())))?;
            if name.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(bad(TargetProblem::NotHostPort(host.to_string())));
            }
            servers.push(host.to_string());
        }
        if servers.len() > SERVERS_MAX {
            return Err(bad(TargetProblem::TooManyServers));
        }
        Ok(Target { servers, ledger: ledger.to_string(), tls })
    }

    /// The stream of sealed blocks.
    pub fn stream_name(&self) -> String {
        format!("DEALLEDGER_{}", self.ledger)
    }

    /// The one subject blocks are published on.
    pub fn subject(&self) -> String {
        format!("dealledger.{}.blocks", self.ledger)
    }

    /// The KV bucket of the high-water mark.
    pub fn mark_bucket(&self) -> String {
        format!("dealledger_{}_mark", self.ledger)
    }

    /// The KV bucket of the writer lease (its entries expire: the lease's time to live).
    pub fn lease_bucket(&self) -> String {
        format!("dealledger_{}_lease", self.ledger)
    }

    /// The object store of metadata values (checkpoints, chunked).
    pub fn meta_bucket(&self) -> String {
        format!("dealledger_{}_meta", self.ledger)
    }

    /// The URL as given, for messages.
    pub fn url(&self) -> String {
        format!("{}://{}/{}", if self.tls { "tls" } else { "nats" }, self.servers.join(","), self.ledger)
    }
}

/// A ledger name goes into stream, subject and bucket names: letters, digits, `-` and `_`.
pub fn check_ledger_name(name: &str) -> Result<(), LedgerNameError> {
    if name.is_empty() {
        return Err(LedgerNameError::Empty);
    }
    if name.len() > LEDGER_NAME_BYTES_MAX {
        return Err(LedgerNameError::TooLong);
    }
    match name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        Some(bad) => Err(LedgerNameError::Character(bad)),
        None => Ok(()),
    }
}

/// What [`Target::parse`] refuses: the URL and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{url}`: {why}")]
pub struct TargetError {
    pub url: String,
    pub why: TargetProblem,
}

/// The shape a store URL has, said after each problem.
const SHAPE: &str = "expected nats://HOST:PORT/LEDGER (or tls://HOST:PORT/LEDGER)";

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetProblem {
    #[error("{SHAPE}")]
    Shape,
    #[error("unknown scheme `{0}`; {SHAPE}")]
    Scheme(String),
    #[error("no ledger name; {SHAPE}")]
    NoLedger,
    #[error("credentials do not go in the URL (a command line is visible to every user of the machine); use [store] credentials (a .creds file), DEALLEDGER_NATS_CREDS or DEALLEDGER_NATS_TOKEN")]
    Credentials,
    #[error(transparent)]
    LedgerName(LedgerNameError),
    #[error("`{0}` has no port; {SHAPE}")]
    NoPort(String),
    #[error("`{0}` is not HOST:PORT; {SHAPE}")]
    NotHostPort(String),
    #[error("more than {SERVERS_MAX} servers")]
    TooManyServers,
}

/// What [`check_ledger_name`] refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerNameError {
    #[error("the ledger name is empty")]
    Empty,
    #[error("the ledger name is longer than {LEDGER_NAME_BYTES_MAX} bytes")]
    TooLong,
    #[error("the ledger name has `{0}`: only letters, digits, `-` and `_` are allowed")]
    Character(char),
}

impl Options {
    /// The defaults, with what the environment sets: `DEALLEDGER_NATS_CREDS` (a credentials
    /// file) and `DEALLEDGER_NATS_TOKEN`.
    pub fn from_env() -> Options {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Options {
            credentials: var("DEALLEDGER_NATS_CREDS").map(PathBuf::from),
            token: var("DEALLEDGER_NATS_TOKEN"),
            ..Options::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("nats://127.0.0.1:4222/acme").unwrap();
        assert_eq!(t, Target { servers: vec!["127.0.0.1:4222".into()], ledger: "acme".into(), tls: false });
        assert_eq!(t.stream_name(), "DEALLEDGER_acme");
        assert_eq!(t.url(), "nats://127.0.0.1:4222/acme");
        let t = Target::parse("tls://a:1,b:2/x-y_z").unwrap();
        assert!(t.tls);
        assert_eq!(t.servers, ["a:1", "b:2"]);
        for bad in [
            "http://a:1/x",
            "nats://a:1",
            "nats://a:1/",
            "nats://a/x",
            "nats://a:0/x",
            "nats://:1/x",
            "nats://a:1/x.y",
            "nats://a:1/x/y",
            "nats://u:p@a:1/x",
            "nats://a:99999/x",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad} is refused");
        }
        assert!(Target::parse(&format!("nats://a:1/{}", "x".repeat(65))).is_err());
        let e = Target::parse("nats://u:p@a:1/x").unwrap_err();
        assert_eq!(e.why, TargetProblem::Credentials);
        assert!(e.to_string().contains("credentials do not go in the URL"), "{e}");
        let e = Target::parse("nats://a:1/x.y").unwrap_err();
        assert_eq!(e.why, TargetProblem::LedgerName(LedgerNameError::Character('.')));
        assert_eq!(
            e.to_string(),
            "`nats://a:1/x.y`: the ledger name has `.`: only letters, digits, `-` and `_` are allowed"
        );
    }
}
