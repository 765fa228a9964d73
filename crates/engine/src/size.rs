//! Sizes as Docker's command line and configuration write them (go-units).

/// `512`, `10k`, `10kb`, `20m`, `1.5g`, `1 GiB`, `0`: in units of 1000 (go-units'
/// `FromHumanSize`) or, with `binary`, of 1024 (`RAMInBytes`, for memory and log files of
/// the local driver). None for anything else; whether zero is allowed is the caller's rule.
pub fn parse(text: &str, binary: bool) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let t = t.strip_suffix('i').unwrap_or(t);
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (digits, unit) = (&t[..split], t[split..].trim_start());
    let power = match unit {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return None,
    };
    if digits.is_empty() || !digits.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let n: f64 = digits.parse().ok()?;
    let base: f64 = if binary { 1024.0 } else { 1000.0 };
    let bytes = n * base.powi(power);
    (bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_dockers_units() {
        assert_eq!(parse("512", false), Some(512));
        assert_eq!(parse("0", false), Some(0));
        assert_eq!(parse("10k", false), Some(10_000));
        assert_eq!(parse("10KB", false), Some(10_000));
        assert_eq!(parse("20m", false), Some(20_000_000));
        assert_eq!(parse("1g", false), Some(1_000_000_000));
        assert_eq!(parse("1.5k", false), Some(1500));
        assert_eq!(parse("20m", true), Some(20 * 1024 * 1024));
        assert_eq!(parse("2 MiB", true), Some(2 * 1024 * 1024));
        assert_eq!(parse("512kb", true), Some(512 * 1024));
        for bad in ["", "k", "-1", "10x", "ten", ".5.5k"] {
            assert_eq!(parse(bad, false), None, "{bad:?}");
        }
    }
}
