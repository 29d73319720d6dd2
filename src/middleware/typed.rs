//! Claims in the handler's type, whatever type the layer validated into:
//! the layer records its verdict once ([`Checked`]); an extractor of the
//! layer's own type clones it, any other `T: DeserializeOwned` is read from
//! the layer's JSON claims once per request and type ([`Memo`]). A type
//! that does not fit is logged with the claim's name (never its value) and
//! answered 500, never a silent empty refusal.

use std::any::{Any, type_name};
use std::sync::Arc;

use serde::Deserializer;
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::Checked;
use crate::error::{Error, claims_type_error};
use crate::validator::Validated;

/// A claims type an extractor can hand out: read from the verified claims,
/// cloned for each extraction.
pub(crate) trait Extractable: DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: DeserializeOwned + Clone + Send + Sync + 'static> Extractable for T {}

/// One request's claims read as `T`, kept in the request's extensions so a
/// second extraction of `T` does not deserialise again. Tied to the verdict
/// it was read from: an inner layer's newer verdict is read afresh.
pub(crate) struct Memo<T> {
    /// The verdict read (held, so its address cannot be reused).
    of: Arc<dyn Any + Send + Sync>,
    value: Arc<T>,
}

impl<T> Clone for Memo<T> {
    fn clone(&self) -> Self {
        Memo {
            of: self.of.clone(),
            value: self.value.clone(),
        }
    }
}

/// Why no claims of type `T` came out (already logged when it is a
/// server-side mistake).
pub(crate) enum Why {
    /// No layer recorded claims (none ran, or one let an anonymous request
    /// through): not logged here, the adapter knows which.
    NoClaims,
    /// The claims do not fit `T`, or the layer's claims type cannot be read
    /// as `T`: logged at error.
    DoesNotFit,
}

/// The body of the 500 answered when the claims do not fit the handler's
/// type: short, and without type names or claims (those go to the log).
#[cfg(any(feature = "axum", feature = "actix"))]
pub(crate) const DOES_NOT_FIT: &str =
    "internal error: the token's claims do not fit this route's claims type (see the server log)";

/// The request's claims as `T`, and a memo to record when `T` was freshly
/// deserialised.
pub(crate) fn typed<T: Extractable>(
    checked: Option<&Checked>,
    memo: Option<&Memo<T>>,
) -> Result<(T, Option<Memo<T>>), Why> {
    let checked = checked.ok_or(Why::NoClaims)?;
    // The layer's own type: a clone, as before (no deserialisation).
    if let Some(v) = checked.validated.downcast_ref::<Validated<T>>() {
        return Ok((v.claims.clone(), None));
    }
    if let Some(m) = memo.filter(|m| Arc::ptr_eq(&m.of, &checked.validated)) {
        return Ok((T::clone(&m.value), None));
    }
    let Some(json) = json_of(checked) else {
        tracing::error!(
            reason = "claims_type",
            claims_type = type_name::<T>(),
            layer_claims_type = checked.claims_type,
            "a route extracts claims of a type the bearer auth layer in front of it cannot give: that layer validates into another claims type that is not JSON; build it with BearerAuth::new (JSON claims, readable as any type) or BearerAuth::<T>::with_claims"
        );
        return Err(Why::DoesNotFit);
    };
    match from_json::<T>(json) {
        Ok(value) => {
            let memo = Memo {
                of: checked.validated.clone(),
                value: Arc::new(value),
            };
            Ok((T::clone(&memo.value), Some(memo)))
        }
        Err(e) => {
            // `e` names the claim and the kind of mismatch, never a value.
            tracing::error!(
                reason = "claims_type",
                claims_type = type_name::<T>(),
                error = %e,
                "the token's verified claims do not fit the route's claims type"
            );
            Err(Why::DoesNotFit)
        }
    }
}

/// The layer's claims as a JSON object, when it validated into one.
fn json_of(checked: &Checked) -> Option<&Map<String, Value>> {
    let any = &*checked.validated;
    if let Some(v) = any.downcast_ref::<Validated<Map<String, Value>>>() {
        return Some(&v.claims);
    }
    any.downcast_ref::<Validated<Value>>()
        .and_then(|v| v.claims.as_object())
}

/// Reads `T` from verified JSON claims. The error names the top-level claim
/// where `T` gave up, and the kind of mismatch, never a value (as
/// [`Validator::validate`](crate::Validator::validate)'s do).
pub(crate) fn from_json<T: DeserializeOwned>(claims: &Map<String, Value>) -> Result<T, Error> {
    let mut at = None;
    T::deserialize(Tracked {
        map: claims,
        at: &mut at,
    })
    .map_err(|e| claims_type_error(&e, at))
}

/// The claims object as a deserializer that notes the member being read.
struct Tracked<'a, 'de> {
    map: &'de Map<String, Value>,
    at: &'a mut Option<&'de str>,
}

impl<'de> Deserializer<'de> for Tracked<'_, 'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(TrackedMap {
            iter: self.map.iter(),
            value: None,
            at: self.at,
        })
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

struct TrackedMap<'a, 'de> {
    iter: serde_json::map::Iter<'de>,
    value: Option<&'de Value>,
    at: &'a mut Option<&'de str>,
}

impl<'de> MapAccess<'de> for TrackedMap<'_, 'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some((name, value)) = self.iter.next() else {
            // Read to the end: a failure now is the type's (a missing
            // field), not a member's.
            *self.at = None;
            return Ok(None);
        };
        *self.at = Some(name);
        self.value = Some(value);
        seed.deserialize(BorrowedStrDeserializer::new(name))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        match self.value.take() {
            Some(value) => seed.deserialize(value),
            None => Err(de::Error::custom("a value was asked before its name")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// The validated claims the [`BearerAuthLayer`](super::BearerAuthLayer) in
/// front recorded in a request's extensions, as `T`: for a tonic method
/// (`request.extensions()`), a hyper service, or any handler that holds an
/// [`http::Extensions`]. `T` is any `DeserializeOwned` type: the layer's own
/// claims type is cloned, any other read from the layer's JSON claims
/// ([`BearerAuth::new`](super::BearerAuth::new)). Pair it with
/// [`Scopes::check`](super::Scopes::check) or
/// [`Roles::check`](super::Roles::check) for per-method requirements.
///
/// ```
/// use serde::Deserialize;
/// use tokenwarden::middleware::{AuthRejection, claims_from};
///
/// #[derive(Clone, Deserialize)]
/// struct Caller {
///     sub: String,
/// }
///
/// // In a tonic method: `claims_from::<Caller>(request.extensions())`.
/// let extensions = http::Extensions::new();
/// let refused = claims_from::<Caller>(&extensions).err();
/// // No layer ran in front: a wiring mistake, 500 (and logged).
/// assert_eq!(refused.map(|r| r.status()), Some(500));
/// ```
///
/// # Errors
/// [`AuthRejection::Missing`](super::AuthRejection::Missing) (401) when an anonymous-allowing layer let the
/// request through without a token; [`AuthRejection::NotConfigured`](super::AuthRejection::NotConfigured) (500,
/// logged at error) when no layer ran, or when the claims do not fit `T`
/// (the log names the claim, never its value).
#[cfg(feature = "tower")]
pub fn claims_from<T>(extensions: &http::Extensions) -> Result<T, super::AuthRejection>
where
    T: DeserializeOwned + Clone + Send + Sync + 'static,
{
    use super::Anonymous;
    use super::AuthRejection;
    let checked = extensions.get::<Checked>();
    match typed::<T>(checked, extensions.get::<Memo<T>>()) {
        Ok((claims, _)) => Ok(claims),
        Err(Why::NoClaims) if extensions.get::<Anonymous>().is_some() => {
            Err(AuthRejection::Missing)
        }
        Err(Why::NoClaims) => {
            no_layer::<T>();
            Err(AuthRejection::NotConfigured)
        }
        Err(Why::DoesNotFit) => Err(AuthRejection::NotConfigured),
    }
}

/// Logs a route that asks for claims with no layer in front: a wiring
/// mistake. Type names only: never a claim value.
pub(crate) fn no_layer<T>() {
    tracing::error!(
        reason = "not_configured",
        claims_type = type_name::<T>(),
        "a route extracts claims but no bearer auth layer runs in front of it"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Person {
        sub: String,
        age: u8,
        #[serde(default)]
        nick: Option<String>,
    }

    fn map(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap_or_default()
    }

    #[test]
    fn reads_a_struct_from_json_claims() {
        let p: Person = from_json(&map(r#"{"sub":"alice","age":7,"other":[1]}"#)).unwrap();
        assert_eq!(p.sub, "alice");
        assert_eq!(p.nick, None);
        let v: Value = from_json(&map(r#"{"a":{"b":1}}"#)).unwrap();
        assert_eq!(v["a"]["b"], 1);
    }

    #[test]
    fn a_misfit_names_the_claim_never_the_value() {
        let e = from_json::<Person>(&map(r#"{"sub":"alice","age":"s3cr3t-v4lue"}"#)).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(text.contains("\"age\""), "{text}");
        assert!(text.contains("invalid type"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
        let e = from_json::<Person>(&map(r#"{"age":1,"x":"s3cr3t-v4lue"}"#)).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(
            text.contains("\"sub\"") && text.contains("missing"),
            "{text}"
        );
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}
