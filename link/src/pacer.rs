//! When to wake up for a due chunk, and when to busy-wait instead.
//!
//! A thread asleep in epoll_wait on this 2-core VM wakes 15–45 µs after its
//! timerfd's deadline (median 28–35 µs, p99 1.4 ms under other tenants'
//! load: `--spin-max-us 0` in the README's table). Sleeping until a chunk's
//! due time would make every chunk that late. So the timer is set early by
//! the *lead*, a running [`LEAD_QUANTILE`] quantile of the wake-up lateness
//! measured here, and the thread spins on the clock for what is left: about
//! 7–13 µs of busy CPU per wake-up here (the summary line's "spinning"),
//! the price of chunks that leave a median 0.1 µs after their due time.
//!
//! Spinning steals CPU from the server and PostgreSQL being measured, so it
//! is bounded twice: never longer than `--spin-max-us`, and never more than
//! [`SPIN_SHARE`] of one core over time (a token bucket). At high chunk rates
//! the bucket runs dry and the link falls back to plain timer wake-ups, late
//! by the wake-up lateness (which then shrinks, as the thread is rarely
//! asleep). `--spin-max-us 0` never spins.

/// The fraction of one core spinning may use over time.
pub const SPIN_SHARE: f64 = 0.05;
/// The spin time that can be saved up, ns: a burst of this much (about a
/// hundred wake-ups' worth) before the share applies. Small, so that chunks
/// due every few µs cannot make the link spin on one core for long.
const SPIN_BURST_NS: f64 = 2_000_000.0;
/// The quantile of wake-up lateness the lead tracks: most wake-ups come
/// before the due time, and the spin after them stays short (the 95th
/// percentile would spin about twice as long per wake-up for a few µs less
/// lateness in one wake-up of five).
pub const LEAD_QUANTILE: f64 = 0.8;
/// How far one sample moves the lead estimate, ns: small, so that one
/// preempted wake-up (ms late under load) moves it by at most this much.
const LEAD_STEP_NS: f64 = 1000.0;

/// The lead estimate and the spin budget.
pub struct Pacer {
    /// `--spin-max-us` in ns: the lead's ceiling; 0 turns spinning off.
    max_lead_ns: u64,
    /// The running [`LEAD_QUANTILE`] of wake-up lateness, ns.
    lead_ns: f64,
    /// Spin time available now, ns.
    budget_ns: f64,
    /// When the budget was last topped up, ns of CLOCK_MONOTONIC.
    refilled_at: u64,
    /// Total time spent spinning, ns.
    spun_ns: u64,
}

impl Pacer {
    /// A pacer whose lead starts at `initial_lead_ns` (a first measurement),
    /// with a full budget at `now`.
    pub fn new(max_lead_ns: u64, initial_lead_ns: u64, now: u64) -> Pacer {
        Pacer {
            max_lead_ns,
            lead_ns: initial_lead_ns as f64,
            budget_ns: SPIN_BURST_NS,
            refilled_at: now,
            spun_ns: 0,
        }
    }

    /// How early to wake up before a due time, ns.
    pub fn lead(&self) -> u64 {
        (self.lead_ns.max(0.0) as u64).min(self.max_lead_ns)
    }

    /// Takes one wake-up lateness (`woke - deadline`, ns, for a timer that
    /// fired while the thread slept) into the lead's quantile estimate: up by
    /// [`LEAD_QUANTILE`] of a step when the sample is above, down by the rest
    /// when below, so the estimate settles where that fraction of samples
    /// falls below it (a "frugal" streaming quantile: no samples kept).
    pub fn observe(&mut self, lateness_ns: u64) {
        if lateness_ns as f64 > self.lead_ns {
            self.lead_ns += LEAD_STEP_NS * LEAD_QUANTILE;
        } else {
            self.lead_ns -= LEAD_STEP_NS * (1.0 - LEAD_QUANTILE);
        }
        // Past the ceiling it would only take long to come back.
        self.lead_ns = self
            .lead_ns
            .clamp(0.0, self.max_lead_ns as f64 + LEAD_STEP_NS);
    }

    /// When to set the timer for a chunk due at `due` (`now` < `due`): early
    /// by the lead while the budget can pay for a spin that long, else at
    /// `due` itself.
    pub fn deadline(&mut self, due: u64, now: u64) -> u64 {
        self.refill(now);
        let lead = self.lead();
        if lead > 0 && self.budget_ns >= lead as f64 {
            due.saturating_sub(lead).max(now + 1)
        } else {
            due
        }
    }

    /// Whether to spin for `wait` ns now rather than sleep: within the lead,
    /// and paid for.
    pub fn may_spin(&mut self, wait: u64, now: u64) -> bool {
        self.refill(now);
        wait <= self.lead() && self.budget_ns >= wait as f64
    }

    /// Charges a spin of `ns` to the budget.
    pub fn spent(&mut self, ns: u64) {
        self.budget_ns -= ns as f64;
        self.spun_ns += ns;
    }

    /// Total time spent spinning, ns.
    pub fn spun_ns(&self) -> u64 {
        self.spun_ns
    }

    fn refill(&mut self, now: u64) {
        let elapsed = now.saturating_sub(self.refilled_at) as f64;
        self.budget_ns = (self.budget_ns + elapsed * SPIN_SHARE).min(SPIN_BURST_NS);
        self.refilled_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lead_settles_near_its_quantile_and_shrugs_off_outliers() {
        let mut pacer = Pacer::new(100_000, 0, 0);
        // Latenesses 20..=59 µs, uniformly and well mixed (a stride of 17
        // through the 40 values), with a 3 ms preemption every
        // 50th sample: 20% of all samples lie above 59 - 40 x (0.2 - 0.02) /
        // 0.98 = 51.7 µs.
        for round in 0..4000u64 {
            let lateness = if round % 50 == 49 {
                3_000_000
            } else {
                20_000 + (round * 17 % 40) * 1000
            };
            pacer.observe(lateness);
        }
        let lead = pacer.lead();
        assert!((48_000..=56_000).contains(&lead), "lead {lead} ns");
    }

    #[test]
    fn the_lead_never_exceeds_the_ceiling_and_zero_never_spins() {
        let mut pacer = Pacer::new(30_000, 0, 0);
        for _ in 0..1000 {
            pacer.observe(1_000_000);
        }
        assert_eq!(pacer.lead(), 30_000);

        let mut off = Pacer::new(0, 50_000, 0);
        assert_eq!(off.lead(), 0);
        assert!(!off.may_spin(1, 10));
        assert_eq!(off.deadline(1_000_000, 10), 1_000_000);
    }

    #[test]
    fn the_budget_caps_spinning_to_its_share_of_a_core() {
        let mut pacer = Pacer::new(100_000, 50_000, 0);
        assert_eq!(pacer.deadline(1_000_000, 0), 950_000);
        // Spend the whole burst.
        let mut now = 0;
        while pacer.may_spin(50_000, now) {
            pacer.spent(50_000);
            now += 1;
        }
        assert!(pacer.spun_ns() >= SPIN_BURST_NS as u64 - 50_000);
        // Dry: wake at the due time itself.
        assert_eq!(pacer.deadline(now + 1_000_000, now), now + 1_000_000);
        // One second later, 5% of it (50 ms) is back, capped at the burst.
        now += 1_000_000_000;
        assert!(pacer.may_spin(50_000, now));
    }
}
