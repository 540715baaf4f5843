//! A minimal W3C WebDriver client for the browser tests: starts `chromedriver` on a free port,
//! opens one headless Chromium session, and offers the handful of commands the tests use
//! (navigate, find, click, type, text, run a script, wait for a condition, screenshot).
//!
//! Why not a crate: the few JSON calls below are all the tests need, and they keep the test
//! binary free of a large async WebDriver stack. Every wait is a bounded poll: a condition that
//! never becomes true fails the test with the last value seen, never hangs it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

/// The W3C key of an element reference in WebDriver JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(100);

/// Where Chromium and chromedriver live (Debian packages `chromium`, `chromium-driver`);
/// `CHROME_BIN` / `CHROMEDRIVER` override.
fn binaries() -> (String, String) {
    let chrome = std::env::var("CHROME_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let driver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    (chrome, driver)
}

/// True when both binaries exist (the browser tests say how to install them otherwise).
pub fn available() -> bool {
    let (chrome, driver) = binaries();
    std::path::Path::new(&chrome).exists() && std::path::Path::new(&driver).exists()
}

/// A running chromedriver; killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start(http: &reqwest::Client) -> Result<Driver> {
        let (_, driver) = binaries();
        // A free port: bind port 0, read it, release it for chromedriver.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {driver} (install the chromium-driver package)"))?;
        let mut d = Driver { child, url: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(res) = http.get(format!("{}/status", d.url)).send().await
                && let Ok(v) = res.json::<Value>().await
                && v["value"]["ready"] == true
            {
                return Ok(d);
            }
            if let Some(status) = d.child.try_wait()? {
                bail!("chromedriver exited with {status} before it was ready");
            }
            if Instant::now() > deadline {
                bail!("chromedriver on port {port} was not ready within 20 s");
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A throwaway Chromium profile directory, removed when dropped.
struct Profile(PathBuf);

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A found element.
#[derive(Debug, Clone)]
pub struct Element {
    id: String,
}

/// One headless Chromium session. Call [`Browser::close`] at the end; dropping it still kills
/// chromedriver (and with it Chromium).
pub struct Browser {
    http: reqwest::Client,
    session_url: String,
    // Field order matters on drop: the profile outlives nothing, the driver goes last.
    _profile: Profile,
    _driver: Driver,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a `width`×`height` window.
    pub async fn launch(width: u32, height: u32) -> Result<Browser> {
        bench_shared::tls::install_crypto_provider();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        let driver = Driver::start(&http).await?;
        let profile = Profile(std::env::temp_dir().join(format!("bench-chromium-{}", uuid::Uuid::new_v4())));
        std::fs::create_dir_all(&profile.0)?;
        let (chrome, _) = binaries();
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.0.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chrome, "args": args},
        }}});
        let res: Value = http.post(format!("{}/session", driver.url)).json(&caps).send().await?.json().await?;
        let session = res["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("chromedriver did not create a session: {res}"))?
            .to_owned();
        Ok(Browser {
            http,
            session_url: format!("{}/session/{session}", driver.url),
            _profile: profile,
            _driver: driver,
        })
    }

    /// One WebDriver command; returns its `value`, or the WebDriver error as an `Err`.
    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.session_url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.with_context(|| format!("{method} {path}"))?;
        let status = res.status();
        let v: Value = res.json().await.with_context(|| format!("{method} {path}: no JSON"))?;
        if !status.is_success() {
            bail!("{method} {path}: {} {}", v["value"]["error"], v["value"]["message"]);
        }
        Ok(v["value"].clone())
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await.map(|_| ())
    }

    /// The first element matching a CSS selector.
    pub async fn find(&self, css: &str) -> Result<Element> {
        let v =
            self.cmd(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await?;
        let id = v[ELEMENT_KEY].as_str().ok_or_else(|| anyhow!("no element id for {css}: {v}"))?;
        Ok(Element { id: id.to_owned() })
    }

    pub async fn click(&self, el: &Element) -> Result<()> {
        self.cmd(reqwest::Method::POST, &format!("/element/{}/click", el.id), Some(json!({}))).await.map(|_| ())
    }

    /// Clears an input and types `text` into it.
    pub async fn fill(&self, el: &Element, text: &str) -> Result<()> {
        self.cmd(reqwest::Method::POST, &format!("/element/{}/clear", el.id), Some(json!({}))).await?;
        self.cmd(reqwest::Method::POST, &format!("/element/{}/value", el.id), Some(json!({"text": text})))
            .await
            .map(|_| ())
    }

    /// The rendered (visible) text of an element.
    pub async fn text(&self, el: &Element) -> Result<String> {
        let v = self.cmd(reqwest::Method::GET, &format!("/element/{}/text", el.id), None).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns its result.
    pub async fn script(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.cmd(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    /// Polls `script` until it returns something other than null/false, within `timeout`.
    /// On timeout the error carries `what` and the page's state from `describe` (a script).
    pub async fn wait_for(&self, what: &str, script: &str, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.script(script, vec![]).await?;
            if !(v.is_null() || v == Value::Bool(false)) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                let body = self.script("return document.body ? document.body.innerText : ''", vec![]).await?;
                let text: String = body.as_str().unwrap_or_default().chars().take(3000).collect();
                bail!("timed out after {timeout:?} waiting for {what}; page text:\n{text}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Accepts the open `confirm()` / `alert()` dialog, waiting for it within `timeout`.
    pub async fn accept_alert(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.cmd(reqwest::Method::POST, "/alert/accept", Some(json!({}))).await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e.context("no dialog to accept")),
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await?;
        base64_decode(v.as_str().ok_or_else(|| anyhow!("screenshot is not a string"))?)
    }

    /// Ends the session (Chromium exits); chromedriver is killed on drop.
    pub async fn close(self) -> Result<()> {
        self.cmd(reqwest::Method::DELETE, "", None).await.map(|_| ())
    }
}

/// Standard base64 (RFC 4648, with padding) as WebDriver sends screenshots.
pub fn base64_decode(s: &str) -> Result<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some((c - b'A') as u32),
            b'a'..=b'z' => Some((c - b'a') as u32 + 26),
            b'0'..=b'9' => Some((c - b'0') as u32 + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let clean: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let data = clean.strip_suffix(b"==").or_else(|| clean.strip_suffix(b"=")).unwrap_or(&clean);
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in data {
        acc = (acc << 6) | val(c).ok_or_else(|| anyhow!("invalid base64 byte {c}"))?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[test]
fn base64_decodes_padding_variants() {
    assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
    assert_eq!(base64_decode("aGVsbG8h").unwrap(), b"hello!");
    assert_eq!(base64_decode("aGk=\n").unwrap(), b"hi");
    assert_eq!(base64_decode("YQ==").unwrap(), b"a");
    assert!(base64_decode("a$==").is_err());
}
