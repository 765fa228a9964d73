//! The builder: a Dockerfile's stages run step by step, as Docker's classic builder does.
//! Each step that changes files (RUN, COPY, ADD) runs on an overlay of the image so far
//! and commits an image with one more layer; the others change the configuration, which
//! the next commit carries. Every commit is remembered in the cache under a key of what
//! the step started from and what it did, so an unchanged step is not run again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use berth_engine::Engine;
use berth_image::{Digest, ImageService, NewImage};
use serde_json::{json, Value};

use crate::cache::{self, Cache};
use crate::context::{Context, Source};
use crate::copy::{self, CopyOptions};
use crate::dockerfile::{self, Command, CopySpec, Instruction, Kind, Stage};
use crate::error::{io_err, Error, Result};
use crate::image_config::{ImageConfig, DEFAULT_PATH};
use crate::output::Output;
use crate::run::{self, RunSpec};
use crate::stepfs::StepFs;

/// What `berth build` / `POST /build` asks for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The Dockerfile's path inside the context; `Dockerfile` when empty.
    pub dockerfile: String,
    pub tags: Vec<String>,
    pub build_args: BTreeMap<String, String>,
    /// `--target`: the stage to stop after.
    pub target: Option<String>,
    pub no_cache: bool,
    /// `--label`s, added to the final image.
    pub labels: BTreeMap<String, String>,
    /// RUN's network mode: `""` (the default bridge), `none`, `host`, or a network.
    pub network: String,
}

/// Builds the image the Dockerfile in `context` describes; returns its id. The image
/// store's work (commits, unpacking layers) blocks the thread: run it on a thread of its
/// own, as the daemon does.
pub async fn build(
    engine: &Engine,
    context: &Path,
    opts: &Options,
    out: &Output,
) -> Result<Digest> {
    let name = if opts.dockerfile.is_empty() {
        "Dockerfile"
    } else {
        opts.dockerfile.as_str()
    };
    let text = read_dockerfile(context, name)?;
    let file = dockerfile::parse(name, &text)?;
    let scratch = engine.root().join("build");
    let mut b = Builder {
        engine,
        images: engine.images(),
        context: Context::open(context)?,
        cache: Cache::open(&engine.root().join("build-cache.db"))?,
        scratch,
        opts,
        out,
        file: name.to_string(),
        escape: file.escape,
        globals: BTreeMap::new(),
        used_args: BTreeSet::new(),
        stages: Vec::new(),
        step: 0,
        steps: 0,
    };
    b.run(&file).await
}

/// Removes what a build cut short by a crash left: its containers and its step
/// directories (unmounting their root filesystems first).
pub async fn remove_leftovers(engine: &Engine) -> Result<()> {
    for c in engine.list().await? {
        if c.config.labels.contains_key(run::BUILD_LABEL) {
            engine.remove_with(&c.id, true, true).await?;
        }
    }
    let scratch = engine.root().join("build");
    let Ok(entries) = std::fs::read_dir(&scratch) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let merged = e.path().join("merged");
        // Not mounted (EINVAL) or not there (ENOENT) is the common case.
        let _ = nix::mount::umount2(&merged, nix::mount::MntFlags::MNT_DETACH);
        std::fs::remove_dir_all(e.path()).map_err(io_err("remove", e.path().display()))?;
    }
    Ok(())
}

/// The Dockerfile's text; its path must stay inside the context.
fn read_dockerfile(context: &Path, name: &str) -> Result<String> {
    let rel = Path::new(name);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(Error::Invalid(format!(
            "the Dockerfile {name} must be inside the build context: give its path relative to the context"
        )));
    }
    std::fs::read_to_string(context.join(rel)).map_err(|e| {
        Error::Invalid(format!(
            "cannot read the Dockerfile {name} in the build context ({e}): check the -f path"
        ))
    })
}

struct Builder<'a> {
    engine: &'a Engine,
    images: &'a ImageService,
    context: Context,
    cache: Cache,
    /// Where steps mount their root filesystems.
    scratch: PathBuf,
    opts: &'a Options,
    out: &'a Output,
    file: String,
    escape: char,
    /// ARGs before the first FROM, with their values.
    globals: BTreeMap<String, Option<String>>,
    /// Build args some ARG declared (the rest are reported as unused).
    used_args: BTreeSet<String>,
    stages: Vec<Built>,
    step: usize,
    steps: usize,
}

/// A finished stage, for later `FROM <stage>` and `COPY --from`.
struct Built {
    name: Option<String>,
    state: State,
}

/// Where a stage stands.
#[derive(Clone)]
struct State {
    /// The last image committed (or the base); none for `FROM scratch` before any layer.
    image: Option<Digest>,
    config: ImageConfig,
    /// Whether `config` is what `image` holds (nothing to commit at the end).
    committed: bool,
    /// ARGs declared in this stage, with their values.
    args: BTreeMap<String, Option<String>>,
    /// CMD given in this stage (an ENTRYPOINT then keeps it).
    cmd_set: bool,
}

impl Builder<'_> {
    async fn run(&mut self, file: &dockerfile::Dockerfile) -> Result<Digest> {
        for a in &file.args {
            let v = self.arg_value(
                &a.name,
                a.default.as_deref(),
                &|n| self.globals.get(n).cloned().flatten(),
                a_line(file),
            )?;
            self.used_args.insert(a.name.clone());
            self.globals.insert(a.name.clone(), v);
        }
        let last = match &self.opts.target {
            Some(t) => file
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(&t.to_lowercase()))
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "failed to reach build target {t} in {}: no stage is named so (FROM … AS {t})",
                        self.file
                    ))
                })?,
            None => file.stages.len().checked_sub(1).ok_or_else(|| {
                Error::Invalid(format!("{}: no FROM: a Dockerfile starts with FROM", self.file))
            })?,
        };
        let stages = &file.stages[..=last];
        self.steps = stages.iter().map(|s| 1 + s.instructions.len()).sum();
        for (i, stage) in stages.iter().enumerate() {
            let mut st = self.from(stage).await?;
            for ins in &stage.instructions {
                self.announce(&ins.original);
                self.dispatch(&mut st, ins).await?;
            }
            if i == last {
                return self.finish(st).await;
            }
            self.stages.push(Built {
                name: stage.name.clone(),
                state: st,
            });
        }
        Err(Error::Invalid(format!("{}: no stage to build", self.file)))
    }

    fn announce(&mut self, original: &str) {
        self.step += 1;
        self.out
            .line(&format!("Step {}/{} : {original}\n", self.step, self.steps));
    }

    /// FROM: an earlier stage, `scratch`, or an image (pulled if it is not here).
    async fn from(&mut self, stage: &Stage) -> Result<State> {
        self.announce(&stage.original);
        let globals = self.globals.clone();
        let base = self.expand(&stage.base, stage.line, &|n| {
            globals.get(n).cloned().flatten()
        })?;
        if let Some(p) = &stage.platform {
            let p = self.expand(p, stage.line, &|n| globals.get(n).cloned().flatten())?;
            if !matches!(p.as_str(), "linux/amd64" | "linux" | "") && !p.starts_with("$") {
                return Err(self.at(
                    stage.line,
                    format!("FROM --platform={p}: this builder makes linux/amd64 images only"),
                ));
            }
        }
        let lower = base.to_lowercase();
        if let Some(b) = self
            .stages
            .iter()
            .find(|b| b.name.as_deref() == Some(&lower))
        {
            let mut st = b.state.clone();
            st.args.clear();
            st.cmd_set = false;
            self.show_image(st.image.as_ref());
            return Ok(st);
        }
        if lower == "scratch" {
            self.out.line(" ---> \n");
            return Ok(State {
                image: None,
                config: ImageConfig::scratch(),
                committed: false,
                args: BTreeMap::new(),
                cmd_set: false,
            });
        }
        let inspect = match self.images.inspect(&base) {
            Ok(i) => i,
            Err(berth_image::Error::ImageNotFound(_)) => {
                self.out.line(&format!("Pulling {base}\n"));
                self.images
                    .pull(&base, &berth_image::PullOptions::default())
                    .await?;
                self.images.inspect(&base)?
            }
            Err(e) => return Err(e.into()),
        };
        let image = inspect.image.id.clone();
        self.show_image(Some(&image));
        Ok(State {
            image: Some(image),
            config: ImageConfig::from_image(&inspect.raw_config),
            committed: true,
            args: BTreeMap::new(),
            cmd_set: false,
        })
    }

    fn show_image(&self, image: Option<&Digest>) {
        let short = image.map(|d| d.short().to_string()).unwrap_or_default();
        self.out.line(&format!(" ---> {short}\n"));
    }

    async fn dispatch(&mut self, st: &mut State, ins: &Instruction) -> Result<()> {
        let line = ins.line;
        match &ins.kind {
            Kind::Run {
                command,
                network,
                heredocs,
            } => {
                return self
                    .run_step(st, ins, command, network.as_deref(), heredocs)
                    .await
            }
            Kind::Copy(spec) => return self.copy_step(st, ins, spec, false).await,
            Kind::Add(spec) => return self.copy_step(st, ins, spec, true).await,
            Kind::Env(pairs) => {
                for (k, v) in pairs {
                    let k = self.expand_in(st, k, line)?;
                    let v = self.expand_in(st, v, line)?;
                    st.config.set_env(&k, &v);
                }
            }
            Kind::Arg(decls) => {
                for a in decls {
                    let globals = self.globals.clone();
                    let v = self.arg_value(
                        &a.name,
                        a.default.as_deref(),
                        &|n| {
                            st.config
                                .env_var(n)
                                .or_else(|| st.args.get(n).cloned().flatten())
                                .or_else(|| globals.get(n).cloned().flatten())
                        },
                        line,
                    )?;
                    // `ARG X` in a stage takes the global X's value when it has none.
                    let v = v.or_else(|| globals.get(&a.name).cloned().flatten());
                    self.used_args.insert(a.name.clone());
                    st.args.insert(a.name.clone(), v);
                }
            }
            Kind::Label(pairs) => {
                for (k, v) in pairs {
                    let k = self.expand_in(st, k, line)?;
                    let v = self.expand_in(st, v, line)?;
                    st.config.insert_into("Labels", &k, json!(v));
                }
            }
            Kind::Workdir(raw) => {
                let dir = self.expand_in(st, raw, line)?;
                let dir = join_dir(&st.config.workdir(), &dir);
                st.config.set("WorkingDir", json!(dir));
                if self.workdir_step(st, ins, &dir)? {
                    return Ok(());
                }
            }
            Kind::Expose(words) => {
                for w in words {
                    for port in self.expand_words_in(st, w, line)? {
                        let port = if port.contains('/') {
                            port.to_lowercase()
                        } else {
                            format!("{port}/tcp")
                        };
                        st.config.insert_into("ExposedPorts", &port, json!({}));
                    }
                }
            }
            Kind::User(raw) => {
                let user = self.expand_in(st, raw, line)?;
                st.config.set("User", json!(user));
            }
            Kind::Volume(words) => {
                for w in words {
                    for v in self.expand_words_in(st, w, line)? {
                        st.config.insert_into("Volumes", &v, json!({}));
                    }
                }
            }
            Kind::StopSignal(raw) => {
                let s = self.expand_in(st, raw, line)?;
                st.config.set("StopSignal", json!(s));
            }
            Kind::Cmd(c) => {
                let v = command_vec(c, &st.config.shell());
                st.config.set("Cmd", json!(v));
                st.cmd_set = true;
            }
            Kind::Entrypoint(c) => {
                let v = command_vec(c, &st.config.shell());
                st.config.set("Entrypoint", json!(v));
                if !st.cmd_set {
                    // As Docker: a new ENTRYPOINT drops the CMD the base image had.
                    st.config.set("Cmd", Value::Null);
                }
            }
            Kind::Shell(v) => st.config.set("Shell", json!(v)),
            Kind::Healthcheck(h) => {
                let v = healthcheck(h.as_ref()).map_err(|m| self.at(line, m))?;
                st.config.set("Healthcheck", v);
            }
            Kind::Onbuild(trigger) => st.config.push_onbuild(trigger),
            Kind::Maintainer(who) => st.config.set_author(who),
        }
        st.config.add_history(&nop(&ins.original), true, &now());
        st.committed = false;
        Ok(())
    }

    /// WORKDIR makes its directory at once (owned by the container's root), as Docker's
    /// classic builder does, so that it exists whether or not a later step uses it: a layer
    /// holding it when the image lacks it. False when the image has it already; the
    /// instruction then only changes the configuration.
    fn workdir_step(&mut self, st: &mut State, ins: &Instruction, dir: &str) -> Result<bool> {
        let key = self.key(st, &["WORKDIR", dir]);
        if self.cached(st, &key)? {
            return Ok(true);
        }
        let mut fs = StepFs::mount(self.images, st.image.as_ref(), &self.scratch)?;
        copy::make_dir(fs.root(), dir, self.ids()).map_err(|e| self.at(ins.line, e.to_string()))?;
        let upper = fs.finish()?.to_path_buf();
        let made = std::fs::read_dir(&upper)
            .map_err(io_err("read", upper.display()))?
            .next()
            .is_some();
        if !made {
            return Ok(false);
        }
        self.commit_layer(st, &upper, &nop(&ins.original), &key)?;
        Ok(true)
    }

    async fn run_step(
        &mut self,
        st: &mut State,
        ins: &Instruction,
        command: &Command,
        network: Option<&str>,
        heredocs: &[dockerfile::Heredoc],
    ) -> Result<()> {
        let argv = run::argv(command, heredocs, &st.config.shell());
        let env = self.run_env(st);
        let network = match network {
            None | Some("default") => self.opts.network.clone(),
            Some(n) => n.to_string(),
        };
        let argv_json = json!(argv).to_string();
        let env_json = json!(env).to_string();
        let key = self.key(st, &["RUN", &argv_json, &env_json, &network]);
        if self.cached(st, &key)? {
            return Ok(());
        }
        let mut fs = StepFs::mount(self.images, st.image.as_ref(), &self.scratch)?;
        let workdir = st.config.workdir();
        copy::make_dir(fs.root(), &workdir, self.ids())
            .map_err(|e| self.at(ins.line, e.to_string()))?;
        let spec = RunSpec {
            argv: argv.clone(),
            env,
            workdir,
            user: st.config.user(),
            network,
        };
        let code = run::run(self.engine, fs.root(), spec, self.out).await?;
        if code != 0 {
            return Err(Error::Step(format!(
                "{}:{}: The command '{}' returned a non-zero code: {code}",
                self.file,
                ins.line,
                argv.join(" ")
            )));
        }
        let layer = fs.finish()?.to_path_buf();
        self.commit_layer(st, &layer, &argv.join(" "), &key)
    }

    async fn copy_step(
        &mut self,
        st: &mut State,
        ins: &Instruction,
        spec: &CopySpec,
        add: bool,
    ) -> Result<()> {
        let line = ins.line;
        let what = if add { "ADD" } else { "COPY" };
        let mut words = Vec::new();
        for s in &spec.sources {
            words.push(self.expand_in(st, s, line)?);
        }
        let dest = self.expand_in(st, &spec.dest, line)?;
        // The files come from the context, an earlier stage, an image, or heredocs.
        let from = match &spec.from {
            Some(f) => Some(self.expand_in(st, f, line)?),
            None => None,
        };
        let (from_image, from_key) = match &from {
            Some(f) => {
                let image = self.copy_source_image(f).await?;
                let k = image.as_ref().map(|d| d.to_string()).unwrap_or_default();
                (Some(image), k)
            }
            None => (None, String::new()),
        };
        let heredoc_dir = heredoc_files(&spec.heredocs, &self.scratch, |h| {
            if h.expand {
                self.expand_in(st, &h.content, line)
            } else {
                Ok(h.content.clone())
            }
        })?;
        let source_fs = match &from_image {
            Some(image) => Some(StepFs::mount(self.images, image.as_ref(), &self.scratch)?),
            None => None,
        };
        let (ctx, names) = match (&source_fs, &heredoc_dir) {
            (Some(fs), _) => (Context::open_unfiltered(fs.root())?, words.clone()),
            (None, Some(dir)) => {
                let names: Vec<String> = spec.heredocs.iter().map(|h| h.name.clone()).collect();
                (Context::open_unfiltered(dir.path())?, names)
            }
            (None, None) => (self.context.clone(), words.clone()),
        };
        let sources: Vec<Source> = ctx
            .resolve(&names)
            .map_err(|e| self.at(line, e.to_string()))?;
        let hash = ctx.hash(&sources)?;
        let chown = spec.chown.clone().unwrap_or_default();
        let chmod = spec.chmod.clone().unwrap_or_default();
        let key = self.key(st, &[what, &from_key, &hash, &dest, &chown, &chmod]);
        if self.cached(st, &key)? {
            return Ok(());
        }
        let mut fs = StepFs::mount(self.images, st.image.as_ref(), &self.scratch)?;
        let opts = CopyOptions {
            chown: match &spec.chown {
                Some(c) => Some(
                    copy::parse_chown(c, fs.root()).map_err(|e| self.at(line, e.to_string()))?,
                ),
                None => None,
            },
            chmod: match &spec.chmod {
                Some(m) => Some(copy::parse_chmod(m).map_err(|e| self.at(line, e.to_string()))?),
                None => None,
            },
            extract_archives: add,
            ignore: Some(ctx.ignore()),
            ids: self.ids(),
        };
        copy::copy_into(fs.root(), &sources, &dest, &st.config.workdir(), &opts)
            .map_err(|e| self.at(line, e.to_string()))?;
        drop(source_fs);
        let layer = fs.finish()?.to_path_buf();
        let created_by = format!(
            "/bin/sh -c #(nop) {what} {}:{} in {dest} ",
            if sources.len() == 1 && !sources[0].is_dir {
                "file"
            } else {
                "dir"
            },
            &hash[..hash.len().min(64)]
        );
        self.commit_layer(st, &layer, &created_by, &key)
    }

    /// `COPY --from`: an earlier stage (by name or index) or an image.
    async fn copy_source_image(&mut self, from: &str) -> Result<Option<Digest>> {
        let lower = from.to_lowercase();
        if let Some(b) = self
            .stages
            .iter()
            .find(|b| b.name.as_deref() == Some(&lower))
        {
            return Ok(b.state.image.clone());
        }
        if let Ok(i) = from.parse::<usize>() {
            return match self.stages.get(i) {
                Some(b) => Ok(b.state.image.clone()),
                None => Err(Error::Invalid(format!(
                    "COPY --from={i}: there is no earlier stage {i}; stages count from 0"
                ))),
            };
        }
        match self.images.inspect(from) {
            Ok(i) => Ok(Some(i.image.id)),
            Err(berth_image::Error::ImageNotFound(_)) => {
                self.images
                    .pull(from, &berth_image::PullOptions::default())
                    .await?;
                Ok(Some(self.images.inspect(from)?.image.id))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A cache hit takes the step's image and configuration as they were committed.
    fn cached(&mut self, st: &mut State, key: &str) -> Result<bool> {
        if self.opts.no_cache {
            return Ok(false);
        }
        let Some(id) = self.cache.get(key)? else {
            return Ok(false);
        };
        let Ok(inspect) = self.images.inspect(&id) else {
            return Ok(false);
        };
        let image = inspect.image.id;
        self.out.line(" ---> Using cache\n");
        self.show_image(Some(&image));
        st.config = ImageConfig::from_image(&inspect.raw_config);
        st.image = Some(image);
        st.committed = true;
        Ok(true)
    }

    /// Commits the step's upper directory (`StepFs::finish`) as a layer on the image so far.
    fn commit_layer(
        &mut self,
        st: &mut State,
        upper: &Path,
        created_by: &str,
        key: &str,
    ) -> Result<()> {
        st.config.add_history(created_by, false, &now());
        let record = self.images.commit(NewImage {
            parent: st.image.as_ref(),
            layer: Some(berth_image::NewLayer::Upper(upper)),
            config: st.config.document(&now()),
            tags: &[],
        })?;
        self.cache.put(key, &record.id.to_string())?;
        self.show_image(Some(&record.id));
        st.image = Some(record.id);
        st.committed = true;
        Ok(())
    }

    /// The last stage's image: committed if its configuration changed since the last
    /// layer, tagged, announced.
    async fn finish(&mut self, mut st: State) -> Result<Digest> {
        for (k, v) in &self.opts.labels {
            st.config.insert_into("Labels", k, json!(v));
            st.committed = false;
        }
        let id = match (&st.image, st.committed) {
            (Some(id), true) => id.clone(),
            (None, true) | (None, false) if st.config == ImageConfig::scratch() => {
                return Err(Error::Invalid(
                    "no image was generated: the Dockerfile has nothing but FROM scratch".into(),
                ))
            }
            _ => {
                let key = self.key(&st, &["commit"]);
                if self.cached(&mut st, &key)? {
                    st.image.clone().expect("a cached image")
                } else {
                    let record = self.images.commit(NewImage {
                        parent: st.image.as_ref(),
                        layer: None,
                        config: st.config.document(&now()),
                        tags: &[],
                    })?;
                    self.cache.put(&key, &record.id.to_string())?;
                    record.id
                }
            }
        };
        let unused: Vec<&String> = self
            .opts
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k) && !PREDEFINED_ARGS.contains(&k.as_str()))
            .collect();
        if !unused.is_empty() {
            let list: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            self.out.line(&format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                list.join(" ")
            ));
        }
        self.out
            .line(&format!("Successfully built {}\n", id.short()));
        for t in &self.opts.tags {
            self.images.tag(&id.to_string(), t)?;
            // As Docker says it: `app:latest` for `-t app`.
            let shown = t
                .parse::<berth_image::Reference>()
                .map_or_else(|_| t.clone(), |r| r.familiar());
            self.out.line(&format!("Successfully tagged {shown}\n"));
        }
        self.out.built(&id.to_string());
        Ok(id)
    }

    /// A step's cache key: the image and configuration it starts from and what it does.
    fn key(&self, st: &State, parts: &[&str]) -> String {
        let parent = st.image.as_ref().map(|d| d.to_string()).unwrap_or_default();
        let config = st.config.cache_text();
        let mut all = vec![parent.as_str(), config.as_str()];
        all.extend_from_slice(parts);
        cache::key(&all)
    }

    /// RUN's environment: the image's, then the stage's ARGs (which ENV overrides), and a
    /// PATH when there is none.
    fn run_env(&self, st: &State) -> Vec<String> {
        let mut env = st.config.env();
        for (k, v) in &st.args {
            if let Some(v) = v {
                if st.config.env_var(k).is_none() {
                    env.push(format!("{k}={v}"));
                }
            }
        }
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        env
    }

    /// An ARG's value: the build arg given for it, else its default, expanded.
    fn arg_value(
        &self,
        name: &str,
        default: Option<&str>,
        lookup: &dyn Fn(&str) -> Option<String>,
        line: usize,
    ) -> Result<Option<String>> {
        if let Some(v) = self.opts.build_args.get(name) {
            return Ok(Some(v.clone()));
        }
        default.map(|d| self.expand(d, line, lookup)).transpose()
    }

    /// Expands a word with the stage's variables: ENV first, then ARGs.
    fn expand_in(&self, st: &State, raw: &str, line: usize) -> Result<String> {
        self.expand(raw, line, &|n| {
            st.config
                .env_var(n)
                .or_else(|| st.args.get(n).cloned().flatten())
        })
    }

    fn expand_words_in(&self, st: &State, raw: &str, line: usize) -> Result<Vec<String>> {
        dockerfile::expand_words(raw, self.escape, &|n| {
            st.config
                .env_var(n)
                .or_else(|| st.args.get(n).cloned().flatten())
        })
        .map_err(|e| self.at(line, e.to_string()))
    }

    fn expand(
        &self,
        raw: &str,
        line: usize,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String> {
        dockerfile::expand_word(raw, self.escape, lookup).map_err(|e| self.at(line, e.to_string()))
    }

    /// An error about the instruction on `line` of the Dockerfile.
    /// The image store's user namespace (userns-remap), if it has one.
    fn ids(&self) -> Option<&berth_image::IdMap> {
        Some(self.images.ids()).filter(|i| !i.is_identity())
    }

    fn at(&self, line: usize, message: String) -> Error {
        Error::Invalid(format!("{}:{line}: {message}", self.file))
    }
}

/// A line for errors in global ARG defaults, which have no line of their own in the
/// AST: the one before the first FROM.
fn a_line(file: &dockerfile::Dockerfile) -> usize {
    file.stages
        .first()
        .map_or(1, |s| s.line.saturating_sub(1).max(1))
}

/// ARGs Docker knows without a declaration (proxies): never reported unused.
const PREDEFINED_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// A command in the image config: exec form as given, shell form through SHELL.
fn command_vec(c: &Command, shell: &[String]) -> Vec<String> {
    match c {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => {
            let mut v = shell.to_vec();
            v.push(s.clone());
            v
        }
    }
}

/// WORKDIR: an absolute path, or one relative to the current working directory.
fn join_dir(current: &str, dir: &str) -> String {
    if dir.starts_with('/') {
        dir.to_string()
    } else {
        format!("{}/{dir}", current.trim_end_matches('/'))
    }
}

/// The history line of a step that changes only the configuration, as Docker writes it.
fn nop(original: &str) -> String {
    format!("/bin/sh -c #(nop)  {original}")
}

/// HEALTHCHECK in the image config's shape (durations in nanoseconds).
fn healthcheck(h: Option<&dockerfile::Healthcheck>) -> std::result::Result<Value, String> {
    let Some(h) = h else {
        return Ok(json!({ "Test": ["NONE"] }));
    };
    let test: Vec<String> = match &h.test {
        Command::Exec(v) => std::iter::once("CMD".to_string())
            .chain(v.clone())
            .collect(),
        Command::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
    };
    let mut v = json!({ "Test": test });
    for (key, d) in [
        ("Interval", &h.interval),
        ("Timeout", &h.timeout),
        ("StartPeriod", &h.start_period),
        ("StartInterval", &h.start_interval),
    ] {
        if let Some(d) = d {
            v[key] = json!(duration_ns(d)?);
        }
    }
    if let Some(r) = h.retries {
        v["Retries"] = json!(r);
    }
    Ok(v)
}

/// A Go duration (`30s`, `1m30s`, `500ms`, `1h`) in nanoseconds.
fn duration_ns(text: &str) -> std::result::Result<u64, String> {
    let bad =
        || format!("HEALTHCHECK: {text} is not a duration: write it like 30s, 1m30s or 500ms");
    let mut total: u64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        let n: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale: f64 = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += (n * scale) as u64;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// `COPY <<EOF /dest`: each heredoc as a file named by its delimiter, in a directory of
/// its own that the copy reads from.
fn heredoc_files(
    docs: &[dockerfile::Heredoc],
    scratch: &Path,
    content: impl Fn(&dockerfile::Heredoc) -> Result<String>,
) -> Result<Option<tempfile::TempDir>> {
    if docs.is_empty() {
        return Ok(None);
    }
    std::fs::create_dir_all(scratch).map_err(io_err("create", scratch.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("heredoc-")
        .tempdir_in(scratch)
        .map_err(|e| Error::io("create a heredoc directory", e))?;
    for h in docs {
        if h.name.contains('/') || h.name.starts_with('.') {
            return Err(Error::Invalid(format!(
                "COPY <<{}: a heredoc's name becomes a file name; use a plain word",
                h.name
            )));
        }
        let path = dir.path().join(&h.name);
        std::fs::write(&path, content(h)?).map_err(io_err("write heredoc", &h.name))?;
    }
    Ok(Some(dir))
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_writes_them() {
        assert_eq!(duration_ns("30s").unwrap(), 30_000_000_000);
        assert_eq!(duration_ns("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(duration_ns("500ms").unwrap(), 500_000_000);
        assert!(duration_ns("5 minutes").is_err());
        assert!(duration_ns("").is_err());
    }

    #[test]
    fn healthchecks_take_dockers_shape() {
        let h = dockerfile::Healthcheck {
            test: Command::Shell("wget -q localhost".into()),
            interval: Some("5s".into()),
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: Some(3),
        };
        let v = healthcheck(Some(&h)).unwrap();
        assert_eq!(v["Test"], json!(["CMD-SHELL", "wget -q localhost"]));
        assert_eq!(v["Interval"], json!(5_000_000_000u64));
        assert_eq!(v["Retries"], 3);
        assert_eq!(healthcheck(None).unwrap(), json!({ "Test": ["NONE"] }));
    }

    #[test]
    fn workdirs_join_and_commands_take_the_shell() {
        assert_eq!(join_dir("/", "app"), "/app");
        assert_eq!(join_dir("/app", "sub"), "/app/sub");
        assert_eq!(join_dir("/app", "/abs"), "/abs");
        let sh = ["/bin/sh".to_string(), "-c".to_string()];
        assert_eq!(
            command_vec(&Command::Shell("run me".into()), &sh),
            ["/bin/sh", "-c", "run me"]
        );
    }
}
