//! SMTP delivery with lettre: plain, STARTTLS or TLS, optional authentication.

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use super::Transport;
use crate::config::{SmtpConfig, SmtpTls};
use crate::store::MailRecord;

/// Delivers through an SMTP server. Connects per batch; never at start-up, so the server
/// starts while the SMTP server is down.
pub struct SmtpTransport {
    inner: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpTransport {
    /// A transport for the configured server.
    pub fn new(config: &SmtpConfig, from: &str) -> anyhow::Result<Self> {
        let from: Mailbox = from.parse()?;
        let tls = match config.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls => Tls::Required(TlsParameters::new(config.host.clone())?),
            SmtpTls::Tls => Tls::Wrapper(TlsParameters::new(config.host.clone())?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .tls(tls)
            .timeout(Some(std::time::Duration::from_secs(config.timeout_secs)));
        if !config.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                config.username.clone(),
                config.password.expose_secret().to_string(),
            ));
        }
        Ok(Self {
            inner: builder.build(),
            from,
        })
    }
}

#[async_trait]
impl Transport for SmtpTransport {
    async fn deliver(&self, mail: &MailRecord) -> Result<(), String> {
        let to: Mailbox = mail.to.parse().map_err(|err| format!("recipient: {err}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                mail.html.clone(),
            ))
            .map_err(|err| format!("building the message: {err}"))?;
        self.inner
            .send(message)
            .await
            .map(|_| ())
            .map_err(|err| err.to_string())
    }
}
