//! Template parameters (§3): declarations, typed values, validation, placeholder substitution on
//! YAML scalars, and the instantiation hash (sha256 over the template bytes and the RFC 8785
//! canonical JSON of every parameter value).

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};
use yaml_serde::Value;

/// A parameter's declared type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamType {
    Number,
    Integer,
    Boolean,
    String,
    Enum,
    Series,
}

impl ParamType {
    pub fn parse(s: &str) -> Option<ParamType> {
        Some(match s.to_ascii_lowercase().as_str() {
            "number" => ParamType::Number,
            "integer" => ParamType::Integer,
            "boolean" => ParamType::Boolean,
            "string" => ParamType::String,
            "enum" => ParamType::Enum,
            "series" => ParamType::Series,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ParamType::Number => "number",
            ParamType::Integer => "integer",
            ParamType::Boolean => "boolean",
            ParamType::String => "string",
            ParamType::Enum => "enum",
            ParamType::Series => "series",
        }
    }

    /// The name with its article: "a number", "an integer", "an enum", …
    pub fn with_article(self) -> String {
        match self {
            ParamType::Integer | ParamType::Enum => format!("an {}", self.name()),
            _ => format!("a {}", self.name()),
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, ParamType::Number | ParamType::Integer)
    }
}

/// A typed parameter value. Numbers compare by their bits (as they hash): -0.0 is not 0.0 and
/// NaN equals itself, so setting -0.0 over 0.0 is a change (§9).
#[derive(Clone, Debug)]
pub enum ParamValue {
    Number(f64),
    Integer(i64),
    Boolean(bool),
    /// `string` and `enum` values.
    Text(String),
    /// A series reference (§4).
    Series(String),
}

impl PartialEq for ParamValue {
    fn eq(&self, other: &ParamValue) -> bool {
        match (self, other) {
            (ParamValue::Number(a), ParamValue::Number(b)) => a.to_bits() == b.to_bits(),
            (ParamValue::Integer(a), ParamValue::Integer(b)) => a == b,
            (ParamValue::Boolean(a), ParamValue::Boolean(b)) => a == b,
            (ParamValue::Text(a), ParamValue::Text(b)) | (ParamValue::Series(a), ParamValue::Series(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for ParamValue {}

impl std::hash::Hash for ParamValue {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            ParamValue::Number(v) => v.to_bits().hash(state),
            ParamValue::Integer(v) => v.hash(state),
            ParamValue::Boolean(v) => v.hash(state),
            ParamValue::Text(s) | ParamValue::Series(s) => s.hash(state),
        }
    }
}

impl ParamValue {
    /// The numeric value of a number or integer parameter.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Number(v) => Some(*v),
            ParamValue::Integer(v) => Some(*v as f64),
            _ => None,
        }
    }

    /// The YAML scalar a whole-scalar placeholder is replaced by.
    pub fn to_yaml(&self) -> Value {
        match self {
            ParamValue::Number(v) => Value::Number((*v).into()),
            ParamValue::Integer(v) => Value::Number((*v).into()),
            ParamValue::Boolean(b) => Value::Bool(*b),
            ParamValue::Text(s) | ParamValue::Series(s) => Value::String(s.clone()),
        }
    }

    /// The JSON form used in run.json and the instantiation hash.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            ParamValue::Number(v) => {
                serde_json::Number::from_f64(*v).map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
            ParamValue::Integer(v) => serde_json::Value::from(*v),
            ParamValue::Boolean(b) => serde_json::Value::Bool(*b),
            ParamValue::Text(s) | ParamValue::Series(s) => serde_json::Value::String(s.clone()),
        }
    }
}

/// Text form: the Rust `Display` of the value, as spliced into strings and expressions.
impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Number(v) => write!(f, "{v}"),
            ParamValue::Integer(v) => write!(f, "{v}"),
            ParamValue::Boolean(b) => write!(f, "{b}"),
            ParamValue::Text(s) | ParamValue::Series(s) => f.write_str(s),
        }
    }
}

/// A parameter declaration: `{name, type, default?, min?, max?, values?, description?}`.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamDecl {
    pub name: String,
    pub ty: ParamType,
    pub default: Option<ParamValue>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub values: Vec<String>,
    pub description: Option<String>,
}

impl ParamDecl {
    /// Converts a YAML value (a default, or a value supplied in a request) to this type.
    pub fn value_from_yaml(&self, v: &Value) -> Result<ParamValue, String> {
        let got = yaml_kind(v);
        match self.ty {
            ParamType::Number => match v.as_f64() {
                Some(x) if x.is_finite() => Ok(ParamValue::Number(x)),
                Some(x) => Err(format!("expected a finite number, got {x}")),
                None => Err(format!("expected a number, got {got}")),
            },
            ParamType::Integer => match (v.as_i64(), v.as_f64()) {
                (Some(i), _) => Ok(ParamValue::Integer(i)),
                (None, Some(x)) if x.fract() == 0.0 && x.abs() < 9.0e15 => Ok(ParamValue::Integer(x as i64)),
                _ => Err(format!("expected an integer, got {got}")),
            },
            ParamType::Boolean => {
                v.as_bool().map(ParamValue::Boolean).ok_or_else(|| format!("expected true or false, got {got}"))
            }
            ParamType::String | ParamType::Enum => match v {
                Value::String(s) => Ok(ParamValue::Text(s.clone())),
                Value::Number(n) if self.ty == ParamType::Enum => Ok(ParamValue::Text(n.to_string())),
                Value::Bool(b) if self.ty == ParamType::Enum => Ok(ParamValue::Text(b.to_string())),
                _ => Err(format!("expected a string, got {got}")),
            },
            ParamType::Series => match v {
                Value::String(s) => Ok(ParamValue::Series(s.clone())),
                _ => Err(format!("expected a series reference such as `file:data/x.csv`, got {got}")),
            },
        }
    }

    /// Converts command-line text (`-p name=value`) to this type.
    pub fn value_from_text(&self, text: &str) -> Result<ParamValue, String> {
        let t = text.trim();
        match self.ty {
            ParamType::Number => match t.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(ParamValue::Number(x)),
                _ => Err(format!("expected a number, got `{text}`")),
            },
            ParamType::Integer => {
                t.parse::<i64>().map(ParamValue::Integer).map_err(|_| format!("expected an integer, got `{text}`"))
            }
            ParamType::Boolean => match t {
                "true" => Ok(ParamValue::Boolean(true)),
                "false" => Ok(ParamValue::Boolean(false)),
                _ => Err(format!("expected true or false, got `{text}`")),
            },
            ParamType::String | ParamType::Enum => Ok(ParamValue::Text(text.to_string())),
            ParamType::Series => Ok(ParamValue::Series(t.to_string())),
        }
    }

    /// Range and enumeration checks.
    pub fn check(&self, v: &ParamValue) -> Result<(), String> {
        if let Some(x) = v.as_f64() {
            if let Some(min) = self.min
                && x < min
            {
                return Err(format!("{x} is below the minimum {min}"));
            }
            if let Some(max) = self.max
                && x > max
            {
                return Err(format!("{x} is above the maximum {max}"));
            }
        }
        if self.ty == ParamType::Enum
            && let ParamValue::Text(s) = v
            && !self.values.iter().any(|a| a == s)
        {
            return Err(format!("`{s}` is not one of the allowed values [{}]", self.values.join(", ")));
        }
        Ok(())
    }
}

pub(crate) fn yaml_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a map",
        Value::Tagged(_) => "a tagged value",
    }
}

/// A piece of a scalar string with placeholders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(std::borrow::Cow<'a, str>),
    Param(&'a str),
}

/// Splits a scalar into text and `{{name}}` placeholders; `{{{{` is a literal `{{`.
pub fn split_placeholders(s: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("{{") {
        text.push_str(&rest[..i]);
        rest = &rest[i..];
        if rest.starts_with("{{{{") {
            text.push_str("{{");
            rest = &rest[4..];
            continue;
        }
        let Some(close) = rest.find("}}") else {
            return Err(format!("unterminated placeholder in `{s}`; write `{{{{{{{{` for a literal `{{{{`"));
        };
        let name = rest[2..close].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("malformed placeholder `{}`", &rest[..close + 2]));
        }
        if !text.is_empty() {
            out.push(Piece::Text(std::mem::take(&mut text).into()));
        }
        out.push(Piece::Param(name));
        rest = &rest[close + 2..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        out.push(Piece::Text(text.into()));
    }
    Ok(out)
}

/// If the whole scalar is exactly one placeholder, its name.
pub fn whole_placeholder(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.starts_with('{') || inner.contains("}}") || inner.contains("{{") {
        return None;
    }
    let name = inner.trim();
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(name)
}

/// Replaces placeholders in every scalar of a YAML tree (the instantiated model of §8). Errors
/// name the unknown placeholder.
pub fn substitute_tree(v: &Value, values: &BTreeMap<String, ParamValue>) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => {
            if let Some(name) = whole_placeholder(s) {
                return values
                    .get(name)
                    .map(ParamValue::to_yaml)
                    .ok_or_else(|| format!("unknown placeholder `{{{{{name}}}}}`"));
            }
            if !s.contains("{{") {
                return Ok(v.clone());
            }
            let mut out = String::new();
            for piece in split_placeholders(s)? {
                match piece {
                    Piece::Text(t) => out.push_str(&t),
                    Piece::Param(name) => {
                        let pv = values.get(name).ok_or_else(|| format!("unknown placeholder `{{{{{name}}}}}`"))?;
                        out.push_str(&pv.to_string());
                    }
                }
            }
            Value::String(out)
        }
        Value::Sequence(items) => {
            Value::Sequence(items.iter().map(|i| substitute_tree(i, values)).collect::<Result<_, _>>()?)
        }
        Value::Mapping(m) => {
            let mut out = yaml_serde::Mapping::new();
            for (k, val) in m {
                out.insert(k.clone(), substitute_tree(val, values)?);
            }
            Value::Mapping(out)
        }
        other => other.clone(),
    })
}

/// sha256 over the template bytes, `\n`, and the JCS canonical JSON of all parameter values.
pub fn instantiation_hash(template: &str, values: &BTreeMap<String, ParamValue>) -> String {
    let mut h = Sha256::new();
    h.update(template.as_bytes());
    h.update(b"\n");
    h.update(canonical_params(values).as_bytes());
    hex(&h.finalize())
}

/// RFC 8785 canonical JSON of the parameter map.
pub fn canonical_params(values: &BTreeMap<String, ParamValue>) -> String {
    let mut entries: Vec<(&String, &ParamValue)> = values.iter().collect();
    // JCS orders keys by their UTF-16 code units.
    entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    let mut out = String::from("{");
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json_string(k));
        out.push(':');
        match v {
            ParamValue::Number(x) => out.push_str(&es_number(*x)),
            ParamValue::Integer(x) => out.push_str(&es_number(*x as f64)),
            ParamValue::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
            ParamValue::Text(s) | ParamValue::Series(s) => out.push_str(&json_string(s)),
        }
    }
    out.push('}');
    out
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

/// ECMAScript `Number.prototype.toString` for finite values, as RFC 8785 requires.
pub fn es_number(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if !v.is_finite() {
        return "null".into();
    }
    let sign = if v < 0.0 { "-" } else { "" };
    // `{:e}` gives the shortest round-trip digits: d.ddde±x
    let sci = format!("{:e}", v.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let k = digits.len() as i32;
    let n = exp + 1;
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let es = if e >= 0 { format!("+{e}") } else { format!("{e}") };
        if k == 1 { format!("{digits}e{es}") } else { format!("{}.{}e{es}", &digits[..1], &digits[1..]) }
    };
    format!("{sign}{body}")
}

pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn es_numbers_follow_ecmascript() {
        for (v, s) in [
            (1.0, "1"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (123456.789, "123456.789"),
            (5e-324, "5e-324"),
        ] {
            assert_eq!(es_number(v), s, "{v}");
        }
    }

    #[test]
    fn canonical_params_sorted_and_typed() {
        let mut m = BTreeMap::new();
        m.insert("q0".to_string(), ParamValue::Number(5.0));
        m.insert("a".to_string(), ParamValue::Text("x\"y".into()));
        m.insert("flag".to_string(), ParamValue::Boolean(true));
        assert_eq!(canonical_params(&m), r#"{"a":"x\"y","flag":true,"q0":5}"#);
    }

    #[test]
    fn placeholders_split_and_escape() {
        assert_eq!(whole_placeholder("{{q0}}"), Some("q0"));
        assert_eq!(whole_placeholder("x{{q0}}"), None);
        let pieces = split_placeholders("file:data/{{region}}/a{{{{b.csv").unwrap();
        assert_eq!(
            pieces,
            vec![Piece::Text("file:data/".into()), Piece::Param("region"), Piece::Text("/a{{b.csv".into())]
        );
        assert!(split_placeholders("a{{b").is_err());
    }

    #[test]
    fn substitution_types_whole_scalars_and_splices_text() {
        let v: Value = yaml_serde::from_str("a: '{{n}}'\nb: 'x-{{n}}'\nc: '{{s}}'\n").unwrap();
        let mut m = BTreeMap::new();
        m.insert("n".to_string(), ParamValue::Number(2.5));
        m.insert("s".to_string(), ParamValue::Text("hi".into()));
        let out = substitute_tree(&v, &m).unwrap();
        assert_eq!(out["a"].as_f64(), Some(2.5));
        assert_eq!(out["b"].as_str(), Some("x-2.5"));
        assert_eq!(out["c"].as_str(), Some("hi"));
        let err = substitute_tree(&yaml_serde::from_str::<Value>("a: '{{zz}}'").unwrap(), &m).unwrap_err();
        assert!(err.contains("zz"));
    }

    #[test]
    fn checks_range_and_enum() {
        let d = ParamDecl {
            name: "q".into(),
            ty: ParamType::Number,
            default: None,
            min: Some(0.0),
            max: Some(10.0),
            values: vec![],
            description: None,
        };
        assert!(d.check(&ParamValue::Number(-1.0)).unwrap_err().contains("minimum"));
        assert!(d.check(&ParamValue::Number(11.0)).unwrap_err().contains("maximum"));
        assert!(d.check(&ParamValue::Number(5.0)).is_ok());
        let e = ParamDecl { ty: ParamType::Enum, values: vec!["a".into(), "b".into()], min: None, max: None, ..d };
        assert!(e.check(&ParamValue::Text("c".into())).unwrap_err().contains("allowed"));
    }
}
