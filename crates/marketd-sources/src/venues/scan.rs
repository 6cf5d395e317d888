//! A forward-only reader of the few JSON shapes a venue's hot path sends
//! (flat objects of unescaped strings, unsigned integers and booleans),
//! used before serde: a trade frame is read in one pass without serde's
//! field-matching machinery or moving its large structs.
//!
//! It is deliberately narrow. Anything outside those shapes (an escape, a
//! float, a negative number, `null`, a nested value where a scalar is read,
//! a repeated field) makes it answer `None`, and the caller parses the frame
//! with serde, which gives the same result or the proper error. The tests
//! hold it to serde's answer on every recorded frame.

/// A scalar value as the scanner reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scalar<'a> {
    Str(&'a str),
    Int(u64),
    Bool,
}

pub(super) struct Scan<'a> {
    text: &'a str,
    i: usize,
}

impl<'a> Scan<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Scan { text, i: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn ws(&mut self) {
        let b = self.bytes();
        while self.i < b.len() && matches!(b[self.i], b' ' | b'\n' | b'\r' | b'\t') {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.bytes().get(self.i).copied()
    }

    /// Consumes `c` (after whitespace).
    pub(super) fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// Consumes `c` if it is next; whether it was.
    pub(super) fn eat_if(&mut self, c: u8) -> bool {
        self.eat(c).is_some()
    }

    /// A string without escapes or control characters.
    pub(super) fn str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let b = self.bytes();
        let start = self.i;
        while let Some(&c) = b.get(self.i) {
            match c {
                b'"' => {
                    // Both ends are ASCII quotes: char boundaries.
                    let s = &self.text[start..self.i];
                    self.i += 1;
                    return Some(s);
                }
                b'\\' | 0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
        None
    }

    /// An object key and its colon.
    pub(super) fn key(&mut self) -> Option<&'a str> {
        let k = self.str()?;
        self.eat(b':')?;
        Some(k)
    }

    /// An unsigned integer that fits in u64 (no sign, fraction or exponent,
    /// no leading zero).
    fn uint(&mut self) -> Option<u64> {
        let b = self.bytes();
        let start = self.i;
        let mut n: u64 = 0;
        while let Some(&c) = b.get(self.i) {
            if !c.is_ascii_digit() {
                break;
            }
            n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            self.i += 1;
        }
        let digits = self.i - start;
        let leading_zero = digits > 1 && b[start] == b'0';
        let more = matches!(b.get(self.i), Some(b'.' | b'e' | b'E'));
        (digits > 0 && !leading_zero && !more).then_some(n)
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.i + word.len();
        (self.text.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// A scalar: string, unsigned integer or boolean.
    pub(super) fn scalar(&mut self) -> Option<Scalar<'a>> {
        match self.peek()? {
            b'"' => self.str().map(Scalar::Str),
            b'0'..=b'9' => self.uint().map(Scalar::Int),
            b't' => self.literal("true").map(|()| Scalar::Bool),
            b'f' => self.literal("false").map(|()| Scalar::Bool),
            _ => None,
        }
    }

    /// After a member or element: `,` (true, more follow) or `close` (false).
    pub(super) fn more(&mut self, close: u8) -> Option<bool> {
        match self.peek()? {
            b',' => {
                self.i += 1;
                Some(true)
            }
            c if c == close => {
                self.i += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// Only whitespace is left.
    pub(super) fn end(&mut self) -> Option<()> {
        self.ws();
        (self.i == self.text.len()).then_some(())
    }

    /// Reads the members of an object whose `{` was just consumed, handing
    /// each key and scalar value to `member` (which may refuse with `None`).
    pub(super) fn members(
        &mut self,
        mut member: impl FnMut(&'a str, Scalar<'a>) -> Option<()>,
    ) -> Option<()> {
        if self.eat_if(b'}') {
            return Some(());
        }
        loop {
            let k = self.key()?;
            let v = self.scalar()?;
            member(k, v)?;
            if !self.more(b'}')? {
                return Some(());
            }
        }
    }
}

/// Puts `v` in `slot`, refusing a field seen twice (serde refuses it too).
pub(super) fn once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(v);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(text: &str) -> Option<Vec<(&str, Scalar<'_>)>> {
        let mut s = Scan::new(text);
        s.eat(b'{')?;
        let mut out = Vec::new();
        s.members(|k, v| {
            out.push((k, v));
            Some(())
        })?;
        s.end()?;
        Some(out)
    }

    #[test]
    fn reads_flat_objects_and_refuses_everything_else() {
        assert_eq!(
            flat(r#" { "a" : "x", "b":12 ,"c":true,"d":false } "#),
            Some(vec![
                ("a", Scalar::Str("x")),
                ("b", Scalar::Int(12)),
                ("c", Scalar::Bool),
                ("d", Scalar::Bool)
            ])
        );
        assert_eq!(flat("{}"), Some(vec![]));
        assert_eq!(
            flat(r#"{"n":18446744073709551615}"#),
            Some(vec![("n", Scalar::Int(u64::MAX))])
        );
        for refused in [
            r#"{"a":"x\"y"}"#,
            r#"{"a":"x\u0041"}"#,
            "{\"a\":\"x\ny\"}",
            r#"{"a":1.5}"#,
            r#"{"a":1e3}"#,
            r#"{"a":-1}"#,
            r#"{"a":01}"#,
            r#"{"a":18446744073709551616}"#,
            r#"{"a":null}"#,
            r#"{"a":[1]}"#,
            r#"{"a":{"b":1}}"#,
            r#"{"a":tru}"#,
            r#"{"a":1,}"#,
            r#"{"a":1"#,
            r#"{"a":1} x"#,
            r#"{a:1}"#,
        ] {
            assert_eq!(flat(refused), None, "{refused}");
        }
    }

    #[test]
    fn a_field_is_taken_once() {
        let mut slot = None;
        assert_eq!(once(&mut slot, 1), Some(()));
        assert_eq!(once(&mut slot, 2), None);
        assert_eq!(slot, Some(1));
    }
}
