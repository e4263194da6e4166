//! The folder key source: `[issuer] signing_keys`, one PEM (PKCS#8) private
//! key per file, as passgate on SQLite keeps them.
//!
//! A key's dates are in its file name, so a key and its dates are written
//! in one step: `<created_at>-<n>-<alg>-signs-<signs_from>.pem` (seconds
//! since the epoch, `n` telling apart keys of one second). Files passgate
//! wrote before keys had a start, `<created_at>-<n>-<alg>.pem`, sign from
//! their creation, i.e. at once; so do keys put there by hand under any
//! other name, with the file's modification time as their creation. Files
//! not ending in `.pem` are ignored.
//!
//! A new file is written under a temporary name and renamed into place, so
//! the gateway reading the folder never sees half a key. Writes hold an
//! exclusive lock on `.passgate-keys.lock` in the folder: two passgates
//! starting on an empty folder make one key. Reading needs no lock (and no
//! write access to the folder).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use jsonwebtoken::Algorithm;
use sha2::{Digest, Sha256};

use super::key_source::{KeySource, KeySourceError, LoadError, StoredKey, new_key};
use super::keys::{SigningKey, pem_encode, pkcs8_algorithm, pkcs8_from_pem};
use super::ring::KeyRing;
use crate::tasks::run_blocking;

/// The lock file writes hold (not a `.pem`, so never read as a key).
const LOCK_FILE: &str = ".passgate-keys.lock";

/// `kid` and algorithm by the SHA-256 of a key file's bytes, so an unchanged
/// file is not parsed again on every refresh.
type Known = Arc<Mutex<HashMap<[u8; 32], (String, Algorithm)>>>;

/// Signing keys in a folder of PEM files.
#[derive(Debug, Clone)]
pub struct FolderKeys {
    dir: PathBuf,
    known: Known,
}

impl FolderKeys {
    /// The keys in `dir` (which may not exist yet: it is made for the first key).
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            known: Arc::default(),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Path, &Known) -> Result<T, KeySourceError> + Send + 'static,
    ) -> Result<T, KeySourceError> {
        let (dir, known) = (self.dir.clone(), Arc::clone(&self.known));
        run_blocking(move || work(&dir, &known))
            .await
            .map_err(KeySourceError::Task)?
    }
}

#[async_trait]
impl KeySource for FolderKeys {
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, KeySourceError> {
        self.blocking(read_keys).await
    }

    async fn add_signing_key(&self, key: StoredKey) -> Result<(), KeySourceError> {
        self.blocking(move |dir, _| {
            let _lock = lock(dir)?;
            write_key(dir, &key).map(drop)
        })
        .await
    }

    async fn first_signing_key(
        &self,
        candidate: StoredKey,
    ) -> Result<Vec<StoredKey>, KeySourceError> {
        self.blocking(move |dir, known| {
            let _lock = lock(dir)?;
            if read_keys(dir, known)?.is_empty() {
                write_key(dir, &candidate)?;
            }
            read_keys(dir, known)
        })
        .await
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
}

/// Every key in `dir`, oldest first; none when `dir` does not exist.
fn read_keys(dir: &Path, known: &Known) -> Result<Vec<StoredKey>, KeySourceError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeySourceError::Io { path, source }
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().is_some_and(|x| x == "pem") && path.is_file() {
            paths.push(path);
        }
    }
    let mut seen = HashMap::new();
    let mut keys = Vec::with_capacity(paths.len());
    for path in paths {
        let bytes = zeroize::Zeroizing::new(std::fs::read(&path).map_err(io(&path))?);
        let bad = |source| KeySourceError::File {
            path: path.clone(),
            source,
        };
        let pkcs8 = pkcs8_from_pem(&bytes).map_err(bad)?;
        let digest: [u8; 32] = Sha256::digest(&bytes[..]).into();
        let cached = known.lock().ok().and_then(|k| k.get(&digest).cloned());
        let (kid, alg) = match cached {
            Some(found) => found,
            None => {
                let alg = pkcs8_algorithm(&pkcs8).map_err(bad)?;
                (SigningKey::from_pkcs8(&pkcs8, alg).map_err(bad)?.kid, alg)
            }
        };
        seen.insert(digest, (kid.clone(), alg));
        let (created_at, signs_from) = match dates_in_name(&path) {
            Some(dates) => dates,
            None => {
                let created = modified_secs(&path).map_err(io(&path))?;
                (created, created)
            }
        };
        keys.push((
            path,
            StoredKey {
                kid,
                alg,
                pkcs8,
                created_at,
                signs_from,
            },
        ));
    }
    if let Ok(mut k) = known.lock() {
        *k = seen;
    }
    keys.sort_by(|(pa, a), (pb, b)| a.created_at.cmp(&b.created_at).then_with(|| pa.cmp(pb)));
    Ok(keys.into_iter().map(|(_, k)| k).collect())
}

/// `(created_at, signs_from)` from a name passgate wrote; `None` for any other name.
fn dates_in_name(path: &Path) -> Option<(i64, i64)> {
    let stem = path.file_name()?.to_str()?.strip_suffix(".pem")?;
    let parts: Vec<&str> = stem.split('-').collect();
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<i64>().ok())
            .flatten()
    };
    let created = number(parts.first()?)?;
    number(parts.get(1)?)?;
    match parts.as_slice() {
        [_, _, _] => Some((created, created)),
        [_, _, _, "signs", from] => Some((created, number(from)?)),
        _ => None,
    }
}

fn modified_secs(path: &Path) -> std::io::Result<i64> {
    let modified = std::fs::metadata(path)?.modified()?;
    let secs = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// The folder's write lock, held until the returned file is dropped.
fn lock(dir: &Path) -> Result<File, KeySourceError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeySourceError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    file.lock().map_err(io(&path))?;
    Ok(file)
}

/// The file name of a generated key.
fn file_name(key: &StoredKey, n: u32) -> String {
    let tag = match key.alg {
        Algorithm::ES256 => "es256",
        Algorithm::EdDSA => "eddsa",
        _ => "rs256",
    };
    format!(
        "{:012}-{n:03}-{tag}-signs-{:012}.pem",
        key.created_at, key.signs_from
    )
}

/// Write `key` as a new file (the caller holds the lock); its path.
fn write_key(dir: &Path, key: &StoredKey) -> Result<PathBuf, KeySourceError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeySourceError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    // Keys of one second are told apart, in the order they were written, by `n`.
    let prefix = format!("{:012}-", key.created_at);
    let mut n = 0;
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let name = entry.map_err(io(dir))?.file_name();
        let taken = name
            .to_str()
            .and_then(|s| s.strip_prefix(&prefix))
            .and_then(|rest| rest.get(..3))
            .and_then(|digits| digits.parse::<u32>().ok());
        if let Some(taken) = taken {
            n = n.max(taken + 1);
        }
    }
    let path = dir.join(file_name(key, n));
    let tmp = dir.join(format!(".{}.tmp", file_name(key, n)));
    // A leftover of a write that died half-way; the lock says nobody writes it now.
    let _ = std::fs::remove_file(&tmp);
    let pem = pem_encode("PRIVATE KEY", &key.pkcs8);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(pem.as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, &path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(&path)(e));
    }
    // The rename itself is durable once the folder is synced.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(path)
}

// === sync access, for tools, tests and benches ===

/// Generate a new key of `alg` into `dir` (made if missing), signing at
/// once: it becomes the signing key of that folder.
pub fn generate_into(dir: &Path, alg: Algorithm) -> Result<SigningKey, KeySourceError> {
    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
    let key = new_key(alg, now, now)?;
    let _lock = lock(dir)?;
    let path = write_key(dir, &key)?;
    let signing =
        SigningKey::from_pkcs8(&key.pkcs8, alg).map_err(|source| KeySourceError::File {
            path: path.clone(),
            source,
        })?;
    Ok(signing.with_path(path))
}

impl KeyRing {
    /// Read every key in `dir`; fails when there is none.
    pub fn load(dir: &Path) -> Result<KeyRing, LoadError> {
        let keys = read_keys(dir, &Known::default())?;
        Ok(KeyRing::build(&keys, None)?)
    }

    /// Read every key in `dir`, generating one with `alg` when there is none.
    pub fn load_or_generate(dir: &Path, alg: Algorithm) -> Result<KeyRing, LoadError> {
        if read_keys(dir, &Known::default())?.is_empty() {
            generate_into(dir, alg)?;
        }
        Self::load(dir)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::tokens::ring::RingError;

    fn folder() -> (tempfile::TempDir, FolderKeys) {
        crate::tls::install_crypto_providers();
        let dir = tempfile::tempdir().unwrap();
        let keys = FolderKeys::new(dir.path().join("signing"));
        (dir, keys)
    }

    #[tokio::test]
    async fn keys_and_their_dates_survive_the_round_trip() {
        let (_dir, source) = folder();
        assert!(source.signing_keys().await.unwrap().is_empty());
        let a = new_key(Algorithm::ES256, 1_000, 1_000).unwrap();
        let b = new_key(Algorithm::RS256, 2_000, 2_305).unwrap();
        let c = new_key(Algorithm::EdDSA, 2_000, 2_000).unwrap();
        for k in [&b, &a, &c] {
            source.add_signing_key(k.clone()).await.unwrap();
        }
        let got = source.signing_keys().await.unwrap();
        let seen: Vec<_> = got
            .iter()
            .map(|k| (k.kid.clone(), k.alg, k.created_at, k.signs_from))
            .collect();
        let want: Vec<_> = [&a, &b, &c]
            .iter()
            .map(|k| (k.kid.clone(), k.alg, k.created_at, k.signs_from))
            .collect();
        assert_eq!(seen, want, "oldest first; same second in write order");
        assert!(
            got.iter()
                .zip([&a, &b, &c])
                .all(|(g, w)| *g.pkcs8 == *w.pkcs8)
        );
        // Read again from the cache: the same answer.
        let again = source.signing_keys().await.unwrap();
        assert_eq!(again.len(), 3);
        assert_eq!(again[1].kid, b.kid);
    }

    #[tokio::test]
    async fn older_files_without_a_start_sign_from_their_creation() {
        let (dir, source) = folder();
        let keys = dir.path().join("signing");
        std::fs::create_dir_all(&keys).unwrap();
        // As passgate wrote keys before they had a start, and one put there by hand.
        let old = new_key(Algorithm::ES256, 0, 0).unwrap();
        let pem = pem_encode("PRIVATE KEY", &old.pkcs8);
        std::fs::write(keys.join("001700000000-000-es256.pem"), pem.as_bytes()).unwrap();
        let by_hand = new_key(Algorithm::EdDSA, 0, 0).unwrap();
        let pem = pem_encode("PRIVATE KEY", &by_hand.pkcs8);
        std::fs::write(keys.join("mine.pem"), pem.as_bytes()).unwrap();
        std::fs::write(keys.join("notes.txt"), "not a key").unwrap();
        let got = source.signing_keys().await.unwrap();
        assert_eq!(got.len(), 2, "only .pem files");
        assert_eq!(got[0].kid, old.kid);
        assert_eq!(
            (got[0].created_at, got[0].signs_from),
            (1_700_000_000, 1_700_000_000)
        );
        assert_eq!(got[0].alg, Algorithm::ES256);
        assert_eq!(got[1].kid, by_hand.kid);
        assert_eq!(got[1].alg, Algorithm::EdDSA);
        assert_eq!(got[1].signs_from, got[1].created_at, "signs at once");
        assert!(got[1].created_at > 1_700_000_000, "its modification time");
        // Both sign at once: the newest of them signs.
        let ring = KeyRing::build(&got, None).unwrap();
        assert_eq!(ring.signer(got[1].created_at).kid, by_hand.kid);
    }

    #[tokio::test]
    async fn an_emergency_rotation_in_the_same_second_signs() {
        // `keys rotate`, then `keys rotate --now`, both within the second the
        // first key was made: the emergency key must be the one that signs.
        let (_dir, source) = folder();
        let now = 5_000;
        source
            .add_signing_key(new_key(Algorithm::ES256, now, now).unwrap())
            .await
            .unwrap();
        let later = crate::tokens::key_source::rotate(&source, Algorithm::ES256, now, false)
            .await
            .unwrap();
        let urgent = crate::tokens::key_source::rotate(&source, Algorithm::ES256, now, true)
            .await
            .unwrap();
        let got = source.signing_keys().await.unwrap();
        // Strictly newer each time, so no store's tie-break (PostgreSQL
        // orders equal ages by kid) can put an older key after it.
        assert!(
            got.windows(2).all(|w| w[0].created_at < w[1].created_at),
            "{:?}",
            got.iter().map(|k| k.created_at).collect::<Vec<_>>()
        );
        let ring = KeyRing::build(&got, None).unwrap();
        assert_eq!(ring.signer(now).kid, urgent.kid);
        assert_eq!(
            ring.signer(later.signs_from).kid,
            urgent.kid,
            "the newest whose time has come"
        );
    }

    #[tokio::test]
    async fn a_bad_file_is_named() {
        let (dir, source) = folder();
        let keys = dir.path().join("signing");
        std::fs::create_dir_all(&keys).unwrap();
        std::fs::write(keys.join("broken.pem"), "-----BEGIN PRIVATE KEY-----\n").unwrap();
        let err = source.signing_keys().await.unwrap_err();
        let text = crate::telemetry::ErrorChain(&err).to_string();
        assert!(text.contains("broken.pem"), "{text}");
    }

    #[test]
    fn generated_names_carry_both_dates() {
        let p = |s: &str| dates_in_name(Path::new(s));
        assert_eq!(
            p("001700000000-000-es256-signs-001700000305.pem"),
            Some((1_700_000_000, 1_700_000_305))
        );
        assert_eq!(
            p("001700000000-002-rs256.pem"),
            Some((1_700_000_000, 1_700_000_000))
        );
        assert_eq!(p("mine.pem"), None);
        assert_eq!(p("2024-key.pem"), None);
        assert_eq!(p("001700000000-000-es256-signs-x.pem"), None);
        let k = StoredKey {
            kid: "k".into(),
            alg: Algorithm::EdDSA,
            pkcs8: Default::default(),
            created_at: 5,
            signs_from: 310,
        };
        assert_eq!(dates_in_name(Path::new(&file_name(&k, 1))), Some((5, 310)));
    }

    /// Two passgates starting on one empty folder: each its own source (and
    /// its own open of the lock file), many candidates at once, one key.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_first_keys_make_one() {
        let (dir, _) = folder();
        let keys = dir.path().join("signing");
        let calls: Vec<_> = (0..6)
            .map(|i| {
                let source = FolderKeys::new(keys.clone());
                tokio::spawn(async move {
                    let candidate = new_key(Algorithm::ES256, 100 + i, 100 + i).unwrap();
                    source.first_signing_key(candidate).await.unwrap()
                })
            })
            .collect();
        let mut kids = Vec::new();
        for c in calls {
            let got = c.await.unwrap();
            assert_eq!(got.len(), 1);
            kids.push(got[0].kid.clone());
        }
        kids.dedup();
        assert_eq!(kids.len(), 1, "{kids:?}");
        let pems = std::fs::read_dir(&keys)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "pem")
            })
            .count();
        assert_eq!(pems, 1);
    }

    #[test]
    fn sync_loading_for_tools() {
        crate::tls::install_crypto_providers();
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            KeyRing::load(dir.path()),
            Err(LoadError::Ring(RingError::Empty))
        ));
        let first = KeyRing::load_or_generate(dir.path(), Algorithm::ES256).unwrap();
        let again = KeyRing::load_or_generate(dir.path(), Algorithm::ES256).unwrap();
        assert_eq!(first.current().kid, again.current().kid, "made once");
        let new = generate_into(dir.path(), Algorithm::ES256).unwrap();
        let ring = KeyRing::load(dir.path()).unwrap();
        assert_eq!(ring.keys().len(), 2);
        assert_eq!(ring.current().kid, new.kid);
        assert!(new.path.as_ref().is_some_and(|p| p.exists()));
    }
}
