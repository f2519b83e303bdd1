//! Embeds `docs/openapi.json` without its insignificant whitespace, so that
//! `/openapi.json` answers compact JSON like every other endpoint while the
//! file stays readable.

use std::{env, fs, path::Path};

fn main() {
    let source = "docs/openapi.json";
    println!("cargo::rerun-if-changed={source}");
    let pretty = fs::read_to_string(source).expect("docs/openapi.json is readable");
    let out = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("openapi.json");
    fs::write(out, minify(&pretty)).expect("OUT_DIR is writable");
}

/// Drops whitespace outside strings; everything else is copied as is.
fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for character in json.chars() {
        if in_string {
            out.push(character);
            match (escaped, character) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if !character.is_whitespace() {
            in_string = character == '"';
            out.push(character);
        }
    }
    out
}
