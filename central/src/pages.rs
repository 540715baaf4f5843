//! Browser pages and their static assets.
//!
//! Every page is an askama template that renders only the page shell (navigation, forms, empty
//! containers); the data comes from the JSON API and the browser WebSocket in plain JS under
//! `static/js/`. That way the pages never show anything the API cannot reproduce, and generated
//! text (untrusted) only ever reaches the DOM through `textContent` in the scripts.
//!
//! Static files (CSS, JS, the vendored uPlot chart library) are embedded in the binary with
//! `rust-embed` so central works offline from a single executable: fleets often have no internet,
//! which is why the original's CDN-loaded libraries were dropped.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Extension, Path};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

/// Content-Security-Policy of every page: scripts only from our own origin (no inline scripts),
/// so even a rendering bug cannot execute text that an engine generated. Inline *styles* stay
/// allowed because uPlot sizes its canvas through the style attribute.
const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                        img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
                        frame-ancestors 'none'; form-action 'self'";

/// The files under the workspace's `static/` directory, embedded at compile time.
#[derive(RustEmbed)]
#[folder = "../static/"]
struct Assets;

/// Which navigation entry is highlighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NavItem {
    Race,
    History,
    Sweep,
    Capacity,
    Machines,
    Leaderboard,
    Image,
    Speech,
    Compute,
}

impl NavItem {
    /// Stable name used by the templates (`{% if nav.is("race") %}`).
    pub fn is(&self, name: &str) -> bool {
        let own = match self {
            NavItem::Race => "race",
            NavItem::History => "history",
            NavItem::Sweep => "sweep",
            NavItem::Capacity => "capacity",
            NavItem::Machines => "machines",
            NavItem::Leaderboard => "leaderboard",
            NavItem::Image => "image",
            NavItem::Speech => "speech",
            NavItem::Compute => "compute",
        };
        own == name
    }
}

/// `/`: pick a model and a prompt, race every machine, compare.
#[derive(Template, WebTemplate)]
#[template(path = "race.html")]
pub struct RacePage {
    pub nav: NavItem,
    /// The request came with a browser session: the page offers "Log out".
    pub session: bool,
    pub version: &'static str,
    pub sample_prompts: &'static [SamplePrompt],
}

/// `/history`: stored runs, re-rendered from `results/runs/<run_id>/`.
#[derive(Template, WebTemplate)]
#[template(path = "history.html")]
pub struct HistoryPage {
    pub nav: NavItem,
    /// The request came with a browser session: the page offers "Log out".
    pub session: bool,
    pub version: &'static str,
}

/// `/machines`: each machine's status, engine, models and hardware.
#[derive(Template, WebTemplate)]
#[template(path = "machines.html")]
pub struct MachinesPage {
    pub nav: NavItem,
    /// The request came with a browser session: the page offers "Log out".
    pub session: bool,
    pub version: &'static str,
}

/// `/sweep`: the LLMBench context × parallelism sweep across machines.
#[derive(Template, WebTemplate)]
#[template(path = "sweep.html")]
pub struct SweepPage {
    pub nav: NavItem,
    /// The request came with a browser session: the page offers "Log out".
    pub session: bool,
    pub version: &'static str,
}

/// `/capacity`: the fleet capacity race (`llm_capacity` on every machine, same seeded schedule).
#[derive(Template, WebTemplate)]
#[template(path = "capacity.html")]
pub struct CapacityPage {
    pub nav: NavItem,
    /// The request came with a browser session: the page offers "Log out".
    pub session: bool,
    pub version: &'static str,
}

/// `/leaderboard`: machines ranked over every complete run (`GET /api/leaderboard`).
#[derive(Template, WebTemplate)]
#[template(path = "leaderboard.html")]
pub struct LeaderboardPage {
    pub nav: NavItem,
    /// The request came with a browser session: the page offers "Log out".
    pub session: bool,
    pub version: &'static str,
}

/// `/image`, `/speech`, `/compute`: the other races (one page, three modes).
#[derive(Template, WebTemplate)]
#[template(path = "workload.html")]
pub struct WorkloadPage {
    pub nav: NavItem,
    /// The request came with a browser session: the page offers "Log out".
    pub session: bool,
    pub version: &'static str,
    pub title: &'static str,
    pub mode: &'static str,
}

/// A prompt offered by the race page's "sample" buttons.
#[derive(Debug)]
pub struct SamplePrompt {
    pub title: &'static str,
    pub text: &'static str,
}

/// Prompts of different output lengths, so a user can see decode speed (long answers) and
/// time to first token (short answers) without typing.
pub const SAMPLE_PROMPTS: &[SamplePrompt] = &[
    SamplePrompt { title: "Short answer", text: "What is the capital of France? Answer in one sentence." },
    SamplePrompt { title: "Explain", text: "Explain how a hash map works to a new programmer, with a small example." },
    SamplePrompt {
        title: "Story",
        text: "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    },
    SamplePrompt { title: "List", text: "List ten practical tips for writing readable code, one line each." },
];

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The page routes and `/static/{*path}`. They need no state: the pages fetch their data from the API.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(race_page))
        .route("/history", get(history_page))
        .route("/machines", get(machines_page))
        .route("/sweep", get(sweep_page))
        .route("/capacity", get(capacity_page))
        .route("/leaderboard", get(leaderboard_page))
        .route("/image", get(|l: Login| workload_page(l, NavItem::Image, "Image race", "image")))
        .route("/speech", get(|l: Login| workload_page(l, NavItem::Speech, "Speech race", "speech")))
        .route("/compute", get(|l: Login| workload_page(l, NavItem::Compute, "Compute race", "compute")))
        .route("/static/{*path}", get(static_file))
}

/// Set on requests a browser session let through.
type Login = Option<Extension<crate::auth::LoggedIn>>;

/// Whether the request came with a browser session (set by [`crate::auth::require`]).
fn session(login: Option<Extension<crate::auth::LoggedIn>>) -> bool {
    login.is_some()
}

async fn workload_page(
    login: Option<Extension<crate::auth::LoggedIn>>,
    nav: NavItem,
    title: &'static str,
    mode: &'static str,
) -> Response {
    with_page_headers(WorkloadPage { nav, session: session(login), version: VERSION, title, mode })
}

async fn race_page(login: Option<Extension<crate::auth::LoggedIn>>) -> Response {
    let session = session(login);
    with_page_headers(RacePage { nav: NavItem::Race, session, version: VERSION, sample_prompts: SAMPLE_PROMPTS })
}

async fn history_page(login: Option<Extension<crate::auth::LoggedIn>>) -> Response {
    with_page_headers(HistoryPage { nav: NavItem::History, session: session(login), version: VERSION })
}

async fn machines_page(login: Option<Extension<crate::auth::LoggedIn>>) -> Response {
    with_page_headers(MachinesPage { nav: NavItem::Machines, session: session(login), version: VERSION })
}

async fn sweep_page(login: Option<Extension<crate::auth::LoggedIn>>) -> Response {
    with_page_headers(SweepPage { nav: NavItem::Sweep, session: session(login), version: VERSION })
}

async fn leaderboard_page(login: Option<Extension<crate::auth::LoggedIn>>) -> Response {
    with_page_headers(LeaderboardPage { nav: NavItem::Leaderboard, session: session(login), version: VERSION })
}

async fn capacity_page(login: Option<Extension<crate::auth::LoggedIn>>) -> Response {
    with_page_headers(CapacityPage { nav: NavItem::Capacity, session: session(login), version: VERSION })
}

/// A page with its security headers (CSP, nosniff, no referrer).
pub fn with_page_headers(page: impl IntoResponse) -> Response {
    let mut res = page.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res
}

/// Serves an embedded file with its content type and an ETag (its SHA-256), answering 304 when
/// the browser already has it. `no-cache` makes browsers revalidate, so a rebuilt binary never
/// serves stale scripts.
async fn static_file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let Some(file) = Assets::get(&path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()));
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut res = file.data.into_owned().into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&path)));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    res
}

/// The content type for the kinds of files `static/` holds (a short list: nothing else is served).
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => "text/plain; charset=utf-8",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get_path(path: &str, etag: Option<&str>) -> Response {
        let mut req = Request::get(path);
        if let Some(e) = etag {
            req = req.header(header::IF_NONE_MATCH, e);
        }
        router::<()>().oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
    }

    async fn body_text(res: Response) -> String {
        let bytes = axum::body::to_bytes(res.into_body(), 4 << 20).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn pages_render_with_csp_and_local_assets_only() {
        for (path, marker) in [
            ("/", "id=\"run-form\""),
            ("/history", "id=\"runs-list\""),
            ("/machines", "id=\"machines\""),
            ("/sweep", "id=\"sweep-form\""),
            ("/leaderboard", "id=\"board\""),
        ] {
            let res = get_path(path, None).await;
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            assert!(res.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("script-src 'self'"));
            let html = body_text(res).await;
            assert!(html.contains(marker), "{path} lacks {marker}");
            assert!(!html.contains("http://") && !html.contains("https://"), "{path} loads something remote");
            assert!(!html.contains("<script>"), "{path} has an inline script");
        }
    }

    #[tokio::test]
    async fn static_files_have_content_types_and_etags() {
        let res = get_path("/static/vendor/uplot/uPlot.iife.min.js", None).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        let etag = res.headers()[header::ETAG].to_str().unwrap().to_owned();
        assert!(body_text(res).await.contains("uPlot"));
        let again = get_path("/static/vendor/uplot/uPlot.iife.min.js", Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

        let css = get_path("/static/css/app.css", None).await;
        assert_eq!(css.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");
        assert_eq!(get_path("/static/nope.js", None).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(get_path("/static/../Cargo.toml", None).await.status(), StatusCode::NOT_FOUND);
    }

    /// Every script and stylesheet a page references is served (a typo would break a page silently).
    #[tokio::test]
    async fn every_asset_a_page_references_is_served() {
        for page in ["/", "/history", "/machines", "/sweep", "/leaderboard"] {
            let html = body_text(get_path(page, None).await).await;
            let refs: Vec<&str> = html.split(['"', '?']).filter(|s| s.starts_with("/static/")).collect();
            assert!(refs.len() >= 4, "{page} references {refs:?}");
            for r in refs {
                assert_eq!(get_path(r, None).await.status(), StatusCode::OK, "{page} references missing {r}");
            }
        }
    }

    /// Generated text and labels are untrusted: our scripts never parse strings as HTML.
    #[test]
    fn scripts_never_write_html_strings() {
        for path in Assets::iter().filter(|p| p.starts_with("js/")) {
            let text = String::from_utf8(Assets::get(&path).unwrap().data.into_owned()).unwrap();
            for sink in [".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "eval("] {
                assert!(!text.contains(sink), "{path} uses {sink}");
            }
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("a/b.JS"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("LICENSE"), "text/plain; charset=utf-8");
    }
}
