//! Is a git bundle intact? The backup workflow writes each repository as a bundle
//! (`git bundle create --all`); this checks one as it streams from storage: the header
//! (signature, capabilities, prerequisites, refs), the pack's header, and the pack's SHA-1
//! trailer against the hash of the pack's bytes. Memory stays at one buffer whatever the size
//! of the bundle, and no more than `max_bytes` (plus one) is ever read.
//!
//! Formats: git's Documentation/gitformat-bundle.txt (v2; v3 with `@key[=value]` capability
//! lines) and Documentation/gitformat-pack.txt (`PACK`, version, object count; the trailer is
//! the checksum of all that precedes it).

use sha1::{Digest, Sha1};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader, Take};

/// A header line longer than this is not a bundle's: refuse it rather than buffer it.
const MAX_LINE: usize = 64 * 1024;
/// The signature is 16 bytes: reading more of a stranger file than this is waste.
const MAX_FIRST_LINE: usize = 256;
/// How much of a line an error shows.
const SHOWN: usize = 80;
/// Refs an error lists before saying how many more there are.
const REFS_SHOWN: usize = 10;
const BUFFER: usize = 64 * 1024;
const SHA1_HEX: usize = 40;
const SHA256_HEX: usize = 64;
/// `PACK`, the version and the object count, 4 bytes each.
const PACK_HEADER: usize = 12;
/// The SHA-1 of everything before it.
const TRAILER: usize = 20;

/// What an intact bundle holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The bundle format: 2 or 3.
    pub version: u8,
    /// `(sha, ref name)` as listed, the sha lowercase hex.
    pub refs: Vec<(String, String)>,
    /// Commits the bundle needs and does not hold (empty for a full `--all` bundle).
    pub prerequisites: Vec<String>,
    /// Objects in the pack, as its header says.
    pub objects: u32,
    /// The pack's size, trailer included.
    pub pack_bytes: u64,
    /// The pack's checksum (its trailer), hex.
    pub pack_sha1: String,
}

/// Why a bundle would not restore, or could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("the bundle is empty (0 bytes): nothing was written, or the upload failed")]
    Empty,
    #[error(
        "not a git bundle: its first line is \"{first_line}\", not \"# v2 git bundle\" or \"# v3 git bundle\""
    )]
    NotABundle { first_line: String },
    #[error("git bundle version {version} is not supported: only v2 and v3 bundles are verified")]
    UnsupportedVersion { version: String },
    #[error(
        "the bundle needs the capability \"@{capability}\" (header line {line}), which is not supported: {why}"
    )]
    UnsupportedCapability {
        line: usize,
        capability: String,
        why: &'static str,
    },
    #[error("header line {line} of the bundle is not a valid {kind} line ({why}): \"{text}\"")]
    MalformedLine {
        line: usize,
        kind: &'static str,
        why: &'static str,
        text: String,
    },
    #[error(
        "the bundle ends in its header (line {line}), before the empty line that starts the pack: the file is truncated"
    )]
    HeaderTruncated { line: usize },
    #[error("the bundle lists no refs: there is nothing to restore")]
    NoRefs,
    #[error("the data after the bundle's header is not a git pack: it starts with \"{found}\", not \"PACK\"")]
    MissingPackSignature { found: String },
    #[error("the bundle's pack is version {version}: git packs are version 2 or 3")]
    UnsupportedPackVersion { version: u32 },
    #[error(
        "the bundle's pack is truncated: {seen} bytes, fewer than the {at_least} of a pack's 12-byte header and 20-byte SHA-1 trailer"
    )]
    PackTruncated { seen: u64, at_least: u64 },
    #[error(
        "the bundle's pack is corrupt or truncated: its SHA-1 trailer says {expected}, but its content ({pack_bytes} bytes with the trailer) hashes to {actual}"
    )]
    ChecksumMismatch {
        expected: String,
        actual: String,
        pack_bytes: u64,
    },
    #[error("the bundle is larger than the bound of {max_bytes} bytes: refused without reading the rest")]
    TooLarge { max_bytes: u64 },
    #[error("reading the bundle failed after {read} bytes: {source}")]
    Io {
        read: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("the expected commit {expected} is not the tip of any ref in the bundle; its refs are: {refs}")]
    CommitNotInRefs { expected: String, refs: String },
    #[error("the expected commit \"{0}\" is not a full 40-hex SHA-1")]
    InvalidExpectedCommit(String),
}

/// Reads a bundle to its end and says whether it is intact: its header well formed, its pack
/// complete and matching its checksum, and, when `expect_commit` is given (40 hex, any case),
/// that commit the tip of one of its refs. Refuses as soon as more than `max_bytes` arrive.
/// A pack cut short and a pack altered both fail the checksum: telling them apart would
/// need inflating every object.
pub async fn verify(
    reader: impl AsyncRead + Unpin,
    max_bytes: u64,
    expect_commit: Option<&str>,
) -> Result<Verified, BundleError> {
    let expected = expected_commit(expect_commit)?;
    let mut input = Input::new(reader, max_bytes);
    let header = read_header(&mut input).await?;
    // The refs are known before the pack: a wrong bundle need not be downloaded whole.
    if let Some(commit) = &expected {
        check_commit(commit, &header.refs)?;
    }
    let pack = read_pack(&mut input).await?;
    Ok(Verified {
        version: header.version,
        refs: header.refs,
        prerequisites: header.prerequisites,
        objects: pack.objects,
        pack_bytes: pack.bytes,
        pack_sha1: pack.sha1,
    })
}

fn expected_commit(commit: Option<&str>) -> Result<Option<String>, BundleError> {
    commit
        .map(|c| match is_hex(c.as_bytes(), SHA1_HEX) {
            true => Ok(c.to_ascii_lowercase()),
            false => Err(BundleError::InvalidExpectedCommit(shown(c.as_bytes()))),
        })
        .transpose()
}

fn check_commit(expected: &str, refs: &[(String, String)]) -> Result<(), BundleError> {
    if refs.iter().any(|(sha, _)| sha == expected) {
        return Ok(());
    }
    let mut listed: Vec<String> = refs
        .iter()
        .take(REFS_SHOWN)
        .map(|(sha, name)| format!("{sha} {name}"))
        .collect();
    if refs.len() > REFS_SHOWN {
        listed.push(format!("and {} more", refs.len() - REFS_SHOWN));
    }
    Err(BundleError::CommitNotInRefs {
        expected: expected.to_string(),
        refs: listed.join(", "),
    })
}

/// The bundle as it arrives, and how much of it was consumed.
struct Input<R> {
    reader: BufReader<Take<R>>,
    consumed: u64,
    max_bytes: u64,
}

/// How a header line ended.
enum End {
    Newline,
    /// The input ended first.
    Eof,
    /// The limit came first.
    TooLong,
}

impl<R: AsyncRead + Unpin> Input<R> {
    fn new(reader: R, max_bytes: u64) -> Self {
        // One byte past the bound tells "over" from "exactly at" without reading further.
        let limited = reader.take(max_bytes.saturating_add(1));
        Self {
            reader: BufReader::with_capacity(BUFFER, limited),
            consumed: 0,
            max_bytes,
        }
    }

    /// One line into `line`, without its newline, at most `limit` bytes read.
    async fn line(&mut self, limit: usize, line: &mut Vec<u8>) -> Result<End, BundleError> {
        line.clear();
        let read = (&mut self.reader)
            .take(limit as u64)
            .read_until(b'\n', line)
            .await;
        let n = read.map_err(|source| io_error(self.consumed, source))?;
        count(&mut self.consumed, self.max_bytes, n)?;
        if line.last() == Some(&b'\n') {
            line.pop();
            return Ok(End::Newline);
        }
        Ok(if n == limit { End::TooLong } else { End::Eof })
    }
}

fn io_error(read: u64, source: std::io::Error) -> BundleError {
    BundleError::Io { read, source }
}

/// Adds what was consumed; refuses as soon as it passes the bound.
fn count(consumed: &mut u64, max_bytes: u64, n: usize) -> Result<(), BundleError> {
    *consumed = consumed.saturating_add(n as u64);
    match *consumed > max_bytes {
        true => Err(BundleError::TooLarge { max_bytes }),
        false => Ok(()),
    }
}

/// The bundle's header.
struct Header {
    version: u8,
    refs: Vec<(String, String)>,
    prerequisites: Vec<String>,
}

async fn read_header<R: AsyncRead + Unpin>(input: &mut Input<R>) -> Result<Header, BundleError> {
    let mut line = Vec::new();
    let mut header = Header {
        version: read_signature(input, &mut line).await?,
        refs: Vec::new(),
        prerequisites: Vec::new(),
    };
    let mut number = 1;
    loop {
        number += 1;
        match input.line(MAX_LINE, &mut line).await? {
            End::Newline if line.is_empty() => break,
            End::Newline => header.take_line(number, &line)?,
            End::Eof => return Err(BundleError::HeaderTruncated { line: number }),
            End::TooLong => return Err(malformed(number, "header", "longer than 64 KiB", &line)),
        }
    }
    match header.refs.is_empty() {
        true => Err(BundleError::NoRefs),
        false => Ok(header),
    }
}

async fn read_signature<R: AsyncRead + Unpin>(
    input: &mut Input<R>,
    line: &mut Vec<u8>,
) -> Result<u8, BundleError> {
    match input.line(MAX_FIRST_LINE, line).await? {
        End::Newline => parse_signature(line),
        End::Eof if line.is_empty() => Err(BundleError::Empty),
        // The file ends inside what could still have been a signature.
        End::Eof if SIGNATURES.iter().any(|s| s.starts_with(line.as_slice())) => {
            Err(BundleError::HeaderTruncated { line: 1 })
        }
        End::Eof | End::TooLong => Err(BundleError::NotABundle {
            first_line: shown(line),
        }),
    }
}

const SIGNATURES: [&[u8]; 2] = [b"# v2 git bundle", b"# v3 git bundle"];

fn parse_signature(line: &[u8]) -> Result<u8, BundleError> {
    match line {
        b"# v2 git bundle" => Ok(2),
        b"# v3 git bundle" => Ok(3),
        _ => {
            let version = line
                .strip_prefix(b"# v")
                .and_then(|rest| rest.strip_suffix(b" git bundle"));
            match version {
                Some(v) if !v.is_empty() && v.iter().all(u8::is_ascii_digit) => {
                    Err(BundleError::UnsupportedVersion { version: shown(v) })
                }
                _ => Err(BundleError::NotABundle {
                    first_line: shown(line),
                }),
            }
        }
    }
}

impl Header {
    /// A capability (v3 only), prerequisite or ref line; `number` counts from the signature.
    fn take_line(&mut self, number: usize, line: &[u8]) -> Result<(), BundleError> {
        // git trims trailing whitespace from header lines before parsing them.
        let line = line.trim_ascii_end();
        match line.split_first() {
            Some((b'@', capability)) if self.version == 3 => check_capability(number, capability),
            Some((b'-', rest)) => {
                self.prerequisites.push(
                    parse_prerequisite(rest).map_err(|why| malformed(number, "prerequisite", why, line))?,
                );
                Ok(())
            }
            _ => {
                self.refs
                    .push(parse_ref(line).map_err(|why| malformed(number, "ref", why, line))?);
                Ok(())
            }
        }
    }
}

fn malformed(line: usize, kind: &'static str, why: &'static str, text: &[u8]) -> BundleError {
    BundleError::MalformedLine {
        line,
        kind,
        why,
        text: shown(text),
    }
}

/// Only `@object-format=sha1` is understood: git itself aborts on capabilities it does not know.
fn check_capability(number: usize, capability: &[u8]) -> Result<(), BundleError> {
    let text = String::from_utf8_lossy(capability);
    let (key, value) = match text.split_once('=') {
        Some((key, value)) => (key, Some(value)),
        None => (text.as_ref(), None),
    };
    let why = match (key, value) {
        ("object-format", Some("sha1")) => return Ok(()),
        ("object-format", Some("sha256")) => {
            "SHA-256 repositories are out of scope: only SHA-1 bundles are verified"
        }
        ("object-format", _) => "an object format git does not define",
        ("filter", _) => {
            "a filtered (partial) bundle leaves objects out, so it is not a full backup: filtered bundles are out of scope"
        }
        _ => "an unknown capability (git itself refuses bundles whose capabilities it does not know)",
    };
    Err(BundleError::UnsupportedCapability {
        line: number,
        capability: shown(capability),
        why,
    })
}

/// `<sha> <comment>` (after the `-`); the comment means nothing and may be absent.
fn parse_prerequisite(rest: &[u8]) -> Result<String, &'static str> {
    let (sha, after) = split_oid(rest)?;
    match after.first() {
        None => Ok(sha),
        Some(c) if c.is_ascii_whitespace() => Ok(sha),
        Some(_) => Err("the object name is not followed by a space"),
    }
}

/// `<sha> <refname>`.
fn parse_ref(line: &[u8]) -> Result<(String, String), &'static str> {
    let (sha, after) = split_oid(line)?;
    let name = match after.split_first() {
        Some((c, name)) if c.is_ascii_whitespace() && !name.is_empty() => name,
        Some((c, _)) if !c.is_ascii_whitespace() => return Err("the object name is not followed by a space"),
        _ => return Err("no ref name after the object name"),
    };
    let name = std::str::from_utf8(name).map_err(|_| "the ref name is not UTF-8")?;
    Ok((sha, name.to_string()))
}

/// The 40-hex object name that starts `text`, lowercase, and what follows it.
fn split_oid(text: &[u8]) -> Result<(String, &[u8]), &'static str> {
    let digits = text.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    match digits {
        SHA1_HEX => {
            let (hex, rest) = text.split_at(SHA1_HEX);
            Ok((String::from_utf8_lossy(hex).to_ascii_lowercase(), rest))
        }
        SHA256_HEX => Err("a 64-hex object name is SHA-256, which is out of scope"),
        _ => Err("it does not start with a 40-hex object name"),
    }
}

fn is_hex(text: &[u8], len: usize) -> bool {
    text.len() == len && text.iter().all(u8::is_ascii_hexdigit)
}

/// `bytes` escaped (a binary file shows as `\x1f\x8b…`), cut at `SHOWN` bytes.
fn shown(bytes: &[u8]) -> String {
    let cut = bytes.len().min(SHOWN);
    let mut text = bytes[..cut].escape_ascii().to_string();
    if cut < bytes.len() {
        text.push('…');
    }
    text
}

/// The pack, checked.
struct PackSummary {
    objects: u32,
    bytes: u64,
    sha1: String,
}

async fn read_pack<R: AsyncRead + Unpin>(input: &mut Input<R>) -> Result<PackSummary, BundleError> {
    let mut pack = Pack::new();
    loop {
        let chunk = match input.reader.fill_buf().await {
            Ok(chunk) => chunk,
            Err(source) => return Err(io_error(input.consumed, source)),
        };
        let n = chunk.len();
        if n == 0 {
            return pack.finish();
        }
        count(&mut input.consumed, input.max_bytes, n)?;
        pack.feed(chunk)?;
        input.reader.consume(n);
    }
}

/// Hashes the pack as it streams, holding back its last 20 bytes: at the end they are the
/// trailer, the SHA-1 of everything before them.
struct Pack {
    hasher: Sha1,
    header: [u8; PACK_HEADER],
    objects: u32,
    tail: [u8; TRAILER],
    tail_len: usize,
    seen: u64,
}

impl Pack {
    fn new() -> Self {
        Self {
            hasher: Sha1::new(),
            header: [0; PACK_HEADER],
            objects: 0,
            tail: [0; TRAILER],
            tail_len: 0,
            seen: 0,
        }
    }

    fn feed(&mut self, chunk: &[u8]) -> Result<(), BundleError> {
        self.take_header(chunk)?;
        self.seen += chunk.len() as u64;
        self.hold_back(chunk);
        Ok(())
    }

    /// Checks the pack's header as soon as it is whole, so a wrong file stops early.
    fn take_header(&mut self, chunk: &[u8]) -> Result<(), BundleError> {
        let have = self.header_len();
        if have == PACK_HEADER {
            return Ok(());
        }
        let n = (PACK_HEADER - have).min(chunk.len());
        self.header[have..have + n].copy_from_slice(&chunk[..n]);
        if have + n == PACK_HEADER {
            self.objects = check_pack_header(&self.header)?;
        }
        Ok(())
    }

    fn header_len(&self) -> usize {
        // At most 12, so the cast cannot truncate.
        self.seen.min(PACK_HEADER as u64) as usize
    }

    /// Hashes all but the last 20 bytes seen so far; keeps those aside.
    fn hold_back(&mut self, chunk: &[u8]) {
        if chunk.len() >= TRAILER {
            let (body, last) = chunk.split_at(chunk.len() - TRAILER);
            self.hasher.update(&self.tail[..self.tail_len]);
            self.hasher.update(body);
            self.tail.copy_from_slice(last);
            self.tail_len = TRAILER;
            return;
        }
        // Fewer than 20 new bytes: as many old ones leave the tail as overflow it.
        let overflow = (self.tail_len + chunk.len()).saturating_sub(TRAILER);
        self.hasher.update(&self.tail[..overflow]);
        self.tail.copy_within(overflow..self.tail_len, 0);
        self.tail_len -= overflow;
        self.tail[self.tail_len..self.tail_len + chunk.len()].copy_from_slice(chunk);
        self.tail_len += chunk.len();
    }

    fn finish(self) -> Result<PackSummary, BundleError> {
        let at_least = (PACK_HEADER + TRAILER) as u64;
        if self.seen < at_least {
            return Err(self.too_short(at_least));
        }
        let expected = hex::encode(self.tail);
        let actual = hex::encode(self.hasher.finalize());
        if expected != actual {
            return Err(BundleError::ChecksumMismatch {
                expected,
                actual,
                pack_bytes: self.seen,
            });
        }
        Ok(PackSummary {
            objects: self.objects,
            bytes: self.seen,
            sha1: expected,
        })
    }

    /// A pack shorter than header and trailer: cut short, unless what came is not a pack at all.
    fn too_short(&self, at_least: u64) -> BundleError {
        let start = &self.header[..self.header_len().min(4)];
        match b"PACK".starts_with(start) {
            true => BundleError::PackTruncated {
                seen: self.seen,
                at_least,
            },
            false => BundleError::MissingPackSignature { found: shown(start) },
        }
    }
}

/// `PACK`, a version git reads (2 or 3), and the object count, all big-endian.
fn check_pack_header(header: &[u8; PACK_HEADER]) -> Result<u32, BundleError> {
    let [p, a, c, k, v0, v1, v2, v3, n0, n1, n2, n3] = *header;
    if [p, a, c, k] != *b"PACK" {
        return Err(BundleError::MissingPackSignature {
            found: shown(&[p, a, c, k]),
        });
    }
    let version = u32::from_be_bytes([v0, v1, v2, v3]);
    if version != 2 && version != 3 {
        return Err(BundleError::UnsupportedPackVersion { version });
    }
    Ok(u32::from_be_bytes([n0, n1, n2, n3]))
}

#[cfg(test)]
mod tests {
    use std::{
        path::{Path, PathBuf},
        pin::Pin,
        process::Command,
        task::{Context, Poll},
    };

    use tokio::io::ReadBuf;

    use super::*;

    const NO_BOUND: u64 = u64::MAX;

    /// A throwaway repository, removed when dropped.
    struct Repo {
        dir: PathBuf,
    }

    impl Repo {
        /// `None` when `git init` refuses the options (an older git without SHA-256).
        fn init(name: &str, options: &[&str]) -> Option<Self> {
            let dir = std::env::temp_dir().join(format!("bw-bundle-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("temp dir");
            let repo = Self { dir };
            let mut args = vec!["-c", "init.defaultBranch=main", "init", "-q"];
            args.extend_from_slice(options);
            repo.try_git(&args).ok()?;
            Some(repo)
        }

        fn try_git(&self, args: &[&str]) -> Result<String, String> {
            let out = Command::new("git")
                .args(args)
                .current_dir(&self.dir)
                // Runs the same anywhere: no user or system configuration, a fixed identity.
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_AUTHOR_NAME", "Drill")
                .env("GIT_AUTHOR_EMAIL", "drill@example.com")
                .env("GIT_COMMITTER_NAME", "Drill")
                .env("GIT_COMMITTER_EMAIL", "drill@example.com")
                .output()
                .expect("run git");
            match out.status.success() {
                true => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
                false => Err(String::from_utf8_lossy(&out.stderr).to_string()),
            }
        }

        fn git(&self, args: &[&str]) -> String {
            self.try_git(args).unwrap_or_else(|e| panic!("git {args:?}: {e}"))
        }

        fn write(&self, file: &str, text: &str) {
            std::fs::write(self.dir.join(file), text).expect("write");
        }

        fn commit(&self, file: &str, text: &str, message: &str) {
            self.write(file, text);
            self.git(&["add", file]);
            self.git(&["commit", "-q", "-m", message]);
        }

        /// History worth a pack of a few tens of KiB: branches, an annotated and a light tag.
        fn with_history(name: &str) -> Self {
            let repo = Self::init(name, &[]).expect("git init");
            repo.populate();
            repo
        }

        fn populate(&self) {
            let text: String = (0..2000)
                .map(|n| format!("line {n} {}\n", n * 7919 % 104729))
                .collect();
            self.commit("a.txt", &text, "first");
            self.git(&["tag", "-a", "v1", "-m", "release 1"]);
            self.commit("a.txt", &format!("{text}more\n"), "second");
            self.git(&["branch", "feature"]);
            self.git(&["tag", "light"]);
            self.commit("b.txt", "b\n", "third");
        }

        /// `git bundle create <options> <file> <revs>`, its bytes.
        fn bundle(&self, name: &str, options: &[&str], revs: &[&str]) -> Vec<u8> {
            let file = self.path(name);
            let mut args = vec!["bundle", "create"];
            args.extend_from_slice(options);
            args.push(file.to_str().expect("utf-8 path"));
            args.extend_from_slice(revs);
            self.git(&args);
            std::fs::read(&file).expect("read bundle")
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.join(name)
        }

        /// `git bundle list-heads`, as (sha, ref name).
        fn list_heads(&self, bundle: &Path) -> Vec<(String, String)> {
            self.git(&["bundle", "list-heads", bundle.to_str().expect("utf-8 path")])
                .lines()
                .map(|l| {
                    let (sha, name) = l.split_once(' ').expect("sha and name");
                    (sha.to_string(), name.to_string())
                })
                .collect()
        }
    }

    impl Drop for Repo {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Where the pack starts: after the first empty line (header lines are never empty).
    fn pack_start(bundle: &[u8]) -> usize {
        bundle
            .windows(2)
            .position(|w| w == b"\n\n")
            .expect("end of header")
            + 2
    }

    /// What follows the data a reader serves.
    #[derive(Clone, Copy)]
    enum After {
        Eof,
        /// Zeros without end.
        Zeros,
        Fail,
    }

    /// Serves `data` at most `step` bytes a read, then `after`; counts what it served.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
        after: After,
        served: u64,
    }

    impl Trickle {
        fn new(data: Vec<u8>, step: usize, after: After) -> Self {
            Self {
                data,
                pos: 0,
                step,
                after,
                served: 0,
            }
        }
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let this = &mut *self;
            let want = buf.remaining().min(this.step);
            if this.pos < this.data.len() {
                let n = want.min(this.data.len() - this.pos);
                buf.put_slice(&this.data[this.pos..this.pos + n]);
                this.pos += n;
                this.served += n as u64;
                return Poll::Ready(Ok(()));
            }
            match this.after {
                After::Eof => {}
                After::Zeros => {
                    let zeros = [0u8; 4096];
                    let n = want.min(zeros.len());
                    buf.put_slice(&zeros[..n]);
                    this.served += n as u64;
                }
                After::Fail => {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "connection reset by peer",
                    )));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    async fn check(bytes: &[u8]) -> Result<Verified, BundleError> {
        verify(bytes, NO_BOUND, None).await
    }

    /// Checks a real `--all` bundle against what git says of it and of its repository.
    async fn verifies_like_git(name: &str, options: &[&str], version: u8) {
        let repo = Repo::with_history(name);
        let bytes = repo.bundle("all.bundle", options, &["--all"]);
        let main = repo.git(&["rev-parse", "main"]);

        let verified = verify(bytes.as_slice(), NO_BOUND, Some(&main))
            .await
            .expect("intact");

        assert_eq!(verified.version, version);
        assert_eq!(verified.refs, repo.list_heads(&repo.path("all.bundle")));
        assert!(
            verified.refs.iter().any(|(_, name)| name == "refs/tags/v1"),
            "{:?}",
            verified.refs
        );
        assert!(verified.prerequisites.is_empty());
        let reachable = repo.git(&["rev-list", "--objects", "--all"]).lines().count();
        assert_eq!(
            verified.objects as usize, reachable,
            "every reachable object is in the pack"
        );
        let start = pack_start(&bytes);
        assert_eq!(verified.pack_bytes, (bytes.len() - start) as u64);
        assert_eq!(verified.pack_sha1, hex::encode(&bytes[bytes.len() - TRAILER..]));
        // git agrees the bundle is sound.
        repo.git(&[
            "bundle",
            "verify",
            "-q",
            repo.path("all.bundle").to_str().expect("utf-8"),
        ]);
    }

    #[tokio::test]
    async fn an_intact_v2_bundle_verifies_with_its_refs_and_objects() {
        verifies_like_git("v2", &[], 2).await;
    }

    #[tokio::test]
    async fn an_intact_v3_bundle_verifies_with_its_refs_and_objects() {
        verifies_like_git("v3", &["--version=3"], 3).await;
    }

    #[tokio::test]
    async fn a_bundle_read_a_few_bytes_at_a_time_verifies_the_same() {
        let repo = Repo::with_history("trickle");
        let bytes = repo.bundle("all.bundle", &[], &["--all"]);
        let whole = check(&bytes).await.expect("intact");
        for step in [1, 7, 19, 20, 21, 4096] {
            let mut reader = Trickle::new(bytes.clone(), step, After::Eof);
            let verified = verify(&mut reader, NO_BOUND, None).await.expect("intact");
            assert_eq!(verified, whole, "{step} bytes a read");
        }
    }

    #[tokio::test]
    async fn an_incremental_bundle_lists_its_prerequisites() {
        let repo = Repo::with_history("incremental");
        let bytes = repo.bundle("tip.bundle", &[], &["main~1..main"]);
        let verified = check(&bytes).await.expect("intact");
        assert_eq!(verified.prerequisites, vec![repo.git(&["rev-parse", "main~1"])]);
        assert_eq!(verified.refs, repo.list_heads(&repo.path("tip.bundle")));
    }

    #[tokio::test]
    async fn an_expected_commit_that_is_a_ref_tip_passes_in_any_case() {
        let repo = Repo::with_history("expect-case");
        let bytes = repo.bundle("all.bundle", &[], &["--all"]);
        let main = repo.git(&["rev-parse", "main"]).to_ascii_uppercase();
        verify(bytes.as_slice(), NO_BOUND, Some(&main))
            .await
            .expect("upper case matches");
    }

    #[tokio::test]
    async fn an_expected_commit_that_is_not_a_ref_tip_is_refused_naming_the_refs() {
        let repo = Repo::with_history("expect");
        let bytes = repo.bundle("all.bundle", &[], &["--all"]);
        let older = repo.git(&["rev-parse", "main~2"]);
        let main = repo.git(&["rev-parse", "main"]);

        let err = verify(bytes.as_slice(), NO_BOUND, Some(&older))
            .await
            .expect_err("not a tip");

        assert!(
            matches!(err, BundleError::CommitNotInRefs { ref expected, .. } if *expected == older),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(&older), "{message}");
        assert!(message.contains(&format!("{main} refs/heads/main")), "{message}");
        assert!(message.contains("refs/tags/v1"), "{message}");
    }

    #[tokio::test]
    async fn an_expected_commit_that_is_not_a_full_sha_is_refused() {
        let repo = Repo::with_history("expect-short");
        let bytes = repo.bundle("all.bundle", &[], &["--all"]);
        let short = repo.git(&["rev-parse", "--short", "main"]);
        let err = verify(bytes.as_slice(), NO_BOUND, Some(&short))
            .await
            .expect_err("short sha");
        assert!(matches!(err, BundleError::InvalidExpectedCommit(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_bundle_cut_in_the_pack_is_refused() {
        let repo = Repo::with_history("cut-pack");
        let bytes = repo.bundle("all.bundle", &[], &["--all"]);
        let start = pack_start(&bytes);

        for (cut, seen) in [(start, 0), (start + 10, 10), (start + 31, 31)] {
            let err = check(&bytes[..cut]).await.expect_err("cut in the pack header");
            assert!(
                matches!(err, BundleError::PackTruncated { seen: s, at_least: 32 } if s == seen),
                "{err:?}"
            );
            assert!(err.to_string().contains("truncated"), "{err}");
        }
        // Past the pack's header, a cut pack is told from an altered one by its checksum only.
        for cut in [start + (bytes.len() - start) / 2, bytes.len() - 1] {
            let err = check(&bytes[..cut]).await.expect_err("cut in the pack");
            assert!(matches!(err, BundleError::ChecksumMismatch { .. }), "{err:?}");
            assert!(err.to_string().contains("corrupt or truncated"), "{err}");
        }
    }

    #[tokio::test]
    async fn a_bundle_cut_in_the_header_is_refused() {
        let repo = Repo::with_history("cut-header");
        let bytes = repo.bundle("all.bundle", &[], &["--all"]);
        let start = pack_start(&bytes);
        let signature = b"# v2 git bundle\n".len();
        // Without the empty line, the header's lines are all whole: the missing one is next.
        let empty_line = bytes[..start - 1].iter().filter(|b| **b == b'\n').count() + 1;

        for (cut, line) in [
            (5, 1),
            (signature, 2),
            (signature + 20, 2),
            (start - 1, empty_line),
        ] {
            let err = check(&bytes[..cut]).await.expect_err("cut in the header");
            assert!(
                matches!(err, BundleError::HeaderTruncated { line: l } if l == line),
                "cut at {cut}: {err:?}"
            );
            assert!(err.to_string().contains("truncated"), "{err}");
        }
    }

    #[tokio::test]
    async fn a_flipped_byte_in_the_pack_fails_the_checksum_naming_both_sums() {
        let repo = Repo::with_history("flip");
        let mut bytes = repo.bundle("all.bundle", &[], &["--all"]);
        let start = pack_start(&bytes);
        let middle = start + (bytes.len() - start) / 2;
        bytes[middle] ^= 0x01;
        let trailer = hex::encode(&bytes[bytes.len() - TRAILER..]);
        let content = hex::encode(Sha1::digest(&bytes[start..bytes.len() - TRAILER]));

        let err = check(&bytes).await.expect_err("flipped byte");

        match &err {
            BundleError::ChecksumMismatch {
                expected,
                actual,
                pack_bytes,
            } => {
                assert_eq!(*expected, trailer);
                assert_eq!(*actual, content);
                assert_ne!(expected, actual);
                assert_eq!(*pack_bytes, (bytes.len() - start) as u64);
            }
            other => panic!("{other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(&trailer) && message.contains(&content),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_pack_without_its_signature_or_of_an_unknown_version_is_refused() {
        let repo = Repo::with_history("pack-header");
        let bytes = repo.bundle("all.bundle", &[], &["--all"]);
        let start = pack_start(&bytes);

        let mut unsigned = bytes.clone();
        unsigned[start..start + 4].copy_from_slice(b"KCAP");
        let err = check(&unsigned).await.expect_err("no PACK");
        assert!(
            matches!(err, BundleError::MissingPackSignature { ref found } if found == "KCAP"),
            "{err:?}"
        );
        let err = check(&unsigned[..start + 6]).await.expect_err("short, no PACK");
        assert!(matches!(err, BundleError::MissingPackSignature { .. }), "{err:?}");

        let mut version = bytes.clone();
        version[start + 7] = 4;
        let err = check(&version).await.expect_err("pack version 4");
        assert!(
            matches!(err, BundleError::UnsupportedPackVersion { version: 4 }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_bundle_over_the_bound_is_refused_without_reading_it_all() {
        // A bundle whose pack never ends: only the bound stops the reading.
        let repo = Repo::with_history("bound");
        let bytes = repo.bundle("all.bundle", &[], &["--all"]);
        let start = pack_start(&bytes);
        let endless = bytes[..start + PACK_HEADER].to_vec();
        let max = 1 << 20;
        let mut reader = Trickle::new(endless, 8192, After::Zeros);

        let err = verify(&mut reader, max, None).await.expect_err("over the bound");

        assert!(
            matches!(err, BundleError::TooLarge { max_bytes } if max_bytes == max),
            "{err:?}"
        );
        assert!(
            reader.served <= max + 1,
            "read {} bytes for a bound of {max}",
            reader.served
        );
        assert!(err.to_string().contains(&max.to_string()), "{err}");

        // Exactly at the bound is within it; one byte less is not, nor one past in the header.
        let len = bytes.len() as u64;
        verify(bytes.as_slice(), len, None).await.expect("at the bound");
        let err = verify(bytes.as_slice(), len - 1, None)
            .await
            .expect_err("one over");
        assert!(matches!(err, BundleError::TooLarge { .. }), "{err:?}");
        let err = verify(bytes.as_slice(), 30, None)
            .await
            .expect_err("over in the header");
        assert!(matches!(err, BundleError::TooLarge { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_bundle_is_refused_showing_its_first_line() {
        let repo = Repo::with_history("not-bundle");
        let archive = repo.path("archive.tar.gz");
        repo.git(&[
            "archive",
            "--format=tar.gz",
            "-o",
            archive.to_str().expect("utf-8"),
            "main",
        ]);
        let gzip = std::fs::read(&archive).expect("read archive");

        let err = check(&gzip).await.expect_err("gzip");
        match &err {
            BundleError::NotABundle { first_line } => {
                assert!(first_line.starts_with("\\x1f\\x8b"), "{first_line}");
                assert!(first_line.chars().count() <= SHOWN * 4 + 1, "{first_line}");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("not a git bundle"), "{err}");

        let err = check(b"hello\tworld \"quoted\"\nsecond line\n")
            .await
            .expect_err("text");
        assert!(
            matches!(err, BundleError::NotABundle { ref first_line } if first_line == "hello\\tworld \\\"quoted\\\""),
            "{err:?}"
        );

        // A long line without a newline is refused after its first few hundred bytes.
        let mut reader = Trickle::new(vec![b'x'; 1 << 20], 64, After::Eof);
        let err = verify(&mut reader, NO_BOUND, None).await.expect_err("no newline");
        assert!(
            matches!(err, BundleError::NotABundle { ref first_line } if first_line.ends_with('…')),
            "{err:?}"
        );
        assert!(reader.served <= BUFFER as u64, "read {} bytes", reader.served);

        let err = check(b"").await.expect_err("empty");
        assert!(matches!(err, BundleError::Empty), "{err:?}");
    }

    #[tokio::test]
    async fn a_sha256_bundle_is_refused_as_unsupported() {
        let Some(repo) = Repo::init("sha256", &["--object-format=sha256"]) else {
            eprintln!("skipped: this git cannot create a SHA-256 repository");
            return;
        };
        repo.populate();
        let bytes = repo.bundle("all.bundle", &[], &["--all"]);

        let err = check(&bytes).await.expect_err("sha256");

        assert!(
            matches!(err, BundleError::UnsupportedCapability { line: 2, ref capability, .. } if capability == "object-format=sha256"),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("SHA-256 repositories are out of scope"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_filtered_bundle_is_refused_as_unsupported() {
        let repo = Repo::with_history("filter");
        let name = repo.path("filtered.bundle");
        let file = name.to_str().expect("utf-8");
        if let Err(e) = repo.try_git(&["bundle", "create", file, "--all", "--filter=blob:none"]) {
            eprintln!("skipped: this git cannot create a filtered bundle: {e}");
            return;
        }
        let bytes = std::fs::read(&name).expect("read bundle");

        let err = check(&bytes).await.expect_err("filtered");

        assert!(
            matches!(err, BundleError::UnsupportedCapability { ref capability, .. } if capability == "filter=blob:none"),
            "{err:?}"
        );
        assert!(err.to_string().contains("not a full backup"), "{err}");
    }

    #[tokio::test]
    async fn header_errors_name_the_line_and_what_is_wrong() {
        let sha = "25190df2d14f1e8a68ea569e26272debc56278ee";
        let sha256 = "176ecf9cd7b2b99576de206ee1773a181c9cb3c46958ce50fc73d50115941e04";
        let cases: [(String, &str); 8] = [
            ("# v4 git bundle\n".into(), "version 4"),
            (
                format!("# v3 git bundle\n@object-format=sha1\n@unknown=silly\n{sha} HEAD\n\n"),
                "unknown capability",
            ),
            (
                format!("# v2 git bundle\n{sha} refs/heads/main\nnot-a-sha refs/heads/x\n\n"),
                "line 3",
            ),
            (
                format!("# v2 git bundle\n-{sha}x comment\n{sha} HEAD\n\n"),
                "prerequisite line",
            ),
            (format!("# v2 git bundle\n{sha}\n\n"), "no ref name"),
            (
                format!("# v2 git bundle\n@object-format=sha1\n{sha} HEAD\n\n"),
                "ref line",
            ),
            (
                format!("# v2 git bundle\n{sha256} refs/heads/main\n\n"),
                "SHA-256",
            ),
            ("# v2 git bundle\n\nPACK".into(), "no refs"),
        ];
        for (text, says) in cases {
            let err = check(text.as_bytes()).await.expect_err(&text);
            assert!(err.to_string().contains(says), "{text:?}: {err}");
        }

        let long = format!("# v2 git bundle\n{sha} refs/heads/{}\n\n", "x".repeat(MAX_LINE));
        let err = check(long.as_bytes()).await.expect_err("long line");
        assert!(
            matches!(err, BundleError::MalformedLine { line: 2, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_read_error_is_reported_with_how_far_the_reading_got() {
        let repo = Repo::with_history("io");
        let bytes = repo.bundle("all.bundle", &[], &["--all"]);
        let half = bytes[..bytes.len() / 2].to_vec();
        let read = half.len() as u64;
        let mut reader = Trickle::new(half, 4096, After::Fail);

        let err = verify(&mut reader, NO_BOUND, None).await.expect_err("reset");

        assert!(
            matches!(err, BundleError::Io { read: r, .. } if r == read),
            "{err:?}"
        );
        assert!(err.to_string().contains("connection reset"), "{err}");
    }
}
