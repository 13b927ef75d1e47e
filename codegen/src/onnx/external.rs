//! External tensor data: which files a model may make kiln read, and reading them safely.
//!
//! A model is often downloaded, and its `location` strings are the model author's choice, not
//! the user's. So a location must be relative, must not climb out of the model's directory with
//! `..`, and must resolve (after symlinks) to a regular file inside that directory; anything
//! else is an error naming the tensor and the location, raised before the file is opened. Data
//! elsewhere needs a directory the *user* names ([`DataDirs::allow`]: the macro's
//! `allow_data_dir`, `Builder::allow_data_dir`, the CLI's `--allow-data-dir`). Devices, FIFOs,
//! sockets and directories are never read (a FIFO would block the build and `/dev/zero` never
//! ends), and offsets and lengths are checked against the file's size before any allocation.
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use super::proto;
use crate::error::{Error, ErrorKind, Result, bail};

/// The directories a model's external data may come from: the model's own directory, plus any
/// the user allowed explicitly.
#[derive(Clone, Debug)]
pub struct DataDirs {
    model_dir: PathBuf,
    extra: Vec<PathBuf>,
}

impl DataDirs {
    /// External data may come from `model_dir` (the directory of the .onnx file) and below.
    pub fn new(model_dir: impl Into<PathBuf>) -> Self {
        let mut model_dir = model_dir.into();
        if model_dir.as_os_str().is_empty() {
            model_dir = PathBuf::from(".");
        }
        DataDirs {
            model_dir,
            extra: Vec::new(),
        }
    }
    /// For the model file `model`: its parent directory.
    pub fn for_model(model: &Path) -> Self {
        Self::new(model.parent().unwrap_or(Path::new(".")))
    }
    /// Also allows data files inside `dir` (and below), named by the user. With such a
    /// directory, a location may be absolute or climb out with `..`, as long as it resolves
    /// inside one of the allowed directories.
    pub fn allow(mut self, dir: impl Into<PathBuf>) -> Self {
        self.extra.push(dir.into());
        self
    }
    /// The model's directory (relative locations are resolved against it).
    pub fn model_dir(&self) -> &Path {
        &self.model_dir
    }
    /// The directories the user allowed besides the model's.
    pub fn allowed(&self) -> &[PathBuf] {
        &self.extra
    }

    /// Checks that every allowed directory exists (a typo should not silently allow nothing).
    pub fn check_allowed(&self) -> Result<()> {
        for d in &self.extra {
            if !d.is_dir() {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!(
                        "allowed data directory {} is not a directory (or does not exist)",
                        d.display()
                    ),
                )
                .with_hint(
                    "allow_data_dir / Builder::allow_data_dir / --allow-data-dir name a directory; \
                     relative paths are relative to the crate's Cargo.toml directory (macro) or \
                     the current directory (build.rs, CLI)",
                ));
            }
        }
        Ok(())
    }

    /// Resolves `location` for tensor `name` to the canonical path of a regular file inside an
    /// allowed directory, without opening it.
    pub fn resolve(&self, name: &str, location: &str) -> Result<PathBuf> {
        let refuse = |what: String| {
            Error::invalid(format!(
                "tensor `{name}`: external data location `{}` {what}",
                location.escape_debug()
            ))
            .with_hint(ALLOWED_HINT)
        };
        if location.is_empty() {
            return Err(refuse("is empty".into()));
        }
        if location.contains('\0') {
            return Err(refuse("contains a NUL byte".into()));
        }
        // The lexical rule first, so that a refused location is never even looked up.
        let rel = Path::new(location);
        let mut depth = 0usize;
        let (mut absolute, mut escapes) = (false, false);
        for c in rel.components() {
            match c {
                Component::Prefix(_) | Component::RootDir => absolute = true,
                Component::CurDir => {}
                Component::ParentDir if depth == 0 => escapes = true,
                Component::ParentDir => depth -= 1,
                Component::Normal(_) => depth += 1,
            }
        }
        if self.extra.is_empty() {
            if absolute {
                return Err(refuse(
                    "is an absolute path; external data must be a relative path inside the \
                     model's directory"
                        .into(),
                ));
            }
            if escapes {
                return Err(refuse("leaves the model's directory through `..`".into()));
            }
        }
        let joined = self.model_dir.join(rel);
        let canon = std::fs::canonicalize(&joined).map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!(
                    "tensor `{name}`: cannot open external data file {}: {e}",
                    joined.display()
                ),
            )
            .with_hint(
                "external data files are resolved relative to the model file; keep the data \
                 file(s) next to the .onnx file they were saved with",
            )
        })?;
        let inside = std::iter::once(&self.model_dir)
            .chain(&self.extra)
            .filter_map(|d| std::fs::canonicalize(d).ok())
            .any(|root| canon.starts_with(root));
        if !inside {
            return Err(refuse(format!(
                "resolves (through a symbolic link) to {}, outside the model's directory{}",
                canon.display(),
                if self.extra.is_empty() {
                    ""
                } else {
                    " and the allowed data directories"
                }
            )));
        }
        // `canon` has no symbolic links left, so this is the file that would be opened.
        let meta = std::fs::metadata(&canon).map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!(
                    "tensor `{name}`: cannot open external data file {}: {e}",
                    canon.display()
                ),
            )
        })?;
        if !meta.is_file() {
            return Err(Error::invalid(format!(
                "tensor `{name}`: external data location `{}` is {}, not a regular file",
                location.escape_debug(),
                file_kind(&meta)
            ))
            .with_hint(
                "kiln reads external data only from regular files: a device or FIFO could \
                 block the build or never end (an allowed directory does not change this)",
            ));
        }
        Ok(canon)
    }
}

const ALLOWED_HINT: &str = "external data must be a regular file in the model's directory or below \
     it, named by a relative path (as onnx.save_model writes it); kiln refuses anything else \
     so that a model cannot copy other files of the build machine into your binary. If the data \
     really lives elsewhere, allow its directory yourself: include_model!(\"…\", allow_data_dir = \
     \"dir\"), Builder::allow_data_dir(\"dir\") or kiln --allow-data-dir dir";

/// What a non-regular file is, for error messages.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_char_device() || ft.is_block_device() {
            return "a device";
        }
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// Reads a whole file that must be a regular file: a model path naming a FIFO or a device must
/// fail, not block the build or fill memory. (The path itself is the user's choice, so it may
/// be a symbolic link.)
pub fn read_regular_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}, not a regular file", file_kind(&meta)),
        ));
    }
    let mut f = std::fs::File::open(path)?;
    // Checked again on the open handle: the file read is the file checked.
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// A tensor's external data reference.
struct ExternalRef {
    location: String,
    offset: u64,
    length: Option<u64>,
}

fn parse_ref(t: &proto::TensorProto, name: &str) -> Result<ExternalRef> {
    let mut location = None;
    let mut offset = 0u64;
    let mut length = None;
    for kv in &t.external_data {
        let v = kv.value.as_deref().unwrap_or("");
        match kv.key.as_deref() {
            Some("location") => location = Some(v.to_string()),
            Some("offset") => {
                offset = v.parse().map_err(|_| {
                    Error::invalid(format!("tensor `{name}`: bad external data offset `{v}`"))
                })?
            }
            Some("length") => {
                length = Some(v.parse::<u64>().map_err(|_| {
                    Error::invalid(format!("tensor `{name}`: bad external data length `{v}`"))
                })?)
            }
            _ => {}
        }
    }
    let Some(location) = location else {
        bail!("tensor `{name}` is stored externally but has no location");
    };
    Ok(ExternalRef {
        location,
        offset,
        length,
    })
}

pub(super) fn is_external(t: &proto::TensorProto) -> bool {
    t.data_location == Some(proto::tensor_proto::DataLocation::External as i32)
}

/// Reads the `expect` bytes of tensor `t`'s external data.
pub(super) fn read_external(
    t: &proto::TensorProto,
    name: &str,
    dirs: &DataDirs,
    expect: u64,
) -> Result<Vec<u8>> {
    let r = parse_ref(t, name)?;
    let len = r.length.unwrap_or(expect);
    if len != expect {
        bail!(
            "tensor `{name}`: external data length {len} does not match its shape ({expect} bytes)"
        );
    }
    let path = dirs.resolve(name, &r.location)?;
    let io = |e: std::io::Error| {
        Error::new(
            ErrorKind::Io,
            format!(
                "tensor `{name}`: reading external data from {}: {e}",
                path.display()
            ),
        )
    };
    let mut f = std::fs::File::open(&path).map_err(io)?;
    // The size and kind come from the open handle, so they describe the bytes about to be read.
    let meta = f.metadata().map_err(io)?;
    if !meta.is_file() {
        bail!(
            "tensor `{name}`: external data location `{}` is not a regular file",
            r.location
        );
    }
    let flen = meta.len();
    if r.offset.checked_add(len).is_none_or(|end| end > flen) {
        bail!(
            "tensor `{name}`: external data {}..{} is past the end of {} ({flen} bytes)",
            r.offset,
            r.offset.saturating_add(len),
            path.display()
        );
    }
    let len = usize::try_from(len).map_err(|_| {
        Error::invalid(format!(
            "tensor `{name}`: {len} bytes of external data do not fit in memory"
        ))
    })?;
    let mut buf = vec![0u8; len];
    f.seek(SeekFrom::Start(r.offset))
        .and_then(|_| f.read_exact(&mut buf))
        .map_err(io)?;
    Ok(buf)
}

/// Checks every external data reference of the model's main graph before anything is read:
/// each location follows [`DataDirs::resolve`]'s rule, and the bytes taken from each file add
/// up to no more than the file holds. Without the second rule, thousands of tiny tensor entries
/// could all name the same gigabyte and make kiln allocate terabytes (`onnx.save_model` never
/// writes overlapping ranges).
pub fn check_external_data(model: &proto::ModelProto, dirs: &DataDirs) -> Result<()> {
    let Some(g) = model.graph.as_ref() else {
        return Ok(());
    };
    let attr_tensors = g
        .node
        .iter()
        .flat_map(|n| &n.attribute)
        .filter_map(|a| a.t.as_ref());
    // Per canonical file: (bytes taken so far, file size).
    let mut per_file: HashMap<PathBuf, (u64, u64)> = HashMap::new();
    for t in g.initializer.iter().chain(attr_tensors) {
        if !is_external(t) {
            continue;
        }
        let name = t.name.as_deref().unwrap_or("");
        let r = parse_ref(t, name)?;
        let path = dirs.resolve(name, &r.location)?;
        // Without an explicit length, the shape decides; a wrong one is reported at the read.
        let len = r.length.or_else(|| expected_bytes(t)).unwrap_or(0);
        let used = per_file
            .entry(path)
            .or_insert_with_key(|p| (0, std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)));
        used.0 = used.0.saturating_add(len);
        if used.0 > used.1 {
            return Err(Error::invalid(format!(
                "tensor `{name}`: the model's tensors take {} bytes from external data file \
                 `{}`, which holds {}: their ranges overlap or run past its end",
                used.0, r.location, used.1
            ))
            .with_hint(
                "each byte of an external data file belongs to one tensor; re-save the model \
                 with onnx.save_model(..., save_as_external_data=True)",
            ));
        }
    }
    Ok(())
}

/// The byte size a tensor's shape and type imply, if they are known and valid.
fn expected_bytes(t: &proto::TensorProto) -> Option<u64> {
    let mut numel: u64 = 1;
    for &d in &t.dims {
        numel = numel.checked_mul(u64::try_from(d).ok()?)?;
    }
    match t.data_type? {
        21 | 22 => Some(numel.div_ceil(2)),
        code => numel.checked_mul(crate::ir::DType::from_onnx(code)?.size() as u64),
    }
}
