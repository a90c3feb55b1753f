//! SMTP servers that keep what they receive as `NNN.eml` files: the demo's
//! capture ([`SmtpCapture`], in process) and, for the tests, aiosmtpd
//! ([`Aiosmtpd`], `tests/smtp_capture.py` from the test venv).
//!
//! Hand-written on purpose: the SMTP-server crate (mailin-embedded) needs
//! rustls with its default aws-lc backend, a C build this workspace avoids.
//! It speaks the subset a client needs to deliver plain-text SMTP (RFC 5321:
//! EHLO/HELO, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT); the
//! tests use aiosmtpd, a full implementation, for everything else.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The longest line accepted (RFC 5321 allows 1000 octets with CRLF).
const MAX_LINE: usize = 4096;
/// The largest message accepted, advertised with SIZE.
const MAX_MESSAGE: usize = 10 * 1024 * 1024;

/// A running capture; stops when dropped.
pub struct SmtpCapture {
    pub port: u16,
    pub dir: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpCapture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpCapture {
    /// Listens on a free loopback port, writing messages into `dir`.
    pub async fn start(dir: &Path) -> std::io::Result<SmtpCapture> {
        std::fs::create_dir_all(dir)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let count = Arc::new(AtomicUsize::new(0));
        let folder = dir.to_path_buf();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (folder, count) = (folder.clone(), count.clone());
                // A client that misbehaves only ends its own session.
                tokio::spawn(async move {
                    let _ = session(stream, &folder, &count).await;
                });
            }
        });
        Ok(SmtpCapture { port, dir: dir.to_path_buf(), task })
    }

    /// The messages received so far, oldest first.
    pub fn messages(&self) -> Vec<PathBuf> {
        eml_files(&self.dir)
    }
}

/// The `.eml` files in `dir`, oldest (lowest number) first.
pub fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths
}

/// aiosmtpd, a full SMTP server implementation, run from the test venv
/// (`scripts/setup-test-tools`); killed when dropped.
pub struct Aiosmtpd {
    child: std::process::Child,
    pub port: u16,
    dir: PathBuf,
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Aiosmtpd {
    /// Starts `tests/smtp_capture.py DIR ARGS…` (ARGS: `[PORT]
    /// [--kill-on N --pid-file FILE]`, see the script) and waits for its port.
    pub fn start(dir: &Path, args: &[&str]) -> Aiosmtpd {
        use std::io::BufRead;
        let python = std::env::var("CONVEYOR_TEST_PYTHON").unwrap_or_else(|_| {
            format!("{}/.cache/conveyor-venv/bin/python", std::env::var("HOME").unwrap_or_default())
        });
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../smtp_capture.py");
        let mut child = std::process::Command::new(&python)
            .arg(&script)
            .arg(dir)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {python} (run scripts/setup-test-tools): {e}")
            });
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("smtp_capture prints its port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("smtp_capture printed {line:?} (is aiosmtpd installed?)"));
        Aiosmtpd { child, port, dir: dir.to_path_buf() }
    }

    /// The messages received so far, in order, as text.
    pub fn messages(&self) -> Vec<String> {
        eml_files(&self.dir)
            .iter()
            .map(|p| std::fs::read_to_string(p).expect("a whole .eml"))
            .collect()
    }
}

async fn session(stream: TcpStream, folder: &Path, count: &AtomicUsize) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 conveyor-demo ESMTP capture ready\r\n").await?;
    let mut recipients = 0usize;
    let mut sender = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        if read_line(&mut lines, &mut line).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let verb = text.trim_end().split(' ').next().unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-conveyor-demo\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n",
            "HELO" => b"250 conveyor-demo\r\n",
            "MAIL" => {
                sender = true;
                recipients = 0;
                b"250 OK\r\n"
            }
            "RCPT" if sender => {
                recipients += 1;
                b"250 OK\r\n"
            }
            "RCPT" => b"503 MAIL first\r\n",
            "DATA" if recipients == 0 => b"503 RCPT first\r\n",
            "DATA" => {
                write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let message = read_data(&mut lines).await?;
                let reply = match message {
                    Some(m) => {
                        store(folder, count, &m)?;
                        &b"250 OK message accepted\r\n"[..]
                    }
                    None => b"552 message too large\r\n",
                };
                sender = false;
                recipients = 0;
                reply
            }
            "RSET" => {
                sender = false;
                recipients = 0;
                b"250 OK\r\n"
            }
            "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// One line, CRLF included; a line past [`MAX_LINE`] ends the session.
async fn read_line(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    out: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let n = reader.read_until(b'\n', out).await?;
    if out.len() > MAX_LINE {
        return Err(std::io::Error::other("line too long"));
    }
    Ok(n)
}

/// The message up to the lone `.` line, dot-unstuffed; `None` when larger
/// than [`MAX_MESSAGE`] (read to the end anyway, so the session continues).
async fn read_data(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut message = Vec::new();
    let mut too_large = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        if read_line(reader, &mut line).await? == 0 {
            return Err(std::io::Error::other("connection closed inside DATA"));
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok((!too_large).then_some(message));
        }
        let content = line.strip_prefix(b".").unwrap_or(&line);
        if message.len() + content.len() > MAX_MESSAGE {
            too_large = true;
        } else {
            message.extend_from_slice(content);
        }
    }
}

/// Writes `NNN.eml` whole (a temporary name, then a rename).
fn store(folder: &Path, count: &AtomicUsize, message: &[u8]) -> std::io::Result<()> {
    let n = count.fetch_add(1, Ordering::SeqCst) + 1;
    let path = folder.join(format!("{n:03}.eml"));
    let tmp = path.with_extension("eml.tmp");
    std::fs::write(&tmp, message)?;
    std::fs::rename(&tmp, &path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn expect(stream: &mut TcpStream, code: &str) -> String {
        let mut buf = vec![0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(text.starts_with(code), "wanted {code}, got {text:?}");
        text
    }

    #[tokio::test]
    async fn smtp_capture_stores_each_message_dot_unstuffed_and_enforces_order() {
        let dir = tempfile::tempdir().unwrap();
        let capture = SmtpCapture::start(dir.path()).await.unwrap();
        let mut s = TcpStream::connect(("127.0.0.1", capture.port)).await.unwrap();
        expect(&mut s, "220").await;
        for (send, code) in [
            ("EHLO client\r\n", "250-"),
            ("DATA\r\n", "503"),
            ("RCPT TO:<a@example.com>\r\n", "503"),
            ("MAIL FROM:<c@example.com>\r\n", "250"),
            ("RCPT TO:<a@example.com>\r\n", "250"),
            ("DATA\r\n", "354"),
            ("Subject: hi\r\n\r\n..leading dot\r\nlast\r\n.\r\n", "250"),
            ("STARTTLS\r\n", "502"),
            ("QUIT\r\n", "221"),
        ] {
            s.write_all(send.as_bytes()).await.unwrap();
            expect(&mut s, code).await;
        }
        let messages = capture.messages();
        assert_eq!(messages.len(), 1);
        let text = std::fs::read_to_string(&messages[0]).unwrap();
        assert_eq!(text, "Subject: hi\r\n\r\n.leading dot\r\nlast\r\n");
    }
}
