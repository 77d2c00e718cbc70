//! `dynamo cluster`: starts every node of a cluster file as a child process, prints their
//! addresses, restarts nothing on its own, and stops them all on Ctrl-C (or when one fails to
//! start).

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode};

use crate::cluster_file::{ClusterFile, DEFAULT};

pub fn run(config: Option<PathBuf>) -> ExitCode {
    let (path, file) = match config {
        Some(path) => match ClusterFile::load(&path) {
            Ok(file) => (path, file),
            Err(error) => return crate::usage_error(&error),
        },
        None => {
            let file = ClusterFile::parse(DEFAULT, std::path::Path::new("<default>")).expect("the default is valid");
            if let Err(error) = std::fs::create_dir_all(&file.data_dir) {
                return crate::usage_error(&format!("cannot create {}: {error}", file.data_dir.display()));
            }
            let path = file.data_dir.join("cluster.toml");
            if let Err(error) = std::fs::write(&path, DEFAULT) {
                return crate::usage_error(&format!("cannot write {}: {error}", path.display()));
            }
            (path, file)
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => return crate::usage_error(&format!("cannot find the dynamo binary: {error}")),
    };
    let mut children: Vec<(String, Child)> = Vec::new();
    for node in &file.nodes {
        let child = Command::new(&exe).arg("node").arg("--config").arg(&path).arg("--name").arg(&node.name).spawn();
        match child {
            Ok(child) => {
                println!("node {}: ws://{}/client  resp {}  (pid {})", node.name, node.ws, node.resp, child.id());
                children.push((node.name.clone(), child));
            }
            Err(error) => {
                eprintln!("dynamo: cannot start node {}: {error}", node.name);
                stop(&mut children);
                return ExitCode::from(1);
            }
        }
    }
    println!("cluster of {} nodes running; Ctrl-C stops it", children.len());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    println!("stopping");
    stop(&mut children);
    ExitCode::SUCCESS
}

fn stop(children: &mut Vec<(String, Child)>) {
    for (_, child) in children.iter_mut() {
        let _ = child.kill();
    }
    for (_, child) in children.iter_mut() {
        let _ = child.wait();
    }
    children.clear();
}
