#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use crate::catalog::Recipient;
use crate::time::Timestamp;

fn lang(s: &str) -> Language {
    Language::parse(s).unwrap()
}

fn category(id: &str) -> DataCategory {
    DataCategory {
        id: DataCategoryId::parse(id).unwrap(),
        personal: true,
        names: BTreeMap::from([(lang("en"), "Apps you use".into()), (lang("es"), "Aplicaciones que usa".into())]),
        descriptions: BTreeMap::new(),
    }
}

fn purpose() -> Purpose {
    Purpose {
        id: PurposeId::parse("offers").unwrap(),
        model: ConsentModel::OptIn,
        data_categories: vec![DataCategoryId::parse("app-usage").unwrap()],
        sale_or_sharing: false,
        targeted_advertising: false,
        max_age_days: None,
        condition_of_service: false,
    }
}

/// A notice that passes every rule in both languages.
fn good_content() -> NoticeContent {
    let en = NoticeText {
        title: "Offers that fit how you use the internet".into(),
        what: "The apps you use most.".into(),
        how: "We pick which of our plans to tell you about.".into(),
        benefit: "You hear about plans that fit you, and fewer that do not.".into(),
        who: "Only us, Maine Broadband.".into(),
        retention: "We keep it for six months.".into(),
    };
    let es = NoticeText {
        title: "Ofertas según cómo usa internet".into(),
        what: "Las aplicaciones que más usa.".into(),
        how: "Elegimos qué planes le contamos.".into(),
        benefit: "Conoce planes que le sirven.".into(),
        who: "Solo nosotros.".into(),
        retention: "Lo guardamos seis meses.".into(),
    };
    NoticeContent {
        texts: BTreeMap::from([(lang("en"), en), (lang("es"), es)]),
        recipients: vec![Recipient { name: "Maine Broadband".into(), role: "your provider".into() }],
        retention_days: Some(180),
        material: false,
    }
}

fn run(purpose: &Purpose, content: &NoticeContent, profiles: &[Profile]) -> Vec<Finding> {
    let categories = BTreeMap::from([(DataCategoryId::parse("app-usage").unwrap(), category("app-usage"))]);
    let others = vec![(PurposeId::parse("location-ads").unwrap(), vec!["Ads based on where you are".to_owned()])];
    let languages = [lang("en"), lang("es")];
    lint_notice(
        &NoticeDraft {
            purpose,
            content,
            categories: &categories,
            other_purposes: &others,
            languages: &languages,
            profiles,
        },
        &LintOptions::default(),
    )
}

fn codes(findings: &[Finding]) -> Vec<(&'static str, Severity, &str)> {
    findings.iter().map(|f| (f.code, f.severity, f.field.as_str())).collect()
}

#[test]
fn a_good_notice_passes_under_every_profile() {
    let findings = run(&purpose(), &good_content(), &Profile::ALL);
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn missing_benefit_language_retention_and_recipients_are_errors_with_fixes() {
    let mut content = good_content();
    content.texts.get_mut(&lang("en")).unwrap().benefit = "  ".into();
    content.texts.remove(&lang("es"));
    content.retention_days = None;
    content.recipients.clear();
    let findings = run(&purpose(), &content, &[]);
    let mut expected = vec![("benefit-missing", Severity::Error, "texts.en.benefit")];
    let es_fields =
        ["texts.es.title", "texts.es.what", "texts.es.how", "texts.es.benefit", "texts.es.who", "texts.es.retention"];
    expected.extend(es_fields.iter().map(|f| ("language-missing", Severity::Error, *f)));
    expected.push(("recipient-not-named", Severity::Error, "recipients"));
    expected.push(("retention-missing", Severity::Error, "retention_days"));
    assert_eq!(codes(&findings), expected);
    assert!(findings.iter().all(|f| !f.message.is_empty()));
}

#[test]
fn unnamed_data_categories_are_errors() {
    let mut p = purpose();
    p.data_categories.clear();
    assert_eq!(codes(&run(&p, &good_content(), &[])), [("category-not-named", Severity::Error, "data_categories")]);
    let mut p = purpose();
    p.data_categories.push(DataCategoryId::parse("mystery").unwrap());
    let findings = run(&p, &good_content(), &[]);
    assert_eq!(findings.len(), 2, "one per language: {findings:#?}");
    assert!(findings.iter().all(|f| f.code == "category-not-named" && f.field == "data_categories[1]"));
}

#[test]
fn maine_forbids_incentives_and_conditions_of_service_gdpr_only_warns() {
    let mut content = good_content();
    content.texts.get_mut(&lang("en")).unwrap().benefit = "Get a 10% discount on your bill.".into();
    content.texts.get_mut(&lang("es")).unwrap().benefit = "Un descuento en su factura.".into();
    let mut p = purpose();
    p.condition_of_service = true;
    let maine = run(&p, &content, &[Profile::UsMeIsp]);
    assert_eq!(
        codes(&maine),
        [
            ("condition-of-service", Severity::Error, "condition_of_service"),
            ("incentive-offered", Severity::Error, "texts.en.benefit"),
            ("incentive-offered", Severity::Error, "texts.es.benefit"),
        ]
    );
    // The same notice elsewhere: no incentive rule, and GDPR only warns about conditionality.
    assert_eq!(
        codes(&run(&p, &content, &[Profile::EuGdpr])),
        [("condition-of-service", Severity::Warning, "condition_of_service")]
    );
    assert!(run(&p, &content, &[Profile::UsCaCpra]).is_empty());
}

#[test]
fn bundling_uses_is_an_error() {
    let mut content = good_content();
    content.texts.get_mut(&lang("en")).unwrap().how =
        "We pick plans to tell you about and show ads based on where you are.".into();
    assert_eq!(codes(&run(&purpose(), &content, &[])), [("bundled-consent", Severity::Error, "texts.en.how")]);
    let mut necessary = purpose();
    necessary.model = ConsentModel::Necessary;
    necessary.targeted_advertising = true;
    assert_eq!(codes(&run(&necessary, &good_content(), &[])), [("bundled-consent", Severity::Error, "model")]);
}

#[test]
fn california_purposes_that_sell_or_share_must_say_so() {
    let mut p = purpose();
    p.sale_or_sharing = true;
    let findings = run(&p, &good_content(), &[Profile::UsCaCpra]);
    assert_eq!(
        codes(&findings),
        [
            ("sale-not-disclosed", Severity::Error, "texts.en.how"),
            ("sale-not-disclosed", Severity::Error, "texts.es.how")
        ]
    );
    let mut content = good_content();
    content.texts.get_mut(&lang("en")).unwrap().who = "We share it with Acme Ads.".into();
    content.texts.get_mut(&lang("es")).unwrap().who = "Lo compartimos con Acme Ads.".into();
    assert!(run(&p, &content, &[Profile::UsCaCpra]).is_empty());
}

#[test]
fn jargon_dense_and_long_texts_are_warnings_in_both_languages() {
    let mut content = good_content();
    let en = content.texts.get_mut(&lang("en")).unwrap();
    en.how = "We disclose information to third parties pursuant to contractual obligations and legitimate \
              interests, including affiliated organizations."
        .into();
    let es = content.texts.get_mut(&lang("es")).unwrap();
    es.who = "Comunicamos la información a terceros de conformidad con obligaciones contractuales.".into();
    es.retention = "palabra ".repeat(61);
    let findings = run(&purpose(), &content, &[]);
    let got = codes(&findings);
    assert!(got.iter().all(|(_, severity, _)| *severity == Severity::Warning), "{got:?}");
    for expected in [
        ("readability", Severity::Warning, "texts.en"),
        ("jargon", Severity::Warning, "texts.en.how"),
        ("jargon", Severity::Warning, "texts.es.who"),
        ("too-long", Severity::Warning, "texts.es.retention"),
    ] {
        assert!(got.contains(&expected), "missing {expected:?} in {got:?}");
    }
    let jargon: Vec<_> = findings.iter().filter(|f| f.code == "jargon" && f.field == "texts.en.how").collect();
    assert!(jargon.iter().any(|f| f.message.contains("third parties")), "{jargon:?}");
    assert!(jargon.iter().any(|f| f.message.contains("pursuant to")), "{jargon:?}");
}

#[test]
fn the_readability_threshold_is_configurable() {
    let content = good_content();
    let categories = BTreeMap::from([(DataCategoryId::parse("app-usage").unwrap(), category("app-usage"))]);
    let languages = [lang("en"), lang("es")];
    let draft = NoticeDraft {
        purpose: &purpose(),
        content: &content,
        categories: &categories,
        other_purposes: &[],
        languages: &languages,
        profiles: &[],
    };
    let strict = LintOptions { min_readability: 120.0, ..LintOptions::default() };
    let got: Vec<_> = lint_notice(&draft, &strict).into_iter().map(|f| (f.code, f.field)).collect();
    assert_eq!(got, [("readability", "texts.en".to_owned()), ("readability", "texts.es".to_owned())]);
}

#[test]
fn material_changes_are_detected_and_wording_alone_is_not_one() {
    let p = purpose();
    let previous = NoticeVersion::publish(&p, 1, good_content(), Timestamp::from_unix_millis(0));
    let mut reworded = good_content();
    reworded.texts.get_mut(&lang("en")).unwrap().how = "We choose which plans to mention to you.".into();
    assert!(material_changes(&previous, &p, &reworded).is_empty());

    let mut wider = purpose();
    wider.data_categories.push(DataCategoryId::parse("precise-location").unwrap());
    wider.sale_or_sharing = true;
    let mut content = good_content();
    content.recipients.push(Recipient { name: "Acme Ads".into(), role: "ad network".into() });
    content.retention_days = Some(365);
    assert_eq!(
        material_changes(&previous, &wider, &content),
        [
            "adds data category `precise-location`",
            "adds recipient `Acme Ads`",
            "now sells or shares the data",
            "keeps the data longer: 365 days instead of 180",
        ]
    );
    content.retention_days = None;
    assert!(
        material_changes(&previous, &p, &content)
            .contains(&"no longer limits how long the data is kept (was 180 days)".to_owned())
    );
    content.retention_days = Some(90);
    assert_eq!(material_changes(&previous, &p, &content), ["adds recipient `Acme Ads`"]);
}

#[test]
fn profiles_parse_by_name_and_refuse_unknown_ones() {
    for p in Profile::ALL {
        assert_eq!(Profile::parse(p.as_str()), Ok(p));
    }
    assert!(Profile::parse("us-tx").unwrap_err().contains("us-me-isp"));
}
