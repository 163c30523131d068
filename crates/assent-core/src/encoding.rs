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
use crate::crypto::Hash32;
use crate::crypto::from_lower_hex32;
use crate::event::{
    Action, ConsentEvent, Erasure, LedgerEntry, Method, NoticePublication, Pseudonym, parse_jurisdiction,
};
use crate::id::{ControllerId, Language, PurposeId, check_slug};
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
    if !needs_escaping(s.as_bytes()) {
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

/// Whether `bytes` holds a quote, a backslash or a control character. Written as a fold without
/// early exit so the compiler can vectorise it; strings here are short.
fn needs_escaping(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |found, &b| found | (b < 0x20) | (b == b'"') | (b == b'\\'))
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
    fn hex(&mut self, key: &str, prefix: &str, bytes: &[u8; 32]) {
        self.key(key);
        self.out.push(b'"');
        self.out.extend_from_slice(prefix.as_bytes());
        let mut digits = [0u8; 64];
        for (pair, &b) in digits.chunks_exact_mut(2).zip(bytes) {
            pair.copy_from_slice(&[nibble(b >> 4), nibble(b & 0x0f)]);
        }
        self.out.extend_from_slice(&digits);
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

/// A ledger entry whose text borrows from elsewhere: from an owned [`LedgerEntry`] being
/// encoded, or from the bytes being decoded. The one encoder and the one decoder both work on
/// views, so an audit can check every entry without allocating, and encoding and decoding can
/// never disagree about a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryView<'a> {
    Consent(ConsentView<'a>),
    Notice(NoticeView<'a>),
    Erasure { controller: &'a str, recorded_at: Timestamp },
}

/// [`ConsentEvent`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentView<'a> {
    pub controller: &'a str,
    pub subject: Pseudonym,
    pub purpose: &'a str,
    pub version: Option<u32>,
    pub notice_hash: Option<ContentHash>,
    pub action: Action,
    pub method: Method,
    pub recorded_at: Timestamp,
    pub jurisdiction: Option<&'a str>,
    pub language: Option<&'a str>,
    pub evidence: Option<Hash32>,
}

/// [`NoticePublication`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoticeView<'a> {
    pub controller: &'a str,
    pub purpose: &'a str,
    pub version: u32,
    pub hash: ContentHash,
    pub published_at: Timestamp,
}

impl<'a> EntryView<'a> {
    pub fn of(entry: &'a LedgerEntry) -> Self {
        match entry {
            LedgerEntry::Consent(e) => Self::Consent(ConsentView {
                controller: e.controller.as_str(),
                subject: e.subject,
                purpose: e.purpose.as_str(),
                version: e.version,
                notice_hash: e.notice_hash,
                action: e.action,
                method: e.method,
                recorded_at: e.recorded_at,
                jurisdiction: e.jurisdiction.as_deref(),
                language: e.language.as_ref().map(Language::as_str),
                evidence: e.evidence,
            }),
            LedgerEntry::Notice(n) => Self::Notice(NoticeView {
                controller: n.controller.as_str(),
                purpose: n.purpose.as_str(),
                version: n.version,
                hash: n.hash,
                published_at: n.published_at,
            }),
            LedgerEntry::Erasure(e) => Self::Erasure { controller: e.controller.as_str(), recorded_at: e.recorded_at },
        }
    }

    /// The controller the entry belongs to.
    pub fn controller(&self) -> &'a str {
        match self {
            Self::Consent(c) => c.controller,
            Self::Notice(n) => n.controller,
            Self::Erasure { controller, .. } => controller,
        }
    }

    /// The owned entry. Every field was validated when the view was decoded.
    pub fn to_entry(&self) -> Result<LedgerEntry, DecodeError> {
        Ok(match *self {
            Self::Consent(c) => LedgerEntry::Consent(ConsentEvent {
                controller: check("controller", ControllerId::parse(c.controller))?,
                subject: c.subject,
                purpose: check("purpose", PurposeId::parse(c.purpose))?,
                version: c.version,
                notice_hash: c.notice_hash,
                action: c.action,
                method: c.method,
                recorded_at: c.recorded_at,
                jurisdiction: c.jurisdiction.map(str::to_owned),
                language: c.language.map(|l| check("language", Language::parse(l))).transpose()?,
                evidence: c.evidence,
            }),
            Self::Notice(n) => LedgerEntry::Notice(NoticePublication {
                controller: check("controller", ControllerId::parse(n.controller))?,
                purpose: check("purpose", PurposeId::parse(n.purpose))?,
                version: n.version,
                hash: n.hash,
                published_at: n.published_at,
            }),
            Self::Erasure { controller, recorded_at } => LedgerEntry::Erasure(Erasure {
                controller: check("controller", ControllerId::parse(controller))?,
                recorded_at,
            }),
        })
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
    encode_view(&EntryView::of(entry), out);
}

fn encode_view(entry: &EntryView<'_>, out: &mut Vec<u8>) {
    match entry {
        EntryView::Consent(e) => encode_consent(e, out),
        EntryView::Notice(n) => encode_notice(n, out),
        EntryView::Erasure { controller, recorded_at } => {
            let mut w = ObjectWriter::new(out);
            w.str("controller", controller);
            w.str("kind", "erasure");
            w.time("recorded_at", *recorded_at);
            w.uint("v", ENCODING_VERSION);
            w.finish();
        }
    }
}

fn encode_consent(e: &ConsentView<'_>, out: &mut Vec<u8>) {
    let mut w = ObjectWriter::new(out);
    w.str("action", e.action.as_str());
    w.str("controller", e.controller);
    if let Some(evidence) = &e.evidence {
        w.hex("evidence", "", evidence);
    }
    if let Some(j) = e.jurisdiction {
        w.str("jurisdiction", j);
    }
    w.str("kind", "consent");
    if let Some(l) = e.language {
        w.str("language", l);
    }
    w.str("method", e.method.as_str());
    if let Some(h) = &e.notice_hash {
        w.hex("notice_hash", "sha256:", &h.0);
    }
    w.str("purpose", e.purpose);
    w.time("recorded_at", e.recorded_at);
    w.hex("subject", "", &e.subject.0);
    w.uint("v", ENCODING_VERSION);
    if let Some(v) = e.version {
        w.uint("version", u64::from(v));
    }
    w.finish();
}

fn encode_notice(n: &NoticeView<'_>, out: &mut Vec<u8>) {
    let mut w = ObjectWriter::new(out);
    w.str("controller", n.controller);
    w.hex("hash", "sha256:", &n.hash.0);
    w.str("kind", "notice");
    w.time("published_at", n.published_at);
    w.str("purpose", n.purpose);
    w.uint("v", ENCODING_VERSION);
    w.uint("version", u64::from(n.version));
    w.finish();
}

/// An entry's fields as found in its bytes. Canonical entries never contain escapes, so every
/// value borrows from the input.
#[derive(Default)]
struct RawEntry<'a> {
    action: Option<&'a str>,
    controller: Option<&'a str>,
    evidence: Option<&'a str>,
    hash: Option<&'a str>,
    jurisdiction: Option<&'a str>,
    kind: Option<&'a str>,
    language: Option<&'a str>,
    method: Option<&'a str>,
    notice_hash: Option<&'a str>,
    published_at: Option<&'a str>,
    purpose: Option<&'a str>,
    recorded_at: Option<&'a str>,
    subject: Option<&'a str>,
    v: Option<u64>,
    version: Option<u64>,
}

/// Every key an entry of any kind may hold, in the order RFC 8785 sorts them (by UTF-16 code
/// unit, which for these ASCII keys is byte order). [`key_slot`] is the fast form of this list.
#[cfg(test)]
const KEYS: [&str; 15] = [
    "action",
    "controller",
    "evidence",
    "hash",
    "jurisdiction",
    "kind",
    "language",
    "method",
    "notice_hash",
    "published_at",
    "purpose",
    "recorded_at",
    "subject",
    "v",
    "version",
];

/// The position of `key` in [`KEYS`].
fn key_slot(key: &str) -> Option<usize> {
    Some(match key {
        "action" => 0,
        "controller" => 1,
        "evidence" => 2,
        "hash" => 3,
        "jurisdiction" => 4,
        "kind" => 5,
        "language" => 6,
        "method" => 7,
        "notice_hash" => 8,
        "published_at" => 9,
        "purpose" => 10,
        "recorded_at" => 11,
        "subject" => 12,
        "v" => 13,
        "version" => 14,
        _ => return None,
    })
}

fn json_error(what: &str) -> DecodeError {
    DecodeError::Json(what.to_owned())
}

/// The string at the start of `rest` (which must open with a quote) and what follows it.
fn leading_string(rest: &str) -> Result<(&str, &str), DecodeError> {
    let inner = rest.strip_prefix('"').ok_or_else(|| json_error("expected a string"))?;
    let len = first_special(inner.as_bytes()).ok_or_else(|| json_error("unterminated string"))?;
    // Canonical entries never need escapes, so the first quote, backslash or control character
    // must be the closing quote.
    if inner.as_bytes().get(len) != Some(&b'"') {
        return Err(DecodeError::NotCanonical);
    }
    let (Some(value), Some(after)) = (inner.get(..len), inner.get(len + 1..)) else {
        return Err(json_error("bad string"));
    };
    Ok((value, after))
}

/// The position of the first quote, backslash or control character in `bytes`, eight bytes at
/// a time (the audit reads every string of every entry through here).
fn first_special(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Marks each zero byte of `v` (and possibly bytes above the first one, which do not matter
    // as only the lowest mark is used).
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut words = bytes.chunks_exact(8);
    let mut offset = 0;
    for word in words.by_ref() {
        let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        let marks = zero_bytes(w ^ (ONES * u64::from(b'"')))
            | zero_bytes(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS);
        if marks != 0 {
            return Some(offset + (marks.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    words.remainder().iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).map(|p| offset + p)
}

/// Reads a flat JSON object of strings and unsigned integers whose keys come in canonical order.
/// Anything that cannot be canonical — nesting, escapes, whitespace, keys out of order, repeated
/// or unknown, numbers with leading zeros — is refused here.
fn parse_flat(bytes: &[u8]) -> Result<RawEntry<'_>, DecodeError> {
    let text = std::str::from_utf8(bytes).map_err(|_| json_error("not UTF-8"))?;
    let mut raw = RawEntry::default();
    let mut rest = text.strip_prefix('{').ok_or_else(|| json_error("expected an object"))?;
    let mut next_key = 0;
    loop {
        let (key, after) = leading_string(rest)?;
        let Some(slot) = key_slot(key) else {
            return Err(json_error(&format!("unexpected field `{key}`")));
        };
        if slot < next_key {
            return Err(DecodeError::NotCanonical);
        }
        next_key = slot + 1;
        rest = after.strip_prefix(':').ok_or_else(|| json_error("expected `:`"))?;
        let (text_value, number) = if rest.starts_with('"') {
            let (value, after) = leading_string(rest)?;
            rest = after;
            (Some(value), None)
        } else {
            let len = rest.bytes().take_while(u8::is_ascii_digit).count();
            let digits = rest.get(..len).unwrap_or_default();
            if digits.is_empty() {
                return Err(json_error("values must be strings or unsigned integers"));
            }
            if len > 1 && digits.starts_with('0') {
                return Err(DecodeError::NotCanonical);
            }
            rest = rest.get(len..).unwrap_or_default();
            (None, Some(digits.parse::<u64>().map_err(|_| json_error("number out of range"))?))
        };
        let target = match slot {
            0 => &mut raw.action,
            1 => &mut raw.controller,
            2 => &mut raw.evidence,
            3 => &mut raw.hash,
            4 => &mut raw.jurisdiction,
            5 => &mut raw.kind,
            6 => &mut raw.language,
            7 => &mut raw.method,
            8 => &mut raw.notice_hash,
            9 => &mut raw.published_at,
            10 => &mut raw.purpose,
            11 => &mut raw.recorded_at,
            12 => &mut raw.subject,
            13 => {
                raw.v = number;
                &mut None
            }
            _ => {
                raw.version = number;
                &mut None
            }
        };
        let is_number_field = slot >= 13;
        if is_number_field != number.is_some() {
            return Err(json_error(&format!("field `{key}` has the wrong type")));
        }
        if !is_number_field {
            *target = text_value;
        }
        rest = match rest.strip_prefix(',') {
            Some(after) => after,
            None if rest == "}" => return Ok(raw),
            None => return Err(json_error("expected `,` or a final `}`")),
        };
    }
}

fn field<T>(name: &'static str, value: Option<T>) -> Result<T, DecodeError> {
    value.ok_or_else(|| DecodeError::Field { field: name, message: "is missing".into() })
}

fn check<T>(name: &'static str, r: Result<T, String>) -> Result<T, DecodeError> {
    r.map_err(|message| DecodeError::Field { field: name, message })
}

/// Reads canonical bytes back into an entry, rejecting anything that does not re-encode to the
/// exact same bytes (so two different byte strings can never stand for one entry).
pub fn decode(bytes: &[u8]) -> Result<LedgerEntry, DecodeError> {
    decode_view(bytes)?.to_entry()
}

/// [`decode`] without allocating: the entry's text borrows from `bytes`.
///
/// Canonical form is checked field by field rather than by re-encoding (which cost the audit a
/// third of its time): [`parse_flat`] enforces key order, no escapes and plain integers; here
/// each kind may hold only its own fields, hex must be lowercase, and times must be in the one
/// fixed-width form. Every string field is then copied verbatim by the encoder, so the bytes
/// are exactly what [`encode_view`] writes; debug builds (and so every test) re-encode to prove it.
pub fn decode_view(bytes: &[u8]) -> Result<EntryView<'_>, DecodeError> {
    let raw = parse_flat(bytes)?;
    let v = field("v", raw.v)?;
    if v != ENCODING_VERSION {
        return Err(DecodeError::Version(v));
    }
    let controller = field("controller", raw.controller)?;
    check("controller", check_slug(controller, "controller id"))?;
    let purpose = || -> Result<&str, DecodeError> {
        let p = field("purpose", raw.purpose)?;
        check("purpose", check_slug(p, "purpose id"))?;
        Ok(p)
    };
    let version = raw
        .version
        .map(|v| u32::try_from(v).map_err(|_| DecodeError::Field { field: "version", message: "out of range".into() }))
        .transpose()?;
    let kind = field("kind", raw.kind)?;
    let foreign = |present: &[(&'static str, bool)]| match present.iter().find(|(_, here)| *here) {
        Some((name, _)) => Err(DecodeError::Field { field: name, message: format!("has no place in a {kind} entry") }),
        None => Ok(()),
    };
    let entry = match kind {
        "consent" => {
            foreign(&[("hash", raw.hash.is_some()), ("published_at", raw.published_at.is_some())])?;
            if let Some(j) = raw.jurisdiction {
                check("jurisdiction", parse_jurisdiction(j))?;
            }
            if let Some(l) = raw.language {
                check("language", Language::parse(l))?;
            }
            EntryView::Consent(ConsentView {
                controller,
                subject: Pseudonym(lower_hex32("subject", field("subject", raw.subject)?)?),
                purpose: purpose()?,
                version,
                notice_hash: raw.notice_hash.map(|h| content_hash("notice_hash", h)).transpose()?,
                action: check("action", Action::parse(field("action", raw.action)?))?,
                method: check("method", Method::parse_any(field("method", raw.method)?))?,
                recorded_at: fixed_time("recorded_at", raw.recorded_at)?,
                jurisdiction: raw.jurisdiction,
                language: raw.language,
                evidence: raw.evidence.map(|e| lower_hex32("evidence", e)).transpose()?,
            })
        }
        "notice" => {
            foreign(&[
                ("action", raw.action.is_some()),
                ("evidence", raw.evidence.is_some()),
                ("jurisdiction", raw.jurisdiction.is_some()),
                ("language", raw.language.is_some()),
                ("method", raw.method.is_some()),
                ("notice_hash", raw.notice_hash.is_some()),
                ("recorded_at", raw.recorded_at.is_some()),
                ("subject", raw.subject.is_some()),
            ])?;
            EntryView::Notice(NoticeView {
                controller,
                purpose: purpose()?,
                version: field("version", version)?,
                hash: content_hash("hash", field("hash", raw.hash)?)?,
                published_at: fixed_time("published_at", raw.published_at)?,
            })
        }
        "erasure" => {
            foreign(&[
                ("action", raw.action.is_some()),
                ("evidence", raw.evidence.is_some()),
                ("hash", raw.hash.is_some()),
                ("jurisdiction", raw.jurisdiction.is_some()),
                ("language", raw.language.is_some()),
                ("method", raw.method.is_some()),
                ("notice_hash", raw.notice_hash.is_some()),
                ("published_at", raw.published_at.is_some()),
                ("purpose", raw.purpose.is_some()),
                ("subject", raw.subject.is_some()),
                ("version", raw.version.is_some()),
            ])?;
            EntryView::Erasure { controller, recorded_at: fixed_time("recorded_at", raw.recorded_at)? }
        }
        other => {
            return Err(DecodeError::Field { field: "kind", message: format!("unknown kind `{other}`") });
        }
    };
    debug_assert_eq!(
        {
            let mut again = Vec::new();
            encode_view(&entry, &mut again);
            again
        },
        bytes,
        "decode_view accepted bytes the encoder would not write"
    );
    Ok(entry)
}

fn lower_hex32(name: &'static str, s: &str) -> Result<Hash32, DecodeError> {
    let bad = || DecodeError::Field { field: name, message: "must be 64 lowercase hex digits".into() };
    from_lower_hex32(s.as_bytes()).ok_or_else(bad)
}

fn content_hash(name: &'static str, s: &str) -> Result<ContentHash, DecodeError> {
    let hex = s.strip_prefix("sha256:").ok_or_else(|| DecodeError::Field {
        field: name,
        message: format!("`{s}` is not a `sha256:<64 hex digits>` hash"),
    })?;
    Ok(ContentHash(lower_hex32(name, hex)?))
}

/// A time in the one form the encoder writes (`YYYY-MM-DDTHH:MM:SS.mmmZ`); other RFC 3339
/// spellings of the same instant, or impossible dates that would normalise, are refused.
fn fixed_time(name: &'static str, value: Option<&str>) -> Result<Timestamp, DecodeError> {
    let text = field(name, value)?;
    let at = check(name, Timestamp::parse_rfc3339(text))?;
    let same = FIXED.with_borrow_mut(|buffer| {
        buffer.clear();
        at.write_to(buffer);
        buffer.as_slice() == text.as_bytes()
    });
    if !same {
        return Err(DecodeError::Field {
            field: name,
            message: format!("`{text}` is not in the fixed form YYYY-MM-DDTHH:MM:SS.mmmZ"),
        });
    }
    Ok(at)
}

thread_local! {
    static FIXED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
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
    fn first_special_finds_the_first_quote_backslash_or_control_character() {
        let reference = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        let samples: [&[u8]; 9] = [
            b"",
            b"abc",
            b"abc\"",
            b"abcdefgh\"x",
            b"abcdefghijklmnop",
            b"a\\b\"",
            b"\x1fabcdefgh",
            b"\xff\xfe\x80\"",
            b"12345678\n",
        ];
        for sample in samples {
            assert_eq!(first_special(sample), reference(sample), "{sample:?}");
        }
        for len in 0..40 {
            for at in 0..len {
                for special in [b'"', b'\\', 0x00, 0x1f] {
                    let mut bytes = vec![b'~'; len];
                    bytes[at] = special;
                    assert_eq!(first_special(&bytes), Some(at));
                    bytes[at] = 0x20;
                    assert_eq!(first_special(&bytes), None);
                }
            }
        }
    }

    #[test]
    fn keys_are_in_canonical_order_and_each_has_its_slot() {
        assert!(KEYS.windows(2).all(|w| w[0] < w[1]));
        for (i, key) in KEYS.iter().enumerate() {
            assert_eq!(key_slot(key), Some(i));
        }
    }

    #[test]
    fn each_kind_holds_only_its_own_fields_in_the_one_time_form() {
        let erasure = r#"{"controller":"acme","kind":"erasure","recorded_at":"2026-01-31T12:00:00.000Z","v":1}"#;
        assert!(decode(erasure.as_bytes()).is_ok());
        for bad in [
            erasure.replace(r#""kind""#, r#""hash":"sha256:00","kind""#),
            erasure.replace(r#""v":1"#, r#""v":1,"version":2"#),
            erasure.replace(r#""recorded_at""#, r#""purpose":"ads","recorded_at""#),
            erasure.replace(".000Z", "Z"),
            erasure.replace("2026-01-31T12:00:00.000Z", "2026-02-31T12:00:00.000Z"),
            erasure.replace("12:00:00.000Z", "12:00:60.000Z"),
            erasure.replace(r#""controller":"acme","#, ""),
        ] {
            assert!(decode(bad.as_bytes()).is_err(), "accepted {bad}");
        }
        let notice = String::from_utf8(encode(&LedgerEntry::Notice(NoticePublication {
            controller: ControllerId::parse("acme").unwrap(),
            purpose: PurposeId::parse("ads").unwrap(),
            version: 3,
            hash: ContentHash([0xab; 32]),
            published_at: Timestamp::from_unix_millis(1_700_000_000_123),
        })))
        .unwrap();
        assert!(decode(notice.as_bytes()).is_ok());
        for bad in [
            notice.replace(r#""kind""#, r#""jurisdiction":"US","kind""#),
            notice.replace(r#""purpose""#, r#""method":"api","purpose""#),
            notice.replace("abab", "ABAB"),
            notice.replace(r#","version":3"#, ""),
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
