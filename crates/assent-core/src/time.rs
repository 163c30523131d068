//! Timestamps as milliseconds since the Unix epoch, shown as RFC 3339 UTC.
//!
//! The core never reads the clock: a `Timestamp` always comes in from an adapter.

use std::fmt;

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

const MS_PER_DAY: i64 = 86_400_000;

impl Timestamp {
    pub const fn from_unix_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    pub fn plus_days(self, days: u32) -> Self {
        Self(self.0.saturating_add(i64::from(days).saturating_mul(MS_PER_DAY)))
    }

    pub fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fff]Z` (UTC only; the form this type prints).
    pub fn parse_rfc3339(s: &str) -> Result<Self, String> {
        let err = || format!("`{s}` is not an RFC 3339 UTC timestamp like 2026-01-31T12:00:00Z");
        let b = s.as_bytes();
        if b.len() < 20 || b.last() != Some(&b'Z') {
            return Err(err());
        }
        // Fixed-width fields of ASCII digits only (no sign, no spaces), read without `str::parse`:
        // the audit parses a million of these a second.
        let num = |range: std::ops::Range<usize>| -> Result<i64, String> {
            let digits = b.get(range).filter(|d| d.iter().all(u8::is_ascii_digit)).ok_or_else(err)?;
            Ok(digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
        };
        let sep_ok = b.get(4) == Some(&b'-')
            && b.get(7) == Some(&b'-')
            && b.get(10) == Some(&b'T')
            && b.get(13) == Some(&b':')
            && b.get(16) == Some(&b':');
        if !sep_ok {
            return Err(err());
        }
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let millis = match b.get(19) {
            Some(b'Z') if b.len() == 20 => 0,
            Some(b'.') => {
                let frac = s.get(20..s.len() - 1).ok_or_else(err)?;
                if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(err());
                }
                // Milliseconds are the first three digits, right-padded with zeros.
                frac.bytes().chain(std::iter::repeat(b'0')).take(3).fold(0, |ms, d| ms * 10 + i64::from(d - b'0'))
            }
            _ => return Err(err()),
        };
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
            return Err(err());
        }
        let days = days_from_civil(year, month, day);
        Ok(Self(days * MS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000 + millis))
    }
}

/// Days since the epoch for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Always `YYYY-MM-DDTHH:MM:SS.mmmZ`: a fixed width, so the text sorts like the time and the
/// canonical encoding has exactly one spelling of each instant.
impl Timestamp {
    /// Appends the fixed-width `YYYY-MM-DDTHH:MM:SS.mmmZ` form without going through the
    /// formatting machinery: the ledger encodes one of these per entry.
    pub fn write_to(self, out: &mut Vec<u8>) {
        let days = self.0.div_euclid(MS_PER_DAY);
        let ms_of_day = self.0.rem_euclid(MS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let secs = ms_of_day / 1000;
        if !(0..=9999).contains(&y) {
            // Outside four-digit years the general formatter handles signs and widths.
            out.extend_from_slice(self.to_string().as_bytes());
            return;
        }
        fn digits(out: &mut Vec<u8>, value: i64, width: u32) {
            for power in (0..width).rev() {
                let digit = (value / 10i64.pow(power)) % 10;
                out.push(b'0' + u8::try_from(digit).unwrap_or(0));
            }
        }
        digits(out, y, 4);
        out.push(b'-');
        digits(out, m, 2);
        out.push(b'-');
        digits(out, d, 2);
        out.push(b'T');
        digits(out, secs / 3600, 2);
        out.push(b':');
        digits(out, (secs / 60) % 60, 2);
        out.push(b':');
        digits(out, secs % 60, 2);
        out.push(b'.');
        digits(out, ms_of_day % 1000, 3);
        out.push(b'Z');
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(MS_PER_DAY);
        let ms_of_day = self.0.rem_euclid(MS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let secs = ms_of_day / 1000;
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60,
            ms_of_day % 1000
        )
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse_rfc3339(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(Timestamp::from_unix_millis(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Timestamp::from_unix_millis(1_798_545_600_123).to_string(), "2026-12-29T12:00:00.123Z");
        assert_eq!(Timestamp::from_unix_millis(951_782_400_000).to_string(), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn parses_with_and_without_fraction() {
        assert_eq!(Timestamp::parse_rfc3339("1970-01-01T00:00:01Z").unwrap().unix_millis(), 1000);
        assert_eq!(Timestamp::parse_rfc3339("1970-01-01T00:00:01.5Z").unwrap().unix_millis(), 1500);
        assert!(Timestamp::parse_rfc3339("1970-01-01 00:00:01Z").is_err());
        assert!(Timestamp::parse_rfc3339("1970-13-01T00:00:01Z").is_err());
        assert!(Timestamp::parse_rfc3339("1970-01-01T00:00:01+01:00").is_err());
    }

    proptest! {
        #[test]
        fn display_and_parse_round_trip(ms in -62_135_596_800_000i64..253_402_300_799_999i64) {
            let t = Timestamp::from_unix_millis(ms);
            let mut fast = Vec::new();
            t.write_to(&mut fast);
            prop_assert_eq!(String::from_utf8(fast).unwrap(), t.to_string());
            prop_assert_eq!(Timestamp::parse_rfc3339(&t.to_string()).unwrap(), t);
        }
    }
}
