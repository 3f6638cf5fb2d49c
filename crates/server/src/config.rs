//! The `[serve]` and `[hubspot]` sections of `dealledger.toml`, and the daemon's limits.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;

pub const LISTEN_DEFAULT: &str = "127.0.0.1:7878";
pub const BODY_BYTES_MAX_DEFAULT: usize = 8 * 1024 * 1024;
pub const REQUEST_EVENTS_MAX_DEFAULT: usize = 10_000;
/// Requests waiting for the writer, at most: past it a request gets 503 (backpressure).
pub const QUEUE_REQUESTS_MAX_DEFAULT: usize = 1024;
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// HubSpot signs a timestamp; older deliveries are refused (replay protection).
pub const HUBSPOT_TIMESTAMP_AGE_MS_MAX: i64 = 5 * 60 * 1000;

/// What `dealledger serve` runs with.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// Bearer token every request but /healthz, /readyz and the HubSpot hook must carry.
    pub token: Option<String>,
    pub body_bytes_max: usize,
    pub request_events_max: usize,
    pub queue_requests_max: usize,
    pub request_timeout_ms: u64,
    /// Host header values accepted besides the listen address and `localhost` (a reverse
    /// proxy's public name); names only, any port.
    pub allowed_hosts: Vec<String>,
    pub hubspot: Option<HubSpotConfig>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: LISTEN_DEFAULT.parse().expect("valid default"),
            token: None,
            body_bytes_max: BODY_BYTES_MAX_DEFAULT,
            request_events_max: REQUEST_EVENTS_MAX_DEFAULT,
            queue_requests_max: QUEUE_REQUESTS_MAX_DEFAULT,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            allowed_hosts: Vec::new(),
            hubspot: None,
        }
    }
}

/// Where a HubSpot deal stage id leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StageTarget {
    Stage(String),
    Won,
    Lost,
}

#[derive(Clone, Debug)]
pub struct HubSpotConfig {
    /// The app's client secret: the key of `X-HubSpot-Signature-v3`.
    pub app_secret: String,
    /// HubSpot `dealstage` ids (e.g. `appointmentscheduled`) to stages, `won` or `lost`.
    pub stages: BTreeMap<String, StageTarget>,
    /// The URL HubSpot calls, scheme and host (`https://ledger.example.com`): signatures cover
    /// the full URI, which a proxy in front of the daemon hides. Default: `http://` + Host.
    pub public_url: Option<String>,
    /// Owner given to deals HubSpot creates before any owner is known.
    pub default_owner: String,
}

#[derive(Debug, Default, Deserialize)]
struct File {
    serve: Option<ServeSection>,
    hubspot: Option<HubSpotSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeSection {
    listen: Option<String>,
    token: Option<String>,
    body_bytes_max: Option<usize>,
    request_events_max: Option<usize>,
    queue_requests_max: Option<usize>,
    request_timeout_ms: Option<u64>,
    allowed_hosts: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HubSpotSection {
    app_secret: String,
    #[serde(default)]
    stages: BTreeMap<String, String>,
    public_url: Option<String>,
    default_owner: Option<String>,
}

/// Reads `[serve]` and `[hubspot]` from a `dealledger.toml` text (other sections are other
/// modules' business); defaults for anything not given.
pub fn parse_serve_toml(text: &str) -> Result<ServeConfig, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut config = ServeConfig::default();
    if let Some(serve) = file.serve {
        if let Some(listen) = serve.listen {
            config.listen = listen.parse().map_err(|e| format!("[serve] listen `{listen}`: {e}"))?;
        }
        config.token = serve.token;
        config.allowed_hosts = serve.allowed_hosts.unwrap_or_default();
        let positive = |name: &str, value: Option<usize>, default: usize| -> Result<usize, String> {
            match value {
                Some(0) => Err(format!("[serve] {name} must be at least 1")),
                Some(v) => Ok(v),
                None => Ok(default),
            }
        };
        config.body_bytes_max = positive("body_bytes_max", serve.body_bytes_max, BODY_BYTES_MAX_DEFAULT)?;
        config.request_events_max =
            positive("request_events_max", serve.request_events_max, REQUEST_EVENTS_MAX_DEFAULT)?;
        config.queue_requests_max =
            positive("queue_requests_max", serve.queue_requests_max, QUEUE_REQUESTS_MAX_DEFAULT)?;
        config.request_timeout_ms = serve.request_timeout_ms.unwrap_or(REQUEST_TIMEOUT_MS_DEFAULT).max(1);
    }
    if let Some(hubspot) = file.hubspot {
        if hubspot.app_secret.is_empty() {
            return Err("[hubspot] app_secret is empty".into());
        }
        let stages = hubspot
            .stages
            .into_iter()
            .map(|(id, target)| {
                let target = match target.as_str() {
                    "won" => StageTarget::Won,
                    "lost" => StageTarget::Lost,
                    _ => StageTarget::Stage(target),
                };
                (id, target)
            })
            .collect();
        config.hubspot = Some(HubSpotConfig {
            app_secret: hubspot.app_secret,
            stages,
            public_url: hubspot.public_url.map(|u| u.trim_end_matches('/').to_string()),
            default_owner: hubspot.default_owner.unwrap_or_else(|| "hubspot".to_string()),
        });
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(e.contains("body_bytes_max must be at least 1"), "{e}");
        let e = parse_serve_toml("[serve]\nport = 1\n").unwrap_err();
        assert!(e.contains("unknown field `port`"), "{e}");
    }
}
