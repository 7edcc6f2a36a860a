//! `cdk new NAME`: scaffolds a connector from `templates/` (a Rust source or destination, or a
//! declarative manifest) and, for Rust ones inside this workspace, adds it to the members.

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
    /// Where to create it (default: `connectors/NAME` when `connectors/` exists, else `NAME`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The templates folder (default: `templates/` of this workspace).
    #[arg(long)]
    templates: Option<PathBuf>,
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
    let templates = match args.templates {
        Some(t) => t,
        None => find_templates()?,
    };
    let out = args.out.unwrap_or_else(|| {
        if Path::new("connectors").is_dir() {
            Path::new("connectors").join(&names.name)
        } else {
            PathBuf::from(&names.name)
        }
    });
    if out.exists() {
        bail!("{} already exists", out.display());
    }
    let files = render_dir(&templates.join(template), &out, &names)?;
    for f in &files {
        println!("created {}", f.display());
    }
    if template == "source-declarative" {
        println!(
            "next: source-rest-api check --manifest-path {}/manifest.yaml --config …",
            out.display()
        );
    } else {
        if add_to_workspace(&out)? {
            println!("added {} to the workspace members", out.display());
        }
        println!("next: cargo test -p {}", names.name);
    }
    Ok(ExitCode::SUCCESS)
}

/// The forms of a connector name the templates use.
struct Names {
    name: String,
    snake: String,
    type_name: String,
    title: String,
    is_source: bool,
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
        })
    }

    fn render(&self, text: &str) -> String {
        text.replace("{{name}}", &self.name)
            .replace("{{snake_name}}", &self.snake)
            .replace("{{type_name}}", &self.type_name)
            .replace("{{title}}", &self.title)
    }
}

fn render_dir(from: &Path, to: &Path, names: &Names) -> Result<Vec<PathBuf>> {
    let mut created = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .with_context(|| format!("cannot read template {}", from.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    std::fs::create_dir_all(to)?;
    for entry in entries {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let target = to.join(file_name.strip_suffix(".tmpl").unwrap_or(&file_name));
        if entry.file_type()?.is_dir() {
            created.extend(render_dir(&entry.path(), &target, names)?);
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

/// Adds `dir` to `members` of the workspace's Cargo.toml in the current directory, if any.
fn add_to_workspace(dir: &Path) -> Result<bool> {
    let manifest = Path::new("Cargo.toml");
    let Ok(text) = std::fs::read_to_string(manifest) else {
        return Ok(false);
    };
    let Some(start) = text.find("members = [") else {
        return Ok(false);
    };
    let member = format!("    \"{}\",\n", dir.display());
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
