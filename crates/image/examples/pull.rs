//! Pulls one image into a berth image root and prints the image ID (the benchmark's client).
//!
//!   pull --root DIR [--platform os/arch] [--insecure HOST] REFERENCE

use std::time::Instant;

use berth_image::progress::{Progress, ProgressSink};
use berth_image::{ImageService, Options, PullOptions};

fn main() {
    if let Err(e) = run() {
        eprintln!("pull: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut root, mut platform, mut insecure, mut reference) = (None, None, Vec::new(), None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--root" => root = args.next(),
            "--platform" => platform = args.next(),
            "--insecure" => insecure.extend(args.next()),
            _ if reference.is_none() => reference = Some(a),
            _ => return Err(format!("unexpected argument {a:?}").into()),
        }
    }
    let (Some(root), Some(reference)) = (root, reference) else {
        return Err(
            "usage: pull --root DIR [--platform os/arch] [--insecure HOST] REFERENCE".into(),
        );
    };
    let mut opts = Options::new(root);
    opts.registry.insecure = insecure;
    let svc = ImageService::open(opts)?;
    let progress = ProgressSink::new(|p| {
        if let Progress::Resolved {
            reference,
            digest,
            layers,
        } = p
        {
            eprintln!("{reference}: {digest}, {layers} layers");
        }
    });
    let pull = PullOptions {
        platform: platform.map(|p| p.parse()).transpose()?,
        progress,
    };
    let start = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let img = rt.block_on(svc.pull(&reference, &pull))?;
    eprintln!(
        "pulled in {:.2}s, {} MB unpacked",
        start.elapsed().as_secs_f64(),
        img.size / 1_000_000
    );
    println!("{}", img.id);
    Ok(())
}
