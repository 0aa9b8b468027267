//! Socket Mode: for installs without a public URL, Slack's requests arrive over a WebSocket
//! that Klaxon opens (`apps.connections.open` with the app-level `xapp-` token). Each envelope
//! is handled as its HTTP twin is (`inbound`) and acknowledged by its `envelope_id`, with a
//! payload where Slack takes one (a form's errors). When Slack warns that it will close the
//! connection, Klaxon opens the next one first; when a connection drops, it reconnects with a
//! growing pause. Slack resends what was not acknowledged, and the jobs' keys make that
//! harmless.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::api::SlackApi;
use super::inbound::{self, Answer, SlackInbound};

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Ws = WebSocketStream<Box<dyn Io>>;

pub struct SocketMode {
    /// Calls `apps.connections.open` with the app-level token.
    pub api: SlackApi,
    pub inbound: SlackInbound,
}

enum Ended {
    Shutdown,
    /// Reconnect, with the next connection if it is open already.
    Reconnect(Option<Box<Ws>>),
    /// Slack turned Socket Mode off for this app.
    Disabled,
}

/// Opens a WebSocket to `url`: TLS (with the web's root certificates) for `wss://`, plain
/// for `ws://` (tests).
async fn open(url: &str) -> Result<Ws, String> {
    let uri: tokio_tungstenite::tungstenite::http::Uri = url
        .parse()
        .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("`{url}` has no host"))?
        .to_string();
    let tls = uri.scheme_str() == Some("wss");
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot reach {host}:{port}: {e}"))?;
    let stream: Box<dyn Io> = if tls {
        let roots = tokio_rustls::rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {host}: {e}"))?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let (ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .map_err(|e| format!("WebSocket with {host}: {e}"))?;
    Ok(ws)
}

impl SocketMode {
    /// Runs until `shutdown`, reconnecting as Slack asks and as connections drop.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failures: u32 = 0;
        let mut next: Option<Box<Ws>> = None;
        loop {
            let ws = match next.take() {
                Some(ws) => Ok(*ws),
                None => self.connect().await,
            };
            let ws = match ws {
                Ok(ws) => ws,
                Err(e) => {
                    failures += 1;
                    let pause = Duration::from_secs(u64::from(failures.min(6)).pow(2));
                    tracing::warn!(error = %e, ?pause, "Slack Socket Mode: could not connect; trying again");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(pause) => continue,
                    }
                }
            };
            failures = 0;
            match self.serve(ws, &shutdown).await {
                Ended::Shutdown => return,
                Ended::Reconnect(pre) => next = pre,
                Ended::Disabled => {
                    tracing::error!("Slack disabled Socket Mode for this app: turn it on again in the app's settings, or use [slack] mode = \"http\"");
                    return;
                }
            }
        }
    }

    async fn connect(&self) -> Result<Ws, String> {
        let v = self
            .api
            .call("apps.connections.open", &[])
            .await
            .map_err(|e| crate::ChatError::from(e).to_string())?;
        let url = v["url"]
            .as_str()
            .ok_or("apps.connections.open gave no URL")?;
        open(url).await
    }

    async fn serve(&self, mut ws: Ws, shutdown: &CancellationToken) -> Ended {
        loop {
            let frame = tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = ws.close(None).await;
                    return Ended::Shutdown;
                }
                frame = ws.next() => frame,
            };
            let text = match frame {
                None | Some(Err(_)) | Some(Ok(Frame::Close(_))) => return Ended::Reconnect(None),
                Some(Ok(Frame::Text(t))) => t,
                // Pings are answered by the WebSocket layer.
                Some(Ok(_)) => continue,
            };
            let Ok(v) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            match v["type"].as_str() {
                Some("hello") => {
                    tracing::info!(connections = %v["num_connections"], "Slack Socket Mode connected")
                }
                Some("disconnect") => match v["reason"].as_str() {
                    Some("link_disabled") => return Ended::Disabled,
                    reason => {
                        tracing::info!(
                            ?reason,
                            "Slack will close this Socket Mode connection; opening the next"
                        );
                        // The next connection first, so nothing is missed in between.
                        let next = self.connect().await.ok().map(Box::new);
                        let _ = ws.close(None).await;
                        return Ended::Reconnect(next);
                    }
                },
                _ => {
                    if let Some(ack) = self.handle(&v).await {
                        if ws.send(Frame::Text(ack.to_string().into())).await.is_err() {
                            return Ended::Reconnect(None);
                        }
                    }
                }
            }
        }
    }

    /// Handles an envelope; the acknowledgement to send, if any.
    async fn handle(&self, envelope: &Value) -> Option<Value> {
        let id = envelope["envelope_id"].as_str()?;
        let payload = &envelope["payload"];
        let answer = match envelope["type"].as_str() {
            Some("slash_commands") => {
                let form = payload
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    v.as_str()
                                        .map(String::from)
                                        .unwrap_or_else(|| v.to_string()),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                inbound::command(&self.inbound, form).await
            }
            Some("events_api") => inbound::event(&self.inbound, payload).await,
            Some("interactive") => inbound::interaction(&self.inbound, payload).await,
            _ => Answer::Ok,
        };
        match answer {
            Answer::Ok => Some(json!({ "envelope_id": id })),
            Answer::Json(body) => Some(json!({ "envelope_id": id, "payload": body })),
            // Not acknowledged: Slack sends it again.
            Answer::Refused(_, reason) => {
                tracing::warn!(reason, "a Socket Mode envelope was not acknowledged");
                None
            }
        }
    }
}
