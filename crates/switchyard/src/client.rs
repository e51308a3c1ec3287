//! The HTTP client side of the CLI: how commands reach a running server's REST API.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::Value;

/// Where the server is and how to authenticate; shared by every client command. Global, so
/// that a command's own subcommands take them too, before or after their arguments
/// (`dead-letters B S list --url …` as well as `dead-letters --url … B S list`); given before
/// the command's name, they arrive through [`LeadingClientArgs`].
#[derive(clap::Args, Clone)]
pub(crate) struct ClientArgs {
    /// Base URL of the server.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_URL",
        default_value = "http://127.0.0.1:8700"
    )]
    pub url: String,
    /// File whose first line is an API token, for a server that requires one.
    #[arg(long, global = true, env = "SWITCHYARD_API_TOKEN_FILE")]
    pub api_token_file: Option<PathBuf>,
}

/// The client flags when given before the command's name (`switchyard --url … publish …`):
/// clap hands their values down to that command's own [`ClientArgs`], which shows them in its
/// `--help`. Hidden here, so that commands that are no client (`serve`, `sink`) do not offer
/// them; `main` refuses them there.
#[derive(clap::Args)]
pub(crate) struct LeadingClientArgs {
    #[arg(long, global = true, hide = true)]
    pub url: Option<String>,
    #[arg(long, global = true, hide = true)]
    pub api_token_file: Option<PathBuf>,
}

#[derive(Clone)]
pub(crate) struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl ApiClient {
    pub(crate) fn new(args: &ClientArgs) -> anyhow::Result<ApiClient> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let token = match &args.api_token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let token = text
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.starts_with('#'));
                Some(
                    token
                        .with_context(|| format!("{} holds no token", path.display()))?
                        .to_string(),
                )
            }
            None => None,
        };
        #[expect(
            clippy::disallowed_methods,
            reason = "the operator's client of their own server, not an outbound delivery"
        )]
        let http = reqwest::Client::new();
        Ok(ApiClient {
            http,
            base: base_url(&args.url)?,
            token,
        })
    }

    /// The same client (connections, token) for another node of a cluster.
    pub(crate) fn with_base(&self, url: &str) -> anyhow::Result<ApiClient> {
        Ok(ApiClient {
            base: base_url(url)?,
            ..self.clone()
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path` with the token, if any.
    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Every item of a paged list (`{"items", "next"}`, docs/api.md#lists), page by page.
    pub(crate) async fn list_all(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut after = String::new();
        loop {
            let page = self
                .call(
                    reqwest::Method::GET,
                    &format!("{path}?limit=1000{after}"),
                    None,
                )
                .await?;
            items.extend(page["items"].as_array().into_iter().flatten().cloned());
            match page["next"].as_str() {
                Some(next) => after = format!("&after={next}"),
                None => return Ok(items),
            }
        }
    }

    /// Sends a JSON body (or none) and returns the JSON answer; an API error becomes an error
    /// carrying the server's code and message.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<Value> {
        let response = self.send(method.clone(), path, body).await?;
        let text = response
            .text()
            .await
            .with_context(|| format!("{method} {}: the answer broke off", path_only(path)))?;
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        })
    }

    /// Sends a JSON body (or none) and returns the response if it is a success, for a caller
    /// that reads the body itself (a stream). Every failure, of the connection or of the API,
    /// is told in the one format of the CLI: `METHOD PATH: STATUS CODE: message`.
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut request = self.request(method.clone(), path);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        // The query (a page's cursor, a limit) says nothing about what failed.
        let target = format!("{method} {}", path_only(path));
        let response = request
            .send()
            .await
            .with_context(|| format!("{target}: cannot reach {}", self.base))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        // Not the API's error shape (a proxy's page, say): the status's own words, and the text.
        let code = value["error"]["code"]
            .as_str()
            .or_else(|| status.canonical_reason())
            .unwrap_or("error");
        let message = value["error"]["message"]
            .as_str()
            .map_or_else(|| text.trim().to_string(), str::to_string);
        bail!("{target}: {} {code}: {message}", status.as_u16());
    }
}

fn path_only(path: &str) -> &str {
    path.split_once('?').map_or(path, |(path, _)| path)
}

/// A server's base URL as given, without a trailing `/`; one without a scheme (`127.0.0.1:8700`,
/// which HTTP clients read as a relative URL) is refused with what to write instead.
fn base_url(url: &str) -> anyhow::Result<String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(url.trim_end_matches('/').to_string());
    }
    if url.contains("://") {
        bail!("{url:?} is not an http:// or https:// URL");
    }
    bail!("the server URL {url:?} has no scheme: give http://{url} (or https://{url})")
}
