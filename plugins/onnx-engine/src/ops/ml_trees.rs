//! `TreeEnsembleClassifier` (ONNX-ML 1 and 3): each row walks every tree to a leaf, the
//! leaves' class weights are summed, base values added, and the post-transform applied,
//! with onnxruntime's precision (single, unless the input is double) and its rules for
//! two-label models.

use super::ml_linear::LabelValues;
use super::post_transform::{PostTransform, logistic, probit};
use super::{BuildError, Kernel, NodeSpec, required};
use crate::graph::ClassLabels;
use crate::tensor::{Data, Strings, Tensor};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

impl Mode {
    fn parse(name: &[u8]) -> Result<Self, String> {
        Ok(match name {
            b"BRANCH_LEQ" => Self::Leq,
            b"BRANCH_LT" => Self::Lt,
            b"BRANCH_GTE" => Self::Gte,
            b"BRANCH_GT" => Self::Gt,
            b"BRANCH_EQ" => Self::Eq,
            b"BRANCH_NEQ" => Self::Neq,
            b"LEAF" => Self::Leaf,
            other => return Err(format!("unknown node mode {:?}", String::from_utf8_lossy(other))),
        })
    }
}

/// One node, 32 bytes: a forest of 50 deep trees has some 60,000.
struct Node {
    /// The threshold as single- and as double-precision input compares with it.
    threshold: f64,
    threshold_single: f32,
    feature: u32,
    /// Branch: the next node if the comparison holds, and if not. Leaf: the range of
    /// `TreeEnsembleClassifier::weights` that holds its class weights.
    if_true: u32,
    if_false: u32,
    mode: Mode,
    /// A missing (NaN) value takes the true branch.
    missing_true: bool,
}

pub struct TreeEnsembleClassifier {
    nodes: Vec<Node>,
    roots: Vec<usize>,
    /// `(class, weight)` of every leaf, leaf after leaf.
    weights: Vec<(u32, f64)>,
    base_values: Vec<f64>,
    labels: LabelValues,
    post_transform: PostTransform,
    /// Every weight is for one class: the ensemble scores one side of a two-label model.
    single_class: bool,
    all_positive: bool,
}

impl TreeEnsembleClassifier {
    pub fn new(node: &NodeSpec<'_>, strings: &mut Strings<'_>) -> Result<Self, BuildError> {
        let a = &node.attrs;
        let tree_ids = a.ints("nodes_treeids");
        let node_ids = a.ints("nodes_nodeids");
        let features = a.ints("nodes_featureids");
        let thresholds = a.doubles("nodes_values")?;
        let modes = a.raw_strings("nodes_modes");
        let trues = a.ints("nodes_truenodeids");
        let falses = a.ints("nodes_falsenodeids");
        let missing = a.ints("nodes_missing_value_tracks_true");
        let count = tree_ids.len();
        let lists =
            [node_ids.len(), features.len(), thresholds.len(), modes.len(), trues.len(), falses.len()];
        if count == 0 || lists.iter().any(|&n| n != count) || !(missing.is_empty() || missing.len() == count)
        {
            return Err(BuildError::Invalid(format!(
                "node attribute lists of unequal lengths ({count} tree ids, {lists:?})"
            )));
        }
        if u32::try_from(count).is_err() {
            return Err(BuildError::Invalid(format!("{count} nodes; at most 2^32")));
        }
        let index: HashMap<(i64, i64), u32> =
            tree_ids.iter().zip(&node_ids).enumerate().map(|(i, (&t, &n))| ((t, n), i as u32)).collect();
        let find = |tree: i64, id: i64| {
            index.get(&(tree, id)).copied().ok_or_else(|| format!("tree {tree} has no node {id}"))
        };
        let mut nodes = Vec::with_capacity(count);
        let mut roots = Vec::new();
        for i in 0..count {
            if i == 0 || tree_ids[i] != tree_ids[i - 1] {
                roots.push(i);
            }
            let mode = Mode::parse(&modes[i])?;
            let (if_true, if_false) = if mode == Mode::Leaf {
                (0, 0)
            } else {
                (find(tree_ids[i], trues[i])?, find(tree_ids[i], falses[i])?)
            };
            nodes.push(Node {
                feature: u32::try_from(features[i]).map_err(|_| format!("feature id {}", features[i]))?,
                threshold: thresholds[i],
                threshold_single: thresholds[i] as f32,
                mode,
                if_true,
                if_false,
                missing_true: missing.get(i) == Some(&1),
            });
        }

        let class_trees = a.ints("class_treeids");
        let class_nodes = a.ints("class_nodeids");
        let class_ids = a.ints("class_ids");
        let class_weights = a.doubles("class_weights")?;
        let n = class_ids.len();
        if [class_trees.len(), class_nodes.len(), class_weights.len()].iter().any(|&l| l != n) {
            return Err(BuildError::Invalid("class attribute lists of unequal lengths".into()));
        }
        let labels = LabelValues::new(ClassLabels::from_attrs(a), strings);
        let classes = labels.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (class_trees[i], class_nodes[i], i));
        let mut weights = Vec::with_capacity(n);
        for i in order {
            let leaf = &mut nodes[find(class_trees[i], class_nodes[i])? as usize];
            let class = u32::try_from(class_ids[i]).ok().filter(|&c| (c as usize) < classes.max(1));
            let class = class.ok_or_else(|| format!("class id {} for {classes} labels", class_ids[i]))?;
            // Weights on branch nodes are never reached. A leaf's weights are adjacent:
            // they were sorted by node.
            if leaf.mode == Mode::Leaf {
                if leaf.if_true == leaf.if_false {
                    leaf.if_true = weights.len() as u32;
                }
                weights.push((class, class_weights[i]));
                leaf.if_false = weights.len() as u32;
            }
        }
        if classes < 2 {
            return Err(BuildError::Invalid(format!(
                "{classes} class labels; a classifier needs two or more"
            )));
        }
        let single_class = class_ids.iter().all(|&c| c == class_ids[0]);
        let all_positive = class_weights.iter().all(|&w| w >= 0.0);
        Ok(Self {
            nodes,
            roots,
            weights,
            base_values: a.doubles("base_values")?,
            labels,
            post_transform: PostTransform::parse(&a.string("post_transform", "NONE"))?,
            single_class,
            all_positive,
        })
    }

    /// The class weights of the leaf a row reaches from `root`. Values compare with
    /// thresholds in the input's precision: single, or double for a double input.
    fn leaf<T: Threshold>(&self, root: usize, row: &[T]) -> Result<&[(u32, f64)], String> {
        let mut node = &self.nodes[root];
        for _ in 0..=self.nodes.len() {
            if node.mode == Mode::Leaf {
                return Ok(&self.weights[node.if_true as usize..node.if_false as usize]);
            }
            let x = *row
                .get(node.feature as usize)
                .ok_or_else(|| format!("feature {} of a row of {}", node.feature, row.len()))?;
            let t = T::of(node);
            let go_true = if x.is_nan() && node.missing_true {
                true
            } else {
                match node.mode {
                    Mode::Leq => x <= t,
                    Mode::Lt => x < t,
                    Mode::Gte => x >= t,
                    Mode::Gt => x > t,
                    Mode::Eq => x == t,
                    Mode::Neq => x != t,
                    Mode::Leaf => unreachable!("leaves return above"),
                }
            };
            node = &self.nodes[if go_true { node.if_true } else { node.if_false } as usize];
        }
        Err("a tree loops back on itself".into())
    }

    /// One row: its label index and its scores for each label. `scores` and `scored`
    /// are scratch space of a length per class.
    fn score_row<T: Threshold>(
        &self,
        row: &[T],
        (scores, scored): (&mut [f64], &mut [bool]),
        out: &mut Vec<f32>,
    ) -> Result<usize, String> {
        let classes = self.labels.len();
        scores.fill(0.0);
        scored.fill(false);
        // Sums in the input's precision, as onnxruntime accumulates.
        let add = T::add;
        for &root in &self.roots {
            for &(class, weight) in self.leaf(root, row)? {
                scores[class as usize] = add(scores[class as usize], weight);
                scored[class as usize] = true;
            }
        }
        if classes > 2 {
            for (k, &base) in self.base_values.iter().enumerate().take(classes) {
                scores[k] = if scored[k] { add(scores[k], base) } else { base };
                scored[k] = true;
            }
            let best = (0..classes).filter(|&c| scored[c]).fold(None, |best: Option<usize>, c| match best {
                Some(b) if scores[c] <= scores[b] => Some(b),
                _ => Some(c),
            });
            let mut row: Vec<f32> =
                (0..classes).map(|c| if scored[c] { scores[c] as f32 } else { 0.0 }).collect();
            self.post_transform.apply(&mut row);
            out.extend(row);
            return Ok(best.unwrap_or(0));
        }
        self.score_two_labels(scores, scored, add, out)
    }

    /// onnxruntime's rules for two labels, where an ensemble often scores one side only.
    fn score_two_labels(
        &self,
        scores: &mut [f64],
        scored: &mut [bool],
        add: impl Fn(f64, f64) -> f64,
        out: &mut Vec<f32>,
    ) -> Result<usize, String> {
        let mut second_class = -1;
        let mut width = 2;
        match self.base_values.len() {
            2 if scored[1] => {
                scores[1] = add(self.base_values[1], scores[0]);
                scores[0] = -scores[1];
            }
            2 => {
                scores[0] = add(scores[0], self.base_values[0]);
                scores[1] = add(scores[1], self.base_values[1]);
            }
            1 => {
                scores[0] = add(scores[0], self.base_values[0]);
                if !scored[1] {
                    width = 1;
                }
            }
            _ => {
                second_class = 3;
                if !scored[1] {
                    width = 1;
                }
            }
        }
        let positive = if width == 2 && scored[1] {
            scores[1]
        } else if scored[0] {
            scores[0]
        } else {
            0.0
        };
        let label = match (self.single_class, self.all_positive) {
            (true, true) => {
                second_class = if positive > 0.5 { 0 } else { 1 };
                usize::from(positive > 0.5)
            }
            (true, false) => {
                second_class = if positive > 0.0 { 2 } else { 3 };
                usize::from(positive > 0.0)
            }
            (false, _) => usize::from(positive > 0.0),
        };
        if width == 2 {
            let mut row: Vec<f32> = (0..2).map(|c| if scored[c] { scores[c] as f32 } else { 0.0 }).collect();
            self.post_transform.apply(&mut row);
            out.extend(row);
            return Ok(label);
        }
        let s = scores[0] as f32;
        let pair = match (second_class, self.post_transform) {
            (_, PostTransform::Probit) => [probit(s), 0.0],
            (0 | 1, PostTransform::Logistic) => [1.0 - logistic(s), logistic(s)],
            (0 | 1, _) => [1.0 - s, s],
            (2 | 3, PostTransform::Logistic) => [logistic(-s), logistic(s)],
            (2 | 3, _) => [-s, s],
            _ => [s, 0.0],
        };
        out.extend(pair);
        Ok(label)
    }
}

impl TreeEnsembleClassifier {
    fn score_rows<T: Threshold>(
        &self,
        values: &[T],
        rows: usize,
        features: usize,
    ) -> Result<Vec<Tensor>, String> {
        let classes = self.labels.len();
        let mut out = Vec::with_capacity(rows * classes);
        let mut picks = Vec::with_capacity(rows);
        let (mut scores, mut scored) = (vec![0f64; classes], vec![false; classes]);
        for row in values.chunks(features.max(1)).take(rows) {
            picks.push(self.score_row(row, (&mut scores, &mut scored), &mut out)?);
        }
        Ok(vec![self.labels.tensor(&picks), Tensor { shape: vec![rows, classes], data: Data::F32(out) }])
    }
}

/// The precision a tree compares and sums in: the input's (single for every input
/// that is not double).
trait Threshold: Copy + PartialOrd {
    fn of(node: &Node) -> Self;
    fn is_nan(self) -> bool;
    fn add(sum: f64, weight: f64) -> f64;
}

impl Threshold for f32 {
    fn of(node: &Node) -> Self {
        node.threshold_single
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    fn add(sum: f64, weight: f64) -> f64 {
        f64::from(sum as f32 + weight as f32)
    }
}

impl Threshold for f64 {
    fn of(node: &Node) -> Self {
        node.threshold
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    fn add(sum: f64, weight: f64) -> f64 {
        sum + weight
    }
}

impl Kernel for TreeEnsembleClassifier {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        let x = required(inputs, 0)?;
        let (rows, features) = x.as_matrix(true);
        match &x.data {
            Data::F64(values) => self.score_rows(values, rows, features),
            _ => self.score_rows(&x.f32s()?, rows, features),
        }
    }
}
