//! The newcomer path through the real binary: the README's `init -> new -> build -> test -> dev
//! -> send` block for each language (Rust, Python, JavaScript) run exactly as written, in an
//! empty folder, until the mock API call shows in `dev`'s log; and `wasmhook test` against
//! canned answers.
//!
//! The only things the test adds to what a user types: free ports for the generated config (the
//! documented `WASMHOOK_INIT_LISTEN` / `WASMHOOK_INIT_ADMIN_LISTEN`), the shared plugin target
//! dir (`CARGO_TARGET_DIR`) so the SDK compiles once per machine, and where `scripts/prepare`
//! installed the Python and JavaScript toolchains (the documented `WASMHOOK_TOOLCHAINS`).

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Output},
    time::{Duration, Instant},
};

use wasmhook_tests::{
    child::wasmhook_binary,
    plugins::{plugins_target_dir, toolchains_dir},
    repo_root,
};

/// Environment variables that would override the plugin projects' rustflags (see
/// `wasmhook_tests::plugins`), or point the commands at another config or SDK.
const CLEARED_ENV: [&str; 6] = [
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "WASMHOOK_CONFIG",
    "WASMHOOK_SDK",
    "WASMHOOK_ADMIN_URL",
];

/// The commands of the README's fenced `sh` block that creates a plugin with `--lang <lang>`,
/// one per line, comments and blank lines dropped.
fn readme_commands(lang: &str) -> Vec<String> {
    let readme = fs::read_to_string(repo_root().join("README.md")).expect("reading README.md");
    let marker = format!("--lang {lang}");
    readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("\n```").map(|(block, _)| block))
        .find(|block| block.contains(&marker))
        .unwrap_or_else(|| panic!("README.md has no ```sh block with `{marker}`"))
        .lines()
        .map(|line| {
            line.split(" #")
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
}

/// A loopback address with a free port (bound, read and released).
fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("its address").to_string()
}

/// A shell that runs README commands with the real binary: `cd`, `wasmhook ...`, and a
/// trailing `&` for a command that keeps running.
struct Shell {
    cwd: PathBuf,
    env: Vec<(String, String)>,
    background: Vec<(Child, PathBuf)>,
}

impl Shell {
    fn new(cwd: &Path) -> Shell {
        Shell {
            cwd: cwd.to_path_buf(),
            env: vec![
                ("WASMHOOK_INIT_LISTEN".into(), free_addr()),
                ("WASMHOOK_INIT_ADMIN_LISTEN".into(), free_addr()),
                (
                    "CARGO_TARGET_DIR".into(),
                    plugins_target_dir().display().to_string(),
                ),
                (
                    "WASMHOOK_TOOLCHAINS".into(),
                    toolchains_dir().display().to_string(),
                ),
            ],
            background: Vec::new(),
        }
    }

    fn command(&self, words: &[&str]) -> Command {
        assert_eq!(
            words.first(),
            Some(&"wasmhook"),
            "not a wasmhook command: {words:?}"
        );
        let mut command = Command::new(wasmhook_binary());
        command.args(&words[1..]).current_dir(&self.cwd);
        for var in CLEARED_ENV {
            command.env_remove(var);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Runs one README line; a failing foreground command fails the test with its output.
    fn run(&mut self, line: &str) -> Option<Output> {
        assert!(
            !line.contains(['"', '\'', '|', ';', '$']),
            "the README test runs plain commands only: {line}"
        );
        let (line, background) = match line.strip_suffix('&') {
            Some(rest) => (rest.trim(), true),
            None => (line, false),
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[0] == "cd" {
            self.cwd = self.cwd.join(words[1]);
            return None;
        }
        if background {
            let log = self.cwd.join(format!("{}.log", words[1]));
            let file = fs::File::create(&log).expect("creating the background log");
            let child = self
                .command(&words)
                .stdout(file.try_clone().expect("cloning the log file"))
                .stderr(file)
                .spawn()
                .unwrap_or_else(|e| panic!("starting `{line}`: {e}"));
            self.background.push((child, log.clone()));
            // Generous: a debug-built host compiles a 12-18 MB Python or JS component first.
            wait_for(&log, "wasmhook listening", Duration::from_secs(300));
            return None;
        }
        let output = self
            .command(&words)
            .output()
            .unwrap_or_else(|e| panic!("running `{line}`: {e}"));
        assert!(
            output.status.success(),
            "`{line}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Some(output)
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        for (child, _) in &mut self.background {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `log` contains `text`; panics with the log after `timeout`.
fn wait_for(log: &Path, text: &str, timeout: Duration) -> String {
    let started = Instant::now();
    loop {
        let content = fs::read_to_string(log).unwrap_or_default();
        if content.contains(text) {
            return content;
        }
        assert!(
            started.elapsed() < timeout,
            "`{text}` did not appear in {} within {timeout:?}:\n{content}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops a background command with SIGTERM and checks it shut down cleanly.
fn terminate(child: &mut Child) {
    let pid = i32::try_from(child.id()).expect("a pid");
    // SAFETY: signalling our own child process by its pid.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = child.wait().expect("waiting for the background command");
    assert!(status.success(), "it exited with {status} after SIGTERM");
}

#[test]
fn the_readme_newcomer_path_for_rust_shows_the_mock_api_call() {
    readme_newcomer_path("rust");
}

#[test]
fn the_readme_newcomer_path_for_python_shows_the_mock_api_call() {
    readme_newcomer_path("python");
}

#[test]
fn the_readme_newcomer_path_for_js_shows_the_mock_api_call() {
    readme_newcomer_path("js");
}

/// Runs the README block for `lang` and checks what each step shows: `test`'s call and
/// result, `send`'s 200, and the mock API call in `dev`'s log.
fn readme_newcomer_path(lang: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut shell = Shell::new(dir.path());
    let commands = readme_commands(lang);
    let mut outputs = Vec::new();
    for line in &commands {
        if let Some(output) = shell.run(line) {
            outputs.push((
                line.clone(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
            ));
        }
    }
    for expected in ["init", "new", "build", "test", "dev", "send"] {
        assert!(
            commands
                .iter()
                .any(|c| c.starts_with(&format!("wasmhook {expected} "))),
            "the README block lost `wasmhook {expected}`: {commands:?}"
        );
    }
    let (_, test_output) = outputs
        .iter()
        .find(|(line, _)| line.starts_with("wasmhook test "))
        .expect("the test command's output");
    assert!(
        test_output.contains("highlevel POST /contacts/dev-contact-1/tags")
            && test_output.contains("result: succeeded"),
        "{test_output}"
    );
    let (_, sent) = outputs.last().expect("send ran last");
    assert!(sent.contains("HTTP 200"), "{sent}");

    let (mut dev, log) = shell.background.pop().expect("dev ran in the background");
    let text = wait_for(
        &log,
        r#"path=/contacts/dev-contact-1/tags body={"tags":["new-lead"]}"#,
        Duration::from_secs(60),
    );
    assert!(
        text.contains("mock API call api=highlevel method=POST"),
        "{text}"
    );
    // The mock logs the call before the delivery's outcome is recorded and logged.
    wait_for(&log, "delivery succeeded", Duration::from_secs(60));
    terminate(&mut dev);
}

#[test]
fn wasmhook_test_prints_the_calls_logs_and_result_against_canned_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut shell = Shell::new(dir.path());
    shell.run("wasmhook init");
    // Another name than the README's, so the two tests never build the same crate at once.
    shell.run("wasmhook new greeter --lang rust");
    shell.run("wasmhook build greeter");

    let ok = shell
        .run("wasmhook test greeter --event events/contact-create.json")
        .unwrap();
    let ok = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.contains("event: highlevel:ContactCreate tenant dev-location"),
        "{ok}"
    );
    assert!(ok.contains("api calls (1):"), "{ok}");
    assert!(
        ok.contains("info tagged contact contact=dev-contact-1 tag=new-lead"),
        "{ok}"
    );

    fs::write(
        dir.path().join("responses.json"),
        r#"{ "POST /contacts/*/tags": { "status": 422, "body": { "message": "tag too long" } } }"#,
    )
    .unwrap();
    let refused = shell
        .command(&[
            "wasmhook",
            "test",
            "greeter",
            "--event",
            "events/contact-create.json",
            "--responses",
            "responses.json",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&refused.stdout);
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(text.contains("/contacts/dev-contact-1/tags"), "{text}");
    assert!(text.contains("-> 422"), "{text}");
    assert!(
        text.contains("result: failed") && text.contains("tag too long"),
        "{text}"
    );

    let missing = shell
        .command(&[
            "wasmhook",
            "test",
            "nobody",
            "--event",
            "events/contact-create.json",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(2), "{err}");
    assert!(err.contains("nobody.toml"), "{err}");
}
