//! What a caller may ask for beyond scores, and the three places it may ask:
//!
//! * `explain=K` — the top `K` reasons of each row's score (its features'
//!   exact attributions, largest magnitude first), with the row's decision;
//! * `decide=true` — each row's decision alone: `approve` or `review` at
//!   the model's threshold, and the loss expected if it is approved
//!   (`p × amount`) when the row's amount is known.
//!
//! SageMaker passes one header through to the container untouched,
//! `X-Amzn-SageMaker-Custom-Attributes`, so that is where an endpoint's
//! callers ask (`explain=3`, pairs separated by `;` or `,`; keys this
//! server does not know are left for whoever else reads the header). A
//! local caller may also use the query string (`/invocations?explain=3`;
//! an unknown key there is a typo and refused) or, in a JSON body, an
//! `"explain": 3` or `"decide": true` key beside `instances` (see
//! [`super::request`]). Asking in two places is fine when they agree.
//! Without an ask the answer is byte for byte what it always was.

use super::error::ApiError;

/// Most reasons one row may ask for (beyond the schema's columns, every
/// column is a reason anyway).
pub const MAX_EXPLAIN: usize = 10_000;

/// What the caller asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Asks {
    /// Top reasons per row.
    pub explain: Option<usize>,
    /// Decisions per row (also given with reasons).
    pub decide: bool,
}

/// An ask's value that is not one: the message names the key and what it
/// takes.
fn refused(key: &str, value: &str, wants: &str) -> ApiError {
    ApiError::bad(
        format!("'{key}' = '{value}' is not allowed: expected {wants}"),
        None,
        None,
    )
}

impl Asks {
    /// `explain`'s value: a whole number in 1..=[`MAX_EXPLAIN`].
    pub fn explain_value(v: &str) -> Result<usize, ApiError> {
        match v.trim().parse::<usize>() {
            Ok(k) if (1..=MAX_EXPLAIN).contains(&k) => Ok(k),
            _ => Err(refused(
                "explain",
                v,
                "a whole number of reasons, 1 or more",
            )),
        }
    }

    /// `decide`'s value: true/false, 1/0, yes/no.
    pub fn decide_value(v: &str) -> Result<bool, ApiError> {
        match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(refused("decide", v, "true or false")),
        }
    }

    /// Sets one known key; `Ok(false)` for a key this server does not know.
    fn set(&mut self, key: &str, value: &str) -> Result<bool, ApiError> {
        match key.trim().to_ascii_lowercase().as_str() {
            "explain" => self.explain = Some(Asks::explain_value(value)?),
            "decide" => self.decide = Asks::decide_value(value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// From `X-Amzn-SageMaker-Custom-Attributes`: `key=value` pairs split
    /// by `;` or `,`; unknown keys and bare words are someone else's.
    pub fn from_attributes(header: &str) -> Result<Asks, ApiError> {
        let mut a = Asks::default();
        for pair in header.split([';', ',']) {
            if let Some((k, v)) = pair.split_once('=') {
                a.set(k, v)?;
            }
        }
        Ok(a)
    }

    /// From a query string (`explain=3&decide=true`); a key this server
    /// does not know is refused, naming the ones it does.
    pub fn from_query(query: &str) -> Result<Asks, ApiError> {
        let mut a = Asks::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if !a.set(k, v)? {
                return Err(ApiError::bad(
                    format!("unknown query parameter '{k}' (known: explain, decide)"),
                    None,
                    None,
                ));
            }
        }
        Ok(a)
    }

    /// Both asks together; the same key with two different values is
    /// refused rather than one silently winning.
    pub fn and(self, other: Asks) -> Result<Asks, ApiError> {
        let explain = match (self.explain, other.explain) {
            (Some(a), Some(b)) if a != b => {
                return Err(ApiError::bad(
                    format!("'explain' asked twice with different values ({a} and {b})"),
                    None,
                    None,
                ))
            }
            (a, b) => a.or(b),
        };
        Ok(Asks {
            explain,
            decide: self.decide || other.decide,
        })
    }

    /// Whether the answer carries decisions.
    pub fn decisions(self) -> bool {
        self.decide || self.explain.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_take_known_pairs_and_leave_the_rest() {
        let a = Asks::from_attributes("trace=abc; explain=3").unwrap();
        assert_eq!(
            a,
            Asks {
                explain: Some(3),
                decide: false
            }
        );
        let a = Asks::from_attributes("decide=true,other,Explain = 2 ").unwrap();
        assert_eq!((a.explain, a.decide), (Some(2), true));
        assert_eq!(Asks::from_attributes("").unwrap(), Asks::default());
        assert!(Asks::from_attributes("explain=0").is_err());
        assert!(Asks::from_attributes("explain=three").is_err());
    }

    #[test]
    fn the_query_refuses_what_it_does_not_know() {
        let a = Asks::from_query("explain=5&decide=false").unwrap();
        assert_eq!((a.explain, a.decide), (Some(5), false));
        assert!(Asks::from_query("decide").unwrap().decide);
        let e = Asks::from_query("explian=3").unwrap_err();
        assert!(e.to_string().contains("explian"), "{e}");
        let e = Asks::from_query("explain=-1").unwrap_err();
        assert!(e.to_string().contains("whole number"), "{e}");
        assert!(Asks::from_query(&format!("explain={}", MAX_EXPLAIN + 1)).is_err());
        assert_eq!(
            Asks::from_query(&format!("explain={MAX_EXPLAIN}"))
                .unwrap()
                .explain,
            Some(MAX_EXPLAIN)
        );
    }

    #[test]
    fn two_places_must_agree() {
        let three = Asks {
            explain: Some(3),
            decide: false,
        };
        let decide = Asks {
            explain: None,
            decide: true,
        };
        assert_eq!(
            three.and(decide).unwrap(),
            Asks {
                explain: Some(3),
                decide: true
            }
        );
        assert_eq!(three.and(three).unwrap(), three);
        let four = Asks {
            explain: Some(4),
            decide: false,
        };
        assert!(three.and(four).is_err());
        assert!(three.decisions() && decide.decisions());
        assert!(!Asks::default().decisions());
    }
}
