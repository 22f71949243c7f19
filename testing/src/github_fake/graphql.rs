//! `POST /graphql`: a small reader for the queries a client sends (operations, aliased
//! fields with arguments, variables, inline fragments, named fragments, `@skip`/`@include`)
//! and an executor over the model for the part of GitHub's schema the controller reads:
//! `repository { … defaultBranchRef { target } object(expression:) … }` and `rateLimit`.
//! It is not a general GraphQL server: there is no schema validation beyond unknown fields.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::render;
use super::rest::Reply;
use super::sha1;
use super::state::{Commit, Repo, State, epoch_rfc3339};

/// GitHub bounds a query's size by its node count; the fake holds the controller to the
/// batch size it promises (at most 100 repositories per query).
pub(super) const MAX_REPOSITORIES: usize = 100;

const DOCS: &str = "https://docs.github.com/graphql";

pub(super) fn handle(state: &mut State, body: &[u8]) -> Reply {
    let request: Value = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Value::Object(map),
        _ => return Reply::error(400, "Problems parsing JSON", DOCS),
    };
    let Some(query) = request.get("query").and_then(Value::as_str) else {
        return errors(vec![
            json!({"message": "A query attribute must be specified and must be a string."}),
        ]);
    };
    let document = match parse(query) {
        Ok(document) => document,
        Err(error) => return errors(vec![error.to_json()]),
    };
    let operation_name = request.get("operationName").and_then(Value::as_str);
    let operation = match operation_name {
        Some(name) => document
            .operations
            .iter()
            .find(|o| o.name.as_deref() == Some(name)),
        None if document.operations.len() == 1 => document.operations.first(),
        None => None,
    };
    let Some(operation) = operation else {
        let message = match operation_name {
            Some(name) => format!("No operation named \"{name}\""),
            None => "An operation name is required".to_string(),
        };
        return errors(vec![json!({"message": message})]);
    };
    if operation.kind != "query" {
        return errors(vec![
            json!({"message": format!("This fake serves queries only, not {}s", operation.kind)}),
        ]);
    }

    let mut variables = operation.variable_defaults.clone();
    if let Some(given) = request.get("variables").and_then(Value::as_object) {
        variables.extend(given.clone());
    }

    let repositories = count_repositories(&document, &operation.selections);
    state.graphql_batches.push(repositories);
    if repositories > MAX_REPOSITORIES {
        return errors(vec![json!({
            "type": "MAX_NODE_LIMIT_EXCEEDED",
            "message": format!(
                "This query requests {repositories} repositories, which exceeds the maximum limit of {MAX_REPOSITORIES}."
            ),
        })]);
    }

    let mut executor = Executor {
        state,
        document: &document,
        variables: &variables,
        repositories,
        errors: Vec::new(),
        invalid: Vec::new(),
    };
    let mut path = Vec::new();
    let data = executor.selection_set(&Node::Query, &operation.selections, &mut path);
    if !executor.invalid.is_empty() {
        return errors(executor.invalid);
    }
    let mut out = Map::new();
    out.insert("data".into(), data);
    if !executor.errors.is_empty() {
        out.insert("errors".into(), Value::Array(executor.errors));
    }
    Reply::ok(Value::Object(out))
}

/// GraphQL answers errors with 200 and an `errors` array.
fn errors(errors: Vec<Value>) -> Reply {
    Reply::ok(json!({ "errors": errors }))
}

/// The number of `repository` fields at the top of the operation.
fn count_repositories(document: &Document, selections: &[Selection]) -> usize {
    selections
        .iter()
        .map(|s| match s {
            Selection::Field(f) => usize::from(f.name == "repository"),
            Selection::Inline { selections, .. } => count_repositories(document, selections),
            Selection::Spread { name, .. } => document
                .fragments
                .get(name)
                .map_or(0, |f| count_repositories(document, &f.selections)),
        })
        .sum()
}

// --- Tokens --------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Str(String),
    Int(String),
    Float(String),
    Punct(char),
    Spread,
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
    column: usize,
}

#[derive(Debug)]
struct ParseError {
    message: String,
    line: usize,
    column: usize,
}

impl ParseError {
    fn to_json(&self) -> Value {
        json!({
            "message": self.message,
            "locations": [{"line": self.line, "column": self.column}],
        })
    }
}

fn tokenize(source: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = source.chars().collect();
    let (mut i, mut line, mut line_start) = (0usize, 1usize, 0usize);
    let mut tokens = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        let column = i - line_start + 1;
        let error = |message: String| ParseError {
            message,
            line,
            column,
        };
        match c {
            '\n' => {
                i += 1;
                line += 1;
                line_start = i;
            }
            c if c.is_whitespace() || c == ',' || c == '\u{feff}' => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '"' if chars.get(i + 1) == Some(&'"') && chars.get(i + 2) == Some(&'"') => {
                let start = i + 3;
                let mut end = start;
                while end + 2 < chars.len()
                    && !(chars[end] == '"' && chars[end + 1] == '"' && chars[end + 2] == '"')
                {
                    end += 1;
                }
                if end + 2 >= chars.len() {
                    return Err(error("Unterminated block string".to_string()));
                }
                let text: String = chars[start..end].iter().collect();
                line += text.matches('\n').count();
                tokens.push(Token {
                    tok: Tok::Str(text.trim().to_string()),
                    line,
                    column,
                });
                i = end + 3;
            }
            '"' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None | Some('\n') => return Err(error("Unterminated string".to_string())),
                        Some('"') => break,
                        Some('\\') => {
                            let escaped = chars.get(i + 1).copied().unwrap_or('\\');
                            i += 2;
                            match escaped {
                                'n' => text.push('\n'),
                                't' => text.push('\t'),
                                'r' => text.push('\r'),
                                'b' => text.push('\u{8}'),
                                'f' => text.push('\u{c}'),
                                'u' => {
                                    let hex: String = chars.iter().skip(i).take(4).collect();
                                    let decoded = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                                    text.push(
                                        decoded
                                            .ok_or_else(|| error(format!("Bad unicode escape \\u{hex}")))?,
                                    );
                                    i += 4;
                                }
                                other => text.push(other),
                            }
                        }
                        Some(&other) => {
                            text.push(other);
                            i += 1;
                        }
                    }
                }
                i += 1;
                tokens.push(Token {
                    tok: Tok::Str(text),
                    line,
                    column,
                });
            }
            '.' => {
                if chars.get(i + 1) == Some(&'.') && chars.get(i + 2) == Some(&'.') {
                    tokens.push(Token {
                        tok: Tok::Spread,
                        line,
                        column,
                    });
                    i += 3;
                } else {
                    return Err(error("Parse error on \".\"".to_string()));
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                tokens.push(Token {
                    tok: Tok::Name(chars[start..i].iter().collect()),
                    line,
                    column,
                });
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || ".eE+-".contains(chars[i])) {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let tok = if text.contains(['.', 'e', 'E']) {
                    Tok::Float(text)
                } else {
                    Tok::Int(text)
                };
                tokens.push(Token { tok, line, column });
            }
            c if "!$&()[]{}:=@|".contains(c) => {
                tokens.push(Token {
                    tok: Tok::Punct(c),
                    line,
                    column,
                });
                i += 1;
            }
            other => return Err(error(format!("Parse error on \"{other}\""))),
        }
    }
    let column = chars.len() - line_start + 1;
    tokens.push(Token {
        tok: Tok::End,
        line,
        column,
    });
    Ok(tokens)
}

// --- Document ------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Document {
    operations: Vec<Operation>,
    fragments: HashMap<String, Fragment>,
}

#[derive(Debug)]
struct Operation {
    kind: String,
    name: Option<String>,
    variable_defaults: Map<String, Value>,
    selections: Vec<Selection>,
}

#[derive(Debug)]
struct Fragment {
    type_condition: String,
    selections: Vec<Selection>,
}

#[derive(Debug)]
enum Selection {
    Field(Field),
    Inline {
        type_condition: Option<String>,
        directives: Vec<Directive>,
        selections: Vec<Selection>,
    },
    Spread {
        name: String,
        directives: Vec<Directive>,
    },
}

#[derive(Debug)]
struct Field {
    alias: Option<String>,
    name: String,
    arguments: Vec<(String, Arg)>,
    directives: Vec<Directive>,
    selections: Vec<Selection>,
    line: usize,
    column: usize,
}

impl Field {
    fn key(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }

    fn location(&self) -> Value {
        json!([{"line": self.line, "column": self.column}])
    }
}

#[derive(Debug)]
struct Directive {
    name: String,
    arguments: Vec<(String, Arg)>,
}

/// An argument value, with variables still unresolved.
#[derive(Debug, Clone)]
enum Arg {
    Variable(String),
    Const(Value),
    List(Vec<Arg>),
    Object(Vec<(String, Arg)>),
}

impl Arg {
    fn resolve(&self, variables: &Map<String, Value>) -> Value {
        match self {
            Arg::Variable(name) => variables.get(name).cloned().unwrap_or(Value::Null),
            Arg::Const(value) => value.clone(),
            Arg::List(items) => Value::Array(items.iter().map(|a| a.resolve(variables)).collect()),
            Arg::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, a)| (k.clone(), a.resolve(variables)))
                    .collect(),
            ),
        }
    }
}

fn parse(source: &str) -> Result<Document, ParseError> {
    let mut parser = Parser {
        tokens: tokenize(source)?,
        pos: 0,
    };
    let mut document = Document::default();
    while parser.peek().tok != Tok::End {
        match parser.peek().tok.clone() {
            Tok::Punct('{') => {
                let selections = parser.selection_set()?;
                document.operations.push(Operation {
                    kind: "query".to_string(),
                    name: None,
                    variable_defaults: Map::new(),
                    selections,
                });
            }
            Tok::Name(word) if word == "fragment" => {
                parser.next();
                let name = parser.name()?;
                parser.keyword("on")?;
                let type_condition = parser.name()?;
                parser.directives()?;
                let selections = parser.selection_set()?;
                document.fragments.insert(
                    name,
                    Fragment {
                        type_condition,
                        selections,
                    },
                );
            }
            Tok::Name(kind) if ["query", "mutation", "subscription"].contains(&kind.as_str()) => {
                parser.next();
                let name = match parser.peek().tok.clone() {
                    Tok::Name(name) => {
                        parser.next();
                        Some(name)
                    }
                    _ => None,
                };
                let variable_defaults = parser.variable_definitions()?;
                parser.directives()?;
                let selections = parser.selection_set()?;
                document.operations.push(Operation {
                    kind,
                    name,
                    variable_defaults,
                    selections,
                });
            }
            _ => return Err(parser.unexpected()),
        }
    }
    Ok(document)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        // `tokenize` always ends the list with `End`, which is never consumed.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        if token.tok != Tok::End {
            self.pos += 1;
        }
        token
    }

    fn unexpected(&self) -> ParseError {
        let token = self.peek();
        let text = match &token.tok {
            Tok::Name(s) | Tok::Int(s) | Tok::Float(s) => s.clone(),
            Tok::Str(s) => format!("\\\"{s}\\\""),
            Tok::Punct(c) => c.to_string(),
            Tok::Spread => "...".to_string(),
            Tok::End => "end of file".to_string(),
        };
        ParseError {
            message: format!("Parse error on \"{text}\" at [{}, {}]", token.line, token.column),
            line: token.line,
            column: token.column,
        }
    }

    fn at_punct(&self, c: char) -> bool {
        self.peek().tok == Tok::Punct(c)
    }

    fn punct(&mut self, c: char) -> Result<(), ParseError> {
        if self.at_punct(c) {
            self.next();
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn name(&mut self) -> Result<String, ParseError> {
        match self.peek().tok.clone() {
            Tok::Name(name) => {
                self.next();
                Ok(name)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn keyword(&mut self, word: &str) -> Result<(), ParseError> {
        match &self.peek().tok {
            Tok::Name(name) if name == word => {
                self.next();
                Ok(())
            }
            _ => Err(self.unexpected()),
        }
    }

    /// `($a: Type = default, …)`; returns the defaults.
    fn variable_definitions(&mut self) -> Result<Map<String, Value>, ParseError> {
        let mut defaults = Map::new();
        if !self.at_punct('(') {
            return Ok(defaults);
        }
        self.next();
        while !self.at_punct(')') {
            self.punct('$')?;
            let name = self.name()?;
            self.punct(':')?;
            self.type_reference()?;
            if self.at_punct('=') {
                self.next();
                defaults.insert(name, self.value()?.resolve(&Map::new()));
            }
            self.directives()?;
        }
        self.next();
        Ok(defaults)
    }

    fn type_reference(&mut self) -> Result<(), ParseError> {
        if self.at_punct('[') {
            self.next();
            self.type_reference()?;
            self.punct(']')?;
        } else {
            self.name()?;
        }
        if self.at_punct('!') {
            self.next();
        }
        Ok(())
    }

    fn directives(&mut self) -> Result<Vec<Directive>, ParseError> {
        let mut directives = Vec::new();
        while self.at_punct('@') {
            self.next();
            let name = self.name()?;
            let arguments = self.arguments()?;
            directives.push(Directive { name, arguments });
        }
        Ok(directives)
    }

    fn arguments(&mut self) -> Result<Vec<(String, Arg)>, ParseError> {
        let mut arguments = Vec::new();
        if !self.at_punct('(') {
            return Ok(arguments);
        }
        self.next();
        while !self.at_punct(')') {
            let name = self.name()?;
            self.punct(':')?;
            arguments.push((name, self.value()?));
        }
        self.next();
        Ok(arguments)
    }

    fn value(&mut self) -> Result<Arg, ParseError> {
        let token = self.peek().clone();
        let value = match token.tok {
            Tok::Punct('$') => {
                self.next();
                return Ok(Arg::Variable(self.name()?));
            }
            Tok::Punct('[') => {
                self.next();
                let mut items = Vec::new();
                while !self.at_punct(']') {
                    items.push(self.value()?);
                }
                self.next();
                return Ok(Arg::List(items));
            }
            Tok::Punct('{') => {
                self.next();
                let mut fields = Vec::new();
                while !self.at_punct('}') {
                    let name = self.name()?;
                    self.punct(':')?;
                    fields.push((name, self.value()?));
                }
                self.next();
                return Ok(Arg::Object(fields));
            }
            Tok::Str(s) => Value::String(s),
            Tok::Int(s) => s.parse::<i64>().map(Value::from).map_err(|_| self.unexpected())?,
            Tok::Float(s) => s.parse::<f64>().map(Value::from).map_err(|_| self.unexpected())?,
            Tok::Name(n) if n == "true" => Value::Bool(true),
            Tok::Name(n) if n == "false" => Value::Bool(false),
            Tok::Name(n) if n == "null" => Value::Null,
            Tok::Name(enum_value) => Value::String(enum_value),
            _ => return Err(self.unexpected()),
        };
        self.next();
        Ok(Arg::Const(value))
    }

    fn selection_set(&mut self) -> Result<Vec<Selection>, ParseError> {
        self.punct('{')?;
        let mut selections = Vec::new();
        while !self.at_punct('}') {
            selections.push(self.selection()?);
        }
        self.next();
        if selections.is_empty() {
            return Err(self.unexpected());
        }
        Ok(selections)
    }

    fn selection(&mut self) -> Result<Selection, ParseError> {
        if self.peek().tok == Tok::Spread {
            self.next();
            return match self.peek().tok.clone() {
                Tok::Name(word) if word == "on" => {
                    self.next();
                    let type_condition = Some(self.name()?);
                    let directives = self.directives()?;
                    let selections = self.selection_set()?;
                    Ok(Selection::Inline {
                        type_condition,
                        directives,
                        selections,
                    })
                }
                Tok::Name(name) => {
                    self.next();
                    let directives = self.directives()?;
                    Ok(Selection::Spread { name, directives })
                }
                _ => {
                    let directives = self.directives()?;
                    let selections = self.selection_set()?;
                    Ok(Selection::Inline {
                        type_condition: None,
                        directives,
                        selections,
                    })
                }
            };
        }
        let start = self.peek().clone();
        let mut name = self.name()?;
        let mut alias = None;
        if self.at_punct(':') {
            self.next();
            alias = Some(name);
            name = self.name()?;
        }
        let arguments = self.arguments()?;
        let directives = self.directives()?;
        let selections = if self.at_punct('{') {
            self.selection_set()?
        } else {
            Vec::new()
        };
        Ok(Selection::Field(Field {
            alias,
            name,
            arguments,
            directives,
            selections,
            line: start.line,
            column: start.column,
        }))
    }
}

// --- Execution -----------------------------------------------------------------------

/// A value of an object type of GitHub's schema, pointing into the model.
#[derive(Clone)]
enum Node<'a> {
    Query,
    RateLimit,
    Repository(&'a Repo),
    Owner(&'a Repo),
    /// A branch.
    Ref(&'a Repo, String),
    Commit(&'a Repo, &'a Commit),
    Blob(&'a [u8]),
    Tree(&'a Repo, &'a Commit, String),
    TreeEntry(&'a Repo, &'a Commit, String),
}

impl Node<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Node::Query => "Query",
            Node::RateLimit => "RateLimit",
            Node::Repository(_) => "Repository",
            Node::Owner(_) => "Organization",
            Node::Ref(..) => "Ref",
            Node::Commit(..) => "Commit",
            Node::Blob(_) => "Blob",
            Node::Tree(..) => "Tree",
            Node::TreeEntry(..) => "TreeEntry",
        }
    }

    /// Whether a fragment on `condition` applies (the type itself or an interface of it).
    fn is_a(&self, condition: &str) -> bool {
        let type_name = self.type_name();
        condition == type_name
            || match condition {
                "GitObject" => matches!(self, Node::Commit(..) | Node::Blob(_) | Node::Tree(..)),
                "Node" => !matches!(self, Node::Query | Node::RateLimit | Node::TreeEntry(..)),
                "RepositoryOwner" | "Actor" => matches!(self, Node::Owner(_)),
                "RepositoryInfo" => matches!(self, Node::Repository(_)),
                _ => false,
            }
    }
}

/// What a field resolves to.
enum Resolved<'a> {
    Leaf(Value),
    Object(Node<'a>),
    List(Vec<Node<'a>>),
    Null,
    /// The field does not exist on the type.
    Unknown,
}

struct Executor<'a> {
    state: &'a State,
    document: &'a Document,
    variables: &'a Map<String, Value>,
    repositories: usize,
    /// Execution errors, reported beside `data`.
    errors: Vec<Value>,
    /// Validation errors: the query is refused as a whole.
    invalid: Vec<Value>,
}

impl<'a> Executor<'a> {
    fn selection_set(
        &mut self,
        node: &Node<'a>,
        selections: &'a [Selection],
        path: &mut Vec<Value>,
    ) -> Value {
        let mut fields = Vec::new();
        self.collect_fields(node, selections, &mut fields);
        let mut out = Map::new();
        for field in fields {
            path.push(json!(field.key()));
            let value = self.field(node, field, path);
            out.insert(field.key().to_string(), value);
            path.pop();
        }
        Value::Object(out)
    }

    /// The fields that apply to `node`, through fragments and `@skip`/`@include`.
    fn collect_fields(&self, node: &Node, selections: &'a [Selection], out: &mut Vec<&'a Field>) {
        for selection in selections {
            match selection {
                Selection::Field(field) if self.included(&field.directives) => out.push(field),
                Selection::Field(_) => {}
                Selection::Inline {
                    type_condition,
                    directives,
                    selections,
                } => {
                    if self.included(directives) && type_condition.as_deref().is_none_or(|t| node.is_a(t)) {
                        self.collect_fields(node, selections, out);
                    }
                }
                Selection::Spread { name, directives } => {
                    if let Some(fragment) = self.document.fragments.get(name)
                        && self.included(directives)
                        && node.is_a(&fragment.type_condition)
                    {
                        self.collect_fields(node, &fragment.selections, out);
                    }
                }
            }
        }
    }

    fn included(&self, directives: &[Directive]) -> bool {
        directives.iter().all(|d| {
            let condition = d
                .arguments
                .iter()
                .find(|(name, _)| name == "if")
                .map(|(_, arg)| arg.resolve(self.variables))
                .and_then(|v| v.as_bool());
            match (d.name.as_str(), condition) {
                ("skip", Some(skip)) => !skip,
                ("include", Some(include)) => include,
                _ => true,
            }
        })
    }

    fn argument(&self, field: &Field, name: &str) -> Option<Value> {
        field
            .arguments
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, arg)| arg.resolve(self.variables))
            .filter(|v| !v.is_null())
    }

    fn string_argument(&self, field: &Field, name: &str) -> Option<String> {
        self.argument(field, name)
            .and_then(|v| v.as_str().map(str::to_string))
    }

    fn field(&mut self, node: &Node<'a>, field: &'a Field, path: &mut Vec<Value>) -> Value {
        if field.name == "__typename" {
            return json!(node.type_name());
        }
        match self.resolve(node, field, path) {
            Resolved::Leaf(value) => value,
            Resolved::Null => Value::Null,
            Resolved::Object(child) => self.selection_set(&child, &field.selections, path),
            Resolved::List(children) => Value::Array(
                children
                    .iter()
                    .enumerate()
                    .map(|(i, child)| {
                        path.push(json!(i));
                        let value = self.selection_set(child, &field.selections, path);
                        path.pop();
                        value
                    })
                    .collect(),
            ),
            Resolved::Unknown => {
                let type_name = node.type_name();
                let mut error_path = vec![json!("query")];
                error_path.extend(path.iter().cloned());
                self.invalid.push(json!({
                    "path": error_path,
                    "extensions": {"code": "undefinedField", "typeName": type_name, "fieldName": field.name},
                    "locations": field.location(),
                    "message": format!("Field '{}' doesn't exist on type '{type_name}'", field.name),
                }));
                Value::Null
            }
        }
    }

    fn resolve(&mut self, node: &Node<'a>, field: &'a Field, path: &[Value]) -> Resolved<'a> {
        let state = self.state;
        match node {
            Node::Query => match field.name.as_str() {
                "repository" => {
                    let (Some(owner), Some(name)) = (
                        self.string_argument(field, "owner"),
                        self.string_argument(field, "name"),
                    ) else {
                        self.invalid.push(json!({
                            "message": "Field 'repository' is missing required arguments: owner, name",
                            "locations": field.location(),
                            "extensions": {"code": "missingRequiredArguments", "className": "Field", "name": "repository"},
                        }));
                        return Resolved::Null;
                    };
                    match state.repos.get(&format!("{owner}/{name}").to_ascii_lowercase()) {
                        Some(repo) => Resolved::Object(Node::Repository(repo)),
                        None => {
                            self.errors.push(json!({
                                "type": "NOT_FOUND",
                                "path": path,
                                "locations": field.location(),
                                "message": format!("Could not resolve to a Repository with the name '{owner}/{name}'."),
                            }));
                            Resolved::Null
                        }
                    }
                }
                "rateLimit" => Resolved::Object(Node::RateLimit),
                _ => Resolved::Unknown,
            },
            Node::RateLimit => {
                // This query's cost (1 point) is already counted, as GitHub reports it.
                let budget = state.budgets.graphql;
                let used = (budget.used + 1).min(budget.limit);
                Resolved::Leaf(match field.name.as_str() {
                    "cost" => json!(1),
                    "limit" => json!(budget.limit),
                    "used" => json!(used),
                    "remaining" => json!(budget.limit - used),
                    "resetAt" => json!(epoch_rfc3339(state.budgets.reset)),
                    "nodeCount" => json!(self.repositories),
                    _ => return Resolved::Unknown,
                })
            }
            Node::Repository(repo) => match field.name.as_str() {
                "id" => Resolved::Leaf(json!(render::node_id("Repository", repo.id))),
                "databaseId" => Resolved::Leaf(json!(repo.id)),
                "name" => Resolved::Leaf(json!(repo.name)),
                "nameWithOwner" => Resolved::Leaf(json!(repo.full_name())),
                "owner" => Resolved::Object(Node::Owner(repo)),
                "isArchived" => Resolved::Leaf(json!(repo.archived)),
                "isPrivate" => Resolved::Leaf(json!(repo.private)),
                "isDisabled" | "isFork" | "isEmpty" | "isLocked" => Resolved::Leaf(json!(false)),
                "visibility" => Resolved::Leaf(json!(if repo.private { "PRIVATE" } else { "PUBLIC" })),
                "url" => Resolved::Leaf(json!(repo.html_url())),
                "createdAt" => Resolved::Leaf(json!(repo.created_at)),
                "pushedAt" | "updatedAt" => Resolved::Leaf(json!(repo.pushed_at)),
                "defaultBranchRef" => match repo.branches.contains_key(&repo.default_branch) {
                    true => Resolved::Object(Node::Ref(repo, repo.default_branch.clone())),
                    false => Resolved::Null,
                },
                "ref" => {
                    let qualified = self.string_argument(field, "qualifiedName").unwrap_or_default();
                    let branch = qualified.strip_prefix("refs/heads/").unwrap_or(&qualified);
                    match repo.branches.contains_key(branch) {
                        true => Resolved::Object(Node::Ref(repo, branch.to_string())),
                        false => Resolved::Null,
                    }
                }
                "object" => {
                    if let Some(oid) = self.string_argument(field, "oid") {
                        return repo
                            .commits
                            .get(&oid)
                            .map_or(Resolved::Null, |c| Resolved::Object(Node::Commit(repo, c)));
                    }
                    let expression = self.string_argument(field, "expression").unwrap_or_default();
                    object_at(repo, &expression)
                }
                _ => Resolved::Unknown,
            },
            Node::Owner(repo) => Resolved::Leaf(match field.name.as_str() {
                "login" => json!(repo.owner),
                "id" => json!(render::node_id("Organization", 1)),
                "url" => json!(format!("https://github.com/{}", repo.owner)),
                _ => return Resolved::Unknown,
            }),
            Node::Ref(repo, branch) => match field.name.as_str() {
                "name" => Resolved::Leaf(json!(branch)),
                "prefix" => Resolved::Leaf(json!("refs/heads/")),
                "id" => Resolved::Leaf(json!(render::node_id("Ref", repo.id))),
                "target" => repo
                    .branch_head(branch)
                    .map_or(Resolved::Null, |c| Resolved::Object(Node::Commit(repo, c))),
                _ => Resolved::Unknown,
            },
            Node::Commit(repo, commit) => match field.name.as_str() {
                "oid" => Resolved::Leaf(json!(commit.sha)),
                "abbreviatedOid" => Resolved::Leaf(json!(commit.sha[..7])),
                "message" => Resolved::Leaf(json!(commit.message)),
                "messageHeadline" => Resolved::Leaf(json!(commit.message.lines().next().unwrap_or_default())),
                "committedDate" | "authoredDate" => Resolved::Leaf(json!(commit.date)),
                "url" => Resolved::Leaf(json!(format!("{}/commit/{}", repo.html_url(), commit.sha))),
                "tree" => Resolved::Object(Node::Tree(repo, commit, String::new())),
                _ => Resolved::Unknown,
            },
            Node::Blob(bytes) => Resolved::Leaf(match field.name.as_str() {
                "oid" => json!(sha1::git_blob(bytes)),
                "abbreviatedOid" => json!(sha1::git_blob(bytes)[..7]),
                "text" => std::str::from_utf8(bytes).map_or(Value::Null, |t| json!(t)),
                "byteSize" => json!(bytes.len()),
                "isBinary" => json!(std::str::from_utf8(bytes).is_err()),
                "isTruncated" => json!(false),
                _ => return Resolved::Unknown,
            }),
            Node::Tree(repo, commit, dir) => match field.name.as_str() {
                "oid" => Resolved::Leaf(json!(sha1::hex(
                    format!("{} {dir}", commit.tree_sha()).as_bytes()
                ))),
                "entries" => Resolved::List(
                    commit
                        .children(dir)
                        .into_iter()
                        .map(|(name, _)| {
                            let child = if dir.is_empty() {
                                name
                            } else {
                                format!("{dir}/{name}")
                            };
                            Node::TreeEntry(repo, commit, child)
                        })
                        .collect(),
                ),
                _ => Resolved::Unknown,
            },
            Node::TreeEntry(repo, commit, entry_path) => {
                let blob = commit.tree.get(entry_path.as_str());
                match field.name.as_str() {
                    "name" => Resolved::Leaf(json!(entry_path.rsplit('/').next().unwrap_or(entry_path))),
                    "path" => Resolved::Leaf(json!(entry_path)),
                    "type" => Resolved::Leaf(json!(if blob.is_some() { "blob" } else { "tree" })),
                    "mode" => Resolved::Leaf(json!(if blob.is_some() { 33188 } else { 16384 })),
                    "oid" => Resolved::Leaf(json!(match blob {
                        Some(bytes) => sha1::git_blob(bytes),
                        None => sha1::hex(format!("{} {entry_path}", commit.tree_sha()).as_bytes()),
                    })),
                    "object" => Resolved::Object(match blob {
                        Some(bytes) => Node::Blob(bytes),
                        None => Node::Tree(repo, commit, entry_path.clone()),
                    }),
                    _ => Resolved::Unknown,
                }
            }
        }
    }
}

/// `Repository.object(expression:)`: `rev` (a commit) or `rev:path` (a blob or tree), where
/// `rev` is `HEAD` (the default branch), a branch or a sha.
fn object_at<'a>(repo: &'a Repo, expression: &str) -> Resolved<'a> {
    let (rev, file) = match expression.split_once(':') {
        Some((rev, file)) => (rev, Some(file.trim_matches('/'))),
        None => (expression, None),
    };
    let Some(commit) = repo.resolve(rev) else {
        return Resolved::Null;
    };
    match file {
        None => Resolved::Object(Node::Commit(repo, commit)),
        Some("") => Resolved::Object(Node::Tree(repo, commit, String::new())),
        Some(path) => match commit.tree.get(path) {
            Some(bytes) => Resolved::Object(Node::Blob(bytes)),
            None if commit.is_dir(path) => Resolved::Object(Node::Tree(repo, commit, path.to_string())),
            None => Resolved::Null,
        },
    }
}
