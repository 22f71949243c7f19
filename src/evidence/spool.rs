//! Records waiting to be uploaded, bounded, on disk when a directory is given so that a
//! restart loses none: appended to `current.jsonl`, sealed into `batch-*.jsonl` files for
//! upload, each deleted (or rewritten with what is left) once uploaded. Without a directory
//! the same in memory, kept only while the process lives.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

const CURRENT: &str = "current.jsonl";

/// Records sealed for one upload attempt.
#[derive(Debug)]
pub struct Batch {
    /// Its file, on disk.
    path: Option<PathBuf>,
    pub lines: Vec<String>,
}

#[derive(Debug)]
pub struct Spool {
    dir: Option<PathBuf>,
    max_bytes: u64,
    /// Bytes and records waiting (appended, not yet uploaded).
    bytes: u64,
    records: u64,
    current: Option<File>,
    /// In memory: the lines not sealed yet, and the sealed batches not uploaded yet.
    memory: Vec<String>,
    sealed: Vec<Vec<String>>,
    /// Names batch files apart within one nanosecond.
    counter: u64,
}

/// A line a crash did not tear.
fn whole(line: &str) -> bool {
    !line.is_empty() && serde_json::from_str::<serde_json::Value>(line).is_ok()
}

fn size(line: &str) -> u64 {
    line.len() as u64 + 1
}

impl Spool {
    /// Opens the spool in `dir` (created if missing), counting what a previous run left.
    pub fn open(dir: Option<&Path>, max_bytes: u64) -> io::Result<Self> {
        let mut spool = Self {
            dir: dir.map(Path::to_path_buf),
            max_bytes,
            bytes: 0,
            records: 0,
            current: None,
            memory: Vec::new(),
            sealed: Vec::new(),
            counter: 0,
        };
        if let Some(dir) = dir {
            fs::create_dir_all(dir)?;
            // What the last run was appending is sealed: a line it tore in a crash must not
            // run into the next one appended.
            spool.seal_current(dir)?;
            for path in spool.files()? {
                let text = fs::read_to_string(&path)?;
                for line in text.lines().filter(|l| whole(l)) {
                    spool.bytes += size(line);
                    spool.records += 1;
                }
            }
        }
        Ok(spool)
    }

    fn seal_current(&mut self, dir: &Path) -> io::Result<()> {
        if let Some(file) = self.current.take() {
            file.sync_all()?;
        }
        let current = dir.join(CURRENT);
        if fs::metadata(&current).is_ok_and(|m| m.len() > 0) {
            self.counter += 1;
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            fs::rename(
                &current,
                dir.join(format!("batch-{nanos:024}-{:06}.jsonl", self.counter)),
            )?;
        }
        Ok(())
    }

    /// Records and bytes waiting.
    pub fn pending(&self) -> (u64, u64) {
        (self.records, self.bytes)
    }

    /// Keeps one record (a JSON line); false when the bound is reached and it was not kept.
    pub fn append(&mut self, line: &str) -> io::Result<bool> {
        if self.bytes + size(line) > self.max_bytes {
            return Ok(false);
        }
        match &self.dir {
            Some(dir) => {
                if self.current.is_none() {
                    self.current = Some(
                        OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(dir.join(CURRENT))?,
                    );
                }
                if let Some(file) = self.current.as_mut() {
                    // One write per line: a crash leaves whole lines (a torn last line is
                    // skipped when read).
                    file.write_all(format!("{line}\n").as_bytes())?;
                }
            }
            None => self.memory.push(line.to_string()),
        }
        self.bytes += size(line);
        self.records += 1;
        Ok(true)
    }

    /// Seals what was appended and returns every batch waiting, oldest first.
    pub fn seal(&mut self) -> io::Result<Vec<Batch>> {
        let Some(dir) = self.dir.clone() else {
            if !self.memory.is_empty() {
                self.sealed.push(std::mem::take(&mut self.memory));
            }
            return Ok(self
                .sealed
                .drain(..)
                .map(|lines| Batch { path: None, lines })
                .collect());
        };
        self.seal_current(&dir)?;
        let mut batches = Vec::new();
        for path in self.files()? {
            if path.ends_with(CURRENT) {
                continue;
            }
            let text = fs::read_to_string(&path)?;
            let lines = text.lines().filter(|l| whole(l)).map(str::to_string).collect();
            batches.push(Batch {
                path: Some(path),
                lines,
            });
        }
        Ok(batches)
    }

    /// After an upload attempt: `left` are the batch's lines not uploaded (empty: all were).
    pub fn finish(&mut self, batch: Batch, left: Vec<String>) -> io::Result<()> {
        let gone = |lines: &[String]| lines.iter().map(|l| size(l)).sum::<u64>();
        let (before, after) = (gone(&batch.lines), gone(&left));
        let uploaded = batch.lines.len().saturating_sub(left.len()) as u64;
        match batch.path {
            Some(path) if left.is_empty() => fs::remove_file(&path)?,
            Some(path) => {
                // Written aside, then renamed: a crash leaves the old batch or the new one.
                let aside = path.with_extension("tmp");
                let mut file = File::create(&aside)?;
                for line in &left {
                    file.write_all(format!("{line}\n").as_bytes())?;
                }
                file.sync_all()?;
                fs::rename(&aside, &path)?;
            }
            None if left.is_empty() => {}
            // Back in front of what was appended since, to keep the order.
            None => self.sealed.insert(0, left),
        }
        self.bytes = self.bytes.saturating_sub(before - after);
        self.records = self.records.saturating_sub(uploaded);
        Ok(())
    }

    /// The spool's files, oldest batch first and `current.jsonl` last.
    fn files(&self) -> io::Result<Vec<PathBuf>> {
        let Some(dir) = &self.dir else {
            return Ok(Vec::new());
        };
        let mut batches = Vec::new();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with("batch-") && name.ends_with(".jsonl") {
                batches.push(path);
            }
        }
        batches.sort();
        let current = dir.join(CURRENT);
        if current.exists() {
            batches.push(current);
        }
        Ok(batches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize) -> String {
        format!("{{\"n\":{n}}}")
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bw-spool-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn what_a_run_appended_is_uploaded_by_the_next_one() {
        let dir = temp_dir("restart");
        let mut first = Spool::open(Some(&dir), 1 << 20).expect("open");
        for n in 0..3 {
            assert!(first.append(&line(n)).expect("append"));
        }
        let sealed = first.seal().expect("seal");
        assert_eq!(sealed.len(), 1);
        // The upload fails; more records come; then the process dies.
        assert!(first.append(&line(3)).expect("append"));
        drop((first, sealed));

        let mut second = Spool::open(Some(&dir), 1 << 20).expect("reopen");
        assert_eq!(second.pending().0, 4, "nothing lost across the restart");
        let batches = second.seal().expect("seal");
        let all: Vec<String> = batches.iter().flat_map(|b| b.lines.clone()).collect();
        assert_eq!(all, (0..4).map(line).collect::<Vec<_>>(), "in order");
        for batch in batches {
            second.finish(batch, Vec::new()).expect("finish");
        }
        assert_eq!(second.pending(), (0, 0));
        assert!(second.seal().expect("seal").is_empty());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_partly_uploaded_batch_keeps_only_what_is_left() {
        for dir in [Some(temp_dir("partial")), None] {
            let mut spool = Spool::open(dir.as_deref(), 1 << 20).expect("open");
            for n in 0..4 {
                spool.append(&line(n)).expect("append");
            }
            let batch = spool.seal().expect("seal").remove(0);
            spool.finish(batch, vec![line(2), line(3)]).expect("finish");
            spool.append(&line(4)).expect("append");
            assert_eq!(spool.pending().0, 3);
            let lines: Vec<String> = spool
                .seal()
                .expect("seal")
                .into_iter()
                .flat_map(|b| b.lines)
                .collect();
            assert_eq!(lines, vec![line(2), line(3), line(4)], "{dir:?}");
            if let Some(dir) = dir {
                let _ = fs::remove_dir_all(&dir);
            }
        }
    }

    #[test]
    fn the_bound_refuses_records_and_frees_up_once_uploaded() {
        let one = size(&line(0));
        let mut spool = Spool::open(None, one * 2).expect("open");
        assert!(spool.append(&line(0)).expect("append"));
        assert!(spool.append(&line(1)).expect("append"));
        assert!(!spool.append(&line(2)).expect("append"), "full");
        let batch = spool.seal().expect("seal").remove(0);
        spool.finish(batch, Vec::new()).expect("finish");
        assert!(spool.append(&line(3)).expect("append"), "room again");
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let dir = temp_dir("torn");
        fs::create_dir_all(&dir).expect("dir");
        fs::write(dir.join(CURRENT), format!("{}\n{{\"n\":", line(0))).expect("write");
        let mut spool = Spool::open(Some(&dir), 1 << 20).expect("open");
        assert!(spool.append(&line(1)).expect("append"));
        let lines: Vec<String> = spool
            .seal()
            .expect("seal")
            .into_iter()
            .flat_map(|b| b.lines)
            .collect();
        assert_eq!(
            lines,
            vec![line(0), line(1)],
            "the torn line is gone, the next one whole"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
