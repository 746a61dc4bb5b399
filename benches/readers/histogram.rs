//! Latencies of many reads in little space: a log-scale histogram whose buckets are 1/32 of
//! an octave wide, so a percentile read from it is within about 1.1 % of the true value
//! whatever the scale (hundreds of nanoseconds for the kernel, milliseconds for a throttled
//! daemon), and a reader's whole run fits in one pipe write.

/// Buckets per doubling of the latency.
const PER_OCTAVE: f64 = 32.0;

/// Enough buckets for any `u64` of nanoseconds.
const BUCKETS: usize = 64 * PER_OCTAVE as usize;

/// Counts of latencies, in nanoseconds, by log-scale bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    counts: Vec<u64>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
        }
    }
}

impl Histogram {
    /// Counts one latency.
    pub fn record(&mut self, ns: u64) {
        self.counts[bucket(ns)] += 1;
    }

    /// How many latencies were counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds `other`'s counts (the readers of one run into one histogram).
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    /// The latency below which a fraction `q` of the counted ones lie, in nanoseconds (the
    /// middle of its bucket); `None` when nothing was counted.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(((i as f64 + 0.5) / PER_OCTAVE).exp2());
            }
        }
        None
    }

    /// The non-empty buckets as `index:count` words, for the pipe from a reader.
    pub fn encode(&self) -> String {
        let words: Vec<String> = (self.counts.iter().enumerate())
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| format!("{i}:{c}"))
            .collect();
        words.join(" ")
    }

    /// The inverse of [`Histogram::encode`].
    pub fn decode(text: &str) -> Result<Histogram, String> {
        let mut h = Histogram::default();
        for word in text.split_whitespace() {
            let (i, c) = word
                .split_once(':')
                .and_then(|(i, c)| Some((i.parse::<usize>().ok()?, c.parse::<u64>().ok()?)))
                .filter(|(i, _)| *i < BUCKETS)
                .ok_or_else(|| format!("bad histogram bucket {word:?}"))?;
            h.counts[i] += c;
        }
        Ok(h)
    }
}

/// Bucket `i` holds latencies from 2^(i/32) up to 2^((i+1)/32) nanoseconds.
fn bucket(ns: u64) -> usize {
    if ns <= 1 {
        return 0;
    }
    (((ns as f64).log2() * PER_OCTAVE) as usize).min(BUCKETS - 1)
}
