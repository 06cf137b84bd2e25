//! Counter-based random numbers for Monte Carlo: every draw is a function of (seed, what is drawn,
//! sample index), never of the order in which workers run, so the same seed gives the same bytes
//! whatever the thread count.
//!
//! Each (seed, purpose, name) pair keys a ChaCha8 generator (the key is the sha256 of the three);
//! the sample index selects its stream. A pmf node's bins are drawn in bin order from its
//! sample's stream; a parameter's value is the first accepted draw of its sample's stream.

use rand::SeedableRng;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// A parameter's distribution.
#[derive(Clone, Debug, PartialEq)]
pub enum Dist {
    Uniform {
        lo: f64,
        hi: f64,
    },
    Normal {
        mean: f64,
        sd: f64,
    },
    /// The logarithm is normal with these parameters.
    LogNormal {
        mu: f64,
        sigma: f64,
    },
    Triangular {
        min: f64,
        mode: f64,
        max: f64,
    },
    /// `values[i]` with probability `weights[i] / Σ weights`.
    Discrete {
        values: Vec<f64>,
        weights: Vec<f64>,
    },
}

impl Dist {
    /// Checks the distribution's own parameters; the message says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let finite = |xs: &[f64]| xs.iter().all(|x| x.is_finite());
        match self {
            Dist::Uniform { lo, hi } if finite(&[*lo, *hi]) && lo < hi => Ok(()),
            Dist::Uniform { lo, hi } => Err(format!("uniform({lo}, {hi}) needs finite lo < hi")),
            Dist::Normal { mean, sd } if finite(&[*mean, *sd]) && *sd > 0.0 => Ok(()),
            Dist::Normal { mean, sd } => Err(format!("normal({mean}, {sd}) needs a finite mean and sd > 0")),
            Dist::LogNormal { mu, sigma } if finite(&[*mu, *sigma]) && *sigma > 0.0 => Ok(()),
            Dist::LogNormal { mu, sigma } => Err(format!("lognormal({mu}, {sigma}) needs a finite mu and sigma > 0")),
            Dist::Triangular { min, mode, max }
                if finite(&[*min, *mode, *max]) && min <= mode && mode <= max && min < max =>
            {
                Ok(())
            }
            Dist::Triangular { min, mode, max } => {
                Err(format!("triangular({min}, {mode}, {max}) needs finite min ≤ mode ≤ max with min < max"))
            }
            Dist::Discrete { values, weights } => {
                if values.is_empty() || values.len() != weights.len() {
                    return Err("discrete needs as many weights as values, at least one".to_string());
                }
                if !finite(values) || !finite(weights) || weights.iter().any(|w| *w < 0.0) {
                    return Err("discrete values must be finite and weights finite and ≥ 0".to_string());
                }
                if weights.iter().sum::<f64>() <= 0.0 {
                    return Err("discrete weights must not all be 0".to_string());
                }
                Ok(())
            }
        }
    }

    /// True when every value the distribution can give is a whole number.
    pub fn whole(&self) -> bool {
        matches!(self, Dist::Discrete { values, .. } if values.iter().all(|v| v.fract() == 0.0))
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> f64 {
        use rand_distr::{LogNormal, Normal, Triangular, Uniform};
        // `check` ran first, so the constructors cannot fail; NaN would be refused by the caller.
        match self {
            Dist::Uniform { lo, hi } => Uniform::new(*lo, *hi).map_or(f64::NAN, |d| d.sample(rng)),
            Dist::Normal { mean, sd } => Normal::new(*mean, *sd).map_or(f64::NAN, |d| d.sample(rng)),
            Dist::LogNormal { mu, sigma } => LogNormal::new(*mu, *sigma).map_or(f64::NAN, |d| d.sample(rng)),
            Dist::Triangular { min, mode, max } => {
                Triangular::new(*min, *max, *mode).map_or(f64::NAN, |d| d.sample(rng))
            }
            Dist::Discrete { values, weights } => {
                WeightedIndex::new(weights).map_or(f64::NAN, |d| values[d.sample(rng)])
            }
        }
    }
}

/// The generator for (seed, purpose, name), positioned at the start of `sample`'s stream.
fn stream(seed: u64, purpose: &str, name: &str, sample: u64) -> ChaCha8Rng {
    let mut h = Sha256::new();
    h.update(b"flowtime monte carlo v1\0");
    h.update(seed.to_le_bytes());
    h.update(purpose.as_bytes());
    h.update([0]);
    h.update(name.as_bytes());
    let mut rng = ChaCha8Rng::from_seed(h.finalize().into());
    rng.set_stream(sample);
    rng
}

/// Most draws tried for one parameter value inside its declared range before giving up.
pub const MAX_REDRAWS: u32 = 10_000;

/// Parameter `name`'s value in `sample`: the first draw that `accept` takes (values outside the
/// parameter's declared range are drawn again: the distribution is truncated to it), or None
/// after [`MAX_REDRAWS`] refusals.
pub fn param_value(seed: u64, name: &str, sample: u64, dist: &Dist, accept: impl Fn(f64) -> bool) -> Option<f64> {
    let mut rng = stream(seed, "param", name, sample);
    (0..MAX_REDRAWS).map(|_| dist.draw(&mut rng)).find(|v| accept(*v))
}

/// A pmf node's series in `sample`: one value per bin, bin `t` drawn with probability
/// `probabilities[i] / Σ probabilities`.
pub fn pmf_series(seed: u64, node: &str, sample: u64, values: &[f64], probabilities: &[f64], bins: usize) -> Vec<f64> {
    let mut rng = stream(seed, "pmf", node, sample);
    match WeightedIndex::new(probabilities) {
        Ok(d) => (0..bins).map(|_| values[d.sample(&mut rng)]).collect(),
        // A document's pmf was validated when it was read; keep its expected value otherwise.
        Err(_) => vec![f64::NAN; bins],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_depend_on_seed_name_and_sample_only() {
        let d = Dist::Normal { mean: 10.0, sd: 2.0 };
        let a = param_value(7, "x", 3, &d, |_| true);
        assert_eq!(a, param_value(7, "x", 3, &d, |_| true));
        assert_ne!(a, param_value(8, "x", 3, &d, |_| true));
        assert_ne!(a, param_value(7, "y", 3, &d, |_| true));
        assert_ne!(a, param_value(7, "x", 4, &d, |_| true));
        let s = pmf_series(1, "n", 0, &[0.0, 1.0], &[0.5, 0.5], 1000);
        assert_eq!(s, pmf_series(1, "n", 0, &[0.0, 1.0], &[0.5, 0.5], 1000));
        let ones = s.iter().filter(|v| **v == 1.0).count();
        assert!((400..600).contains(&ones), "{ones}");
    }

    #[test]
    fn truncation_redraws_and_gives_up() {
        let d = Dist::Uniform { lo: 0.0, hi: 10.0 };
        for s in 0..50 {
            let v = param_value(1, "x", s, &d, |v| v >= 5.0).unwrap();
            assert!((5.0..10.0).contains(&v));
        }
        assert_eq!(param_value(1, "x", 0, &d, |v| v > 20.0), None);
    }

    #[test]
    fn distributions_are_checked() {
        assert!(Dist::Uniform { lo: 1.0, hi: 1.0 }.check().is_err());
        assert!(Dist::Normal { mean: 0.0, sd: 0.0 }.check().is_err());
        assert!(Dist::Triangular { min: 0.0, mode: 2.0, max: 1.0 }.check().is_err());
        assert!(Dist::Discrete { values: vec![1.0], weights: vec![0.0] }.check().is_err());
        assert!(Dist::Discrete { values: vec![1.0, 2.0], weights: vec![1.0, 3.0] }.check().is_ok());
    }
}
