//! The HTTP toolkit of Helios's three clients — OPA's Data API ([`crate::policy::OpaEvaluator`]),
//! the Lacework API ([`crate::scan::lacework::LaceworkClient`]) and OCI registries
//! ([`crate::registry::Resolver`]) — written once:
//!
//! - **redaction**: [`Secret`] holds every credential (OPA token, Lacework API secret and access
//!   token, registry password) and never prints it; [`sensitive_header`] marks it for the HTTP
//!   layers; [`redact_url`] shows a URL by its origin only;
//! - **transport errors**: [`describe`] turns a `reqwest` error into a reason a person can act on
//!   (connection refused, TLS handshake, DNS, timeout, a body cut off), without the request URL;
//! - **bodies**: [`read_body`] reads a response up to a size cap, and [`excerpt`] bounds any
//!   service text that goes into a message.
//!
//! What stays with each service: its error body (`{"code", "message"}` for OPA, `{"message"}` for
//! Lacework, `{"errors": [{"code"}]}` for registries), which statuses are retried and how, and the
//! hint a message ends with (which flag or variable to check).

use std::fmt;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::HeaderValue;
use serde::Deserialize;

/// A secret value (API secret, access token, bearer token, registry password). `Debug` prints
/// `Secret(***)` and `Display` prints `***`, so a secret cannot leak through a log line, an
/// error message or `{:?}` of a struct that holds it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that must send it (an HTTP header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty (an unset variable or profile key).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_string())
    }
}

/// A header value marked sensitive (so HTTP layers never print it), or `None` when `value` has
/// characters an HTTP header cannot carry.
pub(crate) fn sensitive_header(value: &str) -> Option<HeaderValue> {
    let mut header = HeaderValue::from_str(value).ok()?;
    header.set_sensitive(true);
    Some(header)
}

/// `scheme://host:port` of a URL: enough to find the server, nothing that could be a secret.
pub(crate) fn origin(url: &Url) -> String {
    // `host_str` keeps the brackets of an IPv6 address.
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
        _ => url.scheme().to_string(),
    }
}

/// A URL as shown in messages: its origin when it parses, else a placeholder, so that
/// `https://user:secret@host/?token=…` never reaches a log.
pub(crate) fn redact_url(raw: &str) -> String {
    match Url::parse(raw.trim()) {
        Ok(url) => origin(&url),
        Err(_) => "the given URL".to_string(),
    }
}

/// Why an exchange failed at the transport level, as a reason a person can act on, without the
/// request URL (which may carry a query): `no answer within 5000 ms`, `cannot connect: connection
/// refused`, `cannot connect: TLS handshake failed: …`, `cannot connect: DNS lookup failed: …`,
/// `the answer broke off: …`. `timeout` is the limit the request ran under.
pub(crate) fn describe(err: &reqwest::Error, timeout: Duration) -> String {
    if err.is_timeout() {
        format!("no answer within {} ms", timeout.as_millis())
    } else if err.is_connect() {
        format!("cannot connect: {}", connect_reason(err))
    } else if err.is_body() || err.is_decode() {
        format!("the answer broke off: {}", causes(err))
    } else {
        causes(err)
    }
}

/// The cause of a failed connection, named by the structured errors in the chain where they
/// exist: an I/O error kind (refused, reset, unreachable), a rustls error (the TLS handshake).
/// hyper-util's resolver error is private, so a DNS failure is recognised by its `dns error`
/// text — the one place the chain is read as text, covered by the test below.
fn connect_reason(err: &reqwest::Error) -> String {
    use std::io::ErrorKind;
    for cause in chain(err) {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            let kind = match io.kind() {
                ErrorKind::ConnectionRefused => Some("connection refused"),
                ErrorKind::ConnectionReset => Some("connection reset"),
                ErrorKind::HostUnreachable => Some("host unreachable"),
                ErrorKind::NetworkUnreachable => Some("network unreachable"),
                _ => None,
            };
            if let Some(kind) = kind {
                return kind.to_string();
            }
            if let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                return format!("TLS handshake failed: {tls}");
            }
        }
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return format!("TLS handshake failed: {tls}");
        }
        if cause.to_string().starts_with("dns error") {
            let detail = cause.source().map(ToString::to_string).unwrap_or_default();
            return format!("DNS lookup failed: {detail}")
                .trim_end_matches(": ")
                .to_string();
        }
    }
    causes(err)
}

/// The error and its causes, top to bottom.
fn chain(err: &reqwest::Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(
        Some(err as &(dyn std::error::Error + 'static)),
        |e: &&(dyn std::error::Error + 'static)| e.source(),
    )
}

/// An error's causes joined with `: `, without the `for url (…)` part reqwest adds.
pub(crate) fn causes(err: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in chain(err) {
        let mut text = cause.to_string();
        if let Some(i) = text.find(" for url (") {
            text.truncate(i);
        }
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// The most characters of a service's own text (an error message, a body) a Helios message
/// quotes.
pub(crate) const MAX_EXCERPT_CHARS: usize = 300;

/// `text`, trimmed and cut to [`MAX_EXCERPT_CHARS`] characters, the cut marked with `…`.
pub(crate) fn excerpt(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_EXCERPT_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// [`excerpt`] of a body that may not be UTF-8.
pub(crate) fn body_excerpt(body: &[u8]) -> String {
    excerpt(&String::from_utf8_lossy(body))
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The body announced or sent more than the cap.
    TooLarge(u64),
    /// The transport failed mid-body.
    Read(reqwest::Error),
}

impl BodyError {
    /// The message for a too-large body, naming the cap.
    pub(crate) fn too_large(cap: u64) -> String {
        let cap = if cap >= 1024 * 1024 {
            format!("{} MiB", cap / (1024 * 1024))
        } else {
            format!("{cap} bytes")
        };
        format!("the response is larger than {cap}, the most Helios reads")
    }
}

/// Reads an HTTP response body of at most `cap` bytes: refused at once when its
/// `Content-Length` announces more, and as soon as more arrives otherwise.
pub(crate) async fn read_body(
    mut resp: reqwest::Response,
    cap: u64,
) -> std::result::Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > cap) {
        return Err(BodyError::TooLarge(cap));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Read)? {
        if (body.len() + chunk.len()) as u64 > cap {
            return Err(BodyError::TooLarge(cap));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_their_value() {
        let s = Secret::new("_abc123");
        assert_eq!(format!("{s}"), "***");
        assert!(!format!("{s:?}").contains("abc123"));
        assert_eq!(s.expose(), "_abc123");
        assert!(sensitive_header("a\nb").is_none());
        assert!(sensitive_header("Bearer x").is_some_and(|h| h.is_sensitive()));
    }

    #[test]
    fn urls_show_only_their_origin() {
        assert_eq!(
            redact_url("https://user:hunter2@opa.example/x?token=hunter2"),
            "https://opa.example:443"
        );
        assert_eq!(redact_url("not a url hunter2"), "the given URL");
    }

    #[test]
    fn excerpts_are_bounded() {
        let long = "é".repeat(400);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), MAX_EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(excerpt("  short \n"), "short");
        assert_eq!(
            BodyError::too_large(16 * 1024 * 1024),
            "the response is larger than 16 MiB, the most Helios reads"
        );
    }

    async fn failure(url: &str, timeout: Duration) -> String {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        match client.get(url).send().await {
            Ok(_) => "no error".into(),
            Err(e) => describe(&e, timeout),
        }
    }

    #[tokio::test]
    async fn transport_errors_name_their_cause_without_the_url() -> std::io::Result<()> {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let text = failure(
            &format!("http://127.0.0.1:{port}/x?token=hunter2"),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(text, "cannot connect: connection refused");

        // A listener that accepts and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = silent.local_addr()?.port();
        let text = failure(
            &format!("http://127.0.0.1:{port}/?token=hunter2"),
            Duration::from_millis(200),
        )
        .await;
        assert_eq!(text, "no answer within 200 ms");

        // TLS spoken to a plain listener that closes: the handshake fails.
        let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = plain.local_addr()?.port();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            while let Ok((mut s, _)) = plain.accept().await {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
            }
        });
        let text = failure(
            &format!("https://127.0.0.1:{port}/?token=hunter2"),
            Duration::from_secs(5),
        )
        .await;
        assert!(text.starts_with("cannot connect: "), "{text}");
        assert!(!text.contains("hunter2"), "{text}");

        // A name that cannot resolve (.invalid is reserved, RFC 2606).
        let text = failure(
            "http://helios.invalid/?token=hunter2",
            Duration::from_secs(5),
        )
        .await;
        assert!(
            text.starts_with("cannot connect: DNS lookup failed"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        Ok(())
    }
}
