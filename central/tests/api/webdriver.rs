//! The browser tests' WebDriver side, on `fantoccini`: starts `chromedriver` on a free port and
//! opens one headless Chromium session through it. [`Browser`] adds what the tests need on top
//! of fantoccini's client: bounded waits for a page condition (a condition that never becomes
//! true fails the test with the page's text, never hangs it) and a throwaway profile.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use fantoccini::elements::Element;
use fantoccini::{ClientBuilder, Locator};
use serde_json::{Value, json};

/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(100);
/// How long chromedriver may take to start answering.
const DRIVER_START: Duration = Duration::from_secs(20);

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
    async fn start() -> Result<Driver> {
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
        let http = crate::support::http_client();
        let deadline = Instant::now() + DRIVER_START;
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
                bail!("chromedriver on port {port} was not ready within {DRIVER_START:?}");
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

/// One headless Chromium session. Call [`Browser::close`] at the end; dropping it still kills
/// chromedriver (and with it Chromium).
pub struct Browser {
    client: fantoccini::Client,
    // Field order matters on drop: the profile directory goes before the driver.
    _profile: tempfile::TempDir,
    driver: Driver,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a `width`×`height` window.
    pub async fn launch(width: u32, height: u32) -> Result<Browser> {
        Self::launch_with(width, height, &[]).await
    }

    /// [`Browser::launch`] with extra Chromium switches (e.g. a proxy that blocks the network).
    pub async fn launch_with(width: u32, height: u32, extra: &[String]) -> Result<Browser> {
        let driver = Driver::start().await?;
        let profile = tempfile::Builder::new().prefix("bench-chromium-").tempdir()?;
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
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let args: Vec<String> = args.into_iter().chain(extra.iter().cloned()).collect();
        // The performance log carries the DevTools network events of the pages (not of the
        // browser's own background traffic): what a page requested, see `page_requests`.
        let caps = json!({"browserName": "chrome", "goog:chromeOptions": {"binary": chrome, "args": args},
                          "goog:loggingPrefs": {"performance": "ALL"}});
        let caps = caps.as_object().cloned().ok_or_else(|| anyhow!("capabilities are an object"))?;
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .context("chromedriver did not create a session")?;
        Ok(Browser { client, _profile: profile, driver })
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client.goto(url).await.with_context(|| format!("goto {url}"))
    }

    /// The first element matching a CSS selector.
    pub async fn find(&self, css: &str) -> Result<Element> {
        self.client.find(Locator::Css(css)).await.with_context(|| format!("find {css}"))
    }

    pub async fn click(&self, el: &Element) -> Result<()> {
        el.click().await.context("click")
    }

    /// Clears an input and types `text` into it.
    pub async fn fill(&self, el: &Element, text: &str) -> Result<()> {
        el.clear().await.context("clear")?;
        el.send_keys(text).await.context("type")
    }

    /// The rendered (visible) text of an element.
    pub async fn text(&self, el: &Element) -> Result<String> {
        el.text().await.context("element text")
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns its result.
    pub async fn script(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.client.execute(script, args).await.context("execute script")
    }

    /// Polls `script` until it returns something other than null/false, within `timeout`.
    /// On timeout the error carries `what` and the page's text.
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
            match self.client.accept_alert().await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(anyhow!(e).context("no dialog to accept")),
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Every request a page of this session made since the last call, as `(document URL,
    /// requested URL)` (DevTools `Network.requestWillBeSent` events of chromedriver's
    /// performance log), documents included.
    pub async fn page_requests(&self) -> Result<Vec<(String, String)>> {
        let sid = self.client.session_id().await?.context("no session id")?;
        let http = crate::support::http_client();
        let log: Value = http
            .post(format!("{}/session/{sid}/se/log", self.driver.url))
            .json(&json!({"type": "performance"}))
            .send()
            .await?
            .json()
            .await?;
        let entries = log["value"].as_array().with_context(|| format!("performance log: {log}"))?;
        Ok(entries
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e["message"].as_str()?).ok())
            .filter(|m| m["message"]["method"] == "Network.requestWillBeSent")
            .filter_map(|m| {
                let p = &m["message"]["params"];
                Some((p["documentURL"].as_str()?.to_owned(), p["request"]["url"].as_str()?.to_owned()))
            })
            .collect())
    }

    /// The page printed to PDF (W3C print, default paper).
    pub async fn print_pdf(&self) -> Result<Vec<u8>> {
        self.client.print(fantoccini::wd::PrintConfiguration::default()).await.context("print")
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        self.client.screenshot().await.context("screenshot")
    }

    /// Ends the session (Chromium exits); chromedriver is killed on drop.
    pub async fn close(self) -> Result<()> {
        self.client.close().await.context("close the session")
    }
}
