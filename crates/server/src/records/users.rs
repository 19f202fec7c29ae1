//! Query calls over the built-in `users` model: each caller's own record whole, others'
//! public fields only, in the filter and sort as in the answer (protocol.md §5.4, §10).

use serde_json::Value;

use super::query::{CountInfo, QuerySpec, empty_info, page_of, parse_filter, sort_keys};
use super::{RecordError, RecordService};
use crate::expr::Expr;
use crate::store::{Filter, Order, UserQuery};

impl RecordService {
    fn user_query(
        &self,
        caller: Option<&str>,
        spec: &QuerySpec,
        filter: Option<&Expr>,
    ) -> Result<(UserQuery, u64), RecordError> {
        let (page, limit) = page_of(spec)?;
        Ok((
            UserQuery {
                caller: caller.map(String::from),
                public_fields: self.profile.public_fields().to_vec(),
                filter: filter.map(Filter::compile).transpose()?,
                order: Order::by(&sort_keys(spec)?)?,
                limit,
                offset: (page - 1).saturating_mul(u64::from(limit)),
                count: false,
            },
            page,
        ))
    }

    /// `get-list` over `users`.
    pub async fn list_users(
        &self,
        caller: Option<&str>,
        spec: &QuerySpec,
        count: bool,
    ) -> Result<(Vec<Value>, Option<CountInfo>), RecordError> {
        let lookups = self.lookups(spec.lookups.as_deref())?;
        let filter = parse_filter(spec)?;
        let (mut query, page) = self.user_query(caller, spec, filter.as_ref())?;
        query.count = count;
        let page_size = query.limit;
        let (users, total) = self.store.query_users(query).await?;
        let views = users
            .into_iter()
            .map(|user| self.profile.view(caller, user).into_json())
            .collect();
        let objects = self.finish(caller, spec, &lookups, views).await?;
        let info = match total {
            Some(n) => Some(CountInfo::new(n, page, page_size)),
            None if count => Some(empty_info(spec)),
            None => None,
        };
        Ok((objects, info))
    }

    /// The first user (by id) matching a lookup's bound query.
    pub(super) async fn first_user(
        &self,
        caller: Option<&str>,
        filter: &Expr,
    ) -> Result<Option<Value>, RecordError> {
        let spec = QuerySpec {
            limit: Some(1),
            ..QuerySpec::default()
        };
        let (query, _) = self.user_query(caller, &spec, Some(filter))?;
        let (mut users, _) = self.store.query_users(query).await?;
        Ok(users
            .pop()
            .map(|user| self.profile.view(caller, user).into_json()))
    }
}
