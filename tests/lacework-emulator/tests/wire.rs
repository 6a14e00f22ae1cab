//! What the emulator answers on the wire, byte for byte (less the `date` header): unknown paths
//! and methods, the admin API's own 404, authentication, and the rate-limit headers. Written
//! against the hand-routed emulator before it moved to axum routes, so the routes keep its answers.

use helios_lacework_emulator::{DEFAULT_KEY_ID, DEFAULT_SECRET, Emulator, Endpoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Sends `method path` with `headers` and `body` over a fresh connection; the whole answer with
/// the `date` header removed.
async fn raw(
    emu: &Emulator,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> TestResult<String> {
    let mut stream = tokio::net::TcpStream::connect(emu.addr()).await?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: emu\r\nconnection: close\r\n");
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer
        .split("\r\n")
        .filter(|l| !l.starts_with("date:"))
        .collect::<Vec<_>>()
        .join("\r\n"))
}

fn not_found(message: &str) -> String {
    let body = format!("{{\"message\":\"{message}\"}}");
    format!(
        "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn emulator() -> TestResult<Emulator> {
    Ok(Emulator::builder().without_default_data().start().await?)
}

async fn token(emu: &Emulator) -> TestResult<String> {
    let answer = raw(
        emu,
        "POST",
        "/api/v2/access/tokens",
        &[&format!("x-lw-uaks: {DEFAULT_SECRET}")],
        &format!("{{\"keyId\":\"{DEFAULT_KEY_ID}\",\"expiryTime\":3600}}"),
    )
    .await?;
    let body = answer.split("\r\n\r\n").nth(1).ok_or("missing")?;
    let v: serde_json::Value = serde_json::from_str(body)?;
    Ok(v["token"].as_str().ok_or("missing")?.to_string())
}

#[tokio::test]
async fn unknown_paths_and_methods_are_404_not_found_and_not_counted() -> TestResult {
    let emu = emulator().await?;
    let cases = [
        ("GET", "/"),
        ("GET", "/nope"),
        ("POST", "/api/v2"),
        ("POST", "/api/v2/access/tokens/"),
        ("GET", "/api/v2/access/tokens"),
        ("PUT", "/api/v2/access/tokens"),
        ("HEAD", "/api/v2/access/tokens"),
        ("GET", "/api/v2/Vulnerabilities/Containers/search"),
        ("DELETE", "/api/v2/Vulnerabilities/Containers/search"),
        ("POST", "/api/v2/Vulnerabilities/Containers/search/abc.1.2"),
        ("HEAD", "/api/v2/Vulnerabilities/Containers/search/abc.1.2"),
        (
            "GET",
            "/api/v2/VulnerabilityObservations/ImageSummary/search",
        ),
        ("GET", "/api/v2/Vulnerabilities/Containers/scan"),
        ("POST", "/api/v2/Vulnerabilities/Containers/scan/abc"),
        ("PATCH", "/api/v2/Vulnerabilities/Containers/scan/abc"),
        ("OPTIONS", "/api/v2/Vulnerabilities/Containers/scan"),
        ("GET", "/__admin"),
        ("GET", "/api/v2/Vulnerabilities/Containers/searchx/1"),
    ];
    for (method, path) in cases {
        let answer = raw(&emu, method, path, &[], "").await?;
        let want = if method == "HEAD" {
            // Same head, no body.
            not_found("Not Found")
                .split("\r\n\r\n")
                .next()
                .ok_or("missing")?
                .to_string()
                + "\r\n\r\n"
        } else {
            not_found("Not Found")
        };
        assert_eq!(answer, want, "{method} {path}");
    }
    assert!(emu.counters().is_empty(), "{:?}", emu.counters());
    Ok(())
}

#[tokio::test]
async fn unknown_admin_calls_are_404_unknown_admin_endpoint() -> TestResult {
    let emu = emulator().await?;
    let cases = [
        ("GET", "/__admin/"),
        ("GET", "/__admin/nope"),
        ("GET", "/__admin/counters/"),
        ("GET", "/__admin/counters/x"),
        ("POST", "/__admin/counters"),
        ("GET", "/__admin/reset"),
        ("PUT", "/__admin/faults"),
        ("GET", "/__admin/faults"),
        ("DELETE", "/__admin/config"),
        ("GET", "/__admin/rows"),
        ("GET", "/__admin/summaries"),
        ("GET", "/__admin/expire-tokens"),
    ];
    for (method, path) in cases {
        let answer = raw(&emu, method, path, &[], "").await?;
        assert_eq!(
            answer,
            not_found("Unknown admin endpoint"),
            "{method} {path}"
        );
    }
    // HEAD on an admin route: the same head, no body.
    let answer = raw(&emu, "HEAD", "/__admin/counters", &[], "").await?;
    assert!(
        answer.starts_with("HTTP/1.1 404 Not Found\r\n") && answer.ends_with("\r\n\r\n"),
        "{answer}"
    );
    Ok(())
}

#[tokio::test]
async fn admin_answers() -> TestResult {
    let emu = emulator().await?;
    let answer = raw(&emu, "GET", "/__admin/counters", &[], "").await?;
    assert_eq!(
        answer,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
    );
    let answer = raw(&emu, "POST", "/__admin/reset", &[], "").await?;
    assert_eq!(
        answer,
        "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"
    );
    let answer = raw(&emu, "POST", "/__admin/faults", &[], "{").await?;
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"),
        "{answer}"
    );
    let answer = raw(&emu, "POST", "/__admin/rows", &[], "{}").await?;
    assert!(
        answer.ends_with("\r\n\r\n{\"message\":\"expected {\\\"data\\\": [rows]}\"}"),
        "{answer}"
    );
    let answer = raw(&emu, "POST", "/__admin/rows", &[], "[{\"vulnId\": \"x\"}]").await?;
    assert!(answer.ends_with("\r\n\r\n{\"added\":1}"), "{answer}");
    Ok(())
}

#[tokio::test]
async fn api_answers_carry_rate_limit_headers_and_check_tokens() -> TestResult {
    let emu = Emulator::builder()
        .without_default_data()
        .rate_limit(3)
        .start()
        .await?;
    let answer = raw(
        &emu,
        "POST",
        "/api/v2/Vulnerabilities/Containers/search",
        &[],
        "{}",
    )
    .await?;
    let body = "{\"message\":\"Invalid or missing access token\"}";
    assert_eq!(
        answer,
        format!(
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\nratelimit-limit: 3\r\nratelimit-remaining: 2\r\nratelimit-reset: 3600\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    );
    let token = token(&emu).await?;
    let auth = format!("authorization: Bearer {token}");
    let answer = raw(
        &emu,
        "GET",
        "/api/v2/Vulnerabilities/Containers/scan/nope",
        &[&auth],
        "",
    )
    .await?;
    let body = "{\"message\":\"Scan request not found\"}";
    assert_eq!(
        answer,
        format!(
            "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\nratelimit-limit: 3\r\nratelimit-remaining: 0\r\nratelimit-reset: 3600\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    );
    // Past the limit: 429 with Retry-After, before authentication.
    let answer = raw(
        &emu,
        "GET",
        "/api/v2/Vulnerabilities/Containers/search/x.1.2",
        &[],
        "",
    )
    .await?;
    assert!(
        answer.starts_with(
            "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: "
        ),
        "{answer}"
    );
    assert!(
        answer.contains("\r\nratelimit-remaining: 0\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with("{\"message\":\"Rate limit exceeded\"}"),
        "{answer}"
    );
    assert_eq!(emu.count(Endpoint::Tokens), 1);
    assert_eq!(emu.count(Endpoint::Search), 1);
    assert_eq!(emu.count(Endpoint::ScanStatus), 1);
    assert_eq!(emu.count(Endpoint::SearchPage), 1);
    Ok(())
}

#[tokio::test]
async fn page_and_scan_paths_take_any_suffix() -> TestResult {
    let emu = emulator().await?;
    let token = token(&emu).await?;
    let auth = format!("authorization: Bearer {token}");
    let malformed = "{\"message\":\"Malformed page token\"}";
    for path in [
        "/api/v2/Vulnerabilities/Containers/search/",
        "/api/v2/Vulnerabilities/Containers/search/abc",
        "/api/v2/Vulnerabilities/Containers/search/a/b",
        "/api/v2/VulnerabilityObservations/ImageSummary/search/",
        "/api/v2/VulnerabilityObservations/ImageSummary/search/x.y.z",
    ] {
        let answer = raw(&emu, "GET", path, &[&auth], "").await?;
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n") && answer.ends_with(malformed),
            "{path}: {answer}"
        );
    }
    let expired = "{\"message\":\"Unknown or expired page\"}";
    let answer = raw(
        &emu,
        "GET",
        "/api/v2/Vulnerabilities/Containers/search/a/abc.0.1",
        &[&auth],
        "",
    )
    .await?;
    assert!(
        answer.starts_with("HTTP/1.1 404 Not Found\r\n") && answer.ends_with(expired),
        "{answer}"
    );
    for path in [
        "/api/v2/Vulnerabilities/Containers/scan/",
        "/api/v2/Vulnerabilities/Containers/scan/a/b",
    ] {
        let answer = raw(&emu, "GET", path, &[&auth], "").await?;
        assert!(
            answer.starts_with("HTTP/1.1 404 Not Found\r\n")
                && answer.ends_with("{\"message\":\"Scan request not found\"}"),
            "{path}: {answer}"
        );
    }
    assert_eq!(emu.count(Endpoint::SearchPage), 6);
    assert_eq!(emu.count(Endpoint::ScanStatus), 2);
    Ok(())
}

#[tokio::test]
async fn expired_tokens_get_401() -> TestResult {
    let emu = emulator().await?;
    let token = token(&emu).await?;
    emu.expire_tokens();
    let answer = raw(
        &emu,
        "POST",
        "/api/v2/VulnerabilityObservations/ImageSummary/search",
        &[&format!("authorization: Bearer {token}")],
        "{}",
    )
    .await?;
    assert!(
        answer.starts_with("HTTP/1.1 401 Unauthorized\r\n")
            && answer.ends_with("{\"message\":\"Access token expired\"}"),
        "{answer}"
    );
    Ok(())
}
