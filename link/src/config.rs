//! The command line → a [`Config`]: the routes (where to listen, where to
//! forward) and the one-way delay. Every rule clap cannot say (pairs of
//! `--listen`/`--upstream`, exactly one of `--delay-ms` and `--rtt-ms`, the
//! delay's range) is checked here, each with its own one-line message.

use std::net::{SocketAddr, ToSocketAddrs};

use clap::Parser;

/// The longest delay accepted, in ms: a minute is already no network a
/// benchmark models; larger values are more likely a unit mistake.
const MAX_DELAY_MS: f64 = 60_000.0;

/// The command line as typed.
#[derive(Parser, Debug)]
#[command(
    name = "bakeoff-link",
    version,
    about = "A TCP forwarder that holds every chunk for a set one-way delay in each direction.",
    long_about = "A TCP forwarder that holds every chunk for a set one-way delay in each \
direction, with sub-millisecond accuracy, in order, never dropping: a user-space stand-in \
for a netem link. The round trip through it is 2 x the one-way delay.\n\n\
Examples:\n  bakeoff-link --listen 127.0.0.1:6432 --upstream 127.0.0.1:5432 --delay-ms 0.5\n  \
bakeoff-link --route 10.0.0.2:5432=127.0.0.1:5432 --route 10.0.0.2:6432=127.0.0.1:6433 --rtt-ms 1"
)]
pub struct Cli {
    /// Where to listen, ADDR:PORT (port 0: any free port, printed when
    /// listening). Repeatable; the Nth --listen forwards to the Nth
    /// --upstream.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Vec<String>,
    /// Where to forward, ADDR:PORT: connected once per accepted connection.
    #[arg(long, value_name = "ADDR:PORT")]
    upstream: Vec<String>,
    /// A listen address and its upstream in one word, LISTEN=UPSTREAM.
    /// Repeatable, and may be mixed with --listen/--upstream pairs.
    #[arg(long, value_name = "LISTEN=UPSTREAM")]
    route: Vec<String>,
    /// The one-way delay in ms, applied in each direction (so the round trip
    /// adds 2 x this). Fractions are fine: 0.25. Exactly one of --delay-ms and
    /// --rtt-ms.
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    delay_ms: Option<f64>,
    /// The round trip the link adds, in ms: each direction holds half of it.
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    rtt_ms: Option<f64>,
    /// The longest busy-wait before a chunk is due, in µs. The timer is set
    /// early by the wake-up lateness the link measures (at most this much)
    /// and the rest is spun, within a budget of 5% of one core; 0 never
    /// spins, and chunks are then late by the wake-up lateness. Default is
    /// 100.
    #[arg(long, value_name = "US", default_value_t = 100)]
    spin_max_us: u32,
    /// Run at real-time priority (SCHED_FIFO 1), so that a due chunk is not
    /// kept waiting for a CPU by the processes the link serves: what a
    /// kernel qdisc gets for free. Needs root (CAP_SYS_NICE) and, with
    /// RT_GROUP_SCHED, a `cpu` cgroup with real-time runtime; if refused the
    /// link exits 1. Default is off (normal priority).
    #[arg(long)]
    realtime: bool,
}

/// One forwarding rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Where the link listens (as asked: port 0 is resolved when bound).
    pub listen: SocketAddr,
    /// Where each accepted connection is forwarded.
    pub upstream: SocketAddr,
}

/// Everything the link needs to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// At least one route.
    pub routes: Vec<Route>,
    /// The one-way delay, ns, held in each direction.
    pub delay_ns: u64,
    /// The longest busy-wait before a due time, ns (`--spin-max-us`).
    pub spin_max_ns: u64,
    /// Run at SCHED_FIFO priority 1 (`--realtime`).
    pub realtime: bool,
}

impl Cli {
    /// Checks the rules clap does not know and builds the [`Config`]; the
    /// error is one line naming the argument.
    pub fn into_config(self) -> Result<Config, String> {
        let mut routes = Vec::new();
        if self.listen.len() != self.upstream.len() {
            return Err(format!(
                "--listen and --upstream come in pairs: {} --listen, {} --upstream",
                self.listen.len(),
                self.upstream.len()
            ));
        }
        for (listen, upstream) in self.listen.iter().zip(&self.upstream) {
            routes.push(Route {
                listen: parse_addr("--listen", listen)?,
                upstream: parse_addr("--upstream", upstream)?,
            });
        }
        for route in &self.route {
            let Some((listen, upstream)) = route.split_once('=') else {
                return Err(format!(
                    "--route {route:?}: expected LISTEN=UPSTREAM, e.g. 127.0.0.1:6432=127.0.0.1:5432"
                ));
            };
            routes.push(Route {
                listen: parse_addr("--route", listen)?,
                upstream: parse_addr("--route", upstream)?,
            });
        }
        if routes.is_empty() {
            return Err(
                "no route: give --listen ADDR:PORT --upstream ADDR:PORT, or --route LISTEN=UPSTREAM"
                    .into(),
            );
        }
        let delay_ms = match (self.delay_ms, self.rtt_ms) {
            (Some(delay), None) => check_ms("--delay-ms", delay)?,
            (None, Some(rtt)) => check_ms("--rtt-ms", rtt)? / 2.0,
            (None, None) => return Err("the delay is missing: give --delay-ms or --rtt-ms".into()),
            (Some(_), Some(_)) => {
                return Err(
                    "--delay-ms and --rtt-ms both given: give one (--rtt-ms = 2 x --delay-ms)"
                        .into(),
                );
            }
        };
        Ok(Config {
            routes,
            delay_ns: (delay_ms * 1e6).round() as u64,
            spin_max_ns: u64::from(self.spin_max_us) * 1000,
            realtime: self.realtime,
        })
    }
}

/// A finite, non-negative number of ms no larger than [`MAX_DELAY_MS`].
fn check_ms(flag: &str, ms: f64) -> Result<f64, String> {
    if ms.is_finite() && (0.0..=MAX_DELAY_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(format!(
            "{flag} {ms}: must be between 0 and {MAX_DELAY_MS} ms"
        ))
    }
}

/// `ADDR:PORT`, or `NAME:PORT` resolved now (its first address).
fn parse_addr(flag: &str, text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    match text.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("{flag} {text:?}: resolves to no address")),
        Err(error) => Err(format!("{flag} {text:?}: not ADDR:PORT ({error})")),
    }
}

/// The delay as the listening line prints it: ms, shortest exact form.
pub fn format_ms(ns: u64) -> String {
    format!("{}", ns as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, String> {
        let cli = Cli::try_parse_from(std::iter::once("bakeoff-link").chain(args.iter().copied()))
            .map_err(|error| error.to_string())?;
        cli.into_config()
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("a literal address")
    }

    #[test]
    fn a_listen_upstream_pair_and_a_one_way_delay() {
        let config = config(&[
            "--listen",
            "127.0.0.1:6432",
            "--upstream",
            "127.0.0.1:5432",
            "--delay-ms",
            "0.5",
        ])
        .expect("valid");
        assert_eq!(
            config.routes,
            vec![Route {
                listen: addr("127.0.0.1:6432"),
                upstream: addr("127.0.0.1:5432")
            }]
        );
        assert_eq!(config.delay_ns, 500_000);
        assert_eq!(config.spin_max_ns, 100_000);
        assert!(!config.realtime);
    }

    #[test]
    fn rtt_is_twice_the_one_way_delay() {
        let config =
            config(&["--route", "127.0.0.1:1=127.0.0.1:2", "--rtt-ms", "1"]).expect("valid");
        assert_eq!(config.delay_ns, 500_000);
    }

    #[test]
    fn routes_and_pairs_mix_in_order() {
        let config = config(&[
            "--route",
            "127.0.0.1:1=127.0.0.1:2",
            "--listen",
            "127.0.0.1:3",
            "--upstream",
            "127.0.0.1:4",
            "--route",
            "127.0.0.1:5=127.0.0.1:6",
            "--delay-ms",
            "0",
        ])
        .expect("valid");
        let ports: Vec<(u16, u16)> = config
            .routes
            .iter()
            .map(|route| (route.listen.port(), route.upstream.port()))
            .collect();
        // Pairs first, then the --route words, each in the order given.
        assert_eq!(ports, vec![(3, 4), (1, 2), (5, 6)]);
        assert_eq!(config.delay_ns, 0);
    }

    #[test]
    fn bad_arguments_are_one_line_each() {
        let cases: &[&[&str]] = &[
            &["--listen", "127.0.0.1:1", "--delay-ms", "1"],
            &["--route", "127.0.0.1:1", "--delay-ms", "1"],
            &["--route", "127.0.0.1:1=127.0.0.1:2"],
            &[
                "--route",
                "127.0.0.1:1=127.0.0.1:2",
                "--delay-ms",
                "1",
                "--rtt-ms",
                "2",
            ],
            &["--route", "127.0.0.1:1=127.0.0.1:2", "--delay-ms", "-1"],
            &["--route", "127.0.0.1:1=127.0.0.1:2", "--delay-ms", "NaN"],
            &["--route", "127.0.0.1:1=nowhere", "--delay-ms", "1"],
            &["--delay-ms", "1"],
        ];
        for args in cases {
            let error = config(args).expect_err("invalid");
            assert_eq!(error.lines().count(), 1, "{args:?}: {error}");
        }
    }

    #[test]
    fn the_delay_prints_in_its_shortest_form() {
        assert_eq!(format_ms(500_000), "0.5");
        assert_eq!(format_ms(1_000_000), "1");
        assert_eq!(format_ms(0), "0");
    }
}
