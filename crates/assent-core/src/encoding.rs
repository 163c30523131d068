//! The canonical byte encoding of ledger entries.
//!
//! PROTOCOL CONTRACT — DO NOT CHANGE. The bytes produced here are what every leaf hash, every
//! checkpoint and every receipt commits to. Entries are RFC 8785 (JCS) JSON objects: keys sorted,
//! no whitespace, integers only, strings escaped the JCS way. Any third party can re-hash an
//! entry with a stock JCS library. Optional fields are omitted, never `null`.
//!
//! Consent entry (`"v": 1`), keys in this order:
//! `action, controller, evidence?, jurisdiction?, kind="consent", language?, method,
//! notice_hash?, purpose, recorded_at, subject, v, version?`
//!
//! Notice entry: `controller, hash, kind="notice", published_at, purpose, v, version`.
//!
//! Erasure entry: `controller, kind="erasure", recorded_at, v` (it names no one).
//!
//! `subject` and `evidence` are lowercase hex of 32 bytes; `recorded_at`/`published_at` use the
//! fixed-width `YYYY-MM-DDTHH:MM:SS.mmmZ` form. A change needs a new `v` and a decoder for both.

use std::io::Write;

use crate::catalog::ContentHash;
use crate::crypto::from_hex32;
use crate::event::{
    Action, ConsentEvent, Erasure, LedgerEntry, Method, NoticePublication, Pseudonym, parse_jurisdiction,
};
use crate::id::{ControllerId, Language, PurposeId};
use crate::time::Timestamp;

pub const ENCODING_VERSION: u64 = 1;

/// Why bytes could not be read back as an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("entry is not valid JSON: {0}")]
    Json(String),
    #[error("entry field `{field}` is invalid: {message}")]
    Field { field: &'static str, message: String },
    #[error("entry encoding version {0} is not supported")]
    Version(u64),
    #[error("entry bytes are not in canonical form")]
    NotCanonical,
}

/// Appends `s` as a JCS string literal.
fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    // Almost every string we encode needs no escaping: copy it whole.
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    for ch in s.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\u{09}' => out.extend_from_slice(b"\\t"),
            '\u{0a}' => out.extend_from_slice(b"\\n"),
            '\u{0c}' => out.extend_from_slice(b"\\f"),
            '\u{0d}' => out.extend_from_slice(b"\\r"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// The lowercase hex digit of a value below 16.
fn nibble(n: u8) -> u8 {
    if n < 10 { b'0' + n } else { b'a' + (n - 10) }
}

/// Writes a JSON object whose keys the caller supplies already sorted.
struct ObjectWriter<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        push_str(self.out, key);
        self.out.push(b':');
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        push_str(self.out, value);
    }

    fn uint(&mut self, key: &str, value: u64) {
        self.key(key);
        let _ = write!(self.out, "{value}");
    }

    /// A string of lowercase hex, written without an intermediate `String`.
    fn hex(&mut self, key: &str, prefix: &str, bytes: &[u8]) {
        self.key(key);
        self.out.push(b'"');
        self.out.extend_from_slice(prefix.as_bytes());
        for &b in bytes {
            self.out.extend_from_slice(&[nibble(b >> 4), nibble(b & 0x0f)]);
        }
        self.out.push(b'"');
    }

    fn time(&mut self, key: &str, at: Timestamp) {
        self.key(key);
        self.out.push(b'"');
        at.write_to(self.out);
        self.out.push(b'"');
    }

    fn finish(self) {
        self.out.push(b'}');
    }
}

/// The canonical bytes of an entry.
pub fn encode(entry: &LedgerEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(384);
    encode_into(entry, &mut out);
    out
}

/// Appends the canonical bytes of `entry` to `out`.
pub fn encode_into(entry: &LedgerEntry, out: &mut Vec<u8>) {
    match entry {
        LedgerEntry::Consent(e) => encode_consent(e, out),
        LedgerEntry::Notice(n) => encode_notice(n, out),
        LedgerEntry::Erasure(e) => {
            let mut w = ObjectWriter::new(out);
            w.str("controller", e.controller.as_str());
            w.str("kind", "erasure");
            w.time("recorded_at", e.recorded_at);
            w.uint("v", ENCODING_VERSION);
            w.finish();
        }
    }
}

fn encode_consent(e: &ConsentEvent, out: &mut Vec<u8>) {
    let mut w = ObjectWriter::new(out);
    w.str("action", e.action.as_str());
    w.str("controller", e.controller.as_str());
    if let Some(evidence) = &e.evidence {
        w.hex("evidence", "", evidence);
    }
    if let Some(j) = &e.jurisdiction {
        w.str("jurisdiction", j);
    }
    w.str("kind", "consent");
    if let Some(l) = &e.language {
        w.str("language", l.as_str());
    }
    w.str("method", e.method.as_str());
    if let Some(h) = &e.notice_hash {
        w.hex("notice_hash", "sha256:", &h.0);
    }
    w.str("purpose", e.purpose.as_str());
    w.time("recorded_at", e.recorded_at);
    w.hex("subject", "", &e.subject.0);
    w.uint("v", ENCODING_VERSION);
    if let Some(v) = e.version {
        w.uint("version", u64::from(v));
    }
    w.finish();
}

fn encode_notice(n: &NoticePublication, out: &mut Vec<u8>) {
    let mut w = ObjectWriter::new(out);
    w.str("controller", n.controller.as_str());
    w.hex("hash", "sha256:", &n.hash.0);
    w.str("kind", "notice");
    w.time("published_at", n.published_at);
    w.str("purpose", n.purpose.as_str());
    w.uint("v", ENCODING_VERSION);
    w.uint("version", u64::from(n.version));
    w.finish();
}

/// An entry's fields as found in its bytes. Canonical entries never contain escapes, so every
/// value borrows from the input.
#[derive(Default)]
struct RawEntry<'a> {
    kind: Option<&'a str>,
    v: Option<u64>,
    controller: Option<&'a str>,
    action: Option<&'a str>,
    evidence: Option<&'a str>,
    jurisdiction: Option<&'a str>,
    language: Option<&'a str>,
    method: Option<&'a str>,
    notice_hash: Option<&'a str>,
    purpose: Option<&'a str>,
    recorded_at: Option<&'a str>,
    subject: Option<&'a str>,
    version: Option<u64>,
    hash: Option<&'a str>,
    published_at: Option<&'a str>,
}

enum Scalar<'a> {
    Str(&'a str),
    Num(u64),
}

fn json_error(what: &str) -> DecodeError {
    DecodeError::Json(what.to_owned())
}

/// Reads a flat JSON object of strings and unsigned integers. Anything else — nesting, escapes,
/// whitespace, duplicate or unknown keys — cannot be canonical and is refused here, before the
/// final re-encoding comparison.
fn parse_flat(bytes: &[u8]) -> Result<RawEntry<'_>, DecodeError> {
    let text = std::str::from_utf8(bytes).map_err(|_| json_error("not UTF-8"))?;
    let at = |i: usize| bytes.get(i).copied();
    let string = |i: &mut usize| -> Result<&str, DecodeError> {
        if at(*i) != Some(b'"') {
            return Err(json_error("expected a string"));
        }
        let start = *i + 1;
        let len = bytes
            .get(start..)
            .and_then(|rest| rest.iter().position(|&c| c == b'"'))
            .ok_or_else(|| json_error("unterminated string"))?;
        let value = text.get(start..start + len).ok_or_else(|| json_error("bad string"))?;
        if value.bytes().any(|c| c == b'\\' || c < 0x20) {
            return Err(DecodeError::NotCanonical);
        }
        *i = start + len + 1;
        Ok(value)
    };
    let mut raw = RawEntry::default();
    let mut i = 0;
    if at(i) != Some(b'{') {
        return Err(json_error("expected an object"));
    }
    i += 1;
    loop {
        let key = string(&mut i)?;
        if at(i) != Some(b':') {
            return Err(json_error("expected `:`"));
        }
        i += 1;
        let value = match at(i) {
            Some(b'"') => Scalar::Str(string(&mut i)?),
            Some(b'0'..=b'9') => {
                let len = bytes.get(i..).map_or(0, |rest| rest.iter().take_while(|c| c.is_ascii_digit()).count());
                let digits = text.get(i..i + len).ok_or_else(|| json_error("bad number"))?;
                i += len;
                Scalar::Num(digits.parse().map_err(|_| json_error("number out of range"))?)
            }
            _ => return Err(json_error("values must be strings or unsigned integers")),
        };
        match (key, value) {
            ("kind", Scalar::Str(v)) if raw.kind.is_none() => raw.kind = Some(v),
            ("controller", Scalar::Str(v)) if raw.controller.is_none() => raw.controller = Some(v),
            ("action", Scalar::Str(v)) if raw.action.is_none() => raw.action = Some(v),
            ("evidence", Scalar::Str(v)) if raw.evidence.is_none() => raw.evidence = Some(v),
            ("jurisdiction", Scalar::Str(v)) if raw.jurisdiction.is_none() => raw.jurisdiction = Some(v),
            ("language", Scalar::Str(v)) if raw.language.is_none() => raw.language = Some(v),
            ("method", Scalar::Str(v)) if raw.method.is_none() => raw.method = Some(v),
            ("notice_hash", Scalar::Str(v)) if raw.notice_hash.is_none() => raw.notice_hash = Some(v),
            ("purpose", Scalar::Str(v)) if raw.purpose.is_none() => raw.purpose = Some(v),
            ("recorded_at", Scalar::Str(v)) if raw.recorded_at.is_none() => raw.recorded_at = Some(v),
            ("subject", Scalar::Str(v)) if raw.subject.is_none() => raw.subject = Some(v),
            ("hash", Scalar::Str(v)) if raw.hash.is_none() => raw.hash = Some(v),
            ("published_at", Scalar::Str(v)) if raw.published_at.is_none() => raw.published_at = Some(v),
            ("v", Scalar::Num(n)) if raw.v.is_none() => raw.v = Some(n),
            ("version", Scalar::Num(n)) if raw.version.is_none() => raw.version = Some(n),
            (other, _) => return Err(json_error(&format!("unexpected, repeated or mistyped field `{other}`"))),
        }
        match at(i) {
            Some(b',') => i += 1,
            Some(b'}') if i + 1 == bytes.len() => return Ok(raw),
            _ => return Err(json_error("expected `,` or a final `}`")),
        }
    }
}

fn field<T>(name: &'static str, value: Option<T>) -> Result<T, DecodeError> {
    value.ok_or(DecodeError::Field { field: name, message: "is missing".into() })
}

fn check<T>(name: &'static str, r: Result<T, String>) -> Result<T, DecodeError> {
    r.map_err(|message| DecodeError::Field { field: name, message })
}

/// Reads canonical bytes back into an entry, rejecting anything that does not re-encode to the
/// exact same bytes (so two different byte strings can never stand for one entry).
pub fn decode(bytes: &[u8]) -> Result<LedgerEntry, DecodeError> {
    let raw = parse_flat(bytes)?;
    let v = field("v", raw.v)?;
    if v != ENCODING_VERSION {
        return Err(DecodeError::Version(v));
    }
    let controller = check("controller", ControllerId::parse(field("controller", raw.controller)?))?;
    let purpose = || check("purpose", PurposeId::parse(raw.purpose.unwrap_or_default()));
    let version = raw
        .version
        .map(|v| u32::try_from(v).map_err(|_| DecodeError::Field { field: "version", message: "out of range".into() }))
        .transpose()?;
    let entry = match field("kind", raw.kind)? {
        "consent" => {
            let hex32 = |name: &'static str, s: &str| {
                from_hex32(s).ok_or(DecodeError::Field { field: name, message: "must be 64 hex digits".into() })
            };
            LedgerEntry::Consent(ConsentEvent {
                controller,
                subject: Pseudonym(hex32("subject", field("subject", raw.subject)?)?),
                purpose: purpose()?,
                version,
                notice_hash: raw.notice_hash.map(|h| check("notice_hash", ContentHash::parse(h))).transpose()?,
                action: check("action", Action::parse(field("action", raw.action)?))?,
                method: check("method", Method::parse_any(field("method", raw.method)?))?,
                recorded_at: check("recorded_at", Timestamp::parse_rfc3339(field("recorded_at", raw.recorded_at)?))?,
                jurisdiction: raw.jurisdiction.map(|j| check("jurisdiction", parse_jurisdiction(j))).transpose()?,
                language: raw.language.map(|l| check("language", Language::parse(l))).transpose()?,
                evidence: raw.evidence.map(|e| hex32("evidence", e)).transpose()?,
            })
        }
        "notice" => LedgerEntry::Notice(NoticePublication {
            controller,
            purpose: purpose()?,
            version: field("version", version)?,
            hash: check("hash", ContentHash::parse(field("hash", raw.hash)?))?,
            published_at: check("published_at", Timestamp::parse_rfc3339(field("published_at", raw.published_at)?))?,
        }),
        "erasure" => LedgerEntry::Erasure(Erasure {
            controller,
            recorded_at: check("recorded_at", Timestamp::parse_rfc3339(field("recorded_at", raw.recorded_at)?))?,
        }),
        other => {
            return Err(DecodeError::Field { field: "kind", message: format!("unknown kind `{other}`") });
        }
    };
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let canonical = BUFFER.with_borrow_mut(|buffer| {
        buffer.clear();
        encode_into(&entry, buffer);
        buffer.as_slice() == bytes
    });
    if !canonical {
        return Err(DecodeError::NotCanonical);
    }
    Ok(entry)
}

/// RFC 8785 form of a JSON value made of objects, arrays, strings, booleans, null and integers.
/// Used for content hashes; ledger entries use the faster fixed writer above.
pub fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_value(value, &mut out);
    out
}

fn write_value(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        // Only integers reach this encoder (no field of ours is fractional); serde_json prints
        // them exactly as JCS does.
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => push_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // JCS sorts keys by UTF-16 code units.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_str(out, k);
                out.push(b':');
                write_value(v, out);
            }
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{leaf_hash, to_hex};
    use proptest::prelude::*;

    fn sample_grant() -> LedgerEntry {
        LedgerEntry::Consent(ConsentEvent {
            controller: ControllerId::parse("demo").unwrap(),
            subject: Pseudonym([0xab; 32]),
            purpose: PurposeId::parse("ads-targeting").unwrap(),
            version: Some(2),
            notice_hash: Some(ContentHash([0x11; 32])),
            action: Action::Grant,
            method: Method::Web,
            recorded_at: Timestamp::from_unix_millis(1_798_545_600_123),
            jurisdiction: Some("US-ME".into()),
            language: Some(Language::parse("es").unwrap()),
            evidence: Some([0x22; 32]),
        })
    }

    /// Freezes the encoding: if this test fails, the change breaks every existing ledger.
    #[test]
    fn consent_encoding_known_answer() {
        let bytes = encode(&sample_grant());
        let expected = concat!(
            r#"{"action":"grant","controller":"demo","#,
            r#""evidence":"2222222222222222222222222222222222222222222222222222222222222222","#,
            r#""jurisdiction":"US-ME","kind":"consent","language":"es","method":"web","#,
            r#""notice_hash":"sha256:1111111111111111111111111111111111111111111111111111111111111111","#,
            r#""purpose":"ads-targeting","recorded_at":"2026-12-29T12:00:00.123Z","#,
            r#""subject":"abababababababababababababababababababababababababababababababab","#,
            r#""v":1,"version":2}"#
        );
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), expected);
        assert_eq!(to_hex(&leaf_hash(&bytes)), "21ab31030f6a050f3684bea538029d251a50fc1e9a947f10d802261647110769");
    }

    #[test]
    fn notice_encoding_known_answer() {
        let entry = LedgerEntry::Notice(NoticePublication {
            controller: ControllerId::parse("demo").unwrap(),
            purpose: PurposeId::parse("ads-targeting").unwrap(),
            version: 3,
            hash: ContentHash([0x33; 32]),
            published_at: Timestamp::from_unix_millis(0),
        });
        assert_eq!(
            String::from_utf8(encode(&entry)).unwrap(),
            concat!(
                r#"{"controller":"demo","hash":"sha256:3333333333333333333333333333333333333333333333333333333333333333","#,
                r#""kind":"notice","published_at":"1970-01-01T00:00:00.000Z","purpose":"ads-targeting","v":1,"version":3}"#
            )
        );
    }

    #[test]
    fn decode_rejects_non_canonical_bytes() {
        let bytes = encode(&sample_grant());
        let spaced = String::from_utf8(bytes.clone()).unwrap().replacen(",", ", ", 1);
        assert!(decode(spaced.as_bytes()).is_err());
        assert_eq!(decode(&bytes).unwrap(), sample_grant());
    }

    #[test]
    fn decode_refuses_whatever_is_not_exactly_canonical() {
        let good = String::from_utf8(encode(&sample_grant())).unwrap();
        for bad in [
            good.replacen("{", "{ ", 1),
            good.replacen("\"action\":\"grant\",", "\"action\":\"grant\",\"action\":\"grant\",", 1),
            good.replacen("\"v\":1", "\"v\":01", 1),
            good.replacen("\"v\":1", "\"v\":\"1\"", 1),
            good.replacen("ads-targeting", "ads\\u002dtargeting", 1),
            good.replacen("abab", "ABAB", 1),
            good.replacen(".123Z", "Z", 1),
            good.replacen("}", ",\"extra\":1}", 1),
            format!("{good} "),
            good.replacen("\"jurisdiction\":\"US-ME\",", "", 1)
                .replacen("\"kind\"", "\"jurisdiction\":\"US-ME\",\"kind\"", 1)
                .replacen("\"evidence\"", "\"zz\":1,\"evidence\"", 1),
        ] {
            assert!(decode(bad.as_bytes()).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn fixed_writer_agrees_with_generic_jcs() {
        let bytes = encode(&sample_grant());
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(canonical_json(&value), bytes);
    }

    #[test]
    fn jcs_escapes_control_characters_and_sorts_keys() {
        let value = serde_json::json!({"b": "x\u{1}\n\"é", "a": [1, true, null]});
        assert_eq!(
            String::from_utf8(canonical_json(&value)).unwrap(),
            "{\"a\":[1,true,null],\"b\":\"x\\u0001\\n\\\"é\"}"
        );
    }

    proptest! {
        #[test]
        fn a_changed_byte_never_decodes_to_other_canonical_bytes(pos in 0usize..400, byte in any::<u8>()) {
            let mut bytes = encode(&sample_grant());
            let pos = pos % bytes.len();
            bytes[pos] = byte;
            if let Ok(entry) = decode(&bytes) {
                prop_assert_eq!(encode(&entry), bytes);
            }
        }

        #[test]
        fn consent_entries_round_trip(
            seed in any::<[u8; 32]>(),
            version in proptest::option::of(1u32..1000),
            withdraw in any::<bool>(),
            ms in 0i64..4_000_000_000_000,
            lang in proptest::option::of("[a-z]{2}"),
            jurisdiction in proptest::option::of("[A-Z]{2}(-[A-Z0-9]{1,3})?"),
        ) {
            let entry = LedgerEntry::Consent(ConsentEvent {
                controller: ControllerId::parse("c-1").unwrap(),
                subject: Pseudonym(seed),
                purpose: PurposeId::parse("p").unwrap(),
                version,
                notice_hash: version.map(|_| ContentHash(seed)),
                action: if withdraw { Action::Withdraw } else { Action::Grant },
                method: Method::Api,
                recorded_at: Timestamp::from_unix_millis(ms),
                jurisdiction,
                language: lang.map(|l| Language::parse(&l).unwrap()),
                evidence: None,
            });
            let bytes = encode(&entry);
            prop_assert_eq!(decode(&bytes).unwrap(), entry);
            let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(canonical_json(&value), bytes);
        }
    }
}
