//! The dev outbox: `GET /_dev/mail` (JSON, newest first) and `GET /_dev/mailbox` (a page).

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::error::ApiError;
use crate::clock::iso;
use crate::mail::templates::escape_html;
use crate::state::AppState;
use crate::store::MailRecord;

const SHOWN: u32 = 200;

/// The dev outbox routes; only mounted when the outbox is enabled.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_dev/mail", get(list))
        .route("/_dev/mailbox", get(page))
}

fn mail_json(mail: &MailRecord) -> Value {
    json!({
        "id": mail.id,
        "to": mail.to,
        "subject": mail.subject,
        "text": mail.text,
        "html": mail.html,
        "sentAt": mail.sent_at.map(iso),
    })
}

async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mail = state.store.sent_mail(SHOWN).await?;
    Ok(Json(Value::Array(mail.iter().map(mail_json).collect())))
}

/// Turn `http(s)://…` runs of a plain-text body into links, escaping everything else.
fn linkify(text: &str) -> String {
    let mut out = String::new();
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for (j, word) in line.split(' ').enumerate() {
            if j > 0 {
                out.push(' ');
            }
            if word.starts_with("http://") || word.starts_with("https://") {
                let word = escape_html(word);
                out.push_str(&format!("<a href=\"{word}\">{word}</a>"));
            } else {
                out.push_str(&escape_html(word));
            }
        }
    }
    out
}

async fn page(State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    let mail = state.store.sent_mail(SHOWN).await?;
    let mut items = String::new();
    for m in &mail {
        items.push_str(&format!(
            "<article><header><strong>{}</strong><span>to {} · {}</span></header><pre>{}</pre></article>\n",
            escape_html(&m.subject),
            escape_html(&m.to),
            m.sent_at.map(iso).unwrap_or_default(),
            linkify(&m.text),
        ));
    }
    if items.is_empty() {
        items.push_str("<p class=\"empty\">No mail yet. Sign up in your app and the confirmation lands here.</p>");
    }
    Ok(Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{app} mailbox</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 48rem; margin: 2rem auto; padding: 0 1rem; color: #1f2937; }}
article {{ border: 1px solid #e5e7eb; border-radius: .5rem; padding: 1rem; margin: 1rem 0; }}
header {{ display: flex; flex-wrap: wrap; gap: .5rem; justify-content: space-between; }}
header span {{ color: #6b7280; font-size: .875rem; }}
pre {{ white-space: pre-wrap; overflow-wrap: anywhere; font-family: inherit; }}
.empty {{ color: #6b7280; }}
</style></head>
<body><h1>{app} mailbox</h1><p>Mail caught by the dev outbox, newest first. Reload to see new messages.</p>
{items}</body></html>"#,
        app = escape_html(&state.settings.app_name),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_become_anchors_and_the_rest_is_escaped() {
        let html = linkify("Open <this>:\nhttp://x.test/a?b=1&c=2");
        assert_eq!(
            html,
            "Open &lt;this&gt;:\n<a href=\"http://x.test/a?b=1&amp;c=2\">http://x.test/a?b=1&amp;c=2</a>"
        );
    }
}
