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

use std::borrow::Cow;
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
        let _ = write!(self.out, "\"{at}\"");
    }

    fn finish(self) {
        self.out.push(b'}');
    }
}

/// The canonical bytes of an entry.
pub fn encode(entry: &LedgerEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(320);
    match entry {
        LedgerEntry::Consent(e) => encode_consent(e, &mut out),
        LedgerEntry::Notice(n) => encode_notice(n, &mut out),
        LedgerEntry::Erasure(e) => {
            let mut w = ObjectWriter::new(&mut out);
            w.str("controller", e.controller.as_str());
            w.str("kind", "erasure");
            w.time("recorded_at", e.recorded_at);
            w.uint("v", ENCODING_VERSION);
            w.finish();
        }
    }
    out
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

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    v: u64,
    #[serde(borrow)]
    controller: Cow<'a, str>,
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow)]
    evidence: Option<Cow<'a, str>>,
    #[serde(borrow)]
    jurisdiction: Option<Cow<'a, str>>,
    #[serde(borrow)]
    language: Option<Cow<'a, str>>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    notice_hash: Option<Cow<'a, str>>,
    #[serde(borrow)]
    purpose: Option<Cow<'a, str>>,
    #[serde(borrow)]
    recorded_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    subject: Option<Cow<'a, str>>,
    version: Option<u32>,
    #[serde(borrow)]
    hash: Option<Cow<'a, str>>,
    #[serde(borrow)]
    published_at: Option<Cow<'a, str>>,
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
    let raw: RawEntry = serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
    if raw.v != ENCODING_VERSION {
        return Err(DecodeError::Version(raw.v));
    }
    let controller = check("controller", ControllerId::parse(&raw.controller))?;
    let purpose = || check("purpose", PurposeId::parse(raw.purpose.as_deref().unwrap_or_default()));
    let entry = match &*raw.kind {
        "consent" => {
            let hex32 = |name: &'static str, s: Cow<'_, str>| {
                from_hex32(&s).ok_or(DecodeError::Field { field: name, message: "must be 64 hex digits".into() })
            };
            LedgerEntry::Consent(ConsentEvent {
                controller,
                subject: Pseudonym(hex32("subject", field("subject", raw.subject)?)?),
                purpose: purpose()?,
                version: raw.version,
                notice_hash: raw.notice_hash.map(|h| check("notice_hash", ContentHash::parse(&h))).transpose()?,
                action: check("action", Action::parse(&field("action", raw.action)?))?,
                method: check("method", Method::parse_any(&field("method", raw.method)?))?,
                recorded_at: check("recorded_at", Timestamp::parse_rfc3339(&field("recorded_at", raw.recorded_at)?))?,
                jurisdiction: raw.jurisdiction.map(|j| check("jurisdiction", parse_jurisdiction(&j))).transpose()?,
                language: raw.language.map(|l| check("language", Language::parse(&l))).transpose()?,
                evidence: raw.evidence.map(|e| hex32("evidence", e)).transpose()?,
            })
        }
        "notice" => LedgerEntry::Notice(NoticePublication {
            controller,
            purpose: purpose()?,
            version: field("version", raw.version)?,
            hash: check("hash", ContentHash::parse(&field("hash", raw.hash)?))?,
            published_at: check("published_at", Timestamp::parse_rfc3339(&field("published_at", raw.published_at)?))?,
        }),
        "erasure" => LedgerEntry::Erasure(Erasure {
            controller,
            recorded_at: check("recorded_at", Timestamp::parse_rfc3339(&field("recorded_at", raw.recorded_at)?))?,
        }),
        other => {
            return Err(DecodeError::Field { field: "kind", message: format!("unknown kind `{other}`") });
        }
    };
    if encode(&entry) != bytes {
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
        assert_eq!(decode(spaced.as_bytes()), Err(DecodeError::NotCanonical));
        assert_eq!(decode(&bytes).unwrap(), sample_grant());
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
