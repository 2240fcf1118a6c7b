//! Any bytes a node receives: decode, verify against a trusted issuer, parse, check a target
//! proof, compile the filter. Nothing may panic, an insecure node's one-pass reading
//! accepts exactly what the two-pass reading accepts, as the same request, and the
//! hand-written request reader reads nothing serde would read differently.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mco_spec::request_reader::{open_request_envelope, read_request};
use mco_spec::security::{TokenCache, Trust};
use mco_spec::{ReplyEnvelope, Request, RequestEnvelope};

fuzz_target!(|data: &[u8]| {
    let trust = Trust { issuers: vec![ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key()], clock_skew_secs: 30 };
    let tokens = TokenCache::default();
    let two_pass = RequestEnvelope::decode(data)
        .and_then(|e| Ok((e.body()?.into_owned(), e.target)));
    let one_pass = RequestEnvelope::open_unverified(data).map(|o| (o.body, o.target));
    match (&two_pass, &one_pass) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        _ => panic!("the readings differ: {two_pass:?} and {one_pass:?}"),
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(read) = read_request(text) {
            assert_eq!(Some(read), serde_json::from_str::<Request>(text).ok(), "request reader");
        }
        if let Some(read) = open_request_envelope(text, mco_spec::message::REQUEST_PROTOCOL) {
            let serde = RequestEnvelope::decode(data).ok().and_then(|e| {
                let request = serde_json::from_str::<Request>(e.body.get()).ok()?.into_owned();
                Some((request, e.target))
            });
            assert_eq!(Some(read), serde, "envelope reader");
        }
    }
    if let Ok(envelope) = RequestEnvelope::decode(data) {
        let _ = tokens.verify(&envelope, &trust, 1_800_000_000);
        if let Ok(request) = envelope.body() {
            let _ = request.filter.compile();
            let _ = request.is_expired(1_800_000_000_000);
            if let (Some(targets), Some(proof)) = (&request.targets, &envelope.target) {
                let _ = targets.contains("web1.example.net", proof);
            }
        }
    }
    if let Ok(envelope) = ReplyEnvelope::decode(data) {
        let _ = tokens.verify(&envelope, &trust, 1_800_000_000);
        let _ = envelope.body();
    }
});
