//! Any bytes a node receives: decode, verify against a trusted issuer, parse, compile the
//! filter. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mco_spec::security::Trust;
use mco_spec::{ReplyEnvelope, RequestEnvelope};

fuzz_target!(|data: &[u8]| {
    let trust = Trust { issuers: vec![ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key()], clock_skew_secs: 30 };
    if let Ok(envelope) = RequestEnvelope::decode(data) {
        let _ = envelope.verify(&trust, 1_800_000_000);
        if let Ok(request) = envelope.request() {
            let _ = request.filter.compile();
            let _ = request.is_expired(1_800_000_000_000);
        }
    }
    if let Ok(envelope) = ReplyEnvelope::decode(data) {
        let _ = envelope.verify(&trust, 1_800_000_000);
        let _ = envelope.reply();
    }
});
