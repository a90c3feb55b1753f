//! Just enough MIME to read back what aiosmtpd received: unfolded headers,
//! and the text and HTML parts decoded from their transfer encoding
//! (7bit, quoted-printable, base64) — so tests compare what a person sees.

use base64::Engine;

/// A part's headers.
pub(crate) type Headers = Vec<(String, String)>;

/// One received e-mail.
pub(crate) struct Eml {
    pub headers: Vec<(String, String)>,
    pub text: String,
    pub html: Option<String>,
    /// The other parts (an inline image): their headers and decoded bytes.
    pub parts: Vec<(Headers, Vec<u8>)>,
}

impl Eml {
    pub fn parse(raw: &str) -> Eml {
        let (head, body) = raw.split_once("\r\n\r\n").expect("headers and a body");
        let mut eml = Eml {
            headers: headers(head),
            text: String::new(),
            html: None,
            parts: Vec::new(),
        };
        let top = eml.headers.clone();
        eml.walk(&top, body);
        eml
    }

    /// One part, and the parts of a multipart one (nested, as
    /// multipart/related inside multipart/alternative).
    fn walk(&mut self, h: &[(String, String)], body: &str) {
        let ty = header_in(h, "Content-Type").unwrap_or_default();
        match boundary(&ty) {
            Some(b) if ty.starts_with("multipart/") => {
                for part in body.split(&format!("--{b}")).skip(1) {
                    if part.starts_with("--") {
                        break; // the closing boundary; what follows is epilogue
                    }
                    let Some((head, body)) = part.split_once("\r\n\r\n") else {
                        continue;
                    };
                    let h = headers(head.trim_start_matches("\r\n"));
                    let body = body.strip_suffix("\r\n").unwrap_or(body);
                    self.walk(&h, body);
                }
            }
            _ if ty.starts_with("text/html") => self.html = Some(decode(h, body)),
            _ if ty.is_empty() || ty.starts_with("text/plain") => self.text = decode(h, body),
            _ => self.parts.push((h.to_vec(), decode_bytes(h, body))),
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        header_in(&self.headers, name)
    }
}

pub(crate) fn header_in(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// Header lines, folded continuations joined.
fn headers(head: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((n, v)) = line.split_once(':') {
            out.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    // An encoded-word subject (`=?utf-8?b?…?=`) as people read it.
    for (n, v) in &mut out {
        if n.eq_ignore_ascii_case("Subject") {
            *v = encoded_words(v);
        }
    }
    out
}

fn boundary(content_type: &str) -> Option<String> {
    let at = content_type.find("boundary=")?;
    let rest = &content_type[at + "boundary=".len()..];
    let b = rest.split(';').next()?.trim().trim_matches('"');
    Some(b.to_string())
}

fn decode(headers: &[(String, String)], body: &str) -> String {
    String::from_utf8(decode_bytes(headers, body))
        .expect("UTF-8")
        .replace("\r\n", "\n")
}

fn decode_bytes(headers: &[(String, String)], body: &str) -> Vec<u8> {
    let encoding = header_in(headers, "Content-Transfer-Encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "quoted-printable" => quoted_printable(body),
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(body.replace(['\r', '\n'], ""))
            .expect("base64"),
        _ => body.as_bytes().to_vec(),
    };
    bytes
}

fn quoted_printable(body: &str) -> Vec<u8> {
    let joined = body.replace("=\r\n", "");
    let b = joined.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// RFC 2047 words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`) decoded; adjacent
/// words join without the space between them.
fn encoded_words(v: &str) -> String {
    let mut out = String::new();
    let mut last_encoded = false;
    for word in v.split(' ') {
        let lower = word.to_ascii_lowercase();
        let decoded = if lower.starts_with("=?utf-8?b?") && word.ends_with("?=") {
            base64::engine::general_purpose::STANDARD
                .decode(&word[10..word.len() - 2])
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
        } else if lower.starts_with("=?utf-8?q?") && word.ends_with("?=") {
            String::from_utf8(quoted_printable(
                &word[10..word.len() - 2].replace('_', " "),
            ))
            .ok()
        } else {
            None
        };
        let encoded = decoded.is_some();
        if !out.is_empty() && (!encoded || !last_encoded) {
            out.push(' ');
        }
        out.push_str(&decoded.unwrap_or_else(|| word.to_string()));
        last_encoded = encoded;
    }
    out
}

/// The HTML part as the text a reader sees: tags dropped (a block's
/// leaves a space, an inline one like `<b>` nothing), entities decoded,
/// whitespace collapsed.
pub(crate) fn visible_text(html: &str) -> String {
    const INLINE: [&str; 6] = ["b", "i", "em", "strong", "code", "span"];
    let mut text = String::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        let close = rest[open..].find('>').map_or(rest.len(), |c| open + c + 1);
        let tag = rest[open + 1..close.saturating_sub(1)]
            .trim_start_matches('/')
            .split([' ', '>'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if !INLINE.contains(&tag.as_str()) {
            text.push(' ');
        }
        rest = &rest[close..];
    }
    text.push_str(rest);
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&amp;", "&");
    collapse(&text)
}

/// Runs of whitespace as one space.
pub(crate) fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The sentences of a text part: its lines, split after `. `, whitespace
/// collapsed (a table row is one "sentence").
pub(crate) fn sentences(text: &str) -> Vec<String> {
    text.lines()
        .flat_map(|l| l.split(". ").map(collapse).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect()
}
