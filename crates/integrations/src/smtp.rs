//! A small SMTP client (RFC 5321): EHLO, STARTTLS (RFC 3207) or TLS from the start, AUTH PLAIN
//! or LOGIN (RFC 4954), MAIL/RCPT/DATA with dot-stuffing, QUIT. A 4xx reply or a broken
//! connection is worth another attempt; a 5xx reply is permanent (535: the credential).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use klaxon_jobs::JobError;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::config::SmtpConfig;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Conn {
    io: BufReader<Box<dyn Io>>,
    server: String,
}

/// A reply: its code and its lines' text.
#[derive(Debug)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        self.lines.join(" ")
    }
}

fn broken(server: &str, e: impl std::fmt::Display) -> JobError {
    JobError::retry(format!(
        "the SMTP conversation with {server} broke off: {e}"
    ))
}

impl Conn {
    async fn read(&mut self) -> Result<Reply, JobError> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self
                .io
                .read_line(&mut line)
                .await
                .map_err(|e| broken(&self.server, e))?;
            if n == 0 {
                return Err(broken(&self.server, "the server closed the connection"));
            }
            let line = line.trim_end();
            let code: u16 = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| broken(&self.server, format!("not an SMTP reply: {line}")))?;
            lines.push(line.get(4..).unwrap_or_default().to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(Reply { code, lines });
            }
        }
    }

    async fn command(&mut self, line: &str) -> Result<Reply, JobError> {
        self.io
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .map_err(|e| broken(&self.server, e))?;
        self.io
            .get_mut()
            .flush()
            .await
            .map_err(|e| broken(&self.server, e))?;
        self.read().await
    }

    /// The reply, if its code is the expected one; else the error it means.
    async fn expect(&mut self, line: &str, want: u16, what: &str) -> Result<Reply, JobError> {
        let reply = self.command(line).await?;
        check(&self.server, reply, want, what)
    }
}

fn check(server: &str, reply: Reply, want: u16, what: &str) -> Result<Reply, JobError> {
    if reply.code == want || (want == 250 && (200..300).contains(&reply.code)) {
        return Ok(reply);
    }
    let message = format!(
        "the mail server {server} refused {what}: {} {}",
        reply.code,
        reply.text()
    );
    Err(match reply.code {
        400..=499 => JobError::retry(message),
        535 | 530 => JobError::permanent(format!("{message} (check [smtp] username and password)")),
        _ => JobError::permanent(message),
    })
}

/// The certificates in `pem` (none when it is empty), or what is wrong with them.
pub fn extra_roots(
    pem: &str,
) -> Result<Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>>, String> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    if pem.trim().is_empty() {
        return Ok(Vec::new());
    }
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    match certs {
        Ok(c) if !c.is_empty() => Ok(c),
        Ok(_) => Err("holds no certificate: give the CA's certificate in PEM (-----BEGIN CERTIFICATE-----), or its path as tls_ca_file".into()),
        Err(e) => Err(format!(
            "is not PEM certificates ({e:?}): give the CA's certificate in PEM, or its path as tls_ca_file"
        )),
    }
}

fn tls_connector(cfg: &SmtpConfig) -> Result<tokio_rustls::TlsConnector, JobError> {
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let extra =
        extra_roots(&cfg.tls_ca).map_err(|e| JobError::permanent(format!("[smtp] tls_ca {e}")))?;
    for cert in extra {
        roots.add(cert).map_err(|e| {
            JobError::permanent(format!(
                "[smtp] tls_ca holds a certificate that cannot be trusted: {e}"
            ))
        })?;
    }
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("the default TLS versions are supported")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn tls(cfg: &SmtpConfig, io: Box<dyn Io>, server: &str) -> Result<Box<dyn Io>, JobError> {
    let host = &cfg.host;
    let name =
        tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| {
            JobError::permanent(format!(
                "[smtp] host `{host}` is not a name TLS can check: {e}"
            ))
        })?;
    let stream = tls_connector(cfg)?.connect(name, io).await.map_err(|e| {
        // A certificate Klaxon cannot trust stays untrusted however often it tries.
        if e.to_string().contains("certificate") {
            JobError::permanent(format!(
                "the mail server {server} has a TLS certificate Klaxon does not trust ({e}): if it comes from your own CA, give that CA as [smtp] tls_ca_file"
            ))
        } else {
            broken(server, format!("TLS: {e}"))
        }
    })?;
    Ok(Box::new(stream))
}

/// Opens a session: connected, greeted, encrypted as configured, signed in.
async fn open(cfg: &SmtpConfig) -> Result<(Conn, Vec<String>), JobError> {
    let server = format!("{}:{}", cfg.host, cfg.port);
    let tcp = TcpStream::connect((cfg.host.as_str(), cfg.port))
        .await
        .map_err(|e| JobError::retry(format!("could not reach the mail server {server}: {e}")))?;
    let mut io: Box<dyn Io> = Box::new(tcp);
    if cfg.security == "tls" {
        io = tls(cfg, io, &server).await?;
    }
    let mut conn = Conn {
        io: BufReader::new(io),
        server: server.clone(),
    };
    let greeting = conn.read().await?;
    check(&server, greeting, 220, "the connection")?;
    let hello = "EHLO klaxon";
    let mut ehlo = conn.expect(hello, 250, "EHLO").await?;
    if cfg.security == "starttls" {
        let offers = ehlo
            .lines
            .iter()
            .any(|l| l.eq_ignore_ascii_case("STARTTLS"));
        if !offers {
            return Err(JobError::permanent(format!(
                "the mail server {server} does not offer STARTTLS: use [smtp] security = \"tls\" (port 465), or \"plain\" on a trusted network"
            )));
        }
        conn.expect("STARTTLS", 220, "STARTTLS").await?;
        let plain = conn.io.into_inner();
        let io = tls(cfg, plain, &server).await?;
        conn = Conn {
            io: BufReader::new(io),
            server: server.clone(),
        };
        ehlo = conn.expect(hello, 250, "EHLO").await?;
    }
    if !cfg.username.is_empty() {
        let auth = ehlo
            .lines
            .iter()
            .find(|l| l.to_ascii_uppercase().starts_with("AUTH"))
            .map(|l| l.to_ascii_uppercase())
            .unwrap_or_default();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        if auth.contains("PLAIN") {
            let token = b64(&format!("\0{}\0{}", cfg.username, cfg.password));
            conn.expect(&format!("AUTH PLAIN {token}"), 235, "the sign-in")
                .await?;
        } else if auth.contains("LOGIN") {
            conn.expect("AUTH LOGIN", 334, "AUTH LOGIN").await?;
            conn.expect(&b64(&cfg.username), 334, "the username")
                .await?;
            conn.expect(&b64(&cfg.password), 235, "the sign-in").await?;
        } else {
            return Err(JobError::permanent(format!(
                "the mail server {server} offers no sign-in Klaxon speaks (PLAIN or LOGIN){}",
                if cfg.security == "plain" {
                    ": many servers offer it only after STARTTLS"
                } else {
                    ""
                }
            )));
        }
    }
    Ok((conn, ehlo.lines))
}

/// Sends one message to its recipients.
pub async fn send(cfg: &SmtpConfig, from: &str, to: &[String], data: &str) -> Result<(), JobError> {
    let timeout = Duration::from_secs(cfg.timeout_seconds.max(1));
    let server = format!("{}:{}", cfg.host, cfg.port);
    let conversation = async {
        let (mut conn, _) = open(cfg).await?;
        conn.expect(&format!("MAIL FROM:<{from}>"), 250, "the sender")
            .await?;
        for rcpt in to {
            conn.expect(
                &format!("RCPT TO:<{rcpt}>"),
                250,
                &format!("the recipient {rcpt}"),
            )
            .await?;
        }
        conn.expect("DATA", 354, "DATA").await?;
        // Dot-stuffing: a line that starts with a dot gets another.
        let mut body = String::with_capacity(data.len() + 16);
        for line in data.trim_end_matches("\r\n").split("\r\n") {
            if line.starts_with('.') {
                body.push('.');
            }
            body.push_str(line);
            body.push_str("\r\n");
        }
        body.push('.');
        conn.expect(&body, 250, "the message").await?;
        // The message is accepted; a failed QUIT changes nothing.
        let _ = conn.command("QUIT").await;
        Ok(())
    };
    match tokio::time::timeout(timeout, conversation).await {
        Ok(r) => r,
        Err(_) => Err(JobError::retry(format!(
            "the mail server {server} did not finish within {}s",
            timeout.as_secs()
        ))),
    }
}

/// Connects, signs in and says goodbye, for `klaxon integrations test`.
pub async fn check_server(cfg: &SmtpConfig) -> Result<String, JobError> {
    let timeout = Duration::from_secs(cfg.timeout_seconds.max(1));
    let server = format!("{}:{}", cfg.host, cfg.port);
    let run = async {
        let (mut conn, _) = open(cfg).await?;
        let _ = conn.command("QUIT").await;
        Ok::<_, JobError>(())
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r.map(|_| {
            format!(
                "{server} answered ({}{})",
                cfg.security,
                if cfg.username.is_empty() {
                    ""
                } else {
                    ", signed in"
                }
            )
        }),
        Err(_) => Err(JobError::retry(format!(
            "the mail server {server} did not answer within {}s",
            timeout.as_secs()
        ))),
    }
}
