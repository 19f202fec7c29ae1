//! Filter expressions (protocol.md §5.5): a tokenizer and precedence-climbing parser into
//! [`Expr`], and [`evaluate`], the reference semantics that `store::sql_filter` must match.

use std::cmp::Ordering;
use std::fmt;

use serde_json::{Number, Value};

/// Longest accepted expression, in characters.
pub const MAX_LENGTH: usize = 4096;
/// Deepest accepted nesting, both of the tree and of brackets.
pub const MAX_DEPTH: usize = 64;

/// Why an expression cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    /// Not a valid expression (400 `invalid_expression`).
    #[error("{message} (at character {position})")]
    Invalid {
        /// Character offset of the problem.
        position: usize,
        /// What is wrong.
        message: String,
    },
    /// A function outside the supported subset (400 `unsupported_function`).
    #[error("The function {name} is not supported.")]
    Unsupported {
        /// The function as written.
        name: String,
    },
}

fn invalid(position: usize, message: impl Into<String>) -> ExprError {
    ExprError::Invalid {
        position,
        message: message.into(),
    }
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A constant: string, number, boolean, null or a list literal.
    Literal(Value),
    /// A field of the object (without the `this.` prefix); missing → null.
    Field(Vec<String>),
    /// `EXISTS(path)`: the field is present and not null.
    Exists(Vec<String>),
    /// A prefix operator, or `NOT(x)`.
    Unary(UnaryOp, Box<Expr>),
    /// An infix operator other than `&&` and `||`.
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `a && b && …` or `AND(a, b, …)`: true when every operand is truthy.
    And(Vec<Expr>),
    /// `a || b || …` or `OR(a, b, …)`: true when some operand is truthy.
    Or(Vec<Expr>),
    /// A function of fixed arity.
    Call(Function, Vec<Expr>),
}

/// Prefix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `!x`, `NOT(x)`.
    Not,
    /// `-x`.
    Neg,
    /// `+x`.
    Plus,
}

/// Infix operators other than `&&` and `||`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
}

impl BinaryOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Add => "+",
            Self::Sub => "-",
            Self::Mul => "*",
            Self::Div => "/",
        }
    }

    fn precedence(self) -> u8 {
        match self {
            Self::Eq | Self::Ne => 3,
            Self::Lt | Self::Le | Self::Gt | Self::Ge => 4,
            Self::Add | Self::Sub => 5,
            Self::Mul | Self::Div => 6,
        }
    }
}

/// Functions of fixed arity (`AND`, `OR`, `NOT` and `EXISTS` have their own nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `IN(list, value)`.
    In,
    /// `INCLUDES(text, part)`.
    Includes,
    /// `TOLOWER(text)`.
    ToLower,
    /// `TOUPPER(text)`.
    ToUpper,
    /// `STARTSWITH(text, prefix)`.
    StartsWith,
    /// `ENDSWITH(text, suffix)`.
    EndsWith,
    /// `SIZE(list)`.
    Size,
}

impl Function {
    /// The name, upper-case.
    pub fn name(self) -> &'static str {
        match self {
            Self::In => "IN",
            Self::Includes => "INCLUDES",
            Self::ToLower => "TOLOWER",
            Self::ToUpper => "TOUPPER",
            Self::StartsWith => "STARTSWITH",
            Self::EndsWith => "ENDSWITH",
            Self::Size => "SIZE",
        }
    }

    /// How many arguments it takes.
    pub fn arity(self) -> usize {
        match self {
            Self::ToLower | Self::ToUpper | Self::Size => 1,
            Self::In | Self::Includes | Self::StartsWith | Self::EndsWith => 2,
        }
    }
}

impl Expr {
    /// Height of the tree: 1 for a leaf.
    pub fn depth(&self) -> usize {
        let children = |items: &[Expr]| items.iter().map(Expr::depth).max().unwrap_or(0);
        match self {
            Self::Literal(_) | Self::Field(_) | Self::Exists(_) => 1,
            Self::Unary(_, x) => 1 + x.depth(),
            Self::Binary(_, l, r) => 1 + l.depth().max(r.depth()),
            Self::And(items) | Self::Or(items) | Self::Call(_, items) => 1 + children(items),
        }
    }
}

/// Source that parses back to the same expression (except object literals, which have no syntax).
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn args(f: &mut fmt::Formatter<'_>, name: &str, items: &[Expr]) -> fmt::Result {
            write!(f, "{name}(")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{item}")?;
            }
            f.write_str(")")
        }
        match self {
            Self::Literal(v) => f.write_str(&serde_json::to_string(v).map_err(|_| fmt::Error)?),
            Self::Field(path) => write!(f, "this.{}", path.join(".")),
            Self::Exists(path) => write!(f, "EXISTS(this.{})", path.join(".")),
            Self::Unary(op, x) => {
                let symbol = match op {
                    UnaryOp::Not => "!",
                    UnaryOp::Neg => "-",
                    UnaryOp::Plus => "+",
                };
                write!(f, "{symbol}({x})")
            }
            Self::Binary(op, l, r) => write!(f, "({l} {} {r})", op.symbol()),
            Self::And(items) => args(f, "AND", items),
            Self::Or(items) => args(f, "OR", items),
            Self::Call(func, items) => args(f, func.name(), items),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// An identifier or a dotted path.
    Name(Vec<String>),
    Str(String),
    /// The digits as written; the parser applies a leading minus before converting.
    Num(String),
    Op(Op),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Binary(BinaryOp),
    And,
    Or,
    Not,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Name(path) => format!("'{}'", path.join(".")),
        Tok::Str(_) => "a string".into(),
        Tok::Num(text) => format!("'{text}'"),
        Tok::Op(Op::Binary(op)) => format!("'{}'", op.symbol()),
        Tok::Op(Op::And) => "'&&'".into(),
        Tok::Op(Op::Or) => "'||'".into(),
        Tok::Op(Op::Not) => "'!'".into(),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::LBracket => "'['".into(),
        Tok::RBracket => "']'".into(),
        Tok::Comma => "','".into(),
        Tok::End => "the end of the expression".into(),
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn tokenize(chars: &[char]) -> Result<Vec<Token>, ExprError> {
    let mut tokens = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied();
    while let Some(c) = at(i) {
        let pos = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = if c.is_ascii_alphabetic() || c == '_' {
            let mut path = Vec::new();
            loop {
                let start = i;
                while at(i).is_some_and(is_word) {
                    i += 1;
                }
                path.push(chars[start..i].iter().collect());
                if at(i) != Some('.') {
                    break;
                }
                if !at(i + 1).is_some_and(is_word) {
                    return Err(invalid(i, "expected a field name after '.'"));
                }
                i += 1;
            }
            Tok::Name(path)
        } else if c.is_ascii_digit() {
            let start = i;
            while at(i).is_some_and(|c| c.is_ascii_digit()) {
                i += 1;
            }
            if at(i) == Some('.') && at(i + 1).is_some_and(|c| c.is_ascii_digit()) {
                i += 1;
                while at(i).is_some_and(|c| c.is_ascii_digit()) {
                    i += 1;
                }
            }
            if matches!(at(i), Some('e' | 'E')) {
                let sign = usize::from(matches!(at(i + 1), Some('+' | '-')));
                if at(i + 1 + sign).is_some_and(|c| c.is_ascii_digit()) {
                    i += 1 + sign;
                    while at(i).is_some_and(|c| c.is_ascii_digit()) {
                        i += 1;
                    }
                }
            }
            if at(i).is_some_and(|c| is_word(c) || c == '.') {
                return Err(invalid(i, "malformed number"));
            }
            Tok::Num(chars[start..i].iter().collect())
        } else if c == '\'' || c == '"' {
            let (text, end) = string(chars, i)?;
            i = end;
            Tok::Str(text)
        } else {
            let two = (c, at(i + 1));
            let (tok, len) = match two {
                ('=', Some('=')) => (Tok::Op(Op::Binary(BinaryOp::Eq)), 2),
                ('!', Some('=')) => (Tok::Op(Op::Binary(BinaryOp::Ne)), 2),
                ('<', Some('=')) => (Tok::Op(Op::Binary(BinaryOp::Le)), 2),
                ('>', Some('=')) => (Tok::Op(Op::Binary(BinaryOp::Ge)), 2),
                ('&', Some('&')) => (Tok::Op(Op::And), 2),
                ('|', Some('|')) => (Tok::Op(Op::Or), 2),
                ('<', _) => (Tok::Op(Op::Binary(BinaryOp::Lt)), 1),
                ('>', _) => (Tok::Op(Op::Binary(BinaryOp::Gt)), 1),
                ('!', _) => (Tok::Op(Op::Not), 1),
                ('+', _) => (Tok::Op(Op::Binary(BinaryOp::Add)), 1),
                ('-', _) => (Tok::Op(Op::Binary(BinaryOp::Sub)), 1),
                ('*', _) => (Tok::Op(Op::Binary(BinaryOp::Mul)), 1),
                ('/', _) => (Tok::Op(Op::Binary(BinaryOp::Div)), 1),
                ('(', _) => (Tok::LParen, 1),
                (')', _) => (Tok::RParen, 1),
                ('[', _) => (Tok::LBracket, 1),
                (']', _) => (Tok::RBracket, 1),
                (',', _) => (Tok::Comma, 1),
                ('=', _) => return Err(invalid(i, "'=' is not an operator; use '=='")),
                _ => return Err(invalid(i, format!("unexpected character '{c}'"))),
            };
            i += len;
            tok
        };
        tokens.push(Token { tok, pos });
    }
    tokens.push(Token {
        tok: Tok::End,
        pos: chars.len(),
    });
    Ok(tokens)
}

/// A quoted string starting at `start`; returns its value and the offset after it.
fn string(chars: &[char], start: usize) -> Result<(String, usize), ExprError> {
    let quote = chars[start];
    let mut out = String::new();
    let mut i = start + 1;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(invalid(start, "unterminated string"));
        };
        i += 1;
        if c == quote {
            return Ok((out, i));
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = chars.get(i) else {
            return Err(invalid(start, "unterminated string"));
        };
        i += 1;
        out.push(match e {
            '\\' | '\'' | '"' | '/' => e,
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'u' => {
                let high = hex4(chars, i)?;
                i += 4;
                let code = if (0xD800..0xDC00).contains(&high) {
                    let low = (chars.get(i) == Some(&'\\') && chars.get(i + 1) == Some(&'u'))
                        .then(|| hex4(chars, i + 2))
                        .transpose()?
                        .filter(|low| (0xDC00..0xE000).contains(low))
                        .ok_or_else(|| invalid(i - 6, "unpaired surrogate in \\u escape"))?;
                    i += 6;
                    0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    high
                };
                char::from_u32(code).ok_or_else(|| invalid(i - 6, "invalid \\u escape"))?
            }
            _ => return Err(invalid(i - 2, format!("unknown escape '\\{e}'"))),
        });
    }
}

fn hex4(chars: &[char], at: usize) -> Result<u32, ExprError> {
    let digits: String = chars.iter().skip(at).take(4).collect();
    if digits.len() == 4 && digits.chars().all(|c| c.is_ascii_hexdigit()) {
        u32::from_str_radix(&digits, 16).map_err(|_| invalid(at, "invalid \\u escape"))
    } else {
        Err(invalid(at, "expected four hex digits after \\u"))
    }
}

/// The number written `text`, negated when `negative`; `None` when out of range.
fn number(text: &str, negative: bool) -> Option<Value> {
    let signed = if negative {
        format!("-{text}")
    } else {
        text.to_string()
    };
    if !text.contains(['.', 'e', 'E'])
        && let Ok(int) = signed.parse::<i64>()
    {
        return Some(Value::from(int));
    }
    let float: f64 = signed.parse().ok()?;
    Number::from_f64(float).map(Value::Number)
}

// ---------------------------------------------------------------------------------------------
// Parser

/// Parse an expression of the §5.5 subset.
pub fn parse(src: &str) -> Result<Expr, ExprError> {
    let chars: Vec<char> = src.chars().collect();
    if chars.len() > MAX_LENGTH {
        return Err(invalid(
            MAX_LENGTH,
            format!("the expression is longer than {MAX_LENGTH} characters"),
        ));
    }
    let mut parser = Parser {
        tokens: tokenize(&chars)?,
        at: 0,
        nesting: 0,
    };
    if parser.peek().tok == Tok::End {
        return Err(invalid(0, "the expression is empty"));
    }
    let node = parser.or()?;
    let next = parser.bump();
    if next.tok != Tok::End {
        return Err(invalid(
            next.pos,
            format!("expected an operator, found {}", describe(&next.tok)),
        ));
    }
    Ok(node.expr)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    nesting: usize,
}

struct Node {
    expr: Expr,
    depth: usize,
}

fn node(expr: Expr, depth: usize, pos: usize) -> Result<Node, ExprError> {
    if depth > MAX_DEPTH {
        return Err(invalid(
            pos,
            format!("the expression nests more than {MAX_DEPTH} levels deep"),
        ));
    }
    Ok(Node { expr, depth })
}

fn leaf(expr: Expr) -> Node {
    Node { expr, depth: 1 }
}

impl Parser {
    fn peek(&self) -> &Token {
        // `tokenize` always ends the list with `End`, and `bump` never moves past it.
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let token = self.peek().clone();
        if token.tok != Tok::End {
            self.at += 1;
        }
        token
    }

    fn enter(&mut self, pos: usize) -> Result<(), ExprError> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(invalid(
                pos,
                format!("the expression nests more than {MAX_DEPTH} levels deep"),
            ));
        }
        Ok(())
    }

    fn close(&mut self, closing: Tok, opened_at: usize) -> Result<(), ExprError> {
        let next = self.bump();
        if next.tok != closing {
            return Err(invalid(
                next.pos,
                format!(
                    "expected {} to close the one at character {opened_at}, found {}",
                    describe(&closing),
                    describe(&next.tok)
                ),
            ));
        }
        self.nesting -= 1;
        Ok(())
    }

    /// `a || b || …`, gathered into one node.
    fn or(&mut self) -> Result<Node, ExprError> {
        self.chain(Op::Or)
    }

    fn chain(&mut self, op: Op) -> Result<Node, ExprError> {
        let operand = |p: &mut Self| match op {
            Op::Or => p.chain(Op::And),
            _ => p.climb(3),
        };
        let first = operand(self)?;
        if self.peek().tok != Tok::Op(op) {
            return Ok(first);
        }
        let pos = self.peek().pos;
        let mut depth = first.depth;
        let mut items = vec![first.expr];
        while self.peek().tok == Tok::Op(op) {
            self.bump();
            let next = operand(self)?;
            depth = depth.max(next.depth);
            items.push(next.expr);
        }
        let expr = if op == Op::Or {
            Expr::Or(items)
        } else {
            Expr::And(items)
        };
        node(expr, depth + 1, pos)
    }

    /// Left-associative binary operators binding at least as tightly as `min`.
    fn climb(&mut self, min: u8) -> Result<Node, ExprError> {
        let mut lhs = self.unary()?;
        while let Token {
            tok: Tok::Op(Op::Binary(op)),
            pos,
        } = *self.peek()
            && op.precedence() >= min
        {
            self.bump();
            let rhs = self.climb(op.precedence() + 1)?;
            let depth = lhs.depth.max(rhs.depth) + 1;
            lhs = node(
                Expr::Binary(op, Box::new(lhs.expr), Box::new(rhs.expr)),
                depth,
                pos,
            )?;
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Node, ExprError> {
        let Token { tok, pos } = self.peek().clone();
        let op = match tok {
            Tok::Op(Op::Not) => UnaryOp::Not,
            Tok::Op(Op::Binary(BinaryOp::Sub)) => UnaryOp::Neg,
            Tok::Op(Op::Binary(BinaryOp::Add)) => UnaryOp::Plus,
            _ => return self.primary(),
        };
        self.bump();
        if op == UnaryOp::Neg
            && let Tok::Num(text) = &self.peek().tok
        {
            let literal = negative_number(text, pos)?;
            self.bump();
            return Ok(leaf(Expr::Literal(literal)));
        }
        self.enter(pos)?;
        let inner = self.unary()?;
        self.nesting -= 1;
        node(Expr::Unary(op, Box::new(inner.expr)), inner.depth + 1, pos)
    }

    fn primary(&mut self) -> Result<Node, ExprError> {
        let Token { tok, pos } = self.bump();
        match tok {
            Tok::LParen => {
                self.enter(pos)?;
                let inner = self.or()?;
                self.close(Tok::RParen, pos)?;
                Ok(inner)
            }
            Tok::LBracket => Ok(leaf(Expr::Literal(self.list(pos)?))),
            Tok::Str(text) => Ok(leaf(Expr::Literal(Value::String(text)))),
            Tok::Num(text) => Ok(leaf(Expr::Literal(
                number(&text, false).ok_or_else(|| invalid(pos, "number out of range"))?,
            ))),
            Tok::Name(path) => {
                if path.len() == 1 && self.peek().tok == Tok::LParen {
                    return self.call(&path[0], pos);
                }
                if let [word] = path.as_slice()
                    && let Some(literal) = keyword(word)
                {
                    return Ok(leaf(Expr::Literal(literal)));
                }
                Ok(leaf(Expr::Field(field_path(path, pos)?)))
            }
            other => Err(invalid(
                pos,
                format!("expected a value, found {}", describe(&other)),
            )),
        }
    }

    fn call(&mut self, name: &str, pos: usize) -> Result<Node, ExprError> {
        enum Kind {
            And,
            Or,
            Not,
            Exists,
            Fixed(Function),
        }
        let kind = match name.to_ascii_uppercase().as_str() {
            "AND" => Kind::And,
            "OR" => Kind::Or,
            "NOT" => Kind::Not,
            "EXISTS" => Kind::Exists,
            "IN" => Kind::Fixed(Function::In),
            "INCLUDES" => Kind::Fixed(Function::Includes),
            "TOLOWER" => Kind::Fixed(Function::ToLower),
            "TOUPPER" => Kind::Fixed(Function::ToUpper),
            "STARTSWITH" => Kind::Fixed(Function::StartsWith),
            "ENDSWITH" => Kind::Fixed(Function::EndsWith),
            "SIZE" => Kind::Fixed(Function::Size),
            _ => {
                return Err(ExprError::Unsupported {
                    name: name.to_string(),
                });
            }
        };
        let open = self.bump().pos;
        self.enter(open)?;
        let mut args = Vec::new();
        if self.peek().tok != Tok::RParen {
            loop {
                args.push(self.or()?);
                if self.peek().tok != Tok::Comma {
                    break;
                }
                self.bump();
            }
        }
        self.close(Tok::RParen, open)?;
        let upper = name.to_ascii_uppercase();
        let arity = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                let plural = if n == 1 { "" } else { "s" };
                Err(invalid(pos, format!("{upper} takes {n} argument{plural}")))
            }
        };
        let depth = args.iter().map(|a| a.depth).max().unwrap_or(0) + 1;
        let mut exprs: Vec<Expr> = Vec::with_capacity(args.len());
        match kind {
            Kind::And | Kind::Or => {
                if args.is_empty() {
                    return Err(invalid(pos, format!("{upper} takes at least one argument")));
                }
                exprs.extend(args.into_iter().map(|a| a.expr));
                let expr = if matches!(kind, Kind::And) {
                    Expr::And(exprs)
                } else {
                    Expr::Or(exprs)
                };
                node(expr, depth, pos)
            }
            Kind::Not => {
                arity(1)?;
                exprs.extend(args.into_iter().map(|a| a.expr));
                let inner = exprs
                    .pop()
                    .ok_or_else(|| invalid(pos, "NOT takes 1 argument"))?;
                node(Expr::Unary(UnaryOp::Not, Box::new(inner)), depth, pos)
            }
            Kind::Exists => {
                arity(1)?;
                match args.pop().map(|a| a.expr) {
                    Some(Expr::Field(path)) => Ok(leaf(Expr::Exists(path))),
                    _ => Err(invalid(pos, "EXISTS takes a field path")),
                }
            }
            Kind::Fixed(function) => {
                arity(function.arity())?;
                exprs.extend(args.into_iter().map(|a| a.expr));
                node(Expr::Call(function, exprs), depth, pos)
            }
        }
    }

    /// A list literal after its `[`: constants only, as apps inline `JSON.stringify(array)`.
    fn list(&mut self, open: usize) -> Result<Value, ExprError> {
        self.enter(open)?;
        let mut items = Vec::new();
        if self.peek().tok == Tok::RBracket {
            self.bump();
            self.nesting -= 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.constant()?);
            let next = self.bump();
            match next.tok {
                Tok::Comma => {}
                Tok::RBracket => break,
                other => {
                    return Err(invalid(
                        next.pos,
                        format!("expected ',' or ']', found {}", describe(&other)),
                    ));
                }
            }
        }
        self.nesting -= 1;
        Ok(Value::Array(items))
    }

    fn constant(&mut self) -> Result<Value, ExprError> {
        let Token { tok, pos } = self.bump();
        match tok {
            Tok::Str(text) => Ok(Value::String(text)),
            Tok::Num(text) => {
                number(&text, false).ok_or_else(|| invalid(pos, "number out of range"))
            }
            Tok::Op(Op::Binary(BinaryOp::Sub)) => match self.bump() {
                Token {
                    tok: Tok::Num(text),
                    ..
                } => negative_number(&text, pos),
                other => Err(invalid(other.pos, "expected a number after '-'")),
            },
            Tok::LBracket => self.list(pos),
            Tok::Name(path) => match path.as_slice() {
                [word] => keyword(word),
                _ => None,
            }
            .ok_or_else(|| invalid(pos, "list elements must be literal values")),
            _ => Err(invalid(pos, "list elements must be literal values")),
        }
    }
}

fn negative_number(text: &str, pos: usize) -> Result<Value, ExprError> {
    number(text, true).ok_or_else(|| invalid(pos, "number out of range"))
}

fn keyword(word: &str) -> Option<Value> {
    match word {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        "null" => Some(Value::Null),
        _ => None,
    }
}

fn field_path(mut path: Vec<String>, pos: usize) -> Result<Vec<String>, ExprError> {
    if path[0] == "this" {
        if path.len() == 1 {
            return Err(invalid(pos, "'this' must be followed by a field name"));
        }
        path.remove(0);
    }
    Ok(path)
}

// ---------------------------------------------------------------------------------------------
// Reference semantics

/// A JSON number, kept exact when it is an `i64`.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn of(value: &Value) -> Option<Self> {
        let Value::Number(n) = value else {
            return None;
        };
        Some(match n.as_i64() {
            Some(int) => Self::Int(int),
            None => Self::Float(n.as_f64().unwrap_or(f64::NAN)),
        })
    }

    fn float(self) -> f64 {
        match self {
            Self::Int(int) => int as f64,
            Self::Float(float) => float,
        }
    }

    /// Integer arithmetic while it fits, else floating point (as SQLite does).
    fn apply(
        self,
        other: Self,
        int: fn(i64, i64) -> Option<i64>,
        float: fn(f64, f64) -> f64,
    ) -> Value {
        if let (Self::Int(a), Self::Int(b)) = (self, other)
            && let Some(result) = int(a, b)
        {
            return Value::from(result);
        }
        // Infinite results become null, as `Value::from` does.
        Value::from(float(self.float(), other.float()))
    }
}

/// Exact comparison of numbers, integers against floats too (as SQLite compares them).
fn compare_numbers(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y),
        (Num::Int(x), Num::Float(y)) => compare_int_float(x, y),
        (Num::Float(x), Num::Int(y)) => compare_int_float(y, x).map(Ordering::reverse),
    }
}

fn compare_int_float(int: i64, float: f64) -> Option<Ordering> {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if float.is_nan() {
        return None;
    }
    if float >= TWO_63 {
        return Some(Ordering::Less);
    }
    if float < -TWO_63 {
        return Some(Ordering::Greater);
    }
    let whole = float.trunc();
    // In range, so the cast is exact.
    Some(int.cmp(&(whole as i64)).then_with(|| {
        if float > whole {
            Ordering::Less
        } else if float < whole {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    }))
}

/// `==`: same-type values only (numbers numerically); arrays and objects are never equal.
pub fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Number(_), Value::Number(_)) => {
            matches!(compare(a, b), Some(Ordering::Equal))
        }
        _ => false,
    }
}

/// The order of two numbers or two strings (byte-wise); `None` for anything else.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        _ => compare_numbers(Num::of(a)?, Num::of(b)?),
    }
}

/// Truthiness: null, false, 0 and "" are false; everything else, empty lists too, is true.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(_) => match Num::of(value) {
            Some(Num::Int(int)) => int != 0,
            Some(Num::Float(float)) => float != 0.0,
            None => true,
        },
        Value::String(text) => !text.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The value at `path` in `object`, descending through objects only.
fn lookup<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(object, |value, key| value.as_object()?.get(key))
}

/// The value of `expr` for `object` (the visible object: data, `_id`, `createdAt`, `updatedAt`).
///
/// This is the reference semantics; `store::sql_filter` compiles to SQL that agrees with
/// `truthy(evaluate(..))` on every object.
pub fn evaluate(expr: &Expr, object: &Value) -> Value {
    let eval = |e: &Expr| evaluate(e, object);
    match expr {
        Expr::Literal(value) => value.clone(),
        Expr::Field(path) => lookup(object, path).cloned().unwrap_or(Value::Null),
        Expr::Exists(path) => Value::Bool(lookup(object, path).is_some_and(|v| !v.is_null())),
        Expr::Unary(op, inner) => {
            let value = eval(inner);
            match op {
                UnaryOp::Not => Value::Bool(!truthy(&value)),
                UnaryOp::Plus => Num::of(&value).map_or(Value::Null, |_| value),
                UnaryOp::Neg => match Num::of(&value) {
                    Some(Num::Int(int)) => int
                        .checked_neg()
                        .map_or_else(|| Value::from(-(int as f64)), Value::from),
                    Some(Num::Float(float)) => Value::from(-float),
                    None => Value::Null,
                },
            }
        }
        Expr::Binary(op, l, r) => binary(*op, &eval(l), &eval(r)),
        Expr::And(items) => Value::Bool(items.iter().all(|e| truthy(&eval(e)))),
        Expr::Or(items) => Value::Bool(items.iter().any(|e| truthy(&eval(e)))),
        Expr::Call(function, args) => {
            let args: Vec<Value> = args.iter().map(eval).collect();
            call(*function, &args)
        }
    }
}

fn binary(op: BinaryOp, a: &Value, b: &Value) -> Value {
    let ordered = |accept: fn(Ordering) -> bool| Value::Bool(compare(a, b).is_some_and(accept));
    match op {
        BinaryOp::Eq => Value::Bool(equal(a, b)),
        BinaryOp::Ne => Value::Bool(!equal(a, b)),
        BinaryOp::Lt => ordered(Ordering::is_lt),
        BinaryOp::Le => ordered(Ordering::is_le),
        BinaryOp::Gt => ordered(Ordering::is_gt),
        BinaryOp::Ge => ordered(Ordering::is_ge),
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div => {
            let (Some(x), Some(y)) = (Num::of(a), Num::of(b)) else {
                return match (op, a, b) {
                    (BinaryOp::Add, Value::String(x), Value::String(y)) => {
                        Value::String(format!("{x}{y}"))
                    }
                    _ => Value::Null,
                };
            };
            match op {
                BinaryOp::Add => x.apply(y, i64::checked_add, |p, q| p + q),
                BinaryOp::Sub => x.apply(y, i64::checked_sub, |p, q| p - q),
                BinaryOp::Mul => x.apply(y, i64::checked_mul, |p, q| p * q),
                _ if y.float() == 0.0 => Value::Null,
                _ => Value::from(x.float() / y.float()),
            }
        }
    }
}

fn call(function: Function, args: &[Value]) -> Value {
    let texts = || match args {
        [Value::String(a), Value::String(b)] => Some((a.as_str(), b.as_str())),
        _ => None,
    };
    match (function, args) {
        (Function::In, [list, item]) => Value::Bool(
            list.as_array()
                .is_some_and(|items| items.iter().any(|x| equal(x, item))),
        ),
        (Function::Includes, _) => Value::Bool(texts().is_some_and(|(a, b)| a.contains(b))),
        (Function::StartsWith, _) => Value::Bool(texts().is_some_and(|(a, b)| a.starts_with(b))),
        (Function::EndsWith, _) => Value::Bool(texts().is_some_and(|(a, b)| a.ends_with(b))),
        (Function::ToLower, [Value::String(text)]) => Value::String(text.to_ascii_lowercase()),
        (Function::ToUpper, [Value::String(text)]) => Value::String(text.to_ascii_uppercase()),
        (Function::Size, [Value::Array(items)]) => Value::from(items.len()),
        _ => Value::Null,
    }
}

fn sort_rank(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// Ascending sort order of field values (§5.7): null (or missing) < booleans (false first) <
/// numbers < strings (byte-wise) < arrays < objects; arrays and objects tie among themselves.
/// Callers break ties by `_id`.
pub fn sort_cmp(a: &Value, b: &Value) -> Ordering {
    sort_rank(a).cmp(&sort_rank(b)).then_with(|| match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => compare(a, b).unwrap_or(Ordering::Equal),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn object() -> Value {
        json!({
            "_id": "6235e0a1b2c3d4e5f6a7b8c9",
            "createdAt": "2024-03-19T13:55:55.772Z",
            "updatedAt": "2024-03-20T08:00:00.000Z",
            "title": "Rust in Action",
            "done": false,
            "isPublished": true,
            "isDeleted": null,
            "count": 3,
            "price": 2.5,
            "zero": 0,
            "empty": "",
            "tags": ["rust", "db", 7],
            "none": [],
            "profile": { "city": "Oslo", "age": 41 },
        })
    }

    #[test]
    fn expressions_evaluate_as_the_table_says() {
        let cases: &[(&str, Value)] = &[
            // fields and literals
            ("title", json!("Rust in Action")),
            ("this.title", json!("Rust in Action")),
            ("profile.city", json!("Oslo")),
            ("this.profile.age", json!(41)),
            ("missing", Value::Null),
            ("profile.missing.deeper", Value::Null),
            ("title.length", Value::Null),
            ("tags.0", Value::Null),
            ("_id", json!("6235e0a1b2c3d4e5f6a7b8c9")),
            ("'a\\'b\\n\\u00e9\\ud83d\\ude00'", json!("a'b\né😀")),
            ("\"say \\\"hi\\\"\"", json!("say \"hi\"")),
            ("12", json!(12)),
            ("4.5", json!(4.5)),
            ("1e3", json!(1000.0)),
            ("-7", json!(-7)),
            (
                "[\"a\", 1, -2.5, true, null, [1]]",
                json!(["a", 1, -2.5, true, null, [1]]),
            ),
            ("[]", json!([])),
            // comparisons
            ("done == false", json!(true)),
            ("count == 3.0", json!(true)),
            ("count != 3", json!(false)),
            ("count == '3'", json!(false)),
            ("count != '3'", json!(true)),
            ("missing == null", json!(true)),
            ("isDeleted == null", json!(true)),
            ("missing != null", json!(false)),
            ("title != null", json!(true)),
            ("tags == tags", json!(false)),
            ("none != none", json!(true)),
            ("profile == profile", json!(false)),
            ("count > 2 && count <= 3", json!(true)),
            ("price < 3", json!(true)),
            ("'B' < 'a'", json!(true)),
            ("'é' > 'z'", json!(true)),
            ("title >= 'Rust'", json!(true)),
            ("count < '4'", json!(false)),
            ("count >= '4'", json!(false)),
            ("null <= null", json!(false)),
            ("true > false", json!(false)),
            ("createdAt < updatedAt", json!(true)),
            ("createdAt == '2024-03-19T13:55:55.772Z'", json!(true)),
            ("9007199254740993 == 9007199254740992.0", json!(false)),
            ("9007199254740993 > 9007199254740992.0", json!(true)),
            // logic and truthiness
            ("!isDeleted && isPublished", json!(true)),
            ("!zero && !empty && !missing && !done", json!(true)),
            ("none && profile && tags && price", json!(true)),
            ("count || missing", json!(true)),
            ("done || zero", json!(false)),
            ("AND(count, title)", json!(true)),
            ("OR(done, zero, empty)", json!(false)),
            ("NOT(done)", json!(true)),
            ("!!title", json!(true)),
            // arithmetic
            ("count + 1", json!(4)),
            ("count - 5", json!(-2)),
            ("count * price", json!(7.5)),
            ("count / 2", json!(1.5)),
            ("6 / 2 == 3", json!(true)),
            ("count / 0", Value::Null),
            ("count / 0.0", Value::Null),
            ("-count", json!(-3)),
            ("+price", json!(2.5)),
            ("+title", Value::Null),
            ("-title", Value::Null),
            ("title + '!'", json!("Rust in Action!")),
            ("title + 1", Value::Null),
            ("done + 1", Value::Null),
            ("missing * 2", Value::Null),
            (
                "9223372036854775807 + 1",
                json!(9_223_372_036_854_775_808.0),
            ),
            (
                "-(-9223372036854775807 - 1)",
                json!(9_223_372_036_854_775_808.0),
            ),
            ("1e308 * 10", Value::Null),
            // functions
            ("IN(tags, 'db')", json!(true)),
            ("IN(tags, 7.0)", json!(true)),
            ("IN(tags, '7')", json!(false)),
            ("IN(['a', 'b'], 'b')", json!(true)),
            ("in(['6235e0a1b2c3d4e5f6a7b8c9'], this._id)", json!(true)),
            ("IN([null], missing)", json!(true)),
            ("IN([[1]], [1])", json!(false)),
            ("IN(title, 'Rust')", json!(false)),
            ("INCLUDES(title, 'in')", json!(true)),
            ("INCLUDES(title, 'rust')", json!(false)),
            ("INCLUDES(TOLOWER(title), 'rust')", json!(true)),
            ("INCLUDES(title, '')", json!(true)),
            ("INCLUDES(tags, 'db')", json!(false)),
            ("EXISTS(title)", json!(true)),
            ("EXISTS(isDeleted)", json!(false)),
            ("!EXISTS(this.status)", json!(true)),
            ("EXISTS(profile.city)", json!(true)),
            ("EXISTS(_id)", json!(true)),
            ("TOLOWER('ÀbC')", json!("Àbc")),
            ("ToUpper('àbc')", json!("àBC")),
            ("TOLOWER(count)", Value::Null),
            ("STARTSWITH(title, 'Rust')", json!(true)),
            ("STARTSWITH(title, '')", json!(true)),
            ("ENDSWITH(title, 'Action')", json!(true)),
            ("ENDSWITH(title, 'Rust')", json!(false)),
            ("ENDSWITH(count, 3)", json!(false)),
            ("SIZE(tags)", json!(3)),
            ("SIZE(none)", json!(0)),
            ("SIZE(title)", Value::Null),
            ("SIZE(tags) > 2", json!(true)),
        ];
        let object = object();
        for (src, expected) in cases {
            let expr = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert_eq!(&evaluate(&expr, &object), expected, "{src}");
        }
    }

    #[test]
    fn precedence_follows_the_protocol() {
        let same = [
            ("1 + 2 * 3", "1 + (2 * 3)"),
            ("10 - 4 - 3", "(10 - 4) - 3"),
            ("8 / 4 / 2", "(8 / 4) / 2"),
            ("-2 * 3", "(-2) * 3"),
            ("-count * 3", "(-count) * 3"),
            ("!a == b", "(!a) == b"),
            ("a < b == c < d", "(a < b) == (c < d)"),
            ("a == b && c != d", "(a == b) && (c != d)"),
            ("a || b && c", "a || (b && c)"),
            ("a + b < c * d", "(a + b) < (c * d)"),
            ("1 - -1", "1 - (-1)"),
        ];
        for (bare, grouped) in same {
            let (Ok(bare_expr), Ok(grouped_expr)) = (parse(bare), parse(grouped)) else {
                panic!("{bare} or {grouped} did not parse");
            };
            assert_eq!(bare_expr, grouped_expr, "{bare}");
        }
        let object = json!({});
        let value = |src: &str| evaluate(&parse(src).unwrap(), &object);
        assert_eq!(value("2 + 3 * 4"), json!(14));
        assert_eq!(value("(2 + 3) * 4"), json!(20));
        assert_eq!(value("10 - 4 - 3"), json!(3));
        assert_eq!(value("2 * 3 == 6 && 1 < 2 == true"), json!(true));
        assert_eq!(value("false && false || true"), json!(true));
        assert_eq!(value("true || false && false"), json!(true));
        assert_eq!(
            parse("a || b || c").unwrap(),
            Expr::Or(vec![
                Expr::Field(vec!["a".into()]),
                Expr::Field(vec!["b".into()]),
                Expr::Field(vec!["c".into()]),
            ])
        );
        assert_eq!(
            parse("this.a.b").unwrap(),
            Expr::Field(vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn malformed_expressions_report_where() {
        let cases: &[(&str, usize)] = &[
            ("", 0),
            ("   ", 0),
            ("a ==", 4),
            ("a = 1", 2),
            ("(a == 1", 7),
            ("a == 1)", 6),
            ("'abc", 0),
            ("a == \"x\\q\"", 7),
            ("'\\ud83d'", 1),
            ("'\\u12'", 3),
            ("a.", 1),
            ("a..b", 1),
            ("this", 0),
            ("this == 1", 0),
            ("12abc", 2),
            ("1.2.3", 3),
            ("a # b", 2),
            ("a €", 2),
            ("[1, a]", 4),
            ("[1, 2", 5),
            ("[1,]", 3),
            ("IN(a)", 0),
            ("NOT(a, b)", 0),
            ("AND()", 0),
            ("EXISTS('a')", 0),
            ("x == 1e999", 5),
            ("a b", 2),
            ("f.g(1)", 3),
            ("1 +", 3),
        ];
        for (src, position) in cases {
            match parse(src) {
                Err(ExprError::Invalid { position: at, .. }) => {
                    assert_eq!(at, *position, "{src}");
                }
                other => panic!("{src}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_functions_are_unsupported() {
        for (src, name) in [
            ("DATEDIFF(a, b) > 3", "DATEDIFF"),
            ("a == lower(b)", "lower"),
            ("!ISEMPTY(x)", "ISEMPTY"),
        ] {
            assert_eq!(
                parse(src),
                Err(ExprError::Unsupported { name: name.into() }),
                "{src}"
            );
        }
    }

    #[test]
    fn size_and_nesting_are_bounded() {
        let long = format!("a == '{}'", "x".repeat(MAX_LENGTH));
        assert!(matches!(
            parse(&long),
            Err(ExprError::Invalid {
                position: MAX_LENGTH,
                ..
            })
        ));
        let fits = format!("a == '{}'", "x".repeat(MAX_LENGTH - 7));
        assert!(parse(&fits).is_ok());

        let parens = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
        assert!(parse(&parens(MAX_DEPTH)).is_ok());
        assert!(matches!(
            parse(&parens(MAX_DEPTH + 1)),
            Err(ExprError::Invalid { position: 64, .. })
        ));
        assert!(parse(&"!".repeat(MAX_DEPTH + 1)).is_err());
        assert!(parse(&format!("{}1{}", "[".repeat(65), "]".repeat(65))).is_err());

        let chain = |n: usize| vec!["a"; n].join(" + ");
        assert_eq!(parse(&chain(MAX_DEPTH)).unwrap().depth(), MAX_DEPTH);
        assert!(parse(&chain(MAX_DEPTH + 1)).is_err());
        // `||` and `&&` chains are gathered, so long ones stay shallow.
        let ors = vec!["a == 1"; 400].join(" || ");
        assert_eq!(parse(&ors).unwrap().depth(), 3);
    }

    #[test]
    fn sort_order_puts_missing_first() {
        let mut values = vec![
            json!("b"),
            json!([1]),
            json!(2),
            json!(true),
            Value::Null,
            json!({}),
            json!(1.5),
            json!("B"),
            json!(false),
        ];
        values.sort_by(sort_cmp);
        assert_eq!(
            values,
            vec![
                Value::Null,
                json!(false),
                json!(true),
                json!(1.5),
                json!(2),
                json!("B"),
                json!("b"),
                json!([1]),
                json!({}),
            ]
        );
    }

    fn arb_expr() -> impl Strategy<Value = Expr> {
        let name = prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just("_id".to_string()),
            Just("this".to_string()),
            Just("0".to_string()),
            Just("true".to_string()),
        ];
        let scalar = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        let literal = prop_oneof![
            4 => scalar.clone(),
            1 => prop::collection::vec(scalar, 0..3).prop_map(Value::Array),
        ];
        let path = prop::collection::vec(name, 1..3);
        let leaf = prop_oneof![
            literal.prop_map(Expr::Literal),
            path.clone().prop_map(Expr::Field),
            path.prop_map(Expr::Exists),
        ];
        leaf.prop_recursive(4, 32, 3, |inner| {
            let binary = prop_oneof![
                Just(BinaryOp::Eq),
                Just(BinaryOp::Ne),
                Just(BinaryOp::Lt),
                Just(BinaryOp::Le),
                Just(BinaryOp::Gt),
                Just(BinaryOp::Ge),
                Just(BinaryOp::Add),
                Just(BinaryOp::Sub),
                Just(BinaryOp::Mul),
                Just(BinaryOp::Div),
            ];
            let unary = prop_oneof![Just(UnaryOp::Not), Just(UnaryOp::Neg), Just(UnaryOp::Plus)];
            let function = prop_oneof![
                Just(Function::In),
                Just(Function::Includes),
                Just(Function::ToLower),
                Just(Function::ToUpper),
                Just(Function::StartsWith),
                Just(Function::EndsWith),
                Just(Function::Size),
            ];
            prop_oneof![
                (binary, inner.clone(), inner.clone()).prop_map(|(op, l, r)| Expr::Binary(
                    op,
                    Box::new(l),
                    Box::new(r)
                )),
                (unary, inner.clone()).prop_map(|(op, x)| Expr::Unary(op, Box::new(x))),
                prop::collection::vec(inner.clone(), 1..4).prop_map(Expr::And),
                prop::collection::vec(inner.clone(), 1..4).prop_map(Expr::Or),
                (function, prop::collection::vec(inner, 2)).prop_map(|(f, mut args)| {
                    args.truncate(f.arity());
                    Expr::Call(f, args)
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 1000,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn printed_expressions_parse_back(expr in arb_expr()) {
            let printed = expr.to_string();
            prop_assert_eq!(parse(&printed), Ok(expr), "{}", printed);
        }

        #[test]
        fn parsing_never_panics(src in ".{0,64}") {
            let _ = parse(&src);
        }
    }
}
