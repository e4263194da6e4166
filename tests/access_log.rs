//! The access log as `passgate serve` writes it: one line per request on
//! stdout, formatted by passgate's own writer (`telemetry/access_line.rs`),
//! in the text and JSON formats, every line written out by the time the
//! process has exited, and none when the log filter turns `info` off.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::Instant;

/// A serve config: one public route to `upstream`, the access log on, `format`.
fn config(dir: &Path, upstream: &str, format: &str) -> String {
    let d = dir.display();
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         tls_cert = \"{d}/cert.pem\"\ntls_key = \"{d}/key.pem\"\ndev_certificate = true\n\
         workers = 1\nshutdown_timeout = \"2s\"\n\n\
         [log]\naccess = true\nformat = \"{format}\"\n\n\
         [[routes]]\nprefix = \"/plain/\"\nupstream = \"{upstream}\"\npublic = true\n"
    )
}

/// A running `passgate serve` and what it has written to stdout so far.
struct Serve {
    child: tokio::process::Child,
    stdout: Arc<Mutex<String>>,
    addr: SocketAddr,
    cert_pem: Vec<u8>,
}

impl Serve {
    async fn start(dir: &Path, format: &str, rust_log: Option<&str>) -> (Serve, Upstream) {
        let upstream = Upstream::start().await;
        let path = dir.join("passgate.toml");
        std::fs::write(&path, config(dir, &upstream.url, format)).unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_passgate"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&path)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(filter) = rust_log {
            cmd.env("RUST_LOG", filter);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let gathered = Arc::clone(&stdout);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut all = gathered.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        // The bound address, from the line that says where it listens (in
        // either format).
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let said = stdout.lock().unwrap().clone();
            if let Some(addr) = said
                .split("passgate listening on https://")
                .nth(1)
                .and_then(|rest| {
                    rest.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                        .next()
                })
            {
                break addr.parse().unwrap();
            }
            assert!(Instant::now() < deadline, "passgate never listened: {said}");
            assert!(
                child.try_wait().unwrap().is_none(),
                "passgate exited: {said}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let cert_pem = std::fs::read(dir.join("cert.pem")).unwrap();
        let serve = Serve {
            child,
            stdout,
            addr,
            cert_pem,
        };
        (serve, upstream)
    }

    fn client(&self, proto: Proto) -> TestClient {
        TestClient::new(self.addr, &self.cert_pem, proto)
    }

    /// Stop with SIGTERM, wait for the exit, and return the access lines.
    async fn stop(mut self, format: &str) -> Vec<String> {
        let pid = self.child.id().unwrap().to_string();
        let term = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(term.success());
        let exit = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("passgate serve did not exit")
            .unwrap();
        assert!(exit.success(), "{exit:?}");
        // The reader task sees the pipe's end shortly after the exit.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let all = self.stdout.lock().unwrap().clone();
        let marker = match format {
            "json" => "\"target\":\"passgate::access\"",
            _ => " passgate::access: ",
        };
        all.lines()
            .filter(|l| l.contains(marker))
            .map(str::to_owned)
            .collect()
    }
}

/// Requests over both protocols; each sends its own request id (one with a
/// quote and a backslash in it), so that its line can be found.
async fn send_requests(serve: &Serve) -> Vec<(String, u16)> {
    let mut sent = Vec::new();
    for proto in BOTH {
        let c = serve.client(proto);
        for (path, id, status) in [
            ("/plain/items?page=2", format!("ok-{proto:?}"), 200),
            ("/nowhere", format!("missing-{proto:?}"), 404),
            ("/plain/x", format!("odd\"id\\{proto:?}"), 200),
        ] {
            let r = c.get_with(path, &[("x-request-id", &id)]).await;
            assert_eq!(r.status.as_u16(), status, "{path}");
            assert_eq!(r.header("x-request-id"), Some(id.as_str()));
            sent.push((id, status));
        }
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_lines_name_each_request_and_are_all_written_by_exit() {
    let dir = tempfile::tempdir().unwrap();
    let (serve, upstream) = Serve::start(dir.path(), "text", None).await;
    let sent = send_requests(&serve).await;
    let lines = serve.stop("text").await;
    assert_eq!(lines.len(), sent.len(), "{lines:#?}");
    for (id, status) in &sent {
        // The id as `Debug` quotes it: `"odd\"id\\H1"`.
        let quoted = format!("request_id={id:?} ");
        let line = lines
            .iter()
            .find(|l| l.contains(&quoted))
            .unwrap_or_else(|| panic!("no line with {quoted}: {lines:#?}"));
        assert!(line.contains(&format!(" status={status} ")), "{line}");
        assert!(line.contains(" method=GET "), "{line}");
        assert!(line.contains(" client=127.0.0.1"), "{line}");
        let (stamp, rest) = line.split_once(' ').unwrap();
        assert_eq!(stamp.len(), "2026-12-01T03:04:05.123456Z".len(), "{line}");
        assert!(
            rest.starts_with(" INFO passgate::access: request_id="),
            "{line}"
        );
        let ms = line
            .split(" duration_ms=")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|v| v.parse::<f64>().ok());
        assert!(ms.is_some_and(|ms| ms >= 0.0), "{line}");
        match status {
            200 => {
                assert!(line.contains(" route=\"/plain/\" "), "{line}");
                let up = format!(" upstream=\"{}\" ", upstream.url);
                assert!(line.contains(&up), "{line}");
                assert!(line.contains(" fault=\"-\" "), "{line}");
            }
            _ => assert!(line.contains(" fault=\"client\" "), "{line}"),
        }
    }
    assert!(lines.iter().any(|l| l.contains(" path=/plain/items ")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_are_json_objects_with_the_same_fields() {
    let dir = tempfile::tempdir().unwrap();
    let (serve, _upstream) = Serve::start(dir.path(), "json", None).await;
    let sent = send_requests(&serve).await;
    let lines = serve.stop("json").await;
    assert_eq!(lines.len(), sent.len(), "{lines:#?}");
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for (id, status) in &sent {
        let line = parsed
            .iter()
            .find(|l| l["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no line for {id}: {lines:#?}"));
        assert_eq!(line["status"], *status);
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["method"], "GET");
        assert_eq!(line["client"], "127.0.0.1");
        assert!(line["duration_ms"].as_f64().is_some(), "{line}");
        assert_eq!(line["trace_id"].as_str().map(str::len), Some(32), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_filter_turns_the_access_log_off_and_on() {
    // Both filters keep the `info` line that says where passgate listens.
    for (filter, logged) in [
        ("info,passgate::access=warn", false),
        ("warn,passgate=info", true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (serve, _upstream) = Serve::start(dir.path(), "text", Some(filter)).await;
        let sent = send_requests(&serve).await;
        let lines = serve.stop("text").await;
        let want = if logged { sent.len() } else { 0 };
        assert_eq!(lines.len(), want, "RUST_LOG={filter}: {lines:#?}");
    }
}
