//! The machine's side of a load test: the open-file limit (every socket is
//! a file, twice over on loopback) and CPU time per thread group, read
//! from /proc, so the stack's and the generator's CPU are reported apart,
//! per phase.

use std::collections::BTreeMap;

/// Raises the soft open-file limit to the hard limit. Errors with what to
/// do when even that cannot hold `needed` descriptors.
pub fn raise_fd_limit(needed: u64) -> Result<u64, String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err("could not read the open-file limit (getrlimit)".into());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    if limit.rlim_cur < needed {
        // A privileged process may raise the hard limit too (up to
        // fs.nr_open).
        let raised = libc::rlimit {
            rlim_cur: needed,
            rlim_max: needed.max(limit.rlim_max),
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(needed);
        }
    }
    if limit.rlim_cur < needed {
        return Err(format!(
            "this run needs about {needed} open files but the limit is {} (hard limit {}); \
             raise it (e.g. `ulimit -n {needed}` as root, or LimitNOFILE in systemd) or use fewer --connections",
            limit.rlim_cur, limit.rlim_max
        ));
    }
    Ok(limit.rlim_cur)
}

/// The user and system ticks in a `/proc/.../stat` line, in seconds.
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // Fields: pid (comm) state ... utime(14) stime(15); comm may contain
    // spaces, so split after its closing parenthesis.
    let close = stat.rfind(')')?;
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((utime + stime) / ticks)
}

/// Microseconds on the machine's monotonic clock (CLOCK_MONOTONIC): one
/// clock for every process on the machine, so the generator's worker
/// processes and the publisher time sends and receipts on the same axis.
pub fn monotonic_us() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct we pass; CLOCK_MONOTONIC is
    // always available on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}

/// Resident memory of process `pid` ("self" for this one), in bytes.
pub fn resident_bytes(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU seconds used so far by process `pid` (all its threads).
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    stat_cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU seconds (user + system) used so far by this process's threads,
/// grouped by thread-name prefix (the part before the first '-').
pub fn cpu_seconds_by_thread_group() -> BTreeMap<String, f64> {
    let mut groups = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return groups;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let Some(secs) = stat_cpu_seconds(&stat) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let group = comm.split('-').next().unwrap_or(comm).to_string();
        *groups.entry(group).or_insert(0.0) += secs;
    }
    groups
}

/// CPU seconds of the stack (the in-process stack's `stack-*` threads, or
/// the process --stack-pid names) and of the generator (every other thread
/// of this process, and its worker processes).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct CpuSplit {
    pub stack: f64,
    pub generator: f64,
}

impl CpuSplit {
    /// CPU so far: this process's threads, the stack's (its threads here,
    /// or the process `stack_pid`), and the generator's `worker_pids`.
    pub fn now(stack_pid: Option<u32>, worker_pids: &[u32]) -> Self {
        let mut split = Self::of(&cpu_seconds_by_thread_group());
        if let Some(pid) = stack_pid {
            split.stack = process_cpu_seconds(pid).unwrap_or(0.0);
        }
        split.generator += worker_pids
            .iter()
            .filter_map(|&pid| process_cpu_seconds(pid))
            .sum::<f64>();
        split
    }

    fn of(groups: &BTreeMap<String, f64>) -> Self {
        let mut split = Self::default();
        for (group, secs) in groups {
            if group == "stack" {
                split.stack += secs;
            } else {
                split.generator += secs;
            }
        }
        split
    }

    /// What was used between `earlier` and `self`.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            stack: (self.stack - earlier.stack).max(0.0),
            generator: (self.generator - earlier.generator).max(0.0),
        }
    }
}

/// Lets the kernel choose the source port at `connect` instead of at
/// `bind` (`IP_BIND_ADDRESS_NO_PORT`): binding a 127.0.0.x address with
/// port 0 otherwise searches for a port free for *every* destination,
/// which at 10,000 sockets costs milliseconds per bind.
pub fn bind_address_no_port(socket: &impl std::os::fd::AsRawFd) -> std::io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `on` for the length given; the fd is open
    // for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stacks_threads_are_counted_apart_from_the_generators() {
        let groups: BTreeMap<String, f64> = [
            ("stack".to_string(), 2.0),
            ("tokio".to_string(), 1.0),
            ("loadtest".to_string(), 0.5),
        ]
        .into();
        let split = CpuSplit::of(&groups);
        assert_eq!(
            split,
            CpuSplit {
                stack: 2.0,
                generator: 1.5
            }
        );
        let later = CpuSplit {
            stack: 3.0,
            generator: 1.5,
        };
        assert_eq!(
            later.since(split),
            CpuSplit {
                stack: 1.0,
                generator: 0.0
            }
        );
    }

    #[test]
    fn cpu_is_read_after_a_command_name_with_spaces_and_parentheses() {
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 300 200 0 0 20 0 1 0";
        assert_eq!(stat_cpu_seconds(stat), Some(500.0 / ticks));
        assert_eq!(stat_cpu_seconds("42 (truncated"), None);
        assert!(process_cpu_seconds(std::process::id()).is_some());
        assert_eq!(process_cpu_seconds(u32::MAX), None);
    }

    #[test]
    fn a_socket_binds_its_address_without_a_port_search() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        bind_address_no_port(&socket).unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        // The port is chosen at connect: none yet.
        assert_eq!(socket.local_addr().unwrap().port(), 0);
    }
}
