//! CPU time and peak memory of the processes under test, from /proc.

use std::time::Duration;

/// What processes used between `start` and `finish`.
#[derive(Debug, Clone)]
pub struct ProcessUsage {
    pids: Vec<u32>,
    cpu_at_start: Duration,
}

impl ProcessUsage {
    /// Starts measuring `pids`: notes their CPU time and resets their peak-RSS marks.
    pub fn start(pids: &[u32]) -> ProcessUsage {
        for pid in pids {
            // "5" resets VmHWM to the current RSS (proc(5), clear_refs).
            let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        }
        ProcessUsage { pids: pids.to_vec(), cpu_at_start: cpu_time(pids) }
    }

    /// CPU time used since `start`, and the sum of the processes' peak RSS in KiB.
    pub fn finish(&self) -> (Duration, u64) {
        let cpu = cpu_time(&self.pids).saturating_sub(self.cpu_at_start);
        let rss = self.pids.iter().map(|pid| peak_rss_kib(*pid)).sum();
        (cpu, rss)
    }
}

/// User plus system time of processes and their threads.
fn cpu_time(pids: &[u32]) -> Duration {
    let ticks_per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as f64;
    let ticks: u64 = pids
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .map(|stat| {
            // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
            let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
            field(14) + field(15)
        })
        .sum();
    Duration::from_secs_f64(ticks as f64 / ticks_per_second)
}

fn peak_rss_kib(pid: u32) -> u64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return 0 };
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
