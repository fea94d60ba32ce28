//! Jobs made of idempotent units: shards, resume, atomic files, settings claimed per folder.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::Control;

use anyhow::{bail, Context as _};

/// `I/N`: this process does the units with `index % N == I`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl Shard {
    /// Whether this shard does unit `unit`.
    pub fn owns(&self, unit: usize) -> bool {
        unit % self.count == self.index
    }

    /// The shard from a scheduler's environment when `--shard` is not given: Slurm arrays
    /// (`SLURM_ARRAY_TASK_ID` / `SLURM_ARRAY_TASK_COUNT`) are recognised.
    pub fn from_env() -> Option<Self> {
        let id = std::env::var("SLURM_ARRAY_TASK_ID").ok()?.parse().ok()?;
        let count = std::env::var("SLURM_ARRAY_TASK_COUNT").ok()?.parse().ok()?;
        (count > 0 && id < count).then_some(Self { index: id, count })
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not a shard: use I/N with 0 ≤ I < N, e.g. 3/16");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) =
            (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A job made of independent, idempotent units.
pub trait Job {
    /// Number of units in the whole job (all shards).
    fn units(&self) -> usize;
    /// Whether every file of `unit` exists (a resumed run skips it).
    fn is_complete(&self, unit: usize) -> bool;
    /// Computes and writes `unit`, skipping files that exist; returns the number of files written.
    fn run_unit(&mut self, unit: usize) -> anyhow::Result<u64>;
    /// Items (e.g. images) unit `unit` stands for, the unit of progress and rate.
    fn unit_items(&self, _unit: usize) -> u64 {
        1
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub units_run: usize,
    pub units_skipped: usize,
    pub files_written: u64,
    pub cancelled: bool,
    pub elapsed: Duration,
}

/// Runs this shard's units of `job` in index order. Units already complete are skipped when
/// `resume` is set (without it, the caller has made sure the output is fresh). `tick` is
/// called after every unit (progress bars).
pub fn run(
    job: &mut dyn Job,
    shard: Shard,
    resume: bool,
    control: &Control,
    tick: &mut dyn FnMut(&Control),
) -> anyhow::Result<Summary> {
    let mine: Vec<usize> = (0..job.units()).filter(|&u| shard.owns(u)).collect();
    control.set_total(mine.iter().map(|&u| job.unit_items(u)).sum());
    let start = Instant::now();
    let mut s = Summary { units_run: 0, units_skipped: 0, files_written: 0, cancelled: false, elapsed: Duration::ZERO };
    for u in mine {
        if control.is_cancelled() {
            s.cancelled = true;
            break;
        }
        if resume && job.is_complete(u) {
            s.units_skipped += 1;
            control.skip(job.unit_items(u));
        } else {
            let n = job.run_unit(u).with_context(|| format!("unit {u} failed"))?;
            control.add_written(n);
            s.files_written += n;
            s.units_run += 1;
            control.advance(job.unit_items(u));
        }
        tick(control);
    }
    s.elapsed = start.elapsed();
    Ok(s)
}

/// The settings a job directory was made with (`manifest.json`). A fresh run writes it; a run
/// on a directory that has one must have the same settings, and must say `--resume`.
pub fn claim_directory(dir: &Path, settings: &serde_json::Value, resume: bool) -> anyhow::Result<()> {
    let path = dir.join("manifest.json");
    match std::fs::read(&path) {
        Ok(bytes) => {
            let old: serde_json::Value =
                serde_json::from_slice(&bytes).with_context(|| format!("{} is not valid JSON", path.display()))?;
            if &old != settings {
                bail!(
                    "{} was made with different settings:\n  there: {old}\n  now:   {settings}\nchoose another --out",
                    dir.display()
                );
            }
            if !resume {
                bail!(
                    "{} already holds this export: pass --resume to continue it, or choose another --out",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !resume && dir.is_dir() && std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
                bail!("{} exists and is not empty: choose another --out", dir.display());
            }
            crate::imageio::write_atomically(&path, |tmp| {
                std::fs::write(tmp, serde_json::to_vec_pretty(settings)?)?;
                Ok(())
            })
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unit u writes files u*3 .. u*3+2 containing their index; counts calls.
    struct Toy {
        dir: std::path::PathBuf,
        units: usize,
        fail_at: Option<usize>,
    }

    impl Toy {
        fn file(&self, i: usize) -> std::path::PathBuf {
            self.dir.join(format!("{i:05}.txt"))
        }
    }

    impl Job for Toy {
        fn units(&self) -> usize {
            self.units
        }
        fn is_complete(&self, u: usize) -> bool {
            (0..3).all(|k| self.file(u * 3 + k).exists())
        }
        fn run_unit(&mut self, u: usize) -> anyhow::Result<u64> {
            let mut n = 0;
            for k in 0..3 {
                let i = u * 3 + k;
                if self.fail_at == Some(i) {
                    anyhow::bail!("simulated crash");
                }
                let p = self.file(i);
                if !p.exists() {
                    crate::imageio::write_atomically(&p, |t| Ok(std::fs::write(t, format!("{i}"))?))?;
                    n += 1;
                }
            }
            Ok(n)
        }
    }

    fn listing(dir: &Path) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
            .collect();
        v.sort();
        v
    }

    fn fresh(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("intervene-jobs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn shards_parse_and_partition_the_units() {
        assert_eq!("2/5".parse::<Shard>(), Ok(Shard { index: 2, count: 5 }));
        for bad in ["5/5", "1/0", "x/2", "3", "-1/4"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        for n in 1..6 {
            for u in 0..50 {
                assert_eq!((0..n).filter(|&i| Shard { index: i, count: n }.owns(u)).count(), 1);
            }
        }
    }

    #[test]
    fn shards_together_equal_one_run() {
        let (a, b) = (fresh("one"), fresh("sharded"));
        run(
            &mut Toy { dir: a.clone(), units: 10, fail_at: None },
            Shard::default(),
            false,
            &Control::new(),
            &mut |_| {},
        )
        .unwrap();
        for i in 0..3 {
            let s = Shard { index: i, count: 3 };
            run(&mut Toy { dir: b.clone(), units: 10, fail_at: None }, s, true, &Control::new(), &mut |_| {}).unwrap();
        }
        assert_eq!(listing(&a), listing(&b));
        assert_eq!(listing(&a).len(), 30);
    }

    #[test]
    fn a_crash_then_resume_equals_an_uninterrupted_run_without_redoing_work() {
        let (a, b) = (fresh("full"), fresh("crash"));
        run(
            &mut Toy { dir: a.clone(), units: 8, fail_at: None },
            Shard::default(),
            false,
            &Control::new(),
            &mut |_| {},
        )
        .unwrap();
        let crashed = run(
            &mut Toy { dir: b.clone(), units: 8, fail_at: Some(13) },
            Shard::default(),
            false,
            &Control::new(),
            &mut |_| {},
        );
        assert!(crashed.is_err());
        assert_eq!(listing(&b).len(), 13, "files before the crash are complete, none after");
        let s = run(
            &mut Toy { dir: b.clone(), units: 8, fail_at: None },
            Shard::default(),
            true,
            &Control::new(),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!((s.units_skipped, s.units_run, s.files_written), (4, 4, 11));
        assert_eq!(listing(&a), listing(&b));
    }

    #[test]
    fn cancel_stops_after_the_unit_in_flight_and_resume_finishes() {
        let (a, b) = (fresh("ref"), fresh("cancel"));
        run(
            &mut Toy { dir: a.clone(), units: 6, fail_at: None },
            Shard::default(),
            false,
            &Control::new(),
            &mut |_| {},
        )
        .unwrap();
        let c = Control::new();
        let s = run(&mut Toy { dir: b.clone(), units: 6, fail_at: None }, Shard::default(), false, &c, &mut |c| {
            if c.progress().done == 2 {
                c.cancel();
            }
        })
        .unwrap();
        assert!(s.cancelled && s.units_run == 2);
        assert_eq!(listing(&b).len(), 6);
        run(&mut Toy { dir: b.clone(), units: 6, fail_at: None }, Shard::default(), true, &Control::new(), &mut |_| {})
            .unwrap();
        assert_eq!(listing(&a), listing(&b));
    }

    #[test]
    fn a_directory_is_claimed_once_and_settings_must_match() {
        let d = fresh("claim");
        let s = serde_json::json!({"n": 10});
        claim_directory(&d, &s, false).unwrap();
        assert!(claim_directory(&d, &s, false).unwrap_err().to_string().contains("--resume"));
        claim_directory(&d, &s, true).unwrap();
        let err = claim_directory(&d, &serde_json::json!({"n": 11}), true).unwrap_err().to_string();
        assert!(err.contains("different settings"), "{err}");
        let other = fresh("claim-other");
        std::fs::write(other.join("stray.txt"), "x").unwrap();
        assert!(claim_directory(&other, &s, false).unwrap_err().to_string().contains("not empty"));
    }
}
