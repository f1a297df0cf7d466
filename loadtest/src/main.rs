//! `fanout-loadtest`: parses flags, runs the scenario on a runtime whose
//! threads are named `gen-…` (so its CPU time is told apart from the
//! stack's), prints the table, and writes the report and charts. With the
//! hidden `--worker` flag it is one of the generator's worker processes.

use clap::Parser;
use fanout_loadtest::config::Scenario;

fn main() {
    let scenario = Scenario::parse();
    if let Err(message) = scenario.validate() {
        eprintln!("error: {message}");
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("gen-worker")
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    if scenario.worker {
        if let Err(error) = runtime.block_on(fanout_loadtest::workers::serve()) {
            eprintln!("error: worker: {error:#}");
            std::process::exit(1);
        }
        return;
    }
    let outcome = runtime.block_on(async {
        let (report, latency) = fanout_loadtest::run(&scenario).await?;
        report.print_table();
        let charts = report.write(&scenario.report, &latency)?;
        println!("report                {}", scenario.report.display());
        for chart in charts {
            println!("chart                 {}", chart.display());
        }
        anyhow::Ok(report)
    });
    match outcome {
        Ok(report) if report.lost > 0 => {
            eprintln!("warning: {} deliveries lost", report.lost);
            std::process::exit(3);
        }
        Ok(_) => {}
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(1);
        }
    }
}
