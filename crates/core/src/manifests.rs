//! Manifest loading: YAML files from a repository revision become objects, each remembering
//! the file, document and line it came from, with `${variable}` substitution in string values.
//!
//! Every error names the file, the line and the document, and unknown variables are errors,
//! never silent blanks. Alias expansion is bounded by the YAML parser (a "billion laughs"
//! document fails with `repetition limit exceeded` instead of exhausting memory).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// A file read from a repository revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the repository root.
    pub path: String,
    /// Raw content.
    pub content: Vec<u8>,
}

/// One object from one YAML document.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The file it came from.
    pub file: String,
    /// 1-based line where its document starts.
    pub line: usize,
    /// 1-based index of its document in the file.
    pub document: usize,
    /// The object, as JSON.
    pub object: Value,
}

impl Manifest {
    /// `apiVersion` of the object.
    pub fn api_version(&self) -> &str {
        self.object.get("apiVersion").and_then(Value::as_str).unwrap_or("")
    }
    /// `kind` of the object.
    pub fn kind(&self) -> &str {
        self.object.get("kind").and_then(Value::as_str).unwrap_or("")
    }
    /// `metadata.name` of the object.
    pub fn name(&self) -> &str {
        self.object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("")
    }
    /// `metadata.namespace` of the object, if set.
    pub fn namespace(&self) -> Option<&str> {
        self.object.pointer("/metadata/namespace").and_then(Value::as_str)
    }
    /// Where it came from: `cluster/roles.yaml:12 (document 2)`.
    pub fn location(&self) -> Location {
        Location { file: self.file.clone(), line: self.line, document: self.document }
    }
}

impl fmt::Display for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.namespace() {
            Some(ns) => write!(f, "{} {}/{} ({})", self.kind(), ns, self.name(), self.location()),
            None => write!(f, "{} {} ({})", self.kind(), self.name(), self.location()),
        }
    }
}

/// A place in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// File path.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based document index.
    pub document: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0: an object the operator made, named by its origin rather than a file.
        if self.line == 0 {
            return f.write_str(&self.file);
        }
        write!(f, "{}:{} (document {})", self.file, self.line, self.document)
    }
}

/// Why a document could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The file is not UTF-8 text.
    #[error("{file}: not UTF-8 text")]
    NotText {
        /// File path.
        file: String,
    },
    /// The YAML does not parse.
    #[error("{at}: invalid YAML: {message}")]
    Yaml {
        /// Where.
        at: Location,
        /// The parser's message.
        message: String,
    },
    /// The document is not a Kubernetes object.
    #[error("{at}: not a Kubernetes object: {why}")]
    NotAnObject {
        /// Where.
        at: Location,
        /// What is missing.
        why: String,
    },
    /// `${name}` names no variable.
    #[error("{at}: unknown variable ${{{variable}}} at {path} (known: {known})")]
    UnknownVariable {
        /// Where.
        at: Location,
        /// The variable.
        variable: String,
        /// JSON path of the value.
        path: String,
        /// The variables that exist.
        known: String,
    },
}

impl LoadError {
    /// A PascalCase reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        "ParseFailed"
    }
}

/// Loads every `.yaml`/`.yml` file in `files`, substituting `vars`. Returns all objects, or
/// every error found (not just the first), so one pass shows a user everything to fix.
pub fn load(files: &[SourceFile], vars: &BTreeMap<String, String>) -> Result<Vec<Manifest>, Vec<LoadError>> {
    let mut manifests = Vec::new();
    let mut errors = Vec::new();
    for file in files.iter().filter(|f| is_manifest_file(&f.path)) {
        let Ok(text) = std::str::from_utf8(&file.content) else {
            errors.push(LoadError::NotText { file: file.path.clone() });
            continue;
        };
        load_text(&file.path, text, Some(vars), &mut manifests, &mut errors);
    }
    if errors.is_empty() { Ok(manifests) } else { Err(errors) }
}

/// What the name of a tool's output starts with (`kustomize build deploy/base`).
pub const RENDERED_BY: [&str; 2] = ["kustomize build ", "helm template "];

/// Whether `path` is loaded as manifests: a YAML file, or a tool's output named by its command.
fn is_manifest_file(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml") || RENDERED_BY.iter().any(|p| path.starts_with(p))
}

/// Loads one rendered YAML stream, named by what made it (such as `kustomize build
/// deploy/base`, so an error points at its line in that output). `vars` are substituted when
/// given (kustomize's output, as for plain files), not in a chart's output, whose `${...}`
/// belong to the chart.
pub fn load_rendered(
    source: &str,
    text: &str,
    vars: Option<&BTreeMap<String, String>>,
) -> Result<Vec<Manifest>, Vec<LoadError>> {
    let mut manifests = Vec::new();
    let mut errors = Vec::new();
    load_text(source, text, vars, &mut manifests, &mut errors);
    if errors.is_empty() { Ok(manifests) } else { Err(errors) }
}

fn load_text(
    file: &str,
    text: &str,
    vars: Option<&BTreeMap<String, String>>,
    manifests: &mut Vec<Manifest>,
    errors: &mut Vec<LoadError>,
) {
    for (index, (line, doc)) in split_documents(text).into_iter().enumerate() {
        let at = Location { file: file.to_string(), line, document: index + 1 };
        match parse_document(doc, &at, vars) {
            Ok(objects) => manifests.extend(objects.into_iter().map(|object| Manifest {
                file: at.file.clone(),
                line: at.line,
                document: at.document,
                object,
            })),
            Err(e) => errors.push(e),
        }
    }
}

/// Splits a YAML stream at `---` document markers; returns (1-based start line, text).
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start_line = 1;
    let mut start_byte = 0;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare == "---" || bare.starts_with("--- ") || bare == "..." {
            docs.push((start_line, &text[start_byte..offset]));
            start_line = i + 2;
            start_byte = offset + line.len();
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start_byte..]));
    docs.into_iter()
        .filter(|(_, d)| d.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')))
        .collect()
}

fn parse_document(doc: &str, at: &Location, vars: Option<&BTreeMap<String, String>>) -> Result<Vec<Value>, LoadError> {
    let mut value: Value = serde_yaml::from_str(doc).map_err(|e| {
        let line = e.location().map(|l| at.line + l.line().saturating_sub(1)).unwrap_or(at.line);
        LoadError::Yaml { at: Location { line, ..at.clone() }, message: e.to_string() }
    })?;
    if let Some(vars) = vars {
        substitute(&mut value, "", at, vars)?;
    }
    // `kind: List` (as `kubectl get -o yaml` prints) stands for its items.
    let objects = match value.get("kind").and_then(Value::as_str) {
        Some("List") => value.get("items").and_then(Value::as_array).cloned().unwrap_or_default(),
        _ => vec![value],
    };
    for object in &objects {
        check_object(object, at)?;
    }
    Ok(objects)
}

fn check_object(object: &Value, at: &Location) -> Result<(), LoadError> {
    let not = |why: &str| LoadError::NotAnObject { at: at.clone(), why: why.to_string() };
    if !object.is_object() {
        return Err(not("the document is not a mapping"));
    }
    for (pointer, field) in [("/apiVersion", "apiVersion"), ("/kind", "kind"), ("/metadata/name", "metadata.name")] {
        if object.pointer(pointer).and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(not(&format!("{field} is missing")));
        }
    }
    Ok(())
}

/// Replaces `${name}` in every string value; `$${` stands for a literal `${`.
fn substitute(value: &mut Value, path: &str, at: &Location, vars: &BTreeMap<String, String>) -> Result<(), LoadError> {
    match value {
        Value::String(s) if s.contains("${") => *s = expand(s, path, at, vars)?,
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(item, &format!("{path}[{i}]"), at, vars)?;
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                substitute(item, &format!("{path}.{key}"), at, vars)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand(s: &str, path: &str, at: &Location, vars: &BTreeMap<String, String>) -> Result<String, LoadError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find("${") {
        if rest[..pos].ends_with('$') {
            out.push_str(&rest[..pos - 1]);
            out.push_str("${");
            rest = &rest[pos + 2..];
            continue;
        }
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[pos..]);
            return Ok(out);
        };
        let name = &after[..end];
        match vars.get(name) {
            Some(v) => out.push_str(v),
            None => {
                return Err(LoadError::UnknownVariable {
                    at: at.clone(),
                    variable: name.to_string(),
                    path: if path.is_empty() { ".".into() } else { path.to_string() },
                    known: vars.keys().cloned().collect::<Vec<_>>().join(", "),
                });
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &str) -> SourceFile {
        SourceFile { path: path.into(), content: content.as_bytes().to_vec() }
    }

    fn vars() -> BTreeMap<String, String> {
        [("namespace", "shop-prod"), ("factory", "shop")].into_iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn documents_keep_their_file_and_line() {
        let text = "# roles\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: \"${namespace}\"}\n";
        let m = load(&[file("env/cm.yaml", text), file("README.md", "not yaml: [")], &vars()).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].line, m[0].document, m[0].name()), (1, 1, "a"));
        assert_eq!((m[1].line, m[1].document, m[1].namespace()), (8, 2, Some("shop-prod")));
        assert_eq!(m[1].to_string(), "ConfigMap shop-prod/b (env/cm.yaml:8 (document 2))");
    }

    #[test]
    fn yaml_errors_name_file_and_absolute_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: [unclosed\n";
        let errors = load(&[file("bad.yaml", text)], &vars()).unwrap_err();
        assert_eq!(errors.len(), 1);
        let LoadError::Yaml { at, .. } = &errors[0] else { panic!("{errors:?}") };
        assert_eq!((at.file.as_str(), at.document), ("bad.yaml", 2));
        assert!(at.line >= 6, "{at}");
    }

    #[test]
    fn unknown_variables_are_errors_and_escapes_stay_literal() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {x: \"${nope}\"}\n";
        let errors = load(&[file("v.yaml", text)], &vars()).unwrap_err();
        assert!(errors[0].to_string().contains("unknown variable ${nope} at .data.x"), "{}", errors[0]);
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {x: \"$${HOME} ${factory}\"}\n";
        let m = load(&[file("v.yaml", text)], &vars()).unwrap();
        assert_eq!(m[0].object["data"]["x"], "${HOME} shop");
    }

    #[test]
    fn documents_that_are_not_objects_are_errors() {
        for (text, why) in
            [("- a\n- b\n", "not a mapping"), ("kind: X\nmetadata: {name: a}\n", "apiVersion is missing")]
        {
            let errors = load(&[file("x.yaml", text)], &vars()).unwrap_err();
            assert!(errors[0].to_string().contains(why), "{}", errors[0]);
        }
    }

    #[test]
    fn lists_expand_to_their_items() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n";
        assert_eq!(load(&[file("l.yaml", text)], &vars()).unwrap().len(), 2);
    }

    #[test]
    fn a_yaml_bomb_fails_instead_of_expanding() {
        let mut text = String::from(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\nx0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for i in 1..12 {
            let prev = i - 1;
            text.push_str(&format!(
                "x{i}: &a{i} [*a{prev},*a{prev},*a{prev},*a{prev},*a{prev},*a{prev},*a{prev},*a{prev},*a{prev}]\n"
            ));
        }
        let errors = load(&[file("bomb.yaml", &text)], &vars()).unwrap_err();
        assert!(errors[0].to_string().contains("repetition limit exceeded"), "{}", errors[0]);
    }
}
