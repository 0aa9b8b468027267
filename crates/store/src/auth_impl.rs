//! `AuthStore` for both databases from one body: the statements are plain SQL that SQLite and
//! PostgreSQL both accept (`$N` placeholders work on both), so only the pools differ. SQLite
//! writes through its one writer connection and reads through its readers; PostgreSQL uses one
//! pool for both.

macro_rules! impl_auth_store {
    ($store:ty, $db:ty, writer: $w:ident) => {
        #[async_trait::async_trait]
        impl crate::AuthStore for $store {
            async fn set_login(
                &self,
                person: klaxon_core::PersonId,
                login: &str,
                password_hash: &str,
            ) -> Result<(), crate::StoreError> {
                let done = sqlx::query("UPDATE persons SET login = $1, password_hash = $2 WHERE id = $3")
                    .bind(login)
                    .bind(password_hash)
                    .bind(person.0)
                    .execute(&mut *self.$w().await?)
                    .await
                    .map_err(|e| match crate::common::conflict(e) {
                        crate::StoreError::Conflict(_) => crate::StoreError::Conflict(format!(
                            "the login `{login}` belongs to someone else: choose another"
                        )),
                        e => e,
                    })?;
                if done.rows_affected() == 0 {
                    return Err(crate::StoreError::NotFound(format!("person {person}")));
                }
                Ok(())
            }

            async fn credentials(
                &self,
                login: &str,
            ) -> Result<Option<(klaxon_core::Person, String)>, crate::StoreError> {
                let row = sqlx::query("SELECT * FROM persons WHERE login = $1 AND password_hash IS NOT NULL")
                    .bind(login)
                    .fetch_optional(&mut *self.read().await?)
                    .await?;
                match row {
                    Some(row) => {
                        let hash: String = sqlx::Row::try_get(&row, "password_hash")?;
                        Ok(Some((crate::rows::person(&row)?, hash)))
                    }
                    None => Ok(None),
                }
            }

            async fn set_access(
                &self,
                person: klaxon_core::PersonId,
                access: klaxon_core::Access,
            ) -> Result<(), crate::StoreError> {
                sqlx::query("UPDATE persons SET access = $1 WHERE id = $2")
                    .bind(access.as_str())
                    .bind(person.0)
                    .execute(&mut *self.$w().await?)
                    .await?;
                Ok(())
            }

            async fn people(&self, limit: u32) -> Result<Vec<klaxon_core::Person>, crate::StoreError> {
                let found = sqlx::query("SELECT * FROM persons ORDER BY name, id LIMIT $1")
                    .bind(i64::from(limit))
                    .fetch_all(&mut *self.read().await?)
                    .await?;
                found.iter().map(crate::rows::person).collect()
            }

            async fn persons_by_id(
                &self,
                ids: &[klaxon_core::PersonId],
            ) -> Result<Vec<klaxon_core::Person>, crate::StoreError> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT * FROM persons WHERE id IN (");
                let mut list = qb.separated(", ");
                for id in ids.iter().take(1000) {
                    list.push_bind(id.0);
                }
                qb.push(")");
                let found = qb.build().fetch_all(&mut *self.read().await?).await?;
                found.iter().map(crate::rows::person).collect()
            }

            async fn create_api_token(
                &self,
                name: &str,
                token_hash: &str,
                access: klaxon_core::Access,
                person: Option<klaxon_core::PersonId>,
                at: klaxon_core::Timestamp,
            ) -> Result<crate::ApiToken, crate::StoreError> {
                let row = sqlx::query(
                    "INSERT INTO api_tokens (name, token_hash, access, person_id, created_at_ms) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING *",
                )
                .bind(name)
                .bind(token_hash)
                .bind(access.as_str())
                .bind(person.map(|p| p.0))
                .bind(klaxon_core::to_millis(at))
                .fetch_one(&mut *self.$w().await?)
                .await?;
                crate::rows::api_token(&row)
            }

            async fn api_token(
                &self,
                token_hash: &str,
                now: klaxon_core::Timestamp,
            ) -> Result<Option<crate::ApiToken>, crate::StoreError> {
                let row = sqlx::query("SELECT * FROM api_tokens WHERE token_hash = $1 AND revoked_at_ms IS NULL")
                    .bind(token_hash)
                    .fetch_optional(&mut *self.read().await?)
                    .await?;
                let Some(token) = row.as_ref().map(crate::rows::api_token).transpose()? else {
                    return Ok(None);
                };
                let now_ms = klaxon_core::to_millis(now);
                let stale = token.last_used_at.is_none_or(|t| now_ms - klaxon_core::to_millis(t) > 60_000);
                if stale {
                    sqlx::query("UPDATE api_tokens SET last_used_at_ms = $1 WHERE id = $2")
                        .bind(now_ms)
                        .bind(token.id)
                        .execute(&mut *self.$w().await?)
                        .await?;
                }
                Ok(Some(token))
            }

            async fn api_tokens(&self) -> Result<Vec<crate::ApiToken>, crate::StoreError> {
                let found = sqlx::query("SELECT * FROM api_tokens ORDER BY id").fetch_all(&mut *self.read().await?).await?;
                found.iter().map(crate::rows::api_token).collect()
            }

            async fn revoke_api_token(&self, id: i64, at: klaxon_core::Timestamp) -> Result<bool, crate::StoreError> {
                let done = sqlx::query(
                    "UPDATE api_tokens SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL",
                )
                .bind(klaxon_core::to_millis(at))
                .bind(id)
                .execute(&mut *self.$w().await?)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn create_session(
                &self,
                id_hash: &str,
                person: klaxon_core::PersonId,
                csrf: &str,
                at: klaxon_core::Timestamp,
                expires_at: klaxon_core::Timestamp,
            ) -> Result<(), crate::StoreError> {
                sqlx::query(
                    "INSERT INTO sessions (id_hash, person_id, csrf, created_at_ms, expires_at_ms) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id_hash)
                .bind(person.0)
                .bind(csrf)
                .bind(klaxon_core::to_millis(at))
                .bind(klaxon_core::to_millis(expires_at))
                .execute(&mut *self.$w().await?)
                .await?;
                Ok(())
            }

            async fn session(
                &self,
                id_hash: &str,
                now: klaxon_core::Timestamp,
            ) -> Result<Option<crate::Session>, crate::StoreError> {
                let row = sqlx::query(
                    "SELECT p.*, s.csrf AS session_csrf, s.expires_at_ms AS session_expires_at_ms \
                     FROM sessions s JOIN persons p ON p.id = s.person_id \
                     WHERE s.id_hash = $1 AND s.expires_at_ms > $2",
                )
                .bind(id_hash)
                .bind(klaxon_core::to_millis(now))
                .fetch_optional(&mut *self.read().await?)
                .await?;
                match row {
                    Some(row) => Ok(Some(crate::Session {
                        person: crate::rows::person(&row)?,
                        csrf: sqlx::Row::try_get(&row, "session_csrf")?,
                        expires_at: klaxon_core::from_millis(sqlx::Row::try_get(&row, "session_expires_at_ms")?),
                    })),
                    None => Ok(None),
                }
            }

            async fn delete_session(&self, id_hash: &str, now: klaxon_core::Timestamp) -> Result<(), crate::StoreError> {
                sqlx::query("DELETE FROM sessions WHERE id_hash = $1 OR expires_at_ms <= $2")
                    .bind(id_hash)
                    .bind(klaxon_core::to_millis(now))
                    .execute(&mut *self.$w().await?)
                    .await?;
                Ok(())
            }
        }
    };
}

impl_auth_store!(crate::SqliteStore, sqlx::Sqlite, writer: writing);
impl_auth_store!(crate::PgStore, sqlx::Postgres, writer: writing);
