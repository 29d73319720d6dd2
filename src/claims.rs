//! Claims rules (RFC 7519 §4.1) over a borrowed view of the payload.
//!
//! The view is read in one pass that also enforces the strict JSON rules
//! (duplicate names, depth) and notes which required claims are present; the
//! caller's own claims type is deserialised only after every rule passed.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::error::Error;
use crate::error::payload_error;
use crate::token::{Seen, Str, check_json_text};

/// Most `aud` values read from one token.
pub(crate) const MAX_AUDIENCES: usize = 64;

/// A time claim as found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Time {
    Absent,
    At(f64),
    /// Present but not a JSON number (RFC 7519 §2 NumericDate).
    NotNumber,
}

/// `exp`, `nbf` and `iat`, as found.
pub(crate) type Times = (Time, Time, Time);

/// `aud` as found.
#[derive(Debug)]
pub(crate) enum Aud<'a> {
    Absent,
    One(Str<'a>),
    Many(Vec<Str<'a>>),
    Invalid(&'static str),
}

/// `iss` as found.
#[derive(Debug)]
pub(crate) enum Iss<'a> {
    Absent,
    Is(Str<'a>),
    NotString,
}

/// The registered claims of a payload, borrowed from it.
#[derive(Debug)]
pub(crate) struct View<'a> {
    pub(crate) exp: Time,
    pub(crate) nbf: Time,
    pub(crate) iat: Time,
    pub(crate) iss: Iss<'a>,
    pub(crate) aud: Aud<'a>,
    /// Bit `i` set when `required[i]` is present.
    pub(crate) present: u64,
}

/// Reads the payload into a [`View`]. `required` holds at most 64 names.
pub(crate) fn parse_view<'a>(json: &'a [u8], required: &[Box<str>]) -> Result<View<'a>, Error> {
    let text = check_json_text(json, "payload")?;
    let mut de = serde_json::Deserializer::from_str(text);
    let view = ViewSeed {
        required,
        input: text,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v))
    .map_err(|e| payload_error(&e))?;
    Ok(view)
}

struct ViewSeed<'r, 'i> {
    required: &'r [Box<str>],
    /// The payload text, to tell `serde_json`'s number marker from a member.
    input: &'i str,
}

impl<'de> DeserializeSeed<'de> for ViewSeed<'_, '_> {
    type Value = View<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<View<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ViewSeed<'_, '_> {
    type Value = View<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<View<'de>, A::Error> {
        let mut v = View {
            exp: Time::Absent,
            nbf: Time::Absent,
            iat: Time::Absent,
            iss: Iss::Absent,
            aud: Aud::Absent,
            present: 0,
        };
        let mut seen = Seen::default();
        let input = self.input;
        while let Some(name) = map.next_key::<Str<'de>>()? {
            seen.insert::<A::Error>(&name)?;
            if let Some(i) = self.required.iter().position(|r| **r == *name) {
                v.present |= 1 << i;
            }
            match &*name {
                "exp" => v.exp = map.next_value_seed(TimeSeed { input })?,
                "nbf" => v.nbf = map.next_value_seed(TimeSeed { input })?,
                "iat" => v.iat = map.next_value_seed(TimeSeed { input })?,
                "iss" => v.iss = map.next_value::<IssValue<'de>>()?.0,
                "aud" => v.aud = map.next_value::<AudValue<'de>>()?.0,
                // Other claims are the caller's type's business; skipped here.
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(v)
    }
}

/// Reads any value; keeps it when it is a number.
struct TimeSeed<'i> {
    input: &'i str,
}

impl<'de> DeserializeSeed<'de> for TimeSeed<'_> {
    type Value = Time;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Time, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TimeSeed<'_> {
    type Value = Time;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_i64<E>(self, v: i64) -> Result<Time, E> {
        Ok(numeric(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Time, E> {
        Ok(numeric(v as f64))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Time, E> {
        Ok(numeric(v as f64))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Time, E> {
        Ok(numeric(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Time, E> {
        Ok(numeric(v))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Time, E> {
        Ok(Time::NotNumber)
    }
    fn visit_str<E>(self, _: &str) -> Result<Time, E> {
        Ok(Time::NotNumber)
    }
    fn visit_unit<E>(self) -> Result<Time, E> {
        Ok(Time::NotNumber)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Time, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(Time::NotNumber)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Time, A::Error> {
        let Some(first) = map.next_key::<Str<'de>>()? else {
            return Ok(Time::NotNumber);
        };
        if is_number_token(&first, self.input) {
            let digits = map.next_value::<Str<'de>>()?;
            IgnoredAny.visit_map(map)?;
            return Ok(precise_number(&digits));
        }
        map.next_value::<IgnoredAny>()?;
        IgnoredAny.visit_map(map)?;
        Ok(Time::NotNumber)
    }
}

/// A time claim's number: only a finite one is a NumericDate.
fn numeric(x: f64) -> Time {
    if x.is_finite() {
        Time::At(x)
    } else {
        Time::NotNumber
    }
}

/// The key under which `serde_json` hands a number over as its digits when
/// another crate in the build enables its `arbitrary_precision` feature:
/// `deserialize_any` then gives a one-member map instead of `visit_f64`.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Whether a map key is `serde_json`'s arbitrary-precision number marker.
/// The marker comes from `serde_json` itself, never from the token: a member
/// of that name written in the payload is borrowed from the payload (or
/// owned, when escaped) and is an object like any other.
fn is_number_token(key: &Str<'_>, input: &str) -> bool {
    match &key.0 {
        Cow::Borrowed(b) => {
            let start = input.as_ptr() as usize;
            let at = b.as_ptr() as usize;
            let inside = at >= start && at <= start.saturating_add(input.len());
            *b == NUMBER_TOKEN && !inside
        }
        Cow::Owned(_) => false,
    }
}

/// An arbitrary-precision number's digits (already checked as JSON number
/// syntax by `serde_json`) as a time.
fn precise_number(digits: &str) -> Time {
    digits.parse::<f64>().map_or(Time::NotNumber, numeric)
}

struct IssValue<'a>(Iss<'a>);

impl<'de> Deserialize<'de> for IssValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match StrOrOther::deserialize(d)? {
            StrOrOther::Str(s) => Ok(IssValue(Iss::Is(s))),
            StrOrOther::Other => Ok(IssValue(Iss::NotString)),
            StrOrOther::Array(_) => Ok(IssValue(Iss::NotString)),
        }
    }
}

struct AudValue<'a>(Aud<'a>);

impl<'de> Deserialize<'de> for AudValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(AudValue(match StrOrOther::deserialize(d)? {
            StrOrOther::Str(s) => Aud::One(s),
            StrOrOther::Array(Ok(v)) => Aud::Many(v),
            StrOrOther::Array(Err(why)) => Aud::Invalid(why),
            StrOrOther::Other => Aud::Invalid("must be a string or an array of strings"),
        }))
    }
}

/// A string, an array of strings, or anything else (read strictly and dropped).
enum StrOrOther<'a> {
    Str(Str<'a>),
    Array(Result<Vec<Str<'a>>, &'static str>),
    Other,
}

impl<'de> Deserialize<'de> for StrOrOther<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrOrOtherVisitor)
    }
}

struct StrOrOtherVisitor;

impl<'de> Visitor<'de> for StrOrOtherVisitor {
    type Value = StrOrOther<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(StrOrOther::Str(Str(Cow::Borrowed(v))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(StrOrOther::Str(Str(Cow::Owned(v.to_owned()))))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(StrOrOther::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(StrOrOther::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(StrOrOther::Other)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(StrOrOther::Other)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(StrOrOther::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(StrOrOther::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        let mut why = None;
        while let Some(item) = seq.next_element::<StrOrOther<'de>>()? {
            match item {
                StrOrOther::Str(s) if out.len() < MAX_AUDIENCES => out.push(s),
                StrOrOther::Str(_) => {
                    why.get_or_insert("has more values than the 64 checked");
                }
                _ => {
                    why.get_or_insert("must be a string or an array of strings");
                }
            }
        }
        Ok(StrOrOther::Array(match why {
            Some(w) => Err(w),
            None => Ok(out),
        }))
    }
}

/// What one pass over the payload learned besides the caller's claims.
pub(crate) struct Tapped<'de> {
    pub(crate) view: View<'de>,
    /// A refusal of ours (duplicate name), raised inside the parse.
    pub(crate) fault: Option<Error>,
    /// The whole object was read (so `view` is complete).
    pub(crate) complete: bool,
    /// The top-level member being read last: the one the claims type
    /// stopped at, if it gave up half-way.
    pub(crate) at: Option<Str<'de>>,
}

impl View<'_> {
    fn empty() -> Self {
        View {
            exp: Time::Absent,
            nbf: Time::Absent,
            iat: Time::Absent,
            iss: Iss::Absent,
            aud: Aud::Absent,
            present: 0,
        }
    }
}

/// Deserialises the payload into `C` in one pass that also reads the
/// registered claims into a [`View`], checks member names for duplicates and
/// notes the required claims present. The caller must run the rules on the
/// view before handing `C` out. `json` must have passed
/// [`check_json_text`], which gives it as `str`.
pub(crate) fn parse_tapped<'de, C: Deserialize<'de>>(
    json: &'de str,
    required: &[Box<str>],
) -> (Result<C, serde_json::Error>, Tapped<'de>) {
    let mut state = TapState {
        out: Tapped {
            view: View::empty(),
            fault: None,
            complete: false,
            at: None,
        },
        required,
        seen: Seen::default(),
        input: json,
    };
    let mut de = serde_json::Deserializer::from_str(json);
    let result = C::deserialize(Tap {
        de: &mut de,
        st: &mut state,
    })
    .and_then(|c| de.end().map(|()| c));
    (result, state.out)
}

struct TapState<'de, 'r> {
    out: Tapped<'de>,
    required: &'r [Box<str>],
    seen: Seen<'de>,
    /// The payload text, to tell `serde_json`'s number marker from a member.
    input: &'de str,
}

#[derive(Clone, Copy)]
enum Registered {
    Exp,
    Nbf,
    Iat,
    Iss,
    Aud,
}

/// A deserializer that reads the payload as a map whatever `C` asks for,
/// watching the top-level members on the way.
struct Tap<'s, 'de, 'r, D> {
    de: D,
    st: &'s mut TapState<'de, 'r>,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Tap<'_, 'de, '_, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.de.deserialize_map(TapVisitor {
            inner: visitor,
            st: self.st,
        })
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

struct TapVisitor<'s, 'de, 'r, V> {
    inner: V,
    st: &'s mut TapState<'de, 'r>,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for TapVisitor<'_, 'de, '_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(TapMap {
            map,
            st: self.st,
            pending: None,
        })
    }
}

struct TapMap<'s, 'de, 'r, A> {
    map: A,
    st: &'s mut TapState<'de, 'r>,
    pending: Option<Registered>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for TapMap<'_, 'de, '_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let Some(name) = self.map.next_key::<Str<'de>>()? else {
            self.st.out.complete = true;
            return Ok(None);
        };
        if let Err(e) = self.st.seen.insert::<A::Error>(&name) {
            self.st.out.fault = Some(Error::malformed(format!(
                "payload is not a valid JSON object: {e}"
            )));
            return Err(e);
        }
        if let Some(i) = self.st.required.iter().position(|r| **r == *name) {
            self.st.out.view.present |= 1 << i;
        }
        self.pending = match &*name {
            "exp" => Some(Registered::Exp),
            "nbf" => Some(Registered::Nbf),
            "iat" => Some(Registered::Iat),
            "iss" => Some(Registered::Iss),
            "aud" => Some(Registered::Aud),
            _ => None,
        };
        self.st.out.at = Some(name.clone());
        str_into(seed, name).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        let Some(which) = self.pending.take() else {
            return self.map.next_value_seed(seed);
        };
        // A registered claim: the caller's type reads it as usual while the
        // capture records what goes past.
        self.map.next_value_seed(CaptureSeed {
            seed,
            sink: Sink {
                which,
                view: &mut self.st.out.view,
                depth: 0,
                input: self.st.input,
            },
        })
    }
}

/// Where a registered claim's value is recorded.
struct Sink<'v, 'de> {
    which: Registered,
    view: &'v mut View<'de>,
    /// 0: the claim's value; 1: an element of an `aud` array; more: deeper.
    depth: u8,
    input: &'de str,
}

const AUD_SHAPE: &str = "must be a string or an array of strings";

impl<'de> Sink<'_, 'de> {
    fn reborrow(&mut self, depth: u8) -> Sink<'_, 'de> {
        Sink {
            which: self.which,
            view: self.view,
            depth,
            input: self.input,
        }
    }

    fn number(&mut self, x: f64) {
        if !x.is_finite() {
            return self.other();
        }
        match (self.which, self.depth) {
            (Registered::Exp, 0) => self.view.exp = Time::At(x),
            (Registered::Nbf, 0) => self.view.nbf = Time::At(x),
            (Registered::Iat, 0) => self.view.iat = Time::At(x),
            _ => self.other(),
        }
    }

    fn string(&mut self, s: Str<'de>) {
        match (self.which, self.depth) {
            (Registered::Iss, 0) => self.view.iss = Iss::Is(s),
            (Registered::Aud, 0) => self.view.aud = Aud::One(s),
            (Registered::Aud, 1) => match &mut self.view.aud {
                Aud::Many(v) if v.len() < MAX_AUDIENCES => v.push(s),
                Aud::Many(_) => self.view.aud = Aud::Invalid("has more values than the 64 checked"),
                _ => {}
            },
            _ => self.other(),
        }
    }

    /// Anything that is not what the claim must be.
    fn other(&mut self) {
        match (self.which, self.depth) {
            (Registered::Exp, 0) => self.view.exp = Time::NotNumber,
            (Registered::Nbf, 0) => self.view.nbf = Time::NotNumber,
            (Registered::Iat, 0) => self.view.iat = Time::NotNumber,
            (Registered::Iss, 0) => self.view.iss = Iss::NotString,
            // The first reason an `aud` is unusable is the one reported.
            (Registered::Aud, 0 | 1) if !matches!(self.view.aud, Aud::Invalid(_)) => {
                self.view.aud = Aud::Invalid(AUD_SHAPE);
            }
            _ => {}
        }
    }

    fn seq_start(&mut self) {
        match (self.which, self.depth) {
            (Registered::Aud, 0) => self.view.aud = Aud::Many(Vec::new()),
            _ => self.other(),
        }
    }
}

struct CaptureSeed<'v, 'de, S> {
    seed: S,
    sink: Sink<'v, 'de>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for CaptureSeed<'_, 'de, S> {
    type Value = S::Value;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Capture {
            de,
            sink: self.sink,
        })
    }
}

/// Forwards every request to the real deserializer with a recording visitor.
struct Capture<'v, 'de, D> {
    de: D,
    sink: Sink<'v, 'de>,
}

macro_rules! forward_capture {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.de.$method($($arg,)* CaptureVisitor { inner: visitor, sink: self.sink })
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Capture<'_, 'de, D> {
    type Error = D::Error;

    forward_capture! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
    }

    /// The caller skips this claim; the rules still need it.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.de.deserialize_any(CaptureVisitor {
            inner: visitor,
            sink: self.sink,
        })
    }
}

struct CaptureVisitor<'v, 'de, V> {
    inner: V,
    sink: Sink<'v, 'de>,
}

macro_rules! record_then {
    ($($method:ident($ty:ty) => $record:expr;)*) => {$(
        fn $method<E: de::Error>(mut self, v: $ty) -> Result<V::Value, E> {
            #[allow(clippy::redundant_closure_call)]
            ($record)(&mut self.sink, &v);
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for CaptureVisitor<'_, 'de, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    record_then! {
        visit_bool(bool) => |s: &mut Sink<'_, 'de>, _: &bool| s.other();
        visit_i64(i64) => |s: &mut Sink<'_, 'de>, v: &i64| s.number(*v as f64);
        visit_u64(u64) => |s: &mut Sink<'_, 'de>, v: &u64| s.number(*v as f64);
        visit_i128(i128) => |s: &mut Sink<'_, 'de>, v: &i128| s.number(*v as f64);
        visit_u128(u128) => |s: &mut Sink<'_, 'de>, v: &u128| s.number(*v as f64);
        visit_f64(f64) => |s: &mut Sink<'_, 'de>, v: &f64| s.number(*v);
        visit_char(char) => |s: &mut Sink<'_, 'de>, _: &char| s.other();
        visit_str(&str) => |s: &mut Sink<'_, 'de>, v: &&str| s.string(Str(Cow::Owned((*v).to_owned())));
        visit_borrowed_str(&'de str) => |s: &mut Sink<'_, 'de>, v: &&'de str| s.string(Str(Cow::Borrowed(*v)));
        visit_string(String) => |s: &mut Sink<'_, 'de>, v: &String| s.string(Str(Cow::Owned(v.clone())));
        visit_bytes(&[u8]) => |s: &mut Sink<'_, 'de>, _: &&[u8]| s.other();
        visit_borrowed_bytes(&'de [u8]) => |s: &mut Sink<'_, 'de>, _: &&'de [u8]| s.other();
        visit_byte_buf(Vec<u8>) => |s: &mut Sink<'_, 'de>, _: &Vec<u8>| s.other();
    }

    fn visit_none<E: de::Error>(mut self) -> Result<V::Value, E> {
        self.sink.other();
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<V::Value, E> {
        self.sink.other();
        self.inner.visit_unit()
    }

    fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<V::Value, D2::Error> {
        self.inner.visit_some(Capture {
            de: d,
            sink: self.sink,
        })
    }

    fn visit_newtype_struct<D2: Deserializer<'de>>(self, d: D2) -> Result<V::Value, D2::Error> {
        self.inner.visit_newtype_struct(Capture {
            de: d,
            sink: self.sink,
        })
    }

    fn visit_seq<A2: SeqAccess<'de>>(mut self, seq: A2) -> Result<V::Value, A2::Error> {
        self.sink.seq_start();
        self.inner.visit_seq(CaptureSeq {
            seq,
            sink: self.sink,
        })
    }

    fn visit_map<A2: MapAccess<'de>>(mut self, mut map: A2) -> Result<V::Value, A2::Error> {
        // A number, when `serde_json/arbitrary_precision` is on in the build,
        // comes as a one-member map of its digits: read it as the number it
        // is, and replay it to the caller's type unchanged.
        let Some(first) = map.next_key::<Str<'de>>()? else {
            self.sink.other();
            return self.inner.visit_map(Replay {
                key: None,
                value: None,
                ended: true,
                map,
            });
        };
        let mut value = None;
        if is_number_token(&first, self.sink.input) {
            let digits = map.next_value::<Str<'de>>()?;
            match precise_number(&digits) {
                Time::At(x) => self.sink.number(x),
                _ => self.sink.other(),
            }
            value = Some(digits);
        } else {
            self.sink.other();
        }
        self.inner.visit_map(Replay {
            key: Some(first),
            value,
            ended: false,
            map,
        })
    }

    fn visit_enum<A2: de::EnumAccess<'de>>(mut self, data: A2) -> Result<V::Value, A2::Error> {
        self.sink.other();
        self.inner.visit_enum(data)
    }
}

/// A map whose first member (and maybe its value) was read ahead: hands
/// them out again, then the rest.
struct Replay<'de, A> {
    key: Option<Str<'de>>,
    value: Option<Str<'de>>,
    ended: bool,
    map: A,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Replay<'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        if self.ended {
            return Ok(None);
        }
        if let Some(key) = self.key.take() {
            return str_into(seed, key).map(Some);
        }
        let next = self.map.next_key_seed(seed)?;
        self.ended = next.is_none();
        Ok(next)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        match self.value.take() {
            Some(v) => str_into(seed, v),
            None => self.map.next_value_seed(seed),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// Hands a string read ahead to `seed`, borrowed when it was.
fn str_into<'de, S: DeserializeSeed<'de>, E: de::Error>(
    seed: S,
    s: Str<'de>,
) -> Result<S::Value, E> {
    match s.0 {
        Cow::Borrowed(b) => seed.deserialize(de::value::BorrowedStrDeserializer::new(b)),
        Cow::Owned(s) => seed.deserialize(de::value::StringDeserializer::new(s)),
    }
}

/// The elements of an array-valued registered claim, each recorded one
/// level deeper.
struct CaptureSeq<'v, 'de, A> {
    seq: A,
    sink: Sink<'v, 'de>,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for CaptureSeq<'_, 'de, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let depth = self.sink.depth.saturating_add(1);
        self.seq.next_element_seed(CaptureSeed {
            seed,
            sink: self.sink.reborrow(depth),
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.seq.size_hint()
    }
}

/// The time rules, with the leeway applied both ways (RFC 7519 §4.1.4-§4.1.6).
#[derive(Debug, Clone)]
pub(crate) struct TimeRules {
    pub(crate) leeway: u64,
    pub(crate) require_exp: bool,
    pub(crate) max_age: Option<u64>,
}

impl TimeRules {
    pub(crate) fn check(&self, view: &View<'_>, now: i64) -> Result<(), Error> {
        let leeway = self.leeway;
        let nowf = now as f64;
        let lw = leeway as f64;
        match view.exp {
            // RFC 7519 §4.1.4: valid only while now is before exp.
            Time::At(exp) if nowf - lw >= exp => {
                return Err(Error::Expired {
                    exp: exp as i64,
                    now,
                    leeway,
                });
            }
            Time::At(_) => {}
            Time::Absent if self.require_exp => {
                return Err(Error::MissingClaim {
                    claim: "exp".into(),
                });
            }
            Time::Absent => {}
            Time::NotNumber => return Err(not_numeric("exp")),
        }
        match view.nbf {
            // RFC 7519 §2: a NumericDate counts seconds from the epoch; an
            // IdP never issues a token valid from before 1970.
            Time::At(nbf) if nbf < 0.0 => return Err(negative("nbf")),
            // RFC 7519 §4.1.5: valid from nbf on (inclusive).
            Time::At(nbf) if nowf + lw < nbf => {
                return Err(Error::NotYetValid {
                    nbf: nbf as i64,
                    now,
                    leeway,
                });
            }
            Time::NotNumber => return Err(not_numeric("nbf")),
            _ => {}
        }
        match view.iat {
            Time::At(iat) if iat < 0.0 => return Err(negative("iat")),
            Time::At(iat) if nowf + lw < iat => {
                return Err(Error::IssuedInFuture {
                    iat: iat as i64,
                    now,
                    leeway,
                });
            }
            Time::At(iat) => {
                if let Some(max_age) = self.max_age {
                    if nowf - lw - iat > max_age as f64 {
                        return Err(Error::TokenTooOld {
                            iat: iat as i64,
                            max_age,
                            now,
                        });
                    }
                }
            }
            Time::NotNumber => return Err(not_numeric("iat")),
            Time::Absent if self.max_age.is_some() => {
                return Err(Error::MissingClaim {
                    claim: "iat".into(),
                });
            }
            Time::Absent => {}
        }
        Ok(())
    }
}

fn negative(claim: &str) -> Error {
    Error::invalid_claim(claim, "must not be before 1970 (a negative NumericDate)")
}

fn not_numeric(claim: &str) -> Error {
    Error::invalid_claim(claim, "must be a NumericDate: a JSON number (RFC 7519 §2)")
}

/// RFC 7519 §4.1.3: the token must name one of our audiences.
pub(crate) fn check_audience(aud: &Aud<'_>, accepted: &[Box<str>]) -> Result<(), Error> {
    let hit = |a: &str| accepted.iter().any(|x| **x == *a);
    match aud {
        Aud::One(a) if hit(a) => Ok(()),
        Aud::Many(v) if v.iter().any(|a| hit(a)) => Ok(()),
        Aud::One(a) => Err(Error::invalid_audience(
            std::iter::once(&**a),
            accepted.iter().map(|x| &**x),
        )),
        Aud::Many(v) => Err(Error::invalid_audience(
            v.iter().map(|a| &**a),
            accepted.iter().map(|x| &**x),
        )),
        Aud::Absent => Err(Error::MissingClaim {
            claim: "aud".into(),
        }),
        Aud::Invalid(why) => Err(Error::invalid_claim("aud", *why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(json: &str) -> Result<View<'_>, Error> {
        parse_view(json.as_bytes(), &[])
    }

    #[test]
    fn registered_claims_are_read() {
        let v = view(r#"{"exp":10,"nbf":1.5,"iat":2,"iss":"a","aud":["x","y"],"other":{"n":[1]}}"#)
            .unwrap();
        assert_eq!(v.exp, Time::At(10.0));
        assert_eq!(v.nbf, Time::At(1.5));
        assert!(matches!(v.iss, Iss::Is(ref s) if &**s == "a"));
        assert!(matches!(v.aud, Aud::Many(ref a) if a.len() == 2));
    }

    #[test]
    fn numeric_date_as_string_is_flagged() {
        let v = view(r#"{"exp":"10"}"#).unwrap();
        assert_eq!(v.exp, Time::NotNumber);
    }

    #[test]
    fn duplicate_claims_are_refused() {
        assert!(view(r#"{"exp":10,"exp":99999999999}"#).is_err());
        assert!(view(r#"{"sub":"a","s\u0075b":"b"}"#).is_err());
    }

    #[test]
    fn payload_must_be_one_object() {
        assert!(view("[]").is_err());
        assert!(view(r#"{"a":1} {}"#).is_err());
        assert!(view("").is_err());
    }
}
