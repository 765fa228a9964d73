//! Physical lines into logical ones: parser directives, comments, blank lines, line
//! continuations, and heredoc bodies.

/// What the directives at the top of the file set.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Directives {
    pub escape: Option<char>,
    pub syntax: Option<String>,
}

/// Reads `# escape=` / `# syntax=` from the top of the file.
///
/// Directives only count before anything else: the first line that is not a known
/// directive (a comment, a blank line, an unknown directive, an instruction) ends them, and
/// later ones are plain comments. Errors carry the 1-based line.
pub(super) fn directives(lines: &[&str]) -> Result<Directives, (usize, String)> {
    let mut found = Directives::default();
    for (index, line) in lines.iter().enumerate() {
        let Some((key, value)) = directive(line) else {
            break;
        };
        let line_no = index + 1;
        match key.to_ascii_lowercase().as_str() {
            "escape" => {
                if found.escape.is_some() {
                    return Err((line_no, "only one escape directive is allowed".into()));
                }
                found.escape = Some(escape_char(value).map_err(|m| (line_no, m))?);
            }
            "syntax" => {
                if found.syntax.is_some() {
                    return Err((line_no, "only one syntax directive is allowed".into()));
                }
                found.syntax = Some(value.to_string());
            }
            _ => break,
        }
    }
    Ok(found)
}

/// Splits `# key=value` (a name of letters and digits, a non-empty value).
fn directive(line: &str) -> Option<(&str, &str)> {
    let body = line.trim_start().strip_prefix('#')?;
    let (key, value) = body.split_once('=')?;
    let key = key.trim();
    let value = value.trim();
    let mut chars = key.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_with_letter || !chars.all(|c| c.is_ascii_alphanumeric()) || value.is_empty() {
        return None;
    }
    Some((key, value))
}

fn escape_char(value: &str) -> Result<char, String> {
    match value {
        "\\" => Ok('\\'),
        "`" => Ok('`'),
        other => Err(format!(
            "invalid escape directive {other:?}, expected \\ or `"
        )),
    }
}

/// One instruction's text once continuations are joined.
#[derive(Debug, PartialEq)]
pub(super) struct Logical {
    /// The line it starts on, 1-based.
    pub line: usize,
    /// Joined as Docker does (escape removed, the next line appended as is), trimmed.
    pub text: String,
    /// Each piece trimmed and joined with one space: for display ("Step 1/3 : ...").
    pub original: String,
}

/// The file's lines, read front to back.
pub(super) struct Source<'a> {
    lines: Vec<&'a str>,
    next: usize,
    escape: char,
}

impl<'a> Source<'a> {
    pub fn new(lines: Vec<&'a str>, escape: char) -> Self {
        Source {
            lines,
            next: 0,
            escape,
        }
    }

    /// How many lines the file has, for errors about its end.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    fn take_line(&mut self) -> Option<&'a str> {
        let line = self.lines.get(self.next).copied()?;
        self.next += 1;
        Some(line)
    }

    /// The next instruction, skipping comments and blank lines; `None` at the end.
    pub fn next_logical(&mut self) -> Option<Logical> {
        let first = loop {
            let line = self.take_line()?;
            if !is_blank(line) && !is_comment(line) {
                break line;
            }
        };
        let line = self.next;
        let (piece, mut continues) = strip_continuation(first.trim_start(), self.escape);
        let mut text = piece.to_string();
        let mut pieces = vec![piece.trim()];
        while continues {
            let Some(next) = self.take_line() else {
                break;
            };
            // Comments and blank lines inside a continuation are dropped, not ends.
            if is_blank(next) || is_comment(next) {
                continue;
            }
            let (piece, more) = strip_continuation(next, self.escape);
            text.push_str(piece);
            pieces.push(piece.trim());
            continues = more;
        }
        pieces.retain(|p| !p.is_empty());
        Some(Logical {
            line,
            text: text.trim().to_string(),
            original: pieces.join(" "),
        })
    }

    /// Reads a heredoc body up to its terminator line; `None` if the file ends first.
    pub fn heredoc_body(&mut self, name: &str, strip_tabs: bool) -> Option<String> {
        let mut content = String::new();
        loop {
            let raw = self.take_line()?;
            let line = if strip_tabs {
                raw.trim_start_matches('\t')
            } else {
                raw
            };
            if line == name {
                return Some(content);
            }
            content.push_str(line);
            content.push('\n');
        }
    }
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Removes a trailing escape char (trailing whitespace ignored, as Docker does) and says
/// whether the instruction continues on the next line.
fn strip_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end();
    match trimmed.strip_suffix(escape) {
        Some(rest) => (rest, true),
        None => (line, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str, escape: char) -> Vec<Logical> {
        let mut source = Source::new(text.lines().collect(), escape);
        std::iter::from_fn(|| source.next_logical()).collect()
    }

    #[test]
    fn directives_at_the_top() {
        let lines = ["# syntax=docker/dockerfile:1", "#escape=`", "FROM x"];
        let found = directives(&lines).unwrap();
        assert_eq!(found.escape, Some('`'));
        assert_eq!(found.syntax.as_deref(), Some("docker/dockerfile:1"));
    }

    #[test]
    fn directives_after_a_comment_or_blank_line_are_comments() {
        assert_eq!(
            directives(&["# hello", "# escape=`"]).unwrap(),
            Directives::default()
        );
        assert_eq!(
            directives(&["", "# escape=`"]).unwrap(),
            Directives::default()
        );
        assert_eq!(
            directives(&["# unknown=1", "# escape=`"]).unwrap(),
            Directives::default()
        );
    }

    #[test]
    fn bad_and_repeated_directives() {
        let (line, message) = directives(&["# escape=x"]).unwrap_err();
        assert_eq!(line, 1);
        assert!(message.contains("escape"), "{message}");
        let (line, _) = directives(&["# escape=\\", "# escape=`"]).unwrap_err();
        assert_eq!(line, 2);
    }

    #[test]
    fn continuations_skip_comments_and_blank_lines() {
        let text = "FROM x\n\nRUN a \\\n# note\n\n   b \\  \n  c\nCMD d";
        let found = all(text, '\\');
        assert_eq!(found.len(), 3);
        assert_eq!(found[1].line, 3);
        assert_eq!(found[1].text, "RUN a    b   c");
        assert_eq!(found[1].original, "RUN a b c");
        assert_eq!(found[2].line, 8);
    }

    #[test]
    fn backtick_continuation_leaves_backslashes_alone() {
        let found = all("RUN dir c:\\ `\n  /b\nCMD x", '`');
        assert_eq!(found[0].text, "RUN dir c:\\   /b");
        assert_eq!(found[1].line, 3);
    }

    #[test]
    fn continuation_at_end_of_file() {
        let found = all("RUN a \\", '\\');
        assert_eq!(found[0].text, "RUN a");
    }

    #[test]
    fn heredoc_bodies() {
        let mut source = Source::new(vec!["\tone", "\t\tEOF", "two", "EOF"], '\\');
        assert_eq!(source.heredoc_body("EOF", true).as_deref(), Some("one\n"));
        assert_eq!(source.heredoc_body("EOF", false).as_deref(), Some("two\n"));
        assert_eq!(source.heredoc_body("EOF", false), None);
    }
}
