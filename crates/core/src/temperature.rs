//! Temperatures.

/// Degrees Celsius, as a chip's or a board's sensor reads them. With the `serde` feature it
/// serializes as the plain number.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(transparent))]
pub struct Celsius(pub f64);

/// One decimal unless a precision is given: `71.5 °C`.
impl std::fmt::Display for Celsius {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let precision = f.precision().unwrap_or(1);
        write!(f, "{:.precision$} °C", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_the_unit() {
        assert_eq!(Celsius(71.46).to_string(), "71.5 °C");
        assert_eq!(format!("{:.0}", Celsius(71.46)), "71 °C");
    }
}
