//! Readability scores for notice texts shown to customers.
//!
//! A notice only informs if the customer can read it, so notice texts must be in plain language: the lint warns
//! when a text scores below a threshold (default 60, where "plain language" starts on both scales).
//!
//! - English: Flesch reading ease (Flesch, "A new readability yardstick", Journal of Applied Psychology, 1948):
//!   `206.835 - 1.015 * (words / sentences) - 84.6 * (syllables / words)`.
//! - Spanish: Fernández Huerta ("Medidas sencillas de lecturabilidad", Consigna 214, 1959):
//!   `206.84 - 0.60 * P - 1.02 * F`, with `P` syllables per 100 words and `F` sentences per 100 words.
//!
//! Both scales need syllable counts, which this module estimates with documented heuristics rather than a
//! dictionary: the scores steer authors towards shorter words and sentences, and a heuristic that is off by one on a
//! rare word does not change that advice. The module is pure (no I/O, no clock) so a score depends only on the text.

/// Counts behind a readability score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextStats {
    pub words: u32,
    pub sentences: u32,
    pub syllables: u32,
}

/// Estimated English syllables in one word.
///
/// Heuristic:
/// 1. Lowercase the word.
/// 2. Count groups of consecutive vowels, where the vowels are `a e i o u y`, except that `y` as the first letter
///    is a consonant ("you", "yes").
/// 3. Subtract one for a silent final `e`: the word ends in an `e` that is a vowel group on its own (preceded by a
///    consonant, so "agree", "value" and "cookie" keep theirs), the word has more than one vowel group (so "the",
///    "be", "he", "me", "we", "she" keep theirs), and the ending is not consonant + `le` ("table", "simple" keep
///    theirs; "whole", "style" do not).
/// 4. Nothing else is added or removed ("-ed", "-es" and the like are not special-cased); the result is at least 1.
///
/// Returns 0 for a string without any letter, which is not a word.
pub fn syllables_en(word: &str) -> u32 {
    let chars: Vec<char> = word.chars().flat_map(char::to_lowercase).collect();
    if !chars.iter().any(|c| c.is_alphabetic()) {
        return 0;
    }
    let is_vowel = |i: usize| match chars.get(i) {
        Some('a' | 'e' | 'i' | 'o' | 'u') => true,
        Some('y') => i > 0,
        _ => false,
    };
    let is_consonant = |i: usize| chars.get(i).is_some_and(|c| c.is_alphabetic()) && !is_vowel(i);
    let groups = (0..chars.len()).filter(|&i| is_vowel(i) && (i == 0 || !is_vowel(i - 1))).count();

    let n = chars.len();
    let silent_e = n >= 2
        && chars.last() == Some(&'e')
        && groups > 1
        && !is_vowel(n - 2)
        && !(chars.get(n - 2) == Some(&'l') && n >= 3 && is_consonant(n - 3));
    let count = if silent_e { groups - 1 } else { groups };
    u32::try_from(count).unwrap_or(u32::MAX).max(1)
}

/// How a letter takes part in a Spanish syllable nucleus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EsLetter {
    /// Open vowels, plus accented `í` `ú`: the accent is what breaks a diphthong ("día", "país").
    Strong,
    /// Unaccented `i` `u` `ü`, and a word-final `y` after a vowel ("hoy", "muy").
    Weak,
    NotVowel,
}

/// Estimated Spanish syllables in one word.
///
/// Heuristic:
/// 1. Lowercase the word.
/// 2. Vowels are `a e i o u á é í ó ú ü`. A `y` is a vowel only when it ends the word right after a vowel ("hoy",
///    "muy", "buey"); it then joins that vowel's group and adds no syllable. Any other `y` is a consonant.
/// 3. Each maximal run of vowels is one syllable nucleus, except that two "strong" vowels side by side (`a e o á é
///    ó`, and accented `í ú`) start a new nucleus: hiatus, as in "le-e", "po-e-ta", "dí-a", "pa-ís", "a-é-re-o".
/// 4. Unaccented weak vowels (`i u ü`) next to a strong vowel, or next to each other, stay in one nucleus:
///    diphthongs and triphthongs, as in "cui-da-do", "buey". This also makes the silent `u` of "que", "qui", "gue",
///    "gui" cost nothing ("que" = 1, "guerra" = 2).
/// 5. The result is at least 1 (the conjunction "y" has no vowel but is one syllable).
///
/// `h` is treated as a consonant even between vowels, which is right for the common case ("a-ho-ra").
///
/// Returns 0 for a string without any letter, which is not a word.
pub fn syllables_es(word: &str) -> u32 {
    let chars: Vec<char> = word.chars().flat_map(char::to_lowercase).collect();
    if !chars.iter().any(|c| c.is_alphabetic()) {
        return 0;
    }
    let plain = |c: Option<&char>| match c {
        Some('a' | 'e' | 'o' | 'á' | 'é' | 'ó' | 'í' | 'ú') => EsLetter::Strong,
        Some('i' | 'u' | 'ü') => EsLetter::Weak,
        _ => EsLetter::NotVowel,
    };
    let classes: Vec<EsLetter> = (0..chars.len())
        .map(|i| {
            let c = chars.get(i);
            let final_y_after_vowel =
                c == Some(&'y') && i + 1 == chars.len() && i > 0 && plain(chars.get(i - 1)) != EsLetter::NotVowel;
            if final_y_after_vowel { EsLetter::Weak } else { plain(c) }
        })
        .collect();

    let mut nuclei: u32 = 0;
    let mut prev = EsLetter::NotVowel;
    for class in classes {
        let starts_nucleus = match (prev, class) {
            (_, EsLetter::NotVowel) => false,
            (EsLetter::NotVowel, _) => true,
            (EsLetter::Strong, EsLetter::Strong) => true,
            _ => false,
        };
        if starts_nucleus {
            nuclei = nuclei.saturating_add(1);
        }
        prev = class;
    }
    nuclei.max(1)
}

/// Word, sentence and syllable counts of an English text.
pub fn stats_en(text: &str) -> TextStats {
    stats_with(text, syllables_en)
}

/// Word, sentence and syllable counts of a Spanish text.
pub fn stats_es(text: &str) -> TextStats {
    stats_with(text, syllables_es)
}

/// Flesch reading ease: 206.835 - 1.015 * (words / sentences) - 84.6 * (syllables / words).
///
/// Higher is easier; 60-70 is plain English, below 30 reads like a legal or academic text.
pub fn flesch_reading_ease(text: &str) -> Option<f64> {
    let s = stats_en(text);
    if s.words == 0 {
        return None;
    }
    let words = f64::from(s.words);
    // `stats_en` already counts at least one sentence for any text with words; the guard keeps that an invariant of
    // this function too rather than a division by zero waiting for a refactor.
    let sentences = f64::from(s.sentences.max(1));
    let syllables = f64::from(s.syllables);
    Some(206.835 - 1.015 * (words / sentences) - 84.6 * (syllables / words))
}

/// Fernández-Huerta (Spanish): 206.84 - 0.60 * P - 1.02 * F, where P = syllables per 100 words and F = sentences per
/// 100 words.
///
/// This is the formula as published in 1959. It has been criticised because, read literally, more sentences per 100
/// words lower the score; it is kept as published so scores match the threshold the lint documents.
pub fn fernandez_huerta(text: &str) -> Option<f64> {
    let s = stats_es(text);
    if s.words == 0 {
        return None;
    }
    let words = f64::from(s.words);
    let p = 100.0 * f64::from(s.syllables) / words;
    let f = 100.0 * f64::from(s.sentences.max(1)) / words;
    Some(206.84 - 0.60 * p - 1.02 * f)
}

fn is_apostrophe(c: char) -> bool {
    // Typographic apostrophes are what word processors paste into notices.
    c == '\'' || c == '\u{2019}'
}

fn is_terminator(c: char) -> bool {
    // `¡` and `¿` open Spanish sentences, so they are deliberately absent.
    matches!(c, '.' | '!' | '?')
}

/// Splits `text` into words and counts sentences in one pass.
///
/// A sentence is a stretch of text with at least one word, ended by a run of terminators or by the end of the text.
/// Requiring a word keeps runs like "?!" or "..." (and stray terminators between them, ". . .") from counting
/// twice, and counting an unterminated tail keeps a heading or last line without a full stop from vanishing. Known
/// limitation: abbreviations such as "e.g." end sentences.
fn stats_with(text: &str, syllables: fn(&str) -> u32) -> TextStats {
    let mut stats = TextStats { words: 0, sentences: 0, syllables: 0 };
    let mut word = String::new();
    let mut words_since_end = false;
    let mut prev: Option<char> = None;
    let mut chars = text.chars().peekable();

    let finish_word = |word: &mut String, stats: &mut TextStats| {
        if !word.is_empty() {
            stats.words = stats.words.saturating_add(1);
            stats.syllables = stats.syllables.saturating_add(syllables(word));
            word.clear();
        }
    };

    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        if c.is_alphabetic() {
            word.push(c);
            words_since_end = true;
        } else if is_apostrophe(c) && !word.is_empty() && next.is_some_and(char::is_alphabetic) {
            word.push(c);
        } else {
            finish_word(&mut word, &mut stats);
            // A point between digits is a decimal separator ("2.5"), not the end of a sentence.
            let decimal = prev.is_some_and(|p| p.is_ascii_digit()) && next.is_some_and(|n| n.is_ascii_digit());
            if is_terminator(c) && !decimal && words_since_end {
                stats.sentences = stats.sentences.saturating_add(1);
                words_since_end = false;
            }
        }
        prev = Some(c);
    }
    finish_word(&mut word, &mut stats);
    if words_since_end {
        stats.sentences = stats.sentences.saturating_add(1);
    }
    stats
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const TOLERANCE: f64 = 1e-9;

    fn assert_close(actual: Option<f64>, expected: f64) {
        let actual = actual.unwrap();
        assert!((actual - expected).abs() < TOLERANCE, "expected {expected}, got {actual}");
    }

    // Every count here agrees with the dictionary syllabification shown next to it.
    #[test]
    fn english_syllables() {
        let table: &[(&str, u32)] = &[
            ("the", 1),         // the
            ("we", 1),          // we
            ("she", 1),         // she
            ("make", 1),        // make: silent e
            ("use", 1),         // use: silent e
            ("share", 1),       // share: silent e
            ("choose", 1),      // choose: silent e after a consonant
            ("whole", 1),       // whole: -le after a vowel is silent
            ("style", 1),       // style: -le after a vowel y is silent
            ("table", 2),       // ta-ble: consonant + le keeps its syllable
            ("simple", 2),      // sim-ple
            ("people", 2),      // peo-ple
            ("agree", 2),       // a-gree: final e inside "ee" is not silent
            ("value", 2),       // val-ue: final e inside "ue" is not silent
            ("cookies", 2),     // cook-ies
            ("data", 2),        // da-ta
            ("email", 2),       // e-mail
            ("notice", 2),      // no-tice
            ("delete", 2),      // de-lete
            ("website", 2),     // web-site
            ("browser", 2),     // brows-er
            ("system", 2),      // sys-tem: y after the first letter is a vowel
            ("yellow", 2),      // yel-low: leading y is a consonant
            ("only", 2),        // on-ly
            ("you", 1),         // you: leading y is a consonant
            ("yes", 1),         // yes
            ("your", 1),        // your
            ("say", 1),         // say
            ("don't", 1),       // don't: the apostrophe is part of the word
            ("we'll", 1),       // we'll
            ("privacy", 3),     // pri-va-cy
            ("location", 3),    // lo-ca-tion
            ("customer", 3),    // cus-tom-er
            ("personal", 3),    // per-son-al
            ("marketing", 3),   // mar-ket-ing
            ("controller", 3),  // con-trol-ler
            ("processes", 3),   // proc-ess-es
            ("information", 4), // in-for-ma-tion
            ("advertising", 4), // ad-ver-tis-ing
            ("analytics", 4),   // an-a-lyt-ics
            ("legitimate", 4),  // le-git-i-mate
            ("necessity", 4),   // ne-ces-si-ty
        ];
        for &(word, expected) in table {
            assert_eq!(syllables_en(word), expected, "{word}");
        }
        assert_eq!(syllables_en("INFORMATION"), 4, "case does not matter");
        assert_eq!(syllables_en("GB"), 1, "a word with letters but no vowel still has one syllable");
        assert_eq!(syllables_en("180"), 0, "not a word");
        assert_eq!(syllables_en(""), 0, "not a word");
    }

    // Every count here agrees with the RAE syllabification shown next to it.
    #[test]
    fn spanish_syllables() {
        let table: &[(&str, u32)] = &[
            ("y", 1),                // y: no vowel, still one syllable
            ("que", 1),              // que: silent u
            ("hoy", 1),              // hoy: final y joins the vowel
            ("muy", 1),              // muy
            ("buey", 1),             // buey: triphthong
            ("sí", 1),               // sí
            ("datos", 2),            // da-tos
            ("guerra", 2),           // gue-rra: silent u
            ("día", 2),              // dí-a: accented í breaks the diphthong
            ("país", 2),             // pa-ís
            ("río", 2),              // rí-o
            ("baúl", 2),             // ba-úl
            ("lee", 2),              // le-e: hiatus of two strong vowels
            ("usted", 2),            // us-ted
            ("causa", 2),            // cau-sa: diphthong au
            ("ciudad", 2),           // ciu-dad: two weak vowels
            ("quieres", 2),          // quie-res
            ("leyes", 2),            // le-yes: medial y is a consonant
            ("güero", 2),            // güe-ro
            ("poeta", 3),            // po-e-ta
            ("cuidado", 3),          // cui-da-do
            ("servicio", 3),         // ser-vi-cio
            ("ahora", 3),            // a-ho-ra
            ("pingüino", 3),         // pin-güi-no
            ("paraguay", 3),         // pa-ra-guay
            ("aéreo", 4),            // a-é-re-o
            ("información", 4),      // in-for-ma-ción
            ("publicidad", 4),       // pu-bli-ci-dad
            ("ubicación", 4),        // u-bi-ca-ción
            ("tratamiento", 4),      // tra-ta-mien-to
            ("averiguáis", 4),       // a-ve-ri-guáis: triphthong
            ("organización", 5),     // or-ga-ni-za-ción
            ("confidencialidad", 6), // con-fi-den-cia-li-dad
        ];
        for &(word, expected) in table {
            assert_eq!(syllables_es(word), expected, "{word}");
        }
        assert_eq!(syllables_es("INFORMACIÓN"), 4, "case does not matter");
        assert_eq!(syllables_es("180"), 0, "not a word");
        assert_eq!(syllables_es(""), 0, "not a word");
    }

    #[test]
    fn english_plain_text() {
        let text = "We use your location. You can say no.";
        assert_eq!(stats_en(text), TextStats { words: 8, sentences: 2, syllables: 10 });
        // words 8, sentences 2,
        // syllables we 1 + use 1 + your 1 + lo-ca-tion 3 + you 1 + can 1 + say 1 + no 1 = 10
        // 206.835 - 1.015 * (8 / 2) - 84.6 * (10 / 8) = 206.835 - 4.06 - 105.75 = 97.025
        assert_close(flesch_reading_ease(text), 97.025);
    }

    #[test]
    fn english_legalistic_text() {
        let text = "The controller processes personal information pursuant to legitimate interests and contractual \
                    necessity.";
        assert_eq!(stats_en(text), TextStats { words: 12, sentences: 1, syllables: 32 });
        // words 12, sentences 1,
        // syllables (heuristic; it undercounts pursuant and contractual, which are 3 and 4 in a dictionary):
        // the 1 + con-trol-ler 3 + proc-ess-es 3 + per-son-al 3 + in-for-ma-tion 4 + pur-suant 2 + to 1
        // + le-git-i-mate 4 + in-ter-ests 3 + and 1 + con-trac-tual 3 + ne-ces-si-ty 4 = 32
        // 206.835 - 1.015 * (12 / 1) - 84.6 * (32 / 12) = 206.835 - 12.18 - 225.6 = -30.945
        assert_close(flesch_reading_ease(text), -30.945);
        assert!(flesch_reading_ease(text).unwrap() < 30.0);
    }

    #[test]
    fn english_text_with_apostrophes_and_exclamation() {
        let text = "Don't worry! We'll only share your email with partners you choose.";
        assert_eq!(stats_en(text), TextStats { words: 11, sentences: 2, syllables: 15 });
        // words 11, sentences 2,
        // syllables don't 1 + wor-ry 2 + we'll 1 + on-ly 2 + share 1 + your 1 + e-mail 2 + with 1
        // + part-ners 2 + you 1 + choose 1 = 15
        // 206.835 - 1.015 * (11 / 2) - 84.6 * (15 / 11) = 206.835 - 5.5825 - 115.363636... = 85.888863636...
        assert_close(flesch_reading_ease(text), 206.835 - 5.5825 - 1269.0 / 11.0);
        assert_close(flesch_reading_ease(text), 85.888_863_636_363_64);
    }

    #[test]
    fn english_hyphen_splits_words() {
        let text = "You can opt-out at any time.";
        assert_eq!(stats_en(text), TextStats { words: 7, sentences: 1, syllables: 8 });
        // words you, can, opt, out, at, any, time = 7, sentences 1,
        // syllables 1 + 1 + 1 + 1 + 1 + an-y 2 + time 1 = 8
        // 206.835 - 1.015 * (7 / 1) - 84.6 * (8 / 7) = 206.835 - 7.105 - 96.685714... = 103.044285714...
        assert_close(flesch_reading_ease(text), 206.835 - 7.105 - 676.8 / 7.0);
        assert_close(flesch_reading_ease(text), 103.044_285_714_285_7);
    }

    #[test]
    fn spanish_plain_text() {
        let text = "Usamos tus datos. Puedes decir que no.";
        assert_eq!(stats_es(text), TextStats { words: 7, sentences: 2, syllables: 12 });
        // words 7, sentences 2,
        // syllables u-sa-mos 3 + tus 1 + da-tos 2 + pue-des 2 + de-cir 2 + que 1 + no 1 = 12
        // P = 100 * 12 / 7 = 171.428571..., F = 100 * 2 / 7 = 28.571428...
        // 206.84 - 0.60 * 1200 / 7 - 1.02 * 200 / 7 = 206.84 - (720 + 204) / 7 = 206.84 - 132 = 74.84
        assert_close(fernandez_huerta(text), 74.84);
    }

    #[test]
    fn spanish_dense_text() {
        let text = "La organización responsable garantizará la confidencialidad, integridad y disponibilidad \
                    permanentes.";
        assert_eq!(stats_es(text), TextStats { words: 10, sentences: 1, syllables: 37 });
        // words 10, sentences 1,
        // syllables la 1 + or-ga-ni-za-ción 5 + res-pon-sa-ble 4 + ga-ran-ti-za-rá 5 + la 1
        // + con-fi-den-cia-li-dad 6 + in-te-gri-dad 4 + y 1 + dis-po-ni-bi-li-dad 6 + per-ma-nen-tes 4 = 37
        // P = 100 * 37 / 10 = 370, F = 100 * 1 / 10 = 10
        // 206.84 - 0.60 * 370 - 1.02 * 10 = 206.84 - 222 - 10.2 = -25.36
        assert_close(fernandez_huerta(text), -25.36);
        assert!(fernandez_huerta(text).unwrap() < 30.0);
    }

    #[test]
    fn spanish_text_with_opening_marks() {
        let text = "¿Quieres ofertas? ¡Dinos que sí!";
        assert_eq!(stats_es(text), TextStats { words: 5, sentences: 2, syllables: 9 });
        // words 5, sentences 2 (¿ and ¡ open sentences and are not counted),
        // syllables quie-res 2 + o-fer-tas 3 + di-nos 2 + que 1 + sí 1 = 9
        // P = 100 * 9 / 5 = 180, F = 100 * 2 / 5 = 40
        // 206.84 - 0.60 * 180 - 1.02 * 40 = 206.84 - 108 - 40.8 = 58.04
        assert_close(fernandez_huerta(text), 58.04);
    }

    #[test]
    fn spanish_text_with_hiatus_and_final_y() {
        let text = "El país tiene un día de lluvia hoy.";
        assert_eq!(stats_es(text), TextStats { words: 8, sentences: 1, syllables: 12 });
        // words 8, sentences 1,
        // syllables el 1 + pa-ís 2 + tie-ne 2 + un 1 + dí-a 2 + de 1 + llu-via 2 + hoy 1 = 12
        // P = 100 * 12 / 8 = 150, F = 100 * 1 / 8 = 12.5
        // 206.84 - 0.60 * 150 - 1.02 * 12.5 = 206.84 - 90 - 12.75 = 104.09
        assert_close(fernandez_huerta(text), 104.09);
    }

    #[test]
    fn no_words_means_no_score() {
        for text in ["", "   ", "180", "180 365 2024", "2.5", "... ?! 42.", "-- 3,000 --"] {
            assert_eq!(flesch_reading_ease(text), None, "{text:?}");
            assert_eq!(fernandez_huerta(text), None, "{text:?}");
            assert_eq!(stats_en(text), TextStats { words: 0, sentences: 0, syllables: 0 }, "{text:?}");
        }
    }

    #[test]
    fn decimal_point_is_not_a_sentence_end() {
        // "GB" is a run of letters, so by the word rule it is a word; the number and its point are not.
        assert_eq!(stats_en("2.5 GB"), TextStats { words: 1, sentences: 1, syllables: 1 });
        // we, keep, GB, for, days: 5 words of one syllable each.
        assert_eq!(stats_en("We keep 2.5 GB for 30 days."), TextStats { words: 5, sentences: 1, syllables: 5 });
        // A full stop right after a number still ends the sentence.
        assert_eq!(stats_en("We keep it until 2030. Then we delete it.").sentences, 2);
    }

    #[test]
    fn sentence_counting() {
        assert_eq!(stats_en("Hello world").sentences, 1);
        assert_eq!(stats_en("Hello world").words, 2);
        assert_eq!(stats_en("Really?! Yes...").sentences, 2);
        assert_eq!(stats_en("Really?! Yes...").words, 2);
        assert_eq!(stats_en("Wait . . . what?").sentences, 2);
        assert_eq!(stats_en("One. Two").sentences, 2, "an unterminated last line is a sentence");
        assert_eq!(stats_es("¿Quieres ofertas? Sí.").sentences, 2);
        assert_eq!(stats_es("¿Quieres ofertas? Sí.").words, 3);
        assert_eq!(stats_es("¿Sí?").sentences, 1);
    }

    #[test]
    fn word_splitting() {
        assert_eq!(stats_en("opt-in").words, 2);
        assert_eq!(stats_en("don't we'll").words, 2);
        assert_eq!(stats_en("don\u{2019}t").words, 1, "typographic apostrophe stays inside the word");
        assert_eq!(stats_en("'quoted'").words, 1, "quotes around a word are not part of it");
        assert_eq!(stats_es("información ñandú pingüino").words, 3);
        assert_eq!(stats_es("información ñandú pingüino").syllables, 4 + 2 + 3);
    }
}
