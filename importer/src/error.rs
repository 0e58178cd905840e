//! Import errors: each names the metadata key or tensor it is about. The file's path is
//! added by the caller (the CLI), which knows it. Wrapped errors are sources, not repeated in
//! the message (`{:#}` prints the chain once).

/// What went wrong while importing a model file.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be opened or read.
    #[error("reading the file")]
    Io(#[from] std::io::Error),
    /// The GGUF container itself is malformed (header, metadata, tensor table, ranges).
    #[error("not a valid GGUF file")]
    Gguf(#[from] gguf_rs_lib::GGUFError),
    /// A metadata key the import needs is absent.
    #[error("metadata key {key} is missing")]
    MissingKey {
        /// The GGUF metadata key.
        key: String,
    },
    /// A metadata key holds a value of another type (or an array of another element type).
    #[error("metadata key {key}: expected {expected}, found {got}")]
    KeyType {
        /// The GGUF metadata key.
        key: String,
        /// The type the import reads.
        expected: &'static str,
        /// The type the file holds.
        got: String,
    },
    /// A metadata value is of the right type but not one this import supports.
    #[error("metadata key {key}: {reason}")]
    Unsupported {
        /// The GGUF metadata key.
        key: String,
        /// Why the value is refused.
        reason: String,
    },
    /// A tensor the architecture needs is absent.
    #[error("tensor {name} is missing")]
    MissingTensor {
        /// The GGUF tensor name.
        name: String,
    },
    /// A tensor the architecture does not have (a later layer, an untied output, ...).
    #[error("tensor {name} is not part of the architecture")]
    UnexpectedTensor {
        /// The GGUF tensor name.
        name: String,
    },
    /// A tensor holds another element type than the one the import reads for it.
    #[error("tensor {name}: expected type {expected}, found {got}")]
    TensorType {
        /// The GGUF tensor name.
        name: String,
        /// The accepted types.
        expected: String,
        /// The type in the file.
        got: String,
    },
    /// A tensor's shape disagrees with the configuration.
    #[error("tensor {name}: expected shape {expected:?} (GGUF order, fastest first), found {got:?}")]
    TensorShape {
        /// The GGUF tensor name.
        name: String,
        /// The shape the configuration implies.
        expected: Vec<u64>,
        /// The shape in the file.
        got: Vec<u64>,
    },
    /// A tensor's payload is not a whole number of blocks of its type.
    #[error("tensor {name}: {len} bytes is not {blocks} blocks of {block_bytes} bytes")]
    TensorBytes {
        /// The GGUF tensor name.
        name: String,
        /// The payload length.
        len: usize,
        /// The number of blocks the shape implies.
        blocks: usize,
        /// The size of one block.
        block_bytes: usize,
    },
    /// The tokenizer described by the metadata cannot be built.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

/// Results of this crate.
pub type Result<T, E = ImportError> = std::result::Result<T, E>;
