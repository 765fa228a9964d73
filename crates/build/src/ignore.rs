//! `.dockerignore`: which paths of a build context are left out.
//!
//! The rules are Docker's: one pattern per line, `#` starts a comment line, patterns are
//! trimmed and cleaned like Go's `filepath.Clean` with a leading `/` dropped, and use Go's
//! `filepath.Match` syntax plus `**` for any number of directories. A `!` prefix makes an
//! exception. The last pattern that matches a path, or any of its parent directories,
//! decides whether it is excluded.

use crate::error::{Error, Result};

/// The parsed patterns of one `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// `!pattern`: re-includes what earlier patterns excluded.
    exception: bool,
    matcher: Matcher,
}

impl Ignore {
    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<Ignore> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let bad = |reason| Error::BadPattern {
                line: index + 1,
                pattern: line.trim().to_string(),
                reason,
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, body) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            if body.is_empty() {
                return Err(bad("`!` needs a pattern after it"));
            }
            let cleaned = clean(body);
            let cleaned = match cleaned.strip_prefix('/') {
                Some(rest) if !rest.is_empty() => rest.to_string(),
                _ => cleaned,
            };
            let matcher = Matcher::compile(&cleaned, true).map_err(bad)?;
            patterns.push(Pattern { exception, matcher });
        }
        Ok(Ignore { patterns })
    }

    /// Whether `rel_path` (relative to the context root, `/`-separated) is left out.
    pub fn is_excluded(&self, rel_path: &str) -> bool {
        let Some(path) = context_relative(rel_path) else {
            return false;
        };
        let parents: Vec<&str> = path.match_indices('/').map(|(at, _)| &path[..at]).collect();
        let mut excluded = false;
        for pattern in &self.patterns {
            // A pattern can only flip the current answer: skip the ones that would not.
            if pattern.exception != excluded {
                continue;
            }
            let m = &pattern.matcher;
            if m.matches(&path) || parents.iter().any(|p| m.matches(p)) {
                excluded = !pattern.exception;
            }
        }
        excluded
    }

    /// Whether the excluded directory `dir` may still hold a path that an exception
    /// re-includes, so that a walker has to look inside it.
    ///
    /// An exception that matches `dir` or one of its parents would already have kept
    /// `dir` itself, so only exceptions that can match something strictly below it count.
    pub fn may_include_under(&self, dir: &str) -> bool {
        let Some(dir) = context_relative(dir) else {
            return true;
        };
        let prefix = format!("{dir}/");
        self.patterns
            .iter()
            .any(|p| p.exception && p.matcher.may_match_below(&prefix))
    }

    /// Adds an exception for exactly `rel_path` (no wildcards), as the CLI does for the
    /// Dockerfile and `.dockerignore` so they always reach the builder.
    pub(crate) fn keep_exactly(&mut self, rel_path: &str) {
        if let Some(path) = context_relative(rel_path) {
            if self.is_excluded(&path) {
                self.patterns.push(Pattern {
                    exception: true,
                    matcher: Matcher::literal(&path),
                });
            }
        }
    }
}

/// `rel` cleaned and without a leading `/`; `None` for the context root itself.
fn context_relative(rel: &str) -> Option<String> {
    let path = clean(rel);
    let path = path.trim_start_matches('/');
    if path.is_empty() || path == "." {
        None
    } else {
        Some(path.to_string())
    }
}

/// Go's `filepath.Clean` for `/`-separated paths: no empty, `.` or inner `..` components,
/// `..` at the start of a rooted path dropped, `.` for an empty result.
pub(crate) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Whether `s` has any of `filepath.Match`'s special characters.
pub(crate) fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

/// A compiled `filepath.Match` pattern, optionally with Docker's `**`.
#[derive(Debug, Clone)]
pub(crate) struct Matcher {
    tokens: Vec<Token>,
}

#[derive(Debug, Clone)]
enum Token {
    Literal(char),
    /// `?`: one character other than `/`.
    One,
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**` followed by more pattern: nothing, or anything ending in `/`.
    AnyDirs,
    /// `**` at the end: anything at all.
    AnyAll,
}

impl Token {
    fn consumes(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::One => c != '/',
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
            Token::Star | Token::AnyDirs | Token::AnyAll => false,
        }
    }
}

impl Matcher {
    /// Compiles `pattern`; with `double_star`, `**` is Docker's any-directories wildcard,
    /// without it two stars are just two `*` (plain `filepath.Match`).
    pub(crate) fn compile(
        pattern: &str,
        double_star: bool,
    ) -> std::result::Result<Matcher, &'static str> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            let token = match c {
                '*' if double_star && chars.get(i) == Some(&'*') => {
                    i += 1;
                    // `**/` is the same as `**`: the slash is part of "any directories".
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    if i == chars.len() {
                        Token::AnyAll
                    } else {
                        Token::AnyDirs
                    }
                }
                '*' => Token::Star,
                '?' => Token::One,
                '[' => {
                    let (token, next) = parse_class(&chars, i)?;
                    i = next;
                    token
                }
                '\\' => {
                    let escaped = chars.get(i).ok_or("it ends with a lone `\\`")?;
                    i += 1;
                    Token::Literal(*escaped)
                }
                c => Token::Literal(c),
            };
            tokens.push(token);
        }
        Ok(Matcher { tokens })
    }

    /// A pattern matching exactly `path`.
    pub(crate) fn literal(path: &str) -> Matcher {
        Matcher {
            tokens: path.chars().map(Token::Literal).collect(),
        }
    }

    /// Whether the whole of `s` matches.
    pub(crate) fn matches(&self, s: &str) -> bool {
        let states = self.run(s);
        states[2 * self.tokens.len()]
    }

    /// Whether some path starting with `prefix` could match.
    fn may_match_below(&self, prefix: &str) -> bool {
        self.run(prefix).iter().any(|&live| live)
    }

    /// Runs the pattern as an automaton over `s` and returns the live states: `2*t` is
    /// "at token t" (`2*n` is the end), `2*t+1` is "inside the `**` at token t". Linear in
    /// the pattern for each character, so no input can make matching blow up.
    fn run(&self, s: &str) -> Vec<bool> {
        let n = self.tokens.len();
        let mut states = vec![false; 2 * n + 2];
        states[0] = true;
        self.close(&mut states);
        for c in s.chars() {
            let mut next = vec![false; 2 * n + 2];
            for (t, token) in self.tokens.iter().enumerate() {
                if states[2 * t + 1] {
                    next[2 * t + 1] = true;
                    next[2 * t + 2] |= c == '/';
                }
                if !states[2 * t] {
                    continue;
                }
                match token {
                    Token::Star => next[2 * t] |= c != '/',
                    Token::AnyAll => next[2 * t] = true,
                    Token::AnyDirs => {
                        next[2 * t + 1] = true;
                        next[2 * t + 2] |= c == '/';
                    }
                    _ => next[2 * t + 2] |= token.consumes(c),
                }
            }
            self.close(&mut next);
            if !next.iter().any(|&live| live) {
                return next;
            }
            states = next;
        }
        states
    }

    /// Adds the states reachable without consuming anything: past every `*` and `**`.
    fn close(&self, states: &mut [bool]) {
        for (t, token) in self.tokens.iter().enumerate() {
            if states[2 * t] && matches!(token, Token::Star | Token::AnyDirs | Token::AnyAll) {
                states[2 * t + 2] = true;
            }
        }
    }
}

/// Parses a character class whose `[` was just before `chars[i]`; returns it and the
/// index after its `]`.
fn parse_class(chars: &[char], mut i: usize) -> std::result::Result<(Token, usize), &'static str> {
    const UNCLOSED: &str = "a `[` has no matching `]`";
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        match chars.get(i) {
            None => return Err(UNCLOSED),
            Some(']') if !ranges.is_empty() => {
                return Ok((Token::Class { negated, ranges }, i + 1))
            }
            _ => {}
        }
        let (lo, next) = class_char(chars, i)?;
        i = next;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            (hi, i) = class_char(chars, i + 1)?;
        }
        ranges.push((lo, hi));
    }
}

/// One (possibly `\`-escaped) character of a class, as Go reads it.
fn class_char(chars: &[char], i: usize) -> std::result::Result<(char, usize), &'static str> {
    match chars.get(i) {
        None => Err("a `[` has no matching `]`"),
        Some('-') | Some(']') => Err("a character class has a stray `-` or `]`"),
        Some('\\') => match chars.get(i + 1) {
            Some(&c) => Ok((c, i + 2)),
            None => Err("it ends with a lone `\\`"),
        },
        Some(&c) => Ok((c, i + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> Ignore {
        Ignore::parse(text).unwrap()
    }

    fn m(pattern: &str, s: &str) -> bool {
        Matcher::compile(pattern, true).unwrap().matches(s)
    }

    #[test]
    fn clean_is_go_filepath_clean() {
        for (input, want) in [
            ("", "."),
            (".", "."),
            ("a/b/../c", "a/c"),
            ("./a//b/", "a/b"),
            ("/../a", "/a"),
            ("../a", "../a"),
            ("a/../..", ".."),
            ("/", "/"),
            ("//a/./b/.", "/a/b"),
        ] {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
    }

    #[test]
    fn go_match_syntax() {
        assert!(m("*.txt", "a.txt"));
        assert!(!m("*.txt", "d/a.txt"), "* does not cross /");
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "a/c"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[a-c]x", "dx"));
        assert!(m("[^a-c]x", "dx"));
        assert!(!m("[^a-c]x", "ax"));
        assert!(
            Matcher::compile("[ab-]x", true).is_err(),
            "Go rejects a trailing -"
        );
        assert!(m(r"a\*b", "a*b"));
        assert!(!m(r"a\*b", "axb"));
        assert!(m(r"[\]]", "]"));
        assert!(m("", ""));
        assert!(!m("", "a"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        for bad in ["[", "a[b", "[]", "a\\", "[a-]", "!", "  !  "] {
            let err = Ignore::parse(bad).unwrap_err();
            assert!(err.to_string().contains("line 1"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn double_star() {
        assert!(m("**/*.go", "a.go"));
        assert!(m("**/*.go", "a/b/c.go"));
        assert!(!m("**/*.go", "a/b/c.goo"));
        assert!(m("a/**/b", "a/b"));
        assert!(m("a/**/b", "a/x/y/b"));
        assert!(!m("a/**/b", "a/xb"));
        assert!(m("a/**", "a/x/y"));
        assert!(!m("a/**", "a"));
        assert!(m("**", "anything/at/all"));
        // Without Docker's extension `**` is two stars: still no `/`.
        let plain = Matcher::compile("**.go", false).unwrap();
        assert!(plain.matches("x.go"));
        assert!(!plain.matches("d/x.go"));
    }

    #[test]
    fn comments_blank_lines_whitespace_and_cleaning() {
        let ig = ignore("\u{feff}# a comment\n\n   \n  /secret/../keys/  \n./build\n#notes\n");
        assert!(ig.is_excluded("keys"));
        assert!(ig.is_excluded("keys/id_rsa"));
        assert!(ig.is_excluded("build/out.o"));
        assert!(!ig.is_excluded("secret"));
        assert!(!ig.is_excluded("#notes"));
        assert!(!ig.is_excluded("notes"));
    }

    #[test]
    fn docker_documentation_examples() {
        let ig = ignore("*/temp*\n*/*/temp*\ntemp?\n");
        assert!(ig.is_excluded("somedir/temporary.txt"));
        assert!(ig.is_excluded("somedir/temp"));
        assert!(ig.is_excluded("somedir/temp/inner.txt"));
        assert!(ig.is_excluded("somedir/subdir/temporary.txt"));
        assert!(ig.is_excluded("tempa"));
        assert!(ig.is_excluded("tempb"));
        assert!(!ig.is_excluded("temp"));
        assert!(!ig.is_excluded("tempab"));
        assert!(!ig.is_excluded("temporary.txt"));
        assert!(!ig.is_excluded("a/b/c/temp"));

        let ig = ignore("**/*.go");
        assert!(ig.is_excluded("main.go"));
        assert!(ig.is_excluded("cmd/tool/main.go"));
        assert!(!ig.is_excluded("cmd/tool/main.rs"));

        let ig = ignore("*.md\n!README*.md\nREADME-secret.md\n");
        assert!(ig.is_excluded("CHANGES.md"));
        assert!(!ig.is_excluded("README.md"));
        assert!(!ig.is_excluded("README-public.md"));
        assert!(ig.is_excluded("README-secret.md"));
        assert!(!ig.is_excluded("docs/other.md"), "*.md is top level only");

        let ig = ignore("*.md\nREADME-secret.md\n!README*.md\n");
        assert!(!ig.is_excluded("README-secret.md"), "the last match wins");
    }

    #[test]
    fn directories_exclude_their_contents_unless_excepted() {
        let ig = ignore("node_modules\nbuild\n!build/keep.txt\n");
        assert!(ig.is_excluded("node_modules"));
        assert!(ig.is_excluded("node_modules/a/b/c.js"));
        assert!(ig.is_excluded("build"));
        assert!(ig.is_excluded("build/out.o"));
        assert!(!ig.is_excluded("build/keep.txt"));
        assert!(!ig.is_excluded("src/node_modules_notes"));
        assert!(!ig.may_include_under("node_modules"));
        assert!(ig.may_include_under("build"));
        assert!(!ig.may_include_under("build/sub"));
    }

    #[test]
    fn exception_reincludes_a_whole_directory() {
        let ig = ignore("*\n!src\nsrc/*.tmp\n");
        assert!(ig.is_excluded("Makefile"));
        assert!(!ig.is_excluded("src"));
        assert!(!ig.is_excluded("src/main.c"));
        assert!(ig.is_excluded("src/x.tmp"));
        assert!(ig.is_excluded("other/x.c"));
        assert!(!ig.may_include_under("other"));
    }

    #[test]
    fn may_include_under_sees_wildcard_exceptions() {
        let ig = ignore("vendor\n!**/*.go\n");
        assert!(ig.is_excluded("vendor/x.txt"));
        assert!(!ig.is_excluded("vendor/pkg/x.go"));
        assert!(ig.may_include_under("vendor"));
        let ig = ignore("vendor\n!*.go\n");
        assert!(!ig.may_include_under("vendor"));
        let ig = ignore("vendor\n!vendor/*/keep\n");
        assert!(ig.may_include_under("vendor"));
        assert!(ig.may_include_under("vendor/a"));
        assert!(!ig.may_include_under("vendor/a/keep"));
    }

    #[test]
    fn paths_are_cleaned_and_root_is_never_excluded() {
        let ig = ignore("*\n");
        assert!(!ig.is_excluded("."));
        assert!(!ig.is_excluded(""));
        assert!(!ig.is_excluded("/"));
        assert!(ig.is_excluded("./a/../b"));
        let ig = ignore("a/b");
        assert!(ig.is_excluded("/a/b/c"));
        assert!(ig.is_excluded("a//b"));
    }

    #[test]
    fn keep_exactly_overrides_patterns() {
        let mut ig = ignore("*\n");
        ig.keep_exactly("Dockerfile");
        ig.keep_exactly("[x]");
        assert!(!ig.is_excluded("Dockerfile"));
        assert!(!ig.is_excluded("[x]"));
        assert!(ig.is_excluded("x"));
    }

    #[test]
    fn hostile_patterns_stay_fast() {
        let pattern = "*a".repeat(200) + "**/" + &"?*".repeat(200);
        let ig = Ignore::parse(&pattern).unwrap();
        let path = "a".repeat(3000) + "/" + &"b".repeat(1000);
        assert!(!ig.is_excluded(&path) || ig.is_excluded(&path));
    }
}
