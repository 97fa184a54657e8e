//! The control surface's query, read strictly: where DingTalk's paths read a query as DingTalk
//! does, a control call names a user, and a value it cannot read exactly is refused rather than
//! guessed at.

/// A control call's query: each pair as sent, its key decoded, its value decoded only when asked.
pub(super) struct Query<'a>(Vec<(String, &'a str)>);

impl<'a> Query<'a> {
    /// The pairs of `query`, split as `form_urlencoded` splits them (empty pieces skipped).
    pub(super) fn parse(query: Option<&'a str>) -> Self {
        let pairs = query
            .unwrap_or_default()
            .split('&')
            .filter(|piece| !piece.is_empty())
            .map(|piece| {
                let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
                (decode(key).unwrap_or_default(), value)
            })
            .collect();
        Self(pairs)
    }

    /// Whether the query has `name` at all.
    pub(super) fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(key, _)| key == name)
    }

    /// The value of `name`: `None` when absent; an error when it is given more than once (which
    /// one was meant?) or is not UTF-8 once decoded (decoded leniently, `%FF`, `%FE` and a careless
    /// client's GBK would all be U+FFFD, one userid for them all).
    pub(super) fn value(&self, name: &str) -> Result<Option<String>, String> {
        let mut values = self.0.iter().filter(|(key, _)| key == name);
        let Some((_, value)) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(format!("`{name}` is given more than once"));
        }
        decode(value)
            .map(Some)
            .ok_or_else(|| format!("`{name}` is not UTF-8 once percent-decoded"))
    }
}

/// Percent-decodes `raw` (`+` is a space, a `%` without two hex digits is itself), as
/// `form_urlencoded` does; `None` when the bytes are not UTF-8.
fn decode(raw: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut rest = raw.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        bytes.push(match byte {
            b'+' => b' ',
            b'%' => match (tail.first().and_then(hex), tail.get(1).and_then(hex)) {
                (Some(high), Some(low)) => {
                    rest = &tail[2..];
                    high << 4 | low
                }
                _ => b'%',
            },
            byte => byte,
        });
    }
    String::from_utf8(bytes).ok()
}

fn hex(byte: &u8) -> Option<u8> {
    char::from(*byte).to_digit(16).map(|digit| digit as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_as_form_urlencoded_does_when_the_bytes_are_utf8() {
        for raw in [
            "a+b",
            "%E5%BC%A0",
            "%zz",
            "%",
            "%4",
            "50%25",
            "%ef%bf%bd",
            "a=b",
        ] {
            let lenient: String = form_urlencoded::parse(format!("k={raw}").as_bytes())
                .map(|(_, value)| value.into_owned())
                .collect();
            assert_eq!(decode(raw).as_deref(), Some(lenient.as_str()), "{raw}");
        }
        assert_eq!(decode("%FF"), None);
        assert_eq!(decode("%D5%C5%C8%FD"), None);
    }

    #[test]
    fn a_value_given_twice_or_not_utf8_is_an_error() {
        let query = Query::parse(Some("userid=a&&userid=b&name=%FF&x"));
        assert!(query.value("userid").is_err());
        assert!(query.value("name").is_err());
        assert_eq!(query.value("x"), Ok(Some(String::new())));
        assert_eq!(query.value("y"), Ok(None));
        assert!(query.has("x") && !query.has("y"));
    }
}
