//! Test sizes and seeds from the environment.

use std::str::FromStr;

/// Environment variable `name` parsed as a number, or `None` if it is not
/// set. Panics, naming the variable, if it is set but not a number.
pub fn parsed<T: FromStr>(name: &str) -> Option<T> {
    match std::env::var(name) {
        Ok(v) => Some(
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}")),
        ),
        Err(_) => None,
    }
}

/// Environment variable `name` parsed as a number, or `default` if it is not
/// set. Panics, naming the variable, if it is set but not a number.
pub fn env_or<T: FromStr>(name: &str, default: T) -> T {
    parsed(name).unwrap_or(default)
}
