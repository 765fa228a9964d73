//! Docker's shell-word processing: variable substitution and quote removal.
//!
//! This is the small shell Docker applies to ENV, LABEL, ARG, WORKDIR, USER, EXPOSE,
//! VOLUME, COPY/ADD, FROM and STOPSIGNAL values — not a real shell: no globbing, no
//! command substitution, only `$VAR`, `${VAR}` and the `-`, `+`, `?` forms.

/// Why a word could not be expanded; its message is one line, without a file or line
/// (the builder adds `Dockerfile:3:`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("missing closing {0} quote")]
    UnterminatedQuote(char),
    #[error("missing '}}' in variable substitution")]
    MissingBrace,
    #[error("bad substitution {0:?}")]
    BadSubstitution(String),
    /// `${NAME:?message}` with NAME unset (or empty).
    #[error("{name}: {message}")]
    Required { name: String, message: String },
    #[error("variable substitutions nested more than {MAX_DEPTH} deep")]
    TooDeep,
}

/// How deep `${A:-${B:-...}}` may nest: real files stay shallow, and a limit keeps
/// hostile input from exhausting the stack.
const MAX_DEPTH: usize = 64;

/// Expands one word: variables substituted, quotes and escapes removed, unquoted
/// whitespace kept as is.
pub fn expand_word(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    Lexer::new(word, escape, lookup)
        .word(None)
        .map(|(text, _)| text)
}

/// Expands `text` and splits it into words on unquoted whitespace, including whitespace
/// that unquoted variables expand to (Docker's ProcessWords).
pub fn expand_words(
    text: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, ExpandError> {
    Lexer::new(text, escape, lookup)
        .word(None)
        .map(|(_, words)| words.finish())
}

/// Words being built while expanding: quoted and escaped text never splits.
#[derive(Default)]
struct Words {
    done: Vec<String>,
    current: String,
    in_word: bool,
}

impl Words {
    fn raw(&mut self, text: &str) {
        if !text.is_empty() {
            self.current.push_str(text);
            self.in_word = true;
        }
    }

    fn splitting(&mut self, text: &str) {
        for c in text.chars() {
            if !c.is_whitespace() {
                self.current.push(c);
                self.in_word = true;
            } else if self.in_word {
                self.done.push(std::mem::take(&mut self.current));
                self.in_word = false;
            }
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.in_word {
            self.done.push(self.current);
        }
        self.done
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Lexer<'a> {
    fn new(text: &str, escape: char, lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Lexer {
            chars: text.chars().collect(),
            pos: 0,
            depth: 0,
            escape,
            lookup,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    /// Processes up to `stop` (consumed; `}` for a `${...}` word) or the end.
    fn word(&mut self, stop: Option<char>) -> Result<(String, Words), ExpandError> {
        let mut text = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok((text, words));
            }
            let piece = match c {
                '\'' => self.single_quoted()?,
                '"' => self.double_quoted()?,
                '$' => {
                    // Only what variables expand to splits into words.
                    let value = self.dollar()?;
                    words.splitting(&value);
                    text.push_str(&value);
                    continue;
                }
                c if c == self.escape => {
                    self.pos += 1;
                    // An escape at the very end is dropped.
                    self.next().map(String::from).unwrap_or_default()
                }
                c => {
                    self.pos += 1;
                    words.splitting(c.encode_utf8(&mut [0; 4]));
                    text.push(c);
                    continue;
                }
            };
            words.raw(&piece);
            text.push_str(&piece);
        }
        match stop {
            Some(_) => Err(ExpandError::MissingBrace),
            None => Ok((text, words)),
        }
    }

    /// `'...'`: everything literal.
    fn single_quoted(&mut self) -> Result<String, ExpandError> {
        self.pos += 1;
        let mut text = String::new();
        loop {
            match self.next() {
                Some('\'') => return Ok(text),
                Some(c) => text.push(c),
                None => return Err(ExpandError::UnterminatedQuote('\'')),
            }
        }
    }

    /// `"..."`: variables expand; the escape only escapes `$`, `"` and itself.
    fn double_quoted(&mut self) -> Result<String, ExpandError> {
        self.pos += 1;
        let mut text = String::new();
        loop {
            match self.peek() {
                None => return Err(ExpandError::UnterminatedQuote('"')),
                Some('"') => {
                    self.pos += 1;
                    return Ok(text);
                }
                Some('$') => text.push_str(&self.dollar()?),
                Some(c) => {
                    self.pos += 1;
                    let escapable = |n: char| n == '$' || n == '"' || n == self.escape;
                    match self.peek() {
                        Some(n) if c == self.escape && escapable(n) => {
                            self.pos += 1;
                            text.push(n);
                        }
                        _ => text.push(c),
                    }
                }
            }
        }
    }

    /// `$NAME`, `${NAME}`, `${NAME:-word}` and friends; `$` before anything that is not a
    /// name stays a `$`.
    fn dollar(&mut self) -> Result<String, ExpandError> {
        let start = self.pos;
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(self.get(&name).unwrap_or_default());
        }
        self.pos += 1;
        let name = self.name();
        let op = self.next().ok_or(ExpandError::MissingBrace)?;
        if name.is_empty() {
            return Err(self.bad(start));
        }
        match op {
            '}' => Ok(self.get(&name).unwrap_or_default()),
            ':' => match self.next() {
                Some(op @ ('-' | '+' | '?')) => self.modifier(&name, op, true),
                Some(_) => Err(self.bad(start)),
                None => Err(ExpandError::MissingBrace),
            },
            '-' | '+' | '?' => self.modifier(&name, op, false),
            _ => Err(self.bad(start)),
        }
    }

    /// `-` default, `+` alternative, `?` required; with `colon`, an empty value counts as
    /// unset. The word is expanded too, so defaults can nest.
    fn modifier(&mut self, name: &str, op: char, colon: bool) -> Result<String, ExpandError> {
        if self.depth >= MAX_DEPTH {
            return Err(ExpandError::TooDeep);
        }
        self.depth += 1;
        let word = self.word(Some('}'));
        self.depth -= 1;
        let (word, _) = word?;
        let value = self.get(name).filter(|v| !(colon && v.is_empty()));
        match op {
            '-' => Ok(value.unwrap_or(word)),
            '+' => Ok(value.map(|_| word).unwrap_or_default()),
            _ => value.ok_or_else(|| ExpandError::Required {
                name: name.to_string(),
                message: if word.is_empty() {
                    "is not allowed to be unset".into()
                } else {
                    word
                },
            }),
        }
    }

    /// A variable name: letters, digits and `_`; one starting with a digit is only digits.
    fn name(&mut self) -> String {
        let mut name = String::new();
        let digits = self.peek().is_some_and(|c| c.is_ascii_digit());
        while let Some(c) = self.peek() {
            let fits = if digits {
                c.is_ascii_digit()
            } else {
                c.is_alphanumeric() || c == '_'
            };
            if !fits {
                break;
            }
            name.push(c);
            self.pos += 1;
        }
        name
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    fn bad(&self, start: usize) -> ExpandError {
        let end = self.pos.min(self.chars.len());
        let seen: String = self.chars[start..end].iter().take(40).collect();
        ExpandError::BadSubstitution(seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("apple".into()),
            "EMPTY" => Some(String::new()),
            "SPACED" => Some(" one  two ".into()),
            "PATH_" => Some("/usr/bin".into()),
            _ => None,
        }
    }

    fn word(text: &str) -> String {
        expand_word(text, '\\', &env).unwrap()
    }

    fn words(text: &str) -> Vec<String> {
        expand_words(text, '\\', &env).unwrap()
    }

    fn fails(text: &str) -> ExpandError {
        expand_word(text, '\\', &env).unwrap_err()
    }

    #[test]
    fn plain_variables() {
        assert_eq!(word("$A"), "apple");
        assert_eq!(word("${A}"), "apple");
        assert_eq!(word("x${A}y"), "xappley");
        assert_eq!(word("$A-$A"), "apple-apple");
        assert_eq!(word("$UNSET"), "");
        assert_eq!(word("${UNSET}x"), "x");
        assert_eq!(word("$PATH_:/bin"), "/usr/bin:/bin");
    }

    #[test]
    fn dollar_before_a_non_name_is_literal() {
        assert_eq!(word("$"), "$");
        assert_eq!(word("a$ b"), "a$ b");
        assert_eq!(word("$/x"), "$/x");
        assert_eq!(word("5$"), "5$");
    }

    #[test]
    fn default_forms() {
        assert_eq!(word("${UNSET:-d}"), "d");
        assert_eq!(word("${EMPTY:-d}"), "d");
        assert_eq!(word("${A:-d}"), "apple");
        assert_eq!(word("${UNSET-d}"), "d");
        assert_eq!(word("${EMPTY-d}"), "");
        assert_eq!(word("${A-d}"), "apple");
    }

    #[test]
    fn alternative_forms() {
        assert_eq!(word("${A:+alt}"), "alt");
        assert_eq!(word("${EMPTY:+alt}"), "");
        assert_eq!(word("${UNSET:+alt}"), "");
        assert_eq!(word("${EMPTY+alt}"), "alt");
        assert_eq!(word("${UNSET+alt}"), "");
    }

    #[test]
    fn required_forms() {
        assert_eq!(word("${A:?no}"), "apple");
        assert_eq!(word("${EMPTY?no}"), "");
        let err = fails("${EMPTY:?must be set}");
        assert_eq!(err.to_string(), "EMPTY: must be set");
        let err = fails("${UNSET?}");
        assert_eq!(err.to_string(), "UNSET: is not allowed to be unset");
    }

    #[test]
    fn nested_defaults() {
        assert_eq!(word("${UNSET:-${A}}"), "apple");
        assert_eq!(word("${UNSET:-${NOPE:-deep}-x}"), "deep-x");
        assert_eq!(word("${UNSET:-$A/b}"), "apple/b");
        assert_eq!(word(r#"${UNSET:-"a }b"}"#), "a }b");
        assert_eq!(word("${A:+[${A}]}"), "[apple]");
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(word("'$A ${A} \\n'"), "$A ${A} \\n");
        assert_eq!(word("a'b'c"), "abc");
        assert_eq!(word("''"), "");
    }

    #[test]
    fn double_quotes_expand_and_are_removed() {
        assert_eq!(word("\"$A pie\""), "apple pie");
        assert_eq!(word("\"it's\""), "it's");
        assert_eq!(word(r#""a\"b""#), "a\"b");
        assert_eq!(word(r#""\$A""#), "$A");
        assert_eq!(word(r#""a\\b""#), "a\\b");
        // Other escapes inside double quotes keep the backslash.
        assert_eq!(word(r#""a\nb""#), "a\\nb");
    }

    #[test]
    fn escapes_outside_quotes() {
        assert_eq!(word(r"\$A"), "$A");
        assert_eq!(word(r"a\ b"), "a b");
        assert_eq!(word(r"\'x\'"), "'x'");
        assert_eq!(word(r"a\\b"), "a\\b");
        assert_eq!(word(r"a\nb"), "anb");
        assert_eq!(word("trailing\\"), "trailing");
    }

    #[test]
    fn backtick_escape() {
        let expand = |t: &str| expand_word(t, '`', &env).unwrap();
        assert_eq!(expand(r"c:\dir\$A"), r"c:\dir\apple");
        assert_eq!(expand("`$A"), "$A");
        assert_eq!(expand("\"``x`\"\""), "`x\"");
    }

    #[test]
    fn unterminated_things_fail() {
        assert_eq!(fails("'abc"), ExpandError::UnterminatedQuote('\''));
        assert_eq!(fails("\"abc"), ExpandError::UnterminatedQuote('"'));
        assert_eq!(fails("\"abc\\"), ExpandError::UnterminatedQuote('"'));
        assert_eq!(fails("${A"), ExpandError::MissingBrace);
        assert_eq!(fails("${"), ExpandError::MissingBrace);
        assert_eq!(fails("${UNSET:-abc"), ExpandError::MissingBrace);
        assert_eq!(fails("${A:"), ExpandError::MissingBrace);
    }

    #[test]
    fn bad_substitutions() {
        assert!(matches!(fails("${}"), ExpandError::BadSubstitution(_)));
        assert!(matches!(fails("${:-x}"), ExpandError::BadSubstitution(_)));
        assert!(matches!(fails("${A/x/y}"), ExpandError::BadSubstitution(_)));
        assert!(matches!(fails("${A:=x}"), ExpandError::BadSubstitution(_)));
        assert_eq!(fails("${A%x}").to_string(), "bad substitution \"${A%\"");
    }

    #[test]
    fn word_keeps_unquoted_whitespace() {
        assert_eq!(word("a  b $SPACED"), "a  b  one  two ");
    }

    #[test]
    fn words_split_on_unquoted_whitespace() {
        assert_eq!(words("  a b\t c  "), vec!["a", "b", "c"]);
        assert_eq!(words("\"a b\" 'c d' e\\ f"), vec!["a b", "c d", "e f"]);
        assert_eq!(words("x$SPACED\"y\""), vec!["x", "one", "two", "y"]);
        assert_eq!(words("\"$SPACED\""), vec![" one  two "]);
        assert_eq!(words("${UNSET:-p q}"), vec!["p", "q"]);
        assert_eq!(words("$UNSET"), Vec::<String>::new());
        assert_eq!(words("a \"\" b"), vec!["a", "b"]);
        assert_eq!(words("80/tcp ${A}"), vec!["80/tcp", "apple"]);
    }

    #[test]
    fn deep_nesting_fails_instead_of_overflowing() {
        let deep = "${A:-".repeat(100_000);
        assert_eq!(fails(&deep), ExpandError::TooDeep);
        let fine = format!("{}x{}", "${U:-".repeat(10), "}".repeat(10));
        assert_eq!(word(&fine), "x");
    }

    #[test]
    fn digit_names() {
        assert_eq!(word("$1abc"), "abc");
        assert_eq!(word("${10}"), "");
    }

    #[test]
    fn garbage_does_not_panic() {
        let samples = [
            "${",
            "${:",
            "${A:",
            "${A:-",
            "$",
            "\\",
            "'",
            "\"",
            "\"\\",
            "${A:-'",
            "${A:-\"",
            "${A:-${",
            "\u{0}${\u{1}}",
            "€$€{€}",
            "${é:-ü}",
            "$$$$",
            "}}}{{{",
            "${A-${B-${C-",
        ];
        for sample in samples {
            let _ = expand_word(sample, '\\', &env);
            let _ = expand_words(sample, '`', &env);
        }
        let mut state = 0x2545_f491_u32;
        let alphabet: Vec<char> = "${}:-+?'\"\\` aA_1é\n".chars().collect();
        for _ in 0..3000 {
            let len = (next(&mut state) % 12) as usize;
            let text: String = (0..len)
                .map(|_| alphabet[next(&mut state) as usize % alphabet.len()])
                .collect();
            let _ = expand_word(&text, '\\', &env);
            let _ = expand_words(&text, '\\', &env);
        }
    }

    /// xorshift: reproducible pseudo-random input without a dependency.
    fn next(state: &mut u32) -> u32 {
        *state ^= *state << 13;
        *state ^= *state >> 17;
        *state ^= *state << 5;
        *state
    }
}
