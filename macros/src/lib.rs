//! `include_model!`: kiln's proc-macro front end. Parses the path literal, runs kiln-codegen,
//! and returns the generated module — or a `compile_error!` at the literal naming the file, the
//! node and what to do, plus a stub `Model` so that user code does not drown in follow-on errors.
use std::path::PathBuf;

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;

/// Where the macro caches content-addressed weight blobs.
const BLOB_DIR: &str = env!("OUT_DIR");

/// Compiles an ONNX model into the module it is invoked in, at build time.
///
/// ```ignore
/// mod mlp {
///     kiln::include_model!("models/mlp.quant.onnx"); // relative to your Cargo.toml's directory
/// }
/// let mut model = mlp::Model::new();
/// let out = model.run(mlp::Inputs { x: kiln::TensorRef::new(&pixels, &[1, 64])? })?;
/// ```
///
/// The module gets `Model`, `Inputs`, `Outputs` and the interface constants; `kiln::example`
/// shows them for a small model, and the `kiln` crate page has a compiled, runnable example.
/// A model kiln cannot compile is a `compile_error!` at the path literal naming the file, the
/// node, the op and what to do (e.g. `kiln inspect model.onnx` lists every unsupported op).
///
/// Options after the path:
/// - `link_section = ".rodata.kiln"` puts the weight blob in that linker section (an unsafe
///   attribute in the generated code: `#[unsafe(link_section = …)]`);
/// - `allow_data_dir = "weights"` (repeatable) also lets the model's external tensor data come
///   from that directory (relative to the crate's `Cargo.toml` directory). Without it, external
///   data must be regular files inside the model's own directory: a downloaded model cannot
///   make the build copy other files of the machine into the binary.
#[proc_macro]
pub fn include_model(input: TokenStream) -> TokenStream {
    let args = match syn::parse::Parser::parse(parse_args, input) {
        Ok(a) => a,
        Err(e) => return e.to_compile_error().into(),
    };
    let (lit, opts) = args;
    // A panic inside kiln-codegen is a compiler bug, never the user's fault: report it as a
    // compile error at the literal that names the model and asks for a report, instead of
    // rustc's bare "proc macro panicked".
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| expand(&lit, &opts)))
        .unwrap_or_else(|payload| Err(internal_error(&lit, payload.as_ref())));
    match result {
        Ok(ts) => ts.into(),
        Err(msg) => {
            let err = syn::Error::new(lit.span(), msg).to_compile_error();
            quote!(#err #STUB).into()
        }
    }
}

/// The message for a panic in the compiler: the model, the panic's text, and what to do.
fn internal_error(lit: &syn::LitStr, payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    format!(
        "kiln: {}: internal compiler error (a bug in kiln, not in your model): {what}\n  \
         help: please report it on kiln's issue tracker with this message and the model \
         (`kiln inspect` on the model may show which node triggers it)",
        resolve(lit).display()
    )
}

#[allow(non_upper_case_globals)]
const STUB: Stub = Stub;
struct Stub;
impl quote::ToTokens for Stub {
    fn to_tokens(&self, ts: &mut TokenStream2) {
        ts.extend(quote! {
            /// Placeholder emitted because the model failed to compile (see the error above).
            pub struct Model;
            impl Model {
                pub fn new() -> Self { Model }
                pub fn with_isa(_isa: ::kiln::runtime::Isa) -> Self { Model }
                pub fn isa(&self) -> ::kiln::runtime::Isa { ::kiln::runtime::Isa::Scalar }
            }
        });
    }
}

/// Resolves the literal against the `Cargo.toml` directory of the crate invoking the macro
/// (`CARGO_MANIFEST_DIR`). Only when no file exists there, it also tries the directory of the
/// `Cargo.toml` nearest above the source file holding the literal: the same directory for any
/// ordinary crate, but the right one when a tool compiles a package's source files in a
/// generated crate elsewhere (trybuild's `target/tests/trybuild/<crate>/` projects do).
fn resolve(lit: &syn::LitStr) -> PathBuf {
    let rel = PathBuf::from(lit.value());
    let path = manifest_dir().join(&rel);
    if rel.is_absolute() || path.exists() {
        return path;
    }
    let source = lit.span().unwrap().local_file();
    let source = source.and_then(|f| std::path::absolute(f).ok());
    let package_dir = source.as_deref().and_then(|f| {
        f.ancestors()
            .skip(1)
            .find(|d| d.join("Cargo.toml").is_file())
    });
    match package_dir.map(|d| d.join(&rel)) {
        Some(alt) if alt != path && alt.exists() => alt,
        _ => path,
    }
}

/// The invoking crate's `Cargo.toml` directory.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// `"path" [, link_section = "name"] [, allow_data_dir = "dir"]…`.
fn parse_args(input: syn::parse::ParseStream) -> syn::Result<(syn::LitStr, kiln_codegen::Options)> {
    let lit: syn::LitStr = input.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            "include_model! expects a string literal: the path of an .onnx file",
        )
    })?;
    let mut opts = kiln_codegen::Options::default();
    while !input.is_empty() {
        input.parse::<syn::Token![,]>()?;
        if input.is_empty() {
            break;
        }
        let key: syn::Ident = input.parse()?;
        input.parse::<syn::Token![=]>()?;
        let value: syn::LitStr = input.parse()?;
        match key.to_string().as_str() {
            "link_section" => opts.link_section = Some(value.value()),
            "allow_data_dir" => opts.allowed_data_dirs.push(resolve(&value)),
            _ => {
                return Err(syn::Error::new(
                    key.span(),
                    "unknown include_model! option (expected `link_section = \"…\"` or \
                     `allow_data_dir = \"…\"`)",
                ));
            }
        }
    }
    Ok((lit, opts))
}

fn expand(lit: &syn::LitStr, opts: &kiln_codegen::Options) -> Result<TokenStream2, String> {
    let path = resolve(lit);
    let compiled = kiln_codegen::compile_file(&path, opts).map_err(|e| e.to_string())?;
    let blob = compiled
        .write_blob(std::path::Path::new(BLOB_DIR))
        .map_err(|e| e.to_string())?;
    let body = compiled.tokens(&blob);
    let model_abs = std::path::absolute(&path).unwrap_or(path);
    let model_abs = model_abs.to_string_lossy();
    let _ = Span::call_site();
    // Rebuild tracking: cargo reruns the macro when the model file changes.
    Ok(quote! {
        const _: &[u8] = include_bytes!(#model_abs);
        #body
    })
}
