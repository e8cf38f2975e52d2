//! The man pages in man/ are generated from the clap definitions (name,
//! synopsis, description, options, subcommands) and the extra sections of
//! `diskforge::cli::manual` (exit status, environment, files, examples);
//! this test fails when they are stale. Regenerate with
//! `DISKFORGE_UPDATE_MAN=1 cargo test --test man`.

use clap::CommandFactory;
use diskforge::cli::manual::{self, Block};
use roff::{Roff, bold, roman};
use std::path::PathBuf;

/// Appends the extra sections of a page.
fn render_extra(roff: &mut Roff, sections: &[manual::Section]) {
    for section in sections {
        roff.control("SH", [section.title]);
        for block in section.blocks {
            match *block {
                Block::Para(text) => {
                    roff.control("PP", []);
                    roff.text([roman(text)]);
                }
                Block::Item(term, text) => {
                    roff.control("TP", []);
                    roff.text([bold(term)]);
                    roff.text([roman(text)]);
                }
                Block::Example(what, commands) => {
                    roff.control("PP", []);
                    roff.text([roman(what)]);
                    roff.control("RS", ["4"]);
                    roff.control("nf", []);
                    for line in commands.lines() {
                        roff.text([roman(line)]);
                    }
                    roff.control("fi", []);
                    roff.control("RE", []);
                }
            }
        }
    }
}

/// One page: clap_mangen's sections for `cmd`, then the manual's.
fn render(cmd: clap::Command, subcommand: Option<&str>) -> Vec<u8> {
    let version = cmd.get_version().unwrap_or_default();
    let man = clap_mangen::Man::new(cmd.clone()).source(format!("diskforge {version}"));
    let mut buf = Vec::new();
    man.render_title(&mut buf).unwrap();
    man.render_name_section(&mut buf).unwrap();
    man.render_synopsis_section(&mut buf).unwrap();
    man.render_description_section(&mut buf).unwrap();
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut buf).unwrap();
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut buf).unwrap();
    }
    let mut roff = Roff::new();
    render_extra(&mut roff, manual::sections(subcommand));
    roff.to_writer(&mut buf).unwrap();
    man.render_version_section(&mut buf).unwrap();
    without_repeated_preamble(&buf)
}

/// Each clap_mangen section comes with roff's two-line preamble (the `Aq`
/// string definition); a page needs it once, at the top.
fn without_repeated_preamble(buf: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(buf.to_vec()).unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let preamble = line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq");
        if preamble && !seen.insert(line.to_string()) {
            continue;
        }
        out.push_str(line);
    }
    out.into_bytes()
}

/// (file name, contents) of every page: diskforge.1 and one page per
/// subcommand (diskforge-create.1, ...). The page of a subcommand is
/// named diskforge-create, but its synopsis is the command a person types
/// (`diskforge create`): the command is built (which sets each
/// subcommand's bin name) with clap's `help` subcommand disabled, which
/// has no page.
fn pages() -> Vec<(String, Vec<u8>)> {
    let mut cmd = diskforge::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = vec![("diskforge.1".to_string(), render(cmd.clone(), None))];
    for sub in cmd.get_subcommands() {
        let name = format!("diskforge-{}", sub.get_name());
        let page = sub.clone().display_name(name.clone());
        out.push((format!("{name}.1"), render(page, Some(sub.get_name()))));
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

/// The text of section `title` of a page (up to the next `.SH`).
fn section<'a>(page: &'a str, title: &str) -> Option<&'a str> {
    let head = format!(".SH {title}\n");
    let quoted = format!(".SH \"{title}\"\n");
    let start = page
        .find(&head)
        .map(|i| i + head.len())
        .or_else(|| page.find(&quoted).map(|i| i + quoted.len()))?;
    let rest = &page[start..];
    Some(&rest[..rest.find("\n.SH ").map_or(rest.len(), |i| i + 1)])
}

/// Every page has the sections a reader looks for; each subcommand's
/// synopsis is the command typed (`diskforge create`), and no page points
/// to a page that does not exist (`diskforge-help(1)`).
#[test]
fn man_pages_have_their_sections() {
    let all = pages();
    let names: Vec<String> = all
        .iter()
        .map(|(n, _)| n.trim_end_matches(".1").to_string())
        .collect();
    let cases = [
        ("diskforge.1", "\\fBdiskforge\\fR "),
        ("diskforge-create.1", "\\fBdiskforge create\\fR "),
        ("diskforge-info.1", "\\fBdiskforge info\\fR "),
        ("diskforge-register.1", "\\fBdiskforge register\\fR "),
    ];
    for (file, synopsis_start) in cases {
        let page = all
            .iter()
            .find(|(n, _)| n == file)
            .map(|(_, c)| String::from_utf8(c.clone()).unwrap())
            .unwrap_or_else(|| panic!("no page {file}"));
        for title in [
            "SYNOPSIS",
            "EXAMPLES",
            "ENVIRONMENT",
            "FILES",
            "EXIT STATUS",
        ] {
            let body = section(&page, title).unwrap_or_else(|| panic!("{file}: no {title}"));
            assert!(body.trim().len() > 20, "{file}: {title} is empty");
        }
        let synopsis = section(&page, "SYNOPSIS").unwrap();
        assert!(
            synopsis.starts_with(synopsis_start),
            "{file}: synopsis {synopsis:?}"
        );
        // Every page reference diskforge-NAME(1) names a page that exists.
        for (i, _) in page.match_indices("diskforge\\-") {
            let rest = &page[i + "diskforge\\-".len()..];
            let sub: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase())
                .collect();
            if rest[sub.len()..].starts_with("(1)") {
                assert!(
                    names.contains(&format!("diskforge-{sub}")),
                    "{file} refers to diskforge-{sub}(1), which does not exist"
                );
            }
        }
        let exit = section(&page, "EXIT STATUS").unwrap();
        for status in ["0", "1", "2"] {
            assert!(
                exit.contains(&format!(".TP\n\\fB{status}\\fR")),
                "{file}: exit status {status} undocumented"
            );
        }
    }
}
