//! The cost of classes (§6.1, issue 16): the generated chain (1,000 nodes × 8,760 bins) and
//! topology (1,000 services × 288 bins) with 1, 4 and 16 classes mixed at their sources (so every
//! series downstream is classed), against the same model without classes, in one run.
//!
//! Per model and class count: the evaluation of every total (`evaluate`) plus every mix
//! (`evaluate_mixes`, what a request for all per-class series, a run or the class warnings
//! costs) from a freshly loaded model, best of `REPS` runs interleaved with the classless
//! baseline; and the memory of the evaluated series (values plus mixes, `bins × k` f64 each)
//! against the classless values. The budget of issue 16 is `1 + classes` for both.
//!
//! Run with `cargo bench --bench classes` (release). Prints one table.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use flowtime::host::Host;
use flowtime::model::generate;

const REPS: usize = 3;

/// The model with `k` classes declared and mixed at `source` (shares `1, 2, …, k`).
fn classed(text: &str, source: &str, k: usize) -> String {
    if k == 0 {
        return text.to_string();
    }
    let ids: Vec<String> = (0..k).map(|c| format!("{{id: c{c}}}")).collect();
    let shares: Vec<String> = (0..k).map(|c| format!("c{c}: {}", c + 1)).collect();
    let needle = format!("  - {{id: {source}, kind: const, values: [");
    let at = text.find(&needle).expect("source node");
    let end = at + text[at..].find("]}").expect("end of source");
    let mut out = String::with_capacity(text.len() + 256);
    out.push_str(&text[..end + 1]);
    out.push_str(&format!(", classMix: {{{}}}", shares.join(", ")));
    out.push_str(&text[end + 1..]);
    out.insert_str(0, &format!("classes: [{}]\n", ids.join(", ")));
    out
}

/// (seconds, bytes of values, bytes of mixes, classed series) of one cold evaluation.
fn run(text: &str) -> (f64, usize, usize, usize) {
    let mut host = Host::new();
    let m = host.load_text(text, "model.yaml", &BTreeMap::new(), Path::new(".")).unwrap();
    let start = Instant::now();
    let mut ev = host.evaluate(&m, None).unwrap();
    host.evaluate_mixes(&m, &mut ev, None).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let values: usize = ev.series.values().map(|s| s.len() * 8).sum();
    let mixes: usize = ev.mixes.values().map(|s| s.len() * 8).sum();
    (secs, values, mixes, ev.mixes.len())
}

fn main() {
    let models = [
        ("chain 1000 x 8760", generate::chain(1000, 8760), "n0"),
        ("topology 1000 x 288", generate::topology(1000, 288), "demand"),
    ];
    println!("model                 classes  classed  time_s   time_ratio  mem_MB    mem_ratio  budget");
    for (name, text, source) in &models {
        let texts: Vec<(usize, String)> = [0usize, 1, 4, 16].iter().map(|k| (*k, classed(text, source, *k))).collect();
        let mut best: Vec<(f64, usize, usize, usize)> = vec![(f64::INFINITY, 0, 0, 0); texts.len()];
        for _ in 0..REPS {
            for (i, (_, t)) in texts.iter().enumerate() {
                let r = run(t);
                if r.0 < best[i].0 {
                    best[i] = r;
                }
            }
        }
        let (t0, v0, _, _) = best[0];
        for ((k, _), (t, v, m, n)) in texts.iter().zip(&best) {
            println!(
                "{name:<21} {k:>7}  {n:>7}  {t:>7.3}  {:>10.2}  {:>8.1}  {:>9.2}  {:>6}",
                t / t0,
                (v + m) as f64 / 1e6,
                (v + m) as f64 / v0 as f64,
                1 + k
            );
        }
    }
}
