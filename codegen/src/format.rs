//! Formatting the generated module as readable Rust (`kiln generate`, the Builder).
//!
//! prettyplease leaves macro bodies as token walls; the module's run-time `impl` sits inside
//! `__kiln_if_alloc! { … }` (it exists only with kiln-runtime's `alloc` feature), so item
//! macros whose body is a list of items are formatted item by item here.

/// The file as formatted source.
pub(crate) fn unparse(file: &syn::File) -> String {
    let mut out = String::new();
    if !file.attrs.is_empty() {
        out.push_str(&prettyplease::unparse(&syn::File {
            shebang: None,
            attrs: file.attrs.clone(),
            items: Vec::new(),
        }));
    }
    for item in &file.items {
        match item_macro_body(item) {
            Some((path, body)) => {
                out.push_str(&path);
                out.push_str("! {\n");
                for line in prettyplease::unparse(&body).lines() {
                    if !line.is_empty() {
                        out.push_str("    ");
                    }
                    out.push_str(line);
                    out.push('\n');
                }
                out.push_str("}\n");
            }
            None => out.push_str(&prettyplease::unparse(&syn::File {
                shebang: None,
                attrs: Vec::new(),
                items: vec![item.clone()],
            })),
        }
    }
    out
}

/// `path! { items }` without attributes: the macro's path as text and its body as a file.
fn item_macro_body(item: &syn::Item) -> Option<(String, syn::File)> {
    let syn::Item::Macro(m) = item else {
        return None;
    };
    if !m.attrs.is_empty()
        || m.ident.is_some()
        || !matches!(m.mac.delimiter, syn::MacroDelimiter::Brace(_))
    {
        return None;
    }
    let body: syn::File = syn::parse2(m.mac.tokens.clone()).ok()?;
    if body.items.is_empty() {
        return None;
    }
    let path = &m.mac.path;
    let mut text = String::new();
    if path.leading_colon.is_some() {
        text.push_str("::");
    }
    let segs: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    if path.segments.iter().any(|s| !s.arguments.is_none()) {
        return None;
    }
    text.push_str(&segs.join("::"));
    Some((text, body))
}
