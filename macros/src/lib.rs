use proc_macro::TokenStream;
#[proc_macro]
pub fn include_model(_input: TokenStream) -> TokenStream { TokenStream::new() }
