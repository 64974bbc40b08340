//! One measurement and the campaigns made of them: the main one (every role and variant on
//! `--records` over `--partitions`) and the partition sweep (the noop pipelines, the bare
//! fetcher and the consuming app at each partition count of `--partitions-sweep`, `--sweep-records` each).
//!
//! A measurement runs one child: a pipeline child is timed from its first input record to the
//! `N`th output record the parent counts ([`crate::output`]); the fetcher and consume children
//! time themselves
//! (first to last input record). A failing measurement is reported and the campaign goes on.

use std::time::{Duration, Instant};

use mephisto_benches::pipeline_workload;
use mephisto_benches::tansu::BoxError;
use tokio::runtime::Runtime;

use crate::broker::{Broker, Input};
use crate::child::Outcome;
use crate::options::{ChildTopics, Options};
use crate::output::{self, Counted, Until};
use crate::process::spawn_self;
use crate::{faust, report};

/// One measurement.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// `tansu`, `replay` or `external`.
    pub broker: &'static str,
    /// `main` or `sweep`.
    pub kind: &'static str,
    /// `mephisto`, `rdkafka`, `faust` (pipelines), `fetcher` or `consume` (self-timed readers).
    pub client: String,
    /// `noop` or `add`; `raw` for the readers.
    pub variant: String,
    /// Partitions of the input.
    pub partitions: u32,
    /// Run index.
    pub run: usize,
    /// Output records waited for.
    pub expected: u64,
    /// What the parent counted (the fetcher: what it read).
    pub counted: Counted,
    /// What the child reported.
    pub outcome: Outcome,
    /// The broker's CPU seconds during the measurement.
    pub broker_cpu: f64,
    /// Checks that failed (partial run, duplicates, wrong sum, …).
    pub problems: Vec<String>,
    /// The measurement could not be made.
    pub error: Option<String>,
}

impl Measurement {
    /// The role name (`mephisto-pipeline`, `mephisto-fetcher`, …).
    pub fn role(&self) -> String {
        match self.client.as_str() {
            "fetcher" => "mephisto-fetcher".to_owned(),
            "consume" => "mephisto-consume".to_owned(),
            c => format!("{c}-pipeline"),
        }
    }

    /// Seconds from the child's first input record to the last record counted.
    pub fn steady_s(&self) -> f64 {
        self.counted
            .last_output_us
            .saturating_sub(self.outcome.first_input_us) as f64
            / 1e6
    }

    /// Events per second (0 for a failed measurement).
    pub fn rate(&self) -> f64 {
        if self.error.is_some() || self.outcome.first_input_us == 0 {
            return 0.0;
        }
        self.counted.records as f64 / self.steady_s().max(1e-9)
    }

    /// Client CPU seconds from its first input record on (start-up and group join left out).
    pub fn steady_cpu_s(&self) -> f64 {
        self.outcome.cpu_seconds - self.outcome.cpu_at_first_input_s
    }

    /// Client CPU µs per event counted, from the first input record on.
    pub fn cpu_us_per_event(&self) -> f64 {
        self.steady_cpu_s() * 1e6 / self.counted.records.max(1) as f64
    }
}

/// What a campaign shares: options, runtime, run tag, the measurements so far.
pub struct Campaign<'a> {
    /// The parent's options.
    pub o: &'a Options,
    /// The parent's runtime (it hosts the replay server).
    pub rt: &'a Runtime,
    /// Names this campaign's topics and groups.
    pub tag: String,
    /// Every measurement so far.
    pub done: Vec<Measurement>,
}

/// Whether `client` only reads the input and times itself (no output topic).
fn is_reader(client: &str) -> bool {
    client == "fetcher" || client == "consume"
}

/// `items` rotated left by `by`: run `r` starts with a different client.
fn rotated<T: Clone>(items: &[T], by: usize) -> Vec<T> {
    let mut v = items.to_vec();
    if !v.is_empty() {
        let n = by % v.len();
        v.rotate_left(n);
    }
    v
}

impl Campaign<'_> {
    /// The main measurement on `kind`: every variant of every pipeline role, and the fetcher.
    pub fn main(&mut self, kind: &str) -> Result<(), BoxError> {
        let o = self.o;
        let input = Input {
            topic: format!("agent-bench-in-{}-main", self.tag),
            records: o.records,
            partitions: o.partitions,
        };
        let broker = Broker::start(kind, self.rt, &input)?;
        let pipelines: Vec<String> = o.roles.iter().filter(|r| !is_reader(r)).cloned().collect();
        for run in 0..o.runs {
            let mut plan: Vec<(String, String)> = Vec::new();
            for variant in &o.variants {
                for client in rotated(&pipelines, run) {
                    plan.push((client, variant.clone()));
                }
            }
            for reader in o.roles.iter().filter(|r| is_reader(r)) {
                let reader = (reader.clone(), "raw".to_owned());
                if run % 2 == 0 {
                    plan.insert(0, reader);
                } else {
                    plan.push(reader);
                }
            }
            for (client, variant) in plan {
                self.measure(&broker, &input, "main", &client, &variant, run);
            }
        }
        Ok(())
    }

    /// The sweep on `kind`: at each partition count, the noop pipelines and the fetcher.
    pub fn sweep(&mut self, kind: &str) -> Result<(), BoxError> {
        let o = self.o;
        for &partitions in &o.sweep {
            let input = Input {
                topic: format!("agent-bench-in-{}-p{partitions}", self.tag),
                records: o.sweep_records,
                partitions,
            };
            let broker = match Broker::start(kind, self.rt, &input) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("sweep {kind} {partitions} partitions: {e}");
                    continue;
                }
            };
            for run in 0..o.runs {
                for client in rotated(&o.sweep_roles, run) {
                    let variant = if is_reader(&client) { "raw" } else { "noop" };
                    self.measure(&broker, &input, "sweep", &client, variant, run);
                }
            }
        }
        Ok(())
    }

    /// Runs one measurement, prints its line, appends it to `--out`, keeps it.
    fn measure(
        &mut self,
        broker: &Broker,
        input: &Input,
        kind: &'static str,
        client: &str,
        variant: &str,
        run: usize,
    ) {
        let expected = if client == "faust" {
            self.o.faust_records.min(input.records)
        } else {
            input.records
        };
        let name = format!(
            "{client}-{variant}-p{}-{run}-{}",
            input.partitions, self.tag
        );
        let topics = ChildTopics {
            input: input.topic.clone(),
            output: format!("agent-bench-out-{name}"),
            group: format!("agent-bench-{name}"),
            records: input.records,
            partitions: input.partitions,
        };
        let mut m = Measurement {
            broker: broker.kind,
            kind,
            client: client.to_owned(),
            variant: variant.to_owned(),
            partitions: input.partitions,
            run,
            expected,
            counted: Counted::default(),
            outcome: Outcome::default(),
            broker_cpu: f64::NAN,
            problems: Vec::new(),
            error: None,
        };
        let before = broker.replay().map(|s| (s.stats(), s.rejected_apis()));
        let cpu_before = broker.cpu_seconds();
        let made = if is_reader(client) {
            self.reader(broker, &topics, &mut m)
        } else {
            self.pipeline(broker, &topics, &mut m)
        };
        m.broker_cpu = broker.cpu_seconds() - cpu_before;
        if let Err(e) = made {
            m.error = Some(e.to_string());
        }
        if client == "faust" {
            faust::cleanup(&topics);
        }
        if !is_reader(client) {
            broker.delete_topic(self.rt, &topics.output);
        }
        if let (Some(server), Some((stats, rejected))) = (broker.replay(), before) {
            let delta = server.stats() - stats;
            if delta.corrupt_batches + delta.sequence_gaps > 0 {
                m.problems.push(format!(
                    "replay server: {} corrupt batches, {} sequence gaps",
                    delta.corrupt_batches, delta.sequence_gaps
                ));
            }
            let now = server.rejected_apis();
            if now != rejected {
                m.problems.push(format!(
                    "replay server refused API keys (key, count): {now:?}"
                ));
            }
        }
        report::line(&m);
        if let Some(path) = &self.o.out {
            if let Err(e) = report::append_jsonl(path, &m) {
                eprintln!("cannot write {path}: {e}");
            }
        }
        self.done.push(m);
    }

    /// A pipeline child, its output counted until the expected record.
    fn pipeline(
        &self,
        broker: &Broker,
        topics: &ChildTopics,
        m: &mut Measurement,
    ) -> Result<(), BoxError> {
        let o = self.o;
        broker.create_topic(self.rt, &topics.output, topics.partitions)?;
        let mut args = o.clone();
        args.broker_url = broker.url.clone();
        let child = if m.client == "faust" {
            faust::start(&args, &m.variant, topics)?
        } else {
            spawn_self(args.child_args(&m.role(), &m.variant, topics))?
        };
        let counted = output::count(
            self.rt,
            broker,
            &topics.output,
            topics.partitions,
            Until {
                expected: m.expected,
                max_after_first: Duration::from_secs(o.max_seconds),
                deadline: Instant::now() + o.timeout,
            },
        );
        let outcome = child.finish(Duration::from_secs(30));
        m.counted = counted?;
        m.outcome = outcome?;
        let c = &m.counted;
        if c.records < m.expected {
            m.problems.push(format!(
                "partial: {} of {} records in the time limit",
                c.records, m.expected
            ));
        }
        // Only a whole input has a known sum (a partial run stops anywhere).
        if m.expected == topics.records {
            if c.records > m.expected {
                m.problems
                    .push(format!("{} duplicates", c.records - m.expected));
            } else if c.records == m.expected
                && c.sum != pipeline_workload::expected_sum(m.expected)
            {
                m.problems.push(format!(
                    "sum of outputs {} expected {}",
                    c.sum,
                    pipeline_workload::expected_sum(m.expected)
                ));
            }
        }
        if c.unreadable > 0 {
            m.problems
                .push(format!("{} output values unreadable", c.unreadable));
        }
        Ok(())
    }

    /// A reader child (fetcher or consume), which reads the whole input and times itself.
    fn reader(
        &self,
        broker: &Broker,
        topics: &ChildTopics,
        m: &mut Measurement,
    ) -> Result<(), BoxError> {
        let mut args = self.o.clone();
        args.broker_url = broker.url.clone();
        let mut child = spawn_self(args.child_args(&m.role(), "raw", topics))?;
        let until = Instant::now() + self.o.timeout;
        while !child.exited() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        m.outcome = child.finish(Duration::from_secs(5))?;
        m.counted = Counted {
            records: m.outcome.processed,
            first_output_us: m.outcome.first_input_us,
            last_output_us: m.outcome.last_input_us,
            ..Counted::default()
        };
        if m.counted.records != m.expected {
            m.problems.push(format!(
                "read {} of {} records",
                m.counted.records, m.expected
            ));
        }
        Ok(())
    }
}
