//! Classification metrics of `emotiond eval`, pure: a confusion matrix and what follows from
//! it (accuracy, balanced accuracy, per-class precision, recall and F1), and McNemar's exact
//! test of two models on the same faces.
//!
//! Classes without support: a class no face is labelled with has `recall = None` and is left
//! out of the balanced accuracy (the mean recall of the classes that have support). Its
//! `precision` is `None` when the model never predicted it either, and `0` when it did (each
//! such prediction is wrong). A class that was never predicted but has support has
//! `precision = None`. `f1` is `None` when precision or recall is `None`, and `0` when both are
//! 0. In JSON, `None` is `null`.

use serde::Serialize;

/// Rows = true label, columns = predicted label, both in the order of the label list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Confusion(pub Vec<Vec<u64>>);

impl Confusion {
    pub fn new(classes: usize) -> Confusion {
        Confusion(vec![vec![0; classes]; classes])
    }

    /// A matrix from (true, predicted) pairs of class indices.
    pub fn from_pairs(classes: usize, pairs: impl IntoIterator<Item = (usize, usize)>) -> Self {
        let mut c = Confusion::new(classes);
        for (t, p) in pairs {
            c.add(t, p);
        }
        c
    }

    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.0[truth][predicted] += 1;
    }

    pub fn total(&self) -> u64 {
        self.0.iter().flatten().sum()
    }

    fn support(&self, k: usize) -> u64 {
        self.0[k].iter().sum()
    }

    fn predicted(&self, k: usize) -> u64 {
        self.0.iter().map(|row| row[k]).sum()
    }

    fn correct(&self) -> u64 {
        (0..self.0.len()).map(|k| self.0[k][k]).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMetrics {
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub support: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Correct / all; `None` with no face.
    pub accuracy: Option<f64>,
    /// Mean recall over the classes with support; `None` with no face.
    pub balanced_accuracy: Option<f64>,
    /// In the order of the label list.
    pub per_class: Vec<ClassMetrics>,
}

fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

pub fn class_metrics(c: &Confusion, k: usize) -> ClassMetrics {
    let tp = c.0[k][k];
    let support = c.support(k);
    let precision = ratio(tp, c.predicted(k));
    let recall = ratio(tp, support);
    let f1 = match (precision, recall) {
        (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    };
    ClassMetrics {
        precision,
        recall,
        f1,
        support,
    }
}

pub fn summarize(c: &Confusion) -> Summary {
    let per_class: Vec<ClassMetrics> = (0..c.0.len()).map(|k| class_metrics(c, k)).collect();
    let recalls: Vec<f64> = per_class.iter().filter_map(|m| m.recall).collect();
    Summary {
        accuracy: ratio(c.correct(), c.total()),
        balanced_accuracy: (!recalls.is_empty())
            .then(|| recalls.iter().sum::<f64>() / recalls.len() as f64),
        per_class,
    }
}

/// McNemar's exact test: `b` faces only model A got right, `c` faces only model B got right.
/// Under the null hypothesis each discordant face is a fair coin: the two-sided p-value is
/// `min(1, 2 · P(X ≤ min(b, c)))` with `X ~ Binomial(b + c, 1/2)`; 1 when `b + c = 0`.
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    let ln_half_n = n as f64 * std::f64::consts::LN_2;
    // ln C(n, i), built up term by term so that large n neither overflows nor loses the tail
    let mut ln_comb = 0.0f64;
    let mut tail = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            ln_comb += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_comb - ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// The discordant counts (b, c) of two models' per-face verdicts (`true` = right), paired by
/// position.
pub fn discordant(a: &[bool], b: &[bool]) -> (u64, u64) {
    a.iter()
        .zip(b)
        .fold((0, 0), |(x, y), (&ra, &rb)| match (ra, rb) {
            (true, false) => (x + 1, y),
            (false, true) => (x, y + 1),
            _ => (x, y),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    /// Worked by hand, 4 classes (A, B, C, D), 10 faces; rows true, columns predicted:
    ///
    /// ```text
    ///        A  B  C  D   support
    ///   A    3  1  0  0   4
    ///   B    1  2  1  0   4
    ///   C    0  0  2  0   2
    ///   D    0  0  0  0   0
    /// pred   4  3  3  0
    /// ```
    /// accuracy = (3+2+2)/10 = 0.7.
    /// A: P = 3/4, R = 3/4, F1 = 3/4.   B: P = 2/3, R = 2/4 = 1/2, F1 = 2·(2/3)(1/2)/(2/3+1/2)
    /// = (2/3)/(7/6) = 4/7.   C: P = 2/3, R = 2/2 = 1, F1 = 2·(2/3)/(5/3) = 4/5.
    /// D: no support, never predicted: P, R, F1 all null.
    /// balanced accuracy = (3/4 + 1/2 + 1)/3 = 0.75 (D left out).
    #[test]
    fn a_small_matrix_worked_by_hand() {
        let c = Confusion(vec![
            vec![3, 1, 0, 0],
            vec![1, 2, 1, 0],
            vec![0, 0, 2, 0],
            vec![0, 0, 0, 0],
        ]);
        let s = summarize(&c);
        assert!(close(s.accuracy, 0.7));
        assert!(close(s.balanced_accuracy, 0.75));
        let [a, b, cc, d] = [0, 1, 2, 3].map(|k| s.per_class[k].clone());
        assert!(close(a.precision, 0.75) && close(a.recall, 0.75) && close(a.f1, 0.75));
        assert!(close(b.precision, 2.0 / 3.0) && close(b.recall, 0.5) && close(b.f1, 4.0 / 7.0));
        assert!(close(cc.precision, 2.0 / 3.0) && close(cc.recall, 1.0) && close(cc.f1, 0.8));
        assert_eq!((a.support, b.support, cc.support, d.support), (4, 4, 2, 0));
        assert_eq!((d.precision, d.recall, d.f1), (None, None, None));
    }

    /// By hand: 2 classes, truth [0,0,1,1,1], predicted [1,1,1,1,0]: matrix [[0,2],[2,1]].
    /// Class 0: predicted twice (column 0 = 2, both wrong), support 2: P = 0/2 = 0,
    /// R = 0/2 = 0, F1 = 0 (not null). Class 1: column 1 = 2 + 1 = 3, support 3: P = 1/3,
    /// R = 1/3, F1 = 1/3. Accuracy 1/5, balanced (0 + 1/3)/2 = 1/6.
    #[test]
    fn zero_precision_and_recall_give_f1_zero_and_pairs_build_the_matrix() {
        let c = Confusion::from_pairs(2, [(0, 1), (0, 1), (1, 1), (1, 0), (1, 0)]);
        assert_eq!(c, Confusion(vec![vec![0, 2], vec![2, 1]]));
        let s = summarize(&c);
        assert!(close(s.per_class[0].precision, 0.0) && close(s.per_class[0].f1, 0.0));
        assert!(close(s.per_class[1].precision, 1.0 / 3.0));
        assert!(close(s.per_class[1].f1, 1.0 / 3.0));
        assert!(close(s.accuracy, 0.2));
        assert!(close(s.balanced_accuracy, 1.0 / 6.0));
    }

    /// Predicted a class nobody is labelled with: its precision is 0, its recall null.
    #[test]
    fn a_class_without_support_that_is_predicted_has_precision_zero() {
        let c = Confusion(vec![vec![1, 1], vec![0, 0]]);
        let m = class_metrics(&c, 1);
        assert_eq!(
            (m.precision, m.recall, m.f1, m.support),
            (Some(0.0), None, None, 0)
        );
        let s = summarize(&c);
        assert!(close(s.balanced_accuracy, 0.5), "only class 0 counts");
    }

    #[test]
    fn no_face_gives_null_accuracies() {
        let s = summarize(&Confusion::new(3));
        assert_eq!((s.accuracy, s.balanced_accuracy), (None, None));
    }

    /// Exact two-sided McNemar p-values. Small ones by hand (binomial coefficients over
    /// 2^n); the larger ones computed with Python's exact integers,
    /// `min(1, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n)` as a
    /// `fractions.Fraction` converted to float — the same value as
    /// `scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue`.
    #[test]
    fn mcnemar_exact_p_values() {
        let cases: &[(u64, u64, f64)] = &[
            // n = 6: 2 · (1 + 6)/64 = 14/64
            (1, 5, 0.21875),
            (5, 1, 0.21875),
            // n = 10: 2 · 1/1024
            (0, 10, 0.001953125),
            // n = 10: 2 · (1 + 10 + 45)/1024 = 112/1024
            (2, 8, 0.109375),
            // n = 6: 2 · (1 + 6 + 15 + 20)/64 = 84/64 > 1 → 1
            (3, 3, 1.0),
            // n = 1: 2 · 1/2 = 1
            (0, 1, 1.0),
            (0, 0, 1.0),
            // Python's exact integers (see above)
            (40, 60, 0.05688793364098079),
            (10, 30, 0.0022214337732293643),
            (400, 520, 8.549170923883778e-05),
        ];
        for &(b, c, p) in cases {
            let got = mcnemar_exact(b, c);
            assert!(
                (got - p).abs() <= 1e-9 * p.max(1e-300) + 1e-15,
                "b={b} c={c}: {got} != {p}"
            );
        }
    }

    #[test]
    fn discordant_counts_pairs_by_position() {
        let a = [true, true, false, false, true];
        let b = [true, false, true, false, false];
        assert_eq!(discordant(&a, &b), (2, 1));
    }
}
