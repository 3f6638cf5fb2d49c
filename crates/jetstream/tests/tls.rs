//! `tls://` and credentials: a server that requires TLS and a token is reached with the URL's
//! scheme, the CA of `[store] tls_ca` and the token of `DEALLEDGER_NATS_TOKEN`, and refused
//! without any of them (certificates made here with rcgen).
#![allow(clippy::unwrap_used, reason = "test code: a panic is a failing test")]

use dealledger_jetstream::testkit::{nats_server_missing, Cluster};
use dealledger_jetstream::{JetStreamStore, Options, Target};
use dealledger_log::{BlockStore, Head, Log};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

const TOKEN: &str = "a-long-random-token-for-the-test";

#[test]
fn tls_and_a_token_from_the_settings() {
    if let Some(why) = nats_server_missing() {
        assert!(std::env::var_os("DEALLEDGER_REQUIRE_TOOLS").is_none(), "nats-server is required: {why}");
        eprintln!("skipped tls_and_a_token_from_the_settings: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let (ca_file, cert_file, key_file) =
        (dir.path().join("ca.pem"), dir.path().join("server.pem"), dir.path().join("server-key.pem"));
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let extra = format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\" }}\nauthorization {{ token: \"{TOKEN}\" }}",
        cert_file.display(),
        key_file.display()
    );
    let cluster = Cluster::start_configured(dir.path(), 1, "sync_interval: always", &extra);
    let tls_url = cluster.url("secure").replacen("nats://", "tls://", 1);
    let target = Target::parse(&tls_url).unwrap();
    assert!(target.tls);
    let good = Options {
        token: Some(TOKEN.into()),
        tls_ca: Some(ca_file.clone()),
        replicas: 1,
        monitor: cluster.monitor(),
        ..Options::default()
    };
    let store = JetStreamStore::open(&target, &good, true).unwrap();
    let mut writer = store_writer(store);
    let clock = dealledger_events::FixedClock(
        dealledger_events::Timestamp::parse_rfc3339("2024-06-01T00:00:00Z").unwrap(),
    );
    let mut batch = writer.batch(&clock);
    batch
        .push(
            dealledger_events::parse_line(
                r#"{"deal":"T-1","type":"opened","at":"2024-01-01T00:00:00Z","owner":"o","amount":1}"#,
            )
            .unwrap(),
        )
        .unwrap();
    batch.commit().unwrap();
    let log = Log::open(JetStreamStore::open(&target, &good, false).unwrap()).unwrap();
    assert_eq!(log.head().seq, 1);
    assert_ne!(log.head(), Head::EMPTY);
    assert!(log.store().mark().unwrap().is_some());
    // Refused: no token; no CA (the system's roots do not sign it); a plain URL's client does
    // not trust the server's certificate either.
    let refused = |target: &Target, options: &Options| {
        JetStreamStore::open(target, options, false).err().expect("refused").to_string()
    };
    let no_token = Options { token: None, ..good.clone() };
    assert!(refused(&target, &no_token).contains("cannot connect"), "{}", refused(&target, &no_token));
    let no_ca = Options { tls_ca: None, ..good.clone() };
    assert!(refused(&target, &no_ca).contains("cannot connect"));
    let plain = Target::parse(&cluster.url("secure")).unwrap();
    assert!(refused(&plain, &no_ca).contains("cannot connect"));
}

fn store_writer(store: JetStreamStore) -> dealledger_log::Ledger<JetStreamStore> {
    dealledger_log::Ledger::open(store, dealledger_events::Pipeline::default()).unwrap()
}
