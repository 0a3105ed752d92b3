//! The inference protocols other than SageMaker's own, each a thin adapter
//! over the same three steps as `/invocations` (parse the body into rows
//! under the model's schema, score the whole batch, render): one model
//! served under one name, [`ModelName`], by every protocol.
//!
//! * [`tfserving`] — TensorFlow Serving's REST API (`/v1/models/…`), also
//!   reached through `/invocations` with SageMaker's TF container custom
//!   attribute `tfs-method=predict|classify|regress`;
//! * [`oip`] — the Open Inference Protocol v2 (`/v2/…`) of KServe, Seldon
//!   MLServer and Triton, with its binary tensor extension.
//!
//! Errors keep the one JSON shape of [`super::error`], whose `error` key is
//! what both protocols' clients read.

pub mod oip;
pub mod tfserving;

use super::error::ApiError;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// The version every protocol reports: one model is served, as version 1.
pub const VERSION: &str = "1";

/// The name the model is served under (`/v1/models/{name}`,
/// `/v2/models/{name}`): 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with
/// a dot, so it is one path segment that needs no escaping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelName(String);

/// A `--model-name` that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--model-name '{}' must be 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'", .0.escape_debug())]
pub struct BadModelName(pub String);

impl ModelName {
    pub fn parse(name: &str) -> Result<ModelName, BadModelName> {
        let ok = (1..=64).contains(&name.len())
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        match ok {
            true => Ok(ModelName(name.to_string())),
            false => Err(BadModelName(name.to_string())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `Ok` when a request names this model (and, if it names one, version
    /// [`VERSION`]); else the 404 naming what is served.
    pub fn check(&self, asked: &str, version: Option<&str>) -> Result<(), ApiError> {
        if asked != self.0 {
            return Err(ApiError::UnknownModel {
                asked: asked.to_string(),
                served: self.0.clone(),
            });
        }
        match version {
            Some(v) if v != VERSION => Err(ApiError::UnknownModel {
                asked: format!("{asked} version {v}"),
                served: format!("{} version {VERSION}", self.0),
            }),
            _ => Ok(()),
        }
    }
}

impl Default for ModelName {
    fn default() -> Self {
        ModelName("ccfraud".to_string())
    }
}

/// A model path's `{tail}` parsed: the model, the version if named, and
/// what the path asks for (each protocol's `Target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path<'p, T> {
    pub name: &'p str,
    pub version: Option<&'p str>,
    pub target: T,
}

/// The target of a request's model path (`parse` reads its `{tail}`), once
/// the path names the served model; else 404.
fn target<'r, T>(
    req: &'r actix_web::HttpRequest,
    served: &ModelName,
    parse: impl FnOnce(&'r str) -> Option<Path<'r, T>>,
) -> Result<T, ApiError> {
    let path = parse(req.match_info().query("tail")).ok_or_else(|| ApiError::NotFound {
        method: req.method().clone(),
        path: req.path().to_string(),
    })?;
    served.check(path.name, path.version)?;
    Ok(path.target)
}

/// A JSON object's members in order, values left unparsed and keys given
/// twice kept twice (so the row parser refuses them rather than the last
/// silently winning).
#[derive(Debug, Default)]
pub struct Pairs<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> de::Deserialize<'de> for Pairs<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Pairs<'a>, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Pairs<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs<'a>, A::Error> {
                let mut pairs = Vec::new();
                while let Some(k) = map.next_key::<Cow<'de, str>>()? {
                    pairs.push((k, map.next_value::<&'de RawValue>()?));
                }
                Ok(Pairs(pairs))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Writes `{"k":v,…}` for `pairs` (values as given) onto `out`.
fn write_object<'a>(
    out: &mut Vec<u8>,
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<(), ApiError> {
    out.push(b'{');
    for (i, (k, v)) in pairs.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, k)
            .map_err(|e| ApiError::Internal(format!("cannot write a key: {e}")))?;
        out.push(b':');
        out.extend_from_slice(v.as_bytes());
    }
    out.push(b'}');
    Ok(())
}

/// A JSON body that does not have the protocol's shape: serde's message,
/// which names the key or the type expected and where.
fn shape(what: &str, e: serde_json::Error) -> ApiError {
    ApiError::bad(format!("not {what}: {e}"), None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_are_one_plain_path_segment() {
        for ok in ["ccfraud", "fraud-v2", "a", "m.1_x", &"x".repeat(64)] {
            assert_eq!(ModelName::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            ".hidden",
            "a/b",
            "a:predict",
            "a b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(ModelName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_request_must_name_the_model_and_its_version() {
        let n = ModelName::default();
        assert!(n.check("ccfraud", None).is_ok());
        assert!(n.check("ccfraud", Some("1")).is_ok());
        let e = n.check("other", None).unwrap_err();
        assert!(e.to_string().contains("'other'") && e.to_string().contains("'ccfraud'"));
        assert!(n.check("ccfraud", Some("2")).is_err());
    }

    /// Any bytes, and mutations of valid bodies, through both protocols:
    /// never a panic; an answer is valid JSON, a refusal a 400.
    #[test]
    fn hostile_bodies_get_json_or_a_400() {
        use crate::schema::Schema;
        use crate::serve::response::Score;
        use proptest::prelude::*;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
        use std::sync::Arc;
        let schema = Arc::new(Schema::lab());
        let score = |rows: &[f32]| -> Result<Vec<Score>, ApiError> {
            Ok(rows.chunks(29).map(|_| Score::new(0.5).unwrap()).collect())
        };
        let row = format!("[{}]", vec!["0.5"; 29].join(","));
        let named = format!(
            "{{{}}}",
            (1..=28)
                .map(|i| format!(r#""V{i}": [1]"#))
                .chain([r#""Amount_std": 2"#.to_string()])
                .collect::<Vec<_>>()
                .join(",")
        );
        let seeds = [
            format!(r#"{{"instances": [{row}, {row}]}}"#),
            r#"{"signature_name": "", "inputs": {"V1": [1, 2], "V2": [3, 4]}}"#.to_string(),
            format!(r#"{{"context": {{"V1": 1}}, "examples": [{named}]}}"#),
            format!(
                r#"{{"id": "x", "inputs": [{{"name": "f", "shape": [1, 29], "datatype": "FP32", "data": {row}}}], "outputs": [{{"name": "probability"}}]}}"#
            ),
            r#"{"inputs": [{"name": "V1", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}]}"#.to_string(),
        ];
        let check = |body: &[u8], pick: usize| -> Result<(), String> {
            let method = [
                tfserving::Method::Predict,
                tfserving::Method::Classify,
                tfserving::Method::Regress,
            ][pick % 3];
            let answers = [
                tfserving::answer(method, body, &schema, score),
                oip::infer(
                    &ModelName::default(),
                    body,
                    pick.is_multiple_of(2).then_some(pick % (body.len() + 1)),
                    &schema,
                    0.5,
                    score,
                ),
            ];
            for a in answers {
                match a {
                    Ok(out) => {
                        serde_json::from_slice::<serde_json::Value>(&out)
                            .map_err(|e| format!("invalid JSON: {e}"))?;
                    }
                    Err(ApiError::BadInput { .. }) => {}
                    Err(e) => return Err(format!("not a 400: {e:?}")),
                }
            }
            Ok(())
        };
        let mut runner = TestRunner::new_with_rng(
            Config {
                cases: 2_000,
                failure_persistence: None,
                ..Config::default()
            },
            TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
        );
        let mutated = (
            0..seeds.len(),
            proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            any::<usize>(),
        );
        runner
            .run(&mutated, |(k, edits, pick)| {
                let mut body = seeds[k].clone().into_bytes();
                for (at, byte) in edits {
                    if !body.is_empty() {
                        let i = at % body.len();
                        body[i] = byte;
                    }
                }
                check(&body, pick).map_err(|e| {
                    TestCaseError::fail(format!("{e}: {:?}", String::from_utf8_lossy(&body)))
                })
            })
            .unwrap();
        runner
            .run(
                &(
                    proptest::collection::vec(any::<u8>(), 0..200),
                    any::<usize>(),
                ),
                |(body, pick)| check(&body, pick).map_err(TestCaseError::fail),
            )
            .unwrap();
        for seed in &seeds {
            for pick in 0..6 {
                check(seed.as_bytes(), pick).unwrap();
            }
        }
    }

    #[test]
    fn pairs_keep_order_and_duplicates() {
        let p: Pairs = serde_json::from_str(r#"{"b": [1, 2], "a": 1, "b": "x"}"#).unwrap();
        let got: Vec<(&str, &str)> = p.0.iter().map(|(k, v)| (k.as_ref(), v.get())).collect();
        assert_eq!(got, [("b", "[1, 2]"), ("a", "1"), ("b", "\"x\"")]);
        let mut out = Vec::new();
        write_object(&mut out, got.into_iter()).unwrap();
        assert_eq!(out, br#"{"b":[1, 2],"a":1,"b":"x"}"#);
    }
}
