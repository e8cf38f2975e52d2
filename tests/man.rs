//! The man pages in man/ are generated from the clap definitions; this
//! test fails when they are stale. Regenerate with
//! `DISKFORGE_UPDATE_MAN=1 cargo test --test man`.

use clap::CommandFactory;
use std::path::PathBuf;

fn render(cmd: clap::Command) -> Vec<u8> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut buf)
        .expect("render man page");
    buf
}

/// (file name, contents) of every page: diskforge.1 and one page per
/// subcommand (diskforge-create.1, ...).
fn pages() -> Vec<(String, Vec<u8>)> {
    let cmd = diskforge::cli::Cli::command();
    let mut out = vec![("diskforge.1".to_string(), render(cmd.clone()))];
    for sub in cmd.get_subcommands() {
        let name = format!("diskforge-{}", sub.get_name());
        let leaked: &'static str = Box::leak(name.clone().into_boxed_str());
        let page = sub.clone().name(leaked).display_name(leaked);
        out.push((format!("{name}.1"), render(page)));
    }
    out
}

#[test]
fn man_pages_are_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("man");
    let update = std::env::var_os("DISKFORGE_UPDATE_MAN").is_some();
    for (name, contents) in pages() {
        let path = dir.join(&name);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &contents).unwrap();
            continue;
        }
        let on_disk = std::fs::read(&path).unwrap_or_default();
        assert!(
            on_disk == contents,
            "{} is stale: run DISKFORGE_UPDATE_MAN=1 cargo test --test man",
            path.display()
        );
    }
}

#[test]
fn man_page_documents_every_subcommand() {
    let main = String::from_utf8(pages().remove(0).1).unwrap();
    for sub in diskforge::cli::Cli::command().get_subcommands() {
        assert!(
            main.contains(sub.get_name()),
            "diskforge.1 lacks {}",
            sub.get_name()
        );
    }
}
