//! Tokens, users, sessions and the audit log in the store. API tokens and session ids are
//! 256-bit random secrets, kept as SHA-256 (a fast hash is right for high-entropy secrets);
//! passwords are kept as argon2id PHC strings.

use super::{Store, StoreError};
use crate::auth::{Role, Who};
use serde::Serialize;
use sqlx::Row;

#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

impl Store {
    pub async fn token_count(&self) -> Result<i64, StoreError> {
        let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tokens")
            .fetch_one(self.pool())
            .await?;
        Ok(n.0)
    }

    /// Add a token (its hash); false when the name is taken.
    pub async fn add_token(&self, name: &str, role: Role, hash: &str) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO tokens (name, role, hash, created_ms) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(hash)
        .bind(crate::now_ms())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn delete_token(&self, name: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM tokens WHERE name = $1")
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let rows = sqlx::query("SELECT name, role, created_ms FROM tokens ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TokenInfo {
                    name: r.try_get(0)?,
                    role: Role::parse(&r.try_get::<String, _>(1)?).unwrap_or(Role::Viewer),
                    created_ms: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Whom a token hash or a session hash belongs to.
    pub async fn who(&self, hash: &str) -> Result<Option<Who>, StoreError> {
        let t: Option<(String, String)> =
            sqlx::query_as("SELECT name, role FROM tokens WHERE hash = $1")
                .bind(hash)
                .fetch_optional(self.pool())
                .await?;
        if let Some((name, role)) = t {
            return Ok(Role::parse(&role).map(|role| Who { name, role }));
        }
        let s: Option<(String, String)> = sqlx::query_as(
            "SELECT user_name, role FROM sessions WHERE hash = $1 AND expires_ms > $2",
        )
        .bind(hash)
        .bind(crate::now_ms())
        .fetch_optional(self.pool())
        .await?;
        Ok(s.and_then(|(name, role)| Role::parse(&role).map(|role| Who { name, role })))
    }

    /// Add or replace a user.
    pub async fn put_user(&self, name: &str, role: Role, phc: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (name, role, phc, created_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET role = excluded.role, phc = excluded.phc",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(phc)
        .bind(crate::now_ms())
        .execute(self.pool())
        .await?;
        // a changed password or role ends the user's sessions
        sqlx::query("DELETE FROM sessions WHERE user_name = $1")
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// (role, PHC string) of a user.
    pub async fn user(&self, name: &str) -> Result<Option<(Role, String)>, StoreError> {
        let r: Option<(String, String)> =
            sqlx::query_as("SELECT role, phc FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(self.pool())
                .await?;
        Ok(r.and_then(|(role, phc)| Role::parse(&role).map(|r| (r, phc))))
    }

    pub async fn add_session(
        &self,
        hash: &str,
        who: &Who,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (hash, user_name, role, expires_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(hash)
        .bind(who.name.as_str())
        .bind(who.role.as_str())
        .bind(expires_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn end_session(&self, hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE hash = $1")
            .bind(hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn audit(&self, actor: &str, action: &str, detail: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO audit (at_ms, actor, action, detail) VALUES ($1, $2, $3, $4)")
            .bind(crate::now_ms())
            .bind(actor)
            .bind(action)
            .bind(detail)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT at_ms, actor, action, detail FROM audit ORDER BY at_ms DESC, id DESC LIMIT $1",
        )
        .bind(limit.clamp(1, 10_000))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    at_ms: r.try_get(0)?,
                    actor: r.try_get(1)?,
                    action: r.try_get(2)?,
                    detail: r.try_get(3)?,
                })
            })
            .collect()
    }
}
