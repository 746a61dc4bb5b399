//! Cutting host lines into the parts a rewrite keeps, shared by the renderers.

/// Splits one line (as yielded by `split_inclusive('\n')`) into its content and its line
/// ending, so a rewritten line keeps the ending the host used (`\n`, `\r\n` or none).
pub(crate) fn split_ending(line: &str) -> (&str, &str) {
    let body = line.strip_suffix('\n').unwrap_or(line);
    let body = body.strip_suffix('\r').unwrap_or(body);
    (body, &line[body.len()..])
}

/// The key of a `Key: value` line (text before the first colon, surrounding whitespace
/// removed) and everything after the colon; `None` for a line with no colon.
pub(crate) fn split_key(body: &str) -> Option<(&str, &str)> {
    body.split_once(':').map(|(k, v)| (k.trim(), v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_ending_keeps_every_kind_of_ending() {
        assert_eq!(split_ending("a b\n"), ("a b", "\n"));
        assert_eq!(split_ending("a b\r\n"), ("a b", "\r\n"));
        assert_eq!(split_ending("a b"), ("a b", ""));
        assert_eq!(split_ending("\n"), ("", "\n"));
        assert_eq!(split_ending(""), ("", ""));
    }

    #[test]
    fn split_key_trims_the_key_only() {
        assert_eq!(split_key("processor\t: 3"), Some(("processor", " 3")));
        assert_eq!(split_key("MemTotal:  1 kB"), Some(("MemTotal", "  1 kB")));
        assert_eq!(split_key("no colon here"), None);
    }
}
