//! A seeded synthetic basket dataset with the schema of the retail seed data.
//!
//! How a basket is drawn:
//! - each categorical field independently, with the frequencies in [`CATEGORY_WEIGHTS`];
//! - `QUANTITY` = 1 + a log-normal count whose median grows with `BASKET_SIZE`
//!   (S ≈ 3, M ≈ 8, L ≈ 20 items);
//! - `SPEND` = `QUANTITY` × a log-normal item price (median £5, σ = 0.7 in log space),
//!   rounded to pennies.
//!
//! The label follows a multinomial logit: every label has a utility, `MM` fixed at 0,
//! `LA` and `UM` summing the effects in [`LA_EFFECTS`] / [`UM_EFFECTS`] plus a term in the
//! standardised log item price (cheap baskets lean `LA`, dear ones `UM`); standard Gumbel
//! noise is added and the largest utility wins. So a logistic regression can learn the
//! truth, but the noise keeps accuracy honest (well below 100%).

use crate::features::Value;
use crate::schema::{FIELDS, FieldKind};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Seed of the published dataset.
pub const SEED: u64 = 20_260_601;
/// Rows in the published dataset.
pub const N_ROWS: usize = 10_000;
/// Share of rows held out for evaluation.
pub const TEST_FRACTION: f64 = 0.2;

const MEDIAN_ITEM_PRICE: f64 = 5.0;
const ITEM_PRICE_LOG_SIGMA: f64 = 0.7;
/// Utility per standard deviation of log item price.
const PRICE_EFFECT_LA: f64 = -2.0;
const PRICE_EFFECT_UM: f64 = 2.2;
const INTERCEPT_LA: f64 = -1.0;
const INTERCEPT_UM: f64 = -1.3;

/// Relative frequency of each category, per categorical field in [`FIELDS`] order.
pub const CATEGORY_WEIGHTS: [&[f64]; 6] = [
    &[0.35, 0.45, 0.20],
    &[0.25, 0.35, 0.25, 0.15],
    &[0.22, 0.16, 0.10, 0.14, 0.12, 0.10, 0.09, 0.07],
    &[0.35, 0.30, 0.25, 0.10],
    &[0.50, 0.15, 0.15, 0.10, 0.10],
    &[0.25, 0.20, 0.15, 0.30, 0.10],
];

/// Utility added to `LA` by each category, per categorical field in [`FIELDS`] order.
pub const LA_EFFECTS: [&[f64]; 6] = [
    &[0.4, 0.0, -0.3],
    &[0.3, 0.5, -0.2, 0.0],
    &[-0.8, -0.4, 0.0, 0.2, 0.4, 0.7, 0.3, 0.6],
    &[-0.2, 0.0, 0.5, -0.3],
    &[0.0, 0.2, 0.4, -0.3, 0.1],
    &[-0.4, 0.0, 0.5, 0.4, -0.2],
];

/// Utility added to `UM` by each category, per categorical field in [`FIELDS`] order.
pub const UM_EFFECTS: [&[f64]; 6] = [
    &[-0.2, 0.1, 0.3],
    &[-0.1, -0.3, 0.2, 0.3],
    &[0.9, 0.6, 0.2, 0.0, -0.2, -0.5, 0.0, -0.4],
    &[0.4, 0.1, -0.4, 0.2],
    &[0.2, -0.1, -0.3, 0.5, 0.0],
    &[0.6, 0.2, -0.4, -0.3, 0.4],
];

/// One labelled basket. Values are in [`FIELDS`] order; `label` indexes [`crate::LABELS`].
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub values: [Value<'static>; FIELDS.len()],
    pub label: usize,
}

/// The train and held-out splits of one generated dataset.
#[derive(Debug, Clone)]
pub struct Splits {
    pub train: Vec<Example>,
    pub test: Vec<Example>,
}

/// Generates `n` baskets from `seed`; the same arguments always give the same rows.
pub fn generate(seed: u64, n: usize) -> Vec<Example> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| draw(&mut rng)).collect()
}

/// Shuffles with `seed` and holds out `test_fraction` of the rows.
pub fn split(mut rows: Vec<Example>, seed: u64, test_fraction: f64) -> Splits {
    // A stream apart from the generator's, so the split does not echo the draws.
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(1));
    rows.shuffle(&mut rng);
    let n_test = (rows.len() as f64 * test_fraction).round() as usize;
    let train = rows.split_off(n_test);
    Splits { train, test: rows }
}

/// The published dataset: [`N_ROWS`] rows from [`SEED`], split [`TEST_FRACTION`].
pub fn published() -> Splits {
    split(generate(SEED, N_ROWS), SEED, TEST_FRACTION)
}

/// `examples` as CSV: a header of the field names and `LABEL`, then one line per row.
pub fn to_csv(examples: &[Example]) -> String {
    let header: Vec<&str> = FIELDS.iter().map(|f| f.name).chain(["LABEL"]).collect();
    let mut out = vec![header.join(",")];
    for e in examples {
        let cells = e.values.iter().map(|v| match v {
            Value::Number(x) => x.to_string(),
            Value::Text(s) => (*s).to_string(),
        });
        out.push(cells.chain([crate::LABELS[e.label].to_string()]).collect::<Vec<_>>().join(","));
    }
    out.join("\n") + "\n"
}

fn draw(rng: &mut ChaCha8Rng) -> Example {
    let mut values = [Value::Number(0.0); FIELDS.len()];
    let mut codes = [0usize; 6];
    let mut categorical = 0;
    for (spec, value) in FIELDS.iter().zip(values.iter_mut()) {
        if let FieldKind::Category(names) = spec.kind {
            let index = pick(rng, CATEGORY_WEIGHTS[categorical]);
            codes[categorical] = index;
            *value = Value::Text(names[index]);
            categorical += 1;
        }
    }

    let size_median = [3.0, 8.0, 20.0][codes[0]];
    let quantity = 1.0 + (size_median * (0.4 * normal(rng)).exp()).floor();
    let price_z = normal(rng);
    let item_price = MEDIAN_ITEM_PRICE * (ITEM_PRICE_LOG_SIGMA * price_z).exp();
    let spend = (quantity * item_price * 100.0).round() / 100.0;
    set_number(&mut values, "QUANTITY", quantity);
    set_number(&mut values, "SPEND", spend);

    let effect = |table: &[&[f64]; 6]| -> f64 { codes.iter().zip(table).map(|(&c, t)| t[c]).sum() };
    let utilities = [
        INTERCEPT_LA + effect(&LA_EFFECTS) + PRICE_EFFECT_LA * price_z + gumbel(rng),
        gumbel(rng),
        INTERCEPT_UM + effect(&UM_EFFECTS) + PRICE_EFFECT_UM * price_z + gumbel(rng),
    ];
    let label = crate::features::argmax(&utilities);
    Example { values, label }
}

fn set_number(values: &mut [Value<'static>; FIELDS.len()], name: &str, x: f64) {
    let index = FIELDS.iter().position(|f| f.name == name).expect("field in schema");
    values[index] = Value::Number(x);
}

fn pick(rng: &mut ChaCha8Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}

/// Standard normal by Box–Muller.
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Standard Gumbel: the noise that makes an argmax of utilities a softmax draw.
fn gumbel(rng: &mut ChaCha8Rng) -> f64 {
    let u = 1.0 - rng.random::<f64>();
    -(-u.ln()).ln()
}
