//! `berth build` and `DOCKER_BUILDKIT=0 docker build` against `berth daemon`: every
//! instruction, multi-stage builds, `.dockerignore`, heredocs, the cache, failures that
//! leave nothing behind. Images come from the busybox fixture; needs root.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{require, Daemon, BERTH, DOCKER};
use serde_json::Value;

fn berth(d: &Daemon, args: &[&str]) -> Output {
    Command::new(BERTH)
        .args(args)
        .env("BERTH_HOST", d.host())
        .output()
        .expect("run berth")
}

/// Runs berth, requires success, returns stdout.
fn berth_ok(d: &Daemon, args: &[&str]) -> String {
    let out = berth(d, args);
    assert!(
        out.status.success(),
        "berth {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write(dir: &Path, rel: &str, content: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, content).expect("write");
}

/// A daemon with the busybox image, and an empty build context.
fn busybox_daemon() -> (Daemon, tempfile::TempDir) {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    (d, tempfile::tempdir().expect("context"))
}

/// `image inspect`'s first object.
fn inspect(d: &Daemon, image: &str) -> Value {
    let out = berth_ok(d, &["image", "inspect", image]);
    let v: Value = serde_json::from_str(&out).expect("inspect JSON");
    v[0].clone()
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

const EVERY_INSTRUCTION: &str = r#"# syntax=docker/dockerfile:1
ARG BASE_TAG=latest
FROM busybox:${BASE_TAG} AS base
ARG WHO=world
ENV GREETING="hello ${WHO}" OTHER=plain
ENV OLDFORM old form value
LABEL org.example.name="berth test" \
      version=1
MAINTAINER someone@example.com
WORKDIR /srv
WORKDIR app
COPY --chown=nobody:nogroup --chmod=640 conf/app.conf ./
COPY data/ ./data/
COPY *.txt ./texts/
ADD files.tar.gz /opt/
RUN echo "$GREETING" > greeting && echo built-by-run
RUN ["/bin/sh", "-c", "echo exec form > exec.txt"]
RUN <<EOF
echo "from heredoc $WHO" > heredoc.txt
EOF
COPY <<EOF /srv/app/inline.txt
inline ${WHO}
EOF
SHELL ["/bin/sh", "-ec"]
RUN test "$(cat greeting)" = "hello world"
EXPOSE 8080 9090/udp
VOLUME /data
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=2 CMD wget -q -O- localhost:8080 || exit 1
ONBUILD RUN echo child
USER nobody
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat greeting; id -un; pwd"]
"#;

/// The context of `EVERY_INSTRUCTION`, with a `.dockerignore` that has an exception.
fn every_instruction_context(dir: &Path) {
    write(dir, "Dockerfile", EVERY_INSTRUCTION);
    write(dir, ".dockerignore", "secret*\n!secret-ok.txt\n");
    write(dir, "conf/app.conf", "port=8080\n");
    write(dir, "data/d.txt", "data one\n");
    write(dir, "data/sub/e.txt", "data two\n");
    write(dir, "a.txt", "a\n");
    write(dir, "b.txt", "b\n");
    write(dir, "secret.txt", "must not be sent\n");
    write(dir, "secret-ok.txt", "may be sent\n");
    write(dir, "inside/f", "from the archive\n");
    let made = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["-czf", "files.tar.gz", "inside"])
        .current_dir(dir)
        .status()
        .expect("tar");
    assert!(made.success());
    std::fs::remove_dir_all(dir.join("inside")).expect("rm inside");
}

#[test]
fn every_instruction_the_cache_and_intermediate_images() {
    let (d, ctx) = busybox_daemon();
    every_instruction_context(ctx.path());
    let dir = ctx.path().to_str().expect("utf-8");

    let first = berth_ok(&d, &["build", "-t", "every:1", dir]);
    assert!(first.contains("Step 1/"), "{first}");
    assert!(
        first.contains("built-by-run"),
        "RUN output is streamed: {first}"
    );
    assert!(first.contains("Successfully tagged every:1"), "{first}");
    assert_eq!(count(&first, " ---> Running in "), 4, "{first}");

    // The image runs with its command, user and working directory.
    assert_eq!(
        berth_ok(&d, &["run", "--rm", "every:1"]),
        "hello world\nnobody\n/srv/app\n"
    );
    let files = berth_ok(
        &d,
        &[
            "run",
            "--rm",
            "every:1",
            "stat -c '%U:%G %a' app.conf; cat data/d.txt data/sub/e.txt; ls texts; \
             cat /opt/inside/f exec.txt heredoc.txt inline.txt",
        ],
    );
    assert_eq!(
        files,
        "nobody:nogroup 640\ndata one\ndata two\na.txt\nb.txt\nsecret-ok.txt\n\
         from the archive\nexec form\nfrom heredoc world\ninline world\n"
    );

    // The configuration, field by field.
    let img = inspect(&d, "every:1");
    let c = &img["Config"];
    let env: Vec<&str> = c["Env"]
        .as_array()
        .expect("Env")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in [
        "GREETING=hello world",
        "OTHER=plain",
        "OLDFORM=old form value",
    ] {
        assert!(env.contains(&want), "Env {env:?} lacks {want}");
    }
    assert!(
        !env.iter().any(|e| e.starts_with("WHO=")),
        "ARGs are not kept"
    );
    assert_eq!(c["Labels"]["org.example.name"], "berth test");
    assert_eq!(c["Labels"]["version"], "1");
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert_eq!(c["User"], "nobody");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["Cmd"], serde_json::json!(["cat greeting; id -un; pwd"]));
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert!(c["ExposedPorts"]["8080/tcp"].is_object(), "{c}");
    assert!(c["ExposedPorts"]["9090/udp"].is_object(), "{c}");
    assert!(c["Volumes"]["/data"].is_object(), "{c}");
    assert_eq!(c["StopSignal"], "SIGINT");
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "wget -q -O- localhost:8080 || exit 1"])
    );
    assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000u64);
    assert_eq!(c["Healthcheck"]["Retries"], 2);
    assert_eq!(c["OnBuild"], serde_json::json!(["RUN echo child"]));
    assert_eq!(img["Author"], "someone@example.com");
    let history = d.docker_ok(&["history", "--no-trunc", "every:1"]);
    assert!(
        history.contains("echo \"$GREETING\" > greeting"),
        "{history}"
    );

    // Unchanged: every step from the cache, the same image; a tag without one is :latest,
    // and --iidfile gets the id.
    let iidfile = ctx.path().join("iid");
    let iid = iidfile.to_str().expect("utf-8");
    let again = berth_ok(&d, &["build", "-t", "every", "--iidfile", iid, dir]);
    assert_eq!(count(&again, " ---> Running in "), 0, "{again}");
    // (Ten steps with layers, and the two WORKDIRs that made their directories.)
    assert_eq!(count(&again, " ---> Using cache"), 12, "{again}");
    assert!(
        again.contains("Successfully tagged every:latest\n"),
        "{again}"
    );
    assert_eq!(inspect(&d, "every:latest")["Id"], img["Id"]);
    let written = std::fs::read_to_string(&iidfile).expect("the iidfile");
    assert_eq!(serde_json::json!(written.trim()), img["Id"]);

    // A copied file changed: the steps before it come from the cache, the rest run.
    write(ctx.path(), "data/d.txt", "data changed\n");
    let edited = berth_ok(&d, &["build", "-t", "every:2", dir]);
    let (before, after) = edited.split_once("COPY data/").expect("the COPY step");
    assert_eq!(count(before, " ---> Using cache"), 3, "{edited}");
    assert_eq!(count(after, " ---> Using cache"), 0, "{edited}");
    assert_eq!(count(after, " ---> Running in "), 4, "{edited}");
    assert_ne!(inspect(&d, "every:2")["Id"], img["Id"]);

    // --no-cache runs everything; a build arg reaches RUN and the image.
    let fresh = berth_ok(
        &d,
        &["build", "--no-cache", "--build-arg", "WHO=world", "-q", dir],
    );
    assert!(
        fresh.trim().starts_with("sha256:"),
        "-q prints the id: {fresh}"
    );

    // Intermediate images are hidden from `images` and go with the last image using them.
    let listed = berth_ok(&d, &["images", "-q"]);
    let all = berth_ok(&d, &["images", "-aq"]);
    assert!(
        count(&all, "\n") > count(&listed, "\n"),
        "images -a shows intermediates:\n{all}\nimages:\n{listed}"
    );
    berth_ok(
        &d,
        &["rmi", "every:1", "every:latest", "every:2", fresh.trim()],
    );
    assert_eq!(
        berth_ok(&d, &["images", "-aq"]).lines().count(),
        1,
        "only busybox is left"
    );
    d.finish();
}

#[test]
fn multi_stage_builds_copy_from_stages_and_stop_at_a_target() {
    let (d, ctx) = busybox_daemon();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox AS builder\n\
         RUN mkdir /out && echo compiled > /out/app\n\
         FROM busybox AS tester\n\
         RUN echo tests ran > /report\n\
         FROM scratch\n\
         COPY --from=builder /out/app /app\n\
         COPY --from=1 /report /report\n\
         COPY --from=busybox:latest /bin/busybox /busybox\n\
         CMD [\"/busybox\", \"cat\", \"/app\", \"/report\"]\n",
    );
    let dir = ctx.path().to_str().expect("utf-8");
    berth_ok(&d, &["build", "-t", "multi:1", dir]);
    assert_eq!(
        berth_ok(&d, &["run", "--rm", "multi:1"]),
        "compiled\ntests ran\n"
    );
    let img = inspect(&d, "multi:1");
    assert_eq!(
        img["RootFS"]["Layers"].as_array().map(Vec::len),
        Some(3),
        "FROM scratch and three COPYs: {img}"
    );

    let out = berth_ok(
        &d,
        &["build", "--target", "builder", "-t", "multi:builder", dir],
    );
    assert!(
        !out.contains("tests ran"),
        "stages after the target are not built"
    );
    assert_eq!(
        berth_ok(&d, &["run", "--rm", "multi:builder", "cat", "/out/app"]),
        "compiled\n"
    );
    let bad = berth(&d, &["build", "--target", "nope", dir]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("failed to reach build target nope"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    berth_ok(&d, &["rmi", "multi:1", "multi:builder"]);
    d.finish();
}

#[test]
fn failures_say_where_and_leave_nothing() {
    let (d, ctx) = busybox_daemon();
    let dir = ctx.path().to_str().expect("utf-8");
    let images_before = berth_ok(&d, &["images", "-aq"]);
    let cases: &[(&str, &str)] = &[
        (
            "FROM busybox\nRUN echo about to fail; exit 3\n",
            "The command '/bin/sh -c echo about to fail; exit 3' returned a non-zero code: 3",
        ),
        (
            "FROM busybox\nFROB x\n",
            "Dockerfile:2: unknown instruction",
        ),
        (
            "FROM busybox\nCOPY missing.txt /\n",
            "file not found in build context",
        ),
        ("RUN true\n", "Dockerfile:1:"),
        (
            "FROM busybox\nRUN <<EOF\necho never closed\n",
            "Dockerfile:2:",
        ),
        (
            "FROM busybox\nENV X=\"${UNSET:?must be set}\"\n",
            "must be set",
        ),
    ];
    for (dockerfile, expected) in cases {
        write(ctx.path(), "Dockerfile", dockerfile);
        let out = berth(&d, &["build", "-t", "never:1", dir]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{dockerfile} built");
        assert!(
            err.contains(expected),
            "{dockerfile}: stderr {err:?} lacks {expected:?}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    assert!(!berth(&d, &["image", "inspect", "never:1"]).status.success());
    assert_eq!(berth_ok(&d, &["ps", "-aq"]), "", "no build container left");
    assert_eq!(
        berth_ok(&d, &["images", "-aq"]),
        images_before,
        "no image made by a failed build is left"
    );
    d.finish();
}

#[test]
fn the_docker_cli_classic_builder_makes_the_same_image() {
    require(DOCKER, "the docker CLI at /usr/local/bin/docker");
    let (d, ctx) = busybox_daemon();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nARG V=1\nENV V=$V\nWORKDIR /w\nCOPY . .\nRUN cat f > g\n\
         EXPOSE 80\nUSER nobody\nCMD [\"cat\", \"/w/g\"]\n",
    );
    write(ctx.path(), ".dockerignore", "ignored\n");
    write(ctx.path(), "f", "content\n");
    write(ctx.path(), "ignored", "x\n");
    let dir = ctx.path().to_str().expect("utf-8");
    berth_ok(&d, &["build", "-t", "same:berth", dir]);
    let out = Command::new(DOCKER)
        .args(["build", "--no-cache", "-t", "same:docker", dir])
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir().join("docker-config"))
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("docker build");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "docker build failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Successfully tagged same:docker"),
        "{stdout}"
    );
    let (b, k) = (inspect(&d, "same:berth"), inspect(&d, "same:docker"));
    assert_eq!(b["Config"], k["Config"]);
    let steps =
        |image: &str| d.docker_ok(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", image]);
    assert_eq!(steps("same:berth"), steps("same:docker"));
    assert_eq!(d.docker_ok(&["run", "--rm", "same:docker"]), "content\n");
    let listing = d.docker_ok(&["run", "--rm", "same:docker", "ls", "/w"]);
    assert!(!listing.contains("ignored"), "{listing}");
    d.docker_ok(&["rmi", "same:berth", "same:docker"]);
    d.finish();
}

#[test]
fn run_network_none_has_only_loopback_and_the_default_has_the_bridge() {
    let (d, ctx) = busybox_daemon();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\n\
         RUN --network=none ip -o link | grep -v ': lo:' | wc -l > /none\n\
         RUN ip -o link | grep -v ': lo:' | wc -l > /bridge\n\
         CMD cat /none /bridge\n",
    );
    let dir = ctx.path().to_str().expect("utf-8");
    berth_ok(&d, &["build", "-t", "nets:1", dir]);
    let counts: Vec<String> = berth_ok(&d, &["run", "--rm", "nets:1"])
        .lines()
        .map(|l| l.trim().to_string())
        .collect();
    assert_eq!(
        counts,
        ["0", "1"],
        "interfaces besides lo: none, then the bridge's eth0"
    );
    berth_ok(&d, &["rmi", "nets:1"]);
    d.finish();
}

#[test]
fn a_built_image_is_pushed_pulled_back_and_runs() {
    let (d, ctx) = busybox_daemon();
    let registry = common::registry_at(&d, "127.0.0.1:5000");
    write(ctx.path(), "app/greeting.txt", "hello from the build\n");
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\n\
         COPY app/ /app/\n\
         RUN sha256sum /app/greeting.txt > /app/sum && rm /bin/true\n\
         CMD [\"sh\", \"-c\", \"cat /app/greeting.txt && sha256sum -c /app/sum\"]\n",
    );
    let name = "127.0.0.1:5000/team/built:1";
    berth_ok(
        &d,
        &["build", "-q", "-t", name, ctx.path().to_str().unwrap()],
    );
    let before = inspect(&d, name);
    berth_ok(&d, &["push", name]);
    berth_ok(&d, &["rmi", name]);
    berth_ok(&d, &["rmi", "busybox:latest"]);
    assert!(berth_ok(&d, &["images", "-q"]).trim().is_empty());

    berth_ok(&d, &["pull", name]);
    let after = inspect(&d, name);
    assert_eq!(
        after["Id"], before["Id"],
        "the pulled image is the built one"
    );
    assert_eq!(after["RootFS"], before["RootFS"]);
    let out = berth_ok(&d, &["run", "--rm", name]);
    assert_eq!(out, "hello from the build\n/app/greeting.txt: OK\n");
    // The RUN step's deletion travelled as a whiteout.
    let gone = berth(&d, &["run", "--rm", name, "ls", "/bin/true"]);
    assert!(!gone.status.success(), "/bin/true came back");
    drop(registry);
    d.finish();
}

#[test]
fn workdir_makes_its_directory_owned_by_root_even_when_unused() {
    let (d, ctx) = busybox_daemon();
    write(ctx.path(), "f", "f\n");
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\n\
         WORKDIR /made/here\n\
         WORKDIR /app\n\
         COPY --chown=7:8 f ./\n\
         WORKDIR /bin\n",
    );
    berth_ok(
        &d,
        &["build", "-q", "-t", "wd:1", ctx.path().to_str().unwrap()],
    );
    let owners = berth_ok(
        &d,
        &[
            "run",
            "--rm",
            "wd:1",
            "stat",
            "-c",
            "%n %u:%g",
            "/made/here",
            "/app",
            "/app/f",
        ],
    );
    assert_eq!(owners, "/made/here 0:0\n/app 0:0\n/app/f 7:8\n");
    // /bin was there already: that WORKDIR changed only the configuration.
    let history = d.docker_ok(&["history", "--format", "{{.Size}} {{.CreatedBy}}", "wd:1"]);
    let bin = history
        .lines()
        .find(|l| l.contains("WORKDIR /bin"))
        .expect("WORKDIR /bin in the history");
    assert!(bin.starts_with("0B "), "{history}");
    berth_ok(&d, &["rmi", "wd:1"]);
    d.finish();
}
