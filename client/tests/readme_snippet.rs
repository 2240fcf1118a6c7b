//! The README's Library snippet is the example web application's handler, byte for byte: the
//! example is what an end-to-end test runs against a signed fleet, so the README cannot show
//! code that does not build or does not work. Not a test of the handler itself.

use std::path::Path;

/// The text between the example's `// README:begin` and `// README:end` markers.
fn marked_block(example: &str) -> &str {
    let start = example
        .find("// README:begin\n")
        .map(|i| i + "// README:begin\n".len())
        .expect("the example marks its README block with // README:begin");
    let end = example[start..]
        .find("// README:end\n")
        .map(|i| start + i)
        .expect("the example ends its README block with // README:end");
    &example[start..end]
}

/// The body of the README's first `rust` code block in its `## Library` section.
fn library_snippet(readme: &str) -> &str {
    let section = &readme[readme
        .find("\n## Library\n")
        .expect("the README has a ## Library section")..];
    let start = section
        .find("```rust\n")
        .map(|i| i + "```rust\n".len())
        .expect("the Library section has a rust code block");
    let end = section[start..]
        .find("```")
        .map(|i| start + i)
        .expect("the rust code block is closed");
    &section[start..end]
}

#[test]
fn the_readme_library_snippet_is_the_example_handler() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("examples/web_status.rs")).unwrap();
    let readme = std::fs::read_to_string(root.join("../README.md")).unwrap();
    let block = marked_block(&example);
    assert!(block.contains("async fn service_status"), "{block}");
    assert_eq!(
        library_snippet(&readme),
        block,
        "README.md's Library snippet differs from client/examples/web_status.rs's README block: copy the block over"
    );
}
