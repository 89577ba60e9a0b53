//! Evaluation: how well doorman tells people apart on labelled photos.
//!
//! Owners run `doorman eval LABELS.csv` on their own photos to choose a
//! threshold. Every labelled photo is embedded once (its largest face);
//! then every pair of photos is a verification trial (same person or not)
//! and every photo after the first of its person is an identification
//! trial against a gallery of one photo per person.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::embed::Embedding;

/// One labelled photo after detection and embedding.
#[derive(Debug, Clone)]
pub struct Sample {
    pub identity: String,
    pub embedding: Embedding,
}

/// Verification over all pairs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verification {
    pub same_pairs: usize,
    pub different_pairs: usize,
    /// Area under the ROC curve: the chance that a random same-person pair
    /// scores above a random different-person pair. `None` without pairs
    /// of both kinds (see [`unmeasurable`]).
    pub roc_auc: Option<f64>,
    /// Equal error rate and the threshold where it is reached; `None` as
    /// for `roc_auc`.
    pub eer: Option<f64>,
    pub eer_threshold: Option<f32>,
    /// At the configured threshold.
    pub threshold: f32,
    pub accuracy: f64,
    pub false_accept_rate: f64,
    pub false_reject_rate: f64,
    pub false_accepts: usize,
    /// The highest different-person score: any threshold above it accepts
    /// no stranger. `None` without different-person pairs.
    pub max_different_score: Option<f32>,
    /// False reject rate at the lowest threshold with no false accept.
    pub false_reject_rate_at_zero_false_accepts: Option<f64>,
}

/// Closed-set identification with one enrolment photo per person.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Identification {
    pub gallery: usize,
    pub probes: usize,
    /// Share of probes whose best match is the right person; `None`
    /// without probes (nobody has a second photo).
    pub rank1: Option<f64>,
    /// Share of probes whose best match is right and at or above the threshold.
    pub rank1_accepted: Option<f64>,
}

/// Scores every pair of samples, split by whether the labels agree.
pub fn pair_scores(samples: &[Sample]) -> (Vec<f32>, Vec<f32>) {
    let (mut same, mut different) = (Vec::new(), Vec::new());
    for (i, a) in samples.iter().enumerate() {
        for b in &samples[i + 1..] {
            let s = a.embedding.cosine(&b.embedding);
            if a.identity == b.identity {
                same.push(s);
            } else {
                different.push(s);
            }
        }
    }
    (same, different)
}

pub fn verify(same: &[f32], different: &[f32], threshold: f32) -> Verification {
    let accepts = |scores: &[f32], t: f32| scores.iter().filter(|&&s| s >= t).count();
    let rate = |n: usize, of: usize| if of == 0 { 0.0 } else { n as f64 / of as f64 };
    let false_accepts = accepts(different, threshold);
    let false_rejects = same.len() - accepts(same, threshold);
    let (eer, eer_threshold) = equal_error_rate(same, different).unzip();
    let max_different = different.iter().copied().reduce(f32::max);
    Verification {
        same_pairs: same.len(),
        different_pairs: different.len(),
        roc_auc: roc_auc(same, different),
        eer,
        eer_threshold,
        threshold,
        accuracy: rate(
            same.len() - false_rejects + different.len() - false_accepts,
            same.len() + different.len(),
        ),
        false_accept_rate: rate(false_accepts, different.len()),
        false_reject_rate: rate(false_rejects, same.len()),
        false_accepts,
        max_different_score: max_different,
        false_reject_rate_at_zero_false_accepts: max_different
            .map(|m| rate(same.iter().filter(|&&s| s <= m).count(), same.len())),
    }
}

/// Why ROC AUC and the equal error rate cannot be measured on `samples`,
/// if they cannot: both compare same-person pairs with different-person
/// pairs, so they need two identities, one of them on two photos.
pub fn unmeasurable(samples: &[Sample]) -> Option<String> {
    let mut photos: BTreeMap<&str, usize> = BTreeMap::new();
    for s in samples {
        *photos.entry(&s.identity).or_default() += 1;
    }
    let mut identities = photos.keys();
    match (identities.next(), identities.next()) {
        (None, _) => Some("no photo with a face to compare".to_string()),
        (Some(only), None) => Some(format!(
            "it needs photos of at least two identities, and every photo with a face \
             is of {only:?}"
        )),
        _ if photos.values().all(|&n| n < 2) => Some(
            "it needs at least one identity on two photos, and each has only one photo \
             with a face"
                .to_string(),
        ),
        _ => None,
    }
}

/// Mann-Whitney form of the ROC area, ties counted half; `None` unless
/// there are pairs of both kinds.
pub fn roc_auc(same: &[f32], different: &[f32]) -> Option<f64> {
    if same.is_empty() || different.is_empty() {
        return None;
    }
    let mut diff = different.to_vec();
    diff.sort_by(f32::total_cmp);
    let mut wins = 0.0f64;
    for &s in same {
        let below = diff.partition_point(|&d| d < s);
        let not_above = diff.partition_point(|&d| d <= s);
        wins += below as f64 + 0.5 * (not_above - below) as f64;
    }
    Some(wins / (same.len() as f64 * diff.len() as f64))
}

/// The error rate where false accepts and false rejects are closest, and
/// the threshold that gives it; `None` unless there are pairs of both
/// kinds.
pub fn equal_error_rate(same: &[f32], different: &[f32]) -> Option<(f64, f32)> {
    if same.is_empty() || different.is_empty() {
        return None;
    }
    let mut thresholds: Vec<f32> = same.iter().chain(different).copied().collect();
    thresholds.sort_by(f32::total_cmp);
    thresholds.dedup();
    let mut best = (f64::INFINITY, 0.0, 0.0f32);
    for &t in &thresholds {
        let far = different.iter().filter(|&&d| d >= t).count() as f64 / different.len() as f64;
        let frr = same.iter().filter(|&&s| s < t).count() as f64 / same.len() as f64;
        let gap = (far - frr).abs();
        if gap < best.0 {
            best = (gap, (far + frr) / 2.0, t);
        }
    }
    Some((best.1, best.2))
}

/// Enrols the first photo of each person (in input order) and identifies
/// every later one against that gallery.
pub fn identify(samples: &[Sample], threshold: f32) -> Identification {
    let mut gallery: Vec<&Sample> = Vec::new();
    let mut probes: Vec<&Sample> = Vec::new();
    for s in samples {
        if gallery.iter().any(|g| g.identity == s.identity) {
            probes.push(s);
        } else {
            gallery.push(s);
        }
    }
    let (mut right, mut accepted) = (0usize, 0usize);
    for p in &probes {
        let best = gallery
            .iter()
            .map(|g| (g, p.embedding.cosine(&g.embedding)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((g, score)) = best {
            if g.identity == p.identity {
                right += 1;
                if score >= threshold {
                    accepted += 1;
                }
            }
        }
    }
    let share = |n: usize| (!probes.is_empty()).then(|| n as f64 / probes.len() as f64);
    Identification {
        gallery: gallery.len(),
        probes: probes.len(),
        rank1: share(right),
        rank1_accepted: share(accepted),
    }
}

/// Reads `image,identity` rows as CSV: fields may be quoted (`"a b.jpg",
/// "Doe, Jane"`), blank lines and lines starting with `#` are skipped, a
/// first row `image,...` is a header, and fields after the second are
/// ignored. Paths are taken relative to the CSV's folder by the caller.
/// Returns rows with the line each starts on; an error names the line.
pub fn read_labels(text: &str) -> Result<Vec<(usize, String, String)>, String> {
    let mut rows = Vec::new();
    for (n, (line, fields)) in csv_records(text)?.into_iter().enumerate() {
        let (Some(image), Some(identity)) = (fields.first(), fields.get(1)) else {
            return Err(format!(
                "line {line}: expected `image,identity`, got {:?}",
                fields.join(",")
            ));
        };
        if n == 0 && image.eq_ignore_ascii_case("image") {
            continue;
        }
        if image.is_empty() || identity.is_empty() {
            return Err(format!(
                "line {line}: empty image or identity in {:?}",
                fields.join(",")
            ));
        }
        rows.push((line, image.clone(), identity.clone()));
    }
    Ok(rows)
}

/// Splits `text` into CSV records, each with the line it starts on.
/// Fields are separated by commas; a field in double quotes may hold
/// commas, line breaks and `""` for a quote; a field without quotes is
/// trimmed. Blank lines and lines starting with `#` between records are
/// skipped. An unclosed quote, or text after a closing quote, is an error
/// naming its line.
// Not the `csv` crate: its line numbers skip blank and comment lines, and
// it accepts a stray quote silently; an owner's error must name the line.
fn csv_records(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    let mut records = Vec::new();
    let mut rest = text;
    let mut line = 1;
    while !rest.is_empty() {
        let (first, after) = rest.split_once('\n').unwrap_or((rest, ""));
        let first = first.trim();
        if first.is_empty() || first.starts_with('#') {
            rest = after;
            line += 1;
            continue;
        }

        let start = line;
        let mut fields = Vec::new();
        loop {
            let unindented = rest.trim_start_matches([' ', '\t']);
            if let Some(quoted) = unindented.strip_prefix('"') {
                let mut field = String::new();
                let mut chars = quoted.char_indices();
                let end = loop {
                    match chars.next() {
                        None => return Err(format!("line {start}: a quoted field is not closed")),
                        Some((i, '"')) if quoted[i + 1..].starts_with('"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some((i, '"')) => break i + 1,
                        Some((_, c)) => {
                            line += usize::from(c == '\n');
                            field.push(c);
                        }
                    }
                };
                rest = quoted[end..].trim_start_matches([' ', '\t', '\r']);
                if !(rest.is_empty() || rest.starts_with([',', '\n'])) {
                    return Err(format!(
                        "line {line}: text after the closing quote of {field:?}"
                    ));
                }
                fields.push(field);
            } else {
                let end = rest.find([',', '\n']).unwrap_or(rest.len());
                fields.push(rest[..end].trim().to_string());
                rest = &rest[end..];
            }
            // Here `rest` is empty or starts with a comma or a line break.
            match rest.as_bytes().first() {
                Some(b',') => rest = &rest[1..],
                Some(_) => {
                    rest = &rest[1..];
                    line += 1;
                    break;
                }
                None => break,
            }
        }
        records.push((start, fields));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(identity: &str, v: &[f32]) -> Sample {
        Sample {
            identity: identity.into(),
            embedding: Embedding::normalised(v).unwrap(),
        }
    }

    #[test]
    fn perfect_separation_has_auc_one_and_no_errors() {
        let v = verify(&[0.9, 0.95], &[0.1, 0.5], 0.8);
        assert_eq!(v.roc_auc, Some(1.0));
        assert_eq!((v.accuracy, v.false_accepts), (1.0, 0));
        assert_eq!(v.max_different_score, Some(0.5));
        assert_eq!(v.false_reject_rate_at_zero_false_accepts, Some(0.0));
    }

    #[test]
    fn overlap_lowers_auc_and_gives_an_equal_error_rate() {
        let same = [0.9, 0.6, 0.8, 0.7];
        let different = [0.65, 0.2, 0.3, 0.75];
        let auc = roc_auc(&same, &different).unwrap();
        // 16 pairs: same 0.6 loses to 0.65 and 0.75, same 0.7 loses to 0.75.
        assert!((auc - 13.0 / 16.0).abs() < 1e-9, "{auc}");
        let (eer, t) = equal_error_rate(&same, &different).unwrap();
        assert!(
            (eer - 0.25).abs() < 1e-9 && t > 0.6 && t <= 0.75,
            "{eer} at {t}"
        );
        let v = verify(&same, &different, 0.7);
        assert_eq!(v.false_accepts, 1);
        assert!((v.false_reject_rate - 0.25).abs() < 1e-9);
    }

    #[test]
    fn identification_enrols_the_first_photo_of_each_person() {
        let samples = [
            sample("a", &[1.0, 0.0]),
            sample("b", &[0.0, 1.0]),
            sample("a", &[0.9, 0.1]),
            sample("b", &[0.8, 0.2]), // closer to a: a rank-1 miss
        ];
        let id = identify(&samples, 0.5);
        assert_eq!((id.gallery, id.probes), (2, 2));
        assert_eq!(id.rank1, Some(0.5));
    }

    #[test]
    fn labels_skip_the_header_and_name_bad_lines() {
        let rows = read_labels("image,identity\na.jpg,ann\n\nb.jpg,bob\n").unwrap();
        assert_eq!(
            rows,
            vec![
                (2, "a.jpg".into(), "ann".into()),
                (4, "b.jpg".into(), "bob".into())
            ]
        );
        let err = read_labels("image,identity\njust-one-field\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn quoted_label_fields_are_unquoted_and_lines_still_counted() {
        let text = "\"image\",\"identity\"\n\
                    \"photos/a b.jpg\",\"Doe, Jane\"\n\
                    # a comment\n\
                    \"two\nlines.jpg\",\"say \"\"hi\"\"\"\n\
                    plain.jpg, Bob \n";
        let rows = read_labels(text).unwrap();
        assert_eq!(
            rows,
            vec![
                (2, "photos/a b.jpg".into(), "Doe, Jane".into()),
                (4, "two\nlines.jpg".into(), "say \"hi\"".into()),
                (6, "plain.jpg".into(), "Bob".into()),
            ]
        );
        let err = read_labels("image,identity\na.jpg,ann\n\"only one\"\n").unwrap_err();
        assert!(
            err.starts_with("line 3: expected `image,identity`"),
            "{err}"
        );
        assert!(err.contains("only one"), "{err}");
        let err = read_labels("image,identity\n\na.jpg,\"ann\n").unwrap_err();
        assert_eq!(err, "line 3: a quoted field is not closed");
        let err = read_labels("image,identity\n\"a.jpg\"x,ann\n").unwrap_err();
        assert!(
            err.starts_with("line 2: text after the closing quote"),
            "{err}"
        );
    }

    #[test]
    fn one_identity_leaves_auc_unmeasured_with_the_reason() {
        let one = [sample("ann", &[1.0, 0.0]), sample("ann", &[0.9, 0.1])];
        let (same, different) = pair_scores(&one);
        let v = verify(&same, &different, 0.5);
        assert_eq!((v.roc_auc, v.eer, v.eer_threshold), (None, None, None));
        let why = unmeasurable(&one).unwrap();
        assert!(why.contains("at least two identities"), "{why}");
        assert!(why.contains("\"ann\""), "{why}");

        let singles = [sample("ann", &[1.0, 0.0]), sample("bob", &[0.0, 1.0])];
        let why = unmeasurable(&singles).unwrap();
        assert!(why.contains("two photos"), "{why}");
        assert_eq!(identify(&singles, 0.5).rank1, None);

        let enough = [one[0].clone(), one[1].clone(), singles[1].clone()];
        assert_eq!(unmeasurable(&enough), None);
    }
}
