//! Recognition: from a gallery match to a decision about who this is.
//!
//! Two thresholds split the cosine score: at or above `match_threshold` the
//! face is a known visitor; below `new_threshold` it is somebody new; in
//! between the evidence is too weak either way and the visit is recorded as
//! uncertain rather than guessed.

use serde::Serialize;

use crate::gallery::Match;

/// What doorman concluded about a face or a visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The best match passed `match_threshold`.
    Known,
    /// Nobody in the gallery is close (`identify` on a photo).
    Unknown,
    /// Nobody close: a new visitor (the live loop).
    New,
    /// Between the thresholds.
    Uncertain,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Known => "known",
            Self::Unknown => "unknown",
            Self::New => "new",
            Self::Uncertain => "uncertain",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub match_threshold: f32,
    pub new_threshold: f32,
}

impl Thresholds {
    /// For a single photo: known or unknown, nothing in between.
    pub fn identify(&self, best: Option<&Match>) -> Decision {
        match best {
            Some(m) if m.score >= self.match_threshold => Decision::Known,
            _ => Decision::Unknown,
        }
    }

    /// For a visit: known, new, or uncertain between the two thresholds.
    pub fn visit(&self, best: Option<&Match>) -> Decision {
        match best {
            Some(m) if m.score >= self.match_threshold => Decision::Known,
            Some(m) if m.score >= self.new_threshold => Decision::Uncertain,
            _ => Decision::New,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(score: f32) -> Match {
        Match {
            id: "visitor-0001".into(),
            name: None,
            score,
        }
    }

    #[test]
    fn visits_split_into_known_uncertain_and_new() {
        let t = Thresholds {
            match_threshold: 0.9,
            new_threshold: 0.8,
        };
        assert_eq!(t.visit(Some(&m(0.95))), Decision::Known);
        assert_eq!(t.visit(Some(&m(0.9))), Decision::Known);
        assert_eq!(t.visit(Some(&m(0.85))), Decision::Uncertain);
        assert_eq!(t.visit(Some(&m(0.5))), Decision::New);
        assert_eq!(t.visit(None), Decision::New);
        assert_eq!(t.identify(Some(&m(0.85))), Decision::Unknown);
    }
}
