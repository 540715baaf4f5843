//! Central's token by default and its logins: the token central generates on a fresh start beyond
//! loopback (the binary, as a new user starts it), wrong tokens limited per client address, and
//! sessions that survive a restart until logout.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use bench_central::config::CentralConfig;

use super::support::*;

fn no_redirects() -> reqwest::Client {
    bench_shared::tls::install_crypto_provider();
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Kills the child when dropped, so a failing assertion leaves no central running.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `name=value` part of a response's `Set-Cookie`.
fn cookie_of(resp: &reqwest::Response) -> String {
    let set = resp.headers().get("set-cookie").expect("a Set-Cookie").to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

/// The generated-token path: a fresh central on 0.0.0.0 refuses every unauthenticated request
/// (loopback included) and the printed URL's token opens a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_central_beyond_loopback_generates_a_token_and_the_printed_url_logs_in() {
    let dir = temp_results_dir();
    std::fs::create_dir_all(&*dir).unwrap();
    let cfg = dir.join("machines.yaml");
    std::fs::write(&cfg, "machines:\n  - machine_id: a\n    agent_base_url: http://127.0.0.1:9\n").unwrap();
    let results = dir.join("results");
    let child = Command::new(env!("CARGO_BIN_EXE_bench-central"))
        .args(["--config", cfg.to_str().unwrap(), "--results-dir", results.to_str().unwrap()])
        .args(["--host", "0.0.0.0", "--port", "0"])
        .env_remove("BENCH_CENTRAL_TOKEN")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bench-central");
    let mut child = Reaped(child);
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let mut printed = Vec::new();
    let url = loop {
        let line = lines.next().expect("central logs until the login URL").unwrap();
        printed.push(line.clone());
        if let Some(u) =
            line.split_whitespace().find(|w| w.starts_with("http://127.0.0.1:") && w.contains("/login?token="))
        {
            break u.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let token = url.split("token=").nth(1).unwrap().to_owned();
    let base = url.split("/login").next().unwrap().to_owned();
    let file = results.join("central.token");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token, "kept in the results folder");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let http = no_redirects();
    assert_eq!(http.get(format!("{base}/health")).send().await.unwrap().status(), 200);
    assert_eq!(http.get(format!("{base}/api/machines")).send().await.unwrap().status(), 401, "{printed:#?}");
    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 303, "pages send the browser to the login page");
    let login = http.get(&url).send().await.unwrap();
    assert_eq!((login.status().as_u16(), login.headers()["location"].to_str().unwrap()), (303, "/"));
    let session = cookie_of(&login);
    let machines = http.get(format!("{base}/api/machines")).header("cookie", &session).send().await.unwrap();
    assert_eq!(machines.status(), 200);
    let race = http.get(format!("{base}/")).header("cookie", &session).send().await.unwrap().text().await.unwrap();
    assert!(race.contains("id=\"logout\""), "a logged-in page offers Log out");
    let bearer = http.get(format!("{base}/api/runs")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(bearer.status(), 200);
}

/// Five wrong tokens a minute per address, then 429 with `Retry-After` (for the right token
/// too); sessions survive a restart of central and end at logout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_are_limited_and_sessions_survive_a_restart_until_logout() {
    let results = temp_results_dir();
    let secured = || CentralConfig { auth_token: Some("right".into()), ..CentralConfig::default() };
    let machines = || vec![machine("nowhere", "http://127.0.0.1:9")];
    let central = TestCentral::spawn_secured(machines(), results.clone(), test_settings(), secured()).await;
    let http = no_redirects();
    let form = |token: &str| {
        http.post(central.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}&next=/history"))
    };
    let ok = form("right").send().await.unwrap();
    assert_eq!(ok.status(), 303);
    let session = cookie_of(&ok);
    for i in 0..5 {
        let wrong = if i % 2 == 0 {
            form("guess").send().await.unwrap()
        } else {
            http.get(central.url("/api/runs")).bearer_auth("guess").send().await.unwrap()
        };
        assert_eq!(wrong.status(), 401, "wrong token {i}");
    }
    let limited = form("right").send().await.unwrap();
    assert_eq!(limited.status(), 429, "the 6th try within a minute is refused, right or wrong");
    let wait: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert!(limited.text().await.unwrap().contains("Too many wrong tokens"));
    let api = http.get(central.url("/api/runs")).bearer_auth("right").send().await.unwrap();
    assert_eq!(api.status(), 429);
    assert!(api.headers().contains_key("retry-after"));
    let by_session = http.get(central.url("/api/runs")).header("cookie", &session).send().await.unwrap();
    assert_eq!(by_session.status(), 200, "a session is no guess: it goes on");
    central.stop().await;

    // A new central process on the same results folder: the session is still valid.
    let central = TestCentral::spawn_secured(machines(), results.clone(), test_settings(), secured()).await;
    let after = http.get(central.url("/api/machines")).header("cookie", &session).send().await.unwrap();
    assert_eq!(after.status(), 200, "the session survived the restart");
    let stored = std::fs::read_to_string(results.join("sessions.json")).unwrap();
    assert!(!stored.contains(session.split('=').nth(1).unwrap()), "ids are stored hashed only");
    let out = http
        .post(central.url("/logout"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!((out.status().as_u16(), out.headers()["location"].to_str().unwrap()), (303, "/login"));
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let gone = http.get(central.url("/api/machines")).header("cookie", &session).send().await.unwrap();
    assert_eq!(gone.status(), 401, "logged out");
    central.stop().await;
    let central = TestCentral::spawn_secured(machines(), results, test_settings(), secured()).await;
    let still = http.get(central.url("/api/machines")).header("cookie", &session).send().await.unwrap();
    assert_eq!(still.status(), 401, "a logout survives the restart too");
    central.stop().await;
}
