//! The weight blob's declaration in generated code (issue 21).
//!
//! Generated code declares the blob with `kiln_runtime::__kiln_blob!`, which picks how the
//! bytes get into the binary per target (runtime/src/blob.rs): the assembler's `.incbin` where
//! inline assembly is stable on ELF, so rustc and LLVM never hold the weights, and
//! `include_bytes!` elsewhere. This module only writes that macro call.

use proc_macro2::{Literal, TokenStream};
use quote::quote;

/// `__kiln_blob!(static BLOB: <len> = "<path>", asm(…) [, link_section = "…"]);`.
///
/// A relative `path` (the CLI's `kiln generate` without `-o` names the blob without writing it)
/// gets the `include_bytes!` form only: `include_bytes!` resolves it against the source file,
/// `.incbin` would against the compiler's working directory.
pub(crate) fn blob_decl(
    rt: &TokenStream,
    len: &Literal,
    path: &str,
    link_section: Option<&str>,
) -> TokenStream {
    let ls = link_section.map(|s| quote!(, link_section = #s));
    if !std::path::Path::new(path).is_absolute() {
        return quote!(#rt::__kiln_blob!(static BLOB: #len = #path #ls););
    }
    let sym = symbol(path, link_section);
    let section = match link_section {
        Some(s) => s.to_string(),
        None => format!(".rodata.{sym}"),
    };
    let incbin = asm_string(path);
    quote!(#rt::__kiln_blob!(static BLOB: #len = #path, asm(#sym, #incbin, #section) #ls);)
}

/// The blob's assembler symbol: `kiln_blob_<hash of the file name and the section>`. Blob
/// files are named by their content hash (`kiln-<hash>.bin`), so equal names mean equal bytes,
/// which lets the linker keep one copy of a blob that several crates embed.
fn symbol(path: &str, link_section: Option<&str>) -> String {
    let name = std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let key = format!("{name}\0{}", link_section.unwrap_or(""));
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("kiln_blob_{h:016x}")
}

/// `path` as the contents of an assembler string: `\` and `"` escaped, other control and
/// non-ASCII bytes as three-digit octal escapes.
fn asm_string(path: &str) -> String {
    let mut s = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\{b:03o}")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembler_strings_escape_quotes_backslashes_and_non_ascii() {
        assert_eq!(asm_string(r#"/a b/c"d\e"#), r#"/a b/c\"d\\e"#);
        assert_eq!(asm_string("/tmp/é\n"), "/tmp/\\303\\251\\012");
    }

    #[test]
    fn symbols_differ_by_blob_and_section_only() {
        let a = symbol("/x/kiln-ab.bin", None);
        assert_eq!(a, symbol("/y/kiln-ab.bin", None));
        assert_ne!(a, symbol("/x/kiln-ac.bin", None));
        assert_ne!(a, symbol("/x/kiln-ab.bin", Some(".ext")));
        assert!(a.starts_with("kiln_blob_") && a.len() == 26);
    }

    #[test]
    fn relative_paths_keep_include_bytes() {
        let rt = quote!(::kiln::runtime);
        let t = blob_decl(&rt, &Literal::usize_unsuffixed(64), "kiln-ab.bin", None).to_string();
        assert!(!t.contains("asm"), "{t}");
        let t = blob_decl(
            &rt,
            &Literal::usize_unsuffixed(64),
            "/o/kiln-ab.bin",
            Some(".f"),
        );
        let t = t.to_string();
        assert!(
            t.contains("asm") && t.contains("\".f\"") && t.contains("link_section"),
            "{t}"
        );
    }
}
