//! A one-off measurement: two ranks on loopback (this program runs itself twice) form a group and all-reduce
//! gradients the size of MiniLM-L6's (22.6 M f32 values in the encoder's 101 tensors, then the same count as one
//! flat tensor). Prints each rank's time to form the group and rank 0's all-reduce times.
//!
//! ```text
//! cargo run -p distributed --example loopback_allreduce [iterations]
//! ```

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use distributed::ProcessGroup;
use tch::{Device, Kind, Tensor};

const HIDDEN: i64 = 384;
const INTERMEDIATE: i64 = 1536;
const LAYERS: usize = 6;
const VOCABULARY: i64 = 30522;
const POSITIONS: i64 = 512;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: usize = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(5);
    if std::env::var_os("RANK").is_none() {
        return launch(iterations);
    }
    let started = Instant::now();
    let group = ProcessGroup::from_env(Duration::from_secs(120))?.ok_or("WORLD_SIZE is not 2")?;
    let formed = started.elapsed();
    let rank = group.rank();
    // Includes waiting for the other process to start and arrive.
    println!("rank {rank}: group of {} formed in {formed:?}", group.world_size());

    let shapes = minilm_gradient_shapes();
    let total: i64 = shapes.iter().map(|shape| shape.iter().product::<i64>()).sum();
    let list: Vec<Tensor> =
        shapes.iter().map(|shape| Tensor::ones(shape.as_slice(), (Kind::Float, Device::Cpu))).collect();
    let flat = Tensor::ones([total], (Kind::Float, Device::Cpu));
    if rank == 0 {
        println!("{} f32 values ({:.1} MB) in {} tensors", total, total as f64 * 4.0 / 1e6, list.len());
    }
    for (name, tensors) in
        [("101 tensors (coalesced)", list.as_slice()), ("1 flat tensor", std::slice::from_ref(&flat))]
    {
        let mut times = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            group.barrier()?;
            let started = Instant::now();
            group.all_reduce_sum(tensors)?;
            times.push(started.elapsed());
        }
        // Every value started at 1 and doubled at each all-reduce of two ranks.
        let expected = 2f64.powi(iterations as i32);
        for tensor in tensors {
            let (min, max) = (tensor.min().double_value(&[]), tensor.max().double_value(&[]));
            if min != expected || max != expected {
                return Err(format!("{name}: values in {min}..={max}, expected {expected}").into());
            }
        }
        if rank == 0 {
            let mut sorted = times.clone();
            sorted.sort();
            println!(
                "all_reduce_sum of {name}: min {:?}, median {:?} over {iterations} ({times:?})",
                sorted[0],
                sorted[sorted.len() / 2]
            );
        }
    }
    group.barrier()?;
    Ok(())
}

/// Starts two copies of this program as ranks 0 and 1 on 127.0.0.1 and waits for them.
fn launch(iterations: usize) -> Result<(), Box<dyn std::error::Error>> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for rank in 0..2 {
        children.push(
            Command::new(&exe)
                .arg(iterations.to_string())
                .env("WORLD_SIZE", "2")
                .env("RANK", rank.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .spawn()?,
        );
    }
    for (rank, mut child) in children.into_iter().enumerate() {
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("rank {rank} failed: {status}").into());
        }
    }
    Ok(())
}

/// The shapes of the trainable parameters of a MiniLM-L6 encoder (BERT, hidden 384, 6 layers, no pooler).
fn minilm_gradient_shapes() -> Vec<Vec<i64>> {
    let mut shapes =
        vec![vec![VOCABULARY, HIDDEN], vec![POSITIONS, HIDDEN], vec![2, HIDDEN], vec![HIDDEN], vec![HIDDEN]];
    for _ in 0..LAYERS {
        for _ in 0..4 {
            // query, key, value, attention output
            shapes.push(vec![HIDDEN, HIDDEN]);
            shapes.push(vec![HIDDEN]);
        }
        shapes.extend([vec![HIDDEN], vec![HIDDEN]]); // attention LayerNorm
        shapes.extend([vec![INTERMEDIATE, HIDDEN], vec![INTERMEDIATE]]);
        shapes.extend([vec![HIDDEN, INTERMEDIATE], vec![HIDDEN]]);
        shapes.extend([vec![HIDDEN], vec![HIDDEN]]); // output LayerNorm
    }
    shapes
}
