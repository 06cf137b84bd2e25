//! Bad input (§2–§5): each mistake is rejected with a message that says what is wrong and names
//! the place: the YAML path and line/column for documents, the file and line for CSV, and the
//! byte offset under a caret for expressions. Line and column numbers are 1-based and counted by
//! hand from the texts below.

use std::collections::BTreeMap;
use std::path::Path;

use flowtime::diag::{Diagnostic, Diagnostics};
use flowtime::host::Host;
use flowtime::model::template::Supplied;

// ---------------------------------------------------------------------------------------------
// Helpers.

/// The diagnostics of a document that must be rejected (on load or on evaluation).
#[track_caller]
fn rejected_in(text: &str, supplied: &[(&str, &str)], data_root: &Path) -> Diagnostics {
    let supplied: BTreeMap<String, Supplied> =
        supplied.iter().map(|(k, v)| (k.to_string(), Supplied::Text(v.to_string()))).collect();
    let mut host = Host::new();
    match host.load_text(text, "model.yaml", &supplied, data_root) {
        Err(e) => e,
        Ok(m) => match host.evaluate(&m, None) {
            Err(e) => e,
            Ok(_) => panic!("accepted, but should have been rejected:\n{text}"),
        },
    }
}

#[track_caller]
fn rejected(text: &str) -> Diagnostics {
    rejected_in(text, &[], Path::new("."))
}

#[track_caller]
fn rejected_with(text: &str, supplied: &[(&str, &str)]) -> Diagnostics {
    rejected_in(text, supplied, Path::new("."))
}

/// The one diagnostic with `code` (there must be exactly one).
#[track_caller]
fn only<'a>(e: &'a Diagnostics, code: &str) -> &'a Diagnostic {
    let hits: Vec<&Diagnostic> = e.0.iter().filter(|d| d.code == code).collect();
    assert_eq!(hits.len(), 1, "expected one `{code}` diagnostic:\n{}", e.render());
    hits[0]
}

/// Asserts message fragments, the YAML path, and the line and column.
#[track_caller]
fn assert_at(d: &Diagnostic, fragments: &[&str], path: Option<&str>, line_col: Option<(u32, u32)>) {
    for f in fragments {
        assert!(d.message.contains(f), "message lacks `{f}`:\n{}", d.render());
    }
    assert_eq!(d.path.as_deref(), path, "path of\n{}", d.render());
    assert_eq!(d.line.zip(d.column), line_col, "line and column of\n{}", d.render());
    assert_eq!(d.file.as_deref(), Some("model.yaml"), "file of\n{}", d.render());
}

/// The expression text under the caret, and its byte offset.
#[track_caller]
fn caret(d: &Diagnostic) -> (&str, usize) {
    let x = d.expr.as_ref().unwrap_or_else(|| panic!("no caret:\n{}", d.render()));
    (&x.text[x.offset..x.offset + x.len], x.offset)
}

const GRID: &str = "grid: {bins: 3, binSize: 1, binUnit: hours}\n";

/// A model on GRID with a const `a` (line 3) and an expression node `c` (line 4, whose quoted
/// expression starts at column 31).
fn with_expr(expr: &str) -> String {
    format!("{GRID}nodes:\n  - {{id: a, kind: const, values: [1]}}\n  - {{id: c, kind: expr, expr: \"{expr}\"}}\n")
}

/// An expression error in `with_expr`: message fragments, and the text and offset under the caret.
#[track_caller]
fn assert_expr_error(expr: &str, fragments: &[&str], under: &str, offset: usize) {
    let e = rejected(&with_expr(expr));
    let d = &e.0[0];
    assert_at(d, fragments, Some("nodes[1] (id c).expr"), Some((4, 31)));
    assert_eq!(caret(d), (under, offset), "caret in `{expr}`:\n{}", d.render());
    // The rendering shows the expression with the caret under the same characters.
    let prefix = expr[..offset].chars().count();
    let width = under.chars().count().max(1);
    let line = format!("   | {}{}\n", " ".repeat(prefix), "^".repeat(width));
    assert!(d.render().contains(&line), "rendering lacks {line:?}:\n{}", d.render());
}

// ---------------------------------------------------------------------------------------------
// §2 documents.

#[test]
fn malformed_yaml_names_the_line() {
    // The flow map on line 3 is never closed; the parser notices at the `-` of line 4, column 3.
    let text =
        format!("{GRID}nodes:\n  - {{id: a, kind: const, values: [1, 2, 3]\n  - {{id: b, kind: expr, expr: a}}\n");
    let e = rejected(&text);
    assert_at(only(&e, "yaml_syntax"), &["malformed YAML", "expected ',' or '}'"], None, Some((4, 3)));

    // `binSize` is indented by one space under a two-space map: line 3, column 2.
    let e = rejected("grid:\n  bins: 3\n binSize: 1\n");
    assert_at(only(&e, "yaml_syntax"), &["malformed YAML"], None, Some((3, 2)));

    // A tab used for indentation on line 4.
    let e = rejected(&format!("{GRID}nodes:\n  - id: a\n\tkind: const\n"));
    assert_at(only(&e, "yaml_syntax"), &["malformed YAML", "tab"], None, Some((4, 1)));

    // A document that is not a map.
    let e = rejected("- a\n- b\n");
    assert!(e.0[0].message.contains("must be a map"), "{}", e.render());
}

#[test]
fn duplicate_yaml_keys_name_the_repeated_key() {
    // `kind` appears twice in nodes[0]; the second one is on line 5, column 5.
    let text = format!("{GRID}nodes:\n  - id: a\n    kind: const\n    kind: expr\n");
    let e = rejected(&text);
    assert_at(only(&e, "yaml_syntax"), &["duplicate", "nodes[0]", "kind"], None, Some((5, 5)));
    // In a flow map on line 1: the second `bins` starts at column 29.
    let e = rejected("grid: {bins: 3, binSize: 1, bins: 4, binUnit: hours}\nnodes: []\n");
    assert_at(only(&e, "yaml_syntax"), &["duplicate", "bins"], None, Some((1, 29)));
}

#[test]
fn byte_order_mark_is_not_an_error() {
    // Editors on some systems start files with U+FEFF; the document is still one document.
    let text = format!("\u{feff}{GRID}nodes:\n  - {{id: a, kind: const, values: [1]}}\n");
    let mut host = Host::new();
    let m = host
        .load_text(&text, "model.yaml", &BTreeMap::new(), Path::new("."))
        .unwrap_or_else(|e| panic!("{}", e.render()));
    assert_eq!(&host.evaluate(&m, None).unwrap().get("a").unwrap()[..], &[1.0, 1.0, 1.0]);
}

#[test]
fn unknown_keys_are_errors_with_a_did_you_mean() {
    // Root key on line 4.
    let e = rejected(&format!("{GRID}nodes:\n  - {{id: a, kind: const, values: [1]}}\nouputs: []\n"));
    let d = only(&e, "unknown_key");
    assert_at(d, &["unknown key `ouputs`"], Some("ouputs"), Some((4, 1)));
    assert!(d.help.as_deref().unwrap_or("").starts_with("did you mean `outputs`?"), "{}", d.render());

    // Node key on line 5, column 5.
    let e = rejected(&format!("{GRID}nodes:\n  - id: a\n    kind: expr\n    exprr: \"1\"\n"));
    let d = only(&e, "unknown_key");
    assert_at(d, &["unknown key `exprr`"], Some("nodes[0] (id a).exprr"), Some((5, 5)));
    assert!(d.help.as_deref().unwrap_or("").starts_with("did you mean `expr`?"), "{}", d.render());

    // Grid key in a flow map: `binsize` starts at column 17 of line 1.
    let e = rejected("grid: {bins: 3, binsize: 1, binUnit: hours}\nnodes: [{id: a, kind: const, values: [1]}]\n");
    let d = only(&e, "unknown_key");
    assert_at(d, &["unknown key `binsize`"], Some("grid.binsize"), Some((1, 17)));
    assert!(d.help.as_deref().unwrap_or("").starts_with("did you mean `binSize`?"), "{}", d.render());
}

#[test]
fn duplicate_node_ids_name_both_places() {
    let text = format!(
        "{GRID}nodes:\n  - {{id: a, kind: const, values: [1]}}\n  - {{id: b, kind: const, values: [1]}}\n  - {{id: a, kind: const, values: [2]}}\n"
    );
    let e = rejected(&text);
    // The third node's id value: line 5, column 10.
    let d = only(&e, "duplicate_id");
    assert_at(d, &["duplicate node id `a`", "nodes[0] (id a)"], Some("nodes[2] (id a).id"), Some((5, 10)));
}

#[test]
fn both_nodes_and_expressions_is_an_error() {
    let text = format!(
        "{GRID}nodes:\n  - {{id: a, kind: const, values: [1]}}\nexpressions:\n  - {{id: b, kind: const, values: [1]}}\n"
    );
    let e = rejected(&text);
    // Reported at the alias's value, line 5, column 3.
    assert_at(
        only(&e, "duplicate_key"),
        &["both `nodes` and its alias `expressions`"],
        Some("expressions"),
        Some((5, 3)),
    );
}

#[test]
fn traffic_is_rejected_pointing_at_classes() {
    let key = "traffic";
    let e = rejected(&format!("{GRID}{key}: [gold, silver]\nnodes:\n  - {{id: a, kind: const, values: [1]}}\n"));
    // The value on line 2 starts after `<key>: `.
    let column = key.len() as u32 + 3;
    assert_at(only(&e, "unsupported"), &[key, "use `classes` and `classMix` (§6.1)"], Some(key), Some((2, column)));
}

#[test]
fn const_length_mismatch_names_the_node() {
    let e = rejected(&format!("{GRID}nodes:\n  - {{id: a, kind: const, values: [1, 2]}}\n"));
    let d = only(&e, "const_length");
    assert_at(d, &["`values` has 2 entries", "3 bins"], Some("nodes[0] (id a)"), Some((3, 5)));
}

// ---------------------------------------------------------------------------------------------
// §1 grid.

#[test]
fn misaligned_grid_start_names_the_field() {
    let text = "grid:\n  bins: 3\n  binSize: 5\n  binUnit: minutes\n  start: \"2025-10-07T00:03:00Z\"\nnodes:\n  - {id: a, kind: const, values: [1]}\n";
    let e = rejected(text);
    let d = only(&e, "bad_grid");
    assert_at(
        d,
        &["2025-10-07T00:03:00Z", "not aligned to the 5-minute", "2025-10-07T00:00:00Z", "2025-10-07T00:05:00Z"],
        Some("grid.start"),
        Some((5, 10)),
    );
}

#[test]
fn both_start_and_start_time_utc_is_an_error() {
    let text = "grid:\n  bins: 3\n  binSize: 5\n  binUnit: minutes\n  start: \"2025-10-07T00:00:00Z\"\n  startTimeUtc: \"2025-10-07T00:00:00Z\"\nnodes:\n  - {id: a, kind: const, values: [1]}\n";
    let e = rejected(text);
    assert_at(
        only(&e, "duplicate_key"),
        &["both `start` and its alias `startTimeUtc`"],
        Some("grid.startTimeUtc"),
        Some((6, 17)),
    );
}

// ---------------------------------------------------------------------------------------------
// §5 expressions: every error carries the offending token's offset.

#[test]
fn unknown_reference_has_a_caret_under_it() {
    let text = format!(
        "{GRID}nodes:\n  - {{id: arrivals, kind: const, values: [1]}}\n  - id: c\n    kind: expr\n    expr: \"arrivals + arrivls * 2\"\n"
    );
    let e = rejected(&text);
    let d = only(&e, "unknown_reference");
    assert_at(d, &["unknown series `arrivls`"], Some("nodes[1] (id c).expr"), Some((6, 11)));
    assert_eq!(caret(d), ("arrivls", 11));
    assert_eq!(d.help.as_deref(), Some("did you mean `arrivals`?"));
    assert!(d.render().contains("   | arrivals + arrivls * 2\n   |            ^^^^^^^\n"), "{}", d.render());

    // Non-ASCII text before the reference: the caret is placed by characters, not bytes.
    let e = rejected(&with_expr("a + \u{e9}t\u{e9}"));
    assert!(e.render().contains("unexpected character"), "{}", e.render());
    let e = rejected(&format!("{GRID}nodes:\n  - {{id: \u{e9}, kind: const, values: [1]}}\n"));
    assert!(e.0[0].message.contains("must match"), "{}", e.render());
}

#[test]
fn unknown_function_has_a_caret_under_its_name() {
    assert_expr_error("1 + FOO(a)", &["unknown function `FOO`"], "FOO", 4);
    // A near miss is still unknown; the help lists the functions.
    let e = rejected(&with_expr("SHIFTT(a, 1)"));
    assert!(e.0[0].help.as_deref().unwrap_or("").contains("SHIFT, CONV"), "{}", e.render());
}

#[test]
fn wrong_arity_has_a_caret_under_the_function() {
    assert_expr_error("2 * MIN(a)", &["MIN takes at least 2 arguments, got 1"], "MIN", 4);
    assert_expr_error("MAX()", &["MAX takes at least 2 arguments, got 0"], "MAX", 0);
    assert_expr_error("SHIFT(a)", &["SHIFT takes 2 arguments, got 1"], "SHIFT", 0);
    assert_expr_error("a + CLAMP(a, 1)", &["CLAMP takes 3 arguments, got 2"], "CLAMP", 4);
    assert_expr_error("ABS(a, a)", &["ABS takes 1 argument, got 2"], "ABS", 0);
    assert_expr_error("MOD(a)", &["MOD takes 2 arguments, got 1"], "MOD", 0);
    assert_expr_error("CONV(a)", &["CONV takes 2 arguments, got 1"], "CONV", 0);
    assert_expr_error("PULSE()", &["PULSE takes 1 to 3 arguments, got 0"], "PULSE", 0);
    assert_expr_error("PULSE(1, 0, 1, 1)", &["PULSE takes 1 to 3 arguments, got 4"], "PULSE", 0);
}

#[test]
fn shift_lag_must_be_a_literal() {
    assert_expr_error("SHIFT(a, a)", &["SHIFT's lag must be a literal number"], "a", 9);
    assert_expr_error("SHIFT(a, 1 + 1)", &["SHIFT's lag must be a literal number"], "1 + 1", 9);
    assert_expr_error("SHIFT(a, ABS(1))", &["SHIFT's lag must be a literal number"], "ABS(1)", 9);
    assert_expr_error("PULSE(a)", &["PULSE's period must be a literal number"], "a", 6);
    assert_expr_error("PULSE(2, a)", &["PULSE's phase must be a literal number"], "a", 9);
}

#[test]
fn shift_lag_must_be_a_whole_number_at_least_zero() {
    assert_expr_error("SHIFT(a, -1)", &["SHIFT's lag must not be negative (got -1)"], "-1", 9);
    assert_expr_error("SHIFT(a, 1.5)", &["SHIFT's lag must be a whole number (got 1.5)"], "1.5", 9);
    assert_expr_error("PULSE(0)", &["PULSE's period must be at least 1 (got 0)"], "0", 6);
    assert_expr_error("PULSE(2.5)", &["PULSE's period must be a whole number"], "2.5", 6);
    assert_expr_error("PULSE(2, -1)", &["PULSE's phase must not be negative"], "-1", 9);

    // Through a parameter: the error names the parameter too, with the caret on the placeholder.
    for (ty, value, fragment) in
        [("integer", "-1", "must not be negative (got -1)"), ("number", "1.5", "must be a whole number (got 1.5)")]
    {
        let text = format!(
            "parameters: [{{name: k, type: {ty}, default: {value}}}]\n{GRID}nodes:\n  - {{id: a, kind: const, values: [1]}}\n  - {{id: c, kind: expr, expr: \"SHIFT(a, {{{{k}}}})\"}}\n"
        );
        let e = rejected(&text);
        let d = &e.0[0];
        assert_at(d, &["SHIFT's lag", fragment, "parameter `k`"], Some("nodes[1] (id c).expr"), Some((5, 31)));
        assert_eq!(caret(d), ("{{k}}", 9));
    }
}

#[test]
fn self_shift_without_initial_is_the_exact_error() {
    let text = format!(
        "{GRID}nodes:\n  - {{id: a, kind: const, values: [1]}}\n  - id: queue_depth\n    kind: expr\n    expr: \"MAX(0, SHIFT(queue_depth, 1) + a)\"\n"
    );
    let e = rejected(&text);
    let d = only(&e, "self_shift_initial");
    assert_eq!(d.message, "Self-referencing SHIFT requires explicit 'initial' value");
    assert_at(d, &[], Some("nodes[1] (id queue_depth).expr"), Some((6, 11)));
    assert_eq!(caret(d), ("SHIFT(queue_depth, 1)", 7));
    assert!(d.help.as_deref().unwrap_or("").contains("node `queue_depth`"), "{}", d.render());

    // Also when the node is inside a shifted compound.
    let e = rejected(&with_expr("SHIFT(c * 2 + a, 3)"));
    let d = only(&e, "self_shift_initial");
    assert_eq!(d.message, "Self-referencing SHIFT requires explicit 'initial' value");
    assert_eq!(d.path.as_deref(), Some("nodes[1] (id c).expr"));
}

#[test]
fn arrays_are_only_allowed_as_conv_kernels() {
    assert_expr_error("MIN([1, 2], a)", &["an array is only allowed as CONV's kernel"], "[", 4);
    assert_expr_error("a + [1]", &["an array is only allowed as CONV's kernel"], "[", 4);
    assert_expr_error("SHIFT([1], 1)", &["an array is only allowed as CONV's kernel"], "[", 6);
    assert_expr_error("CONV([1], [1])", &["an array is only allowed as CONV's kernel"], "[", 5);
    assert_expr_error("CONV(a, 2)", &["CONV's kernel must be a list of numbers"], "2", 8);
    assert_expr_error("CONV(a, [1, a])", &["a kernel coefficient must be a number"], "a", 12);
}

#[test]
fn comparison_operators_are_only_allowed_in_validation_checks() {
    assert_expr_error("a >= 1", &["only allowed in validation checks"], ">=", 2);
    assert_expr_error("MIN(a, a < 1)", &["only allowed in validation checks"], "<", 9);
    assert_expr_error("a == 1", &["only allowed in validation checks"], "==", 2);
    assert_expr_error("(a != 1) * 2", &["only allowed in validation checks"], "!=", 3);
    // A single `=` is not an operator at all.
    assert_expr_error("a = 1", &["unexpected character `=`"], "=", 2);
}

#[test]
fn syntax_errors_point_at_the_token() {
    assert_expr_error("(a + 1", &["expected `)`", "end of expression"], "", 6);
    assert_expr_error("a + 1)", &["unmatched `)`"], ")", 5);
    assert_expr_error("a +", &["end of expression"], "", 3);
    assert_expr_error("2a", &["number `2` runs into a name"], "2a", 0);
    assert_expr_error("1 + \u{e9}", &["unexpected character `\u{e9}`"], "\u{e9}", 4);
    assert_expr_error("a * 1e999", &["number `1e999` is too large"], "1e999", 4);
    assert_expr_error("a {{k", &["malformed placeholder"], "{{k", 2);
}

// ---------------------------------------------------------------------------------------------
// §4 series references and CSV files.

#[test]
fn csv_duplicate_and_out_of_range_bins_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        // Bin 1 again on line 4 (the header is line 1).
        ("dup.csv", "bin_index,value\n0,1\n1,2\n1,3\n", 4, "bin 1 appears twice (first on line 3)"),
        // Bin 3 on line 3 of a 3-bin grid.
        ("range.csv", "bin_index,value\n0,1\n3,2\n", 3, "bin 3 is outside the grid (0..3)"),
        ("negative.csv", "t,value\n-1,2\n", 2, "bin -1 is outside the grid"),
        ("nan.csv", "bin_index,value\n0,1\n1,abc\n", 3, "value `abc` is not a number"),
        ("frac.csv", "bin_index,value\n0.5,1\n", 2, "bin index `0.5` is not a whole number"),
    ];
    for (name, body, line, fragment) in files {
        std::fs::write(dir.path().join(name), body).unwrap();
        let text = format!("{GRID}nodes:\n  - {{id: a, kind: const, source: \"file:{name}\"}}\n");
        let e = rejected_in(&text, &[], dir.path());
        let d = only(&e, "series_csv");
        assert!(d.message.contains(fragment), "{name}: {}", d.render());
        assert_eq!((d.file.as_deref(), d.line), (Some(name), Some(line)), "{name}: {}", d.render());
        // The node that reads the file is named too.
        assert_eq!(d.help.as_deref(), Some("read by a"), "{}", d.render());
    }
}

#[test]
fn file_paths_may_not_leave_the_data_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("models");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(dir.path().join("x.csv"), "bin_index,value\n0,1\n").unwrap();
    for (source, fragment) in [
        ("file:../x.csv", "leaves the data root"),
        ("file:data/../../x.csv", "leaves the data root"),
        ("file://../x.csv", "leaves the data root"),
        ("file:/etc/passwd", "is absolute"),
        ("file:///etc/passwd", "is absolute"),
    ] {
        let text = format!("{GRID}nodes:\n  - {{id: a, kind: const, source: \"{source}\"}}\n");
        let e = rejected_in(&text, &[], &root);
        // The quoted source value starts at column 34 of line 3.
        assert_at(only(&e, "bad_reference"), &[fragment], Some("nodes[0] (id a).source"), Some((3, 34)));
    }
    // A series parameter bound to an escaping path is rejected naming the parameter.
    let text = format!(
        "parameters: [{{name: src, type: series, default: \"file:x.csv\"}}]\n{GRID}nodes:\n  - {{id: a, kind: const, source: \"{{{{src}}}}\"}}\n"
    );
    let e = rejected_in(&text, &[("src", "file:../x.csv")], &root);
    let d = &e.0[0];
    assert!(d.message.contains("parameter `src`") && d.message.contains("leaves the data root"), "{}", d.render());
    assert_eq!(d.path.as_deref(), Some("parameters.src"));
}

#[cfg(unix)]
#[test]
fn a_symlink_out_of_the_data_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("models");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(dir.path().join("secret.csv"), "bin_index,value\n0,1\n").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.csv"), root.join("link.csv")).unwrap();
    let text = format!("{GRID}nodes:\n  - {{id: a, kind: const, source: \"file:link.csv\"}}\n");
    let e = rejected_in(&text, &[], &root);
    let d = only(&e, "path_escape");
    assert!(d.message.contains("outside the data root"), "{}", d.render());
    assert_eq!(d.file.as_deref(), Some("link.csv"));
}

// ---------------------------------------------------------------------------------------------
// §3 template parameters.

const PARAMS: &str = "parameters:
  - {name: k, type: number, default: 1, min: 0, max: 10}
  - {name: n, type: integer, default: 2}
  - {name: mode, type: enum, values: [fast, slow], default: fast}
";

fn template(extra_params: &str, nodes: &str) -> String {
    format!("{PARAMS}{extra_params}{GRID}nodes:\n{nodes}")
}

const PLAIN_NODES: &str = "  - {id: a, kind: expr, expr: \"{{k}} * {{n}}\"}\n";

#[test]
fn supplied_parameter_of_the_wrong_type() {
    let e = rejected_with(&template("", PLAIN_NODES), &[("k", "abc")]);
    let d = only(&e, "parameter_type");
    assert_at(d, &["parameter `k`", "expected a number", "abc"], Some("parameters.k"), None);
    let e = rejected_with(&template("", PLAIN_NODES), &[("n", "1.5")]);
    assert_at(only(&e, "parameter_type"), &["parameter `n`", "expected an integer"], Some("parameters.n"), None);
}

#[test]
fn parameter_out_of_range_or_not_among_its_values() {
    let e = rejected_with(&template("", PLAIN_NODES), &[("k", "11")]);
    assert_at(only(&e, "parameter_range"), &["parameter `k`", "above the maximum 10"], Some("parameters.k"), None);
    let e = rejected_with(&template("", PLAIN_NODES), &[("k", "-0.5")]);
    assert_at(only(&e, "parameter_range"), &["parameter `k`", "below the minimum 0"], Some("parameters.k"), None);
    let e = rejected_with(&template("", PLAIN_NODES), &[("mode", "medium")]);
    let d = only(&e, "parameter_range");
    assert_at(
        d,
        &["parameter `mode`", "`medium` is not one of the allowed values [fast, slow]"],
        Some("parameters.mode"),
        None,
    );
}

#[test]
fn parameter_missing_and_unknown_parameter_supplied() {
    let e = rejected(&template("  - {name: q0, type: number}\n", PLAIN_NODES));
    assert_at(
        only(&e, "parameter_missing"),
        &["parameter `q0` has no value and no default"],
        Some("parameters.q0"),
        None,
    );
    let e = rejected_with(&template("", PLAIN_NODES), &[("kk", "1")]);
    let d = only(&e, "unknown_parameter");
    assert_at(d, &["unknown parameter `kk`"], Some("parameters.kk"), None);
    assert!(d.help.as_deref().unwrap_or("").contains("k, n, mode"), "{}", d.render());
}

#[test]
fn parameter_default_of_the_wrong_type_names_the_declaration() {
    let e = rejected(&template("  - {name: f, type: integer, default: 1.5}\n", PLAIN_NODES));
    // Line 5 of the text; the default value starts at column 39.
    let d = only(&e, "bad_default");
    assert_at(
        d,
        &["default of parameter `f`", "expected an integer"],
        Some("parameters[3] (name f).default"),
        Some((5, 39)),
    );
}

#[test]
fn parameter_of_the_wrong_type_for_its_field_names_both() {
    // An enum parameter as a node's `initial`, which needs a number (line 7; value at column 55).
    let nodes = "  - {id: a, kind: expr, expr: \"SHIFT(a, 1)\", initial: \"{{mode}}\"}\n";
    let e = rejected(&template("", nodes));
    let d = only(&e, "type");
    assert_at(
        d,
        &["parameter `mode`", "`nodes[0] (id a).initial`", "expects a number"],
        Some("nodes[0] (id a).initial"),
        Some((7, 55)),
    );

    // An enum parameter inside an expression: formulas are fixed (caret on the placeholder).
    let nodes = "  - {id: a, kind: expr, expr: \"1 + {{mode}}\"}\n";
    let e = rejected(&template("", nodes));
    let d = only(&e, "expr_param");
    assert_at(
        d,
        &["parameter `mode`", "only number and integer parameters"],
        Some("nodes[0] (id a).expr"),
        Some((7, 31)),
    );
    assert_eq!(caret(d), ("{{mode}}", 4));
}

#[test]
fn unknown_placeholders_name_the_placeholder_and_the_place() {
    // In an expression: caret under it.
    let e = rejected(&template("", "  - {id: a, kind: expr, expr: \"2 * {{kk}}\"}\n"));
    let d = only(&e, "expr_param");
    assert_at(d, &["unknown placeholder `{{kk}}`"], Some("nodes[0] (id a).expr"), Some((7, 31)));
    assert_eq!(caret(d), ("{{kk}}", 4));

    // In a const value: the list item's path and position.
    let e = rejected(&template("", "  - {id: a, kind: const, values: [\"{{kk}}\"]}\n"));
    let d = only(&e, "unknown_placeholder");
    assert_at(d, &["unknown placeholder `{{kk}}`"], Some("nodes[0] (id a).values[0]"), Some((7, 35)));
    assert!(d.help.as_deref().unwrap_or("").contains("k, mode, n"), "declared parameters listed: {}", d.render());

    // Spliced into a longer string (a file path).
    let e = rejected(&template("", "  - {id: a, kind: const, source: \"file:{{dir}}/a.csv\"}\n"));
    assert_at(only(&e, "unknown_placeholder"), &["`{{dir}}`"], Some("nodes[0] (id a).source"), Some((7, 34)));

    // In the grid.
    let text = format!("{PARAMS}grid: {{bins: \"{{{{size}}}}\", binSize: 1, binUnit: hours}}\nnodes:\n{PLAIN_NODES}");
    assert_at(only(&rejected(&text), "unknown_placeholder"), &["`{{size}}`"], Some("grid.bins"), Some((5, 14)));
}

#[test]
fn stored_series_references_that_are_not_stored_are_rejected_clearly() {
    let e = rejected(&format!("{GRID}nodes:\n  - {{id: a, kind: const, source: \"series:orders\"}}\n"));
    let d = &e.0[0];
    assert!(d.message.contains("no stored series `orders`"), "{}", d.render());
    // FIXME: the help names the reading node, but the diagnostic has no YAML path.
    assert!(d.help.as_deref().unwrap_or("").contains("read by a"), "{}", d.render());
}
