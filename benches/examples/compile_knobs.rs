//! What each wasmtime compile setting costs or saves on one component: `Component::new` with
//! the host's engine settings (component model, epoch interruption, 512 KiB wasm stack) and one
//! knob changed at a time, the variants interleaved round by round so that load on the machine
//! hits them alike. The figures behind the hot swap's choice of a Winch fast tier (see
//! `host/src/plugins/reload.rs`).
//!
//! Run: `cargo run --release -p wasmhook-benches --example compile_knobs -- FILE.wasm [ROUNDS]`

use std::time::{Duration, Instant};

use wasmtime::{Config, Engine, OptLevel, Strategy, component::Component};

fn base() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(512 * 1024);
    config
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: compile_knobs FILE.wasm [ROUNDS]"))?;
    let rounds: usize = args.next().map_or(Ok(9), |r| r.parse())?;
    let wasm = std::fs::read(&file)?;
    type Knob = fn(&mut Config);
    let variants: Vec<(&str, Knob)> = vec![
        ("host settings (Cranelift, speed)", |_| {}),
        ("generate_address_map(false)", |c| {
            c.generate_address_map(false);
        }),
        ("native_unwind_info(false)", |c| {
            c.native_unwind_info(false);
        }),
        ("cranelift_opt_level(None)", |c| {
            c.cranelift_opt_level(OptLevel::None);
        }),
        ("parallel_compilation(false)", |c| {
            c.parallel_compilation(false);
        }),
        ("strategy(Winch)", |c| {
            c.strategy(Strategy::Winch);
        }),
    ];
    let engines: Vec<Engine> = variants
        .iter()
        .map(|(_, knob)| {
            let mut config = base();
            knob(&mut config);
            Engine::new(&config)
        })
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let mut figures = vec![Vec::new(); variants.len()];
    for _ in 0..rounds {
        for (engine, times) in engines.iter().zip(&mut figures) {
            let started = Instant::now();
            Component::new(engine, &wasm).map_err(|e| anyhow::anyhow!("{e:#}"))?;
            times.push(started.elapsed());
        }
    }
    println!(
        "Component::new of {file} ({} bytes), {rounds} rounds",
        wasm.len()
    );
    for ((label, _), mut times) in variants.iter().zip(figures) {
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{label:<34} p50 {:>7.1} ms   min {:>7.1} ms",
            ms(times[times.len() / 2]),
            ms(times[0])
        );
    }
    Ok(())
}
