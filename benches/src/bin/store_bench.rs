//! Durable table-partition stores: `fjall` (LSM) against `redb` (copy-on-write B+tree), with a
//! `HashMap` as the in-memory reference, on a table partition's workload.
//!
//! Records: 16-byte keys and 100-byte values, generated deterministically from the record's
//! index (splitmix64 / xorshift64*), so a read can check the value it gets back. A store keeps
//! two keyspaces/tables: `data` (the records) and `meta` (one key, `applied_offset`, the
//! big-endian `u64` index of the last changelog record applied). Every batch or transaction
//! writes its records and the new `applied_offset` atomically (fjall: one cross-keyspace
//! `WriteBatch`; redb: one `WriteTransaction` over both tables).
//!
//! For each store (in a child process of its own, so that its peak RSS is its own):
//! 1. **restore**: `--records` changelog records (1,000,000 by default, in random key order)
//!    applied in batches of 1,000 and of 10,000 records per batch/transaction, in two
//!    durability modes: `end` (batches not synced; one sync after the last batch, included in
//!    the time) and `batch` (every batch synced to disk before the next). Each of the four runs
//!    starts from an empty store; records/s.
//! 2. **on-disk size** after the restore (batches of 10,000, `end`), store open and after it is
//!    closed: allocated bytes (`du`) and apparent file sizes.
//! 3. **reopen**: time to open the closed store and read `applied_offset` (checked).
//! 4. **point reads** of `--reads` (200,000) random existing keys on the reopened store, each
//!    value checked; redb both with one read transaction per read (as a table lookup per event
//!    would) and with one read transaction for all of them.
//! 5. **updates**: `--updates` (100,000) single-record updates of random existing keys, each
//!    in its own batch/transaction with the new `applied_offset`, in each durability mode the
//!    store offers (fsync-per-write modes with `--synced-updates`, 1,000, updates only):
//!    - fjall `none`: the batch goes to the journal's in-process buffer (8 KiB); a process crash
//!      loses the unflushed tail, an OS crash what the OS had not written; always atomic.
//!    - fjall `buffer` (`PersistMode::Buffer`): the journal is written to the OS at each
//!      commit: survives a process crash, not an OS crash or power loss.
//!    - fjall `syncdata` (`PersistMode::SyncData`): `fdatasync` at each commit: durable.
//!    - redb `none` (`Durability::None`): the commit is visible but not written durably until
//!      a later `Immediate` commit: a crash (of the process too) goes back to the last
//!      `Immediate` commit.
//!    - redb `immediate` (`Durability::Immediate`, the default): `fsync` at each commit.
//! 6. **reopen after a crash**: the child ends with `std::process::exit` without closing the
//!    store (after a durable commit), and another child times opening it and reading the
//!    offset (redb repairs a database that was not closed cleanly; fjall replays its journal).
//!
//! The memory reference (its own child): `HashMap<[u8; 16], Vec<u8>>` inserts of the records
//! and `--reads` random reads, the child's peak RSS (`VmHWM`) after it; and the memory taken by
//! a `HashMap<[u8; 16], i64>` of `--records` entries (`VmRSS` before and after it is built,
//! measured first in its process), given per million entries. Std's default hasher (SipHash).
//!
//! Stores run with their defaults (fjall: 32 MiB block cache, min(cores, 4) background
//! workers, lz4; redb: 1 GiB cache); `--fjall-cache-mib` sets fjall's block cache. Rates include generating the records (the `generate`
//! row measures that alone).
//!
//! ```text
//! cargo run --release -p mephisto-benches --bin store_bench -- \
//!     [--records 1000000] [--reads 200000] [--updates 100000] [--synced-updates 1000] \
//!     [--fjall-cache-mib 32] [--stores fjall,redb] [--dir DIR] [--out results.jsonl]
//! ```
//!
//! Data goes under `--dir` (default: a fresh directory in `std::env::temp_dir()`), removed at
//! the end when the bench created it (the stores' subdirectories are removed either way). The
//! parent prints a markdown table; `--out FILE` also writes one JSON object per figure.

use std::collections::HashMap;
use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mephisto_benches::proc_stats;
use serde::{Deserialize, Serialize};

type BoxResult<T> = Result<T, Box<dyn Error>>;

const KEY_LEN: usize = 16;
const VALUE_LEN: usize = 100;
const OFFSET_KEY: &[u8] = b"applied_offset";
const BATCH_SIZES: [usize; 2] = [1_000, 10_000];
const RESULT_PREFIX: &str = "RESULT ";

/// One figure of the bench, as printed in the table and written to `--out`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Figure {
    store: String,
    measure: String,
    /// Batch size, durability mode or other detail of the measurement.
    detail: String,
    value: f64,
    unit: String,
    /// How many operations the figure is made from, when it is a rate.
    ops: u64,
    seconds: f64,
}

#[derive(Debug, Clone)]
struct Options {
    records: u64,
    reads: u64,
    updates: u64,
    synced_updates: u64,
    /// fjall's block cache in MiB (`None`: fjall's default, 32 MiB).
    fjall_cache_mib: Option<u64>,
    stores: Vec<String>,
    dir: Option<PathBuf>,
    out: Option<PathBuf>,
    role: Option<String>,
}

impl Options {
    fn parse() -> BoxResult<Self> {
        let mut options = Options {
            records: 1_000_000,
            reads: 200_000,
            updates: 100_000,
            synced_updates: 1_000,
            fjall_cache_mib: None,
            stores: vec!["fjall".into(), "redb".into()],
            dir: None,
            out: None,
            role: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--records" => options.records = value()?.parse()?,
                "--reads" => options.reads = value()?.parse()?,
                "--updates" => options.updates = value()?.parse()?,
                "--synced-updates" => options.synced_updates = value()?.parse()?,
                "--fjall-cache-mib" => options.fjall_cache_mib = Some(value()?.parse()?),
                "--stores" => {
                    options.stores = value()?.split(',').map(str::to_owned).collect();
                    for store in &options.stores {
                        if store != "fjall" && store != "redb" {
                            return Err(format!("unknown store {store}").into());
                        }
                    }
                }
                "--dir" => options.dir = Some(PathBuf::from(value()?)),
                "--out" => options.out = Some(PathBuf::from(value()?)),
                "--role" => options.role = Some(value()?),
                "-h" | "--help" => {
                    println!(
                        "store_bench [--records N] [--reads N] [--updates N] \
                         [--synced-updates N] [--fjall-cache-mib N] [--stores fjall,redb] [--dir DIR] [--out FILE]"
                    );
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other}").into()),
            }
        }
        if options.records == 0 {
            return Err("--records must be at least 1".into());
        }
        Ok(options)
    }
}

fn main() -> BoxResult<()> {
    let options = Options::parse()?;
    match options.role.as_deref() {
        None => parent(&options),
        Some(role) => {
            let dir = options.dir.clone().ok_or("a child needs --dir")?;
            let mut out = Reporter::default();
            match role {
                "memory" => memory_reference(&options, &mut out)?,
                "fjall" => {
                    let path = dir.join("fjall");
                    store_run::<FjallStore>(&options, &dir, &path, &mut out)?;
                    exit_without_closing()?;
                }
                "redb" => {
                    let path = dir.join("redb");
                    store_run::<RedbStore>(&options, &dir, &path, &mut out)?;
                    exit_without_closing()?;
                }
                "fjall-crashed" => reopen_after_crash::<FjallStore>(&options, &dir, &mut out)?,
                "redb-crashed" => reopen_after_crash::<RedbStore>(&options, &dir, &mut out)?,
                other => return Err(format!("unknown role {other}").into()),
            }
            Ok(())
        }
    }
}

/// Runs each child in turn, prints the table, writes `--out`, and removes the data.
fn parent(options: &Options) -> BoxResult<()> {
    let (root, created) = match &options.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            (dir.clone(), false)
        }
        None => {
            let dir = std::env::temp_dir().join(format!(
                "store_bench-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .as_nanos()
            ));
            std::fs::create_dir(&dir)?;
            (dir, true)
        }
    };
    let result = run_children(options, &root);
    for store in ["fjall", "redb"] {
        let path = root.join(store);
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
    }
    if created {
        std::fs::remove_dir_all(&root)?;
    }
    let figures = result?;
    print_table(options, &figures);
    if let Some(out) = &options.out {
        let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
        for figure in &figures {
            serde_json::to_writer(&mut file, figure)?;
            file.write_all(b"\n")?;
        }
        file.flush()?;
        eprintln!("wrote {} figures to {}", figures.len(), out.display());
    }
    Ok(())
}

fn run_children(options: &Options, root: &Path) -> BoxResult<Vec<Figure>> {
    let mut figures = Vec::new();
    let mut roles = vec!["memory".to_owned()];
    for store in &options.stores {
        roles.push(store.clone());
        roles.push(format!("{store}-crashed"));
    }
    for role in roles {
        eprintln!("store_bench: {role} ...");
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--role", &role])
            .args(["--records", &options.records.to_string()])
            .args(["--reads", &options.reads.to_string()])
            .args(["--updates", &options.updates.to_string()])
            .args(["--synced-updates", &options.synced_updates.to_string()])
            .args(
                options
                    .fjall_cache_mib
                    .map(|mib| ["--fjall-cache-mib".to_owned(), mib.to_string()])
                    .into_iter()
                    .flatten(),
            )
            .arg("--dir")
            .arg(root)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no child stdout")?;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            match line.strip_prefix(RESULT_PREFIX) {
                Some(json) => {
                    let figure: Figure = serde_json::from_str(json)?;
                    eprintln!(
                        "  {} {} {}: {}",
                        figure.store,
                        figure.measure,
                        figure.detail,
                        format_value(figure.value, &figure.unit)
                    );
                    figures.push(figure);
                }
                None => eprintln!("  {line}"),
            }
        }
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("child {role} failed: {status}").into());
        }
    }
    Ok(figures)
}

fn print_table(options: &Options, figures: &[Figure]) {
    println!(
        "\n{} records (16 B keys, 100 B values), {} point reads, {} updates ({} synced)\n",
        group_digits(options.records),
        group_digits(options.reads),
        group_digits(options.updates),
        group_digits(options.synced_updates)
    );
    println!("| store | measure | detail | figure |");
    println!("|---|---|---|---:|");
    for figure in figures {
        println!(
            "| {} | {} | {} | {} |",
            figure.store,
            figure.measure,
            figure.detail,
            format_value(figure.value, &figure.unit)
        );
    }
}

fn format_value(value: f64, unit: &str) -> String {
    match unit {
        "ops/s" if value >= 1e6 => format!("{:.2} M/s", value / 1e6),
        "ops/s" => format!("{:.1} k/s", value / 1e3),
        "bytes" => format!("{:.1} MiB", value / (1024.0 * 1024.0)),
        "KiB" => format!("{:.1} MiB", value / 1024.0),
        "ms" => format!("{value:.1} ms"),
        other => format!("{value:.2} {other}"),
    }
}

fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A child's figures, printed on stdout as `RESULT {json}` lines for the parent.
#[derive(Default)]
struct Reporter {
    store: String,
}

impl Reporter {
    fn report(&mut self, measure: &str, detail: &str, value: f64, unit: &str) -> BoxResult<()> {
        self.emit(Figure {
            store: self.store.clone(),
            measure: measure.into(),
            detail: detail.into(),
            value,
            unit: unit.into(),
            ops: 0,
            seconds: 0.0,
        })
    }

    fn rate(&mut self, measure: &str, detail: &str, ops: u64, elapsed: Duration) -> BoxResult<()> {
        let seconds = elapsed.as_secs_f64();
        self.emit(Figure {
            store: self.store.clone(),
            measure: measure.into(),
            detail: detail.into(),
            value: ops as f64 / seconds.max(1e-9),
            unit: "ops/s".into(),
            ops,
            seconds,
        })
    }

    fn emit(&mut self, figure: Figure) -> BoxResult<()> {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{RESULT_PREFIX}{}", serde_json::to_string(&figure)?)?;
        stdout.flush()?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The workload.

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A xorshift64* generator (never seeded with 0).
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(splitmix64(seed) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0; the modulo bias is negligible here).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The key of record `i`: distinct for distinct `i` (splitmix64 is a bijection), in random
/// order.
fn key(i: u64) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    key[..8].copy_from_slice(&splitmix64(i).to_be_bytes());
    key[8..].copy_from_slice(&splitmix64(i ^ 0x5555_5555_5555_5555).to_be_bytes());
    key
}

/// The value of record `i` as written at version `version` (0 by the restore, 1 by updates).
fn value(i: u64, version: u64, out: &mut [u8; VALUE_LEN]) {
    let mut rng = XorShift::new(i.wrapping_mul(31).wrapping_add(version << 56));
    for chunk in out.chunks_mut(8) {
        let bytes = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

fn offset_bytes(offset: u64) -> [u8; 8] {
    offset.to_be_bytes()
}

fn parse_offset(bytes: &[u8]) -> BoxResult<u64> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| "applied_offset is not 8 bytes")?;
    Ok(u64::from_be_bytes(array))
}

// ---------------------------------------------------------------------------------------------
// The stores.

/// Durability of a batch of writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sync {
    /// Not synced to disk (each store's weakest mode).
    No,
    /// Written to the OS, not synced (fjall only).
    Os,
    /// Synced to disk before the commit returns.
    Disk,
}

trait Store: Sized {
    const NAME: &'static str;
    /// The update modes: (name in the table, durability, whether it syncs to disk per write).
    const UPDATE_MODES: &'static [(&'static str, Sync)];

    fn open(path: &Path, options: &Options) -> BoxResult<Self>;
    /// Writes `records` (key, value) and `applied_offset` atomically.
    fn write_batch(
        &mut self,
        records: &[([u8; KEY_LEN], [u8; VALUE_LEN])],
        offset: u64,
        sync: Sync,
    ) -> BoxResult<()>;
    /// Makes every write so far durable.
    fn sync(&mut self) -> BoxResult<()>;
    fn get(&self, key: &[u8]) -> BoxResult<Option<Vec<u8>>>;
    /// Checks `n` random reads within one read transaction, when the store has them.
    fn read_many(&self, _keys: &mut dyn FnMut() -> u64, _n: u64) -> BoxResult<Option<u64>> {
        Ok(None)
    }
    fn applied_offset(&self) -> BoxResult<Option<u64>>;
    /// Brings the store to its settled shape when it has one (fjall: memtables flushed and a
    /// major compaction); `false` if there is nothing to do.
    fn settle(&mut self) -> BoxResult<bool> {
        Ok(false)
    }
}

struct FjallStore {
    db: fjall::Database,
    data: fjall::Keyspace,
    meta: fjall::Keyspace,
}

impl Store for FjallStore {
    const NAME: &'static str = "fjall";
    const UPDATE_MODES: &'static [(&'static str, Sync)] = &[
        ("none (in-process journal buffer)", Sync::No),
        ("buffer (written to the OS)", Sync::Os),
        ("syncdata (fdatasync per write)", Sync::Disk),
    ];

    fn open(path: &Path, options: &Options) -> BoxResult<Self> {
        let mut builder = fjall::Database::builder(path);
        if let Some(mib) = options.fjall_cache_mib {
            builder = builder.cache_size(mib * 1024 * 1024);
        }
        let db = builder.open()?;
        let data = db.keyspace("data", fjall::KeyspaceCreateOptions::default)?;
        let meta = db.keyspace("meta", fjall::KeyspaceCreateOptions::default)?;
        Ok(FjallStore { db, data, meta })
    }

    fn write_batch(
        &mut self,
        records: &[([u8; KEY_LEN], [u8; VALUE_LEN])],
        offset: u64,
        sync: Sync,
    ) -> BoxResult<()> {
        let durability = match sync {
            Sync::No => None,
            Sync::Os => Some(fjall::PersistMode::Buffer),
            Sync::Disk => Some(fjall::PersistMode::SyncData),
        };
        let mut batch = fjall::OwnedWriteBatch::with_capacity(self.db.clone(), records.len() + 1)
            .durability(durability);
        for (k, v) in records {
            batch.insert(&self.data, &k[..], &v[..]);
        }
        batch.insert(&self.meta, OFFSET_KEY, &offset_bytes(offset)[..]);
        batch.commit()?;
        Ok(())
    }

    fn sync(&mut self) -> BoxResult<()> {
        self.db.persist(fjall::PersistMode::SyncAll)?;
        Ok(())
    }

    fn get(&self, key: &[u8]) -> BoxResult<Option<Vec<u8>>> {
        Ok(self.data.get(key)?.map(|v| v.to_vec()))
    }

    fn settle(&mut self) -> BoxResult<bool> {
        self.data.rotate_memtable_and_wait()?;
        self.meta.rotate_memtable_and_wait()?;
        self.data.major_compact()?;
        Ok(true)
    }

    fn applied_offset(&self) -> BoxResult<Option<u64>> {
        self.meta
            .get(OFFSET_KEY)?
            .map(|v| parse_offset(&v))
            .transpose()
    }
}

const REDB_DATA: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("data");
const REDB_META: redb::TableDefinition<&[u8], u64> = redb::TableDefinition::new("meta");

struct RedbStore {
    db: redb::Database,
}

impl Store for RedbStore {
    const NAME: &'static str = "redb";
    const UPDATE_MODES: &'static [(&'static str, Sync)] = &[
        ("none (durable at a later immediate commit)", Sync::No),
        ("immediate (fsync per write)", Sync::Disk),
    ];

    fn open(path: &Path, _options: &Options) -> BoxResult<Self> {
        std::fs::create_dir_all(path)?;
        let db = redb::Database::create(path.join("table.redb"))?;
        Ok(RedbStore { db })
    }

    fn write_batch(
        &mut self,
        records: &[([u8; KEY_LEN], [u8; VALUE_LEN])],
        offset: u64,
        sync: Sync,
    ) -> BoxResult<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(match sync {
            Sync::No | Sync::Os => redb::Durability::None,
            Sync::Disk => redb::Durability::Immediate,
        })?;
        {
            let mut data = txn.open_table(REDB_DATA)?;
            for (k, v) in records {
                data.insert(&k[..], &v[..])?;
            }
            let mut meta = txn.open_table(REDB_META)?;
            meta.insert(OFFSET_KEY, offset)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn sync(&mut self) -> BoxResult<()> {
        // An empty immediate commit makes the non-durable commits before it durable.
        let txn = self.db.begin_write()?;
        txn.commit()?;
        Ok(())
    }

    fn get(&self, key: &[u8]) -> BoxResult<Option<Vec<u8>>> {
        use redb::{ReadableDatabase, ReadableTable};
        let txn = self.db.begin_read()?;
        let table = txn.open_table(REDB_DATA)?;
        let found = table.get(key)?.map(|v| v.value().to_vec());
        Ok(found)
    }

    fn read_many(&self, keys: &mut dyn FnMut() -> u64, n: u64) -> BoxResult<Option<u64>> {
        use redb::{ReadableDatabase, ReadableTable};
        let txn = self.db.begin_read()?;
        let table = txn.open_table(REDB_DATA)?;
        let mut expected = [0u8; VALUE_LEN];
        let mut found = 0;
        for _ in 0..n {
            let i = keys();
            value(i, 0, &mut expected);
            if let Some(v) = table.get(&key(i)[..])? {
                if v.value() != &expected[..] {
                    return Err(format!("redb: wrong value for record {i}").into());
                }
                found += 1;
            }
        }
        Ok(Some(found))
    }

    fn applied_offset(&self) -> BoxResult<Option<u64>> {
        use redb::{ReadableDatabase, ReadableTable};
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(REDB_META) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let offset = table.get(OFFSET_KEY)?.map(|v| v.value());
        Ok(offset)
    }
}

/// Applies records `0..records` in batches of `batch`, each with its offset; `sync` per batch,
/// and a final sync to disk when the batches were not synced.
fn restore<S: Store>(store: &mut S, records: u64, batch: usize, sync: Sync) -> BoxResult<()> {
    let mut buffer = Vec::with_capacity(batch);
    let mut v = [0u8; VALUE_LEN];
    let mut i = 0;
    while i < records {
        buffer.clear();
        let end = (i + batch as u64).min(records);
        for j in i..end {
            value(j, 0, &mut v);
            buffer.push((key(j), v));
        }
        store.write_batch(&buffer, end - 1, sync)?;
        i = end;
    }
    if sync != Sync::Disk {
        store.sync()?;
    }
    Ok(())
}

/// Allocated bytes (`du`) and apparent bytes of the files under `path`.
fn disk_usage(path: &Path) -> BoxResult<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut allocated = 0;
    let mut apparent = 0;
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let metadata = entry.metadata()?;
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                allocated += metadata.blocks() * 512;
                apparent += metadata.len();
            }
        }
    }
    Ok((allocated, apparent))
}

fn check_offset(offset: Option<u64>, expected: u64) -> BoxResult<()> {
    if offset != Some(expected) {
        return Err(format!("applied_offset is {offset:?}, expected {expected}").into());
    }
    Ok(())
}

fn store_run<S: Store>(
    options: &Options,
    root: &Path,
    path: &Path,
    out: &mut Reporter,
) -> BoxResult<()> {
    out.store = S::NAME.into();
    let records = options.records;
    let last = records - 1;

    // 1. Restores, each into an empty store; the last one (10,000, end) is kept.
    let mut runs = Vec::new();
    for batch in BATCH_SIZES {
        runs.push((batch, Sync::Disk));
    }
    for batch in BATCH_SIZES {
        runs.push((batch, Sync::No));
    }
    for (batch, sync) in runs {
        let scratch = root.join(format!("{}-restore", S::NAME));
        if scratch.exists() {
            std::fs::remove_dir_all(&scratch)?;
        }
        let mut store = S::open(&scratch, options)?;
        let start = Instant::now();
        restore(&mut store, records, batch, sync)?;
        let elapsed = start.elapsed();
        let mode = if sync == Sync::Disk {
            "synced per batch"
        } else {
            "synced at the end"
        };
        out.rate(
            "restore",
            &format!("batches of {}, {mode}", group_digits(batch as u64)),
            records,
            elapsed,
        )?;
        check_offset(store.applied_offset()?, last)?;
        let keep = batch == BATCH_SIZES[BATCH_SIZES.len() - 1] && sync == Sync::No;
        if keep {
            // 2. Size, open and closed.
            let (allocated, apparent) = disk_usage(&scratch)?;
            out.report(
                "size after restore",
                "open, allocated (du)",
                allocated as f64,
                "bytes",
            )?;
            out.report(
                "size after restore",
                "open, apparent",
                apparent as f64,
                "bytes",
            )?;
            drop(store);
            let (allocated, apparent) = disk_usage(&scratch)?;
            out.report(
                "size after restore",
                "closed, allocated (du)",
                allocated as f64,
                "bytes",
            )?;
            out.report(
                "size after restore",
                "closed, apparent",
                apparent as f64,
                "bytes",
            )?;
            if path.exists() {
                std::fs::remove_dir_all(path)?;
            }
            std::fs::rename(&scratch, path)?;
        } else {
            drop(store);
            std::fs::remove_dir_all(&scratch)?;
        }
    }

    // 3. Reopen and read the offset.
    let start = Instant::now();
    let mut store = S::open(path, options)?;
    let offset = store.applied_offset()?;
    let elapsed = start.elapsed();
    check_offset(offset, last)?;
    out.report(
        "reopen + read offset",
        "after a clean close",
        elapsed.as_secs_f64() * 1e3,
        "ms",
    )?;

    // 4. Point reads.
    let mut rng = XorShift::new(7);
    let mut expected = [0u8; VALUE_LEN];
    let start = Instant::now();
    for _ in 0..options.reads {
        let i = rng.below(records);
        value(i, 0, &mut expected);
        match store.get(&key(i))? {
            Some(v) if v == expected => {}
            other => return Err(format!("record {i}: read {other:?}").into()),
        }
    }
    let detail = if S::NAME == "redb" {
        "random existing keys, a read transaction each"
    } else {
        "random existing keys"
    };
    out.rate("point reads", detail, options.reads, start.elapsed())?;
    let mut rng = XorShift::new(8);
    let start = Instant::now();
    let found = store.read_many(&mut || rng.below(records), options.reads)?;
    let elapsed = start.elapsed();
    if let Some(found) = found {
        if found != options.reads {
            return Err(format!("{found} of {} reads found", options.reads).into());
        }
        out.rate(
            "point reads",
            "random existing keys, one read transaction",
            options.reads,
            elapsed,
        )?;
    }

    // 4b. fjall: flush and compact, then the same reads and the size again.
    let start = Instant::now();
    if store.settle()? {
        out.report(
            "flush + major compaction",
            "after the reads",
            start.elapsed().as_secs_f64() * 1e3,
            "ms",
        )?;
        let (allocated, apparent) = disk_usage(path)?;
        out.report(
            "size after compaction",
            "allocated (du)",
            allocated as f64,
            "bytes",
        )?;
        out.report(
            "size after compaction",
            "apparent",
            apparent as f64,
            "bytes",
        )?;
        let mut rng = XorShift::new(7);
        let start = Instant::now();
        for _ in 0..options.reads {
            let i = rng.below(records);
            value(i, 0, &mut expected);
            match store.get(&key(i))? {
                Some(v) if v == expected => {}
                other => return Err(format!("record {i}: read {other:?}").into()),
            }
        }
        out.rate(
            "point reads",
            "random existing keys, after compaction",
            options.reads,
            start.elapsed(),
        )?;
    }

    // 5. Single-record updates, each with the offset, in its own batch/transaction.
    let mut rng = XorShift::new(9);
    let mut offset = records;
    for &(mode, sync) in S::UPDATE_MODES {
        let n = if sync == Sync::Disk {
            options.synced_updates
        } else {
            options.updates
        };
        let mut one = [([0u8; KEY_LEN], [0u8; VALUE_LEN])];
        let start = Instant::now();
        for _ in 0..n {
            let i = rng.below(records);
            one[0].0 = key(i);
            value(i, 1, &mut one[0].1);
            store.write_batch(&one, offset, sync)?;
            offset += 1;
        }
        let elapsed = start.elapsed();
        out.rate("updates", mode, n, elapsed)?;
        // Whatever the mode, end durable before the next one.
        store.sync()?;
    }
    check_offset(store.applied_offset()?, offset - 1)?;
    if let Some(kib) = proc_stats::peak_rss_kib() {
        out.report("peak RSS of the process", "whole run", kib as f64, "KiB")?;
    }

    // 6. Leave the store open: the process exits without closing it (a crash after a durable
    //    commit), and the `-crashed` child reopens it. Its expected offset is left beside it.
    std::fs::write(
        root.join(format!("{}-expected-offset", S::NAME)),
        (offset - 1).to_string(),
    )?;
    std::mem::forget(store);
    Ok(())
}

/// Exits the process at once, without running destructors (the store stays unclosed).
fn exit_without_closing() -> BoxResult<()> {
    std::io::stdout().flush()?;
    std::process::exit(0);
}

fn reopen_after_crash<S: Store>(
    options: &Options,
    root: &Path,
    out: &mut Reporter,
) -> BoxResult<()> {
    out.store = S::NAME.into();
    let expected_path = root.join(format!("{}-expected-offset", S::NAME));
    let expected: u64 = std::fs::read_to_string(&expected_path)?.trim().parse()?;
    std::fs::remove_file(&expected_path)?;
    let path = root.join(S::NAME);
    let start = Instant::now();
    let store = S::open(&path, options)?;
    let offset = store.applied_offset()?;
    let elapsed = start.elapsed();
    check_offset(offset, expected)?;
    out.report(
        "reopen + read offset",
        "after the process exited without closing",
        elapsed.as_secs_f64() * 1e3,
        "ms",
    )?;
    let start = Instant::now();
    drop(store);
    out.report(
        "close",
        "after that reopen",
        start.elapsed().as_secs_f64() * 1e3,
        "ms",
    )?;
    std::fs::remove_dir_all(&path)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The in-memory reference.

fn memory_reference(options: &Options, out: &mut Reporter) -> BoxResult<()> {
    out.store = "HashMap".into();
    let records = options.records;

    // Memory of HashMap<[u8; 16], i64>, first in this process.
    let before = proc_stats::rss_kib().ok_or("no VmRSS")?;
    let mut counts: HashMap<[u8; KEY_LEN], i64> = HashMap::new();
    for i in 0..records {
        counts.insert(key(i), i as i64);
    }
    let after = proc_stats::rss_kib().ok_or("no VmRSS")?;
    let peak = proc_stats::peak_rss_kib().ok_or("no VmHWM")?;
    let per_million = (after.saturating_sub(before)) as f64 * 1e6 / records as f64;
    out.report(
        "memory per million entries",
        "HashMap<[u8; 16], i64>, VmRSS after - before",
        per_million,
        "KiB",
    )?;
    out.report(
        "peak RSS of the process",
        "after building HashMap<[u8; 16], i64>",
        peak as f64,
        "KiB",
    )?;
    let sum: i64 = counts.values().sum();
    drop(counts);

    // Generating the records alone.
    let mut v = [0u8; VALUE_LEN];
    let mut checksum = sum as u64;
    let start = Instant::now();
    for i in 0..records {
        value(i, 0, &mut v);
        checksum = checksum.wrapping_add(u64::from(key(i)[0]) + u64::from(v[99]));
    }
    out.rate(
        "generate",
        "key + value, no store",
        records,
        start.elapsed(),
    )?;

    // HashMap<[u8; 16], Vec<u8>> inserts and reads.
    let mut map: HashMap<[u8; KEY_LEN], Vec<u8>> = HashMap::new();
    let start = Instant::now();
    for i in 0..records {
        value(i, 0, &mut v);
        map.insert(key(i), v.to_vec());
    }
    out.rate(
        "restore",
        "HashMap<[u8; 16], Vec<u8>> inserts",
        records,
        start.elapsed(),
    )?;
    let mut rng = XorShift::new(7);
    let start = Instant::now();
    for _ in 0..options.reads {
        let i = rng.below(records);
        value(i, 0, &mut v);
        match map.get(&key(i)) {
            Some(found) if found[..] == v[..] => {}
            other => return Err(format!("record {i}: read {other:?}").into()),
        }
    }
    out.rate(
        "point reads",
        "random existing keys",
        options.reads,
        start.elapsed(),
    )?;
    let peak = proc_stats::peak_rss_kib().ok_or("no VmHWM")?;
    out.report(
        "peak RSS of the process",
        "after the HashMap<[u8; 16], Vec<u8>> run",
        peak as f64,
        "KiB",
    )?;
    drop(map);
    if checksum == 42 {
        eprintln!("(checksum {checksum})");
    }
    Ok(())
}
