//! A hand-written reader for requests in the shape clients write them, beside serde's.
//!
//! Every node reads every broadcast of its fleet, and serde's field-by-field reading of a
//! request and its envelope was most of what a node spent on one it then ignored or
//! answered at once. This reader takes the common shape in one forward pass over the
//! bytes: known keys in any order, strings without escapes borrowed as they are, plain
//! integers, an empty or serde-read `data`, a filter of plain name lists, no target proof.
//!
//! It is a shortcut, not a second definition of the format: it either returns exactly the
//! value serde's reading returns for the same text, or gives up (`None`) and the caller
//! reads the text with serde, which accepts or refuses it and says why. It never refuses
//! anything itself, so what a node accepts and every error it reports stay serde's. Anything
//! it does not know for certain serde would read the same way (an escape, a duplicate or
//! unknown key, a number that is not a plain integer, a target proof, deep `data`) makes it
//! give up. The tests hold the two readings together over many texts and their mutations,
//! and the `decode_request` fuzz target does over arbitrary bytes.
//!
//! Not for: writing requests, or reading anything other than a request and its envelope.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::filter::{FactFilter, Filter};
use crate::message::Request;
use crate::targets::{TargetProof, Targets};

/// `data` nested deeper than this is left to serde, whose nesting limit (128 levels, counted
/// from the start of the message) decides it.
const MAX_DATA_DEPTH: usize = 100;

/// Reads `text`, which must be one request object and nothing else but whitespace (what
/// `serde_json::from_str::<Request>` reads). `None`: read it with serde instead.
pub fn read_request(text: &str) -> Option<Request<'_>> {
    let mut cursor = Cursor::new(text);
    let request = cursor.request()?;
    cursor.end()?;
    Some(request)
}

/// Reads `text`, which must be one request envelope of protocol `protocol` and nothing else
/// but whitespace, as [`crate::envelope::Envelope::open_unverified`] does: the request and
/// the target proof (always `None` here: an envelope with one is left to serde). The
/// signature and token must be strings or null and are not kept. `None`: read it with serde
/// instead.
pub fn open_request_envelope<'a>(
    text: &'a str,
    protocol: &str,
) -> Option<(Request<'a>, Option<TargetProof>)> {
    let mut cursor = Cursor::new(text);
    let mut seen_protocol = false;
    let mut request = None;
    let (mut signature, mut token, mut target) = (false, false, false);
    cursor.object(|cursor, key| match key {
        "protocol" if !seen_protocol => {
            seen_protocol = true;
            (cursor.string()? == protocol).then_some(())
        }
        "request" if request.is_none() => {
            request = Some(cursor.request()?);
            Some(())
        }
        "signature" if !signature => {
            signature = true;
            cursor.null_or_string()
        }
        "token" if !token => {
            token = true;
            cursor.null_or_string()
        }
        "target" if !target => {
            target = true;
            cursor.null()
        }
        _ => None,
    })?;
    cursor.end()?;
    if !seen_protocol {
        return None;
    }
    Some((request?, None))
}

/// A position in the text being read.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Cursor<'a> {
        Cursor { text, at: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Skips JSON whitespace; returns the next byte, if any.
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.bytes().get(self.at) {
            if !matches!(b, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    /// Takes `byte`, after whitespace.
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Only whitespace is left.
    fn end(&mut self) -> Option<()> {
        self.peek().is_none().then_some(())
    }

    /// A string without escapes or control characters, borrowed.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let rest = &self.bytes()[start..];
        let len = crate::json_text::special_at(rest)?;
        if rest[len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        // The quote is ASCII, so the cut is on a character boundary.
        self.text.get(start..start + len)
    }

    /// `null`.
    fn null(&mut self) -> Option<()> {
        self.peek()?;
        let rest = &self.bytes()[self.at..];
        // What follows (`nullx`, `null 1`) is checked by the object or array around it.
        rest.starts_with(b"null").then(|| self.at += 4)
    }

    /// A string or `null`, not kept.
    fn null_or_string(&mut self) -> Option<()> {
        if self.peek()? == b'"' {
            self.string().map(drop)
        } else {
            self.null()
        }
    }

    /// A non-negative integer without sign, fraction, exponent or leading zero that fits
    /// in a u64: what serde reads as a u64 without going through a float.
    fn u64(&mut self) -> Option<u64> {
        self.peek()?;
        let rest = &self.bytes()[self.at..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || (digits > 1 && rest[0] == b'0') {
            return None;
        }
        let mut value: u64 = 0;
        for &d in &rest[..digits] {
            value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        // A fraction or exponent after the digits is left for the object around the number
        // to find where it expects a comma or its end, and give up.
        self.at += digits;
        Some(value)
    }

    /// The items of an object or array, from `open` to `close`, each read by `item` and
    /// separated by commas (no trailing comma, as in JSON).
    fn items(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Cursor<'a>) -> Option<()>,
    ) -> Option<()> {
        self.eat(open)?;
        if self.peek()? == close {
            self.at += 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.peek()? {
                b',' => self.at += 1,
                b if b == close => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An object: calls `value` with each key, the cursor on its value, which `value` must
    /// read. Keys with escapes give up.
    fn object(
        &mut self,
        mut value: impl FnMut(&mut Cursor<'a>, &'a str) -> Option<()>,
    ) -> Option<()> {
        self.items(b'{', b'}', |cursor| {
            let key = cursor.string()?;
            cursor.eat(b':')?;
            value(cursor, key)
        })
    }

    /// An array of strings without escapes.
    fn strings(&mut self) -> Option<Vec<String>> {
        let mut out = Vec::new();
        self.items(b'[', b']', |cursor| {
            out.push(cursor.string()?.to_string());
            Some(())
        })?;
        Some(out)
    }

    /// Whether the next value is an empty object or array (`open` and its closer), which
    /// is then taken.
    fn empty(&mut self, open: u8, close: u8) -> Option<bool> {
        if self.peek()? != open {
            return None;
        }
        let start = self.at;
        self.at += 1;
        if self.peek() == Some(close) {
            self.at += 1;
            return Some(true);
        }
        self.at = start;
        Some(false)
    }

    /// One value read by serde from here (an object or array: values that end themselves,
    /// so serde reads exactly the value and not what follows).
    fn with_serde<T: Deserialize<'a>>(&mut self) -> Option<T> {
        if !matches!(self.peek()?, b'{' | b'[') {
            return None;
        }
        let rest = self.text.get(self.at..)?;
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<T>();
        let value = values.next()?.ok()?;
        self.at += values.byte_offset();
        Some(value)
    }

    /// A request object.
    fn request(&mut self) -> Option<Request<'a>> {
        let mut id = None;
        let mut collective = None;
        let mut agent = None;
        let mut action = None;
        let mut data = None;
        let mut filter = None;
        let mut caller = None;
        let mut sender = None;
        let mut time = None;
        let mut ttl = None;
        let mut reply_to = None;
        let mut targets = None;
        self.object(|cursor, key| match key {
            "id" => once(&mut id, cursor.string()),
            "collective" => once(&mut collective, cursor.string()),
            "agent" => once(&mut agent, cursor.string()),
            "action" => once(&mut action, cursor.string()),
            "caller" => once(&mut caller, cursor.string()),
            "sender" => once(&mut sender, cursor.string()),
            "reply_to" => once(&mut reply_to, cursor.string()),
            "time" => once(&mut time, cursor.u64()),
            "ttl" => once(&mut ttl, cursor.u64()),
            "data" => once(&mut data, cursor.data()),
            "filter" => once(&mut filter, cursor.filter()),
            "targets" => once(&mut targets, cursor.targets()),
            _ => None,
        })?;
        Some(Request {
            id: id?.into(),
            collective: collective?.into(),
            agent: agent?.into(),
            action: action?.into(),
            data: data.unwrap_or_default(),
            filter: filter.unwrap_or_default(),
            caller: caller?.into(),
            sender: sender?.into(),
            time: time?,
            ttl: ttl?,
            reply_to: reply_to?.into(),
            targets: targets.flatten(),
        })
    }

    /// A request's `data`: an object, empty (most broadcasts) or read by serde.
    fn data(&mut self) -> Option<Map<String, Value>> {
        if self.empty(b'{', b'}')? {
            return Some(Map::new());
        }
        let data: Map<String, Value> = self.with_serde()?;
        data.values()
            .all(|v| depth(v) < MAX_DATA_DEPTH)
            .then_some(data)
    }

    /// A request's `targets`: `null`, or read by serde.
    fn targets(&mut self) -> Option<Option<Targets>> {
        if self.peek()? == b'n' {
            self.null()?;
            return Some(None);
        }
        self.with_serde().map(Some)
    }

    /// A request's `filter`: an object of plain name lists and fact comparisons.
    fn filter(&mut self) -> Option<Filter> {
        let mut fact = None;
        let mut class = None;
        let mut identity = None;
        let mut agent = None;
        let mut compound = None;
        self.object(|cursor, key| match key {
            "fact" => once(&mut fact, cursor.facts()),
            "class" => once(&mut class, cursor.strings()),
            "identity" => once(&mut identity, cursor.strings()),
            "agent" => once(&mut agent, cursor.strings()),
            "compound" => once(&mut compound, cursor.strings()),
            _ => None,
        })?;
        Some(Filter {
            fact: fact.unwrap_or_default(),
            class: class.unwrap_or_default(),
            identity: identity.unwrap_or_default(),
            agent: agent.unwrap_or_default(),
            compound: compound.unwrap_or_default(),
        })
    }

    /// A filter's fact comparisons: an array, empty or read by serde.
    fn facts(&mut self) -> Option<Vec<FactFilter>> {
        if self.empty(b'[', b']')? {
            return Some(Vec::new());
        }
        self.with_serde()
    }
}

/// Sets a field seen for the first time; a key given twice gives up (serde refuses it).
fn once<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value?);
    Some(())
}

/// How deeply `value` nests arrays and objects (a scalar is 0).
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Kind, RequestKind};
    use crate::RequestEnvelope;
    use serde_json::json;

    /// Requests of every shape the reader takes, and some it leaves to serde.
    fn corpus() -> Vec<String> {
        let base = json!({
            "id": "5d3c8f0a9b2e4c1d8e7f6a5b4c3d2e1f",
            "collective": "mco",
            "agent": "rpcutil",
            "action": "ping",
            "data": {},
            "filter": {"fact": [], "class": [], "identity": [], "agent": ["rpcutil"], "compound": []},
            "caller": "user=alice",
            "sender": "admin1.example.net",
            "time": 1763856000123u64,
            "ttl": 60,
            "reply_to": "mco.reply.0f1e2d3c4b5a69788796a5b4c3d2e1f0.5d3c8f0a9b2e4c1d8e7f6a5b4c3d2e1f"
        });
        let mut shapes = vec![base.clone()];
        let mut with = |key: &str, value: Value| {
            let mut request = base.clone();
            request[key] = value;
            shapes.push(request);
        };
        with(
            "data",
            json!({"service": "httpd", "n": [1, 2.5, {"deep": null}], "ok": true}),
        );
        with(
            "filter",
            json!({"fact": [{"fact": "country", "operator": "==", "value": "uk"}],
                   "class": ["role::web", "/^db/"], "identity": ["web1"], "compound": ["a and b"]}),
        );
        with("filter", json!({}));
        with("targets", json!({"root": "ab".repeat(32), "count": 3}));
        with("targets", Value::Null);
        with("sender", json!("wéb1.例え.net"));
        with("caller", json!("user=\"quoted\"\\"));
        with("ttl", json!(0));
        with("time", json!(u64::MAX));
        let mut texts: Vec<String> = shapes.iter().map(|s| s.to_string()).collect();
        texts.push(serde_json::to_string_pretty(&base).unwrap());
        // Keys in another order, and nothing optional.
        texts.push(
            r#"{"reply_to":"mco.reply.x.y","ttl":1,"time":2,"sender":"s","caller":"c","action":"a","agent":"b","collective":"mco","id":"i"}"#
                .to_string(),
        );
        texts
    }

    /// Texts near `text`: each byte dropped, replaced or preceded by bytes that matter to
    /// JSON, and a few whole-text changes.
    fn mutations(text: &str) -> Vec<String> {
        const BYTES: &[u8] = b"\"\\{}[],: 0159-.eEnulx\x01\x7f";
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        for i in 0..bytes.len() {
            let mut dropped = bytes.to_vec();
            dropped.remove(i);
            out.push(dropped);
            for &b in BYTES {
                let mut replaced = bytes.to_vec();
                replaced[i] = b;
                out.push(replaced);
                let mut inserted = bytes.to_vec();
                inserted.insert(i, b);
                out.push(inserted);
            }
        }
        out.into_iter()
            .filter_map(|b| String::from_utf8(b).ok())
            .chain([
                format!("{text} "),
                format!("{text}x"),
                format!("{text}{text}"),
                text.replacen("\"ttl\"", "\"ttl\":5,\"ttl\"", 1),
                text.replacen("\"id\"", "\"extra\":1,\"id\"", 1),
                text.replacen("\"agent\":[", "\"agent\":[\"x\",", 1),
            ])
            .collect()
    }

    /// serde's reading of a request, as `Envelope::body` does it.
    fn serde_request(text: &str) -> Option<Request<'_>> {
        serde_json::from_str::<Request<'_>>(text).ok()
    }

    #[test]
    fn the_reader_takes_what_clients_send() {
        let texts = corpus();
        // The base, the data, facts, empty filter, targets, targets null, unicode, ttl 0
        // (valid JSON, refused later by validation), u64::MAX, pretty, reordered.
        for i in [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11] {
            let text = &texts[i];
            let read = read_request(text);
            assert!(read.is_some(), "taken: {text}");
            assert_eq!(read, serde_request(text), "{text}");
        }
        // An escaped string is left to serde.
        assert!(read_request(&texts[7]).is_none());
        assert!(serde_request(&texts[7]).is_some());
    }

    #[test]
    fn whatever_the_reader_takes_serde_reads_the_same() {
        let mut taken = 0;
        let mut checked = 0;
        for text in corpus() {
            for mutated in mutations(&text) {
                checked += 1;
                if let Some(read) = read_request(&mutated) {
                    taken += 1;
                    assert_eq!(Some(read), serde_request(&mutated), "{mutated}");
                }
            }
        }
        // The reader takes many of the texts, so the comparison compares something.
        assert!(taken > checked / 20, "{taken} of {checked}");
    }

    #[test]
    fn whatever_the_envelope_reader_takes_serde_reads_the_same() {
        let mut taken = 0;
        // The requests' own mutations are the test above's; here those of the envelope
        // around two of them.
        for text in corpus().into_iter().take(2) {
            let Some(request) = serde_request(&text) else {
                continue;
            };
            let envelope = RequestEnvelope::unsigned(&request)
                .unwrap()
                .to_bytes()
                .unwrap();
            let envelope = String::from_utf8(envelope).unwrap();
            let signed = envelope.replace(
                "\"signature\":null,\"token\":null",
                "\"signature\":\"c2ln\",\"token\":\"dG9r\",\"target\":null",
            );
            for text in [envelope, signed] {
                for mutated in mutations(&text) {
                    let serde = serde_json_envelope(&mutated);
                    if let Some(read) = open_request_envelope(&mutated, RequestKind::PROTOCOL) {
                        taken += 1;
                        assert_eq!(Some(read), serde, "{mutated}");
                    }
                }
            }
        }
        assert!(taken > 2_000, "{taken}");
    }

    /// serde's reading of an envelope's request and target proof (without the checks
    /// `open_unverified` adds after reading, which apply to both readings alike).
    fn serde_json_envelope(text: &str) -> Option<(Request<'_>, Option<TargetProof>)> {
        let envelope = RequestEnvelope::decode(text.as_bytes()).ok()?;
        let request: Request<'_> = serde_json::from_str(envelope.body.get()).ok()?;
        // Borrow from `text`, as the reader does: the body is a slice of it.
        let request = request.into_owned();
        let target = envelope.target;
        Some((request, target))
    }

    #[test]
    fn deep_data_is_left_to_serde() {
        let deep = format!(
            r#"{{"id":"i","collective":"c","agent":"a","action":"b","caller":"c","sender":"s","time":1,"ttl":1,"reply_to":"r","data":{{"k":{}1{}}}}}"#,
            "[".repeat(MAX_DATA_DEPTH),
            "]".repeat(MAX_DATA_DEPTH)
        );
        assert!(read_request(&deep).is_none());
        let shallow = deep.replacen("[", "", 1).replacen("]", "", 1);
        assert!(read_request(&shallow).is_some());
    }
}
