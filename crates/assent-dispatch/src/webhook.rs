//! Sends one signed webhook and says what became of it, so the dispatcher can decide between
//! done, retry later and dead-letter without knowing HTTP.
//!
//! Classification, deliberately simple: any 2xx is delivered; 410 Gone means the receiver wants
//! no more deliveries, so it is not retried; every other status (redirects included, since they
//! are not followed) is retried, bounded by the `RetryPolicy`. Network errors and timeouts are
//! `Failed` and retried too.
//!
//! Error strings name what failed, never the body (consent events are personal data) nor the URL
//! (receivers put tokens in them).

use std::error::Error as _;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::redirect::Policy;

use crate::signature::{WebhookSecret, sign};

/// A receiver that takes longer than this is treated as down.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Read this much of a response at most: enough to let the connection be reused, and a
/// receiver cannot make us buffer an unbounded body.
const MAX_DRAINED_BODY: usize = 64 * 1024;
const USER_AGENT: &str = concat!("Assent/", env!("CARGO_PKG_VERSION"));

/// Why a sender could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("cannot set up the HTTP client for webhooks")]
    Client(#[source] reqwest::Error),
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered 2xx.
    Delivered { status: u16 },
    /// The receiver answered something else; `retry` is false only for 410 Gone.
    Rejected { status: u16, retry: bool },
    /// No HTTP answer: the connection failed or timed out. Always worth retrying.
    Failed { error: String },
}

impl Outcome {
    /// Whether the dispatcher should schedule another attempt.
    pub fn should_retry(&self) -> bool {
        match self {
            Outcome::Delivered { .. } => false,
            Outcome::Rejected { retry, .. } => *retry,
            Outcome::Failed { .. } => true,
        }
    }
}

/// Posts signed webhooks over one pooled HTTP client, so deliveries to the same receiver reuse
/// connections. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
}

impl WebhookSender {
    /// A sender whose every attempt, from connecting to reading the answer, ends within `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, WebhookError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect could carry the signed body somewhere the controller never configured.
            .redirect(Policy::none())
            .user_agent(USER_AGENT)
            .build()
            .map_err(WebhookError::Client)?;
        Ok(Self { client })
    }

    /// POSTs `body` to `url` with Standard Webhooks headers signed by `secret`.
    pub async fn send(
        &self,
        url: &str,
        secret: &WebhookSecret,
        msg_id: &str,
        timestamp_secs: i64,
        body: Vec<u8>,
    ) -> Outcome {
        let signature = sign(secret, msg_id, timestamp_secs, &body);
        let request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", timestamp_secs.to_string())
            .header("webhook-signature", signature)
            .body(body);
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Outcome::Failed { error: describe(&error) },
        };
        let status = response.status();
        // Drained so the pooled connection can be reused; a failure here does not change the
        // receiver's verdict, which the status already gave.
        let mut drained = 0;
        while drained < MAX_DRAINED_BODY {
            match response.chunk().await {
                Ok(Some(chunk)) => drained += chunk.len(),
                Ok(None) | Err(_) => break,
            }
        }
        classify(status.as_u16())
    }
}

fn classify(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered { status },
        410 => Outcome::Rejected { status, retry: false },
        _ => Outcome::Rejected { status, retry: true },
    }
}

/// What failed, with the causes, without the URL.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_builder() {
        "invalid request (check the webhook URL)"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_documented() {
        assert_eq!(classify(200), Outcome::Delivered { status: 200 });
        assert_eq!(classify(204), Outcome::Delivered { status: 204 });
        assert_eq!(classify(410), Outcome::Rejected { status: 410, retry: false });
        for status in [301, 400, 401, 404, 408, 429, 500, 503] {
            assert_eq!(classify(status), Outcome::Rejected { status, retry: true });
        }
        assert!(!classify(410).should_retry());
        assert!(classify(503).should_retry());
        assert!(!classify(200).should_retry());
    }
}
