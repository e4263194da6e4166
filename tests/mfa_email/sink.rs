//! A loopback SMTP relay for the e-mail channel's tests: plain, `smtps://`
//! or STARTTLS, with `AUTH PLAIN`; it accepts every message and keeps it.

use std::sync::{Arc, Mutex};

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// How a [`Sink`] speaks: plain SMTP, TLS from the first byte (`smtps://`),
/// or plain SMTP offering STARTTLS.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Implicit,
    StartTls,
}

/// One message the sink accepted.
#[derive(Clone, Debug)]
pub struct Received {
    pub text: String,
    /// It came over TLS.
    pub tls: bool,
    /// The `AUTH PLAIN` login before it, as `user:password`.
    pub login: Option<String>,
}

/// A loopback SMTP server that accepts every message and keeps its text.
#[derive(Clone, Default)]
pub struct Sink(Arc<Mutex<Vec<Received>>>);

impl Sink {
    pub async fn start() -> (Sink, u16) {
        Sink::start_with(Mode::Plain, None).await
    }

    /// A sink speaking `mode`, with `tls` (needed for the TLS modes).
    pub async fn start_with(mode: Mode, tls: Option<TlsAcceptor>) -> (Sink, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sink = Sink::default();
        let kept = sink.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (kept, tls) = (kept.clone(), tls.clone());
                tokio::spawn(async move {
                    let tls = || tls.clone().expect("a TLS mode needs an acceptor");
                    match mode {
                        Mode::Plain => drop(kept.session(tcp, false, true, false).await),
                        Mode::Implicit => {
                            if let Ok(stream) = tls().accept(tcp).await {
                                kept.session(stream, true, true, false).await;
                            }
                        }
                        Mode::StartTls => {
                            let Some(tcp) = kept.session(tcp, false, true, true).await else {
                                return;
                            };
                            // After STARTTLS the client speaks first (EHLO).
                            if let Ok(stream) = tls().accept(tcp).await {
                                kept.session(stream, true, false, false).await;
                            }
                        }
                    }
                });
            }
        });
        (sink, port)
    }

    /// Speak SMTP on `stream` (greeting first when `greet`) until QUIT, or
    /// until the client asks for STARTTLS (offered when `offer_starttls`):
    /// then the stream is handed back for the handshake.
    async fn session<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        tls: bool,
        greet: bool,
        offer_starttls: bool,
    ) -> Option<S> {
        let mut io = BufReader::new(stream);
        if greet {
            io.write_all(b"220 sink ready\r\n").await.ok()?;
        }
        let mut login = None;
        let mut data: Option<String> = None;
        let mut line = String::new();
        loop {
            line.clear();
            if io.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if let Some(text) = data.as_mut() {
                if line == "." {
                    self.0.lock().unwrap().push(Received {
                        text: data.take().unwrap(),
                        tls,
                        login: login.clone(),
                    });
                    io.write_all(b"250 queued\r\n").await.ok()?;
                } else {
                    text.push_str(line);
                    text.push('\n');
                }
                continue;
            }
            let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
            let answer: &[u8] = match verb.as_str() {
                "EHLO" if offer_starttls => b"250-sink\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n",
                "EHLO" => b"250-sink\r\n250 AUTH PLAIN\r\n",
                "HELO" => b"250 sink\r\n",
                "STAR" if offer_starttls => {
                    io.write_all(b"220 go ahead\r\n").await.ok()?;
                    return Some(io.into_inner());
                }
                "AUTH" => {
                    let plain = line.strip_prefix("AUTH PLAIN ").unwrap_or("");
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(plain)
                        .unwrap_or_default();
                    // authzid NUL user NUL password
                    let parts: Vec<_> = bytes.split(|&b| b == 0).collect();
                    login = (parts.len() == 3).then(|| {
                        format!(
                            "{}:{}",
                            String::from_utf8_lossy(parts[1]),
                            String::from_utf8_lossy(parts[2])
                        )
                    });
                    b"235 ok\r\n"
                }
                "DATA" => {
                    data = Some(String::new());
                    b"354 go on\r\n"
                }
                "QUIT" => {
                    let _ = io.write_all(b"221 bye\r\n").await;
                    return None;
                }
                _ => b"250 ok\r\n",
            };
            io.write_all(answer).await.ok()?;
        }
    }

    /// Every message so far.
    pub fn received(&self) -> Vec<Received> {
        self.0.lock().unwrap().clone()
    }

    /// The code of the last message.
    pub fn last_code(&self) -> String {
        let all = self.0.lock().unwrap();
        let text = &all.last().expect("no e-mail arrived").text;
        let at = text.find("code is ").expect("a code in the e-mail") + "code is ".len();
        text[at..at + 6].to_string()
    }

    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}
