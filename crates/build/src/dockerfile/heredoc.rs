//! Finding BuildKit heredoc markers (`<<EOF`, `<<-EOF`, `<<"EOF"`) in RUN, COPY and ADD.

use super::words::split_raw;

/// A heredoc marker found on an instruction line; its body follows the instruction.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Marker {
    pub name: String,
    pub expand: bool,
    pub strip_tabs: bool,
}

/// Chars that end an unquoted delimiter, as they would in a shell (`cat <<EOF>out`).
const DELIMITER_END: &[char] = &['<', '>', '|', '&', ';', '(', ')'];

/// Parses a marker at the start of `text`, returning it and how many bytes it spans.
/// `<<<` (a here-string) and `<<` with no delimiter are not markers.
pub(super) fn marker_at(text: &str, escape: char) -> Option<(Marker, usize)> {
    let rest = text.strip_prefix("<<")?;
    if rest.starts_with('<') {
        return None;
    }
    let (strip_tabs, rest) = match rest.strip_prefix('-') {
        Some(after) => (true, after),
        None => (false, rest),
    };
    let (name, quoted, used) = delimiter(rest, escape)?;
    let marker = Marker {
        name,
        expand: !quoted,
        strip_tabs,
    };
    Some((marker, text.len() - rest.len() + used))
}

/// Reads a delimiter word: unquoted chars up to whitespace or a shell operator, with
/// quoted parts (which make it a quoted delimiter, so no expansion) joined in.
fn delimiter(text: &str, escape: char) -> Option<(String, bool, usize)> {
    let mut name = String::new();
    let mut quoted = false;
    let mut chars = text.char_indices();
    let mut end = text.len();
    while let Some((at, c)) = chars.next() {
        if c.is_whitespace() || DELIMITER_END.contains(&c) {
            end = at;
            break;
        }
        quoted |= c == '\'' || c == '"' || c == escape;
        if c == '\'' || c == '"' {
            // A quote left open swallows the rest of the line: no usable delimiter.
            let closed = chars.by_ref().map(|(_, x)| x).find(|&x| {
                if x != c {
                    name.push(x);
                }
                x == c
            });
            closed?;
        } else if c == escape {
            name.extend(chars.next().map(|(_, c)| c));
        } else {
            name.push(c);
        }
    }
    if name.is_empty() {
        return None;
    }
    Some((name, quoted, end))
}

/// Markers in a shell command line (RUN), outside quotes, in order.
pub(super) fn in_shell(text: &str, escape: char) -> Vec<Marker> {
    let mut markers = Vec::new();
    let mut quote: Option<char> = None;
    let mut at = 0;
    while let Some(c) = text[at..].chars().next() {
        let rest = &text[at..];
        match quote {
            Some(q) if c == q => quote = None,
            Some('"') if c == escape => at += skip_next(rest),
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == escape => at += skip_next(rest),
            None if rest.starts_with("<<") => {
                if let Some((marker, used)) = marker_at(rest, escape) {
                    markers.push(marker);
                    at += used;
                    continue;
                }
                // `<<<` and friends: step over the whole run of `<`.
                at += rest.len() - rest.trim_start_matches('<').len();
                continue;
            }
            None => {}
        }
        at += c.len_utf8();
    }
    markers
}

/// The byte length of the char after an escape (0 at the end), so it is stepped over.
fn skip_next(rest: &str) -> usize {
    rest.chars().nth(1).map_or(0, char::len_utf8)
}

/// Markers among COPY/ADD words: a word that is exactly a marker names a heredoc source.
pub(super) fn in_words(text: &str, escape: char) -> Vec<Marker> {
    split_raw(text, escape)
        .iter()
        .filter_map(|word| word_marker(word, escape))
        .collect()
}

/// The marker a whole word is, if it is one.
pub(super) fn word_marker(word: &str, escape: char) -> Option<Marker> {
    match marker_at(word, escape) {
        Some((marker, used)) if used == word.len() => Some(marker),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(markers: &[Marker]) -> Vec<(&str, bool, bool)> {
        markers
            .iter()
            .map(|m| (m.name.as_str(), m.expand, m.strip_tabs))
            .collect()
    }

    #[test]
    fn plain_dash_and_quoted_markers() {
        let found = in_shell(r#"<<A <<-B <<"C" <<'D' <<\E"#, '\\');
        assert_eq!(
            names(&found),
            vec![
                ("A", true, false),
                ("B", true, true),
                ("C", false, false),
                ("D", false, false),
                ("E", false, false)
            ]
        );
    }

    #[test]
    fn markers_next_to_operators() {
        let found = in_shell("cat <<EOF>out && python3<<PY", '\\');
        assert_eq!(
            names(&found),
            vec![("EOF", true, false), ("PY", true, false)]
        );
    }

    #[test]
    fn not_markers() {
        assert!(in_shell(r#"echo "<<EOF" '<<A' \<<B"#, '\\').is_empty());
        assert!(in_shell("cat <<< word", '\\').is_empty());
        assert!(in_shell("cat << ", '\\').is_empty());
        assert!(in_shell("cat <<'EOF", '\\').is_empty());
        assert!(in_shell("x <<", '\\').is_empty());
    }

    #[test]
    fn copy_words() {
        let found = in_words("--chmod=644 <<one <<'two' /dest/", '\\');
        assert_eq!(
            names(&found),
            vec![("one", true, false), ("two", false, false)]
        );
        assert!(word_marker("<<a>b", '\\').is_none());
    }
}
