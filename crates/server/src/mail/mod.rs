//! Outgoing mail: templates, transports and the background sender that drains the outbox.
//!
//! Every message is first written to the `mail_outbox` table, in the same transaction as the
//! token it carries. The sender claims due messages for a lease, delivers them and retries
//! failures with backoff, so nothing is lost when the transport or the process goes away, and
//! senders on several nodes never deliver the same message twice while its lease runs.

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

/// How long a claim keeps a message from other senders.
pub const LEASE: Duration = Duration::from_secs(60);

/// A claimed message is delivered only while this much of its lease is left; later ones wait
/// for the lease to end and are claimed again, so a slow transport never delivers a message
/// another sender may have claimed meanwhile.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// Messages claimed at once.
const BATCH: u32 = 32;

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
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
        let claimed_at = clock.now();
        let lease_until = claimed_at + millis(LEASE);
        let batch = match store.claim_mail(claimed_at, lease_until, BATCH).await {
            Ok(batch) => batch,
            Err(err) => {
                tracing::warn!(error = %err, "claiming mail from the outbox failed");
                Vec::new()
            }
        };
        let full = batch.len() == BATCH as usize;
        for mail in batch {
            if clock.now() > lease_until - millis(LEASE_MARGIN) {
                break;
            }
            match transport.deliver(&mail).await {
                Ok(()) => {
                    if let Err(err) = store.mark_mail_sent(&mail.id, clock.now()).await {
                        tracing::warn!(error = %err, mail = %mail.id, "marking mail sent failed");
                    }
                }
                Err(reason) => {
                    let delay = backoff(mail.attempts + 1);
                    let next = clock.now() + millis(delay);
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
