//! `flowtime batch`: database commands from stdin, one per line, against one open database (or
//! one connection to a server). Each line's result is printed once it is committed.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser as _;
use serde_json::json;

use crate::cli::api::{default_data_root, open, runtime};
use crate::cli::{Cli, Failure};

/// Runs the commands of stdin. Text output: `ok N` and the command's result indented, or
/// `error N: what went wrong`; JSON: one object per line (`{"line", "ok", "result" | "errors"}`).
pub(crate) fn run(db: &Path, server: Option<&str>, data_root: Option<&Path>, json: bool) -> Result<ExitCode, Failure> {
    let root = default_data_root(data_root)?;
    let rt = runtime()?;
    let api = rt.block_on(open(db, server, &root, true, Path::new("runs")))?;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut line = String::new();
    let mut n = 0u64;
    loop {
        line.clear();
        match std::io::BufRead::read_line(&mut stdin.lock(), &mut line) {
            Ok(0) => return Ok(ExitCode::SUCCESS),
            Ok(_) => {}
            Err(e) => return Err(Failure::Runtime(e.into())),
        }
        n += 1;
        let words = split_words(line.trim());
        if words.is_empty() || words[0].starts_with('#') {
            continue;
        }
        let argv = std::iter::once("flowtime".to_string()).chain(words);
        let result = match Cli::try_parse_from(argv) {
            Ok(cli) => match cli.command.into_db() {
                Ok(cmd) => rt.block_on(cmd.exec(&api)),
                Err(_) => Err(Failure::bad("bad_argument", "only database commands can run in a batch")),
            },
            Err(e) => Err(Failure::bad("bad_argument", e.to_string().lines().next().unwrap_or("").to_string())),
        };
        let res = match result {
            Ok(r) if json => writeln!(out, "{}", json!({"line": n, "ok": true, "result": r.json})),
            Ok(r) => {
                let body: String = r.text.lines().map(|l| format!("  {l}\n")).collect();
                write!(out, "ok {n}\n{body}")
            }
            Err(Failure::BadInput(d)) if json => writeln!(out, "{}", json!({"line": n, "ok": false, "errors": d.0})),
            Err(Failure::BadInput(d)) => {
                let what: Vec<String> = d.0.iter().map(|x| x.to_string().replacen("error: ", "", 1)).collect();
                writeln!(out, "error {n}: {}", what.join("; "))
            }
            Err(Failure::Runtime(e)) => writeln!(out, "error {n}: {e:#}"),
        };
        let _ = out.flush();
        if let Err(e) = res {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(Failure::Runtime(e.into()));
        }
    }
}

/// Splits a command line into words: whitespace-separated, with '…' and "…" quoting.
fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(split_words("variant create s1 'a b' -p x=1"), vec!["variant", "create", "s1", "a b", "-p", "x=1"]);
        assert_eq!(split_words("  "), Vec::<String>::new());
        assert_eq!(split_words("a \"\" b"), vec!["a", "", "b"]);
    }
}
