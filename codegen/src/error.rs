//! Compile errors. kiln never panics on a bad model: every failure is one of these, naming the
//! file, and where it applies the node, op type and domain, plus what the user can do about it.
use std::fmt;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The model file could not be read.
    Io,
    /// The bytes are not a valid ONNX protobuf (or are truncated).
    Decode,
    /// The graph is well-formed protobuf but invalid ONNX (dangling input, bad attribute…).
    Invalid,
    /// Valid ONNX that kiln does not support (yet).
    Unsupported,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub file: Option<PathBuf>,
    /// Node name (or its first output's name when the node is unnamed).
    pub node: Option<String>,
    pub op_type: Option<String>,
    pub domain: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            file: None,
            node: None,
            op_type: None,
            domain: None,
            message: message.into(),
            hint: None,
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn with_file(mut self, file: impl Into<PathBuf>) -> Self {
        if self.file.is_none() {
            self.file = Some(file.into());
        }
        self
    }
    /// Attaches node context unless a more specific one is already set.
    pub fn at_node(mut self, name: &str, op_type: &str, domain: &str) -> Self {
        if self.node.is_none() {
            self.node = Some(name.to_string());
            self.op_type = Some(op_type.to_string());
            self.domain = Some(if domain.is_empty() {
                "ai.onnx".into()
            } else {
                domain.into()
            });
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("kiln: ")?;
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        if let Some(node) = &self.node {
            write!(f, "node `{node}`")?;
            if let Some(op) = &self.op_type {
                write!(f, " (op {op}")?;
                if let Some(d) = &self.domain {
                    write!(f, ", domain {d}")?;
                }
                f.write_str(")")?;
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  help: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// `bail!(kind_ctor(...))`-style shorthand used across the compiler.
macro_rules! bail {
    ($($t:tt)*) => { return Err($crate::error::Error::invalid(format!($($t)*))) };
}
macro_rules! unsupported {
    ($($t:tt)*) => { return Err($crate::error::Error::unsupported(format!($($t)*))) };
}
pub(crate) use {bail, unsupported};
