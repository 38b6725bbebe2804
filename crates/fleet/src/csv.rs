//! A CSV reader for operators' files (RFC 4180: fields split by commas, `"` quotes a field
//! that holds commas, quotes or line breaks, `""` is a quote inside one; `\n` or `\r\n`
//! ends a record). Records come with the line they start on, so a message can name it.
//! Blank lines are skipped; a UTF-8 byte order mark at the start is ignored.

use std::borrow::Cow;

/// A record's fields and the 1-based line it starts on.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub line: usize,
    pub fields: Vec<Cow<'a, str>>,
}

/// A record the reader could not split.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct CsvError {
    pub line: usize,
    pub reason: String,
}

/// The records of `text`, in order.
pub struct Reader<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> Reader<'a> {
    pub fn new(text: &'a str) -> Reader<'a> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        Reader {
            text,
            pos: 0,
            line: 1,
        }
    }

    fn record(&mut self) -> Result<Record<'a>, CsvError> {
        let start_line = self.line;
        let bytes = self.text.as_bytes();
        let mut fields = Vec::with_capacity(10);
        loop {
            // One field.
            if bytes.get(self.pos) == Some(&b'"') {
                self.pos += 1;
                let mut value = String::new();
                let mut from = self.pos;
                loop {
                    match memchr_quote(&bytes[self.pos..]) {
                        None => {
                            return Err(CsvError {
                                line: start_line,
                                reason: "a quoted field is never closed".into(),
                            })
                        }
                        Some(i) => {
                            let at = self.pos + i;
                            self.line += self.text[self.pos..at].matches('\n').count();
                            if bytes.get(at + 1) == Some(&b'"') {
                                value.push_str(&self.text[from..=at]);
                                self.pos = at + 2;
                                from = self.pos;
                            } else {
                                value.push_str(&self.text[from..at]);
                                self.pos = at + 1;
                                break;
                            }
                        }
                    }
                }
                fields.push(Cow::Owned(value));
                match bytes.get(self.pos) {
                    None => return Ok(self.done(start_line, fields)),
                    Some(b',') => self.pos += 1,
                    Some(b'\n') => {
                        self.pos += 1;
                        self.line += 1;
                        return Ok(Record {
                            line: start_line,
                            fields,
                        });
                    }
                    Some(b'\r') if bytes.get(self.pos + 1) == Some(&b'\n') => {
                        self.pos += 2;
                        self.line += 1;
                        return Ok(Record {
                            line: start_line,
                            fields,
                        });
                    }
                    Some(_) => {
                        return Err(CsvError {
                            line: self.line,
                            reason: "text after a closing quote (write `\"\"` for a quote inside a quoted field)".into(),
                        })
                    }
                }
            } else {
                let rest = &bytes[self.pos..];
                let end = rest
                    .iter()
                    .position(|&b| b == b',' || b == b'\n' || b == b'"')
                    .unwrap_or(rest.len());
                if rest.get(end) == Some(&b'"') {
                    return Err(CsvError {
                        line: self.line,
                        reason: "a quote inside an unquoted field (quote the whole field)".into(),
                    });
                }
                let mut field = &self.text[self.pos..self.pos + end];
                self.pos += end;
                match bytes.get(self.pos) {
                    Some(b',') => {
                        self.pos += 1;
                        fields.push(Cow::Borrowed(field));
                    }
                    Some(_) => {
                        // A line break.
                        self.pos += 1;
                        self.line += 1;
                        if let Some(f) = field.strip_suffix('\r') {
                            field = f;
                        }
                        fields.push(Cow::Borrowed(field));
                        return Ok(Record {
                            line: start_line,
                            fields,
                        });
                    }
                    None => {
                        fields.push(Cow::Borrowed(field));
                        return Ok(self.done(start_line, fields));
                    }
                }
            }
        }
    }

    fn done(&mut self, line: usize, fields: Vec<Cow<'a, str>>) -> Record<'a> {
        self.pos = self.text.len();
        Record { line, fields }
    }
}

fn memchr_quote(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'"')
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Record<'a>, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rest = &self.text.as_bytes()[self.pos..];
            // Blank lines between records.
            if rest.first() == Some(&b'\n') {
                self.pos += 1;
                self.line += 1;
                continue;
            }
            if rest.starts_with(b"\r\n") {
                self.pos += 2;
                self.line += 1;
                continue;
            }
            if rest.is_empty() {
                return None;
            }
            let r = self.record();
            if r.is_err() {
                // One error ends the file: after a broken quote nothing lines up.
                self.pos = self.text.len();
            }
            return Some(r);
        }
    }
}

/// A header's columns checked against the ones a file must start with (more may follow):
/// the index of every further column by name.
pub fn check_header(
    record: &Record<'_>,
    required: &[&str],
) -> Result<Vec<(String, usize)>, CsvError> {
    let got: Vec<&str> = record.fields.iter().map(|f| f.trim()).collect();
    if got.len() < required.len() || got[..required.len()] != *required {
        return Err(CsvError {
            line: record.line,
            reason: format!(
                "the header must start with `{}` (more columns may follow), got `{}`",
                required.join(","),
                got.join(",")
            ),
        });
    }
    Ok(got[required.len()..]
        .iter()
        .enumerate()
        .map(|(i, name)| (name.to_ascii_lowercase(), required.len() + i))
        .collect())
}

/// Every row of a file, typed by `row`, after `header` has read the header (and says what
/// the rows need of it); or every bad row with its line. A record that cannot be split ends
/// the file (nothing after a broken quote lines up); a bad row is reported and the next read.
pub fn read_rows<H, T>(
    text: &str,
    header: impl FnOnce(&Record<'_>) -> Result<H, String>,
    mut row: impl FnMut(&H, &Record<'_>) -> Result<T, String>,
) -> Result<Vec<(usize, T)>, Vec<CsvError>> {
    let mut reader = Reader::new(text);
    let head = match reader.next() {
        None => {
            return Err(vec![CsvError {
                line: 1,
                reason: "empty file: no header line".into(),
            }])
        }
        Some(Err(e)) => return Err(vec![e]),
        Some(Ok(h)) => header(&h).map_err(|reason| {
            vec![CsvError {
                line: h.line,
                reason,
            }]
        })?,
    };
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for r in reader {
        match r {
            Err(e) => {
                errors.push(e);
                break;
            }
            Ok(r) => match row(&head, &r) {
                Ok(t) => out.push((r.line, t)),
                Err(reason) => errors.push(CsvError {
                    line: r.line,
                    reason,
                }),
            },
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Vec<(usize, Vec<String>)> {
        Reader::new(text)
            .map(|r| {
                let r = r.unwrap();
                (r.line, r.fields.iter().map(|f| f.to_string()).collect())
            })
            .collect()
    }

    #[test]
    fn fields_quotes_and_lines() {
        let rows = all("\u{feff}a,b,c\r\n\n1,\"x, \"\"y\"\"\",\n\"multi\nline\",2,3\nlast,,");
        assert_eq!(
            rows,
            vec![
                (1, vec!["a".into(), "b".into(), "c".into()]),
                (3, vec!["1".into(), "x, \"y\"".into(), String::new()]),
                (4, vec!["multi\nline".into(), "2".into(), "3".into()]),
                (6, vec!["last".into(), String::new(), String::new()]),
            ]
        );
    }

    #[test]
    fn broken_quotes_name_their_line() {
        let e = Reader::new("a\n\"open,1\n2\n").nth(1).unwrap().unwrap_err();
        assert_eq!(e.line, 2);
        let e = Reader::new("a\nx\"y,1\n").nth(1).unwrap().unwrap_err();
        assert_eq!(e.line, 2);
        let e = Reader::new("\"a\"b,1\n").next().unwrap().unwrap_err();
        assert_eq!(e.line, 1);
    }

    #[test]
    fn headers_must_start_with_the_contract() {
        let r = Reader::new("serial,event,extra\n").next().unwrap().unwrap();
        assert_eq!(
            check_header(&r, &["serial", "event"]).unwrap(),
            vec![("extra".to_string(), 2)]
        );
        let e = check_header(&r, &["serial", "date"]).unwrap_err();
        assert!(e.reason.contains("serial,date"), "{e}");
    }
}
