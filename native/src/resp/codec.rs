//! The RESP wire format: the incremental request `Parser` (arrays and inline commands, as
//! Redis splits them), `Reply` encoding for RESP2 and RESP3, and Redis' glob matching. Pure
//! functions of bytes: no node, no socket. Parsing is bounded: an argument above the size limit
//! is skipped as it streams in, and malformed input is a `ProtocolError`.

/// Arguments per command.
const ARGUMENTS_MAX: u64 = 1 << 20;
/// A declared argument length beyond this is a protocol error (Redis' proto-max-bulk-len).
const DECLARED_BYTES_MAX: u64 = 512 << 20;
/// Bytes of one inline command line.
const INLINE_BYTES_MAX: usize = 64 << 10;

/// One parsed unit of input.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Command(Vec<Vec<u8>>),
    /// A command with an argument of this many bytes, over the limit; it was skipped.
    Oversized(u64),
}

/// Why the input cannot be parsed.
#[derive(Debug, PartialEq, Eq)]
pub struct ProtocolError(pub &'static str);

/// An argument being skipped because it is too large.
#[derive(Debug)]
struct Skip {
    bytes_left: u64,
    arguments_left: u64,
    oversized: u64,
}

/// Incremental RESP request parser.
#[derive(Debug)]
pub struct Parser {
    buffer: Vec<u8>,
    start: usize,
    skip: Option<Skip>,
    argument_bytes_max: u64,
}

impl Parser {
    pub fn new(argument_bytes_max: u64) -> Parser {
        Parser { buffer: Vec::new(), start: 0, skip: None, argument_bytes_max }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes received and not yet parsed.
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.start
    }

    fn line(&self, from: usize) -> Option<(usize, &[u8])> {
        let rest = &self.buffer[from..];
        let end = rest.iter().position(|byte| *byte == b'\n')?;
        let line = &rest[..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Some((from + end + 1, line))
    }

    fn number(line: &[u8]) -> Result<i64, ProtocolError> {
        std::str::from_utf8(line).ok().and_then(|text| text.parse().ok()).ok_or(ProtocolError("invalid length"))
    }

    /// The next complete unit, `Ok(None)` when more input is needed.
    pub fn next(&mut self) -> Result<Option<Parsed>, ProtocolError> {
        loop {
            if let Some(skip) = &mut self.skip {
                let available = (self.buffer.len() - self.start) as u64;
                let take = available.min(skip.bytes_left);
                self.start += take as usize;
                skip.bytes_left -= take;
                if skip.bytes_left > 0 {
                    return Ok(None);
                }
                if skip.arguments_left == 0 {
                    let oversized = skip.oversized;
                    self.skip = None;
                    return Ok(Some(Parsed::Oversized(oversized)));
                }
                // The next argument's header.
                let Some((after, line)) = self.line(self.start) else { return Ok(None) };
                if line.first() != Some(&b'$') {
                    return Err(ProtocolError("expected '$'"));
                }
                let length = Self::number(&line[1..])?;
                if !(0..=DECLARED_BYTES_MAX as i64).contains(&length) {
                    return Err(ProtocolError("invalid bulk length"));
                }
                let skip = self.skip.as_mut().expect("skipping");
                skip.bytes_left = length as u64 + 2;
                skip.arguments_left -= 1;
                self.start = after;
                continue;
            }
            if self.start == self.buffer.len() {
                return Ok(None);
            }
            if self.buffer[self.start] != b'*' {
                return self.inline();
            }
            return self.array();
        }
    }

    fn inline(&mut self) -> Result<Option<Parsed>, ProtocolError> {
        let Some((after, line)) = self.line(self.start) else {
            if self.buffered() > INLINE_BYTES_MAX {
                return Err(ProtocolError("too big inline request"));
            }
            return Ok(None);
        };
        let words = split_arguments(line)?;
        self.start = after;
        if words.is_empty() {
            return self.next();
        }
        Ok(Some(Parsed::Command(words)))
    }

    fn array(&mut self) -> Result<Option<Parsed>, ProtocolError> {
        let Some((mut at, line)) = self.line(self.start) else { return Ok(None) };
        let count = Self::number(&line[1..])?;
        if count > ARGUMENTS_MAX as i64 {
            return Err(ProtocolError("invalid multibulk length"));
        }
        if count <= 0 {
            // `*0` and `*-1` are empty requests; Redis ignores them without a reply.
            self.start = at;
            return self.next();
        }
        let mut arguments = Vec::with_capacity(count.min(64) as usize);
        for index in 0..count as u64 {
            let Some((after, line)) = self.line(at) else { return Ok(None) };
            if line.first() != Some(&b'$') {
                return Err(ProtocolError("expected '$'"));
            }
            let length = Self::number(&line[1..])?;
            if !(0..=DECLARED_BYTES_MAX as i64).contains(&length) {
                return Err(ProtocolError("invalid bulk length"));
            }
            let length = length as u64;
            if length > self.argument_bytes_max {
                // Skip it (and the rest of the command) as it streams in.
                self.start = after;
                self.skip =
                    Some(Skip { bytes_left: length + 2, arguments_left: count as u64 - index - 1, oversized: length });
                return self.next();
            }
            let end = after + length as usize;
            if self.buffer.len() < end + 2 {
                return Ok(None);
            }
            if &self.buffer[end..end + 2] != b"\r\n" {
                return Err(ProtocolError("bulk string not terminated by CRLF"));
            }
            arguments.push(self.buffer[after..end].to_vec());
            at = end + 2;
        }
        self.start = at;
        if arguments.is_empty() {
            return self.next();
        }
        Ok(Some(Parsed::Command(arguments)))
    }
}

/// Splits an inline command line into arguments exactly as Redis' `sdssplitargs` does: words
/// separated by spaces; in double quotes `\n \r \t \b \a` and `\xHH` escapes (any other escaped
/// byte stands for itself); in single quotes only `\'`. A quote may open mid-word (`a"b c"` is
/// `ab c`). A closing quote must be followed by a space or the end of the line, and an unclosed
/// quote is an error: guessing what the client meant could store the wrong value.
pub fn split_arguments(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    const UNBALANCED: ProtocolError = ProtocolError("unbalanced quotes in request");
    // Redis works on a C string: the line ends at its first NUL byte.
    let line = &line[..line.iter().position(|byte| *byte == 0).unwrap_or(line.len())];
    let at = |index: usize| line.get(index).copied().unwrap_or(0);
    // C's isspace, which Redis uses around arguments.
    let space = |byte: u8| matches!(byte, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    let hex = |byte: u8| (byte as char).to_digit(16).map(|digit| digit as u8);
    let mut arguments = Vec::new();
    let mut p = 0;
    loop {
        while p < line.len() && space(line[p]) {
            p += 1;
        }
        if p == line.len() {
            return Ok(arguments);
        }
        // The quote the current word is inside, if any.
        let mut quote: Option<u8> = None;
        let mut current = Vec::new();
        loop {
            match quote {
                Some(open) => match (at(p), at(p + 1)) {
                    (b'\\', b'x') if open == b'"' && hex(at(p + 2)).is_some() && hex(at(p + 3)).is_some() => {
                        current.push(hex(at(p + 2)).expect("checked") * 16 + hex(at(p + 3)).expect("checked"));
                        p += 3;
                    }
                    (b'\\', escaped) if open == b'"' && escaped != 0 => {
                        current.push(match escaped {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                        p += 1;
                    }
                    (b'\\', b'\'') if open == b'\'' => {
                        current.push(b'\'');
                        p += 1;
                    }
                    (byte, next) if byte == open => {
                        if next != 0 && !space(next) {
                            return Err(UNBALANCED);
                        }
                        p += 1;
                        break;
                    }
                    (0, _) => return Err(UNBALANCED),
                    (byte, _) => current.push(byte),
                },
                None => match at(p) {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        p = (p + 1).min(line.len());
                        break;
                    }
                    open @ (b'"' | b'\'') => quote = Some(open),
                    byte => current.push(byte),
                },
            }
            p += 1;
        }
        arguments.push(current);
    }
}

/// A reply, encoded for the connection's protocol version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    Null,
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    pub(super) fn ok() -> Reply {
        Reply::Simple("OK".into())
    }

    pub(super) fn text(text: &str) -> Reply {
        Reply::Bulk(text.as_bytes().to_vec())
    }

    pub fn encode(&self, protocol: u8, out: &mut Vec<u8>) {
        match self {
            Reply::Simple(text) => {
                out.push(b'+');
                out.extend_from_slice(text.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Reply::Error(text) => {
                out.push(b'-');
                // An error line must not break the framing.
                out.extend(text.bytes().map(|byte| if byte == b'\r' || byte == b'\n' { b' ' } else { byte }));
                out.extend_from_slice(b"\r\n");
            }
            Reply::Integer(value) => out.extend_from_slice(format!(":{value}\r\n").as_bytes()),
            Reply::Bulk(bytes) => {
                out.extend_from_slice(format!("${}\r\n", bytes.len()).as_bytes());
                out.extend_from_slice(bytes);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Null => out.extend_from_slice(if protocol >= 3 { b"_\r\n" } else { b"$-1\r\n" }),
            Reply::Array(items) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for item in items {
                    item.encode(protocol, out);
                }
            }
            Reply::Map(pairs) => {
                if protocol >= 3 {
                    out.extend_from_slice(format!("%{}\r\n", pairs.len()).as_bytes());
                } else {
                    out.extend_from_slice(format!("*{}\r\n", pairs.len() * 2).as_bytes());
                }
                for (key, value) in pairs {
                    key.encode(protocol, out);
                    value.encode(protocol, out);
                }
            }
        }
    }
}

/// Shell-style glob matching as Redis' `KEYS` does: `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\x`.
pub fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let (mut star, mut star_text) = (None, 0);
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some(p);
                    star_text = t;
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(&pattern[p..], text[t]) {
                        if matched {
                            p += next;
                            t += 1;
                            continue;
                        }
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == text[t] {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                byte => {
                    if byte == text[t] {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some(position) => {
                p = position + 1;
                star_text += 1;
                t = star_text;
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|byte| *byte == b'*')
}

/// Matches a `[...]` class at the start of `pattern`: (matched, bytes of the class).
fn class(pattern: &[u8], byte: u8) -> Option<(bool, usize)> {
    let mut index = 1;
    let negate = pattern.get(1) == Some(&b'^');
    if negate {
        index += 1;
    }
    let mut matched = false;
    while index < pattern.len() && pattern[index] != b']' {
        if pattern[index] == b'\\' && index + 1 < pattern.len() {
            matched |= pattern[index + 1] == byte;
            index += 2;
        } else if index + 2 < pattern.len() && pattern[index + 1] == b'-' && pattern[index + 2] != b']' {
            let (low, high) = (pattern[index].min(pattern[index + 2]), pattern[index].max(pattern[index + 2]));
            matched |= (low..=high).contains(&byte);
            index += 3;
        } else {
            matched |= pattern[index] == byte;
            index += 1;
        }
    }
    (index < pattern.len()).then_some((matched != negate, index + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(parser: &mut Parser) -> Vec<Parsed> {
        let mut all = Vec::new();
        while let Some(parsed) = parser.next().expect("valid input") {
            all.push(parsed);
        }
        all
    }

    fn command(words: &[&str]) -> Parsed {
        Parsed::Command(words.iter().map(|word| word.as_bytes().to_vec()).collect())
    }

    #[test]
    fn parses_pipelined_arrays_and_inline_commands_in_any_chunking() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        for chunk in 1..input.len() {
            let mut parser = Parser::new(1024);
            let mut all = Vec::new();
            for piece in input.chunks(chunk) {
                parser.feed(piece);
                all.extend(parse_all(&mut parser));
            }
            assert_eq!(all, vec![command(&["SET", "k", "hello"]), command(&["PING"]), command(&["GET", "k"])]);
        }
    }

    #[test]
    fn an_oversized_argument_is_skipped_and_the_next_command_still_parses() {
        let mut parser = Parser::new(4);
        parser.feed(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n0123456");
        assert_eq!(parse_all(&mut parser), vec![]);
        parser.feed(b"789\r\n*1\r\n$4\r\nPING\r\n");
        assert_eq!(parse_all(&mut parser), vec![Parsed::Oversized(10), command(&["PING"])]);
        let mut parser = Parser::new(4);
        parser.feed(b"*3\r\n$3\r\nSET\r\n$10\r\n0123456789\r\n$2\r\nab\r\n*1\r\n$4\r\nPING\r\n");
        assert_eq!(parse_all(&mut parser), vec![Parsed::Oversized(10), command(&["PING"])]);
    }

    #[test]
    fn malformed_input_is_a_protocol_error() {
        for bad in [&b"*2\r\n$3\r\nGET\r\n:5\r\n"[..], b"*x\r\n", b"*1\r\n$3\r\nGETX\r\n", b"*1\r\n$-5\r\n"] {
            let mut parser = Parser::new(1024);
            parser.feed(bad);
            assert!(parser.next().is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn replies_encode_for_resp2_and_resp3() {
        let encode = |reply: Reply, protocol| {
            let mut out = Vec::new();
            reply.encode(protocol, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(encode(Reply::Null, 2), "$-1\r\n");
        assert_eq!(encode(Reply::Null, 3), "_\r\n");
        let map = Reply::Map(vec![(Reply::text("proto"), Reply::Integer(3))]);
        assert_eq!(encode(map.clone(), 3), "%1\r\n$5\r\nproto\r\n:3\r\n");
        assert_eq!(encode(map, 2), "*2\r\n$5\r\nproto\r\n:3\r\n");
        assert_eq!(encode(Reply::Error("ERR a\r\nb".into()), 2), "-ERR a  b\r\n");
    }

    #[test]
    fn inline_commands_split_like_redis_sdssplitargs() {
        let check = |line: &str, expected: &[&[u8]]| {
            let words = split_arguments(line.as_bytes()).expect(line);
            assert_eq!(words, expected.iter().map(|word| word.to_vec()).collect::<Vec<_>>(), "{line:?}");
        };
        check("SET inl \"a b\"", &[b"SET", b"inl", b"a b"]);
        check("ECHO \"a\\x41\"", &[b"ECHO", b"aA"]);
        check("ECHO \"\\n\\r\\t\\b\\a\\\\\\\"\\q\"", &[b"ECHO", b"\n\r\t\x08\x07\\\"q"]);
        check("ECHO \"\\x4\"", &[b"ECHO", b"x4"]);
        check("ECHO 'a\\'b'", &[b"ECHO", b"a'b"]);
        check("ECHO 'a\\nb'", &[b"ECHO", b"a\\nb"]);
        check("  GET\tk  ", &[b"GET", b"k"]);
        check("ECHO \"\" ''", &[b"ECHO", b"", b""]);
        check("ECHO a\"b c\"", &[b"ECHO", b"ab c"]);
        check("", &[]);
        for bad in ["ECHO \"abc", "ECHO 'abc", "ECHO \"abc\"d", "ECHO 'a'b", "ECHO \"a\\\""] {
            assert_eq!(split_arguments(bad.as_bytes()), Err(ProtocolError("unbalanced quotes in request")), "{bad:?}");
        }
    }

    #[test]
    fn glob_matches_like_redis() {
        assert!(glob(b"*", b"anything"));
        assert!(glob(b"k?y", b"key"));
        assert!(glob(b"user:*:name", b"user:42:name"));
        assert!(!glob(b"user:*:name", b"user:42:mail"));
        assert!(glob(b"h[ae]llo", b"hallo") && !glob(b"h[ae]llo", b"hillo"));
        assert!(glob(b"h[^e]llo", b"hallo") && !glob(b"h[^e]llo", b"hello"));
        assert!(glob(b"h[a-c]llo", b"hbllo"));
        assert!(glob(b"a\\*b", b"a*b") && !glob(b"a\\*b", b"axb"));
        assert!(!glob(b"", b"x") && glob(b"", b""));
    }
}
