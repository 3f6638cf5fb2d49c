//! The code's shape, held by a test (issue 26): no function of 100 lines or more outside tests,
//! the binary under 1,500 lines of code, and no public function that returns `Result<_, String>`
//! (an error a caller cannot match on, its source dropped). Read from the sources as they are.

use std::path::{Path, PathBuf};

const FUNCTION_LINES_MAX: usize = 99;
const BINARY_CODE_LINES_MAX: usize = 1_499;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            // Test-only trees: integration tests, and modules compiled only under cfg(test).
            if !["tests", "fuzz", "target"].contains(&name.as_str()) {
                sources(&path, out);
            }
        } else if name.ends_with(".rs") && name != "tests.rs" {
            out.push(path);
        }
    }
}

/// The lines of `text` outside `#[cfg(test)]` items, numbered from 1.
fn non_test_lines(text: &str) -> Vec<(usize, &str)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut kept = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_start().starts_with("#[cfg(test)]") {
            let (mut depth, mut opened) = (0i64, false);
            i += 1;
            while i < lines.len() {
                depth += braces(lines[i]);
                opened |= lines[i].contains('{');
                i += 1;
                if opened && depth <= 0 || !opened && lines[i - 1].trim_end().ends_with(';') {
                    break;
                }
            }
            continue;
        }
        kept.push((i + 1, lines[i]));
        i += 1;
    }
    kept
}

fn braces(line: &str) -> i64 {
    line.matches('{').count() as i64 - line.matches('}').count() as i64
}

/// Each function's (name, first line, lines) in `lines`.
fn functions(lines: &[(usize, &str)]) -> Vec<(String, usize, usize)> {
    let mut found = Vec::new();
    for (at, (number, line)) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        let Some(fn_at) = words.iter().position(|w| *w == "fn") else { continue };
        let before_ok =
            words[..fn_at].iter().all(|w| w.starts_with("pub") || ["async", "const", "unsafe"].contains(w));
        if !before_ok || trimmed.starts_with("//") {
            continue;
        }
        let name: String = words
            .get(fn_at + 1)
            .unwrap_or(&"")
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let (mut depth, mut opened) = (0i64, false);
        for (end, (last, text)) in lines[at..].iter().enumerate() {
            if !opened && end > 0 && lines[at + end - 1].1.trim_end().ends_with(';') {
                break;
            }
            depth += braces(text);
            opened |= text.contains('{');
            if opened && depth <= 0 {
                found.push((name.clone(), *number, last - number + 1));
                break;
            }
        }
    }
    found
}

#[test]
fn the_code_keeps_its_shape() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("crates"), &mut files);
    files.sort();
    let mut long = Vec::new();
    let mut stringly = Vec::new();
    let mut binary = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let lines = non_test_lines(&text);
        let shown = file.strip_prefix(root).unwrap().display().to_string();
        for (name, at, length) in functions(&lines) {
            if length > FUNCTION_LINES_MAX {
                long.push(format!("{shown}:{at} {name}: {length} lines"));
            }
        }
        for (at, line) in &lines {
            let line = line.trim_start();
            if line.starts_with("pub fn")
                && line.contains("Result<")
                && line.replace(' ', "").contains(",String>")
            {
                stringly.push(format!("{shown}:{at} {line}"));
            }
        }
        if file.starts_with(root.join("crates/dealledger")) {
            binary += lines
                .iter()
                .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with("//"))
                .count();
        }
    }
    assert!(long.is_empty(), "functions of 100 lines or more (split them): {long:#?}");
    assert!(
        stringly.is_empty(),
        "public functions returning Result<_, String> (give them an error type): {stringly:#?}"
    );
    assert!(
        binary <= BINARY_CODE_LINES_MAX,
        "the binary has {binary} lines of code; keep it thin (under 1,500)"
    );
    // The scan finds what it looks for: a long function, and none in a test module.
    let body = "    let x = 1;\n".repeat(118);
    let text = format!(
        "pub fn long() {{\n{body}}}\n#[cfg(test)]\nmod tests {{\n    fn hidden() {{\n{body}    }}\n}}\n"
    );
    let found = functions(&non_test_lines(&text));
    assert_eq!(found, vec![("long".to_string(), 1, 120)]);
}
