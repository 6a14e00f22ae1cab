//! A Docker token service (the Bearer half of the distribution auth spec) for the test
//! registry: `GET /token?service=…&scope=repository:<name>:<actions>` answers an ES256 JWT the
//! registry verifies against the JWKS it is configured with. With a user set, the request must
//! carry that user's Basic credentials (else 401); without one, anyone gets a token (an
//! anonymous public pull, as Docker Hub grants).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rcgen::{KeyPair, SigningKey};
use serde_json::{Value, json};

/// The issuer and audience the registry is configured to trust.
pub(crate) const ISSUER: &str = "helios-test-issuer";
pub(crate) const SERVICE: &str = "helios-test-registry";
const KEY_ID: &str = "helios-test-key";

#[derive(Debug)]
pub(crate) struct TokenServer {
    pub(crate) addr: SocketAddr,
}

struct State {
    key: KeyPair,
    user: Option<(String, String)>,
}

impl TokenServer {
    /// Starts the service on a free loopback port and writes the JWKS the registry trusts.
    pub(crate) fn start(user: Option<(String, String)>, jwks: &Path) -> Result<Self, String> {
        let key = KeyPair::generate().map_err(|e| format!("rcgen: {e}"))?;
        let point = key.public_key_raw().to_vec();
        // An uncompressed P-256 point: 0x04 || X (32) || Y (32).
        if point.len() != 65 {
            return Err("unexpected public key encoding".into());
        }
        let set = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": KEY_ID,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]});
        std::fs::write(jwks, set.to_string()).map_err(|e| format!("jwks: {e}"))?;
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("addr: {e}"))?;
        let state = Arc::new(State { key, user });
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&state);
                std::thread::spawn(move || {
                    let _ = serve(stream, &state);
                });
            }
        });
        Ok(TokenServer { addr })
    }
}

fn serve(stream: TcpStream, state: &State) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut authorization = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("authorization")
        {
            authorization = Some(value.trim().to_string());
        }
    }
    let (status, body) = answer(&target, authorization.as_deref(), state);
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

fn answer(target: &str, authorization: Option<&str>, state: &State) -> (&'static str, String) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/token" {
        return ("404 Not Found", "{}".into());
    }
    let subject = match (&state.user, authorization) {
        (None, _) => "anonymous".to_string(),
        (Some((user, password)), Some(auth)) => {
            let given = auth
                .strip_prefix("Basic ")
                .and_then(|b| STANDARD.decode(b.trim()).ok())
                .and_then(|b| String::from_utf8(b).ok());
            if given.as_deref() != Some(&format!("{user}:{password}")) {
                return (
                    "401 Unauthorized",
                    r#"{"details":"bad credentials"}"#.into(),
                );
            }
            user.clone()
        }
        (Some(_), None) => {
            return (
                "401 Unauthorized",
                r#"{"details":"credentials required"}"#.into(),
            );
        }
    };
    let mut access = Vec::new();
    for pair in query.split('&') {
        let Some(("scope", value)) = pair.split_once('=') else {
            continue;
        };
        let scope = percent_decode(value);
        for one in scope.split(' ') {
            let mut parts = one.splitn(3, ':');
            if let (Some(kind), Some(name), Some(actions)) =
                (parts.next(), parts.next(), parts.next())
            {
                access.push(json!({
                    "type": kind, "name": name,
                    "actions": actions.split(',').collect::<Vec<_>>(),
                }));
            }
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = json!({
        "iss": ISSUER, "sub": subject, "aud": SERVICE,
        "exp": now + 300, "nbf": now.saturating_sub(10), "iat": now,
        "jti": format!("{now}-{}", access.len()), "access": access,
    });
    match sign(&state.key, &claims) {
        Ok(token) => (
            "200 OK",
            json!({"token": token, "access_token": token, "expires_in": 300}).to_string(),
        ),
        Err(e) => ("500 Internal Server Error", json!({"error": e}).to_string()),
    }
}

fn sign(key: &KeyPair, claims: &Value) -> Result<String, String> {
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": KEY_ID});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let der = key
        .sign(input.as_bytes())
        .map_err(|e| format!("sign: {e}"))?;
    let raw = der_to_raw(&der).ok_or("bad ECDSA signature encoding")?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(raw)))
}

/// An ASN.1 `SEQUENCE { INTEGER r, INTEGER s }` as JWS wants it: r || s, 32 bytes each.
fn der_to_raw(der: &[u8]) -> Option<Vec<u8>> {
    let body = der.strip_prefix(&[0x30])?;
    let (len, mut rest) = (*body.first()? as usize, body.get(1..)?);
    if len != rest.len() {
        return None;
    }
    let mut out = Vec::with_capacity(64);
    for _ in 0..2 {
        if *rest.first()? != 0x02 {
            return None;
        }
        let n = *rest.get(1)? as usize;
        let int = rest.get(2..2 + n)?;
        let int = &int[int.iter().take_while(|b| **b == 0).count()..];
        if int.len() > 32 {
            return None;
        }
        out.extend(std::iter::repeat_n(0u8, 32 - int.len()));
        out.extend_from_slice(int);
        rest = rest.get(2 + n..)?;
    }
    Some(out)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
