//! Central's security and resource bounds: the token (Bearer or the `/login` session cookie),
//! the Host / Origin / Content-Type guards, the body limit, the browser WebSocket cap and pings,
//! and an agent that refuses central's token.

use std::time::Instant;

use bench_central::config::CentralConfig;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::support::*;

fn secured(token: Option<&str>) -> CentralConfig {
    CentralConfig { auth_token: token.map(str::to_owned), ..CentralConfig::default() }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn spawn(central: CentralConfig) -> TestCentral {
    // An agent nobody runs: these tests are about central's own front door.
    let machines = vec![machine("nowhere", "http://127.0.0.1:9")];
    TestCentral::spawn_secured(machines, temp_results_dir(), test_settings(), central).await
}

/// Opens `/api/ws` with extra headers; the HTTP status of a refusal, or the socket.
type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_open(central: &TestCentral, headers: &[(&str, &str)]) -> Result<Ws, (u16, String)> {
    let mut req = format!("ws://{}/api/ws", central.addr).into_client_request().unwrap();
    for (k, v) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        req.headers_mut().insert(name, v.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).to_string();
            Err((resp.status().as_u16(), body))
        }
        Err(e) => panic!("WebSocket connect failed: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_guards_api_pages_and_websocket_and_login_sets_a_session() {
    let central = spawn(secured(Some("tok"))).await;
    let http = no_redirects();
    let url = |p: &str| central.url(p);

    let health = http.get(url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200, "/health stays open");

    let resp = http.get(url("/api/machines")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("Authorization: Bearer"), "{body}");
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let ok = http.get(url("/api/machines")).header("authorization", format!("{scheme} tok")).send().await.unwrap();
        assert_eq!(ok.status(), 200, "scheme {scheme}");
    }

    let page = http.get(url("/history?x=1")).send().await.unwrap();
    assert_eq!(page.status(), 303, "pages redirect to the login page");
    assert_eq!(page.headers()["location"], "/login?next=/history%3Fx%3D1");

    let login = http.get(url("/login?next=/history")).send().await.unwrap();
    assert_eq!(login.status(), 200);
    let csp = login.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("form-action 'self'"), "{csp}");
    let html = login.text().await.unwrap();
    assert!(html.contains("id=\"login-form\"") && html.contains("value=\"/history\""), "{html}");
    assert!(!html.contains("<script"), "the login page runs no script");

    let form = |token: &str, next: &str| {
        http.post(url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}&next={next}"))
    };
    let wrong = form("nope", "/history").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    assert!(wrong.text().await.unwrap().contains("Wrong token"));

    let right = form("tok", "/history").send().await.unwrap();
    assert_eq!(right.status(), 303);
    assert_eq!(right.headers()["location"], "/history");
    let cookie = right.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();

    let with_cookie = http.get(url("/api/machines")).header("cookie", &session).send().await.unwrap();
    assert_eq!(with_cookie.status(), 200);
    assert_eq!(http.get(url("/history")).header("cookie", &session).send().await.unwrap().status(), 200);
    let forged = http.get(url("/api/machines")).header("cookie", "bench_session=00").send().await.unwrap();
    assert_eq!(forged.status(), 401);

    let open_redirect = form("tok", "//evil.example/").send().await.unwrap();
    assert_eq!(open_redirect.headers()["location"], "/", "no open redirect");

    assert_eq!(ws_open(&central, &[]).await.err().map(|e| e.0), Some(401), "the live feed needs the token");
    let mut ws = ws_open(&central, &[("cookie", &session)]).await.expect("the session opens the live feed");
    let hello = tokio::time::timeout(WAIT_LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("\"hello\""));
    let mut ws = ws_open(&central, &[("authorization", "Bearer tok")]).await.expect("so does the token");
    let _ = ws.close(None).await;
    central.stop().await;
}

/// Table: each bad request to central is a 4xx whose JSON `error` names the problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_4xx_naming_the_problem() {
    let central = spawn(CentralConfig {
        allowed_hosts: vec!["central.lan".into()],
        allowed_origins: vec!["http://dash.lan:3000".into()],
        ..secured(Some("tok"))
    })
    .await;
    let http = no_redirects();
    let run = json!({"model": "mock-llm", "prompt": "hi", "max_tokens": 4}).to_string();
    let auth = ("authorization", "Bearer tok");
    let json_ct = ("content-type", "application/json");
    type Case<'a> = (&'a str, reqwest::Method, &'a str, Vec<(&'a str, &'a str)>, String, u16, &'a str);
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;
    let cases: Vec<Case> = vec![
        ("no token", get.clone(), "/api/runs", vec![], String::new(), 401, "Authorization"),
        (
            "wrong token",
            get.clone(),
            "/api/runs",
            vec![("authorization", "Bearer x")],
            String::new(),
            401,
            "credentials",
        ),
        ("basic auth", get.clone(), "/api/runs", vec![("authorization", "Basic dG9r")], String::new(), 401, "Bearer"),
        ("token in query", get.clone(), "/api/runs?token=tok", vec![], String::new(), 401, "Authorization"),
        ("compare without token", get.clone(), "/api/compare?b=x", vec![], String::new(), 401, "Authorization"),
        ("compare with token", get.clone(), "/api/compare?b=x", vec![auth], String::new(), 400, "a: required"),
        ("no content type", post.clone(), "/api/runs", vec![auth], run.clone(), 415, "Content-Type"),
        (
            "text/plain",
            post.clone(),
            "/api/runs",
            vec![auth, ("content-type", "text/plain")],
            run.clone(),
            415,
            "application/json",
        ),
        (
            "form on the API",
            post.clone(),
            "/api/runs",
            vec![auth, ("content-type", "application/x-www-form-urlencoded")],
            run.clone(),
            415,
            "Content-Type",
        ),
        ("JSON login", post.clone(), "/login", vec![json_ct], "{}".into(), 415, "Content-Type"),
        ("malformed JSON", post.clone(), "/api/runs", vec![auth, json_ct], "{nope".into(), 400, "body"),
        ("foreign Host", get.clone(), "/health", vec![("host", "evil.example")], String::new(), 403, "allowed_hosts"),
        (
            "rebound Host with token",
            get.clone(),
            "/api/runs",
            vec![auth, ("host", "evil.example:8080")],
            String::new(),
            403,
            "Host",
        ),
        ("PUT a run", reqwest::Method::PUT, "/api/runs", vec![auth, json_ct], run.clone(), 405, "not allowed"),
        ("DELETE machines", reqwest::Method::DELETE, "/api/machines", vec![auth], String::new(), 405, "not allowed"),
        ("POST health", post.clone(), "/health", vec![json_ct], "{}".into(), 405, "not allowed"),
        ("unknown API route", get.clone(), "/api/nope", vec![auth], String::new(), 404, "no route"),
        ("bad run id", get.clone(), "/api/runs/..%2Fetc", vec![auth], String::new(), 400, "run_id"),
        ("limit not a number", get.clone(), "/api/runs?limit=many", vec![auth], String::new(), 400, "limit"),
        ("limit too large", get.clone(), "/api/runs?limit=100000", vec![auth], String::new(), 400, "0 to 500"),
        (
            "unknown run",
            get.clone(),
            "/api/runs/2026-01-01_000000_abcdef",
            vec![auth],
            String::new(),
            404,
            "2026-01-01_000000_abcdef",
        ),
    ];
    // A body over the limit is refused on its declared length, before it is read.
    let (status, answer) = bench_agent::testkit::raw_http::post_declared_only(
        central.addr,
        "/api/runs",
        &["Authorization: Bearer tok"],
        bench_central::api::BODY_LIMIT_BYTES + 1024 * 1024,
    )
    .await;
    let error = answer["error"].as_str().unwrap_or_default();
    assert_eq!(status, 413, "{answer}");
    let limit = format!("{} bytes", bench_central::api::BODY_LIMIT_BYTES);
    assert!(error.contains(&limit), "body over the limit: {error:?}");
    let n = cases.len() + 1;
    for (name, method, path, headers, body, want, names) in cases {
        let mut req = http.request(method, central.url(path)).body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let json: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, want, "{name}: {json}");
        let error = json["error"].as_str().unwrap_or_else(|| panic!("{name}: no JSON error: {json}"));
        assert!(error.contains(names), "{name}: {error:?} does not name {names:?}");
    }
    // WebSocket Origin: foreign and null refused, own and listed accepted.
    let own = format!("http://{}", central.addr);
    for (origin, want) in
        [("http://evil.example", Some(403)), ("null", Some(403)), (own.as_str(), None), ("http://dash.lan:3000", None)]
    {
        let got = ws_open(&central, &[auth, ("origin", origin)]).await;
        match (&got, want) {
            (Err((status, body)), Some(w)) => {
                assert_eq!(*status, w, "{origin}: {body}");
                assert!(body.contains("Origin"), "{origin}: {body}");
            }
            (Ok(_), None) => {}
            (Err(e), None) => panic!("{origin} refused: {e:?}"),
            (Ok(_), Some(_)) => panic!("{origin} accepted"),
        }
    }
    assert!(n + 2 >= 22, "{n} cases");
    let runs = central.client.get(central.url("/api/runs")).bearer_auth("tok").send().await.unwrap();
    let runs: Value = runs.json().await.unwrap();
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(0), "nothing refused was started: {runs}");
    central.stop().await;
}

/// Beyond `ws_max_subscribers` the browser socket is refused with 503 naming the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_websocket_cap_answers_503() {
    let central = spawn(CentralConfig { ws_max_subscribers: 2, ..CentralConfig::default() }).await;
    let a = ws_open(&central, &[]).await.expect("first");
    let b = ws_open(&central, &[]).await.expect("second");
    let (status, body) = ws_open(&central, &[]).await.expect_err("a third is refused");
    assert_eq!(status, 503);
    assert!(body.contains("cap of 2"), "{body}");
    drop((a, b));
    central.stop().await;
}

/// Central pings browsers; one that never answers is closed after two missed pongs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_that_answers_no_ping_is_dropped() {
    let central = spawn(CentralConfig::default()).await;
    // A pinged client that answers: tungstenite replies to pings while it reads.
    let mut live = ws_open(&central, &[]).await.unwrap();
    let mut pinged = false;
    let deadline = Instant::now() + WAIT_LIMIT;
    while !pinged && Instant::now() < deadline {
        match tokio::time::timeout(WAIT_LIMIT, live.next()).await.unwrap() {
            Some(Ok(Message::Ping(_))) => pinged = true,
            Some(Ok(_)) => {}
            other => panic!("live socket ended: {other:?}"),
        }
    }
    assert!(pinged, "central pings browser sockets");
    // A raw client that completes the handshake and then never reads or answers.
    let mut raw = tokio::net::TcpStream::connect(central.addr).await.unwrap();
    let handshake = format!(
        "GET /api/ws HTTP/1.1\r\nhost: {}\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        central.addr
    );
    raw.write_all(handshake.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(WAIT_LIMIT, async {
        loop {
            match raw.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the silent client is closed");
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(text.contains("no pong to 2 pings"), "the close frame says why: {text}");
    eprintln!("FIGURE silent browser dropped after {:.1} s (ping every 0.5 s)", started.elapsed().as_secs_f64());
    drop(live);
    central.stop().await;
}

/// An agent that refuses central's token shows as `unauthorized` with the reason, not online.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_refusing_centrals_token_is_unauthorized() {
    let agent = RealAgent::mock_with_token("locked", &["mock-llm"], 5.0, 500.0, Some("agent-secret")).await;
    let mut m = machine("locked", &agent.base_url);
    m.token = Some("wrong".into());
    let central = TestCentral::spawn(vec![m], temp_results_dir()).await;
    let view = central
        .wait_for("machine unauthorized", || async {
            let ms = central.get_json("/api/machines").await;
            let m = ms[0].clone();
            (m["state"] == "unauthorized").then_some(m)
        })
        .await;
    let reason = view["last_error"].as_str().unwrap();
    assert!(reason.contains("agent refused central's token (401)"), "{reason}");
    central.stop().await;
}
