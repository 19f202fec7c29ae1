//! Accounts: sign-up, sign-in, sessions, emailed links, password and email changes.
//!
//! `AuthService` holds the rules of SECURITY.md; the store makes each state change atomic and
//! the http layer shapes requests and answers.

pub mod agent;
pub mod email;
pub mod password;
pub mod token;

use std::sync::Arc;

use serde_json::{Map, Value};

use self::email::EmailAddress;
use self::password::{HashError, PasswordHasher, PasswordPolicy, Verified, WeakPassword};
use self::token::{Secret, hash_secret, new_id, new_secret, parse_session_handle};
use crate::clock::SharedClock;
use crate::config::AuthConfig;
use crate::limits::{Limit, LimitError, RateLimiter, RetryAfter};
use crate::mail::MailQueue;
use crate::mail::templates::{Template, Templates, Vars, describe_secs};
use crate::store::{
    Millis, NewMail, NewSession, NewToken, NewUser, RedeemGrant, ResetPassword, SessionRecord,
    SessionRef, Store, StoreError, TokenKind, TokenRecord, UserRecord,
};

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The request field, as the client names it.
    pub field: &'static str,
    /// What is wrong, for people.
    pub message: String,
}

/// Outcomes of auth operations a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// One or more fields are invalid.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// Unknown account or wrong password (one answer for both).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Right password, unconfirmed address.
    #[error("email not verified")]
    EmailNotVerified,
    /// The address belongs to another account.
    #[error("email not unique")]
    EmailTaken,
    /// A grant or reset key is unknown, used or expired.
    #[error("invalid access token")]
    InvalidAccessToken,
    /// The caller's own session is unknown, expired or revoked.
    #[error("invalid session token")]
    InvalidSession,
    /// `signOut(token)` named no session of the caller's.
    #[error("session not found")]
    SessionNotFound,
    /// Too many attempts.
    #[error("rate limited")]
    RateLimited(RetryAfter),
    /// The hashing pool is saturated.
    #[error("server busy")]
    Busy,
    /// The database cancelled a statement that ran past `database.statement_timeout_ms`.
    #[error("The database took too long to answer.")]
    TimedOut,
    /// The database failed; logged, answered 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Our fault; logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for AuthError {
    fn from(err: StoreError) -> Self {
        if matches!(err, StoreError::TimedOut) {
            return Self::TimedOut;
        }
        match std::error::Error::source(&err) {
            Some(cause) => Self::Unavailable(format!("{err}: {cause}")),
            None => Self::Unavailable(err.to_string()),
        }
    }
}

impl From<HashError> for AuthError {
    fn from(err: HashError) -> Self {
        match err {
            HashError::Busy => Self::Busy,
            HashError::Failed(reason) => Self::Internal(reason),
        }
    }
}

impl From<RetryAfter> for AuthError {
    fn from(err: RetryAfter) -> Self {
        Self::RateLimited(err)
    }
}

impl From<LimitError> for AuthError {
    fn from(err: LimitError) -> Self {
        match err {
            LimitError::Limited(wait) => Self::RateLimited(wait),
            LimitError::Unavailable(err) => err.into(),
        }
    }
}

/// Why an emailed link could not be used (shown to the person on the redirect).
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Unknown, spent or expired.
    #[error("Invalid or expired access token")]
    Invalid,
    /// The new address of an email change was taken meanwhile.
    #[error("This email address is already in use")]
    EmailTaken,
    /// Our fault.
    #[error("Something went wrong, please try again")]
    Internal(#[from] AuthError),
}

/// The emailed links and where they land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// Sign-up confirmation.
    Confirm,
    /// Magic sign-in.
    Magic,
    /// Password reset.
    Reset,
    /// Email change.
    ChangeEmail,
}

impl LinkKind {
    fn token_kind(self) -> TokenKind {
        match self {
            Self::Confirm => TokenKind::Confirm,
            Self::Magic => TokenKind::Magic,
            Self::Reset => TokenKind::Reset,
            Self::ChangeEmail => TokenKind::ChangeEmail,
        }
    }

    /// The landing path segment: `/_auth/email/{segment}`.
    pub fn segment(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::Magic => "magic",
            Self::Reset => "reset",
            Self::ChangeEmail => "change",
        }
    }

    /// The `action` of the redirect (protocol.md §4.1).
    pub fn action(self) -> &'static str {
        match self {
            Self::Confirm => "email-confirm",
            Self::Magic => "magic-link",
            Self::Reset => "reset-pwd",
            Self::ChangeEmail => "change-email",
        }
    }

    fn template(self) -> Template {
        match self {
            Self::Confirm => Template::Confirm,
            Self::Magic => Template::MagicLink,
            Self::Reset => Template::ResetPassword,
            Self::ChangeEmail => Template::ChangeEmail,
        }
    }
}

/// A session just opened: the record and its bearer token (shown once).
#[derive(Debug, Clone)]
pub struct IssuedSession {
    /// The stored session.
    pub record: SessionRecord,
    /// The bearer token, or a `ref_` handle when listing another device's session.
    pub token: String,
}

/// `{user, session}` of sign-up, sign-in and grant.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The account.
    pub user: UserRecord,
    /// The new session; `None` when sign-up awaits confirmation.
    pub session: Option<IssuedSession>,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The caller's session.
    pub session: SessionRecord,
    /// The caller's account.
    pub user: UserRecord,
    /// The bearer token the caller sent.
    pub token: String,
}

/// Sign-up input, unvalidated.
#[derive(Debug, Clone)]
pub struct SignUp {
    /// Address as typed.
    pub email: String,
    /// Password as typed.
    pub password: String,
    /// `nameOrUserData`: a name or an object of profile fields.
    pub profile: Option<Value>,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
}

/// Fields a sign-up object may never set.
const SYSTEM_FIELDS: &[&str] = &[
    "_id",
    "email",
    "password",
    "provider",
    "providerUserId",
    "signUpAt",
    "lastLoginAt",
    "emailVerified",
    "phoneVerified",
    "createdAt",
    "updatedAt",
];

/// How often `last_seen_at` is written per session, milliseconds.
const TOUCH_EVERY_MS: Millis = 60_000;

/// Building blocks the service needs.
pub struct AuthDeps {
    /// Persistence.
    pub store: Arc<dyn Store>,
    /// Time.
    pub clock: SharedClock,
    /// Rate limits.
    pub limits: Arc<RateLimiter>,
    /// Message templates.
    pub templates: Arc<Templates>,
    /// Wakes the mail sender.
    pub mail_queue: MailQueue,
    /// Public base URL, no trailing slash.
    pub public_base: String,
    /// Name of the app in emails.
    pub app_name: String,
}

/// The account rules.
pub struct AuthService {
    deps: AuthDeps,
    config: AuthConfig,
    hasher: PasswordHasher,
    policy: PasswordPolicy,
}

fn secs_ms(secs: u64) -> Millis {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

fn weak(field: &'static str, err: WeakPassword) -> FieldError {
    FieldError {
        field,
        message: err.to_string(),
    }
}

fn bad_email(field: &'static str) -> FieldError {
    FieldError {
        field,
        message: "Email address is not valid.".into(),
    }
}

impl AuthService {
    /// A service with the configured rules.
    pub fn new(deps: AuthDeps, config: AuthConfig) -> Result<Self, HashError> {
        let hasher = PasswordHasher::new(&config.password_hash)?;
        let policy = PasswordPolicy::new(config.min_password_length);
        Ok(Self {
            deps,
            config,
            hasher,
            policy,
        })
    }

    fn now(&self) -> Millis {
        self.deps.clock.now()
    }

    /// Create an account (SECURITY.md: a taken address answers like a new one when
    /// verification is on, and its owner gets a notice).
    pub async fn sign_up(&self, input: SignUp) -> Result<Grant, AuthError> {
        let mut errors = Vec::new();
        let email = EmailAddress::parse(&input.email).map_err(|_| bad_email("email"));
        if let Err(err) = self.policy.check(&input.password, email.as_ref().ok()) {
            errors.push(weak("password", err));
        }
        let mut data = Map::new();
        let mut verified = false;
        match input.profile {
            None | Some(Value::Null) => {}
            Some(Value::String(name)) => {
                data.insert("name".into(), Value::String(name));
            }
            Some(Value::Object(fields)) => {
                verified = self.config.allow_verified_signup_data
                    && fields.get("emailVerified") == Some(&Value::Bool(true));
                data = fields
                    .into_iter()
                    .filter(|(key, _)| !SYSTEM_FIELDS.contains(&key.as_str()))
                    .collect();
            }
            Some(_) => errors.push(FieldError {
                field: "nameOrUserData",
                message: "nameOrUserData must be a string or an object.".into(),
            }),
        }
        let email = match email {
            Ok(email) if errors.is_empty() => email,
            Ok(_) => return Err(AuthError::Validation(errors)),
            Err(err) => {
                errors.insert(0, err);
                return Err(AuthError::Validation(errors));
            }
        };
        let hash = self.hasher.hash(&input.password).await?;
        let now = self.now();
        let user = NewUser {
            id: new_id(now),
            email: email.as_str().to_string(),
            email_key: email.key(),
            email_verified: verified || !self.config.email_verification,
            password_hash: Some(hash),
            data,
            now,
        };
        let needs_confirmation = self.config.email_verification && !verified;
        if needs_confirmation {
            if self
                .deps
                .store
                .user_by_email(&user.email_key)
                .await?
                .is_some()
            {
                return self.answer_taken_sign_up(user).await;
            }
            let (token, mail) = self.link(LinkKind::Confirm, &user.id, &email, None, now);
            match self
                .deps
                .store
                .insert_user(user.clone(), Some((token, mail)), None)
                .await
            {
                Ok(()) => {}
                Err(StoreError::Conflict { .. }) => {
                    return self.answer_taken_sign_up(user).await;
                }
                Err(err) => return Err(err.into()),
            }
            self.deps.mail_queue.wake();
            let stored = self.user(&user.id).await?;
            return Ok(Grant {
                user: stored,
                session: None,
            });
        }
        let (session, token) = self.new_session(&user.id, input.user_agent.as_deref(), now);
        match self
            .deps
            .store
            .insert_user(user.clone(), None, Some(session))
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => return Err(AuthError::EmailTaken),
            Err(err) => return Err(err.into()),
        }
        self.grant(&token).await
    }

    /// Take one mail from the per-recipient limits of the address with this key.
    async fn mail_allowed(&self, key: &str) -> Result<(), LimitError> {
        self.deps
            .limits
            .check_all(&[
                (Limit::MailPerRecipientShort, key),
                (Limit::MailPerRecipientLong, key),
            ])
            .await
    }

    /// The answer for a taken address when verification is on: the same shape as for a new
    /// account, and a notice to the owner instead of a confirmation.
    async fn answer_taken_sign_up(&self, user: NewUser) -> Result<Grant, AuthError> {
        let key = &user.email_key;
        let owner = self.deps.store.user_by_email(key).await?;
        let limited = match self.mail_allowed(key).await {
            Ok(()) => false,
            Err(LimitError::Limited(_)) => true,
            Err(LimitError::Unavailable(err)) => return Err(err.into()),
        };
        if let (Some(owner), false) = (owner, limited) {
            let mail = self.render(Template::SignupAttempt, &owner.email, "", 0, user.now);
            self.deps.store.enqueue_mail(mail).await?;
            self.deps.mail_queue.wake();
        }
        Ok(Grant {
            user: UserRecord {
                id: user.id.clone(),
                email: user.email,
                email_verified: false,
                password_hash: None,
                provider: "altogic".into(),
                provider_user_id: user.id,
                data: user.data,
                sign_up_at: user.now,
                last_login_at: user.now,
                created_at: user.now,
                updated_at: user.now,
            },
            session: None,
        })
    }

    /// Sign in with email and password.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        user_agent: Option<&str>,
    ) -> Result<Grant, AuthError> {
        let email = EmailAddress::parse(email)
            .map_err(|_| AuthError::Validation(vec![bad_email("email")]))?;
        let key = email.key();
        self.deps.limits.sign_in_allowed(&key).await?;
        let user = self.deps.store.user_by_email(&key).await?;
        let stored = user.as_ref().and_then(|u| u.password_hash.as_deref());
        let rehash = match self.hasher.verify(password, stored).await? {
            Verified::No => {
                self.deps.limits.sign_in_failed(&key).await?;
                return Err(AuthError::InvalidCredentials);
            }
            Verified::Yes { rehash } => rehash,
        };
        let Some(user) = user else {
            return Err(AuthError::InvalidCredentials);
        };
        if self.config.email_verification && !user.email_verified {
            return Err(AuthError::EmailNotVerified);
        }
        self.deps.limits.sign_in_succeeded(&key).await?;
        let now = self.now();
        let (session, token) = self.new_session(&user.id, user_agent, now);
        self.deps.store.record_sign_in(session, rehash).await?;
        self.grant(&token).await
    }

    /// The caller behind a `Session` header.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, AuthError> {
        if token.is_empty() || token.len() > 256 || token.starts_with("ref_") {
            return Err(AuthError::InvalidSession);
        }
        let found = self
            .deps
            .store
            .session_by_token(&hash_secret(token))
            .await?;
        let Some((session, user)) = found else {
            return Err(AuthError::InvalidSession);
        };
        let now = self.now();
        let expired = now - session.created_at >= secs_ms(self.config.session_lifetime_secs)
            || now - session.last_seen_at >= secs_ms(self.config.session_idle_secs);
        if expired {
            self.deps
                .store
                .delete_session(&user.id, SessionRef::Id(session.id.clone()))
                .await?;
            return Err(AuthError::InvalidSession);
        }
        if now - session.last_seen_at >= TOUCH_EVERY_MS {
            self.deps.store.touch_session(&session.id, now).await?;
        }
        Ok(Caller {
            session,
            user,
            token: token.to_string(),
        })
    }

    /// Every session of the caller's account, oldest first: the caller's own with its token,
    /// the others with `ref_` handles.
    pub async fn list_sessions(&self, caller: &Caller) -> Result<Vec<IssuedSession>, AuthError> {
        let sessions = self.deps.store.sessions_of_user(&caller.user.id).await?;
        Ok(sessions
            .into_iter()
            .map(|record| {
                let token = if record.id == caller.session.id {
                    caller.token.clone()
                } else {
                    token::session_handle(&record.id)
                };
                IssuedSession { record, token }
            })
            .collect())
    }

    /// Sign out the caller's session, or another session of the same account.
    pub async fn sign_out(&self, caller: &Caller, token: Option<&str>) -> Result<(), AuthError> {
        let target = match token {
            None | Some("") => SessionRef::Id(caller.session.id.clone()),
            Some(token) if token == caller.token => SessionRef::Id(caller.session.id.clone()),
            Some(token) if token.starts_with("ref_") => {
                SessionRef::Id(parse_session_handle(token).ok_or(AuthError::SessionNotFound)?)
            }
            Some(token) => SessionRef::TokenHash(hash_secret(token)),
        };
        if self
            .deps
            .store
            .delete_session(&caller.user.id, target)
            .await?
        {
            Ok(())
        } else {
            Err(AuthError::SessionNotFound)
        }
    }

    /// Sign out every session of the caller's account, or every one but the caller's.
    pub async fn sign_out_all(&self, caller: &Caller, keep_current: bool) -> Result<(), AuthError> {
        let keep = keep_current.then_some(caller.session.id.as_str());
        self.deps
            .store
            .delete_sessions_of_user(&caller.user.id, keep)
            .await?;
        Ok(())
    }

    /// Email a magic sign-in link (to existing accounts only; the answer is the same).
    pub async fn send_magic_link(&self, email: &str) -> Result<(), AuthError> {
        self.send_link(email, LinkKind::Magic, |_| true).await
    }

    /// Email a new confirmation link to an unverified account.
    pub async fn resend_verification(&self, email: &str) -> Result<(), AuthError> {
        self.send_link(email, LinkKind::Confirm, |user| !user.email_verified)
            .await
    }

    /// Email a password reset link.
    pub async fn send_password_reset(&self, email: &str) -> Result<(), AuthError> {
        self.send_link(email, LinkKind::Reset, |_| true).await
    }

    async fn send_link(
        &self,
        email: &str,
        kind: LinkKind,
        wanted: impl Fn(&UserRecord) -> bool,
    ) -> Result<(), AuthError> {
        let email = EmailAddress::parse(email)
            .map_err(|_| AuthError::Validation(vec![bad_email("email")]))?;
        let key = email.key();
        self.mail_allowed(&key).await?;
        let Some(user) = self.deps.store.user_by_email(&key).await? else {
            return Ok(());
        };
        if !wanted(&user) {
            return Ok(());
        }
        let to = EmailAddress::parse(&user.email).unwrap_or(email);
        let (token, mail) = self.link(kind, &user.id, &to, None, self.now());
        self.deps.store.issue_link(token, mail).await?;
        self.deps.mail_queue.wake();
        Ok(())
    }

    /// A click on an emailed link: returns the `access_token` for the redirect, if the action
    /// has one. Never spends the emailed token (mail scanners click first).
    pub async fn open_link(
        &self,
        kind: LinkKind,
        token: &str,
    ) -> Result<Option<String>, LinkError> {
        let record = self
            .live_token(token, kind.token_kind())
            .await?
            .ok_or(LinkError::Invalid)?;
        let now = self.now();
        let (grant_kind, ttl) = match kind {
            LinkKind::Confirm => {
                self.deps
                    .store
                    .set_email_verified(&record.user_id, now)
                    .await
                    .map_err(AuthError::from)?;
                (TokenKind::Grant, self.config.grant_secs)
            }
            LinkKind::Magic => (TokenKind::Grant, self.config.grant_secs),
            LinkKind::Reset => (TokenKind::ResetGrant, self.config.grant_secs),
            LinkKind::ChangeEmail => {
                let new = record.data.as_deref().unwrap_or_default();
                let new = EmailAddress::parse(new).map_err(|_| LinkError::Invalid)?;
                return match self
                    .deps
                    .store
                    .change_email(&record.user_id, new.as_str(), &new.key(), now)
                    .await
                {
                    Ok(()) => Ok(None),
                    Err(StoreError::Conflict { .. }) => Err(LinkError::EmailTaken),
                    Err(err) => Err(LinkError::Internal(err.into())),
                };
            }
        };
        let Secret { secret, hash } = new_secret();
        self.deps
            .store
            .insert_token(NewToken {
                id: new_id(now),
                user_id: record.user_id,
                kind: grant_kind,
                token_hash: hash,
                source_id: Some(record.id),
                data: Some(kind.token_kind().as_str().to_string()),
                now,
                expires_at: now + secs_ms(ttl),
            })
            .await
            .map_err(AuthError::from)?;
        Ok(Some(secret))
    }

    /// Redeem the `access_token` of a redirect for a session.
    pub async fn redeem_grant(
        &self,
        key: &str,
        user_agent: Option<&str>,
    ) -> Result<Grant, AuthError> {
        let grant = self
            .live_token(key, TokenKind::Grant)
            .await?
            .ok_or(AuthError::InvalidAccessToken)?;
        let user = self
            .deps
            .store
            .user_by_id(&grant.user_id)
            .await?
            .ok_or(AuthError::InvalidAccessToken)?;
        let from_magic = grant.data.as_deref() == Some(TokenKind::Magic.as_str());
        let now = self.now();
        let (session, token) = self.new_session(&user.id, user_agent, now);
        let redeemed = self
            .deps
            .store
            .redeem_grant(RedeemGrant {
                grant_id: grant.id,
                source_id: grant.source_id,
                session,
                mark_verified: true,
                // Whoever chose the sign-up password may not own the address.
                void_password: from_magic && !user.email_verified,
            })
            .await?;
        if !redeemed {
            return Err(AuthError::InvalidAccessToken);
        }
        self.grant(&token).await
    }

    /// Set a new password with the `access_token` of a reset redirect; ends every session.
    pub async fn reset_password(&self, key: &str, new_password: &str) -> Result<(), AuthError> {
        let grant = self
            .live_token(key, TokenKind::ResetGrant)
            .await?
            .ok_or(AuthError::InvalidAccessToken)?;
        let user = self.user(&grant.user_id).await?;
        let email = EmailAddress::parse(&user.email).ok();
        self.policy
            .check(new_password, email.as_ref())
            .map_err(|err| AuthError::Validation(vec![weak("newPassword", err)]))?;
        let hash = self.hasher.hash(new_password).await?;
        let done = self
            .deps
            .store
            .reset_password(ResetPassword {
                grant_id: grant.id,
                source_id: grant.source_id,
                user_id: user.id,
                password_hash: hash,
                now: self.now(),
            })
            .await?;
        if done {
            Ok(())
        } else {
            Err(AuthError::InvalidAccessToken)
        }
    }

    /// Change the password; the caller's session stays, the others end.
    pub async fn change_password(
        &self,
        caller: &Caller,
        new_password: &str,
        old_password: &str,
    ) -> Result<(), AuthError> {
        let email = EmailAddress::parse(&caller.user.email).ok();
        self.policy
            .check(new_password, email.as_ref())
            .map_err(|err| AuthError::Validation(vec![weak("newPassword", err)]))?;
        self.check_password(&caller.user, old_password).await?;
        let hash = self.hasher.hash(new_password).await?;
        self.deps
            .store
            .change_password(&caller.user.id, &hash, Some(&caller.session.id), self.now())
            .await?;
        Ok(())
    }

    /// Change the address: at once without verification, else by a link to the new address.
    /// Returns the account as it is now.
    pub async fn change_email(
        &self,
        caller: &Caller,
        current_password: &str,
        new_email: &str,
    ) -> Result<UserRecord, AuthError> {
        let new = EmailAddress::parse(new_email)
            .map_err(|_| AuthError::Validation(vec![bad_email("newEmail")]))?;
        self.check_password(&caller.user, current_password).await?;
        let key = new.key();
        if let Some(other) = self.deps.store.user_by_email(&key).await?
            && other.id != caller.user.id
        {
            return Err(AuthError::EmailTaken);
        }
        let now = self.now();
        if !self.config.email_verification {
            match self
                .deps
                .store
                .change_email(&caller.user.id, new.as_str(), &key, now)
                .await
            {
                Ok(()) => return self.user(&caller.user.id).await,
                Err(StoreError::Conflict { .. }) => return Err(AuthError::EmailTaken),
                Err(err) => return Err(err.into()),
            }
        }
        self.mail_allowed(&key).await?;
        let (token, mail) = self.link(
            LinkKind::ChangeEmail,
            &caller.user.id,
            &new,
            Some(new.as_str().to_string()),
            now,
        );
        self.deps.store.issue_link(token, mail).await?;
        self.deps.mail_queue.wake();
        Ok(caller.user.clone())
    }

    async fn check_password(&self, user: &UserRecord, password: &str) -> Result<(), AuthError> {
        let key = user.email.to_lowercase();
        self.deps.limits.sign_in_allowed(&key).await?;
        match self
            .hasher
            .verify(password, user.password_hash.as_deref())
            .await?
        {
            Verified::Yes { .. } => {
                self.deps.limits.sign_in_succeeded(&key).await?;
                Ok(())
            }
            Verified::No => {
                self.deps.limits.sign_in_failed(&key).await?;
                Err(AuthError::InvalidCredentials)
            }
        }
    }

    async fn live_token(
        &self,
        secret: &str,
        kind: TokenKind,
    ) -> Result<Option<TokenRecord>, AuthError> {
        if secret.is_empty() || secret.len() > 256 {
            return Ok(None);
        }
        let record = self.deps.store.token_by_hash(&hash_secret(secret)).await?;
        let now = self.now();
        Ok(record.filter(|t| t.kind == kind && t.used_at.is_none() && t.expires_at > now))
    }

    async fn user(&self, id: &str) -> Result<UserRecord, AuthError> {
        self.deps
            .store
            .user_by_id(id)
            .await?
            .ok_or_else(|| AuthError::Internal(format!("user {id} vanished")))
    }

    /// `{user, session}` for a session just written.
    async fn grant(&self, token: &str) -> Result<Grant, AuthError> {
        let found = self
            .deps
            .store
            .session_by_token(&hash_secret(token))
            .await?;
        let (record, user) =
            found.ok_or_else(|| AuthError::Internal("a new session vanished".into()))?;
        let token = token.to_string();
        Ok(Grant {
            user,
            session: Some(IssuedSession { record, token }),
        })
    }

    fn new_session(
        &self,
        user_id: &str,
        user_agent: Option<&str>,
        now: Millis,
    ) -> (NewSession, String) {
        let Secret { secret, hash } = new_secret();
        let session = NewSession {
            id: new_id(now),
            user_id: user_id.to_string(),
            token_hash: hash,
            user_agent: agent::parse_user_agent(user_agent),
            now,
            max_per_user: self.config.max_sessions_per_user,
        };
        (session, secret)
    }

    fn link_ttl(&self, kind: LinkKind) -> u64 {
        match kind {
            LinkKind::Confirm => self.config.verification_link_secs,
            LinkKind::Magic => self.config.magic_link_secs,
            LinkKind::Reset => self.config.reset_link_secs,
            LinkKind::ChangeEmail => self.config.email_change_link_secs,
        }
    }

    /// A link token and the message carrying it.
    fn link(
        &self,
        kind: LinkKind,
        user_id: &str,
        to: &EmailAddress,
        data: Option<String>,
        now: Millis,
    ) -> (NewToken, NewMail) {
        let Secret { secret, hash } = new_secret();
        let ttl = self.link_ttl(kind);
        let url = format!(
            "{}/_auth/email/{}?token={secret}",
            self.deps.public_base,
            kind.segment()
        );
        let token = NewToken {
            id: new_id(now),
            user_id: user_id.to_string(),
            kind: kind.token_kind(),
            token_hash: hash,
            source_id: None,
            data,
            now,
            expires_at: now + secs_ms(ttl),
        };
        let mail = self.render(kind.template(), to.as_str(), &url, ttl, now);
        (token, mail)
    }

    fn render(&self, template: Template, to: &str, link: &str, ttl: u64, now: Millis) -> NewMail {
        let valid_for = describe_secs(ttl);
        let rendered = self.deps.templates.render(
            template,
            &Vars {
                app_name: &self.deps.app_name,
                email: to,
                link,
                valid_for: &valid_for,
            },
        );
        NewMail {
            id: new_id(now),
            to: to.to_string(),
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
            now,
        }
    }

    /// Delete sessions past their lifetimes (run periodically).
    pub async fn purge_expired_sessions(&self) -> Result<u64, AuthError> {
        let now = self.now();
        Ok(self
            .deps
            .store
            .delete_expired_sessions(
                now - secs_ms(self.config.session_lifetime_secs),
                now - secs_ms(self.config.session_idle_secs),
            )
            .await?)
    }

    /// Operator: create a verified account (CLI).
    pub async fn create_user(&self, email: &str, password: &str) -> Result<UserRecord, AuthError> {
        let email = EmailAddress::parse(email)
            .map_err(|_| AuthError::Validation(vec![bad_email("email")]))?;
        self.policy
            .check(password, Some(&email))
            .map_err(|err| AuthError::Validation(vec![weak("password", err)]))?;
        let hash = self.hasher.hash(password).await?;
        let now = self.now();
        let id = new_id(now);
        let user = NewUser {
            id: id.clone(),
            email: email.as_str().to_string(),
            email_key: email.key(),
            email_verified: true,
            password_hash: Some(hash),
            data: Map::new(),
            now,
        };
        match self.deps.store.insert_user(user, None, None).await {
            Ok(()) => self.user(&id).await,
            Err(StoreError::Conflict { .. }) => Err(AuthError::EmailTaken),
            Err(err) => Err(err.into()),
        }
    }

    /// Operator: set a password (CLI); ends every session.
    pub async fn set_password(&self, email: &str, password: &str) -> Result<(), AuthError> {
        let email = EmailAddress::parse(email)
            .map_err(|_| AuthError::Validation(vec![bad_email("email")]))?;
        let user = self
            .deps
            .store
            .user_by_email(&email.key())
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        self.policy
            .check(password, Some(&email))
            .map_err(|err| AuthError::Validation(vec![weak("password", err)]))?;
        let hash = self.hasher.hash(password).await?;
        self.deps
            .store
            .change_password(&user.id, &hash, None, self.now())
            .await?;
        Ok(())
    }

    /// Operator: delete an account and its sessions (CLI).
    pub async fn delete_user(&self, email: &str) -> Result<bool, AuthError> {
        let email = EmailAddress::parse(email)
            .map_err(|_| AuthError::Validation(vec![bad_email("email")]))?;
        let Some(user) = self.deps.store.user_by_email(&email.key()).await? else {
            return Ok(false);
        };
        Ok(self.deps.store.delete_user(&user.id).await?)
    }
}
