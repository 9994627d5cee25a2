//! A real SMTP server for the email tests: `tests/smtp_server.py` (aiosmtpd; `pip install
//! aiosmtpd`, which `tests/run.sh` does), writing each message it receives, parsed by
//! Python's email package, as JSON.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::io::{BufRead, BufReader};

/// A running SMTP server.
pub struct Smtp {
    /// `smtp://127.0.0.1:PORT`.
    pub url: String,
    dir: tempfile::TempDir,
    child: Child,
}

/// One message received, as the server parsed it.
#[derive(Debug, Clone)]
pub struct Received(pub serde_json::Value);

impl Received {
    /// The envelope's recipients.
    pub fn rcpt_tos(&self) -> Vec<String> {
        self.0["rcpt_tos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect()
    }

    /// A header's decoded value.
    pub fn header(&self, name: &str) -> Option<String> {
        self.0["headers"][name].as_str().map(str::to_owned)
    }

    /// The decoded body of the leaf part of `content_type`, its lines ended by `\n`
    /// (MIME's are `\r\n`).
    pub fn part(&self, content_type: &str) -> Option<String> {
        self.0["parts"]
            .as_array()?
            .iter()
            .find(|p| p["content_type"] == content_type)
            .and_then(|p| p["body"].as_str().map(|b| b.replace("\r\n", "\n")))
    }

    /// The message as sent.
    pub fn raw(&self) -> &str {
        self.0["raw"].as_str().unwrap_or_default()
    }
}

impl Smtp {
    /// A new server; a recipient containing `refuse` is refused at RCPT (550).
    pub fn start(refuse: Option<&str>) -> Smtp {
        match refuse {
            Some(refuse) => Smtp::launch(&["--refuse", refuse]),
            None => Smtp::launch(&[]),
        }
    }

    /// A new server that answers a recipient containing `defer` with a 451 (try again
    /// later).
    pub fn deferring(defer: &str) -> Smtp {
        Smtp::launch(&["--defer", defer])
    }

    /// A new server with `args`.
    fn launch(args: &[&str]) -> Smtp {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("python3");
        command
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/smtp_server.py"))
            .args(["--port", &port.to_string()])
            .arg("--out")
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .args(args);
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start tests/smtp_server.py ({e}): pip install aiosmtpd (tests/run.sh does)"
            )
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "tests/smtp_server.py did not start: pip install aiosmtpd (tests/run.sh does)"
        );
        Smtp {
            url: format!("smtp://127.0.0.1:{port}"),
            dir,
            child,
        }
    }

    /// Every message received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| Received(serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()))
            .collect()
    }

    /// Wait up to `within` for at least `count` messages; all received then.
    pub fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let received = self.received();
            if received.len() >= count || Instant::now() > deadline {
                return received;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        super::kill_tree(&mut self.child);
    }
}
