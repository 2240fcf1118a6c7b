//! Any token text: parse, and verify it. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mco_spec::security::{Token, TokenRole};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(token) = Token::parse(text) {
            let issuer = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
            let _ = token.verify(&[issuer], TokenRole::Client, 1_800_000_000, 30);
            let _ = token.claims().allows("rpcutil", "mco");
        }
    }
});
