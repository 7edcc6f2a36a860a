//! `cdk new NAME`: scaffolds a connector from `templates/` (a Rust source or destination, or a
//! declarative manifest). Inside a cdk workspace a Rust connector becomes a member; anywhere
//! else, a standalone crate with its own Cargo.toml, image recipe and `.gitignore`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

#[derive(clap::Args)]
pub struct Args {
    /// The connector name: `source-…` or `destination-…`, lower case, digits and dashes.
    name: String,
    /// `rust` (default) or `declarative` (sources only: a manifest run by source-rest-api).
    #[arg(long, default_value = "rust")]
    kind: String,
    /// Where to create it (default: `connectors/NAME` in a cdk workspace, else `./NAME`).
    #[arg(long, alias = "out")]
    path: Option<PathBuf>,
    /// Write into an existing non-empty folder, replacing the files the template has.
    #[arg(long)]
    force: bool,
    /// A standalone crate takes `cdk` from this git repository (default: this checkout's path).
    #[arg(long)]
    cdk_git: Option<String>,
    /// The revision of `--cdk-git` (a commit, tag or branch).
    #[arg(long, requires = "cdk_git")]
    cdk_rev: Option<String>,
    /// The templates folder (default: `templates/` of this workspace).
    #[arg(long)]
    templates: Option<PathBuf>,
}

/// How the generated crate finds the kit.
enum Layout {
    /// A member of the cdk workspace at this root.
    Member(PathBuf),
    /// A crate of its own; the `cdk` dependency's source (`path = …` or `git = …`).
    Standalone(String),
}

pub fn run(args: Args) -> Result<ExitCode> {
    let names = Names::new(&args.name)?;
    let template = match (args.kind.as_str(), names.is_source) {
        ("rust", true) => "source-rust",
        ("rust", false) => "destination-rust",
        ("declarative", true) => "source-declarative",
        ("declarative", false) => bail!("declarative connectors are sources; name it source-…"),
        (other, _) => bail!("unknown kind '{other}': use rust or declarative"),
    };
    let templates = match &args.templates {
        Some(t) => t.clone(),
        None => find_templates()?,
    };
    let cwd = std::env::current_dir()?;
    let out = match &args.path {
        Some(p) => cwd.join(p),
        None => match cdk_workspace(&cwd) {
            Some(root) if root.join("connectors").is_dir() => {
                root.join("connectors").join(&names.name)
            }
            _ => cwd.join(&names.name),
        },
    };
    refuse_non_empty(&out, args.force)?;
    let parent = out.parent().unwrap_or(&out);
    let layout = match cdk_workspace(parent) {
        Some(root) => Layout::Member(root),
        None => Layout::Standalone(cdk_source(&args)?),
    };
    let rust = template != "source-declarative";
    let names = Names {
        cdk_source: match &layout {
            Layout::Standalone(source) => source.clone(),
            Layout::Member(_) => String::new(),
        },
        profile: match &layout {
            Layout::Member(root) if !defines_dist_profile(root) => "release",
            _ => "dist",
        },
        ..names
    };
    let mode = match layout {
        Layout::Member(_) => "member",
        Layout::Standalone(_) => "standalone",
    };
    let mut files = render_dir(&templates.join(template), &out, &names, mode)?;
    if let (Layout::Standalone(_), true) = (&layout, rust) {
        files.extend(standalone_files(&out)?);
    }
    for f in &files {
        println!("created {}", f.display());
    }
    let shown = out.strip_prefix(&cwd).unwrap_or(&out).display().to_string();
    if !rust {
        println!("next:");
        println!(
            "  source-rest-api check --manifest-path {shown}/manifest.yaml --config {shown}/integration_tests/config.json"
        );
        println!(
            "  cdk test source-rest-api {shown}/integration_tests -- --manifest-path {shown}/manifest.yaml"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let n = &names.name;
    match layout {
        Layout::Member(root) => {
            if add_to_workspace(&root, &out)? {
                println!("added {} to the workspace members", out.display());
            }
            let p = names.profile;
            println!("next:");
            println!("  cargo test -p {n}");
            println!(
                "  cargo build --profile {p} -p {n} && cdk image build {shown} --prebuilt target/{p}/{n}"
            );
            println!("  docker run --rm airbyte/{n}:dev spec");
        }
        Layout::Standalone(_) => {
            println!("next:");
            println!("  cd {shown}");
            println!("  cargo test");
            println!(
                "  cargo build --profile dist && cdk image build . --prebuilt target/dist/{n}"
            );
            println!("  docker run --rm airbyte/{n}:dev spec");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether the workspace at `root` has the `dist` profile the standalone crates define
/// (release, optimised whole: what images and benchmarks are built with).
fn defines_dist_profile(root: &Path) -> bool {
    std::fs::read_to_string(root.join("Cargo.toml"))
        .is_ok_and(|t| t.lines().any(|l| l.trim() == "[profile.dist]"))
}

/// Refuses a folder that exists with files in it, unless forced.
fn refuse_non_empty(out: &Path, force: bool) -> Result<()> {
    let non_empty = out.exists() && (!out.is_dir() || std::fs::read_dir(out)?.next().is_some());
    if non_empty && !force {
        bail!(
            "{} already exists and is not empty: choose another --path, or pass --force to write \
             the template's files into it",
            out.display()
        );
    }
    Ok(())
}

/// The root of the cdk workspace holding `dir`: a Cargo.toml with `[workspace]` that provides
/// `cdk` in its `[workspace.dependencies]`.
fn cdk_workspace(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| {
            std::fs::read_to_string(d.join("Cargo.toml")).is_ok_and(|t| {
                t.contains("[workspace.dependencies]")
                    && t.lines().any(|l| l.trim_start().starts_with("cdk = "))
            })
        })
        .map(Path::to_path_buf)
}

/// The `cdk` dependency of a standalone crate: a git repository, or this checkout's path.
fn cdk_source(args: &Args) -> Result<String> {
    if let Some(url) = &args.cdk_git {
        return Ok(match &args.cdk_rev {
            Some(rev) => format!("git = \"{url}\", rev = \"{rev}\""),
            None => format!("git = \"{url}\""),
        });
    }
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"));
    let checkout = checkout.canonicalize().with_context(|| {
        format!(
            "this cdk was built from {}, which is gone: pass --cdk-git URL [--cdk-rev R]",
            checkout.display()
        )
    })?;
    Ok(format!("path = \"{}\"", checkout.display()))
}

/// What a standalone Rust connector has besides the template: the image recipe and ignores.
fn standalone_files(out: &Path) -> Result<Vec<PathBuf>> {
    let files = [
        ("Dockerfile", super::image::DOCKERFILE),
        (".dockerignore", super::image::DOCKERIGNORE),
        (".gitignore", "/target\nsecrets/\n"),
    ];
    let mut created = Vec::new();
    for (name, text) in files {
        let path = out.join(name);
        std::fs::write(&path, text)?;
        created.push(path);
    }
    Ok(created)
}

/// The forms of a connector name the templates use.
struct Names {
    name: String,
    snake: String,
    type_name: String,
    title: String,
    is_source: bool,
    /// The `cdk` dependency's source for a standalone crate.
    cdk_source: String,
    /// The cargo profile images are built with: `dist`, or `release` in a workspace without it.
    profile: &'static str,
}

impl Names {
    fn new(name: &str) -> Result<Self> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !name.ends_with('-')
            && !name.contains("--");
        let rest = name
            .strip_prefix("source-")
            .or_else(|| name.strip_prefix("destination-"));
        let Some(rest) = rest.filter(|r| valid && !r.is_empty()) else {
            bail!(
                "'{name}' is not a connector name: use source-… or destination-…, lower case, digits and dashes"
            );
        };
        let capital = |w: &str| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        };
        Ok(Self {
            name: name.to_string(),
            snake: name.replace('-', "_"),
            type_name: name.split('-').map(capital).collect(),
            title: rest.split('-').map(capital).collect::<Vec<_>>().join(" "),
            is_source: name.starts_with("source-"),
            cdk_source: String::new(),
            profile: "dist",
        })
    }

    fn render(&self, text: &str) -> String {
        text.replace("{{name}}", &self.name)
            .replace("{{snake_name}}", &self.snake)
            .replace("{{type_name}}", &self.type_name)
            .replace("{{title}}", &self.title)
            .replace("{{cdk_source}}", &self.cdk_source)
            .replace("{{profile}}", self.profile)
    }
}

/// Renders every file of `from` into `to`. `*.member.tmpl` and `*.standalone.tmpl` files are
/// kept only in that `mode`; every `.tmpl` suffix is dropped.
fn render_dir(from: &Path, to: &Path, names: &Names, mode: &str) -> Result<Vec<PathBuf>> {
    let mut created = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .with_context(|| format!("cannot read template {}", from.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    std::fs::create_dir_all(to)?;
    for entry in entries {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let mut name = file_name.strip_suffix(".tmpl").unwrap_or(&file_name);
        if let Some((stem, only)) = name.rsplit_once('.')
            && (only == "member" || only == "standalone")
        {
            if only != mode {
                continue;
            }
            name = stem;
        }
        let target = to.join(name);
        if entry.file_type()?.is_dir() {
            created.extend(render_dir(&entry.path(), &target, names, mode)?);
        } else {
            let text = std::fs::read_to_string(entry.path())?;
            std::fs::write(&target, names.render(&text))?;
            created.push(target);
        }
    }
    Ok(created)
}

/// `templates/` of the workspace this cdk was built in, or above the current directory.
fn find_templates() -> Result<PathBuf> {
    let cwd = std::env::current_dir()?;
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
    cwd.ancestors()
        .map(|d| d.join("templates"))
        .chain(std::iter::once(built_in))
        .find(|t| t.join("source-rust").is_dir())
        .context("templates/ not found: pass --templates")
}

/// Adds `dir` to `members` of the workspace at `root`, unless it is there already.
fn add_to_workspace(root: &Path, dir: &Path) -> Result<bool> {
    let manifest = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)?;
    let Some(start) = text.find("members = [") else {
        return Ok(false);
    };
    let relative = dir.strip_prefix(root).unwrap_or(dir).display().to_string();
    if text.contains(&format!("\"{relative}\"")) {
        return Ok(false);
    }
    let member = format!("    \"{relative}\",\n");
    let insert_at = start + text[start..].find('\n').map_or(0, |i| i + 1);
    let updated = format!("{}{member}{}", &text[..insert_at], &text[insert_at..]);
    std::fs::write(manifest, updated)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let n = Names::new("source-open-weather2").unwrap();
        assert_eq!(
            (n.snake.as_str(), n.type_name.as_str(), n.title.as_str()),
            (
                "source_open_weather2",
                "SourceOpenWeather2",
                "Open Weather2"
            )
        );
        for bad in ["weather", "source-", "Source-x", "source--x", "source-x_y"] {
            assert!(Names::new(bad).is_err(), "{bad}");
        }
    }
}
