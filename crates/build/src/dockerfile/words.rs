//! Splitting instruction arguments into raw words.
//!
//! The words keep their quotes and escapes: removing them is [`super::expand_word`]'s job,
//! once the builder knows the variables. Splitting must still respect quotes, so that
//! `ENV a="x y"` is one word.

/// Splits `text` on whitespace outside quotes, keeping quotes and escapes in the words.
///
/// An unterminated quote runs to the end of the text (expansion reports it later); an
/// escape char at the very end is dropped, as Docker does.
pub(super) fn split_raw(text: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut started = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            // Nothing escapes inside single quotes.
            if c == escape && q != '\'' {
                push_escaped(&mut word, c, chars.next());
                continue;
            }
            word.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        if c.is_whitespace() {
            if started {
                words.push(std::mem::take(&mut word));
                started = false;
            }
            continue;
        }
        started = true;
        if c == escape {
            push_escaped(&mut word, c, chars.next());
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
        }
        word.push(c);
    }
    if started {
        words.push(word);
    }
    words
}

/// Keeps an escape and the char it escapes together, so a later pass sees both.
fn push_escaped(word: &mut String, escape: char, next: Option<char>) {
    if let Some(n) = next {
        word.push(escape);
        word.push(n);
    }
}

/// Parses `text` as a JSON array of strings (Docker's exec form), `None` if it is not one.
pub(super) fn json_array(text: &str) -> Option<Vec<String>> {
    let text = text.trim();
    if !text.starts_with('[') {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// Splits off the first whitespace-separated word; the rest is left-trimmed.
pub(super) fn first_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.find(char::is_whitespace) {
        Some(at) => (&text[..at], text[at..].trim_start()),
        None => (text, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_unquoted_whitespace_keeping_quotes() {
        assert_eq!(
            split_raw(r#"a="x y"  b='p q' c\ d"#, '\\'),
            vec![r#"a="x y""#, "b='p q'", r"c\ d"]
        );
    }

    #[test]
    fn escaped_quote_does_not_open_a_quote() {
        assert_eq!(split_raw(r#"a\"b c"#, '\\'), vec![r#"a\"b"#, "c"]);
        assert_eq!(split_raw(r#"a`"b c"#, '`'), vec![r#"a`"b"#, "c"]);
    }

    #[test]
    fn unterminated_quote_runs_to_the_end() {
        assert_eq!(split_raw(r#"a "b c"#, '\\'), vec!["a", r#""b c"#]);
        assert_eq!(split_raw("a\\", '\\'), vec!["a"]);
    }

    #[test]
    fn json_arrays_and_not() {
        assert_eq!(
            json_array(r#" ["a", "b"] "#),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(json_array("[a, b]"), None);
        assert_eq!(json_array("[1]"), None);
        assert_eq!(json_array("echo [1]"), None);
    }

    #[test]
    fn first_word_splits() {
        assert_eq!(first_word("  RUN   echo hi "), ("RUN", "echo hi "));
        assert_eq!(first_word("RUN"), ("RUN", ""));
        assert_eq!(first_word(""), ("", ""));
    }
}
