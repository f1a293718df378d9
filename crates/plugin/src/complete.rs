//! `kubectl lighthouse <TAB>`: kubectl (1.26 and later) completes a plugin's arguments by
//! running the executable `kubectl_complete-lighthouse` with the words typed after the plugin's
//! name, the last being the word under the cursor (possibly empty), and reading Cobra's
//! completion protocol from its standard output: one candidate per line (`value<TAB>help`),
//! then `:DIRECTIVE`. The candidates come from clap_complete's engine over the plugin's own
//! [`Cli`], so they can never disagree with what the plugin parses.

use std::ffi::OsString;
use std::path::Path;

use super::cli::Cli;

/// Cobra's `ShellCompDirectiveNoFileComp`: the shell offers no file names of its own (the
/// engine lists paths itself where an argument takes one, as `import -f`).
pub const NO_FILE_COMPLETION: u32 = 4;
/// Cobra's `ShellCompDirectiveError`: nothing to offer.
pub const ERROR: u32 = 1;

/// Cobra's answer for `words` (typed after `kubectl lighthouse`, the last being completed),
/// paths relative to `current_dir`.
pub fn cobra_completions(words: &[OsString], current_dir: Option<&Path>) -> String {
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut args: Vec<OsString> = vec!["kubectl-lighthouse".into()];
    args.extend(words.iter().cloned());
    if words.is_empty() {
        args.push(OsString::new());
    }
    let index = args.len() - 1;
    match clap_complete::engine::complete(&mut command, args, index, current_dir) {
        Ok(candidates) => {
            let mut out = String::new();
            for candidate in candidates.iter().filter(|c| !c.is_hide_set()) {
                out.push_str(&candidate.get_value().to_string_lossy());
                if let Some(help) = candidate.get_help() {
                    let help = help.to_string();
                    let first_line = help.lines().next().unwrap_or_default();
                    out.push('\t');
                    out.push_str(first_line);
                }
                out.push('\n');
            }
            out.push_str(&format!(":{NO_FILE_COMPLETION}\n"));
            out
        }
        Err(_) => format!(":{ERROR}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(words: &[&str]) -> Vec<String> {
        let words: Vec<OsString> = words.iter().map(OsString::from).collect();
        let out = cobra_completions(&words, None);
        let (candidates, directive) = out.trim_end().rsplit_once('\n').unwrap_or(("", out.trim_end()));
        assert_eq!(directive, ":4", "{out}");
        candidates.lines().map(|l| l.split('\t').next().unwrap_or_default().to_string()).collect()
    }

    #[test]
    fn the_commands_complete_from_nothing_and_from_a_prefix() {
        let all = values(&[""]);
        for command in
            ["whoami", "customers", "delegations", "providers", "definition", "assignment", "import", "activate"]
        {
            assert!(all.contains(&command.to_string()), "{command} not in {all:?}");
        }
        assert_eq!(
            values(&["deleg"]),
            ["delegations"],
            "the commands' names (docs/plugin.md), not their singular aliases"
        );
    }

    #[test]
    fn subcommands_and_flags_complete_under_a_command() {
        let definition = values(&["definition", ""]);
        for sub in ["list", "show", "create", "delete"] {
            assert!(definition.contains(&sub.to_string()), "{sub} not in {definition:?}");
        }
        let flags = values(&["customers", "--out"]);
        assert!(flags.contains(&"--output".to_string()), "{flags:?}");
    }

    #[test]
    fn a_help_text_follows_a_tab_on_one_line() {
        let out = cobra_completions(&[OsString::from("who")], None);
        let line = out.lines().next().expect("a candidate");
        assert!(line.starts_with("whoami\t"), "{out}");
    }
}
