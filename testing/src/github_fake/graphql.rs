//! `POST /graphql`: a small reader for the queries a client sends (operations, aliased
//! fields with arguments, variables, inline fragments, named fragments, `@skip`/`@include`)
//! and an executor over the model for the part of GitHub's schema the controller reads:
//! `repository { … defaultBranchRef { target } object(expression:) … }`, an organization's
//! repositories (`organization(login:) { repositories(first:, after:) }`, by name, with
//! topics) and `rateLimit`.
//! It is not a general GraphQL server: there is no schema validation beyond unknown fields.

use std::collections::HashMap;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::render;
use super::rest::Reply;
use super::sha1;
use super::state::{Commit, Repo, State, epoch_rfc3339};

/// GitHub bounds a query's size by its node count; the fake holds the controller to the
/// batch size it promises (at most 100 repositories per query). An organization's
/// `repositories` page counts as its `first`: the node limit is computed from the query,
/// before anything is read, so a short last page counts as a full one.
pub(super) const MAX_REPOSITORIES: usize = 100;

/// The most records one page of any connection returns (`first`/`last`).
const MAX_PAGE: u64 = 100;

/// Cursors are opaque to clients: base64 of this prefix and the last name returned.
const CURSOR_PREFIX: &str = "cursor:v2:";

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

    let repositories = count_repositories(&document, &operation.selections, &variables);
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

/// The repositories the operation asks for: one per `repository` field at its top, and the
/// `first` of each `repositories` page of an `organization` there (at most 100, beyond
/// which the executor refuses the page as GitHub does).
fn count_repositories(
    document: &Document,
    selections: &[Selection],
    variables: &Map<String, Value>,
) -> usize {
    fields(document, selections)
        .into_iter()
        .map(|f| match f.name.as_str() {
            "repository" => 1,
            "organization" => fields(document, &f.selections)
                .into_iter()
                .filter(|page| page.name == "repositories")
                .filter_map(|page| {
                    let (_, first) = page.arguments.iter().find(|(name, _)| name == "first")?;
                    first.resolve(variables).as_u64()
                })
                .map(|first| first.min(MAX_PAGE) as usize)
                .sum(),
            _ => 0,
        })
        .sum()
}

/// The fields of a selection set through its fragments, whatever their conditions: the
/// node count is computed from the query as written.
fn fields<'d>(document: &'d Document, selections: &'d [Selection]) -> Vec<&'d Field> {
    let mut out = Vec::new();
    for selection in selections {
        match selection {
            Selection::Field(f) => out.push(f),
            Selection::Inline { selections, .. } => out.extend(fields(document, selections)),
            Selection::Spread { name, .. } => {
                if let Some(fragment) = document.fragments.get(name) {
                    out.extend(fields(document, &fragment.selections));
                }
            }
        }
    }
    out
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
    /// One page of an organization's repositories, and how many there are in all.
    Repositories {
        page: Vec<&'a Repo>,
        total: usize,
        has_next: bool,
        has_previous: bool,
    },
    RepositoryEdge(&'a Repo),
    PageInfo {
        start: Option<String>,
        end: Option<String>,
        has_next: bool,
        has_previous: bool,
    },
    /// The first `n` topics of a repository.
    Topics(&'a Repo, usize),
    RepositoryTopic(&'a Repo, &'a str),
    Topic(&'a str),
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
            Node::Repositories { .. } => "RepositoryConnection",
            Node::RepositoryEdge(_) => "RepositoryEdge",
            Node::PageInfo { .. } => "PageInfo",
            Node::Topics(..) => "RepositoryTopicConnection",
            Node::RepositoryTopic(..) => "RepositoryTopic",
            Node::Topic(_) => "Topic",
        }
    }

    /// Whether a fragment on `condition` applies (the type itself or an interface of it).
    fn is_a(&self, condition: &str) -> bool {
        let type_name = self.type_name();
        condition == type_name
            || match condition {
                "GitObject" => matches!(self, Node::Commit(..) | Node::Blob(_) | Node::Tree(..)),
                "Node" => matches!(
                    self,
                    Node::Repository(_)
                        | Node::Owner(_)
                        | Node::Ref(..)
                        | Node::Commit(..)
                        | Node::Blob(_)
                        | Node::Tree(..)
                        | Node::RepositoryTopic(..)
                        | Node::Topic(_)
                ),
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

    /// The page size of a connection: `first`, at most 100, as GitHub requires it. A missing
    /// or excessive one refuses the whole query (GitHub checks it before executing).
    fn page_size(&mut self, field: &Field, path: &[Value]) -> Option<usize> {
        let connection = &field.name;
        // Checked on the query as written: the path without list indexes, reported once.
        let path: Vec<Value> = path.iter().filter(|p| p.is_string()).cloned().collect();
        let refusal = if self.argument(field, "last").is_some() || self.argument(field, "before").is_some() {
            json!({"message": format!("This fake pages `{connection}` forward only (`first` and `after`)")})
        } else {
            match self.argument(field, "first").and_then(|v| v.as_i64()) {
                Some(first) if (0..=MAX_PAGE as i64).contains(&first) => return Some(first as usize),
                Some(first) if first < 0 => json!({
                    "message": format!("`first` on the `{connection}` connection cannot be less than zero."),
                }),
                Some(first) => json!({
                    "type": "EXCESSIVE_PAGINATION",
                    "message": format!(
                        "Requesting {first} records on the `{connection}` connection exceeds the `first` limit of {MAX_PAGE} records."
                    ),
                }),
                None => json!({
                    "type": "MISSING_PAGINATION_BOUNDARIES",
                    "message": format!(
                        "You must provide a `first` or `last` value to properly paginate the `{connection}` connection."
                    ),
                }),
            }
        };
        let mut refusal = refusal;
        if let Some(object) = refusal.as_object_mut() {
            object.insert("path".into(), Value::Array(path));
            object.insert("locations".into(), field.location());
        }
        if !self.invalid.contains(&refusal) {
            self.invalid.push(refusal);
        }
        None
    }

    /// `Organization.repositories`: the owner's repositories by name, `first` after the
    /// cursor, optionally only forks or not (`isFork`) and archived or not (`isArchived`).
    fn repositories(&mut self, owner: &str, field: &Field, path: &[Value]) -> Resolved<'a> {
        let Some(first) = self.page_size(field, path) else {
            return Resolved::Null;
        };
        let after = match self.string_argument(field, "after") {
            None => None,
            Some(given) => match from_cursor(&given) {
                Some(name) => Some(name),
                None => {
                    self.errors.push(json!({
                        "type": "INVALID_CURSOR_ARGUMENTS",
                        "path": path,
                        "locations": field.location(),
                        "message": format!("`{given}` does not appear to be a valid cursor."),
                    }));
                    return Resolved::Null;
                }
            },
        };
        let is_fork = self.argument(field, "isFork").and_then(|v| v.as_bool());
        let is_archived = self.argument(field, "isArchived").and_then(|v| v.as_bool());
        let owner = owner.to_ascii_lowercase();
        // The map is keyed by lowercase `owner/name`: one owner's repositories come by name.
        let all: Vec<&'a Repo> = self
            .state
            .repos
            .values()
            .filter(|r| r.owner.to_ascii_lowercase() == owner)
            .filter(|r| is_fork.is_none_or(|f| r.fork == f))
            .filter(|r| is_archived.is_none_or(|a| r.archived == a))
            .collect();
        // After the cursor's name, not its position: a repository added or deleted between
        // pages neither repeats nor skips another.
        let start = after.map_or(0, |after| {
            all.partition_point(|r| r.name.to_ascii_lowercase() <= after)
        });
        let end = (start + first).min(all.len());
        Resolved::Object(Node::Repositories {
            page: all[start..end].to_vec(),
            total: all.len(),
            has_next: end < all.len(),
            has_previous: start > 0,
        })
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
                "organization" => {
                    let Some(login) = self.string_argument(field, "login") else {
                        self.invalid.push(json!({
                            "message": "Field 'organization' is missing required arguments: login",
                            "locations": field.location(),
                            "extensions": {"code": "missingRequiredArguments", "className": "Field", "name": "organization"},
                        }));
                        return Resolved::Null;
                    };
                    // The fake's every owner is an organization: one exists while it owns a repository.
                    let lower = login.to_ascii_lowercase();
                    match state
                        .repos
                        .values()
                        .find(|r| r.owner.to_ascii_lowercase() == lower)
                    {
                        Some(repo) => Resolved::Object(Node::Owner(repo)),
                        None => {
                            self.errors.push(json!({
                                "type": "NOT_FOUND",
                                "path": path,
                                "locations": field.location(),
                                "message": format!("Could not resolve to an Organization with the login of '{login}'."),
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
                "isFork" => Resolved::Leaf(json!(repo.fork)),
                "isPrivate" => Resolved::Leaf(json!(repo.private)),
                "isDisabled" | "isEmpty" | "isLocked" => Resolved::Leaf(json!(false)),
                "repositoryTopics" => match self.page_size(field, path) {
                    Some(first) => Resolved::Object(Node::Topics(repo, first)),
                    None => Resolved::Null,
                },
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
                "repositories" => return self.repositories(&repo.owner, field, path),
                _ => return Resolved::Unknown,
            }),
            Node::Repositories {
                page,
                total,
                has_next,
                has_previous,
            } => match field.name.as_str() {
                "totalCount" => Resolved::Leaf(json!(total)),
                "nodes" => Resolved::List(page.iter().map(|r| Node::Repository(r)).collect()),
                "edges" => Resolved::List(page.iter().map(|r| Node::RepositoryEdge(r)).collect()),
                "pageInfo" => Resolved::Object(Node::PageInfo {
                    start: page.first().map(|r| cursor(r)),
                    end: page.last().map(|r| cursor(r)),
                    has_next: *has_next,
                    has_previous: *has_previous,
                }),
                _ => Resolved::Unknown,
            },
            Node::RepositoryEdge(repo) => match field.name.as_str() {
                "cursor" => Resolved::Leaf(json!(cursor(repo))),
                "node" => Resolved::Object(Node::Repository(repo)),
                _ => Resolved::Unknown,
            },
            Node::PageInfo {
                start,
                end,
                has_next,
                has_previous,
            } => Resolved::Leaf(match field.name.as_str() {
                "startCursor" => json!(start),
                "endCursor" => json!(end),
                "hasNextPage" => json!(has_next),
                "hasPreviousPage" => json!(has_previous),
                _ => return Resolved::Unknown,
            }),
            Node::Topics(repo, first) => match field.name.as_str() {
                "totalCount" => Resolved::Leaf(json!(repo.topics.len())),
                "nodes" => Resolved::List(
                    repo.topics
                        .iter()
                        .take(*first)
                        .map(|t| Node::RepositoryTopic(repo, t))
                        .collect(),
                ),
                _ => Resolved::Unknown,
            },
            Node::RepositoryTopic(repo, topic) => match field.name.as_str() {
                "id" => Resolved::Leaf(json!(render::node_id(
                    "RepositoryTopic",
                    repo.id * 100 + repo.topics.iter().position(|t| t == topic).unwrap_or(0) as u64
                ))),
                "url" => Resolved::Leaf(json!(format!("https://github.com/topics/{topic}"))),
                "topic" => Resolved::Object(Node::Topic(topic)),
                _ => Resolved::Unknown,
            },
            Node::Topic(topic) => Resolved::Leaf(match field.name.as_str() {
                "name" => json!(topic),
                "id" => json!(render::node_id(
                    "Topic",
                    u64::from_str_radix(&sha1::hex(topic.as_bytes())[..12], 16).unwrap_or_default()
                )),
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

/// A repository's cursor in its owner's list.
fn cursor(repo: &Repo) -> String {
    let key = format!("{CURSOR_PREFIX}{}", repo.name.to_ascii_lowercase());
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// The lowercase name a cursor stands after, if it is one of ours.
fn from_cursor(cursor: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix(CURSOR_PREFIX).map(str::to_string)
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

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "query Page($login: String!, $first: Int = 100, $after: String) {
      organization(login: $login) {
        login
        repositories(first: $first, after: $after) {
          totalCount
          nodes { nameWithOwner isArchived isFork repositoryTopics(first: 20) { totalCount nodes { topic { name } } } }
          pageInfo { hasNextPage endCursor }
        }
      }
    }";

    fn state_with(owner: &str, names: &[&str]) -> State {
        let mut state = State::default();
        for name in names {
            let id = state.ids.next();
            let repo = Repo::new(id, owner, name, "main", &mut state.ids);
            state
                .repos
                .insert(format!("{owner}/{name}").to_ascii_lowercase(), repo);
        }
        state
    }

    fn post(state: &mut State, query: &str, variables: Value) -> Value {
        let body = json!({"query": query, "variables": variables});
        let reply = handle(state, body.to_string().as_bytes());
        assert_eq!(reply.status, 200);
        reply.body.expect("a body")
    }

    fn names(page: &Value) -> Vec<String> {
        page["data"]["organization"]["repositories"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| n["nameWithOwner"].as_str().expect("name").to_string())
            .collect()
    }

    #[test]
    fn an_organization_is_listed_by_name_a_page_at_a_time() {
        // Added out of order, in mixed case: listed by name all the same.
        let mut state = state_with("acme", &["delta", "Bravo", "alpha", "charlie", "echo"]);
        state.repos.extend(state_with("other", &["aardvark"]).repos);
        let mut seen = Vec::new();
        let mut after = Value::Null;
        loop {
            let page = post(
                &mut state,
                PAGE,
                json!({"login": "ACME", "first": 2, "after": after}),
            );
            assert!(page.get("errors").is_none(), "{page}");
            let connection = &page["data"]["organization"]["repositories"];
            assert_eq!(connection["totalCount"], 5);
            seen.extend(names(&page));
            if connection["pageInfo"]["hasNextPage"] == json!(false) {
                break;
            }
            after = connection["pageInfo"]["endCursor"].clone();
            assert!(
                !after.as_str().expect("a cursor").contains("charlie"),
                "opaque: {after}"
            );
        }
        assert_eq!(
            seen,
            [
                "acme/alpha",
                "acme/Bravo",
                "acme/charlie",
                "acme/delta",
                "acme/echo"
            ]
        );
        assert_eq!(state.graphql_batches, [2, 2, 2], "a page counts as its `first`");
    }

    #[test]
    fn a_repository_added_between_pages_neither_repeats_nor_skips_another() {
        let mut state = state_with("acme", &["a", "c", "e"]);
        let first = post(&mut state, PAGE, json!({"login": "acme", "first": 2}));
        let after = first["data"]["organization"]["repositories"]["pageInfo"]["endCursor"].clone();
        state.repos.extend(state_with("acme", &["b", "d"]).repos);
        let second = post(
            &mut state,
            PAGE,
            json!({"login": "acme", "first": 2, "after": after}),
        );
        assert_eq!(names(&second), ["acme/d", "acme/e"]);
    }

    #[test]
    fn archived_forks_and_topics_are_reported() {
        let mut state = state_with("acme", &["api", "fork"]);
        state.repos.get_mut("acme/api").expect("api").archived = true;
        state.repos.get_mut("acme/api").expect("api").topics = vec!["backup".into(), "rds".into()];
        state.repos.get_mut("acme/fork").expect("fork").fork = true;
        let page = post(&mut state, PAGE, json!({"login": "acme"}));
        let nodes = &page["data"]["organization"]["repositories"]["nodes"];
        assert_eq!(nodes[0]["isArchived"], true);
        assert_eq!(nodes[0]["isFork"], false);
        assert_eq!(nodes[0]["repositoryTopics"]["totalCount"], 2);
        assert_eq!(
            nodes[0]["repositoryTopics"]["nodes"],
            json!([{"topic": {"name": "backup"}}, {"topic": {"name": "rds"}}])
        );
        assert_eq!(nodes[1]["isArchived"], false);
        assert_eq!(nodes[1]["isFork"], true);
        assert_eq!(nodes[1]["repositoryTopics"]["nodes"], json!([]));

        let forks = post(
            &mut state,
            r#"{ organization(login: "acme") { repositories(first: 10, isFork: false) { totalCount nodes { name } } } }"#,
            Value::Null,
        );
        assert_eq!(
            forks["data"]["organization"]["repositories"],
            json!({"totalCount": 1, "nodes": [{"name": "api"}]})
        );
    }

    #[test]
    fn an_unknown_organization_is_null_with_a_not_found_error() {
        let mut state = state_with("acme", &["api"]);
        let page = post(&mut state, PAGE, json!({"login": "nobody"}));
        assert_eq!(page["data"], json!({"organization": null}));
        let error = &page["errors"][0];
        assert_eq!(error["type"], "NOT_FOUND");
        assert_eq!(error["path"], json!(["organization"]));
        assert_eq!(
            error["message"],
            "Could not resolve to an Organization with the login of 'nobody'."
        );
    }

    #[test]
    fn pages_over_100_or_unbounded_are_refused_as_on_github() {
        let mut state = state_with("acme", &["api"]);
        let page = post(&mut state, PAGE, json!({"login": "acme", "first": 101}));
        assert!(page.get("data").is_none(), "refused as a whole: {page}");
        assert_eq!(page["errors"][0]["type"], "EXCESSIVE_PAGINATION");
        assert_eq!(page["errors"][0]["path"], json!(["organization", "repositories"]));
        assert_eq!(
            page["errors"][0]["message"],
            "Requesting 101 records on the `repositories` connection exceeds the `first` limit of 100 records."
        );

        let unbounded = post(
            &mut state,
            r#"{ organization(login: "acme") { repositories { nodes { name } } } }"#,
            Value::Null,
        );
        assert_eq!(unbounded["errors"][0]["type"], "MISSING_PAGINATION_BOUNDARIES");

        let topics = post(
            &mut state,
            r#"{ organization(login: "acme") { repositories(first: 1) { nodes { repositoryTopics(first: 500) { totalCount } } } } }"#,
            Value::Null,
        );
        assert_eq!(
            topics["errors"],
            json!([{
                "type": "EXCESSIVE_PAGINATION",
                "path": ["organization", "repositories", "nodes", "repositoryTopics"],
                "locations": [{"line": 1, "column": 66}],
                "message": "Requesting 500 records on the `repositoryTopics` connection exceeds the `first` limit of 100 records.",
            }])
        );
    }

    #[test]
    fn a_cursor_not_handed_out_is_an_error() {
        let mut state = state_with("acme", &["api"]);
        let page = post(
            &mut state,
            PAGE,
            json!({"login": "acme", "after": "bm90IGEgY3Vyc29y"}),
        );
        assert_eq!(page["data"]["organization"]["repositories"], Value::Null);
        assert_eq!(page["errors"][0]["type"], "INVALID_CURSOR_ARGUMENTS");
    }

    #[test]
    fn an_organization_page_counts_toward_the_repositories_a_query_may_ask_for() {
        let mut state = state_with("acme", &["api"]);
        let mut query = String::from("query {\n");
        for i in 0..60 {
            query.push_str(&format!(
                "  r{i}: repository(owner: \"acme\", name: \"api\") {{ name }}\n"
            ));
        }
        query.push_str("  organization(login: \"acme\") { repositories(first: 50) { totalCount } }\n}\n");
        let refused = post(&mut state, &query, Value::Null);
        assert_eq!(
            refused["errors"][0]["type"], "MAX_NODE_LIMIT_EXCEEDED",
            "{refused}"
        );
        assert_eq!(state.graphql_batches, [110]);
    }
}
