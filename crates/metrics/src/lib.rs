//! Numbers out of a daemon: Prometheus text exposition and durations for people.
//!
//! Prometheus text exposition (format 0.0.4) is the one renderer every hashforge daemon's
//! `/metrics` uses: a pool and a miner in one process (`hashforge up`) each render their own
//! numbers from a snapshot, so there is no global recorder to share and nothing stale is left
//! behind when a pool or a device goes away.
//!
//! Counters are monotonic and named `..._total`; gauges go up and down. Label values are
//! escaped as the format requires; values are written so Prometheus parses them (`+Inf`,
//! `-Inf`, `NaN`).
#![forbid(unsafe_code)]

use std::fmt::Write as _;

/// The `Content-Type` of the text this crate renders.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A `/metrics` page being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// One metric family's samples, written right after its `# HELP` and `# TYPE` lines.
#[derive(Debug)]
pub struct Family<'a> {
    out: &'a mut String,
    name: &'a str,
}

impl Exposition {
    /// An empty page.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a counter family. Its name must end in `_total`, as Prometheus' conventions
    /// (and OpenMetrics) require of counters.
    pub fn counter<'a>(&'a mut self, name: &'a str, help: &str) -> Family<'a> {
        assert!(
            name.ends_with("_total"),
            "counter {name} must be named ..._total"
        );
        self.family(name, "counter", help)
    }

    /// Starts a gauge family.
    pub fn gauge<'a>(&'a mut self, name: &'a str, help: &str) -> Family<'a> {
        self.family(name, "gauge", help)
    }

    fn family<'a>(&'a mut self, name: &'a str, kind: &str, help: &str) -> Family<'a> {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family {
            out: &mut self.out,
            name,
        }
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

impl Family<'_> {
    /// A sample with these labels (`&[]` for none).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{k}=\"{v}\"");
            }
            self.out.push('}');
        }
        self.out.push(' ');
        if value.is_nan() {
            self.out.push_str("NaN");
        } else if value == f64::INFINITY {
            self.out.push_str("+Inf");
        } else if value == f64::NEG_INFINITY {
            self.out.push_str("-Inf");
        } else {
            let _ = write!(self.out, "{value}");
        }
        self.out.push('\n');
        self
    }

    /// A sample without labels.
    pub fn value(&mut self, value: f64) -> &mut Self {
        self.sample(&[], value)
    }
}

/// A duration for people: seconds under two minutes, then minutes, then hours (`42 s`,
/// `17 min`, `3.5 h`).
pub fn duration_for_people(secs: f64) -> String {
    let secs = secs.max(0.0);
    if secs < 120.0 {
        format!("{secs:.0} s")
    } else if secs < 7200.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration_for_people(-1.0), "0 s");
        assert_eq!(duration_for_people(42.4), "42 s");
        assert_eq!(duration_for_people(119.0), "119 s");
        assert_eq!(duration_for_people(17.0 * 60.0), "17 min");
        assert_eq!(duration_for_people(3.5 * 3600.0), "3.5 h");
    }

    #[test]
    fn renders_the_text_format() {
        let mut m = Exposition::new();
        m.counter("x_shares_total", "Shares.\nAll of them.")
            .value(3.0);
        m.gauge("x_rate_hs", "Rate.")
            .sample(&[("pool", "0"), ("url", "a\"b\\c\nd")], 1.5e9)
            .sample(&[("pool", "1")], f64::NAN)
            .sample(&[], f64::INFINITY);
        assert_eq!(
            m.finish(),
            "# HELP x_shares_total Shares.\\nAll of them.\n# TYPE x_shares_total counter\n\
             x_shares_total 3\n\
             # HELP x_rate_hs Rate.\n# TYPE x_rate_hs gauge\n\
             x_rate_hs{pool=\"0\",url=\"a\\\"b\\\\c\\nd\"} 1500000000\n\
             x_rate_hs{pool=\"1\"} NaN\n\
             x_rate_hs +Inf\n"
        );
    }

    #[test]
    #[should_panic(expected = "must be named ..._total")]
    fn a_counter_without_total_is_a_bug() {
        Exposition::new().counter("x_shares", "Shares.");
    }
}
