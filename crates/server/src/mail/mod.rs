//! Outgoing mail: templates, transports and the background sender that drains the outbox.
//!
//! Every message is first written to the `mail_outbox` table, in the same transaction as the
//! token it carries. The sender delivers due messages and retries failures with backoff, so
//! nothing is lost when the transport or the process goes away.

mod smtp;
pub mod templates;

pub use smtp::SmtpTransport;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::store::{MailRecord, Store};

/// Delivers one message.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Deliver; an `Err` is retried later.
    async fn deliver(&self, mail: &MailRecord) -> Result<(), String>;
}

/// The dev outbox: delivery is keeping the message where `/_dev/mail` shows it.
#[derive(Debug, Default)]
pub struct DevOutbox;

#[async_trait]
impl Transport for DevOutbox {
    async fn deliver(&self, _mail: &MailRecord) -> Result<(), String> {
        Ok(())
    }
}

/// Wakes the sender when new mail is queued.
#[derive(Debug, Clone, Default)]
pub struct MailQueue {
    notify: Arc<Notify>,
}

impl MailQueue {
    /// Tell the sender there is work.
    pub fn wake(&self) {
        self.notify.notify_one();
    }
}

/// Delay before retry number `attempts` (1-based): 2 s, 4 s, 8 s, … capped at 10 minutes.
pub fn backoff(attempts: u32) -> Duration {
    let secs = 2u64.saturating_pow(attempts.clamp(1, 16)).min(600);
    Duration::from_secs(secs)
}

/// The background sender: drains due messages until `stop` fires.
pub async fn run_sender(
    store: Arc<dyn Store>,
    transport: Arc<dyn Transport>,
    clock: SharedClock,
    queue: MailQueue,
    stop: CancellationToken,
) {
    loop {
        let batch = match store.due_mail(clock.now(), 32).await {
            Ok(batch) => batch,
            Err(err) => {
                tracing::warn!(error = %err, "reading the mail outbox failed");
                Vec::new()
            }
        };
        let full = batch.len() == 32;
        for mail in batch {
            match transport.deliver(&mail).await {
                Ok(()) => {
                    if let Err(err) = store.mark_mail_sent(&mail.id, clock.now()).await {
                        tracing::warn!(error = %err, mail = %mail.id, "marking mail sent failed");
                    }
                }
                Err(reason) => {
                    let delay = backoff(mail.attempts + 1);
                    let next = clock.now() + i64::try_from(delay.as_millis()).unwrap_or(600_000);
                    tracing::warn!(mail = %mail.id, attempts = mail.attempts + 1, retry_in_s = delay.as_secs(), %reason, "mail delivery failed");
                    if let Err(err) = store.mark_mail_failed(&mail.id, next, &reason).await {
                        tracing::warn!(error = %err, mail = %mail.id, "recording a mail failure failed");
                    }
                }
            }
        }
        if full {
            continue;
        }
        tokio::select! {
            () = queue.notify.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(30), Duration::from_secs(600));
    }
}
