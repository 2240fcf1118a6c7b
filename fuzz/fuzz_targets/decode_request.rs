//! Any bytes a node receives: decode, verify against a trusted issuer, parse, check a target
//! proof, compile the filter. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mco_spec::security::{TokenCache, Trust};
use mco_spec::{ReplyEnvelope, RequestEnvelope};

fuzz_target!(|data: &[u8]| {
    let trust = Trust { issuers: vec![ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key()], clock_skew_secs: 30 };
    let tokens = TokenCache::default();
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
