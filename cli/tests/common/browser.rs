//! Headless Chromium through its WebDriver (Debian's `chromium` and `chromium-driver`,
//! which `tests/run.sh` installs), for the dashboard's tests and benchmark.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use super::free_port;

/// A browser session, and the chromedriver behind it: both stopped when dropped, also
/// when the test fails (Chromium with every helper it started).
pub struct Browser {
    pub client: Client,
    driver: Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        okr_webhooks_tests::kill_tree(&mut self.driver);
    }
}

/// A headless Chromium, `width` pixels wide, that cannot resolve any host but
/// 127.0.0.1 (so a request elsewhere fails, and shows in the page's resource list).
pub async fn chromium(width: u32, height: u32) -> Browser {
    let port = free_port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian's chromium-driver; tests/run.sh installs it)");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{url}/status")).await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let capabilities = json!({
        "goog:chromeOptions": {
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                format!("--window-size={width},{height}"),
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            ]
        }
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&url)
        .await
        .expect("a Chromium session");
    Browser { client, driver }
}

/// Size the window to a phone's width (390 px) and assert nothing on the page is wider.
pub async fn assert_fits_a_phone(client: &Client) {
    client.set_window_size(390, 844).await.unwrap();
    let fits = client
        .execute(
            "return [window.innerWidth, document.documentElement.scrollWidth];",
            vec![],
        )
        .await
        .unwrap();
    let [inner, scroll]: [u64; 2] = serde_json::from_value(fits).unwrap();
    assert!(
        scroll <= inner,
        "{scroll} px of content in a {inner} px window"
    );
}
