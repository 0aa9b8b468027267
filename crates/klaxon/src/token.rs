//! `klaxon token create`: an API token, written straight to the database the configuration
//! names, so that the first token needs no running server.

use klaxon_core::Access;

use crate::config::Loaded;

pub async fn create(loaded: Loaded, name: &str, role: &str) -> anyhow::Result<String> {
    let access = Access::parse(role)
        .ok_or_else(|| anyhow::anyhow!("`{role}` is not a role: use viewer, responder or admin"))?;
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        anyhow::bail!("give the token a name of 1 to 100 characters that says what uses it, such as --name ci");
    }
    let url = loaded.config.database_url();
    let store = klaxon_store::connect(&url).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot open the database {}: {e}",
            klaxon_store::redact(&url)
        )
    })?;
    let (token, hash) = klaxon_server::auth::secret::new_api_token();
    store
        .create_api_token(name, &hash, access, None, klaxon_core::now())
        .await?;
    Ok(token)
}
