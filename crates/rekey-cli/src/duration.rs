//! Owns the durations people type on the command line (`90s`, `15m`, `2h`, `1d`, or a sum such as
//! `1d12h`), read as whole seconds, for the rotation options (`--if-unused-for`, `--grace`) and
//! `monitor activity-log list --offset`.

/// The most seconds rekeyd accepts in `x-rekey-if-unused-for`: it keeps a day of usage.
pub const MAX_IF_UNUSED_FOR: u64 = 86_400;
/// The most seconds rekeyd accepts in `x-rekey-grace-seconds`: a week.
pub const MAX_GRACE: u64 = 604_800;

const RULE: &str = "a whole number followed by s, m, h or d, such as 90s, 15m, 2h or 1d";

/// `raw` in seconds: numbers each followed by `s`, `m`, `h` or `d`, added up; more than zero.
pub fn seconds(raw: &str) -> Result<u64, String> {
    let bad = || format!("'{raw}' is not a duration: use {RULE}");
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in raw.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = std::mem::take(&mut number).parse().map_err(|_| bad())?;
        let unit: u64 = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(total)
}

fn at_most(raw: &str, max: u64, why: &str) -> Result<u64, String> {
    let n = seconds(raw)?;
    if n > max {
        return Err(format!("'{raw}' is {n} seconds; {why}"));
    }
    Ok(n)
}

/// clap's parser for `--if-unused-for`.
pub fn if_unused_for(raw: &str) -> Result<u64, String> {
    at_most(
        raw,
        MAX_IF_UNUSED_FOR,
        "rekeyd keeps a day of usage, so at most 1d (86400 seconds)",
    )
}

/// clap's parser for `--grace`.
pub fn grace(raw: &str) -> Result<u64, String> {
    at_most(
        raw,
        MAX_GRACE,
        "an overlap may last at most 7d (604800 seconds)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_minutes_hours_days_and_sums() {
        assert_eq!(seconds("90s"), Ok(90));
        assert_eq!(seconds("15m"), Ok(900));
        assert_eq!(seconds("2h"), Ok(7_200));
        assert_eq!(seconds("1d"), Ok(86_400));
        assert_eq!(seconds("1d12h"), Ok(129_600));
        assert_eq!(seconds(" 1H30M "), Ok(5_400));
    }

    #[test]
    fn a_bare_number_zero_a_fraction_or_an_unknown_unit_is_refused() {
        for bad in [
            "",
            "90",
            "0s",
            "1.5h",
            "15x",
            "m",
            "-5m",
            "99999999999999999999d",
        ] {
            let err = seconds(bad).unwrap_err();
            assert!(err.contains("90s, 15m, 2h or 1d"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_rotation_options_stop_at_what_rekeyd_accepts() {
        assert_eq!(if_unused_for("1d"), Ok(86_400));
        assert!(if_unused_for("25h").unwrap_err().contains("at most 1d"));
        assert_eq!(grace("7d"), Ok(604_800));
        assert!(grace("8d").unwrap_err().contains("at most 7d"));
    }
}
