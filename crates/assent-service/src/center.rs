//! What the customer's own pages show and do. The pages call these, and these call the same
//! recording functions as the JSON API, so there is one path for every state change.

use assent_core::catalog::NoticeText;
use assent_core::decision::decide;
use assent_core::{ConsentModel, Language, Status, SubjectId, Timestamp};
use assent_store::Store;

use crate::consents::{ConsentInput, WithdrawAllInput, WithdrawAllOut};
use crate::links::Session;
use crate::memory::read;
use crate::{Assent, ServiceError, ServiceResult};

/// One purpose as the customer sees it, in their language.
#[derive(Debug, Clone)]
pub struct PurposeCard {
    pub id: String,
    pub model: ConsentModel,
    pub text: NoticeText,
    pub data: Vec<String>,
    pub status: Status,
    pub allowed: bool,
    pub since: Option<Timestamp>,
    pub current_version: u32,
    /// When the customer's yes was to an older notice that no longer holds: each field whose
    /// text changed, as (field, what they agreed to, what it says now).
    pub changes: Vec<(String, String, String)>,
}

#[derive(Debug, Clone)]
pub struct CenterView {
    pub controller_name: String,
    pub cards: Vec<PurposeCard>,
}

/// Evidence a page records with each choice: where, in which language, and from what browser.
#[derive(Debug, Clone, Default)]
pub struct PageEvidence {
    pub collection_point: String,
    pub user_agent: Option<String>,
    /// Already truncated (/24 for IPv4, /48 for IPv6) by the caller.
    pub ip_prefix: Option<String>,
}

impl PageEvidence {
    /// A withdrawal made on a page with this evidence.
    fn withdrawal(&self, method: &str, lang: &str) -> WithdrawAllInput {
        WithdrawAllInput {
            method: Some(method.into()),
            evidence: Some(self.to_json()),
            jurisdiction: None,
            language: Language::parse(lang).ok().map(|l| l.to_string()),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::Map::new();
        v.insert("collection_point".into(), self.collection_point.clone().into());
        if let Some(ua) = &self.user_agent {
            v.insert("user_agent".into(), ua.chars().take(256).collect::<String>().into());
        }
        if let Some(ip) = &self.ip_prefix {
            v.insert("ip_prefix".into(), ip.clone().into());
        }
        serde_json::Value::Object(v)
    }
}

/// The names of data categories in `lang` (or any language the catalog has, or the id).
pub(crate) fn category_names(
    catalog: &crate::memory::CatalogView,
    categories: &[assent_core::DataCategoryId],
    lang: &str,
) -> Vec<String> {
    categories
        .iter()
        .map(|c| {
            catalog
                .data_categories
                .get(c)
                .and_then(|d| d.names.iter().find(|(l, _)| l.as_str() == lang).or_else(|| d.names.iter().next()))
                .map_or_else(|| c.to_string(), |(_, name)| name.clone())
        })
        .collect()
}

pub(crate) fn pick_text(texts: &std::collections::BTreeMap<Language, NoticeText>, lang: &str) -> NoticeText {
    texts
        .iter()
        .find(|(l, _)| l.as_str() == lang)
        .or_else(|| texts.iter().find(|(l, _)| l.as_str() == "en"))
        .or_else(|| texts.iter().next())
        .map(|(_, t)| t.clone())
        .unwrap_or_default()
}

impl<S: Store> Assent<S> {
    /// The preference center for the session's customer: every purpose with a published notice,
    /// asked or not, with its current standing.
    pub async fn center(&self, session: &Session, lang: &str) -> ServiceResult<CenterView> {
        let handle = self.controller(&session.controller).await?;
        let catalog = handle.catalog();
        let now = self.now();
        let subjects = read(&handle.subjects);
        let entry = subjects.by_id.get(&session.subject);
        let mut cards = Vec::new();
        for view in catalog.purposes.values() {
            let Some(current) = view.current_version() else { continue };
            let terms = view.terms(catalog.refresh_days);
            let state = entry.and_then(|e| e.state(&view.purpose.id));
            let decision = decide(Some(&terms), state, now);
            let data = category_names(&catalog, &current.data_categories, lang);
            let mut changes = Vec::new();
            if decision.status == Status::ReconsentRequired
                && let Some(old) = state.and_then(|s| s.version).and_then(|n| view.version(n))
            {
                let (before, now) = (pick_text(&old.content.texts, lang), pick_text(&current.content.texts, lang));
                for field in NoticeText::FIELDS {
                    if before.field(field) != now.field(field) {
                        changes.push((field.to_owned(), before.field(field).to_owned(), now.field(field).to_owned()));
                    }
                }
            }
            cards.push(PurposeCard {
                id: view.purpose.id.to_string(),
                model: view.purpose.model,
                text: pick_text(&current.content.texts, lang),
                data,
                status: decision.status,
                allowed: decision.allowed,
                since: state.map(|s| s.since),
                current_version: current.version,
                changes,
            });
        }
        // Things that need an answer first, the service itself last.
        cards.sort_by_key(|c| (c.model == ConsentModel::Necessary, c.id.clone()));
        let controller_name = read(&handle.info).name.clone();
        Ok(CenterView { controller_name, cards })
    }

    /// Records a yes or a no the customer gave on a page, against the notice version shown.
    pub async fn page_choice(
        &self,
        session: &Session,
        purpose: &str,
        grant: bool,
        version: Option<u32>,
        lang: &str,
        evidence: &PageEvidence,
    ) -> ServiceResult<()> {
        let principal = self.system_principal(&session.controller).await?;
        let input = ConsentInput {
            subject: session.subject.as_str().to_owned(),
            purpose: purpose.to_owned(),
            version,
            action: if grant { "grant" } else { "withdraw" }.to_owned(),
            method: Some("web".into()),
            evidence: Some(evidence.to_json()),
            jurisdiction: None,
            language: Language::parse(lang).ok().map(|l| l.to_string()),
        };
        self.record_consent(&principal, input, None).await.map(|_| ())
    }

    /// "Opt out of everything", from a page.
    pub async fn page_withdraw_all(
        &self,
        session: &Session,
        gpc: bool,
        lang: &str,
        evidence: &PageEvidence,
    ) -> ServiceResult<WithdrawAllOut> {
        let principal = self.system_principal(&session.controller).await?;
        self.withdraw_all(&principal, session.subject.as_str(), evidence.withdrawal("web", lang), gpc, None).await
    }

    /// Applies a browser's `Sec-GPC: 1` for the session's customer (recorded once).
    pub async fn page_gpc(
        &self,
        session: &Session,
        lang: &str,
        evidence: &PageEvidence,
    ) -> ServiceResult<WithdrawAllOut> {
        let principal = self.system_principal(&session.controller).await?;
        self.apply_gpc(&principal, session.subject.as_str(), evidence.withdrawal("gpc", lang)).await
    }

    /// Validates a subject id for a page route.
    pub fn page_subject(subject: &str) -> ServiceResult<SubjectId> {
        SubjectId::parse(subject).map_err(|e| ServiceError::invalid("subject", e))
    }
}

/// One line of the customer's history.
#[derive(Debug, Clone)]
pub struct HistoryLine {
    pub seq: u64,
    pub at: Timestamp,
    pub purpose: String,
    pub action: assent_core::Action,
    pub method: assent_core::event::Method,
}

/// What the consent prompt shows for one purpose.
#[derive(Debug, Clone)]
pub struct PromptView {
    pub text: NoticeText,
    pub data: Vec<String>,
    pub version: u32,
    pub hash: String,
    pub model: ConsentModel,
}

impl<S: Store> Assent<S> {
    /// The customer's events, oldest first, with each purpose's title in their language.
    pub async fn page_history(&self, session: &Session, lang: &str) -> ServiceResult<Vec<HistoryLine>> {
        let principal = self.system_principal(&session.controller).await?;
        let items = match self.history(&principal, session.subject.as_str()).await {
            Ok(items) => items,
            Err(ServiceError::NotFound(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        let catalog = principal.controller.catalog();
        Ok(items
            .into_iter()
            .map(|item| {
                let title = catalog
                    .purposes
                    .get(&item.purpose)
                    .and_then(|v| v.current_version())
                    .map_or_else(|| item.purpose.to_string(), |v| pick_text(&v.content.texts, lang).title);
                HistoryLine {
                    seq: item.seq,
                    at: item.recorded_at,
                    purpose: title,
                    action: item.action,
                    method: item.method,
                }
            })
            .collect())
    }

    /// The current notice of one purpose, for the consent prompt; `None` if there is none to ask.
    pub async fn prompt_view(&self, session: &Session, purpose: &str, lang: &str) -> ServiceResult<Option<PromptView>> {
        let handle = self.controller(&session.controller).await?;
        let catalog = handle.catalog();
        let Some(view) = assent_core::PurposeId::parse(purpose).ok().and_then(|id| catalog.purposes.get(&id).cloned())
        else {
            return Ok(None);
        };
        let Some(current) = view.current_version() else { return Ok(None) };
        if view.purpose.model == ConsentModel::Necessary {
            return Ok(None);
        }
        let data = category_names(&catalog, &current.data_categories, lang);
        Ok(Some(PromptView {
            text: pick_text(&current.content.texts, lang),
            data,
            version: current.version,
            hash: current.hash.to_string(),
            model: view.purpose.model,
        }))
    }

    /// The controller's allowed embedding origins.
    pub async fn allowed_origins(&self, controller: &assent_core::ControllerId) -> Vec<String> {
        match self.controller(controller).await {
            Ok(handle) => read(&handle.info).allowed_origins.clone(),
            Err(_) => Vec::new(),
        }
    }
}
