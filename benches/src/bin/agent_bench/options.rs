//! Command-line options of `agent_bench`, shared by the parent and the children it starts
//! (a child gets the parent's options back plus `--role` and its topic and group names).

use std::time::Duration;

use mephisto_benches::tansu::BoxError;

/// Which brokers a campaign runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerChoice {
    /// A private tansu (or `$MEPHISTO_BROKER`).
    Tansu,
    /// The loopback replay server hosted by the parent.
    Replay,
    /// tansu, then the replay server.
    Both,
}

impl BrokerChoice {
    /// The broker kinds to run on, in order.
    pub fn kinds(self) -> &'static [&'static str] {
        match self {
            BrokerChoice::Tansu => &["tansu"],
            BrokerChoice::Replay => &["replay"],
            BrokerChoice::Both => &["tansu", "replay"],
        }
    }
}

/// Every option; see the module comment of `main.rs` for their meaning.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--role`: run as this child role (the parent runs without it).
    pub role: Option<String>,
    /// Bootstrap URL (children; the parent fills it per broker).
    pub broker_url: String,
    /// `--broker`: where the campaign runs.
    pub brokers: BrokerChoice,
    /// `--records`: input records of the main measurement (a child: of its input topic).
    pub records: u64,
    /// `--partitions`: input partitions of the main measurement (a child: of its topics).
    pub partitions: u32,
    /// `--runs`: rounds of every measurement.
    pub runs: usize,
    /// `--variants`: `noop`, `add`.
    pub variants: Vec<String>,
    /// Roles of the main measurement: `mephisto`, `rdkafka`, `fetcher`, `consume`, `faust`.
    pub roles: Vec<String>,
    /// A child's variant.
    pub variant: String,
    /// `--faust-records`: output records the Faust peer is timed over.
    pub faust_records: u64,
    /// `--partitions-sweep`: partition counts of the sweep (none: no sweep).
    pub sweep: Vec<u32>,
    /// `--sweep-records`: input records per sweep point.
    pub sweep_records: u64,
    /// `--sweep-roles`: roles measured at each sweep point.
    pub sweep_roles: Vec<String>,
    /// `--out`: JSON lines file appended to.
    pub out: Option<String>,
    /// `--python`: the interpreter of the Faust peer.
    pub python: String,
    /// `--mephisto-concurrency`: actors of the Mephisto agent.
    pub concurrency: usize,
    /// `--max-seconds`: a pipeline run's limit after its first output record.
    pub max_seconds: u64,
    /// `--asks`: timed asks per ask child.
    pub asks: usize,
    /// `--warmup`: untimed asks first.
    pub warmup: usize,
    /// `--skip-pipeline`: only the asks.
    pub skip_pipeline: bool,
    /// `--skip-ask`: no asks.
    pub skip_ask: bool,
    /// `--timeout`: the limit of each child.
    pub timeout: Duration,
    /// A child's input topic.
    pub input: String,
    /// A child's output (or reply) topic.
    pub output: String,
    /// A child's consumer group.
    pub group: String,
    /// `--mephisto-threads`: tokio workers of a Mephisto child.
    pub threads: usize,
    /// Diagnostic: `fetch.wait.max.ms` of both ask consumers.
    pub fetch_wait_ms: Option<u64>,
    /// Diagnostic: `spawn` replaces `Topic::sink()` by a function sink spawning each send.
    pub mephisto_sink: String,
}

const ROLES: [&str; 5] = ["mephisto", "rdkafka", "fetcher", "consume", "faust"];

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn check_roles(roles: &[String]) -> Result<(), BoxError> {
    match roles.iter().find(|r| !ROLES.contains(&r.as_str())) {
        Some(r) => Err(format!("unknown role {r} ({})", ROLES.join(", ")).into()),
        None => Ok(()),
    }
}

impl Options {
    /// The options of this process's command line.
    pub fn parse() -> Result<Self, BoxError> {
        Self::parse_from(std::env::args().skip(1).collect())
    }

    fn parse_from(args: Vec<String>) -> Result<Self, BoxError> {
        let mut o = Options {
            role: None,
            broker_url: String::new(),
            brokers: BrokerChoice::Both,
            records: 1_000_000,
            partitions: 8,
            runs: 1,
            variants: vec!["noop".into(), "add".into()],
            roles: ROLES.iter().map(|r| (*r).to_owned()).collect(),
            variant: "add".into(),
            faust_records: 20_000,
            sweep: Vec::new(),
            sweep_records: 200_000,
            sweep_roles: vec![
                "mephisto".into(),
                "rdkafka".into(),
                "fetcher".into(),
                "consume".into(),
            ],
            out: None,
            python: ".venv/bin/python".into(),
            concurrency: 1,
            max_seconds: 60,
            asks: 2000,
            warmup: 200,
            skip_pipeline: false,
            skip_ask: false,
            timeout: Duration::from_secs(1200),
            input: String::new(),
            output: String::new(),
            group: String::new(),
            threads: 2,
            fetch_wait_ms: None,
            mephisto_sink: "topic".into(),
        };
        let mut i = 0;
        while i < args.len() {
            let flag = args[i].as_str();
            match flag {
                "--skip-pipeline" | "--skip-ask" => {
                    o.skip_pipeline |= flag == "--skip-pipeline";
                    o.skip_ask |= flag == "--skip-ask";
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let value = args
                .get(i + 1)
                .ok_or_else(|| format!("{flag} needs a value"))?
                .clone();
            match flag {
                "--role" => o.role = Some(value),
                "--broker-url" => o.broker_url = value,
                "--broker" => {
                    o.brokers = match value.as_str() {
                        "tansu" => BrokerChoice::Tansu,
                        "replay" => BrokerChoice::Replay,
                        "both" => BrokerChoice::Both,
                        _ => return Err(format!("--broker {value}: tansu, replay or both").into()),
                    }
                }
                "--records" => o.records = value.parse()?,
                "--partitions" => o.partitions = value.parse()?,
                "--runs" => o.runs = value.parse()?,
                "--variants" => o.variants = list(&value),
                "--variant" => o.variant = value,
                "--roles" => o.roles = list(&value),
                "--faust-records" => o.faust_records = value.parse()?,
                "--partitions-sweep" => {
                    o.sweep = list(&value)
                        .iter()
                        .map(|p| p.parse())
                        .collect::<Result<_, _>>()?
                }
                "--sweep-records" => o.sweep_records = value.parse()?,
                "--sweep-roles" => o.sweep_roles = list(&value),
                "--out" => o.out = Some(value),
                "--python" => o.python = value,
                "--mephisto-concurrency" => o.concurrency = value.parse()?,
                "--max-seconds" => o.max_seconds = value.parse()?,
                "--asks" => o.asks = value.parse()?,
                "--warmup" => o.warmup = value.parse()?,
                "--timeout" => o.timeout = Duration::from_secs(value.parse()?),
                "--input" => o.input = value,
                "--output" => o.output = value,
                "--group" => o.group = value,
                "--mephisto-threads" => o.threads = value.parse()?,
                "--fetch-wait-ms" => o.fetch_wait_ms = Some(value.parse()?),
                "--mephisto-sink" => o.mephisto_sink = value,
                _ => return Err(format!("unknown option {flag}").into()),
            }
            i += 2;
        }
        if let Some(v) = o.variants.iter().find(|v| *v != "noop" && *v != "add") {
            return Err(format!("unknown variant {v} (noop, add)").into());
        }
        check_roles(&o.roles)?;
        check_roles(&o.sweep_roles)?;
        if o.partitions == 0 || o.sweep.contains(&0) {
            return Err("partition counts must be at least 1".into());
        }
        Ok(o)
    }

    /// The arguments of a child running `role` on `variant` from `input` to `output`.
    pub fn child_args(&self, role: &str, variant: &str, topics: &ChildTopics) -> Vec<String> {
        [
            ("--role", role.to_owned()),
            ("--broker-url", self.broker_url.clone()),
            ("--records", topics.records.to_string()),
            ("--partitions", topics.partitions.to_string()),
            ("--variant", variant.to_owned()),
            ("--mephisto-concurrency", self.concurrency.to_string()),
            ("--asks", self.asks.to_string()),
            ("--warmup", self.warmup.to_string()),
            ("--timeout", self.timeout.as_secs().to_string()),
            ("--input", topics.input.clone()),
            ("--output", topics.output.clone()),
            ("--group", topics.group.clone()),
            ("--mephisto-threads", self.threads.to_string()),
            ("--mephisto-sink", self.mephisto_sink.clone()),
        ]
        .into_iter()
        .chain(
            self.fetch_wait_ms
                .map(|ms| ("--fetch-wait-ms", ms.to_string())),
        )
        .flat_map(|(k, v)| [k.to_owned(), v])
        .collect()
    }
}

/// The topics, group and sizes one child works on.
#[derive(Debug, Clone)]
pub struct ChildTopics {
    /// Topic read.
    pub input: String,
    /// Topic written (or the reply topic of an ask child).
    pub output: String,
    /// Consumer group.
    pub group: String,
    /// Records in the input topic.
    pub records: u64,
    /// Partitions of the input (and output) topic.
    pub partitions: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, BoxError> {
        Options::parse_from(args.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn defaults_and_lists() {
        let o = parse(&[]).unwrap();
        assert_eq!((o.records, o.partitions), (1_000_000, 8));
        assert_eq!(o.brokers, BrokerChoice::Both);
        let o = parse(&["--partitions-sweep", "1,8,64", "--broker", "replay"]).unwrap();
        assert_eq!(o.sweep, vec![1, 8, 64]);
        assert_eq!(o.brokers.kinds(), &["replay"]);
        assert!(parse(&["--roles", "mephisto,kafka"]).is_err());
        assert!(parse(&["--variants", "mul"]).is_err());
        assert!(parse(&["--partitions-sweep", "0"]).is_err());
        assert!(parse(&["--records"]).is_err());
    }
}
